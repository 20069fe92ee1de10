"""The README's Quickstart, verbatim, on a fresh Debian 12 that has only python3.

The two commands are read out of README.md (so the README cannot drift from what works) and run,
as root, in a fresh container of the base image (mmdebstrap minbase + python3: no pip, no venv
module, no go-task), over a copy of the repository's files. The container reaches the package
indexes only as this machine does: host network, this machine's pip and apt configuration
read-only (and the local files they name), its PIP_* and proxy variables. Privileged, because the
demo and the tests create PID namespaces.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from docs_support import quickstart
from e2e_support import BASE, FIGURES, ROOT

pytestmark = pytest.mark.skipif(os.environ.get("IGNITY_E2E") != "1",
                                reason="end-to-end tests in containers: set IGNITY_E2E=1 (task e2e)")

# where the pip and apt configuration of a Debian machine can be (pip: global, XDG and user files)
PIP_FILES = ("/etc/pip.conf", "/etc/xdg/pip", os.path.expanduser("~/.config/pip"),
             os.path.expanduser("~/.pip"), os.path.expanduser("~/.netrc"))
APT_FILES = ("/etc/apt/sources.list", "/etc/apt/sources.list.d", "/etc/apt/apt.conf.d",
             "/etc/apt/trusted.gpg.d", "/etc/apt/keyrings", "/etc/apt/auth.conf.d")
PASSED_ENV = re.compile(r"^(PIP_\w+|https?_proxy|HTTPS?_PROXY|no_proxy|NO_PROXY)$")
# a path named in a configuration file or variable: at the start of a token, or after file://
NAMED_PATH = re.compile(r"(?:^|[\s=,;\"'\]]|file://)(/[\w.+@-]+(?:/[\w.+@-]+)+)")
TOO_BROAD = {"/etc", "/usr", "/usr/share", "/opt", "/root", "/home", "/var", "/tmp", "/srv"}


def _text_of(path: Path) -> str:
    files = [path] if path.is_file() else [f for f in path.rglob("*") if f.is_file()]
    out = []
    for f in files:
        try:
            out.append(f.read_text(errors="replace"))
        except OSError:
            pass
    return "\n".join(out)


def host_config() -> tuple[list[str], list[str]]:
    """(podman options, what they are): this machine's pip/apt configuration, mounted read-only
    where the container's root expects it, the local paths it names, and the variables."""
    home = os.path.expanduser("~")
    mounts: dict[str, str] = {}
    named: list[str] = []
    for p in (*PIP_FILES, *APT_FILES):
        if os.path.exists(p):
            mounts[p] = "/root" + p[len(home):] if p.startswith(home + "/") else p
            if p in PIP_FILES:
                named.append(_text_of(Path(p)))
            elif "sources.list" in p:  # the keyrings the sources are signed by
                named.extend(re.findall(r"(?i)signed-by[:=]\s*(\S+)", _text_of(Path(p))))
    if not os.path.exists("/etc/apt/sources.list"):
        mounts["/dev/null"] = "/etc/apt/sources.list"  # the base image's own would add a second source
    env = {k: v for k, v in os.environ.items() if PASSED_ENV.match(k)}
    named.extend(env.values())
    for text in named:
        for p in NAMED_PATH.findall(text):
            p = os.path.normpath(p)
            if os.path.basename(p) == "simple":  # a local index: its files are beside simple/
                p = os.path.dirname(p)
            # the CA bundle is Debian's own there (ca-certificates comes with python3-venv): a
            # file mounted over it would make that package fail to install
            if p in TOO_BROAD or p.startswith("/etc/ssl/") or not os.path.exists(p):
                continue
            if any(p == m or p.startswith(m.rstrip("/") + "/") for m in mounts):
                continue
            mounts[p] = p
    # pip's CA bundle (this machine may reach PyPI through a proxy only it trusts): beside the
    # container's own bundle, not over it (Debian's ca-certificates rewrites that one)
    cert = env.get("PIP_CERT") or next(iter(re.findall(r"(?m)^\s*cert\s*=\s*(\S+)", "\n".join(
        _text_of(Path(p)) for p in PIP_FILES if os.path.exists(p)))), None)
    if cert and os.path.isfile(cert):
        mounts[os.path.realpath(cert)] = "/run/host-pip-cert.pem"
        env["PIP_CERT"] = "/run/host-pip-cert.pem"
    opts = []
    for src, dst in mounts.items():
        opts += ["-v", f"{src}:{dst}:ro"]
    for k, v in env.items():
        opts += ["-e", f"{k}={v}"]
    return opts, [*mounts, *env]


def repository_copy(dest: Path) -> Path:
    """The files of a clone: tracked ones and new ones not ignored, as they are in the work tree."""
    names = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, names):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def fresh_debian(podman, tmp_path, suffix: str) -> str:
    """A running container of the base image over a copy of the repository (a clone in root's
    home, as a root user following the README would have it); its name."""
    repo = repository_copy(tmp_path / "ignity")
    opts, what = host_config()
    print("host configuration given to the container:", " ".join(what))
    name = f"ignity-e2e-quickstart-{suffix}-{os.getpid()}"
    podman.containers.append(name)
    podman("run", "-d", "--name", name, "--privileged", "--network", "host", "-v", f"{repo}:/root/ignity",
           "-w", "/root/ignity", *opts, BASE, "sleep", "infinity", check=True)
    assert podman.exec(name, "sh", "-c", "! command -v pip pip3 task && ! python3 -c 'import ensurepip'"
                       ).returncode == 0, "the base image is not a fresh python3-only Debian"
    return name


@pytest.mark.timeout(900)
def test_quickstart_demo_without_apt(podman, tmp_path):
    """Where python3-venv cannot be installed (no apt-get here; not root, elsewhere), the bootstrap
    makes a venv without pip and fetches pip from the package index."""
    demo = quickstart()["demo"]
    name = fresh_debian(podman, tmp_path, "noapt")
    podman.exec(name, "mv", "/usr/bin/apt-get", "/usr/bin/apt-get.hidden", timeout=30)
    proc = podman.exec(name, "bash", "-c", demo, timeout=800)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{demo}: exit {proc.returncode}\n{out[-6000:]}"
    assert "no ensurepip: a venv without pip, then pip from the package index" in out, out[-3000:]
    assert "demo: the container exited 3" in out, out[-6000:]


@pytest.mark.timeout(1800)
def test_quickstart_on_a_fresh_debian(podman, tmp_path):
    cmds = quickstart()
    name = fresh_debian(podman, tmp_path, "fresh")

    t0 = time.monotonic()
    demo = podman.exec(name, "bash", "-c", cmds["demo"], timeout=900)
    FIGURES["quickstart demo on a fresh Debian 12 (bootstrap included)"] = f"{time.monotonic() - t0:.0f} s"
    out = demo.stdout + demo.stderr
    assert demo.returncode == 0, f"{cmds['demo']}: exit {demo.returncode}\n{out[-6000:]}"
    assert "demo: the container exited 3" in out, out[-6000:]

    t0 = time.monotonic()
    test = podman.exec(name, "bash", "-c", cmds["test"], timeout=1500)
    FIGURES["quickstart test on a fresh Debian 12"] = f"{time.monotonic() - t0:.0f} s"
    out = test.stdout + test.stderr
    assert test.returncode == 0, f"{cmds['test']}: exit {test.returncode}\n{out[-8000:]}"
    summary = re.search(r"(?m)^.*\b(\d+) passed\b.*$", test.stdout)
    # pytest exits 5 when it collects nothing; a summary without passed tests is no success either
    assert summary and int(summary.group(1)) >= 100, out[-4000:]
    FIGURES["quickstart test summary"] = summary.group(0).strip()
