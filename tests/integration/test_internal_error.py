"""SPEC §5: an internal error in ignity gives 111, one line of cause and no traceback, and stage 3
still runs (SPEC §9: the traceback only at IGNITY_VERBOSITY=3). Nothing from outside can make
ignity fail on purpose, so the run below replaces stage 2's service start with a bug."""

from __future__ import annotations

import os
import subprocess
import sys

BROKEN_INIT = """
import sys
from ignity import cli, supervisor

def bug(self):
    raise RuntimeError("simulated bug")

supervisor.Supervisor.start_all = bug
sys.exit(cli.main(["init", "sleep", "30"]))
"""


def run_broken(tmp_path, verbosity: str) -> subprocess.CompletedProcess:
    conf = tmp_path / "conf"
    (conf / "finalize").mkdir(parents=True, exist_ok=True)
    marker = tmp_path / "finalized"
    script = conf / "finalize" / "10-mark"
    script.write_text(f"#!/bin/sh\necho ran >> {marker}\n")
    script.chmod(0o755)
    # a service, so that the supervisor (created only when there is one) starts the services
    run = conf / "services" / "svc" / "run"
    run.parent.mkdir(parents=True)
    run.write_text("#!/bin/sh\nexec sleep 1000\n")
    run.chmod(0o755)
    env = dict(os.environ, IGNITY_CONF_DIR=str(conf), IGNITY_RUN_DIR=str(tmp_path / "run"),
               IGNITY_VERBOSITY=verbosity)
    return subprocess.run(["unshare", "--fork", "--pid", "--mount-proc", sys.executable, "-c", BROKEN_INIT],
                          env=env, capture_output=True, text=True, timeout=30)


def test_internal_error_is_111_with_one_line_and_stage3_runs(tmp_path):
    res = run_broken(tmp_path, "1")
    assert res.returncode == 111, res.stderr
    assert "Traceback" not in res.stderr, res.stderr
    cause = [line for line in res.stderr.splitlines() if "simulated bug" in line]
    assert len(cause) == 1 and cause[0].startswith("ignity: ") and "internal error" in cause[0], res.stderr
    assert (tmp_path / "finalized").read_text() == "ran\n", "stage 3 did not run the finalize scripts"


def test_internal_error_traceback_at_verbosity_3(tmp_path):
    res = run_broken(tmp_path, "3")
    assert res.returncode == 111, res.stderr
    assert "Traceback" in res.stderr and "simulated bug" in res.stderr
