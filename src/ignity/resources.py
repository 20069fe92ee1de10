"""What the process tree of each service costs (memory, CPU, fds, threads, processes), and what
ignity itself costs: the numbers of ``status --json`` and ``ignity metrics``.

Read only when a client asks, never on a timer. The trees of all services come from one pass
over ``/proc``: ``/proc/PID/stat`` (parent, session, CPU times, threads, resident pages) and the
entries of ``/proc/PID/fd``. That is the same source psutil reads, at a third of its cost per
process (measured: 500 processes in ~20 ms against ~95 ms with ``psutil.Process`` objects plus
``process_iter`` to find the parents), which keeps a scrape of 500 services inside 100 ms of CPU.
ignity's own numbers come from psutil, imported here on the first request only (start-up must
not pay for it).

Nothing here waits for or reaps a process (no ``psutil.Process.wait``, no ``wait_procs``): the
loop is the only reaper. A process that exits during the pass is simply not counted.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

from .record import Record

PROC = "/proc"
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
# fields of /proc/PID/stat after the ")" that ends the command name (proc(5) numbers - 3)
_PPID, _SESSION, _UTIME, _STIME, _THREADS, _RSS = 1, 3, 11, 12, 17, 21


class Usage(Record):
    """The resources of one process tree, summed (the ``resources`` object of status --json)."""

    __slots__ = ("cpu_system_seconds", "cpu_user_seconds", "open_fds", "processes", "rss_bytes", "threads")

    def __init__(self, *, rss_bytes: int = 0, cpu_user_seconds: float = 0.0, cpu_system_seconds: float = 0.0,
                 open_fds: int = 0, threads: int = 0, processes: int = 0):
        self._set(rss_bytes=rss_bytes, cpu_user_seconds=cpu_user_seconds, cpu_system_seconds=cpu_system_seconds,
                  open_fds=open_fds, threads=threads, processes=processes)

    def __add__(self, other: Usage) -> Usage:
        return Usage(rss_bytes=self.rss_bytes + other.rss_bytes,
                     cpu_user_seconds=self.cpu_user_seconds + other.cpu_user_seconds,
                     cpu_system_seconds=self.cpu_system_seconds + other.cpu_system_seconds,
                     open_fds=self.open_fds + other.open_fds, threads=self.threads + other.threads,
                     processes=self.processes + other.processes)

    def as_dict(self) -> dict:
        return {"rss_bytes": self.rss_bytes, "cpu_user_seconds": round(self.cpu_user_seconds, 2),
                "cpu_system_seconds": round(self.cpu_system_seconds, 2), "open_fds": self.open_fds,
                "threads": self.threads, "processes": self.processes}


NOTHING = Usage()


class _Proc:
    __slots__ = ("ppid", "session", "usage")

    def __init__(self, ppid: int, session: int, usage: Usage):
        self.ppid = ppid
        self.session = session
        self.usage = usage


def _count_fds(pid: str) -> int:
    try:
        return len(os.listdir(f"{PROC}/{pid}/fd"))
    except OSError:  # exited, a zombie, or another user's process while ignity is not root
        return 0


def _read_proc(pid: str) -> _Proc | None:
    try:
        with open(f"{PROC}/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None  # exited during the pass
    # the command name may hold spaces and parentheses: split after the last ")"
    fields = stat[stat.rfind(b")") + 2:].split()
    try:
        usage = Usage(rss_bytes=int(fields[_RSS]) * _PAGE_SIZE,
                      cpu_user_seconds=int(fields[_UTIME]) / _CLOCK_TICKS,
                      cpu_system_seconds=int(fields[_STIME]) / _CLOCK_TICKS,
                      open_fds=_count_fds(pid), threads=int(fields[_THREADS]), processes=1)
        return _Proc(int(fields[_PPID]), int(fields[_SESSION]), usage)
    except (IndexError, ValueError):
        return None


class TreeScan:
    """``of_trees`` in slices, for a caller that must not hold the loop for a whole pass (500
    services are ~1000 processes, ~30 ms): ``step(n)`` reads the next ``n`` processes and says
    whether the pass is done; ``result()`` then sums each service's tree."""

    def __init__(self, roots: Mapping[str, Iterable[int]]):
        self._owner: dict[int, str] = {pid: key for key, pids in roots.items() for pid in pids}
        self._keys = list(roots)
        self._pending = [name for name in os.listdir(PROC) if name.isdigit()] if self._owner else []
        self._procs: dict[int, _Proc] = {}

    def step(self, count: int) -> bool:
        for name in self._pending[-count:]:
            proc = _read_proc(name)
            if proc is not None:
                self._procs[int(name)] = proc
        del self._pending[-count:]
        return not self._pending

    def result(self) -> dict[str, Usage]:
        """Usage of each service's tree. A process belongs to a service when it is in the
        session of one of its roots (services start in their own session, so this keeps the
        daemons a service forks and orphans), or descends from one (a child that made its own
        session)."""
        owner, procs, me = self._owner, self._procs, os.getpid()
        totals = {key: NOTHING for key in self._keys}
        memo: dict[int, str | None] = {}

        def find(pid: int) -> str | None:
            chain = []
            key = None
            while pid > 1 and pid != me:
                if pid in owner:
                    key = owner[pid]
                    break
                if pid in memo:
                    key = memo[pid]
                    break
                proc = procs.get(pid)
                if proc is None:
                    break
                if proc.session in owner:
                    key = owner[proc.session]
                    break
                chain.append(pid)
                pid = proc.ppid
            for walked in chain:  # each process is walked once, whatever the depth of the tree
                memo[walked] = key
            return key

        for pid, proc in procs.items():
            key = find(pid)
            if key is not None:
                totals[key] = totals[key] + proc.usage
        return totals


def of_trees(roots: Mapping[str, Iterable[int]]) -> dict[str, Usage]:
    """Usage of each service's tree (``roots``: service name -> its session leaders: ``run``,
    ``finish``, a try of ``check``), in one pass; see TreeScan."""
    scan = TreeScan(roots)
    while not scan.step(1000):
        pass
    return scan.result()


_self = None


def of_ignity() -> Usage:
    """ignity's own process (not its children: they are the services')."""
    global _self
    try:
        import psutil  # here: only once a client asks for resources (start-up must not pay ~15 ms)

        if _self is None:
            _self = psutil.Process()
        with _self.oneshot():
            times = _self.cpu_times()
            return Usage(rss_bytes=_self.memory_info().rss, cpu_user_seconds=times.user,
                         cpu_system_seconds=times.system, open_fds=_self.num_fds(),
                         threads=_self.num_threads(), processes=1)
    except (ImportError, OSError):  # psutil missing, or no fd left to import it: /proc says the same
        proc = _read_proc(str(os.getpid()))
        return proc.usage if proc is not None else NOTHING
