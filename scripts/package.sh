#!/usr/bin/env bash
# Build dist/ignity-VERSION.tar.gz (and the same as dist/ignity.tar.gz): an offline installer for
# container images.
#
#   ignity-VERSION/install.sh           the installer (POSIX sh; needs only python3 >= 3.9 in the image)
#   ignity-VERSION/rootfs/etc/ignity/   the configuration skeleton
#   ignity-VERSION/wheels/              the ignity wheel and the wheels of its dependencies for
#                                       CPython $PY_VERSIONS on x86_64 and aarch64, glibc and musl
#
# One version of each dependency for every Python (resolved for the oldest one, then pinned),
# so what an image gets does not depend on its Python. Needs the network (PyPI); install.sh
# does not. Environment: PYTHON (the python that runs pip), PY_VERSIONS, PLATFORMS, OUT_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

PYTHON=${PYTHON:-}
if [ -z "$PYTHON" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
PY_VERSIONS=${PY_VERSIONS:-"3.9 3.10 3.11 3.12 3.13 3.14"}
# one platform tag per (arch, libc); pip also accepts the older manylinux tags below each one
PLATFORMS=${PLATFORMS:-"manylinux2014_x86_64 manylinux2014_aarch64 musllinux_1_2_x86_64 musllinux_1_2_aarch64"}
OUT_DIR=${OUT_DIR:-dist}

VERSION=$("$PYTHON" - <<'PY'
import re
text = open("pyproject.toml", encoding="utf-8").read()
print(re.search(r'(?m)^version\s*=\s*"([^"]+)"', text).group(1))
PY
)
mapfile -t DEPS < <("$PYTHON" - <<'PY'
try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib
with open("pyproject.toml", "rb") as f:
    for dep in tomllib.load(f)["project"]["dependencies"]:
        print(dep)
PY
)
NAME=ignity-$VERSION
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ignity-package.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
STAGE=$WORK/$NAME
mkdir -p "$STAGE/wheels" "$WORK/pins"
PIP=("$PYTHON" -m pip --disable-pip-version-check --no-cache-dir)
# this machine's pip configuration may name local indexes that lack some projects: say so once, not per file
exec 2> >(grep -v --line-buffered "is ignored: it is neither a file nor a directory" >&2)

echo "package: ignity $VERSION, dependencies: ${DEPS[*]}"

# the ignity wheel (pure Python); build isolation only when setuptools is not at hand
nbi=()
"$PYTHON" -c 'import setuptools, wheel' 2>/dev/null && nbi=(--no-build-isolation)
"${PIP[@]}" wheel -q --no-deps "${nbi[@]}" -w "$STAGE/wheels" "$ROOT"
rm -rf "$ROOT/build/lib" "$ROOT/build/bdist."*  # setuptools' leftovers

download() {  # download PYVER PLATFORM ARGS...: into a directory of the platform's own
  # (the parallel jobs below would otherwise write the same pure-Python wheel into one
  # directory at once, and pip reads a half-written file as "bad hash")
  local v=$1 plat=$2; shift 2
  "${PIP[@]}" download -q --only-binary=:all: --no-deps \
    --implementation cp --python-version "$v" --abi "cp${v/./}" --abi abi3 --abi none \
    --platform "$plat" -d "$WORK/dl/$plat" "$@"
}

# resolve once, for the oldest Python on the first platform, with dependencies ...
first_v=${PY_VERSIONS%% *}
first_p=${PLATFORMS%% *}
"${PIP[@]}" download -q --only-binary=:all: \
  --implementation cp --python-version "$first_v" --abi "cp${first_v/./}" --abi abi3 --abi none \
  --platform "$first_p" -d "$WORK/pins" "${DEPS[@]}"
# ... and pin every distribution found to that version
PINS=()
for whl in "$WORK"/pins/*.whl; do
  base=$(basename "$whl")
  PINS+=("${base%%-*}==$(echo "$base" | cut -d- -f2)")
done
echo "package: pinned ${PINS[*]}"

# then every (Python, platform) pair, without dependencies (the pins are the closure); one job
# per platform in parallel: pip's start-up, not the network, is most of the time
pids=()
for plat in $PLATFORMS; do
  (for v in $PY_VERSIONS; do download "$v" "$plat" "${PINS[@]}"; done) &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done
for plat in $PLATFORMS; do cp -f "$WORK/dl/$plat"/*.whl "$STAGE/wheels/"; done

cp install.sh "$STAGE/"
chmod 0755 "$STAGE/install.sh"
mkdir -p "$STAGE/rootfs"
cp -a rootfs/. "$STAGE/rootfs/"
printf '%s\n' "$VERSION" > "$STAGE/VERSION"
cp LICENSE "$STAGE/" 2>/dev/null || true

# keep a loose copy of the wheels: install.sh run from a source checkout takes its
# dependencies from dist/wheels when it has no network
mkdir -p "$OUT_DIR"
rm -rf "$OUT_DIR/wheels"
cp -a "$STAGE/wheels" "$OUT_DIR/wheels"

# reproducible archive: sorted names, fixed owner and mtime
mtime=$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || echo 0)
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$mtime" \
  -C "$WORK" -cf - "$NAME" | gzip -n -9 > "$OUT_DIR/$NAME.tar.gz"

(cd "$OUT_DIR" && sha256sum "$NAME.tar.gz" > "$NAME.tar.gz.sha256")
# the same archive under a name without the version, for Dockerfiles that must not change at
# each release (its top directory is still ignity-VERSION: unpack with --strip-components=1)
cp "$OUT_DIR/$NAME.tar.gz" "$OUT_DIR/ignity.tar.gz"

count=$(find "$STAGE/wheels" -name '*.whl' | wc -l)
size=$(du -k "$OUT_DIR/$NAME.tar.gz" | cut -f1)
echo "package: $OUT_DIR/$NAME.tar.gz ($count wheels, ${size} KiB)"
