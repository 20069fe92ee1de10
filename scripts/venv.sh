#!/bin/sh
# scripts/venv.sh DIR: make DIR a virtualenv with a working pip, from the machine's python3 alone.
#
# A stock Debian or Ubuntu python3 has neither pip nor the venv module's ensurepip (they are the
# packages python3-pip and python3-venv), and refuses `pip install` outside a venv (PEP 668). So:
#   1. DIR already has a python with pip: nothing to do;
#   2. `python3 -m venv DIR` when ensurepip is there;
#   3. as root with apt-get: install python3-venv, then 2;
#   4. otherwise `python3 -m venv --without-pip DIR`, and pip itself from the package index
#      (PIP_INDEX_URL, default https://pypi.org/simple): its wheel runs from the zip to install pip.
# The python is /usr/bin/python3 when there is one (a pyenv under /root is not readable by the
# non-root users some tests drop to), else the first python3 on PATH. PYTHON overrides it.
set -eu
[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
DIR=$1
say() { printf 'venv: %s\n' "$*" >&2; }

PYTHON=${PYTHON:-}
if [ -z "$PYTHON" ]; then
  if [ -x /usr/bin/python3 ]; then PYTHON=/usr/bin/python3; else PYTHON=$(command -v python3 || true); fi
fi
[ -n "$PYTHON" ] || { say "no python3 found: install it (apt-get install python3)"; exit 1; }
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 9))' ||
  { say "$PYTHON is older than 3.9: ignity needs python3 >= 3.9"; exit 1; }

if [ -x "$DIR/bin/python" ] && "$DIR/bin/python" -m pip --version >/dev/null 2>&1; then
  exit 0
fi

has_ensurepip() { "$PYTHON" -c 'import ensurepip' 2>/dev/null; }
if ! has_ensurepip && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  say "installing python3-venv (the venv module of Debian's and Ubuntu's python3)"
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null; }; then
    say "apt-get install python3-venv failed: pip will come from the package index instead"
  fi
fi

rm -rf "$DIR"
if has_ensurepip; then
  "$PYTHON" -m venv "$DIR"
  exit 0
fi

say "no ensurepip: a venv without pip, then pip from the package index"
"$PYTHON" -m venv --without-pip "$DIR"
"$DIR/bin/python" - <<'PY'
import json
import os
import runpy
import ssl
import sys
import tempfile
import urllib.request

index = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/")
cafile = os.environ.get("PIP_CERT") or os.environ.get("SSL_CERT_FILE") or None
context = ssl.create_default_context(cafile=cafile) if index.startswith("https:") else None


def get(url, accept="*/*"):
    req = urllib.request.Request(url, headers={"Accept": accept})
    with urllib.request.urlopen(req, timeout=60, context=context) as resp:
        return resp.read()


try:
    # the simple repository API in JSON (PEP 691): every file of the project `pip`
    files = json.loads(get(index + "/pip/", "application/vnd.pypi.simple.v1+json"))["files"]
    wheels = [f for f in files if f["filename"].endswith("-py3-none-any.whl") and not f.get("yanked")]
    newest = max(wheels, key=lambda f: tuple(int(x) for x in f["filename"].split("-")[1].split(".")[:3]
                                             if x.isdigit()))
    url = urllib.request.urljoin(index + "/pip/", newest["url"])
    data = get(url)
except Exception as e:  # any failure here is the same for the user: no pip
    sys.exit("venv: cannot fetch pip from %s (%s): install python3-venv instead" % (index, e))
with tempfile.TemporaryDirectory() as tmp:
    whl = os.path.join(tmp, newest["filename"])
    with open(whl, "wb") as f:
        f.write(data)
    # a pip wheel runs from its zip: it installs itself into this venv
    sys.path.insert(0, whl)
    sys.argv = ["pip", "install", "-q", "--disable-pip-version-check", whl]
    runpy.run_module("pip", run_name="__main__")
PY
