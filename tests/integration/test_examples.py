"""The examples the docs show, run: the demo (`./ignity-dev demo`), the perms file and the
template of docs/perms.md and docs/templates.md (the docs hold them verbatim: tests/e2e/test_docs.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ignity import perms

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
VENV_BIN = Path(sys.executable).parent


def test_the_demo_exits_3_and_every_process_ends_on_its_own():
    proc = subprocess.run(["bash", str(EXAMPLES / "demo.sh")], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "IGNITY_VERBOSITY": "2"})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "demo: the container exited 3" in out
    for line in ("[web log] web: ready", "worker: started on demand", "finalize: goodbye from demo",
                 "service web/log: exited 0"):
        assert line in out, out
    # every service and logger ended on its own signal handling: nothing was killed
    assert "killed by" not in out and "remaining processes" not in out, out


def test_the_perms_example_parses():
    env = {"APP_DIR": "/srv/app", "USERMAP_UID": "1000", "USERMAP_GID": "1000", "ENABLE_CACHE": "1"}
    rules = perms.load_dir(EXAMPLES / "perms", env)
    assert [(r.path, r.recursive, r.uid, r.gid, oct(r.fmode), oct(r.dmode)) for r in rules] == [
        ("/srv/app/data", True, 1000, 1000, "0o640", "0o750"),
        ("/var/log/app", False, 1000, rules[1].gid, "0o640", "0o2750"),
        ("/srv/app/data/secrets", True, 0, 1000, "0o640", "0o750"),
        ("/var/cache/app", True, 1000, 1000, "0o600", "0o700"),
    ]


def test_the_templates_example_renders():
    template = EXAMPLES / "templates" / "etc" / "nginx" / "conf.d" / "app.conf.j2"
    proc = subprocess.run([str(VENV_BIN / "ignity"), "render", str(template)], capture_output=True, text=True,
                          env={"PATH": os.environ["PATH"], "APP_HOST": "app", "APP_PORT": "8080",
                               "ENABLE_STATUS": "1", "IGNITY_RUN_DIR": "/nonexistent"}, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert "listen 80;" in proc.stdout
    assert "proxy_pass http://app:8080;" in proc.stdout
    assert "stub_status;" in proc.stdout
