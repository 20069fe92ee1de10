"""Shared fixtures. Integration tests run ignity as PID 1 of a PID namespace: they need root,
`unshare` and `nsenter` (util-linux), and are skipped, with the reason, where those are missing."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest


def _integration_skip_reason() -> str | None:
    if not sys.platform.startswith("linux"):
        return "integration tests need Linux PID namespaces"
    if os.geteuid() != 0:
        return "integration tests need root (they create PID namespaces with unshare and enter them with nsenter)"
    for tool in ("unshare", "nsenter"):
        if shutil.which(tool) is None:
            return f"integration tests need `{tool}` (util-linux), which is not on PATH"
    return None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "integration: runs ignity as a real PID 1 (root, unshare, nsenter)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = _integration_skip_reason()
    for item in items:
        if "integration" in Path(str(item.fspath)).parts:
            item.add_marker(pytest.mark.integration)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture
def ct():
    """A Container (tests/integration/harness.py): a conf tree, a runtime dir, one PID 1 at a time."""
    try:
        from integration.harness import Container
    except ImportError:  # tests/ made a package: the harness is then tests.integration.harness
        from tests.integration.harness import Container

    container = Container.create()
    try:
        yield container
    finally:
        container.close()


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    """One line instead of silence when the container tests were skipped (the usual `task test`)."""
    if os.environ.get("IGNITY_E2E") == "1":
        return
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if r.nodeid.startswith("tests/e2e/")]
    if skipped:
        terminalreporter.write_line(
            f"e2e: {len(skipped)} tests skipped: they build and run real containers (podman) and need "
            "IGNITY_E2E=1; run them with `./ignity-dev e2e` (as root; installs podman on first use)")
