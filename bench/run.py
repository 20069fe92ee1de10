"""ignity's benchmark against s6, runit, supervisord, circus, tini and dumb-init: `task bench`.

Installs the peers that are missing (or skips them with the reason), runs every supervisor as
PID 1 of its own PID namespace with N services, in interleaved order (rep → N → tool, so that a
noisy moment of the machine does not land on one tool), then times `/init true`. Prints the
table and writes bench/results/{latest,quick}.{json,md}. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, NoReturn

import install
import logbench
import report
import workloads
from peers import BARE_PYTHON, BASELINE_INIT, GRAPHS, IGNITY, INITS, SUPERVISORS, Init, Supervisor, Tool

RESULTS = Path(__file__).resolve().parent / "results"


def _say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def _interrupted(signum: int, _frame: object) -> NoReturn:
    # SIGTERM goes through the same unwinding as ^C: every namespace is torn down on the way out
    raise KeyboardInterrupt(f"signal {signum}")


PHASES = ("sessions", "idle", "graphs", "envdir", "scrape", "init", "logging")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="task bench --", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="N in 1, 100, one session each: under 90 s")
    p.add_argument("--tools", help="comma-separated subset, e.g. ignity,s6")
    p.add_argument("--sizes", help="comma-separated N values (default 1,10,100,500; quick 1,100)")
    p.add_argument("--reps", type=int, help="sessions per tool and N (default 3, 2 at N=500; quick 1)")
    p.add_argument("--no-install", action="store_true", help="skip what is missing instead of installing it")
    p.add_argument("--output", help="results name under bench/results/ (default latest, quick with --quick)")
    p.add_argument("--only", choices=PHASES, help="run only this phase (e.g. --only scrape --sizes 500)")
    p.add_argument("--logging", action="store_true",
                   help="only the logging rows, ignity's built-in logger against s6-log, into results/logging.*")
    return p.parse_args(argv)


def make_plan(args: argparse.Namespace) -> workloads.Plan:
    plan = workloads.QUICK if args.quick else workloads.FULL
    if args.sizes:
        plan = replace(plan, sizes=tuple(int(n) for n in args.sizes.split(",")))
    if args.reps or args.sizes:
        reps = args.reps or max(plan.reps)
        plan = replace(plan, reps=tuple(reps for _ in plan.sizes))
    return plan


def choose(tools: tuple[Tool, ...], names: set[str] | None) -> list[Tool]:
    return [t for t in tools if names is None or t.name in names]


def run_sessions(tools: list[Supervisor], plan: workloads.Plan) -> list[dict[str, Any]]:
    sessions = []
    order = [(rep, n, tool) for rep in range(max(plan.reps)) for n, reps in zip(plan.sizes, plan.reps)
             if rep < reps for tool in tools]
    for count, (rep, n, tool) in enumerate(order, 1):
        out: dict[str, Any] = {"tool": tool.name, "n": n, "rep": rep}
        root = Path(tempfile.mkdtemp(prefix=f"ignity-bench-{tool.name}-{n}-"))
        spent = sum(sum(s.get("restart_ms", [])) for s in sessions if s["tool"] == tool.name and s["n"] == n)
        t0 = time.monotonic()
        try:
            workloads.session(tool, n, plan, root, plan.kill_budget_s - spent / 1000, out)
        except (workloads.Failed, OSError, RuntimeError) as e:
            out["error"] = str(e)
        finally:
            _cleanup(root, out)
        out["seconds"] = round(time.monotonic() - t0, 2)
        sessions.append(out)
        _say(f"[{count}/{len(order)}] {tool.name} N={n}: {_brief(out)}")
    return sessions


# the dependency rows: ignity alone, boot with N services and no dependencies / a chain / a wide DAG
GRAPH_SIZES = (100, 500)


def run_graphs(plan: workloads.Plan) -> list[dict[str, Any]]:
    sizes = [n for n in plan.sizes if n in GRAPH_SIZES]
    order = [(rep, n, tool) for rep in range(plan.graph_runs) for n in sizes for tool in GRAPHS]
    records = []
    for count, (rep, n, tool) in enumerate(order, 1):
        out: dict[str, Any] = {"shape": tool.shape, "n": n, "rep": rep}
        root = _graph_root(f"ignity-bench-graph-{tool.shape}-{n}-")
        try:
            out["boot_ms"], out["boot_cpu_ms"] = workloads.boot_only(tool, n, plan, root)
        except (workloads.Failed, OSError, RuntimeError) as e:
            out["error"] = str(e)
        finally:
            _cleanup(root, out)
        records.append(out)
        _say(f"[{count}/{len(order)}] {tool.name} N={n}: {_brief(out)}")
    return records


# where the dependency rows lay out and run ignity: a tmpfs (when the machine has one), as /run or
# a --tmpfs /run/ignity is in a container. On a disk file system the boot of N services is mostly
# metadata work (the copy into services-state/, the reads of dependencies.d/) whose price followed
# the file system's state: right after the benchmark had written the DAG's larger tree, and under
# other I/O, every mkdir and listdir there cost several times more, so DAG against none measured
# the disk, not ignity.
TMPFS = Path("/dev/shm")


def _graph_root(prefix: str) -> Path:
    on_tmpfs = TMPFS.is_dir() and os.access(TMPFS, os.W_OK)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=TMPFS if on_tmpfs else None))


def run_scrapes(tool: Supervisor, plan: workloads.Plan) -> list[dict[str, Any]]:
    """The health/metrics rows: ignity alone, at the largest N."""
    n = max(plan.sizes)
    out: dict[str, Any] = {"tool": tool.name, "n": n, "phase": "scrape"}
    root = Path(tempfile.mkdtemp(prefix=f"ignity-bench-scrape-{n}-"))
    try:
        workloads.scrape(tool, n, plan, root, out)
    except (workloads.Failed, OSError, RuntimeError) as e:
        out["error"] = str(e)
    finally:
        _cleanup(root, out)
    _say(f"scrape {tool.name} N={n}: {_brief(out)}")
    return [out]


def run_idle(tools: list[Supervisor], plan: workloads.Plan) -> list[dict[str, Any]]:
    n = max(plan.sizes)
    _say(f"idle: {', '.join(t.name for t in tools)} at once with N={n}, {plan.idle_s:g} s + "
         f"{plan.strace_s:g} s of strace")
    root = Path(tempfile.mkdtemp(prefix="ignity-bench-idle-"))
    records: list[dict[str, Any]] = []
    try:
        records = workloads.idle(tools, n, plan, root)
    finally:
        _cleanup(root, *records)
    for out in records:
        _say(f"idle {out['tool']}: {_brief(out)}")
    return records


def _cleanup(root: Path, *records: dict[str, Any]) -> None:
    if any(r.get("error") for r in records):
        _say(f"  kept {root} for a look")
    else:
        shutil.rmtree(root, ignore_errors=True)


def _brief(out: dict[str, Any]) -> str:
    keys = ("boot_ms", "pss_mib", "restart_ms", "idle_cpu_ms", "idle_wakeups", "idle_syscalls", "shutdown_ms",
            "shutdown_timeouts", "term_done", "scrape_cpu_ms", "restart_quiet_ms", "restart_scraping_ms")
    parts = []
    for key in keys:
        if key in out:
            value = out[key]
            shown = "/".join(report.fmt(v) for v in value) if isinstance(value, list) else report.fmt(value)
            parts.append(f"{key}={shown}")
    if out.get("error"):
        parts.append(f"ERROR {out['error']}")
    return " ".join(parts)


def run_inits(tools: list[Init], runs: int) -> dict[str, dict[str, Any]]:
    """``runs`` rounds, each timing every tool once: side by side, not one tool after the other."""
    results: dict[str, dict[str, Any]] = {t.name: {"samples": []} for t in tools}
    root = Path(tempfile.mkdtemp(prefix="ignity-bench-init-"))
    try:
        for run in range(runs):
            for tool in tools:
                if "error" in results[tool.name]:
                    continue
                try:
                    results[tool.name]["samples"].append(workloads.init_true(tool, run, root))
                except (workloads.Failed, OSError) as e:
                    results[tool.name] = {"error": str(e)}
        for tool in tools:
            _say(f"/init true {tool.name}: {_brief_init(results[tool.name])}")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return results


def run_envdir(tool: Supervisor, plan: workloads.Plan) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="ignity-bench-envdir-"))
    out: dict[str, Any] = {}
    try:
        out["samples"] = workloads.envdir_restart(tool, root, plan)
        _say(f"envdir restart ({workloads.ENV_VARS} variables): {_brief_init(out)}")
    except (workloads.Failed, OSError, RuntimeError) as e:
        out["error"] = str(e)
    finally:
        _cleanup(root, out)
    return out


def _brief_init(result: dict[str, Any]) -> str:
    return result.get("error") or f"{report.fmt(report.median(result['samples']) or 0)} ms median"


def run_logging(tools: list[Supervisor], quick: bool) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="ignity-bench-logs-"))
    result: dict[str, Any] = {"records": []}
    try:
        result = logbench.run(tools, quick, root, _say)
    finally:
        _cleanup(root, *result["records"])
    return result


def main_logging(args: argparse.Namespace) -> int:
    tools = choose(SUPERVISORS, {"ignity", "s6"})
    skipped = {t.name: reason for t in tools if (reason := t.missing())} if args.no_install else install.ensure(tools)
    started = time.monotonic()
    logging = run_logging([t for t in tools if t.name not in skipped], args.quick)
    result = {"meta": {"date": time.strftime("%Y-%m-%d %H:%M"), "quick": args.quick,
                       "seconds": time.monotonic() - started, "cpus": os.cpu_count(), "kernel": platform.release(),
                       "python": platform.python_version(),
                       "versions": {t.name: t.version() for t in tools if t.name not in skipped}},
              "skipped": skipped, "logging": logging}
    meta = result["meta"]
    versions = ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
    markdown = (f"Logging run of {meta['date']} ({'quick' if args.quick else 'full'}, {meta['seconds']:.0f} s) "
                f"on {meta['cpus']} CPUs, Linux {meta['kernel']}; {versions}.\n\n{logbench.markdown(logging)}\n")
    print(markdown)
    name = args.output or ("logging-quick" if args.quick else "logging")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n")
    (RESULTS / f"{name}.md").write_text(markdown)
    _say(f"wrote {RESULTS / name}.json and .md in {time.monotonic() - started:.0f} s")
    return 0


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupted)
    if args.logging:
        return main_logging(args)
    plan = make_plan(args)
    names = set(args.tools.split(",")) if args.tools else None
    supervisors = choose(SUPERVISORS, names)
    inits = choose(INITS, names)
    everything = list({t.name: t for t in [*supervisors, *inits]}.values())
    if args.no_install:
        skipped = {t.name: reason for t in everything if (reason := t.missing())}
    else:
        skipped = install.ensure(everything)
    started = time.monotonic()
    runnable = [t for t in supervisors if t.name not in skipped]

    def wanted(phase: str) -> bool:
        return args.only in (None, phase)

    sessions = run_sessions(runnable, plan) if wanted("sessions") else []
    idle = run_idle(runnable, plan) if runnable and wanted("idle") else []
    graphs = run_graphs(plan) if any(t.name == "ignity" for t in runnable) and wanted("graphs") else []
    envdir = run_envdir(IGNITY, plan) if IGNITY in runnable and wanted("envdir") else {}
    scrapes = run_scrapes(IGNITY, plan) if IGNITY in runnable and wanted("scrape") else []
    init_true = run_inits([*(t for t in inits if t.name not in skipped), BARE_PYTHON, BASELINE_INIT],
                          plan.init_runs) if wanted("init") else {}
    logging = run_logging(runnable, args.quick) if IGNITY in runnable and wanted("logging") else None
    result = {
        "meta": {
            "date": time.strftime("%Y-%m-%d %H:%M"), "quick": args.quick,
            "seconds": time.monotonic() - started, "cpus": os.cpu_count(), "kernel": platform.release(),
            "python": platform.python_version(),
            "versions": {t.name: t.version() for t in everything if t.name not in skipped},
        },
        "supervisors": [t.name for t in runnable],
        "inits": [t.name for t in inits if t.name not in skipped],
        "plan": asdict(plan),
        "skipped": skipped,
        "sessions": sessions,
        "idle": idle,
        "graphs": graphs,
        "scrapes": scrapes,
        "init_true": init_true,
        "envdir_restart": envdir,
        "logging": logging,
    }
    markdown = report.markdown(result)
    if logging is not None:
        markdown += "\n" + logbench.markdown(logging) + "\n"
    print(markdown)
    name = args.output or ("quick" if args.quick else "latest")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n")
    (RESULTS / f"{name}.md").write_text(markdown)
    _say(f"wrote {RESULTS / name}.json and .md in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        _say("interrupted; every namespace was torn down")
        sys.exit(130)
