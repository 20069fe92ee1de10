"""ignity's own integration harness: `ignity init [CMD...]` as the real PID 1 of a fresh PID
namespace, looked at from outside the way `docker` would.

A test gets a `Container` (the `ct` fixture of tests/conftest.py), writes the configuration tree
under `ct.conf` (`ct.envfile`, `ct.init`, `ct.service`, `ct.finalize`), starts it with
`ct.start(CMD...)` and observes:

- `ct.wait()`: the container's exit status;
- `ct.stdout`, `ct.stderr`: what PID 1 and its children wrote (files, so nothing blocks);
- marker files the scripts write under `ct.out` (`ct.read`, `ct.lines`, `ct.wait_file`);
- `ct.procs()`, `ct.zombies()`: the namespace's processes, from the host's /proc;
- `ct.ctl(ARGS...)`: `python -m ignity ARGS` run inside the namespace (like `docker exec`), so
  pids in replies and in `ignity svc` signals are the namespace's.

How it is built: `unshare --fork --pid --mount-proc --kill-child python -m ignity init ...`. unshare
forks the namespace's PID 1 and waits for it, so unshare's exit status is the container's; it runs in
its own session so a terminal's signals never reach it, and `--kill-child` takes the namespace down if
pytest dies. Signals go to PID 1 itself (found as unshare's only child), never to unshare.

Every wait is bounded (BOOT_S, EXIT_S or the test's own bound) and fails the test with the container's
stderr; teardown SIGKILLs PID 1, which kills everything in the namespace.
"""

from __future__ import annotations

import glob
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

PY = sys.executable
# the venv's bin dir (not resolved: sys.executable may be a symlink out of the venv), where pip put the
# console scripts `ignity`, `with-env`, `with-contenv`, `preboot`
VENV_BIN = str(Path(sys.executable).parent)
STD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # SPEC §3 stage 1.1
UNSHARE = shutil.which("unshare") or "unshare"
NSENTER = shutil.which("nsenter") or "nsenter"
CONF_DIRS = ("envs", "perms", "init", "services", "finalize")

# Upper bounds in seconds: they only decide how long a broken ignity makes a test wait before failing.
BOOT_S = 10.0
EXIT_S = 15.0
CTL_S = 20.0

# syscall number of read(2), for /proc/PID/syscall (the logger test kills a logger only while it is
# blocked reading its stdin)
READ_SYSCALL = {"x86_64": 0, "aarch64": 63, "arm64": 63}.get(platform.machine())


def sh(body: str) -> str:
    """A /bin/sh script from an indented body."""
    return "#!/bin/sh\n" + textwrap.dedent(body).lstrip("\n")


def py(body: str) -> str:
    """A script for the interpreter running the tests, from an indented body."""
    return f"#!{PY}\n" + textwrap.dedent(body).lstrip("\n")


def wait_for(pred: Callable[[], object], timeout: float, what: str, interval: float = 0.01,
             diag: Callable[[], str] | None = None):
    """Poll pred() until it returns something truthy and return that; fail the test after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() >= deadline:
            extra = f"\n{diag()}" if diag else ""
            pytest.fail(f"timed out after {timeout:.1f} s waiting for {what}{extra}", pytrace=False)
        time.sleep(interval)


def status_to_code(rc: int) -> int:
    """Popen's returncode as a shell would show it: killed by signal N -> 128+N."""
    return 128 - rc if rc < 0 else rc


@dataclass
class Proc:
    """One process of a namespace. pid, ppid, pgrp and sid are host pids; nspid is the pid inside."""

    pid: int
    nspid: int
    ppid: int
    state: str
    pgrp: int
    sid: int
    uid: int
    sigblk: int
    sigign: int
    sigcgt: int
    cmd: list[str]

    @property
    def cmdline(self) -> str:
        return " ".join(self.cmd)


def read_proc(pid: int) -> Proc | None:
    """Proc for a host pid, or None when it is gone (or went while being read)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
        with open(f"/proc/{pid}/status") as f:
            status = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except (OSError, ValueError):
        return None
    # the command name in parentheses may itself hold spaces or parentheses
    fields = stat[stat.rindex(")") + 2:].split()
    nspids = status.get("NSpid", str(pid)).split()
    return Proc(pid=pid, nspid=int(nspids[-1]), ppid=int(fields[1]), state=fields[0],
                pgrp=int(fields[2]), sid=int(fields[3]), uid=int(status["Uid"].split()[0]),
                sigblk=int(status["SigBlk"], 16), sigign=int(status["SigIgn"], 16),
                sigcgt=int(status["SigCgt"], 16), cmd=cmd)


def sig_bit(sig: int) -> int:
    return 1 << (int(sig) - 1)


def kill_pid(pid: int, sig: int) -> None:
    """os.kill on one real process only (never 0, -1, a group or ourselves); gone is fine."""
    if pid <= 1 or pid == os.getpid():
        raise ValueError(f"refusing to signal pid {pid}")
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


class Container:
    """One configuration tree, one runtime dir, and one run of `ignity init` at a time."""

    def __init__(self, base: Path):
        self.base = Path(base)
        self.conf = self.base / "conf"
        self.run_dir = self.base / "run"
        self.out = self.base / "out"  # marker files written by the test's scripts
        for d in CONF_DIRS:
            (self.conf / d).mkdir(parents=True, exist_ok=True)
        self.out.mkdir(exist_ok=True)
        self.popen: subprocess.Popen | None = None
        self.pid1 = 0  # host pid of the namespace's PID 1
        self.ns = ""   # the namespace, as readlink /proc/PID/ns/pid shows it
        self.rc: int | None = None
        self._booted = False  # the control socket has answered once in this run
        self._files: list = []

    @classmethod
    def create(cls) -> Container:
        # not pytest's tmp_path: its /tmp/pytest-of-root is 0700, and the control socket test runs
        # the client as another user, who must be stopped by the socket, not by a parent directory
        base = tempfile.mkdtemp(prefix="ignity-it-")
        os.chmod(base, 0o755)
        return cls(Path(base))

    # ---- the configuration tree ---------------------------------------------------------------
    def write(self, rel: str, text: str = "", mode: int = 0o644) -> Path:
        path = self.conf / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(mode)
        return path

    def script(self, rel: str, body: str, mode: int = 0o755) -> Path:
        """An executable script; a body without `#!` is a /bin/sh script."""
        return self.write(rel, body if body.startswith("#!") else sh(body), mode)

    def init(self, name: str, body: str, mode: int = 0o755) -> Path:
        return self.script(f"init/{name}", body, mode)

    def finalize(self, name: str, body: str, mode: int = 0o755) -> Path:
        return self.script(f"finalize/{name}", body, mode)

    def envfile(self, name: str, text: str) -> Path:
        return self.write(f"envs/{name}", textwrap.dedent(text).lstrip("\n"))

    def service(self, name: str, run: str | None = None, *, finish: str | None = None,
                log: str | None = None, run_mode: int = 0o755, **files) -> Path:
        """services/NAME with `run` (and `finish`, `log/run`); each other keyword is a file of the
        service dir, `_` spelled `-`: `down=True` (empty file), `notification_fd=3`, ..."""
        if run is not None:
            self.script(f"services/{name}/run", run, run_mode)
        if finish is not None:
            self.script(f"services/{name}/finish", finish)
        if log is not None:
            self.script(f"services/{name}/log/run", log)
        for key, value in files.items():
            self.write(f"services/{name}/{key.replace('_', '-')}", "" if value is True else f"{value}\n")
        return self.conf / "services" / name

    def state_dir(self, name: str) -> Path:
        """A service's live copy, its working directory (SPEC §2, §11.4)."""
        return self.run_dir / "services-state" / name

    @property
    def socket(self) -> Path:
        return self.run_dir / "control"  # SPEC §11.1

    # ---- marker files ------------------------------------------------------------------------
    def read(self, name: str) -> str:
        try:
            return (self.out / name).read_text()
        except FileNotFoundError:
            return ""

    def lines(self, name: str) -> list[str]:
        return self.read(name).splitlines()

    def wait_file(self, name: str, timeout: float = BOOT_S) -> str:
        """Wait until out/NAME exists; its content."""
        wait_for(lambda: (self.out / name).exists(), timeout, f"marker file {name}", diag=self.diag)
        return self.read(name)

    def wait_lines(self, name: str, n: int, timeout: float = BOOT_S) -> list[str]:
        """Wait until out/NAME has at least n lines; its lines."""
        wait_for(lambda: len(self.lines(name)) >= n, timeout, f"{n} lines in {name}", diag=self.diag)
        return self.lines(name)

    # ---- running it --------------------------------------------------------------------------
    def env(self, extra: dict[str, str | None] | None = None) -> dict[str, str]:
        """What a container starts with: a clean environment, not the test runner's. The venv's
        bin dir leads PATH so that scripts find `ignity` and `with-env`. A None value unsets."""
        env = {
            "PATH": f"{VENV_BIN}:{STD_PATH}",
            "HOME": "/root",
            "IGNITY_CONF_DIR": str(self.conf),
            "IGNITY_RUN_DIR": str(self.run_dir),
        }
        for key, value in (extra or {}).items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        return env

    def start(self, *cmd: str, env: dict[str, str | None] | None = None, wrapper: str | None = None,
              cwd: str | Path | None = None) -> Container:
        """Start `ignity init CMD...` as PID 1 of a new PID + mount namespace.

        wrapper: a /bin/sh snippet run as PID 1 instead, with ignity's argv as "$@" (for instance
        `mount ... && exec "$@"` to prepare the mount namespace first, or `"$@"; exit $?` to run
        ignity as PID 2, not PID 1)."""
        assert self.popen is None or self.popen.poll() is not None, "one run at a time"
        self.rc = None
        self._booted = False
        argv = [PY, "-m", "ignity", "init", *cmd]
        if wrapper is not None:
            argv = ["/bin/sh", "-c", wrapper, "sh", *argv]
        out = open(self.base / "stdout", "wb")  # noqa: SIM115 - closed in close()
        err = open(self.base / "stderr", "wb")  # noqa: SIM115
        self._files += [out, err]
        self.popen = subprocess.Popen(
            [UNSHARE, "--fork", "--pid", "--mount-proc", "--kill-child", *argv],
            stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=self.env(env),
            cwd=str(cwd or self.base), start_new_session=True)
        self.pid1 = wait_for(self._find_pid1, BOOT_S, "the namespace's PID 1", interval=0.002,
                             diag=self.diag)
        if self.pid1 > 0:
            try:
                self.ns = os.readlink(f"/proc/{self.pid1}/ns/pid")
            except OSError:
                self.ns = ""
        return self

    def _find_pid1(self) -> int:
        """unshare's only child (the namespace's PID 1), or -1 when unshare already exited."""
        assert self.popen is not None
        for path in glob.glob(f"/proc/{self.popen.pid}/task/*/children"):
            try:
                with open(path) as f:
                    children = f.read().split()
            except OSError:
                continue
            if children:
                return int(children[0])
        return -1 if self.popen.poll() is not None else 0

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def wait(self, timeout: float = EXIT_S) -> int:
        """The container's exit status (what `docker run` would return)."""
        assert self.popen is not None, "not started"
        try:
            rc = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"container still running after {timeout:.1f} s\n{self.diag()}", pytrace=False)
        # unshare 2.38 reports a PID 1 killed by a signal badly (exit 0 or 1 with "unshare: ..." on
        # stderr); ignity never dies by a signal except our teardown SIGKILL, so flag that case.
        if "unshare: " in self.stderr:
            pytest.fail(f"PID 1 died abnormally (unshare reported it)\n{self.diag()}", pytrace=False)
        self.rc = status_to_code(rc)
        return self.rc

    def wait_handler(self, sig: int, pid: int = 0, timeout: float = BOOT_S) -> None:
        """Wait until PID 1 (or pid) catches sig: PID 1 drops any signal it has no handler for, so
        a signal sent before ignity installed its handlers would be lost."""
        pid = pid or self.pid1
        # Python itself catches SIGINT (KeyboardInterrupt) from its start, before ignity has run a
        # line: SIGTERM, which Python leaves alone, tells that ignity's own handlers are in place.
        bits = sig_bit(sig) | sig_bit(signal.SIGTERM)

        def caught() -> bool:
            p = read_proc(pid)
            return p is None or p.sigcgt & bits == bits

        wait_for(caught, timeout, f"pid {pid} to catch {signal.Signals(sig).name}", diag=self.diag)

    def send_signal(self, sig: int, require_handler: bool = True) -> None:
        """Send sig to PID 1 (as `docker kill -s`)."""
        assert self.pid1 > 0, "no PID 1"
        if require_handler:
            self.wait_handler(sig)
        kill_pid(self.pid1, sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = EXIT_S) -> int:
        """`docker stop`: sig to PID 1, then its exit status."""
        self.send_signal(sig)
        return self.wait(timeout)

    def close(self) -> None:
        """Teardown: SIGKILL PID 1 (the kernel then kills the whole namespace), reap unshare."""
        if self.popen is not None and self.popen.poll() is None:
            if self.pid1 > 0:
                kill_pid(self.pid1, signal.SIGKILL)
            else:
                self.popen.kill()
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
        for f in self._files:
            f.close()
        self._files = []
        if not os.environ.get("IGNITY_IT_KEEP"):
            shutil.rmtree(self.base, ignore_errors=True)

    # ---- output ------------------------------------------------------------------------------
    def _output(self, name: str) -> str:
        try:
            return (self.base / name).read_bytes().decode(errors="replace")
        except FileNotFoundError:
            return ""

    @property
    def stdout(self) -> str:
        return self._output("stdout")

    @property
    def stderr(self) -> str:
        return self._output("stderr")

    def diag(self) -> str:
        """What to show when an assertion fails: the status and both outputs (tails)."""
        return (f"rc={self.rc} running={self.running}\n--- stderr ---\n{self.stderr[-4000:]}"
                f"\n--- stdout ---\n{self.stdout[-2000:]}")

    # ---- the namespace seen from /proc -------------------------------------------------------
    def procs(self) -> list[Proc]:
        """Every process of the namespace, PID 1 included (zombies too)."""
        if not self.ns:
            return []
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                if os.readlink(f"/proc/{entry}/ns/pid") != self.ns:
                    continue
            except OSError:
                continue
            p = read_proc(int(entry))
            if p is not None:
                found.append(p)
        return found

    def zombies(self) -> list[Proc]:
        return [p for p in self.procs() if p.state == "Z"]

    def proc_by_nspid(self, nspid: int) -> Proc | None:
        return next((p for p in self.procs() if p.nspid == nspid), None)

    # ---- inside the container ----------------------------------------------------------------
    def exec(self, *argv: str, env: dict[str, str | None] | None = None, user: int | None = None,
             timeout: float = CTL_S) -> subprocess.CompletedProcess:
        """Run argv inside the namespace (PID + mount), like `docker exec`; user: uid=gid to run as."""
        assert self.pid1 > 0, "no PID 1"
        who = ["-S", str(user), "-G", str(user)] if user is not None else []
        base_env = {"PATH": f"{VENV_BIN}:{STD_PATH}", "HOME": "/root",
                    "IGNITY_CONF_DIR": str(self.conf), "IGNITY_RUN_DIR": str(self.run_dir)}
        for key, value in (env or {}).items():
            if value is None:
                base_env.pop(key, None)
            else:
                base_env[key] = value
        try:
            return subprocess.run([NSENTER, "-t", str(self.pid1), "-p", "-m", *who, "--", *argv],
                                  stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                  env=base_env, cwd="/", timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{' '.join(argv)} inside the container took over {timeout} s\n{self.diag()}",
                        pytrace=False)

    def ctl(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        """`ignity ARGS...` inside the container."""
        return self.exec(PY, "-m", "ignity", *args, **kwargs)

    def status(self, *names: str) -> dict[str, dict]:
        """`ignity status --json`, as {name: service}."""
        r = self.ctl("status", "--json", *names)
        assert r.returncode == 0, f"ignity status --json: rc={r.returncode} {r.stderr}\n{self.diag()}"
        return {s["name"]: s for s in json.loads(r.stdout)["services"]}

    def wait_up(self, *names: str, ready: bool = False, timeout_ms: int = 10000) -> None:
        """`ignity wait -u` (or -U) inside the container, which must succeed."""
        self.wait_socket()
        r = self.ctl("wait", "-U" if ready else "-u", "-t", str(timeout_ms), *names,
                     timeout=timeout_ms / 1000 + CTL_S)
        assert r.returncode == 0, f"ignity wait: rc={r.returncode} {r.stderr}\n{self.diag()}"

    def wait_socket(self, timeout: float = BOOT_S) -> None:
        """Wait until ignity answers on its control socket (boot reached stage 2.3)."""
        if self._booted:
            return

        def answers() -> bool:
            if not self.socket.exists():
                return not self.running  # stop polling: wait_for fails below if it exited
            return self.ctl("status").returncode == 0

        wait_for(answers, timeout, "the control socket", interval=0.05, diag=self.diag)
        assert self.running, f"the container exited during boot\n{self.diag()}"
        self._booted = True

    def ignity_proc(self) -> Proc:
        """The `ignity init` process of the namespace (PID 1, unless started under a wrapper)."""
        for p in self.procs():
            if p.cmd[1:4] == ["-m", "ignity", "init"]:
                return p
        pytest.fail(f"no ignity process in the namespace\n{self.diag()}", pytrace=False)


def syscalls_while_idle(pid: int, seconds: float = 2.0) -> tuple[list[str], str]:
    """`strace -c -f -p PID` for `seconds`: the lines of its table naming a system call (none for
    an idle ignity), and the whole table for the failure message."""
    trace = subprocess.run(["timeout", "-s", "INT", str(seconds), "strace", "-f", "-qq", "-c", "-p", str(pid)],
                           capture_output=True, text=True, timeout=30)
    calls = [line for line in trace.stderr.splitlines() if line.strip() and line.split()[-1].isidentifier()
             and not line.startswith(("%", "-", "total"))]
    return calls, trace.stderr


def write_envdir(path: Path, files: dict[str, bytes]) -> None:
    """An envdir by hand (for with-env without a running container)."""
    path.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (path / name).write_bytes(data)


ENV_DUMP = [PY, "-c", "import json, os; print(json.dumps(dict(os.environ)))"]


def dumped_env(text: str) -> dict[str, str]:
    """The environment ENV_DUMP printed (the last JSON line of the output)."""
    for line in reversed(text.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise AssertionError(f"no environment dump in output: {text[-2000:]!r}")
