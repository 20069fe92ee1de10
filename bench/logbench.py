"""Logging rows: ignity's built-in logger (a ``log/`` without ``run``: no logger process) against
s6-svscan + s6-supervise + s6-log on the same input, each as PID 1 of its own namespace.

- throughput: one service writes SIZE bytes of 100-byte lines (``yes | head -c``), TAI64N
  timestamps, rotation at 1 MB, 10 archives kept; from the moment the writers are let go until
  the last line (``END``) is in the log directory;
- 100 services x 10 MiB at once, the same way;
- CPU of the logging side per MiB logged (ignity: PID 1; s6: s6-log, s6-supervise, s6-svscan),
  over the same window;
- PSS at N=500 services, each with a rotated log, after the first line of each is written.

Both sides get the same knobs: ignity ``log/directory``, ``max-size`` 1000000, ``keep`` 10,
``timestamp`` tai64n, an empty ``prefix``; s6 ``log/run`` = ``s6-log t s1000000 n10 DIR``.
"""

from __future__ import annotations

import os
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from markers import Markers
from nsproc import Namespace, cpu, memory
from peers import IGNITY, PATH, Supervisor

MIB = 1024 * 1024
LINE = 100
ARCHIVE_LEN = 27
# the writer's processes and the services' own: never counted as the logging side
WORKLOAD_COMMS = frozenset({"run", "sleep", "yes", "head", "sh"})
END_TIMEOUT_S = 300.0
UP_TIMEOUT_S = 120.0
# the log directories are polled for END every POLL_S (times N/10 with many: the polling must not
# eat the CPU the loggers need, on a machine with few cores)
POLL_S = 0.005

# a writer: waits for the go file (so the supervisor's boot is not in the window), writes SIZE
# bytes of 100-byte lines and a last line END, then sleeps (no restart)
WRITER = """#!/bin/sh
echo $$ > {markers}/{name}.pid
while [ ! -e {go} ]; do sleep 0.01; done
yes {line} | head -c {size}
echo END
exec sleep 100000
"""
# a quiet service for the memory row: one line into its log, then waits
QUIET = """#!/bin/sh
echo "{name} started"
echo $$ > {markers}/{name}.pid
exec sleep 100000
"""


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


class Layout:
    """One tool's tree: N services with a log each (built-in for ignity, s6-log for s6)."""

    def __init__(self, tool: str, root: Path, n: int, script: str, **fmt: object):
        self.tool, self.root, self.n = tool, root, n
        self.markers = root / "markers"
        self.logs = [root / "logs" / f"svc{i:03d}" for i in range(n)]
        scan = root / ("conf/services" if tool == "ignity" else "services")
        for i, logdir in enumerate(self.logs):
            name = f"svc{i:03d}"
            svc = scan / name
            _write(svc / "run", script.format(markers=self.markers, name=name, go=root / "go", **fmt), 0o755)
            if tool == "ignity":
                for knob, value in (("directory", logdir), ("max-size", 1_000_000), ("keep", 10),
                                    ("timestamp", "tai64n"), ("prefix", "")):
                    _write(svc / "log" / knob, f"{value}\n" if knob != "prefix" else "")
            else:
                _write(svc / "log" / "run", f"#!/bin/sh\nexec s6-log t s1000000 n10 {logdir}\n", 0o755)
        (root / "logs").mkdir(exist_ok=True)

    def argv(self) -> list[str]:
        if self.tool == "ignity":
            return IGNITY.argv(self.root)
        return ["s6-svscan", str(self.root / "services")]

    def env(self) -> dict[str, str]:
        if self.tool == "ignity":
            return IGNITY.env(self.root)
        return {"PATH": PATH, "LANG": "C.UTF-8", "HOME": str(self.root)}


def _ended(logdir: Path) -> bool:
    """Whether the last line END is in the log (in current, or in the newest archive right after
    a rotation)."""
    try:
        names = os.listdir(logdir)
    except FileNotFoundError:
        return False
    archives = sorted(n for n in names if len(n) == ARCHIVE_LEN and n.startswith("@"))
    for name in ("current", *archives[-1:]):
        try:
            with open(logdir / name, "rb") as f:
                f.seek(max(0, os.fstat(f.fileno()).st_size - 64))
                tail = f.read()
        except OSError:
            continue
        if tail:
            return tail.endswith((b" END\n", b"\nEND\n"))
    return False


def _own(ns: Namespace) -> list[int]:
    return [p.pid for p in ns.processes() if p.comm not in WORKLOAD_COMMS]


def throughput(tool: str, n: int, size: int, root: Path) -> dict[str, Any]:
    """N services write ``size`` bytes each at once; seconds, MB/s and logging CPU per MiB."""
    out: dict[str, Any] = {"tool": tool, "n": n, "mib_each": size / MIB}
    size -= size % LINE  # whole lines only: END must be a line of its own
    layout = Layout(tool, root, n, WRITER, line="0" * (LINE - 1), size=size)
    with ExitStack() as stack:
        markers = stack.enter_context(Markers(layout.markers))
        ns = stack.enter_context(Namespace(layout.argv(), layout.env(), root, root / "tool.log"))
        ns.start()
        if markers.wait_count(".pid", n, UP_TIMEOUT_S, ns.alive) is None:
            out["error"] = f"only {markers.count('.pid')}/{n} writers came up (see {root / 'tool.log'})"
            return out
        time.sleep(0.5)
        own = _own(ns)
        before = cpu(own)
        t0 = time.perf_counter()
        (root / "go").touch()
        pending = set(range(n))
        deadline = t0 + END_TIMEOUT_S
        while pending and time.perf_counter() < deadline:
            pending = {i for i in pending if not _ended(layout.logs[i])}
            if pending:
                time.sleep(POLL_S * max(1, n // 10))
        elapsed = time.perf_counter() - t0
        used = cpu(_own(ns)) - before
        if pending:
            out["error"] = f"{len(pending)}/{n} logs did not get their last line in {END_TIMEOUT_S:g} s"
            return out
        total_mib = n * size / MIB
        out.update(seconds=elapsed, mib_per_s=total_mib / elapsed, cpu_ms=used.ms,
                   cpu_ms_per_mib=used.ms / total_mib, procs=len(own))
    return out


def pss(tool: str, n: int, root: Path) -> dict[str, Any]:
    """N quiet services, each with its log: PSS of everything but the services' own processes."""
    out: dict[str, Any] = {"tool": tool, "n": n}
    layout = Layout(tool, root, n, QUIET)
    with ExitStack() as stack:
        markers = stack.enter_context(Markers(layout.markers))
        ns = stack.enter_context(Namespace(layout.argv(), layout.env(), root, root / "tool.log"))
        ns.start()
        if markers.wait_count(".pid", n, UP_TIMEOUT_S, ns.alive) is None:
            out["error"] = f"only {markers.count('.pid')}/{n} services came up"
            return out
        deadline = time.monotonic() + UP_TIMEOUT_S
        while time.monotonic() < deadline and not all((d / "current").exists() and (d / "current").stat().st_size
                                                      for d in layout.logs):
            time.sleep(0.05)
        time.sleep(1.2)
        own = _own(ns)
        mem = memory(own)
        out.update(pss_mib=mem.pss / MIB, uss_mib=mem.uss / MIB, procs=len(own))
    return out


def run(tools: list[Supervisor], quick: bool, root: Path, say) -> dict[str, Any]:
    """Every logging row for ``tools`` (ignity and s6), interleaved tool by tool."""
    names = [t.name for t in tools if t.name in ("ignity", "s6")]
    size = (256 if quick else 1024) * MIB
    records: list[dict[str, Any]] = []
    plan = [("throughput", 1, size), ("throughput", 100, 10 * MIB), ("pss", 500, 0)]
    for kind, n, each in plan:
        for name in names:
            where = root / f"{kind}-{name}-{n}"
            where.mkdir(parents=True)
            try:
                rec = throughput(name, n, each, where) if kind == "throughput" else pss(name, n, where)
            except (OSError, RuntimeError) as e:
                rec = {"tool": name, "n": n, "error": str(e)}
            rec["row"] = kind
            records.append(rec)
            say(f"logging {kind} {name} N={n}: " + ", ".join(
                f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in rec.items()
                if k not in ("tool", "n", "row")))
    return {"size_mib": size / MIB, "records": records}


def markdown(result: dict[str, Any]) -> str:
    recs = result["records"]

    def get(row: str, tool: str, n: int, key: str) -> float | None:
        for r in recs:
            if (r["row"], r["tool"], r["n"]) == (row, tool, n) and key in r:
                return r[key]
        return None

    def cell(v: float | None, digits: int = 1) -> str:
        return "—" if v is None else f"{v:.{digits}f}"

    def ratio(a: float | None, b: float | None) -> str:
        return "—" if a is None or not b else f"{a / b:.2f}"

    size = result["size_mib"]
    rows = [
        ("throughput", 1, "mib_per_s", f"1 service x {size:g} MiB, MiB/s (higher is better)", 0),
        ("throughput", 1, "cpu_ms_per_mib", "  CPU of the logging side per MiB, ms", 2),
        ("throughput", 100, "mib_per_s", "100 services x 10 MiB at once, MiB/s (higher is better)", 0),
        ("throughput", 100, "seconds", "  wall time, s", 2),
        ("throughput", 100, "cpu_ms_per_mib", "  CPU of the logging side per MiB, ms", 2),
        ("pss", 500, "pss_mib", "500 services with a rotated log, PSS of everything but the services, MiB", 1),
        ("pss", 500, "procs", "  processes counted", 0),
    ]
    lines = ["| logging (100-byte lines, TAI64N, rotation at 1 MB, 10 kept) | ignity (built-in) | "
             "s6 (s6-log) | ignity / s6 |", "|---|---:|---:|---:|"]
    for row, n, key, label, digits in rows:
        mine, theirs = get(row, "ignity", n, key), get(row, "s6", n, key)
        lines.append(f"| {label} | {cell(mine, digits)} | {cell(theirs, digits)} | {ratio(mine, theirs)} |")
    errors = [f"Error {r['row']} {r['tool']} N={r['n']}: {r['error']}." for r in recs if r.get("error")]
    return "\n".join([*lines, "", *errors])
