"""Helpers of the end-to-end tests (a module of its own: test files import it, not conftest)."""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
E2E = os.environ.get("IGNITY_E2E") == "1"
BASE = os.environ.get("IGNITY_E2E_BASE", "localhost/ignity-e2e-base")
PREFIX = "localhost/ignity-e2e"

FIGURES: dict[str, str] = {}  # measured figures, printed at the end of the run


def version() -> str:
    text = (ROOT / "pyproject.toml").read_text()
    return re.search(r'(?m)^version\s*=\s*"([^"]+)"', text).group(1)


class Podman:
    """Thin wrapper over the podman CLI; removes the containers it started."""

    def __init__(self) -> None:
        self.containers: list[str] = []

    def __call__(self, *args: str, timeout: float = 120, check: bool = False,
                 input: str | None = None) -> subprocess.CompletedProcess:
        proc = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout,
                              input=input, stdin=None if input is not None else subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)}: exit {proc.returncode}\n{proc.stdout}{proc.stderr}")
        return proc

    def run(self, image: str, *cmd: str, opts: tuple[str, ...] = (), timeout: float = 60
            ) -> subprocess.CompletedProcess:
        """`podman run --rm` to the end: the CompletedProcess (returncode = container's status)."""
        return self("run", "--rm", "--network", "none", *opts, image, *cmd, timeout=timeout)

    def start(self, image: str, *cmd: str, opts: tuple[str, ...] = ()) -> str:
        name = f"ignity-e2e-{uuid.uuid4().hex[:10]}"
        self.containers.append(name)
        self("run", "-d", "--name", name, "--network", "none", *opts, image, *cmd, check=True)
        return name

    def logs(self, name: str) -> str:
        proc = self("logs", name)
        return proc.stdout + proc.stderr

    def exit_code(self, name: str, timeout: float = 30) -> int:
        proc = self("wait", name, timeout=timeout, check=True)
        return int(proc.stdout.strip().splitlines()[-1])

    def exec(self, name: str, *cmd: str, timeout: float = 30) -> subprocess.CompletedProcess:
        return self("exec", name, *cmd, timeout=timeout)

    def wait_for_log(self, name: str, text: str, timeout: float = 15) -> str:
        deadline = time.monotonic() + timeout
        while True:
            logs = self.logs(name)
            if text in logs:
                return logs
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not in the logs of {name} after {timeout} s:\n{logs}")
            time.sleep(0.1)

    def wait_until(self, name: str, *cmd: str, timeout: float = 15) -> None:
        """Until `podman exec NAME CMD` succeeds."""
        deadline = time.monotonic() + timeout
        while True:
            proc = self.exec(name, *cmd)
            if proc.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{cmd} in {name} still fails after {timeout} s: {proc.stderr}"
                                     f"\n{self.logs(name)}")
            time.sleep(0.1)

    def stop_timed(self, name: str, timeout: int = 10) -> float:
        t0 = time.monotonic()
        self("stop", "-t", str(timeout), name, timeout=timeout + 30, check=True)
        return time.monotonic() - t0

    def image_size(self, image: str) -> int:
        return int(self("image", "inspect", image, "--format", "{{.Size}}", check=True).stdout.strip())

    def build(self, tag: str, context: Path, containerfile: str | Path, *build_args: str) -> str:
        # --no-cache: buildah does not key its cache on what RUN --mount=type=bind mounts
        args = ["build", "--no-cache", "--network", "none", "-q", "-t", tag, "--build-arg", f"BASE_IMAGE={BASE}"]
        for arg in build_args:
            args += ["--build-arg", arg]
        old = self("image", "inspect", tag, "--format", "{{.Id}}").stdout.strip()
        if isinstance(containerfile, Path):
            self(*args, "-f", str(containerfile), str(context), timeout=600, check=True)
        else:
            self(*args, "-f", "-", str(context), input=containerfile, timeout=600, check=True)
        new = self("image", "inspect", tag, "--format", "{{.Id}}").stdout.strip()
        if old and old != new:
            self("rmi", old)  # the previous build of this tag, now untagged (fails harmlessly if in use)
        return tag

    def cleanup(self) -> None:
        if self.containers:
            self("rm", "-f", "-t", "0", *self.containers, timeout=60)
            self.containers.clear()


def median_ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1000:.0f} ms (min {min(samples) * 1000:.0f}, n={len(samples)})"
