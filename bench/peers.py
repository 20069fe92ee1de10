"""The tools under test: how each is laid out, launched as PID 1, and which processes are its own.

Supervisors take N identical services; inits (``/init true``) take a command. A tool is either a
service-directory supervisor (ignity, s6, runit: one ``NAME/run`` per service in a scan dir) or a
config-file supervisor (supervisord, circus: the scripts in one dir and a section per service in a
config file); the two bases below hold all that they share, a subclass only says what differs.
"""

from __future__ import annotations

import functools
import importlib.util
import random
import shutil
import subprocess
import sys
import sysconfig
import venv
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

from nsproc import Proc

BENCH_DIR = Path(__file__).resolve().parent
PEERS_VENV = BENCH_DIR / ".venv-peers"
# The Python tools run on copies of the interpreter (venvs made with --copies): the benchmark is
# Python too, and an interpreter binary shared with it would have half its pages left out of
# the tool's PSS. In a container nothing else maps the supervisor's interpreter.
IGNITY_HOME = BENCH_DIR / ".ignity-home"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# the services' own processes: the run script (a script's comm is its file name, and every
# service's script is called `run`) and its sleep; never counted as the supervisor's
SERVICE_COMMS = frozenset({"run", "sleep"})

# A benchmark service: says it is up (once its TERM handler is in place), then waits; on SIGTERM
# it takes 0.2 s to finish cleanly. `wait` on a background sleep, not `exec sleep`: a shell waiting
# in `wait` runs its trap at once, and a sleep cannot have one.
RUN_SCRIPT = """#!/bin/sh
trap 'kill $child 2>/dev/null; sleep 0.2; echo done > {markers}/{name}.term; exit 0' TERM
echo $$ > {markers}/{name}.pid
sleep 100000 &
child=$!
wait $child
"""


def service_names(n: int) -> list[str]:
    return [f"svc{i:03d}" for i in range(n)]


def write_script(path: Path, markers: Path, name: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(RUN_SCRIPT.format(markers=markers, name=name))
    path.chmod(0o755)


def _version(argv: Sequence[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    text = (out.stdout + out.stderr).strip().splitlines()
    return text[0] if text else "?"


def _deb_version(package: str) -> str:
    return _version(["dpkg-query", "-W", "-f", "${Version}", package])


class Tool:
    """Anything benchmarked as PID 1."""

    name = ""
    # what `run.py` installs when the tool is missing: ("apt", package) or ("pip", package)
    install: tuple[str, str] = ("", "")

    def executable(self) -> str | None:
        """The path of the tool's main program, None if it is not installed."""
        raise NotImplementedError

    def missing(self) -> str | None:
        """Why the tool cannot run here, or None."""
        if self.executable() is None:
            return f"{self.install[1]} is not installed ({self.install[0]} install failed or was skipped)"
        return None

    def version(self) -> str:
        return _deb_version(self.install[1]) if self.install[0] == "apt" else "?"

    def env(self, root: Path) -> dict[str, str]:
        return {"PATH": PATH, "LANG": "C.UTF-8", "HOME": str(root)}


class Supervisor(Tool):
    def layout(self, root: Path, markers: Path, n: int) -> None:
        """Write the N services (and any config) under ``root``."""
        raise NotImplementedError

    def argv(self, root: Path) -> list[str]:
        raise NotImplementedError

    def is_own(self, proc: Proc) -> bool:
        """Whether ``proc`` is one of the supervisor's processes rather than a service's."""
        return proc.comm not in SERVICE_COMMS


class Init(Tool):
    def init_argv(self, root: Path, command: Sequence[str]) -> list[str]:
        raise NotImplementedError


class DebianTool(Tool):
    program = ""

    def executable(self) -> str | None:
        return shutil.which(self.program, path=PATH)


class PeerVenvTool(Tool):
    """Installed with pip into the benchmark's own venv (bench/.venv-peers)."""

    program = ""

    def executable(self) -> str | None:
        path = PEERS_VENV / "bin" / self.program
        if (PEERS_VENV / "bin" / "python").is_symlink():
            return None  # made before the venv had its own interpreter: to be made again
        return str(path) if path.exists() else None

    def version(self) -> str:
        python = PEERS_VENV / "bin" / "python"
        return _version([str(python), "-c", f"from importlib import metadata; "
                         f"print(metadata.version({self.install[1]!r}))"])


class ServiceDirSupervisor(Supervisor):
    """Scans a directory of service directories, each with its ``run``."""

    def scan_dir(self, root: Path) -> Path:
        return root / "services"

    def layout(self, root: Path, markers: Path, n: int) -> None:
        for name in service_names(n):
            write_script(self.scan_dir(root) / name / "run", markers, name)
        self.scan_dir(root).mkdir(parents=True, exist_ok=True)


class ConfigFileSupervisor(Supervisor):
    """Reads one config file with a section per service."""

    config_name = ""

    def header(self, root: Path) -> str:
        raise NotImplementedError

    def section(self, name: str, run: Path) -> str:
        raise NotImplementedError

    def footer(self, names: list[str]) -> str:
        return ""

    def layout(self, root: Path, markers: Path, n: int) -> None:
        names = service_names(n)
        parts = [self.header(root)]
        for name in names:
            run = root / "scripts" / name / "run"
            write_script(run, markers, name)
            parts.append(self.section(name, run))
        parts.append(self.footer(names))
        (root / self.config_name).write_text("\n".join(parts))


# ---- the tools ----------------------------------------------------------------------------------
@functools.cache
def _ignity_launcher() -> str | None:
    """Write IGNITY_HOME/init, a launcher like install.sh's, run by a copy of the interpreter."""
    spec = importlib.util.find_spec("ignity")
    if spec is None or spec.origin is None:
        return None
    src = Path(spec.origin).parent.parent
    python = IGNITY_HOME / "bin" / "python3"
    if not python.exists() or python.is_symlink():
        venv.create(IGNITY_HOME, clear=True, symlinks=False)
    launcher = IGNITY_HOME / "init"
    launcher.write_text(
        f"#!{python} -IS\n# written by bench/peers.py, like install.sh's /init\nimport _signal as signal\n"
        "import sys\nsignal.signal(signal.SIGINT, signal.SIG_DFL)\n"
        f"sys.path[:0] = [{str(src)!r}, {sysconfig.get_paths()['purelib']!r}]\n"
        "from ignity.cli import main\nsys.exit(main(['init', *sys.argv[1:]]))\n")
    launcher.chmod(0o755)
    return str(launcher)


class Ignity(ServiceDirSupervisor, Init):
    """Run as install.sh's ``/init`` runs it: python with ``-I -S`` (no site, no PYTHON*
    variables) and ignity's own directory on sys.path; here that directory is the checkout's src/
    and the site-packages of the venv running the benchmark (ignity's dependencies)."""

    name = "ignity"
    install = ("editable", "ignity")

    def executable(self) -> str | None:
        return _ignity_launcher()

    def missing(self) -> str | None:
        if self.executable() is None:
            return f"ignity is not importable from {sys.executable} (run `task setup`)"
        return None

    def version(self) -> str:
        try:
            return metadata.version("ignity")
        except metadata.PackageNotFoundError:
            return "?"

    def scan_dir(self, root: Path) -> Path:
        return root / "conf" / "services"

    def env(self, root: Path) -> dict[str, str]:
        (root / "conf").mkdir(exist_ok=True)
        return {**super().env(root), "IGNITY_CONF_DIR": str(root / "conf"),
                "IGNITY_RUN_DIR": str(root / "run"), "IGNITY_VERBOSITY": "1"}

    def argv(self, root: Path) -> list[str]:
        return self.init_argv(root, [])

    def init_argv(self, root: Path, command: Sequence[str]) -> list[str]:
        return [str(self.executable()), *command]


class IgnityGraph(Ignity):
    """ignity with ``dependencies.d/`` between its N services, for the dependency rows (not a peer):
    ``none`` (no file at all), ``chain`` (each service needs the one before it: one start at a time)
    and ``dag`` (wide: GRAPH_LAYERS layers, each service needs 2 of the layer before it). The
    services have no notification-fd and ``ready-after`` 0, so each is ready when it starts: what is
    measured is the cost of the graph, not readiness waits (with the default ready-after a chain
    would wait 1 s per link)."""

    GRAPH_LAYERS = 5

    def __init__(self, shape: str):
        self.shape = shape
        self.name = f"ignity {shape}"

    def layout(self, root: Path, markers: Path, n: int) -> None:
        super().layout(root, markers, n)
        names = service_names(n)
        for name in names:
            (self.scan_dir(root) / name / "ready-after").write_text("0\n")
        for name, deps in graph(self.shape, names).items():
            for dep in deps:
                path = self.scan_dir(root) / name / "dependencies.d" / dep
                path.parent.mkdir(exist_ok=True)
                path.touch()


def graph(shape: str, names: list[str]) -> dict[str, list[str]]:
    """name -> the names it depends on, for ``IgnityGraph``'s shapes (the same graph every run)."""
    if shape == "chain":
        return {name: names[i - 1:i] for i, name in enumerate(names)}
    if shape == "dag":
        rng = random.Random(len(names))
        width = max(1, -(-len(names) // IgnityGraph.GRAPH_LAYERS))
        layers = [names[i:i + width] for i in range(0, len(names), width)]
        out = {name: [] for name in layers[0]}
        for before, layer in zip(layers, layers[1:]):
            for name in layer:
                out[name] = rng.sample(before, min(2, len(before)))
        return out
    return {name: [] for name in names}


class ScanDirProgram(ServiceDirSupervisor, DebianTool):
    """A C scanner run as ``PROGRAM SCANDIR``."""

    def argv(self, root: Path) -> list[str]:
        return [str(self.executable()), str(self.scan_dir(root))]


class S6(ScanDirProgram):
    name = "s6"
    install = ("apt", "s6")
    program = "s6-svscan"


class Runit(ScanDirProgram):
    name = "runit"
    install = ("apt", "runit")
    program = "runsvdir"


class Supervisord(ConfigFileSupervisor, PeerVenvTool):
    name = "supervisord"
    install = ("pip", "supervisor")
    program = "supervisord"
    config_name = "supervisord.conf"

    def header(self, root: Path) -> str:
        return (f"[supervisord]\nnodaemon=true\nlogfile={root}/supervisord.log\n"
                f"pidfile={root}/supervisord.pid\nchildlogdir={root}\n")

    def section(self, name: str, run: Path) -> str:
        # output is discarded by the others too; autorestart so that kill -9 restarts
        return (f"[program:{name}]\ncommand={run}\nautorestart=true\n"
                "stdout_logfile=NONE\nstderr_logfile=NONE\n")

    def footer(self, names: list[str]) -> str:
        # one group: supervisord stops groups one after the other and waits for each, so with a
        # group per program (its default) N services with a 0.2 s TERM handler take N x 0.2 s
        return f"[group:services]\nprograms={','.join(names)}\n"

    def argv(self, root: Path) -> list[str]:
        return [str(self.executable()), "-n", "-c", str(root / self.config_name)]


class Circus(ConfigFileSupervisor, PeerVenvTool):
    name = "circus"
    install = ("pip", "circus")
    program = "circusd"
    config_name = "circus.ini"

    def header(self, root: Path) -> str:
        # ipc endpoints: no TCP port shared with anything else on the machine
        return (f"[circus]\nendpoint = ipc://{root}/endpoint\npubsub_endpoint = ipc://{root}/pubsub\n"
                "statsd = false\n")

    def section(self, name: str, run: Path) -> str:
        return f"[watcher:{name}]\ncmd = {run}\nnumprocesses = 1\n"

    def argv(self, root: Path) -> list[str]:
        return [str(self.executable()), str(root / self.config_name)]


class DebianInit(Init, DebianTool):
    """A C init run as ``PROGRAM -- CMD...``."""

    def init_argv(self, root: Path, command: Sequence[str]) -> list[str]:
        return [str(self.executable()), "--", *command]


class Tini(DebianInit):
    name = "tini"
    install = ("apt", "tini")
    program = "tini"


class DumbInit(DebianInit):
    name = "dumb-init"
    install = ("apt", "dumb-init")
    program = "dumb-init"


class NoInit(Init):
    """The command itself as PID 1: the floor that every init adds its cost to."""

    name = "(no init)"

    def executable(self) -> str | None:
        return "true"

    def missing(self) -> str | None:
        return None

    def version(self) -> str:
        return "-"

    def init_argv(self, root: Path, command: Sequence[str]) -> list[str]:
        return list(command)


class BareInterpreter(Init):
    """``python3 -I -S -c pass`` as PID 1, on the interpreter ignity's launcher runs: the start-up
    any Python init pays before its first line, the floor ignity's ``/init true`` is held to."""

    name = "(python3 -I -S -c pass)"

    def executable(self) -> str | None:
        return str(IGNITY_HOME / "bin" / "python3") if _ignity_launcher() else None

    def missing(self) -> str | None:
        return None if self.executable() else "no interpreter copy for ignity"

    def version(self) -> str:
        return "-"

    def init_argv(self, root: Path, command: Sequence[str]) -> list[str]:
        return [str(self.executable()), "-I", "-S", "-c", "pass"]


IGNITY = Ignity()
SUPERVISORS: tuple[Supervisor, ...] = (IGNITY, S6(), Runit(), Supervisord(), Circus())
GRAPHS: tuple[IgnityGraph, ...] = tuple(IgnityGraph(shape) for shape in ("none", "chain", "dag"))
INITS: tuple[Init, ...] = (IGNITY, Tini(), DumbInit())
BASELINE_INIT = NoInit()
BARE_PYTHON = BareInterpreter()
