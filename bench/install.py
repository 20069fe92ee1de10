"""Installs the peers that are missing: Debian packages with apt-get, PyPI ones into the
benchmark's own venv (bench/.venv-peers, made from the python running the benchmark). A peer whose
install fails is reported and later skipped with the reason; nothing here is fatal but a missing
unshare, without which nothing can be measured (without strace, idle system calls are not counted).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence

from peers import PATH, PEERS_VENV, Tool

APT_TIMEOUT_S = 600
PIP_TIMEOUT_S = 600
# not peers, but what the harness runs: (program, Debian package)
REQUIRED = (("unshare", "util-linux"),)
OPTIONAL = (("strace", "strace"),)


def _say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def _run(argv: Sequence[str], timeout: float) -> str | None:
    """Run an install command; None when it worked, else the last line of its output."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
    except (OSError, subprocess.TimeoutExpired) as e:
        return str(e)
    if out.returncode == 0:
        return None
    lines = (out.stdout + out.stderr).strip().splitlines()
    return lines[-1] if lines else f"exit status {out.returncode}"


def _apt_install(packages: list[str]) -> dict[str, str]:
    """Install ``packages``; returns {package: why it failed} for those that did not install."""
    if not packages:
        return {}
    if os.geteuid() != 0:
        return {p: "not root, cannot apt-get install" for p in packages}
    _say(f"apt-get install {' '.join(packages)}")
    error = _run(["apt-get", "update", "-qq"], APT_TIMEOUT_S)
    if error:
        _say(f"apt-get update failed: {error}")
    base = ["apt-get", "install", "-y", "-qq", "--no-install-recommends"]
    if _run([*base, *packages], APT_TIMEOUT_S) is None:
        return {}
    failed = {}
    for package in packages:  # one at a time, to learn which one fails
        error = _run([*base, package], APT_TIMEOUT_S)
        if error:
            failed[package] = f"apt-get install {package} failed: {error}"
    return failed


def _pip_install(packages: list[str]) -> dict[str, str]:
    if not packages:
        return {}
    python = PEERS_VENV / "bin" / "python"
    if not python.exists() or python.is_symlink():  # a copy of the interpreter: see peers.py
        _say(f"creating {PEERS_VENV}")
        error = _run([sys.executable, "-m", "venv", "--clear", "--copies", str(PEERS_VENV)], PIP_TIMEOUT_S)
        if error:
            return {p: f"cannot create {PEERS_VENV}: {error}" for p in packages}
    _say(f"pip install {' '.join(packages)} into {PEERS_VENV}")
    pip = [str(PEERS_VENV / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    if _run([*pip, *packages], PIP_TIMEOUT_S) is None:
        return {}
    failed = {}
    for package in packages:
        error = _run([*pip, package], PIP_TIMEOUT_S)
        if error:
            failed[package] = f"pip install {package} failed: {error}"
    return failed


def ensure(tools: Sequence[Tool]) -> dict[str, str]:
    """Install what is missing; returns {tool name: reason} for the tools that cannot run."""
    harness = {pkg for prog, pkg in (*REQUIRED, *OPTIONAL) if not shutil.which(prog, path=PATH)}
    apt = sorted({t.install[1] for t in tools if t.install[0] == "apt" and t.missing()} | harness)
    pip = sorted({t.install[1] for t in tools if t.install[0] == "pip" and t.missing()})
    failed = {**_apt_install(apt), **_pip_install(pip)}
    for prog, pkg in REQUIRED:
        if not shutil.which(prog, path=PATH):
            raise SystemExit(f"bench: {prog} is required and could not be installed: {failed.get(pkg)}")
    for prog, pkg in OPTIONAL:
        if not shutil.which(prog, path=PATH):
            _say(f"no {prog} ({failed.get(pkg)}): idle system calls will not be counted")
    skipped = {}
    for tool in tools:
        reason = tool.missing()
        if reason is not None:
            skipped[tool.name] = failed.get(tool.install[1], reason)
            _say(f"skipping {tool.name}: {skipped[tool.name]}")
    return skipped
