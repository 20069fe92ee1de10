"""Turns the raw samples into the markdown table (median, min-max, ignity / best peer) and the
check of the project's targets. Pure functions over the JSON that run.py writes."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

DASH, TIMES = "\u2013", "\u00d7"  # en dash, multiplication sign
IGNITY = "ignity"
BASELINE = "(no init)"
BARE_PYTHON = "(python3 -I -S -c pass)"
ENVDIR_LABEL = "restart with 10 000 variables in envs/: ignity's CPU per restart (ms)"

Samples = dict[tuple[str, str, int], list[float]]  # (metric, tool, N) -> samples


@dataclass(frozen=True)
class Row:
    metric: str  # key in a session's record
    label: str
    unit: str
    ratio: bool = True


ROWS = (
    Row("boot_ms", "boot: launch → all N up", "ms"),
    Row("pss_mib", "supervisor memory, PSS", "MiB"),
    Row("uss_mib", "supervisor memory, USS", "MiB"),
    Row("restart_ms", "restart after kill -9", "ms"),
    Row("idle_cpu_ms", "idle CPU, utime+stime over {idle_s:g} s", "ms"),
    Row("idle_run_ms", "idle CPU, schedstat over {idle_s:g} s", "ms"),
    Row("idle_wakeups", "idle wakeups over {idle_s:g} s", ""),
    Row("idle_syscalls", "idle system calls over {strace_s:g} s", ""),
    Row("shutdown_ms", "graceful shutdown: SIGTERM → tree gone", "ms"),
    Row("term_done", "TERM handlers completed (of N)", "", ratio=False),
)


# counted, not shown as a row of their own
EXTRA_METRICS = ("shutdown_timeouts",)


def collect(result: dict[str, Any]) -> Samples:
    samples: Samples = {}
    for s in [*result["sessions"], *result.get("idle", [])]:
        for metric in [*(row.metric for row in ROWS), *EXTRA_METRICS]:
            value = s.get(metric)
            if value is None:
                continue
            values = value if isinstance(value, list) else [value]
            samples.setdefault((metric, s["tool"], s["n"]), []).extend(values)
    return samples


def median(values: Sequence[float] | None) -> float | None:
    return statistics.median(values) if values else None


def fmt(value: float) -> str:
    if value == int(value) and abs(value) >= 10:
        return f"{int(value)}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}".rstrip("0").rstrip(".") if value != int(value) else f"{int(value)}"


def cell(values: Sequence[float] | None) -> str:
    if not values:
        return "—"
    mid, lo, hi = statistics.median(values), min(values), max(values)
    if lo == hi:
        return fmt(mid)
    return f"{fmt(mid)} ({fmt(lo)}{DASH}{fmt(hi)})"


def ratio(mine: float | None, best: tuple[str, float] | None) -> str:
    if mine is None or best is None:
        return "—"
    name, value = best
    if value == 0:
        return f"= {name} (0)" if mine == 0 else f"∞ ({name}: 0)"
    return f"{mine / value:.2f}{TIMES} {name}"


def best_peer(samples: Samples, metric: str, n: int, tools: Sequence[str],
              qualifies: dict[str, bool]) -> tuple[str, float] | None:
    """The peer with the lowest median; for shutdown only peers whose every TERM handler ran."""
    found = [(median(samples.get((metric, t, n))), t) for t in tools if t != IGNITY and qualifies.get(t, True)]
    values = [(v, t) for v, t in found if v is not None]
    if not values:
        return None
    value, name = min(values)
    return name, value


def _all_handlers_done(samples: Samples, tool: str, n: int) -> bool:
    done = samples.get(("term_done", tool, n))
    return bool(done) and min(done) >= n


def table(result: dict[str, Any]) -> str:
    plan = result["plan"]
    samples = collect(result)
    tools = result["supervisors"]
    inits = [t for t in result["inits"] if t not in tools]
    header = ["workload", "N", *tools, *inits, "ignity ÷ best peer"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in ROWS:
        label = row.label.format(**plan) + (f" ({row.unit})" if row.unit else "")
        for n in plan["sizes"]:
            cells = [samples.get((row.metric, t, n)) for t in tools]
            timeouts = [samples.get(("shutdown_timeouts", t, n)) for t in tools] if row.metric == "shutdown_ms" else []
            if not any(cells) and not any(timeouts):
                continue
            qualifies = ({t: _all_handlers_done(samples, t, n) for t in tools}
                         if row.metric == "shutdown_ms" else {})
            best = best_peer(samples, row.metric, n, tools, qualifies) if row.ratio else None
            mine = median(samples.get((row.metric, IGNITY, n)))
            shown = [cell(c) for c in cells]
            if timeouts:
                shown = [_with_timeouts(text, late, plan["shutdown_timeout_s"])
                         for text, late in zip(shown, timeouts)]
            shown += ["" for _ in inits]
            lines.append(f"| {label} | {n} | " + " | ".join(shown) + f" | {ratio(mine, best) if row.ratio else ''} |")
    lines.append(_init_row(result, tools, inits))
    envdir = result.get("envdir_restart", {}).get("samples")
    if envdir:
        shown = [cell(envdir) if t == IGNITY else "" for t in tools] + ["" for _ in inits]
        lines.append(f"| {ENVDIR_LABEL} | 1 | " + " | ".join(shown) + " | |")
    return "\n".join(lines)


def _with_timeouts(text: str, timeouts: list[float] | None, limit_s: float) -> str:
    if not timeouts:
        return text
    late = f"> {limit_s:g} s"
    return late if text == "—" else f"{text}; {late} in {len(timeouts)} run(s)"


def _init_row(result: dict[str, Any], tools: Sequence[str], inits: Sequence[str]) -> str:
    runs = result["init_true"]
    shown = [cell(runs.get(t, {}).get("samples")) if t == IGNITY else "" for t in tools]
    shown += [cell(runs.get(t, {}).get("samples")) for t in inits]
    peers = [(median(runs[t]["samples"]), t) for t in inits if runs.get(t, {}).get("samples")]
    best = min(peers) if peers else None
    mine = median(runs.get(IGNITY, {}).get("samples"))
    return ("| `/init true` in a new PID namespace (ms) | — | " + " | ".join(shown)
            + f" | {ratio(mine, (best[1], best[0]) if best else None)} |")


# ---- targets ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Check:
    target: str
    measured: str
    ok: bool | None  # None: not measured


def targets(result: dict[str, Any]) -> list[Check]:
    s = collect(result)
    sizes = result["plan"]["sizes"]
    big = max(sizes)

    def med(metric: str, tool: str, n: int) -> float | None:
        return median(s.get((metric, tool, n)))

    checks = []
    for n in (100, 500):
        if n in sizes:
            mine, s6 = med("boot_ms", IGNITY, n), med("boot_ms", "s6", n)
            checks.append(_le(f"boot of {n} services ≤ s6's", mine, s6, "ms", "s6"))
    for n, limit in ((1, 12.0), (500, 16.0)):
        if n in sizes:
            checks.append(_le(f"supervisor PSS ≤ {limit:g} MiB at N={n}", med("pss_mib", IGNITY, n), limit, "MiB"))
    restarts = [v for n in sizes for v in s.get(("restart_ms", IGNITY, n), [])]
    checks.append(_le("restart after kill -9 ≤ 3 ms (median of all kills)", median(restarts), 3.0, "ms"))
    cpu, calls = med("idle_cpu_ms", IGNITY, big), med("idle_syscalls", IGNITY, big)
    checks.append(_le(f"zero CPU while idle at N={big}", cpu, 0.0, "ms"))
    checks.append(_le(f"zero system calls while idle at N={big}", calls, 0.0, ""))
    for n in sizes:
        mine, s6 = med("shutdown_ms", IGNITY, n), med("shutdown_ms", "s6", n)
        done = s.get(("term_done", IGNITY, n))
        check = _le(f"graceful shutdown ≤ s6's at N={n}, every TERM handler completed", mine, s6, "ms", "s6")
        all_done = bool(done) and min(done) >= n
        checks.append(Check(check.target, f"{check.measured}; handlers {fmt(min(done)) if done else '?'}/{n}",
                            None if check.ok is None else check.ok and all_done))
    checks += _graph_checks(result)
    checks += _scrape_checks(result)
    init = median(result["init_true"].get(IGNITY, {}).get("samples"))
    checks.append(_le("`/init true` ≤ 50 ms", init, 50.0, "ms"))
    bare = median(result["init_true"].get(BARE_PYTHON, {}).get("samples"))
    checks.append(_le_ratio(f"`/init true` ≤ 1.8 {TIMES} `python3 -I -S -c pass` (same run, side by side)",
                            init, bare, 1.8, "python3"))
    envdir = median(result.get("envdir_restart", {}).get("samples"))
    checks.append(_le("restart with 10 000 variables in envs/ ≤ 10 ms of ignity's CPU", envdir, 10.0, "ms"))
    return checks


GRAPH_SHAPES = (("none", "no dependencies"), ("chain", "a chain (each needs the one before)"),
                ("dag", "a wide DAG (5 layers, each service needs 2 of the layer before)"))
DAG_MAX_RATIO = 1.05  # a DAG must not cost more than ~5 % over no dependencies


def _graph_samples(result: dict[str, Any], key: str = "boot_ms") -> dict[tuple[str, int], list[float]]:
    out: dict[tuple[str, int], list[float]] = {}
    for g in result.get("graphs", []):
        if g.get(key) is not None:
            out.setdefault((g["shape"], g["n"]), []).append(g[key])
    return out


# the wall clock of a boot follows the machine's load; ignity's own CPU (PID 1) much less so
GRAPH_MEASURES = (("boot_ms", "ignity boot, launch → all N up, ms"),
                  ("boot_cpu_ms", "ignity CPU to boot (PID 1, launch → all N up), ms"))


def graphs_table(result: dict[str, Any]) -> str:
    """ignity's boot with dependencies.d/ between its services, against the same N without:
    wall clock, then the CPU PID 1 used to get there."""
    blocks = []
    for key, title in GRAPH_MEASURES:
        samples = _graph_samples(result, key)
        sizes = sorted({n for _, n in samples})
        if not sizes:
            continue
        lines = [f"| {title} | " + " | ".join(f"N={n}" for n in sizes) + " |", "|---|" + "---|" * len(sizes)]
        for shape, label in GRAPH_SHAPES:
            cells = []
            for n in sizes:
                mine, base = median(samples.get((shape, n))), median(samples.get(("none", n)))
                text = cell(samples.get((shape, n)))
                if shape != "none" and mine is not None and base:
                    text += f" ({mine / base:.2f}{TIMES})"
                cells.append(text)
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _graph_checks(result: dict[str, Any]) -> list[Check]:
    checks = []
    for key, what in (("boot_ms", "boot"), ("boot_cpu_ms", "ignity CPU to boot")):
        samples = _graph_samples(result, key)
        for n in sorted({n for _, n in samples}):
            base = median(samples.get(("none", n)))
            limit = base * DAG_MAX_RATIO if base is not None else None
            checks.append(_le(f"{what} of {n} services in a wide DAG ≤ {DAG_MAX_RATIO:g}{TIMES} none",
                              median(samples.get(("dag", n))), limit, "ms", f"{DAG_MAX_RATIO:g}{TIMES} none ="))
    return checks


def _le_ratio(target: str, mine: float | None, other: float | None, limit: float, name: str) -> Check:
    if mine is None or not other:
        return Check(target, "not measured", None)
    return Check(target, f"{mine / other:.2f}{TIMES} ({fmt(mine)} ms vs {name} {fmt(other)} ms)",
                 mine / other <= limit)


SCRAPE_CPU_MAX_MS = 100.0  # one scrape of 500 services
SCRAPE_DELAY_MAX_MS = 20.0  # a restart while a scrape is served, over one while idle


def scrapes_table(result: dict[str, Any]) -> str:
    """ignity's cost of `ignity metrics` and the restart latency it may add."""
    rows = [r for r in result.get("scrapes", []) if not r.get("error")]
    if not rows:
        return ""
    lines = ["| ignity, N services | " + " | ".join(f"N={r['n']}" for r in rows) + " |", "|---|" + "---|" * len(rows)]
    for key, label in (("scrape_cpu_ms", "ignity CPU per `ignity metrics` scrape, ms"),
                       ("restart_quiet_ms", "restart after kill -9, idle, ms"),
                       ("restart_scraping_ms", "restart after kill -9 during a scrape, ms")):
        lines.append(f"| {label} | " + " | ".join(cell(r.get(key)) for r in rows) + " |")
    return "\n".join(lines)


def _scrape_checks(result: dict[str, Any]) -> list[Check]:
    checks = []
    for r in result.get("scrapes", []):
        n = r["n"]
        checks.append(_le(f"a scrape of {n} services ≤ {SCRAPE_CPU_MAX_MS:g} ms of ignity CPU",
                          median(r.get("scrape_cpu_ms")), SCRAPE_CPU_MAX_MS, "ms"))
        quiet, during = median(r.get("restart_quiet_ms")), median(r.get("restart_scraping_ms"))
        delay = during - quiet if quiet is not None and during is not None else None
        checks.append(_le(f"a restart during a scrape of {n} services delayed ≤ {SCRAPE_DELAY_MAX_MS:g} ms",
                          delay, SCRAPE_DELAY_MAX_MS, "ms"))
    return checks


def _le(target: str, mine: float | None, limit: float | None, unit: str, name: str = "") -> Check:
    if mine is None or limit is None:
        return Check(target, "not measured", None)
    against = f" vs {name} {fmt(limit)} {unit}" if name else ""
    if name and limit:
        against += f" ({mine / limit:.2f}{TIMES})"
    return Check(target, f"{fmt(mine)} {unit}{against}".replace("  ", " ").strip(), mine <= limit)


def targets_table(result: dict[str, Any]) -> str:
    lines = ["| target | ignity | met |", "|---|---|---|"]
    for c in targets(result):
        lines.append(f"| {c.target} | {c.measured} | {'—' if c.ok is None else 'yes' if c.ok else '**no**'} |")
    return "\n".join(lines)


def _reps(plan: dict[str, Any]) -> str:
    reps = plan["reps"]
    if len(set(reps)) == 1:
        return f"{reps[0]} session(s) at each N"
    return ", ".join(f"{r} at N={n}" for n, r in zip(plan["sizes"], reps)) + " sessions"


def markdown(result: dict[str, Any]) -> str:
    meta, plan = result["meta"], result["plan"]
    versions = ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
    baseline = median(result["init_true"].get(BASELINE, {}).get("samples"))
    parts = [
        f"Run of {meta['date']} ({'quick' if meta['quick'] else 'full'}, {meta['seconds']:.0f} s) on "
        f"{meta['cpus']} CPUs, Linux {meta['kernel']}, Python {meta['python']}; {versions}.",
        f"Medians (min{DASH}max) over {_reps(plan)} per tool; restart: up to {plan['kills']} kills per "
        f"session; idle: all tools at once at N={max(plan['sizes'])}. Lower is better everywhere "
        "except TERM handlers.",
        "",
        table(result),
        "",
    ]
    if baseline is not None:
        parts.append(f"`true` alone as PID 1 of a new namespace (the floor of the last row): {fmt(baseline)} ms.")
    bare = median(result["init_true"].get(BARE_PYTHON, {}).get("samples"))
    if bare is not None:
        init = median(result["init_true"].get(IGNITY, {}).get("samples"))
        times = f"; ignity's `/init true` is {init / bare:.2f}{TIMES} that" if init else ""
        parts.append(f"`python3 -I -S -c pass` as PID 1, measured side by side with it: {fmt(bare)} ms{times}.")
    for tool, reason in result["skipped"].items():
        parts.append(f"Skipped {tool}: {reason}.")
    for s in [*result["sessions"], *result.get("idle", [])]:
        if s.get("error"):
            where = f"session {s['rep'] + 1}" if "rep" in s else "idle phase"
            parts.append(f"Error {s['tool']} N={s['n']} {where}: {s['error']}.")
    for tool, run in result["init_true"].items():
        if run.get("error"):
            parts.append(f"Error `/init true` {tool}: {run['error']}.")
    graphs = graphs_table(result)
    if graphs:
        parts += ["", "Dependencies (ignity alone; services ready as they start, so no readiness wait):", "", graphs]
    for g in result.get("graphs", []):
        if g.get("error"):
            parts.append(f"Error ignity {g['shape']} N={g['n']} session {g['rep'] + 1}: {g['error']}.")
    scrapes = scrapes_table(result)
    if scrapes:
        parts += ["", "Health and metrics (ignity alone, at the largest N):", "", scrapes]
    for r in result.get("scrapes", []):
        if r.get("error"):
            parts.append(f"Error ignity scrape N={r['n']}: {r['error']}.")
    parts += ["", "Targets:", "", targets_table(result), ""]
    return "\n".join(parts)
