"""What `/init CMD` loads when there is nothing but a CMD: every module is time on the path of
each container start (docs/design.md, "Start-up"), so the heavy ones must stay off it. Measured
in `task bench`; guarded here by name, as PID 1 runs it: `python3 -I -S`, as install.sh's
launcher does, with `-X importtime` listing every import."""

from __future__ import annotations

from pathlib import Path

import ignity

SRC = str(Path(ignity.__file__).resolve().parents[1])

# stdlib modules that cost a millisecond or more at start (or pull those in), and ignity's own
# modules that only services, scripts, templates, perms or the s6-overlay layer need
NOT_AT_START = {
    "enum", "collections", "ctypes", "typing", "re", "json", "signal", "socket", "selectors",
    "subprocess", "resource", "heapq", "shutil", "pathlib", "dataclasses", "functools",
    "ignity.supervisor", "ignity.service", "ignity.servicedir", "ignity.scripts", "ignity.s6compat",
    "ignity.s6settings", "ignity.templates", "ignity.perms", "ignity.httpd", "ignity.dependencies",
}


def imported(stderr: str) -> set[str]:
    return {line.split("|")[2].strip() for line in stderr.splitlines()
            if line.startswith("import time:") and line.count("|") == 2} - {"imported package"}


def test_init_cmd_alone_loads_no_heavy_module(ct, tmp_path):
    launcher = tmp_path / "init"
    launcher.write_text("import _signal as signal\nimport sys\nsignal.signal(signal.SIGINT, signal.SIG_DFL)\n"
                        f"sys.path.insert(0, {SRC!r})\nfrom ignity.cli import main\n"
                        "sys.exit(main(['init', *sys.argv[1:]]))\n")
    ct.start("true", wrapper=f'exec "$1" -I -S -X importtime {launcher} true')
    assert ct.wait() == 0, ct.diag()
    modules = imported(ct.stderr)
    assert "ignity.stages" in modules, ct.diag()  # the listing is there: the check means something
    assert modules & NOT_AT_START == set(), ct.diag()


def test_a_service_loads_what_it_needs(ct, tmp_path):
    # the other side of the guard above: the lazy imports do happen once there is a service
    ct.service("app", "exec sleep 30")
    ct.start("true", wrapper='exec "$1" -X importtime -m ignity init true')
    assert ct.wait() == 0, ct.diag()
    assert {"ignity.supervisor", "ignity.servicedir"} <= imported(ct.stderr), ct.diag()
