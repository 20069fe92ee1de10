#!/bin/sh
# install.sh: install ignity into a container image (or any Linux system).
#
#   sh install.sh [--prefix DIR] [--bin-dir DIR] [--init PATH] [--conf-dir DIR]
#                 [--python PYTHON] [--wheels DIR] [--no-skeleton] [--s6-compat [--s6-root DIR]]
#   sh install.sh --uninstall [--prefix DIR] [--bin-dir DIR] [--init PATH]
#   sh install.sh --dry-run [--python PYTHON] [--wheels DIR]   (lists the wheels it would pick)
#
# Needs only a python3 >= 3.9. ignity and its dependencies go into their own directory
# (PREFIX/lib, default /opt/ignity/lib) that only ignity's launchers put on sys.path, and the
# launchers run that python with -I -S: the image's own Python packages never see ignity's and
# ignity never sees theirs. Creates /init, /usr/bin/{ignity,with-env,with-contenv,preboot,ignity-s6} and
# the /etc/ignity skeleton (existing files there are kept).
#
# --s6-compat: for images made for s6-overlay or the original ignity (docs/migrating.md). Also links
# s6's and s6-overlay's commands (s6-svc, s6-svwait, with-contenv, execlineb...) into /command and
# /package/admin/s6-overlay/command, and writes CONF_DIR/s6-compat, which turns the compatibility
# on at boot. --s6-root DIR puts those links under DIR instead of / (tests, staged roots).
#
# From the package tarball (scripts/package.sh) it installs from the wheels beside it, with no
# network. From a source checkout it takes ignity from src/ and the dependencies from --wheels DIR,
# $IGNITY_WHEELS or dist/wheels (left there by scripts/package.sh), else from PyPI with the
# image's pip. Nothing is left behind but what it installs: no pip, no caches, no build tools.
set -eu

PREFIX=/opt/ignity
BIN_DIR=/usr/bin
INIT_PATH=/init
CONF_DIR=/etc/ignity
PYTHON=${IGNITY_PYTHON:-}
WHEELS=${IGNITY_WHEELS:-}
SKELETON=1
S6_COMPAT=0
S6_ROOT=
ACTION=install
MIN_PY=3.9

say() { printf 'install.sh: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

usage() {
  sed -n '2,10s/^# \{0,1\}//p' "$0" >&2
  exit 2
}

while [ $# -gt 0 ]; do
  case $1 in
    --prefix) [ $# -ge 2 ] || usage; PREFIX=$2; shift 2 ;;
    --bin-dir) [ $# -ge 2 ] || usage; BIN_DIR=$2; shift 2 ;;
    --init) [ $# -ge 2 ] || usage; INIT_PATH=$2; shift 2 ;;
    --conf-dir) [ $# -ge 2 ] || usage; CONF_DIR=$2; shift 2 ;;
    --python) [ $# -ge 2 ] || usage; PYTHON=$2; shift 2 ;;
    --wheels) [ $# -ge 2 ] || usage; WHEELS=$2; shift 2 ;;
    --no-skeleton) SKELETON=0; shift ;;
    --s6-compat) S6_COMPAT=1; shift ;;
    --s6-root) [ $# -ge 2 ] || usage; S6_ROOT=$2; shift 2 ;;
    --uninstall) ACTION=uninstall; shift ;;
    --dry-run) ACTION=dry-run; shift ;;
    -h|--help) usage ;;
    *) say "unknown argument: $1"; usage ;;
  esac
done

case $PREFIX in /*) ;; *) die "--prefix must be an absolute path: $PREFIX" ;; esac
case $BIN_DIR in /*) ;; *) die "--bin-dir must be an absolute path: $BIN_DIR" ;; esac
case $INIT_PATH in /*) ;; *) die "--init must be an absolute path: $INIT_PATH" ;; esac

SRC=$(cd "$(dirname "$0")" && pwd)
LAUNCHERS="ignity with-env with-contenv preboot ignity-s6"
# the s6 and s6-overlay commands of --s6-compat: one launcher (ignity-s6) under each name
S6_COMMANDS="s6-svc s6-svwait s6-svstat s6-svscanctl s6-setuidgid s6-envuidgid s6-notifyoncheck execlineb with-contenv printcontenv logutil-service with-retries"
S6_OVERLAY_COMMANDS="with-contenv printcontenv logutil-service with-retries"
s6_links() {  # every link path --s6-compat makes
  for n in $S6_COMMANDS; do printf '%s\n' "$S6_ROOT/command/$n"; done
  for n in $S6_OVERLAY_COMMANDS; do printf '%s\n' "$S6_ROOT/package/admin/s6-overlay/command/$n"; done
}

# ---------------------------------------------------------------------------- uninstall
if [ "$ACTION" = uninstall ]; then
  for f in "$INIT_PATH" $(for n in $LAUNCHERS; do printf '%s\n' "$BIN_DIR/$n"; done) $(s6_links); do
    if [ -L "$f" ]; then
      case $(readlink "$f") in "$PREFIX"/*) rm -f "$f" ;; esac
    fi
  done
  [ -f "$PREFIX/.ignity-install" ] && rm -rf "$PREFIX"
  rm -f "$CONF_DIR/s6-compat"
  say "removed ignity from $PREFIX (the configuration in $CONF_DIR is kept)"
  exit 0
fi

# ---------------------------------------------------------------------------- python3
no_python() {
  say "$1"
  cat >&2 <<EOF
ignity needs python3 >= $MIN_PY in the image (only the interpreter: no pip, no venv). Install it first:
  Debian, Ubuntu:      apt-get update && apt-get install -y --no-install-recommends python3 && rm -rf /var/lib/apt/lists/*
  Alpine:              apk add --no-cache python3
  Fedora, RHEL, UBI:   dnf install -y python3 && dnf clean all     (microdnf on ubi-minimal)
or name an interpreter with --python PATH (or IGNITY_PYTHON=PATH).
EOF
  exit 1
}

py_ok() {  # py_ok PYTHON: true when it runs and is recent enough
  "$1" -I -S -c 'import sys; sys.exit(sys.version_info < (3, 9))' >/dev/null 2>&1
}

if [ -n "$PYTHON" ]; then
  case $PYTHON in
    /*) ;;
    *) found=$(command -v "$PYTHON" 2>/dev/null) || no_python "--python $PYTHON: not found"; PYTHON=$found ;;
  esac
  [ -x "$PYTHON" ] || no_python "--python $PYTHON: not an executable"
  py_ok "$PYTHON" || no_python "$PYTHON is not a python >= $MIN_PY ($("$PYTHON" -V 2>&1 || true))"
else
  old=
  for name in python3 python3.14 python3.13 python3.12 python3.11 python3.10 python3.9; do
    cand=$(command -v "$name" 2>/dev/null) || continue
    case $cand in /*) ;; *) continue ;; esac
    if py_ok "$cand"; then PYTHON=$cand; break; fi
    if [ -z "$old" ]; then
      ver=$("$cand" -V 2>&1 | head -n 1) || true
      old="$cand (${ver:-does not run})"
    fi
  done
  if [ -z "$PYTHON" ]; then
    if [ -n "$old" ]; then no_python "found $old, too old"; fi
    no_python "no python3 found in PATH ($PATH)"
  fi
fi
case $PYTHON in *[!A-Za-z0-9/._+-]*) die "the python path must not contain spaces or special characters: $PYTHON" ;; esac

# ---------------------------------------------------------------------------- what to install
if [ -d "$SRC/wheels" ] && ls "$SRC"/wheels/ignity-*.whl >/dev/null 2>&1; then
  MODE=package
  WHEELS=$SRC/wheels
elif [ -f "$SRC/src/ignity/__init__.py" ]; then
  MODE=source
  if [ -z "$WHEELS" ] && ls "$SRC"/dist/wheels/*.whl >/dev/null 2>&1; then WHEELS=$SRC/dist/wheels; fi
else
  die "$SRC is neither an ignity package (wheels/) nor a source checkout (src/ignity/)"
fi
[ -z "$WHEELS" ] || [ -d "$WHEELS" ] || die "wheel directory not found: $WHEELS"

if [ "$ACTION" = dry-run ]; then
  [ -n "$WHEELS" ] || die "--dry-run needs wheels: the package's, dist/wheels or --wheels DIR"
  STAGING=/nonexistent
else
  umask 022
  mkdir -p "$PREFIX"
  STAGING=$PREFIX/.lib.new
  rm -rf "$STAGING" "$PREFIX/.lib.old"
  trap 'rm -rf "$STAGING"' EXIT
  mkdir -p "$STAGING"

  if [ "$MODE" = source ]; then
    # ignity itself: pure Python, copied as is
    mkdir -p "$STAGING/ignity"
    (cd "$SRC/src/ignity" && find . -name __pycache__ -prune -o -type f -name '*.py' -print) |
      while IFS= read -r f; do
        mkdir -p "$STAGING/ignity/$(dirname "$f")"
        cp "$SRC/src/ignity/$f" "$STAGING/ignity/$f"
      done
    if [ -z "$WHEELS" ]; then
      # no wheels at hand: the dependencies from PyPI, with the image's pip (network needed)
      "$PYTHON" -m pip --version >/dev/null 2>&1 ||
        die "from a source checkout, the dependencies come from dist/wheels (run scripts/package.sh, or 'task package'), --wheels DIR, or PyPI through the image's pip, and $PYTHON has no pip. Use the package tarball instead: it needs nothing."
      deps=$("$PYTHON" -I -S - "$SRC/pyproject.toml" <<'PY'
import re, sys
text = open(sys.argv[1], encoding="utf-8").read()
block = re.search(r'(?ms)^dependencies\s*=\s*\[(.*?)\]', text).group(1)
print(" ".join(re.findall(r'"([^"]+)"', block)))
PY
)
      say "installing the dependencies from PyPI: $deps"
      # shellcheck disable=SC2086
      PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore "$PYTHON" -m pip install -q --no-cache-dir --no-compile \
        --only-binary=:all: --target "$STAGING" $deps
      rm -rf "${STAGING:?}/bin"  # the dependencies' own console scripts
    fi
  fi
fi

# ---------------------------------------------------------------------------- wheels, launchers
# One Python program does the rest: pick the wheel of each distribution that fits this
# interpreter (CPython version, x86_64/aarch64, glibc/musl), unzip it, compile, write launchers.
"$PYTHON" -I -S - "$MODE" "$WHEELS" "$STAGING" "$PREFIX" "$PYTHON" "$ACTION" <<'PY'
import os
import re
import shutil
import struct
import subprocess
import sys
import sysconfig
import zipfile

mode, wheels, staging, prefix, python, action = sys.argv[1:7]


def fail(msg):
    sys.stderr.write("install.sh: " + msg + "\n")
    sys.exit(1)


def norm(name):
    return re.sub(r"[-_.]+", "_", name).lower()


# -- this interpreter's tags
if sys.implementation.name != "cpython":
    fail("ignity's package has wheels for CPython only, not %s" % sys.implementation.name)
minor = sys.version_info[1]
free_threaded = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
abi = "cp3%d%s" % (minor, "t" if free_threaded else "")
machine = os.uname().machine
if struct.calcsize("P") == 4:  # 32-bit userland on a 64-bit kernel
    machine = {"x86_64": "i686", "aarch64": "armv7l"}.get(machine, machine)
libc, libc_version = None, (0, 0)
try:
    name, _, version = os.confstr("CS_GNU_LIBC_VERSION").partition(" ")
    if name == "glibc":
        libc, libc_version = "glibc", tuple(int(x) for x in version.split(".")[:2])
except (ValueError, OSError, AttributeError):
    pass
if libc is None:
    loader = "/lib/ld-musl-%s.so.1" % machine
    if os.path.exists(loader):
        libc, libc_version = "musl", (1, 2)
        try:
            out = subprocess.run([loader], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL).stderr
            m = re.search(rb"Version (\d+)\.(\d+)", out)
            if m:
                libc_version = (int(m.group(1)), int(m.group(2)))
        except OSError:
            pass
LEGACY = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}
if action == "dry-run" and os.environ.get("IGNITY_INSTALL_AS"):
    # "MINOR MACHINE LIBC LIBC_VERSION", e.g. "12 aarch64 musl 1.2": another interpreter's choice (tests)
    _m, machine, libc, _v = os.environ["IGNITY_INSTALL_AS"].split()
    minor, libc_version, abi = int(_m), tuple(int(x) for x in _v.split(".")), "cp3" + _m
here = "CPython 3.%d on %s/%s %s" % (minor, machine, libc or "unknown libc", ".".join(map(str, libc_version)))


def platform_ok(tag):
    if tag == "any":
        return True
    m = re.fullmatch(r"(manylinux|musllinux)_(\d+)_(\d+)_(\w+)", tag)
    if m:
        kind, want, arch = m.group(1), (int(m.group(2)), int(m.group(3))), m.group(4)
    else:
        m = re.fullmatch(r"(manylinux1|manylinux2010|manylinux2014)_(\w+)", tag)
        if not m:
            return False
        kind, want, arch = "manylinux", LEGACY[m.group(1)], m.group(2)
    if arch != machine:
        return False
    if kind == "manylinux":
        return libc == "glibc" and want <= libc_version
    return libc == "musl" and want <= libc_version


def python_ok(py, ab):
    """Score of a (python tag, abi tag) pair for this interpreter: 0 when it does not fit."""
    m = re.fullmatch(r"(py|cp)3(\d*)", py)
    if not m:
        return 0
    ver = int(m.group(2)) if m.group(2) else None
    if ab == abi and m.group(1) == "cp" and ver == minor:
        return 3
    if ab == "abi3" and m.group(1) == "cp" and not free_threaded and (ver or 0) <= minor:
        return 2
    if ab == "none" and (ver is None or ver <= minor):
        return 1
    return 0


def score(filename):
    parts = filename[:-4].split("-")
    if len(parts) not in (5, 6):
        return 0
    py, ab, plat = parts[-3:]
    if not any(platform_ok(p) for p in plat.split(".")):
        return 0
    return max(python_ok(p, a) for p in py.split(".") for a in ab.split("."))


def version_key(filename):
    return tuple(int(x) for x in re.findall(r"\d+", filename.split("-")[1]))


def unpack(path, drop_native=False):
    with zipfile.ZipFile(path) as z:
        for info in z.infolist():
            name = info.filename
            if name.endswith("/") or ".." in name.split("/"):
                continue
            parts = name.split("/")
            if parts[0].endswith(".data"):  # purelib/platlib go to the top; scripts, headers, data don't
                if len(parts) < 3 or parts[1] not in ("purelib", "platlib"):
                    continue
                parts = parts[2:]
            if drop_native and parts[-1].endswith(".so"):
                continue
            target = os.path.join(staging, *parts)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with z.open(info) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)


# -- pick one wheel per distribution
# markupsafe's compiled speedups are optional (it falls back to pure Python): on an interpreter
# the package has no wheel for, its Python files are taken from any of its wheels.
OPTIONAL_NATIVE = {"markupsafe"}
chosen = {}
if wheels:
    by_dist = {}
    for f in sorted(os.listdir(wheels)):
        if f.endswith(".whl"):
            by_dist.setdefault(norm(f.split("-")[0]), []).append(f)
    if mode == "source":
        by_dist.pop("ignity", None)  # ignity itself comes from src/
    for dist, files in sorted(by_dist.items()):
        fitting = [f for f in files if score(f) > 0]
        if fitting:
            chosen[dist] = (max(fitting, key=lambda f: (version_key(f), score(f))), False)
        elif dist in OPTIONAL_NATIVE:
            chosen[dist] = (max(files, key=version_key), True)
            sys.stderr.write("install.sh: no %s wheel for %s: using its pure-Python fallback\n" % (dist, here))
        else:
            fail("no %s wheel fits %s; this package has wheels for CPython 3.9-3.14 on x86_64 and "
                 "aarch64, glibc and musl" % (dist, here))
    if action == "dry-run":
        for dist, (f, drop) in sorted(chosen.items()):
            print(f + (" (pure Python)" if drop else ""))
        sys.exit(0)
    for dist, (f, drop) in sorted(chosen.items()):
        unpack(os.path.join(wheels, f), drop_native=drop)

# -- no tests or tools of the dependencies in the image
for junk in ("psutil/tests",):
    shutil.rmtree(os.path.join(staging, junk), ignore_errors=True)
for d in os.listdir(staging):
    if d.endswith(".dist-info"):
        for f in ("RECORD", "INSTALLER", "REQUESTED", "direct_url.json"):
            try:
                os.unlink(os.path.join(staging, d, f))
            except FileNotFoundError:
                pass

# -- check that it imports with this interpreter, isolated as the launchers will run it
check = subprocess.run(
    [python, "-I", "-S", "-c",
     "import sys; sys.path.insert(0, sys.argv[1]); import ignity.cli, dotenv, psutil, jinja2, markupsafe; "
     "print(ignity.__version__)", staging],
    stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
if check.returncode != 0:
    fail("the installed ignity does not import with %s:\n%s" % (python, check.stderr.strip()))
version = check.stdout.strip()

# -- bytecode ahead of time (read-only root file systems, fast start); unchecked-hash: an image's
# files do not change under it, so the interpreter never stats the sources to validate them
import compileall  # noqa: E402
import py_compile  # noqa: E402

if not compileall.compile_dir(staging, quiet=1, invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH):
    fail("byte-compiling %s failed" % staging)

with open(os.path.join(staging, ".version"), "w") as f:
    f.write(version + "\n")
for dist, (f, drop) in sorted(chosen.items()):
    sys.stderr.write("install.sh:   %s%s\n" % (f, " (pure Python)" if drop else ""))
PY
[ "$ACTION" != dry-run ] || exit 0
VERSION=$(cat "$STAGING/.version")

# swap the new lib in
if [ -d "$PREFIX/lib" ]; then mv "$PREFIX/lib" "$PREFIX/.lib.old"; fi
mv "$STAGING" "$PREFIX/lib"
rm -rf "$PREFIX/.lib.old"
trap - EXIT

# launchers: a python script each, run by the image's python with -I (no PYTHON* variables, no
# user site) and -S (no site-packages, and no `site` import: faster start)
mkdir -p "$PREFIX/bin"
launcher() {  # launcher NAME FUNCTION ARGS
  cat > "$PREFIX/bin/$1.new" <<EOF
#!$PYTHON -IS
# ignity $VERSION launcher, written by install.sh: ignity's own packages only, not the image's
import _signal as signal  # not signal: that one imports enum, ~4 ms of every start
import sys
# Ctrl-C before ignity's own handlers: end quietly (or, as PID 1, be ignored), not with a traceback
signal.signal(signal.SIGINT, signal.SIG_DFL)
sys.path.insert(0, "$PREFIX/lib")
from ignity.cli import $2
sys.exit($2($3))
EOF
  chmod 0755 "$PREFIX/bin/$1.new"
  mv -f "$PREFIX/bin/$1.new" "$PREFIX/bin/$1"
}
launcher init main '["init", *sys.argv[1:]]'
launcher ignity main ''
launcher with-env with_env_main ''
launcher preboot preboot_main ''
launcher ignity-s6 s6_main ''

link() {  # link TARGET PATH
  mkdir -p "$(dirname "$2")"
  # PATH is TARGET itself (--bin-dir PREFIX/bin, --init PREFIX/bin/init): the launcher is already there
  if [ "${1##*/}" = "${2##*/}" ] &&
     [ "$(cd "$(dirname "$1")" && pwd -P)" = "$(cd "$(dirname "$2")" && pwd -P)" ]; then
    return 0
  fi
  if [ -e "$2" ] && ! [ -L "$2" ]; then say "replacing $2"; fi
  ln -sfn "$1" "$2.ignity-new"
  mv -f "$2.ignity-new" "$2"
}
link "$PREFIX/bin/init" "$INIT_PATH"
link "$PREFIX/bin/ignity" "$BIN_DIR/ignity"
link "$PREFIX/bin/with-env" "$BIN_DIR/with-env"
link "$PREFIX/bin/with-env" "$BIN_DIR/with-contenv"
link "$PREFIX/bin/preboot" "$BIN_DIR/preboot"
link "$PREFIX/bin/ignity-s6" "$BIN_DIR/ignity-s6"
printf 'ignity %s\npython %s\n' "$VERSION" "$PYTHON" > "$PREFIX/.ignity-install"

if [ "$S6_COMPAT" = 1 ]; then
  for f in $(s6_links); do link "$PREFIX/bin/ignity-s6" "$f"; done
  mkdir -p "$CONF_DIR"
  # the marker: its first line names the launcher that /run/s6/basedir/bin/halt links to at boot
  printf '%s\n' "$PREFIX/bin/ignity-s6" > "$CONF_DIR/s6-compat"
  say "s6-overlay compatibility on: s6 commands in $S6_ROOT/command, marker $CONF_DIR/s6-compat"
fi

# the configuration skeleton: created where missing, never overwritten
if [ "$SKELETON" = 1 ]; then
  for d in envs perms init services finalize; do
    mkdir -p "$CONF_DIR/$d"
  done
  if [ -d "$SRC/rootfs/etc/ignity" ]; then
    (cd "$SRC/rootfs/etc/ignity" && find . -type f) | while IFS= read -r f; do
      [ -e "$CONF_DIR/$f" ] || { mkdir -p "$(dirname "$CONF_DIR/$f")"; cp -p "$SRC/rootfs/etc/ignity/$f" "$CONF_DIR/$f"; }
    done
  fi
fi

say "ignity $VERSION installed in $PREFIX for $PYTHON ($MODE); $INIT_PATH and $BIN_DIR/{ignity,with-env,with-contenv,preboot,ignity-s6}"
