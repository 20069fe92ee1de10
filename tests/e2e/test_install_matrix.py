"""install.sh's choice of wheels for every interpreter the package supports (no container: the
choice is made as for another interpreter with --dry-run and IGNITY_INSTALL_AS)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(os.environ.get("IGNITY_E2E") != "1",
                                reason="needs the package (scripts/package.sh): set IGNITY_E2E=1 (task e2e)")


def choose(package_dir, minor: int, machine: str, libc: str, libc_version: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "IGNITY_INSTALL_AS": f"{minor} {machine} {libc} {libc_version}"}
    return subprocess.run(["sh", str(package_dir / "install.sh"), "--dry-run", "--python", sys.executable],
                          capture_output=True, text=True, env=env, timeout=60)


@pytest.mark.parametrize("minor", [9, 10, 11, 12, 13, 14])
@pytest.mark.parametrize(("machine", "libc", "libc_version", "tag"), [
    ("x86_64", "glibc", "2.17", "manylinux"),
    ("aarch64", "glibc", "2.36", "manylinux"),
    ("x86_64", "musl", "1.2", "musllinux_1_2_x86_64"),
    ("aarch64", "musl", "1.2", "musllinux_1_2_aarch64"),
])
def test_every_supported_interpreter_gets_its_wheels(package_dir, minor, machine, libc, libc_version, tag):
    proc = choose(package_dir, minor, machine, libc, libc_version)
    assert proc.returncode == 0, proc.stderr
    chosen = {line.split("-")[0].lower(): line for line in proc.stdout.split()}
    assert set(chosen) == {"ignity", "jinja2", "markupsafe", "psutil", "python_dotenv"}
    assert f"-cp3{minor}-cp3{minor}-" in chosen["markupsafe"]
    assert "-abi3-" in chosen["psutil"]
    for native in ("markupsafe", "psutil"):
        assert tag in chosen[native] and machine in chosen[native]


def test_an_unknown_python_gets_markupsafe_in_pure_python(package_dir):
    proc = choose(package_dir, 99, "x86_64", "glibc", "2.36")
    assert proc.returncode == 0, proc.stderr
    assert "(pure Python)" in proc.stdout
    assert "no markupsafe wheel for CPython 3.99" in proc.stderr


@pytest.mark.parametrize(("machine", "libc", "libc_version"), [("armv7l", "glibc", "2.36"), ("x86_64", "glibc", "2.5")])
def test_an_unsupported_platform_is_a_clear_error(package_dir, machine, libc, libc_version):
    proc = choose(package_dir, 12, machine, libc, libc_version)
    assert proc.returncode == 1
    assert "no psutil wheel fits CPython 3.12 on " + machine in proc.stderr
