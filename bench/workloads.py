"""The measurements. A *session* launches a supervisor with N services in a fresh namespace and
measures, in this order, on the same tree: boot, supervisor memory, restart after kill -9, and
graceful shutdown, which ends it. The *idle* phase runs every supervisor at once, each with the
largest N, and reads their CPU and system calls over one window (they are idle: they do not
disturb each other, and the window is paid once instead of once per tool). Namespaces are torn
down whatever happens (``Namespace`` is a context manager).

Every value goes into ``out`` as soon as it is known, so a session that fails half-way still
reports what it measured, with the error.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from markers import Markers
from nsproc import UNSHARE, Namespace, cpu, memory
from peers import PATH, Init, Supervisor, service_names

MIB = 1024 * 1024
# a service killed for the restart test has been up at least this long: every tool treats a
# death within about 1 s of the start as a failed start and throttles it (supervisord's
# startsecs, s6's and ignity's 1 s); this measures the restart of a service that was running
UP_FOR_S = 1.5
# after boot, before memory and idle are read: supervisord calls a program RUNNING after its
# startsecs (1 s), circus checks its watchers on a timer; let every tool reach its steady state
SETTLE_S = 1.2
RESTART_TIMEOUT_S = 10.0
# between the last restart and the shutdown: circus drops a SIGTERM that arrives while its
# periodic watcher check (which did the restart) is still running; a stop at a random moment
# would rarely hit that, one right after a restart nearly always does
QUIET_S = 0.5
STRACE_STOP_TIMEOUT_S = 30.0
# the age given to the generated tree (see _backdate)
BACKDATE_S = 60.0
# the scrape rows: scrapes of `ignity metrics` measured one by one, then kill -9s alternating
# without and during a scrape; ready-after (1 s) has passed before, so ignity is idle
SCRAPES = 10
SCRAPE_KILLS = 6
READY_AFTER_S = 1.0


@dataclass(frozen=True)
class Plan:
    sizes: tuple[int, ...]
    reps: tuple[int, ...]  # sessions per tool at each of sizes
    kills: int  # at most this many kill -9 per session, on distinct services...
    kill_budget_s: float  # ...and no new one once this long went into restarts of a tool at an N
    idle_s: float  # idle CPU window, at the largest N
    strace_s: float  # idle system call window, right after it
    init_runs: int  # runs of `/init true` per init
    graph_runs: int  # boots per shape at each N of the dependency rows (their 5 % target needs more than reps)
    boot_timeout_s: float
    # docker stop's default grace: a tree still there after it would be SIGKILLed by docker
    shutdown_timeout_s: float = 10.0


FULL = Plan(sizes=(1, 10, 100, 500), reps=(3, 3, 3, 2), kills=5, kill_budget_s=2.0, idle_s=20.0,
            strace_s=5.0, init_runs=20, graph_runs=9, boot_timeout_s=60.0)
QUICK = Plan(sizes=(1, 100), reps=(1, 1), kills=5, kill_budget_s=1.0, idle_s=5.0, strace_s=2.0,
             init_runs=10, graph_runs=1, boot_timeout_s=20.0)


class Failed(Exception):
    """A step that could not be measured; the message says why."""


# ---- supervisors --------------------------------------------------------------------------------
def _launch(stack: ExitStack, tool: Supervisor, n: int, root: Path) -> tuple[Namespace, Markers]:
    """Lay out N services for ``tool`` under ``root``; the namespace is not started yet."""
    markers_dir = root / "markers"
    tool.layout(root, markers_dir, n)
    _backdate(root)
    markers = stack.enter_context(Markers(markers_dir))
    ns = stack.enter_context(Namespace(tool.argv(root), tool.env(root), root, root / "tool.log"))
    return ns, markers


def session(tool: Supervisor, n: int, plan: Plan, root: Path, kill_budget_s: float,
            out: dict[str, Any]) -> None:
    """One launch of ``tool`` with N services; kills go on while ``kill_budget_s`` lasts."""
    with ExitStack() as stack:
        ns, markers = _launch(stack, tool, n, root)
        out["boot_ms"] = _boot(ns, markers, n, plan)
        time.sleep(SETTLE_S)
        own = [p.pid for p in ns.processes() if tool.is_own(p)]
        mem = memory(own)
        out.update(pss_mib=mem.pss / MIB, uss_mib=mem.uss / MIB, rss_mib=mem.rss / MIB, procs=len(own))
        if kill_budget_s > 0:
            _restarts(ns, markers, n, plan.kills, kill_budget_s, out.setdefault("restart_ms", []))
            time.sleep(QUIET_S)
        _shutdown(ns, markers.directory, plan.shutdown_timeout_s, out)


def boot_only(tool: Supervisor, n: int, plan: Plan, root: Path) -> tuple[float, float | None]:
    """Launch → all N up (ms), and the CPU time PID 1 had used by then (ms, schedstat; None
    when it cannot be read), then tear the namespace down (the dependency rows: a chain's
    graceful stop is one service at a time by design, and is not what they measure). The CPU
    figure is the supervisor's own work, which a shared machine's load does not inflate as it
    does the wall clock."""
    with ExitStack() as stack:
        ns, markers = _launch(stack, tool, n, root)
        boot_ms = _boot(ns, markers, n, plan)
        pid1 = next((p for p in ns.processes() if p.ns_pid == 1), None)
        return boot_ms, (cpu([pid1.pid]).run_ns / 1e6 if pid1 is not None else None)


def idle(tools: Sequence[Supervisor], n: int, plan: Plan, root: Path) -> list[dict[str, Any]]:
    """Every tool up with N services at once (launched together: boot is not measured here),
    then one window."""
    records = {t.name: {"tool": t.name, "n": n, "phase": "idle"} for t in tools}
    with ExitStack() as stack:
        launched = []
        for tool in tools:
            try:
                ns, markers = _launch(stack, tool, n, root / tool.name)
                ns.start()
                launched.append((tool, ns, markers))
            except (OSError, RuntimeError) as e:
                records[tool.name]["error"] = str(e)
        up = []
        for tool, ns, markers in launched:
            if markers.wait_count(".pid", n, plan.boot_timeout_s, ns.alive) is None:
                records[tool.name]["error"] = f"only {markers.count('.pid')}/{n} services came up"
            else:
                up.append((tool, ns))
        time.sleep(SETTLE_S)
        running = {tool.name: [p.pid for p in ns.processes() if tool.is_own(p)] for tool, ns in up}
        before = {name: cpu(pids) for name, pids in running.items()}
        time.sleep(plan.idle_s)
        for name, pids in running.items():
            used = cpu(pids) - before[name]
            records[name].update(idle_cpu_ms=used.ms, idle_run_ms=used.run_ns / 1e6, idle_wakeups=used.slices)
        if shutil.which("strace", path=PATH) is None:
            for name in running:
                records[name]["error"] = "no idle system calls: strace is not installed"
        else:
            for name, calls in strace_counts(running, plan.strace_s, root).items():
                records[name].update(idle_syscalls=sum(calls.values()), idle_syscalls_by_name=calls)
    return list(records.values())


def scrape(tool: Supervisor, n: int, plan: Plan, root: Path, out: dict[str, Any]) -> None:
    """ignity with N services: the CPU ignity spends on one `ignity metrics` (every service's
    process tree read from /proc, the exposition built), and how much later a service killed
    while a scrape is being served is back, against one killed while ignity is idle."""
    with ExitStack() as stack:
        ns, markers = _launch(stack, tool, n, root)
        out["boot_ms"] = _boot(ns, markers, n, plan)
        time.sleep(SETTLE_S + READY_AFTER_S)
        assert ns.init_pid is not None
        env = {**os.environ, "IGNITY_RUN_DIR": str(root / "run")}
        samples = []
        for _ in range(SCRAPES):
            before = cpu([ns.init_pid])
            r = subprocess.run([sys.executable, "-m", "ignity", "metrics"], env=env, capture_output=True,
                               text=True, timeout=30)
            used = cpu([ns.init_pid]) - before
            if r.returncode != 0 or r.stdout.count("ignity_service_up{") != n:
                raise Failed(f"scrape: ignity metrics exit {r.returncode}: {r.stderr.strip()[:200]}")
            samples.append(used.run_ns / 1e6)
        out["scrape_cpu_ms"] = samples
        quiet, during = out.setdefault("restart_quiet_ms", []), out.setdefault("restart_scraping_ms", [])
        names = service_names(n)
        control = root / "run" / "control"
        for i in range(min(SCRAPE_KILLS, n)):
            name = names[i * n // min(SCRAPE_KILLS, n)]
            if i % 2:
                during.append(_kill_and_time(ns, markers, name, lambda: _start_scrape(control), "scrape"))
            else:
                quiet.append(_kill_and_time(ns, markers, name, what="scrape"))


def _start_scrape(path: Path) -> Callable[[], None]:
    """The request `ignity metrics` sends, sent here so that the kill follows it within
    microseconds (a client process would still be importing Python); returns what reads the
    reply (not before the service is back: a client slow to read must not matter)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(path))
    sock.sendall(json.dumps({"v": 1, "cmd": "status", "names": [], "resources": True}).encode() + b"\n")
    time.sleep(0.002)  # ignity is woken and at work on it

    def read_reply() -> None:
        with sock:
            sock.settimeout(10)
            while sock.recv(1 << 16):
                pass

    return read_reply


def _backdate(root: Path) -> None:
    """Make the tree look as old as an image's: runsvdir holds back a scan for up to 1 s while its
    directory's mtime is in the current second (so as not to miss a change made in it)."""
    then = time.time() - BACKDATE_S
    for path in [root, *root.rglob("*")]:
        os.utime(path, (then, then), follow_symlinks=False)


def _boot(ns: Namespace, markers: Markers, n: int, plan: Plan) -> float:
    """Launch → every service's run has written its pid (ms)."""
    t0 = ns.start()
    t_up = markers.wait_count(".pid", n, plan.boot_timeout_s, ns.alive)
    if t_up is None:
        why = f"after {plan.boot_timeout_s:g} s" if ns.alive() else "when it exited"
        raise Failed(f"boot: {markers.count('.pid')}/{n} services up {why} (see {ns.log_path})")
    return (t_up - t0) * 1000


def strace_counts(pids: dict[str, list[int]], window_s: float, tmp: Path) -> dict[str, dict[str, int]]:
    """System calls made by each group of ``pids`` (and their threads) in the same ``window_s``:
    one ``strace -c -f`` per group, all attached at once.

    Attaching interrupts a blocking call, which the kernel then resumes as ``restart_syscall``:
    that one is ptrace's doing, not the tool's, and is left out."""
    tracers = {}
    try:
        for name, group in pids.items():
            argv = ["strace", "-c", "-f", "-qq", "-o", str(tmp / f"{name}.strace")]
            for pid in group:
                argv += ["-p", str(pid)]
            tracers[name] = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                             stderr=subprocess.DEVNULL)
        time.sleep(window_s)
        for tracer in tracers.values():
            tracer.send_signal(signal.SIGINT)
        counts = {}
        for name, tracer in tracers.items():
            tracer.wait(STRACE_STOP_TIMEOUT_S)
            log = tmp / f"{name}.strace"
            counts[name] = _parse_strace(log.read_text()) if log.exists() else {}
        return counts
    finally:
        for tracer in tracers.values():
            if tracer.poll() is None:
                tracer.kill()
                tracer.wait()


def _parse_strace(text: str) -> dict[str, int]:
    calls = {}
    for line in text.splitlines():
        fields = line.split()
        # "% time  seconds  usecs/call  calls  [errors]  syscall"
        if len(fields) >= 5 and fields[0][0].isdigit() and fields[-1] not in ("total", "restart_syscall"):
            calls[fields[-1]] = int(fields[3])
    return calls


def _restarts(ns: Namespace, markers: Markers, n: int, kills: int, budget_s: float,
              samples: list[float]) -> None:
    """kill -9 of a service that has been up for UP_FOR_S → its run has written its new pid. Up to
    ``kills`` services, spread over the N, while less than ``budget_s`` went into waiting for
    restarts (a supervisor that takes 1 s or 3.5 s to restart needs few samples to show it)."""
    names = service_names(n)
    count = min(kills, n)
    spent = 0.0
    for name in (names[i * n // count] for i in range(count)):
        if spent >= budget_s:
            break
        samples.append(_kill_and_time(ns, markers, name))
        spent += samples[-1] / 1000


def _kill_and_time(ns: Namespace, markers: Markers, name: str,
                   before_kill: Callable[[], Callable[[], None]] | None = None, what: str = "restart") -> float:
    """kill -9 of service ``name`` once it has been up UP_FOR_S → ms until its run has written its
    new pid; ``before_kill()`` runs right before the kill, and what it returns once it is back."""
    old = markers.pid(name)
    host_pid = ns.host_pid(old) if old is not None else None
    if host_pid is None:
        raise Failed(f"{what}: cannot find the process of {name} (pid file says {old})")
    time.sleep(max(0.0, markers.seen[f"{name}.pid"] + UP_FOR_S - time.perf_counter()))
    markers.drain()
    after = before_kill() if before_kill is not None else None
    t0 = time.perf_counter()
    os.kill(host_pid, signal.SIGKILL)
    t1 = markers.wait_write(f"{name}.pid", RESTART_TIMEOUT_S)
    if after is not None:
        after()
    if t1 is None:
        raise Failed(f"{what}: {name} not back {RESTART_TIMEOUT_S:g} s after kill -9")
    return (t1 - t0) * 1000


def _shutdown(ns: Namespace, markers_dir: Path, timeout_s: float, out: dict[str, Any]) -> None:
    """SIGTERM to PID 1 → the whole tree is gone; how many TERM handlers wrote their marker.
    A tree still there after ``timeout_s`` is recorded as such (and then SIGKILLed)."""
    t0 = time.perf_counter()
    ns.signal_init(signal.SIGTERM)
    gone = ns.wait(timeout_s)
    t1 = time.perf_counter()
    out["term_done"] = sum(1 for _ in markers_dir.glob("*.term"))
    if gone:
        out["shutdown_ms"] = (t1 - t0) * 1000
    else:
        out["shutdown_timeouts"] = 1


# ---- inits --------------------------------------------------------------------------------------
def init_true(tool: Init, run: int, root: Path) -> float:
    """Wall time of one ``unshare --fork --pid --mount-proc INIT true`` (ms), in a directory of
    its own, as a new container has a new (empty) runtime dir. run.py interleaves the tools run
    by run, so that ignity and the bare interpreter are measured side by side."""
    run_root = root / f"{tool.name}-{run}"
    run_root.mkdir()
    argv, env = [*UNSHARE, *tool.init_argv(run_root, ["true"])], tool.env(run_root)
    t0 = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=run_root, stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    t1 = time.perf_counter()
    if done.returncode != 0:
        raise Failed(f"/init true: {tool.name} exited {done.returncode}: "
                     f"{done.stderr.decode(errors='replace').strip()[-200:]}")
    return (t1 - t0) * 1000


# ---- ignity alone -------------------------------------------------------------------------------
ENV_VARS = 10_000
ENV_KILLS = 4


def envdir_restart(tool: Supervisor, root: Path, plan: Plan) -> list[float]:
    """ignity's CPU for one restart of a service with ENV_VARS variables in envs/ (ms of
    schedstat run time of PID 1, from the kill -9 to the new pid file): what reading and
    encoding the environment costs each spawn."""
    (root / "conf" / "envs").mkdir(parents=True, exist_ok=True)
    (root / "conf" / "envs" / "10-many").write_text(
        "".join(f"BENCH_VAR_{i:05d}=value-{i}\n" for i in range(ENV_VARS)))
    samples = []
    with ExitStack() as stack:
        ns, markers = _launch(stack, tool, 1, root)
        _boot(ns, markers, 1, plan)
        name = service_names(1)[0]
        for _ in range(ENV_KILLS):
            old = markers.pid(name)
            host_pid = ns.host_pid(old) if old is not None else None
            if host_pid is None:
                raise Failed(f"envdir restart: cannot find the process of {name}")
            time.sleep(max(0.0, markers.seen[f"{name}.pid"] + UP_FOR_S - time.perf_counter()))
            markers.drain()
            before = cpu([ns.init_pid])
            os.kill(host_pid, signal.SIGKILL)
            if markers.wait_write(f"{name}.pid", RESTART_TIMEOUT_S) is None:
                raise Failed(f"envdir restart: {name} not back {RESTART_TIMEOUT_S:g} s after kill -9")
            samples.append((cpu([ns.init_pid]).run_ns - before.run_ns) / 1e6)
    return samples
