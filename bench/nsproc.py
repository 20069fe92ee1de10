"""A tool run as PID 1 of its own PID namespace, and what the host can read about its processes.

The tool is started as ``unshare --fork --pid --mount-proc --kill-child TOOL...``: unshare forks
the namespace's PID 1 and execs the tool in it. Everything is read from the host's /proc (the
namespace mounts its own /proc, so pids written by the services are namespace pids; ``NSpid`` in
/proc/PID/status maps them back). A namespace is always torn down by SIGKILL to its PID 1, which
makes the kernel kill everything else in it; unshare itself gets PDEATHSIG so that nothing
survives the benchmark being killed.
"""

from __future__ import annotations

import ctypes
import os
import select
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

UNSHARE = ("unshare", "--fork", "--pid", "--mount-proc", "--kill-child")
# how long unshare may take to fork the namespace's PID 1
INIT_APPEAR_TIMEOUT_S = 5.0
# after SIGKILL to PID 1, how long the kernel may take to empty the namespace
TEARDOWN_TIMEOUT_S = 10.0
PR_SET_PDEATHSIG = 1
CLK_TCK = os.sysconf("SC_CLK_TCK")

_libc = ctypes.CDLL(None, use_errno=True)


def _die_with_parent() -> None:
    """preexec_fn of unshare: killed with the benchmark (it is single-threaded, so this is safe)."""
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


@dataclass(frozen=True)
class Proc:
    pid: int  # on the host
    ns_pid: int  # inside the namespace
    ppid: int  # on the host
    comm: str


@dataclass(frozen=True)
class Memory:
    pss: int  # bytes
    uss: int  # bytes: Private_Clean + Private_Dirty
    rss: int  # bytes


@dataclass(frozen=True)
class Cpu:
    ticks: int  # utime + stime, in clock ticks, of all threads
    run_ns: int  # schedstat: time spent on a CPU
    slices: int  # schedstat: times scheduled in (each wakeup is one)

    def __sub__(self, other: Cpu) -> Cpu:
        return Cpu(self.ticks - other.ticks, self.run_ns - other.run_ns, self.slices - other.slices)

    @property
    def ms(self) -> float:
        return self.ticks * 1000.0 / CLK_TCK


def read_proc(pid: int) -> Proc | None:
    """One process as seen from the host, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
        with open(f"/proc/{pid}/status") as f:
            status = f.read()
    except OSError:
        return None
    comm = stat[stat.index("(") + 1 : stat.rindex(")")]
    ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
    ns_pid = pid
    for line in status.splitlines():
        if line.startswith("NSpid:"):
            ns_pid = int(line.split()[-1])
            break
    return Proc(pid, ns_pid, ppid, comm)


def pid_namespace(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


def memory(pids: Iterable[int]) -> Memory:
    """PSS, USS and RSS summed over ``pids`` (from /proc/PID/smaps_rollup)."""
    fields = {"Pss": 0, "Private_Clean": 0, "Private_Dirty": 0, "Rss": 0}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    key, _, rest = line.partition(":")
                    if key in fields:
                        fields[key] += int(rest.split()[0]) * 1024
        except OSError:
            continue
    return Memory(fields["Pss"], fields["Private_Clean"] + fields["Private_Dirty"], fields["Rss"])


def cpu(pids: Iterable[int]) -> Cpu:
    """CPU used so far by ``pids`` and all their threads."""
    ticks = run_ns = slices = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
            fields = stat[stat.rindex(")") + 2 :].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    run, _wait, n = f.read().split()
                run_ns += int(run)
                slices += int(n)
        except (OSError, ValueError):
            continue
    return Cpu(ticks, run_ns, slices)


class Namespace:
    """``argv`` running as PID 1 of a new PID namespace; a context manager that always tears it
    down. ``start()`` returns the perf_counter time taken just before the launch."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], cwd: Path, log_path: Path):
        self.argv = [*UNSHARE, *argv]
        self.env = dict(env)
        self.cwd = cwd
        self.log_path = log_path
        self.unshare: subprocess.Popen[bytes] | None = None
        self.init_pid: int | None = None
        self._ns: str | None = None

    def __enter__(self) -> Namespace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()

    def start(self) -> float:
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child, closed just below
        try:
            t0 = time.perf_counter()
            self.unshare = subprocess.Popen(
                self.argv, env=self.env, cwd=self.cwd, stdin=subprocess.DEVNULL, stdout=log,
                stderr=log, preexec_fn=_die_with_parent,
            )
        finally:
            log.close()
        self.init_pid = self._find_init()
        self._ns = pid_namespace(self.init_pid)
        return t0

    def _find_init(self) -> int:
        assert self.unshare is not None
        deadline = time.monotonic() + INIT_APPEAR_TIMEOUT_S
        path = f"/proc/{self.unshare.pid}/task/{self.unshare.pid}/children"
        while time.monotonic() < deadline:
            try:
                with open(path) as f:
                    children = f.read().split()
            except OSError:
                children = []
            if children:
                return int(children[0])
            if self.unshare.poll() is not None:
                break
            time.sleep(0.0005)
        raise RuntimeError(f"no PID 1 appeared under {' '.join(self.argv)} (see {self.log_path})")

    def alive(self) -> bool:
        return self.unshare is not None and self.unshare.poll() is None

    def processes(self) -> list[Proc]:
        """Every process of the namespace, PID 1 first."""
        if self._ns is None:
            return []
        found = []
        for entry in os.scandir("/proc"):
            if entry.name.isdigit() and pid_namespace(int(entry.name)) == self._ns:
                proc = read_proc(int(entry.name))
                if proc is not None:
                    found.append(proc)
        return sorted(found, key=lambda p: p.ns_pid)

    def host_pid(self, ns_pid: int) -> int | None:
        for proc in self.processes():
            if proc.ns_pid == ns_pid:
                return proc.pid
        return None

    def signal_init(self, signum: int) -> None:
        if self.init_pid is not None:
            try:
                os.kill(self.init_pid, signum)
            except ProcessLookupError:
                pass

    def wait(self, timeout: float) -> bool:
        """Wait until the whole tree is gone: unshare returns once its PID 1 is reaped, which the
        kernel allows only after every other process of the namespace has died.

        Not ``Popen.wait(timeout)``: that polls with sleeps growing to 50 ms, which would round
        a shutdown time up by as much. A pidfd becomes readable the moment unshare exits."""
        assert self.unshare is not None
        if self.unshare.returncode is None:
            try:
                fd = os.pidfd_open(self.unshare.pid)
            except OSError:  # pidfds need Linux 5.3: fall back on a 1 ms poll
                deadline = time.monotonic() + timeout
                while self.unshare.poll() is None:
                    if time.monotonic() >= deadline:
                        return False
                    time.sleep(0.001)
                return True
            try:
                if not select.select([fd], [], [], timeout)[0]:
                    return False
            finally:
                os.close(fd)
        self.unshare.wait()
        return True

    def kill(self) -> None:
        if self.unshare is None:
            return
        self.signal_init(signal.SIGKILL)
        if not self.wait(TEARDOWN_TIMEOUT_S):
            self.unshare.kill()  # --kill-child: its PID 1 goes with it
            self.unshare.wait()
