"""Every Dockerfile of README.md and docs/ builds as written, and every `run` example runs
(docs_support.MARKER; `docker` is podman here, and a build's BASE_IMAGE is the local base image,
as no registry is reachable)."""

from __future__ import annotations

import os
import subprocess

import pytest
from docs_support import examples
from e2e_support import BASE, PREFIX, ROOT

pytestmark = pytest.mark.skipif(os.environ.get("IGNITY_E2E") != "1",
                                reason="end-to-end tests in containers: set IGNITY_E2E=1 (task e2e)")

DOCKER = f"""
docker() {{
  case $1 in
    build) shift; podman build --network none --build-arg BASE_IMAGE={BASE} "$@" ;;
    run) shift; podman run --network none "$@" ;;
    *) podman "$@" ;;
  esac
}}
"""


@pytest.mark.parametrize("block", examples("build"), ids=lambda b: b.where)
def test_dockerfile_builds_as_written(podman, package, block):
    tag = f"{PREFIX}-doc-{block.doc.stem.lower()}-{block.line}"
    podman.build(tag, ROOT, block.text)
    proc = podman.run(tag, "sh", "-c", "exit 7", timeout=60)  # ignity is its init: the CMD's status
    podman("rmi", tag)
    assert proc.returncode == 7, proc.stderr


@pytest.mark.timeout(900)
@pytest.mark.parametrize("block", examples("run"), ids=lambda b: b.where)
def test_commands_run_as_written(podman, package, block):
    # containers and images the examples name are theirs: make room, and clean up after
    script = "set -euo pipefail\n" + DOCKER + block.text
    subprocess.run(["podman", "rm", "-f", "-t", "0", "demo"], capture_output=True)
    try:
        proc = subprocess.run(["bash", "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=800)
    finally:
        subprocess.run(["podman", "rm", "-f", "-t", "0", "demo"], capture_output=True)
    assert proc.returncode == 0, f"{block.where}: exit {proc.returncode}\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
