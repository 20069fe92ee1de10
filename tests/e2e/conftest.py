"""End-to-end tests: ignity installed by install.sh into real images, run by podman.

Skipped unless IGNITY_E2E=1 (`task e2e` sets it, after tests/e2e/setup.sh has installed podman
and built the base image localhost/ignity-e2e-base). Every build and container runs with
--network none: no registry, no PyPI.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_support import BASE, E2E, FIGURES, PREFIX, ROOT, Podman, version


@pytest.fixture(scope="session")
def podman_session() -> Iterator[Podman]:
    if not E2E:
        pytest.skip("IGNITY_E2E=1 not set")
    if shutil.which("podman") is None:
        pytest.fail("podman is not installed: run tests/e2e/setup.sh (task e2e does)")
    p = Podman()
    if p("image", "exists", BASE).returncode != 0:
        pytest.fail(f"no base image {BASE}: run tests/e2e/setup.sh (task e2e does)")
    yield p
    p.cleanup()


@pytest.fixture
def podman(podman_session: Podman) -> Iterator[Podman]:
    p = Podman()
    yield p
    p.cleanup()


def _newest_mtime(*paths: Path) -> float:
    newest = 0.0
    for path in paths:
        files = [path] if path.is_file() else [f for f in path.rglob("*") if f.is_file()]
        newest = max([newest, *(f.stat().st_mtime for f in files if "__pycache__" not in f.parts)])
    return newest


@pytest.fixture(scope="session")
def package(podman_session: Podman) -> Path:
    """dist/ignity-VERSION.tar.gz, rebuilt by scripts/package.sh when a source is newer."""
    tarball = ROOT / "dist" / f"ignity-{version()}.tar.gz"
    stable = ROOT / "dist" / "ignity.tar.gz"  # the same archive, the name the Dockerfiles use
    sources = (ROOT / "src" / "ignity", ROOT / "install.sh", ROOT / "rootfs", ROOT / "pyproject.toml",
               ROOT / "scripts" / "package.sh")
    newest = _newest_mtime(*sources)
    if any(not t.exists() or t.stat().st_mtime < newest for t in (tarball, stable)):
        subprocess.run(["bash", str(ROOT / "scripts" / "package.sh")], check=True, timeout=600)
    return tarball


@pytest.fixture(scope="session")
def package_dir(package: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package tarball, unpacked."""
    out = tmp_path_factory.mktemp("package")
    with tarfile.open(package) as tar:
        tar.extractall(out, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    (pkg,) = out.iterdir()
    return pkg


BARE = """\
FROM ${BASE_IMAGE}
RUN --mount=type=bind,source=.,target=/tmp/ignity sh /tmp/ignity/install.sh
ENTRYPOINT ["/init"]
CMD []
"""


@pytest.fixture(scope="session")
def package_image(podman_session: Podman, package_dir: Path) -> str:
    """The base image + install.sh from the unpacked package tarball, no configuration, no CMD."""
    ARG = "ARG BASE_IMAGE\n"
    t0 = time.monotonic()
    image = podman_session.build(f"{PREFIX}-package", package_dir, ARG + BARE)
    FIGURES["build of the package image"] = f"{time.monotonic() - t0:.1f} s"
    size = podman_session.image_size(image) - podman_session.image_size(BASE)
    FIGURES["image size added by ignity"] = f"{size / 1e6:.2f} MB"
    return image


@pytest.fixture(scope="session")
def source_image(podman_session: Podman, package: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The base image + install.sh run from a source checkout (dependencies from dist/wheels)."""
    ctx = tmp_path_factory.mktemp("source")
    shutil.copy2(ROOT / "install.sh", ctx)
    shutil.copy2(ROOT / "pyproject.toml", ctx)
    shutil.copytree(ROOT / "src" / "ignity", ctx / "src" / "ignity",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "rootfs", ctx / "rootfs")
    shutil.copytree(ROOT / "dist" / "wheels", ctx / "dist" / "wheels")
    return podman_session.build(f"{PREFIX}-source", ctx, "ARG BASE_IMAGE\n" + BARE)


@pytest.fixture(scope="session", params=["package", "source"])
def installed_image(request: pytest.FixtureRequest) -> str:
    """Each way of installing: from the package tarball, and from a source checkout."""
    return request.getfixturevalue(f"{request.param}_image")


@pytest.fixture(scope="session")
def example_image(podman_session: Podman, package: Path) -> str:
    """Dockerfile.example, on the local base image instead of python:3.12-slim."""
    t0 = time.monotonic()
    image = podman_session.build(f"{PREFIX}-example", ROOT, ROOT / "Dockerfile.example")
    FIGURES["build of Dockerfile.example"] = f"{time.monotonic() - t0:.1f} s"
    return image


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if FIGURES:
        terminalreporter.section("ignity e2e figures")
        for key, value in FIGURES.items():
            terminalreporter.write_line(f"{key}: {value}")
        out = ROOT / "dist" / "e2e-figures.json"
        if out.parent.is_dir():
            out.write_text(json.dumps(FIGURES, indent=2) + "\n")
