"""Checks of install.sh and Dockerfile.example that need no container (they run in `task test`)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("shell", ["sh", "dash", "bash"])
def test_install_sh_parses(shell):
    if shutil.which(shell) is None:
        pytest.skip(f"no {shell}")
    proc = subprocess.run([shell, "-n", str(ROOT / "install.sh")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_launchers_match_the_console_scripts():
    if sys.version_info < (3, 11):
        pytest.skip("tomllib")
    import tomllib

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    text = (ROOT / "install.sh").read_text()
    functions = dict(re.findall(r"(?m)^launcher (\S+) (\S+)", text))
    links = dict((path.rsplit("/", 1)[-1], target)
                 for target, path in re.findall(r'(?m)^link "\$PREFIX/bin/(\S+)" "(\S+)"', text))
    assert set(links) - {"$INIT_PATH"} == set(scripts)
    for name, entry in scripts.items():
        assert entry == f"ignity.cli:{functions[links[name]]}", name


def test_dockerfile_example_takes_the_stable_package_name():
    dockerfile = (ROOT / "Dockerfile.example").read_text()
    assert "dist/ignity.tar.gz" in (ROOT / ".dockerignore").read_text()
    assert "/ignity.tar.gz " in dockerfile and "IGNITY_VERSION" not in dockerfile
    assert 'ENTRYPOINT ["/init"]' in dockerfile
