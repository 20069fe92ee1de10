"""install.sh's choice of wheels for every interpreter the package supports (no container: the
choice is made as for another interpreter with --dry-run and IGNITY_INSTALL_AS)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from e2e_support import BASE, ROOT

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


# ---- every documented combination of install.sh's options, in a fresh container ------------------
# (docs/install.md lists the same combinations; each installs, runs what it installed, reinstalls
# over itself, and uninstalls with the same options, leaving no stray file behind)

INSTALLS = {
    # id: (options, prefix, bin dir, init path, conf dir)
    "defaults": ("", "/opt/ignity", "/usr/bin", "/init", "/etc/ignity"),
    "usr-local": ("--prefix /usr/local/ignity --bin-dir /usr/local/bin",
                  "/usr/local/ignity", "/usr/local/bin", "/init", "/etc/ignity"),
    "bin-dir-is-prefix-bin": ("--prefix /usr/local --bin-dir /usr/local/bin",
                              "/usr/local", "/usr/local/bin", "/init", "/etc/ignity"),
    "all-in-prefix": ("--prefix /opt/ig --bin-dir /opt/ig/bin --init /opt/ig/bin/init",
                      "/opt/ig", "/opt/ig/bin", "/opt/ig/bin/init", "/etc/ignity"),
    "init-elsewhere": ("--init /sbin/ignity-init", "/opt/ignity", "/usr/bin", "/sbin/ignity-init", "/etc/ignity"),
    "conf-dir": ("--conf-dir /srv/ignity", "/opt/ignity", "/usr/bin", "/init", "/srv/ignity"),
    "python-path": ("--python /usr/bin/python3", "/opt/ignity", "/usr/bin", "/init", "/etc/ignity"),
    "python-name": ("--python python3", "/opt/ignity", "/usr/bin", "/init", "/etc/ignity"),
    "no-skeleton": ("--no-skeleton", "/opt/ignity", "/usr/bin", "/init", None),
    "s6-compat": ("--s6-compat", "/opt/ignity", "/usr/bin", "/init", "/etc/ignity"),
    "s6-compat-root": ("--s6-compat --s6-root /stage", "/opt/ignity", "/usr/bin", "/init", "/etc/ignity"),
}

CHECK = r"""
set -eu
fail() { echo "FAIL: $*"; exit 1; }
install() { sh "$SRC/install.sh" "$@" 2>/tmp/install.log || { cat /tmp/install.log; fail "install.sh $*"; }; }
install $OPTS
for n in ignity with-env with-contenv preboot; do [ -x "$BIN/$n" ] || fail "no $BIN/$n"; done
[ -x "$INIT" ] || fail "no $INIT"
set +e
IGNITY_CONF_DIR=${CONF:-/etc/ignity} "$INIT" sh -c 'exit 3'; rc=$?
set -e
[ "$rc" = 3 ] || fail "$INIT sh -c 'exit 3' exited $rc"
"$BIN/with-contenv" true || fail "with-contenv"
rc=0; "$BIN/ignity" status 2>/dev/null || rc=$?
[ "$rc" = 111 ] || fail "ignity status without a running init exited $rc, not 111"
if [ -n "$CONF" ]; then
  for d in envs perms init services finalize; do [ -d "$CONF/$d" ] || fail "no $CONF/$d"; done
else
  [ ! -e /etc/ignity ] || fail "--no-skeleton made /etc/ignity"
fi
if [ -n "$S6" ]; then
  [ -x "${S6%/}/command/s6-svc" ] || fail "--s6-compat: no ${S6%/}/command/s6-svc"
  [ -f "$CONF/s6-compat" ] || fail "--s6-compat: no $CONF/s6-compat"
fi
install $OPTS
stray=$(find / -xdev \( -name '*.ignity-new' -o -name '*.new' -o -name '.lib.*' \) -print 2>/dev/null |
  grep -v '^/proc' || true)
[ -z "$stray" ] || fail "stray files: $stray"
sh "$SRC/install.sh" --uninstall $OPTS 2>/dev/null || fail "uninstall"
for f in "$INIT" "$BIN/ignity" "$BIN/with-env" "$BIN/with-contenv" "$BIN/preboot" \
         "$PREFIX/lib" "$PREFIX/.ignity-install"; do
  [ ! -e "$f" ] && [ ! -L "$f" ] || fail "$f left after --uninstall"
done
if [ -n "$S6" ] && [ -e "${S6%/}/command/s6-svc" ]; then fail "${S6%/}/command/s6-svc left after --uninstall"; fi
echo OK
"""


def check_env(**values: str) -> tuple[str, ...]:
    """podman -e options for CHECK."""
    return tuple(opt for k, v in values.items() for opt in ("-e", f"{k}={v}"))


@pytest.mark.parametrize("case", INSTALLS)
def test_install_options(podman, package_dir, case):
    opts, prefix, bin_dir, init, conf = INSTALLS[case]
    # where --s6-compat puts /command: / or --s6-root's
    s6 = (opts.split("--s6-root ")[1].split()[0] if "--s6-root" in opts else "/") if "--s6-compat" in opts else ""
    env = check_env(OPTS=opts, PREFIX=prefix, BIN=bin_dir, INIT=init, CONF=conf or "", SRC="/pkg", S6=s6)
    proc = podman.run(BASE, "sh", "-c", CHECK, opts=("-v", f"{package_dir}:/pkg:ro", *env))
    assert proc.returncode == 0 and proc.stdout.strip().endswith("OK"), proc.stdout + proc.stderr


def test_install_from_a_source_checkout_with_wheels(podman, package, tmp_path):
    """`--wheels DIR` from a source checkout (ignity from src/, the dependencies from DIR)."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("install.sh", "pyproject.toml"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "src" / "ignity", src / "src" / "ignity", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "rootfs", src / "rootfs")
    env = check_env(OPTS="--wheels /wheels", PREFIX="/opt/ignity", BIN="/usr/bin", INIT="/init", CONF="/etc/ignity",
                    SRC="/src", S6="")
    proc = podman.run(BASE, "sh", "-c", CHECK, opts=(
        "-v", f"{src}:/src:ro", "-v", f"{ROOT / 'dist' / 'wheels'}:/wheels:ro", *env))
    assert proc.returncode == 0 and proc.stdout.strip().endswith("OK"), proc.stdout + proc.stderr
