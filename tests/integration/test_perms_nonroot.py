"""SPEC §6 (perms/, preboot, non-root, read-only root), §3 stage 2.1, §5 row 7, §11.7-8.

Boot tests run ignity as PID 1 of a PID + mount namespace (the `ct` fixture). The non-root tests
make that namespace look like `docker run --read-only --tmpfs /run/ignity:uid=1000,... --user
1000:1000`: every mount but /proc, /sys and /dev is remounted read-only inside the namespace only,
a tmpfs owned by 1000 is mounted on the runtime dir, and setpriv drops to 1000:1000 before
exec'ing ignity. preboot runs in a mount namespace whose /etc is a copy, so the host's accounts
are never touched.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from integration.harness import PY, STD_PATH, UNSHARE

UID = 1000
PREBOOT = [PY, "-c", "import sys; from ignity.cli import preboot_main; sys.exit(preboot_main())"]


def owner_mode(path: Path) -> tuple[int, int, int]:
    st = os.lstat(path)
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


def make_tree(top: Path) -> Path:
    """data/ with a file, a sub dir with a file: all root's, 0644/0755."""
    data = top / "data"
    (data / "sub").mkdir(parents=True)
    (data / "a.txt").write_text("a")
    (data / "sub" / "b.txt").write_text("b")
    for d in (data, data / "sub"):
        os.chmod(d, 0o755)
    return data


# ---- perms at boot ------------------------------------------------------------------------------

def test_perms_applied_at_boot(ct):
    """§6: both line formats, {{USERMAP_UID}} and a variable of envs/ rendered, names resolved,
    applied before init scripts; a missing path is reported and skipped, the boot goes on."""
    data = make_tree(ct.base)
    ct.envfile("10-app", f"DATA={data}\n")
    perms = ct.write("perms/10-app", "\n".join([
        "# the app's tree, then a tighter rule inside it",
        "{{DATA}} {{USERMAP_UID}}:{{USERMAP_GID}} 0640 0750",
        "{{DATA}}/sub true root:nogroup 0600 0700",
        "{{DATA}}/a.txt false nobody:root 0604 0700",
        "/nonexistent/ignity-perms 0:0 0644 0755",
        "",
    ]))
    ct.init("10-look", f"stat -c '%u:%g %a' {data}/a.txt > {ct.out}/at-init")
    ct.start("/bin/sh", "-c", "exit 5", env={"USERMAP_UID": "1000", "USERMAP_GID": "1001"})
    assert ct.wait() == 5, ct.diag()
    assert owner_mode(data) == (1000, 1001, 0o750)
    assert owner_mode(data / "a.txt") == (65534, 0, 0o604)
    assert ct.read("at-init") == "65534:0 604\n"  # perms are stage 2.1, before init/
    assert owner_mode(data / "sub") == (0, 65534, 0o700)
    assert owner_mode(data / "sub" / "b.txt") == (0, 65534, 0o600)
    assert (f"ignity: warning: perms file {perms} line 5: /nonexistent/ignity-perms does not exist: skipped"
            in ct.stderr), ct.diag()


def test_second_boot_changes_nothing(ct):
    """§6: only what differs is changed: a second boot leaves every ctime where it was."""
    data = make_tree(ct.base)
    ct.write("perms/10-app", f"{data} 1000:1000 0640 0750\n{data}/sub false 0:0 0700 0700\n")
    ct.start("true")
    assert ct.wait() == 0, ct.diag()
    paths = [data, data / "a.txt", data / "sub", data / "sub" / "b.txt"]
    before = [os.lstat(p).st_ctime_ns for p in paths]
    ct.start("true", env={"IGNITY_VERBOSITY": "2"})
    assert ct.wait() == 0, ct.diag()
    assert [os.lstat(p).st_ctime_ns for p in paths] == before
    assert "perms: 2 rules applied, 0 changes" in ct.stderr, ct.diag()


def test_malformed_line_exits_100_naming_file_and_line(ct):
    """§6, §5 row 7: a malformed line stops stage 2 with exit 100 naming file and line; no init
    script, service or CMD starts, and no earlier line is applied."""
    data = make_tree(ct.base)
    ct.write("perms/00-good", f"{data} 1000:1000 0600 0700\n")
    bad = ct.write("perms/10-bad", "# comment\n\n/srv 1000:1000 0644\n")
    ct.init("10-init", f"touch {ct.out}/init-ran")
    ct.service("web", f"touch {ct.out}/service-ran; exec sleep 100")
    ct.start("/bin/sh", "-c", f"touch {ct.out}/cmd-ran")
    assert ct.wait() == 100, ct.diag()
    assert (f"ignity: fatal: perms file {bad} line 3: a field is missing: expected 4 fields "
            "'path account fmode dmode' or 5 fields 'path recurse account fmode dmode', got 3" in ct.stderr), ct.diag()
    assert sorted(os.listdir(ct.out)) == []
    assert owner_mode(data)[:2] == (0, 0)


def test_undefined_variable_exits_100(ct):
    """§6, §11.7: an undefined variable is an error naming file and line: exit 100."""
    bad = ct.write("perms/10-app", "/srv 0:0 0644 0755\n{{APP_HOME}} 0:0 0644 0755\n")
    ct.start("/bin/sh", "-c", f"touch {ct.out}/cmd-ran")
    assert ct.wait() == 100, ct.diag()
    assert f"perms file {bad} line 2: 'APP_HOME' is undefined" in ct.stderr, ct.diag()
    assert not (ct.out / "cmd-ran").exists()


def test_skip_perms(ct):
    """§9: IGNITY_SKIP_PERMS=1 skips perms/ at boot, even a broken one."""
    ct.write("perms/10-bad", "not a perms line\n{{UNDEFINED}}\n")
    ct.start("/bin/sh", "-c", "exit 3", env={"IGNITY_SKIP_PERMS": "1"})
    assert ct.wait() == 3, ct.diag()


# ---- non-root, read-only root -------------------------------------------------------------------

def _as_uid_can_run_ignity() -> str | None:
    done = subprocess.run(["setpriv", f"--reuid={UID}", f"--regid={UID}", "--clear-groups", PY, "-c",
                           "import ignity"], capture_output=True, text=True, cwd="/")
    if done.returncode != 0:
        return (f"uid {UID} cannot run {PY} -m ignity (use a venv made from /usr/bin/python3, with "
                f"ignity installed, e.g. `task setup`): {done.stderr.strip()[-200:]}")
    return None


def _read_only_wrapper(ct, noexec: bool) -> str:
    """PID 1's first steps: every mount read-only (in this namespace only), a tmpfs of uid 1000 on
    the runtime dir, a check that the root really is read-only, then exec ignity as 1000:1000."""
    options = f"uid={UID},gid={UID},mode=0700" + (",noexec" if noexec else "")
    return "\n".join([
        "set -e",
        "mount -o remount,bind,ro /",
        "for m in $(awk '$2 !~ \"^/(proc|sys|dev)(/|$)\" {print $2}' /proc/self/mounts); do",
        '  mount -o remount,bind,ro "$m" 2>/dev/null || true',
        "done",
        f"mount -t tmpfs -o {options} tmpfs {ct.run_dir}",
        f"if touch {ct.base}/probe 2>/dev/null; then echo 'root file system still writable' >&2; exit 99; fi",
        f'exec setpriv --reuid={UID} --regid={UID} --clear-groups "$@"',
    ])


@pytest.mark.parametrize("noexec", [False, True], ids=["tmpfs", "noexec-tmpfs"])
def test_uid_1000_on_read_only_root_with_tmpfs_runtime_dir(ct, noexec):
    """§6: `/init` as uid 1000 in a PID namespace, root file system read-only, a tmpfs of its own
    on the runtime dir: boots, runs a service and the CMD, exits with the CMD's code. perms that
    need root are skipped with one warning and no failed chown/chmod (nothing is attempted on the
    read-only tree); nothing is written outside the runtime dir."""
    reason = _as_uid_can_run_ignity()
    if reason:
        pytest.skip(reason)
    data = make_tree(ct.base)  # root's, so neither chown nor chmod is ours to make
    ct.write("perms/10-app", "{{DATA}} {{USERMAP_UID}}:{{USERMAP_GID}} 0640 0750\n")
    ct.service("web", "echo web-up; exec sleep 1000")
    ct.run_dir.mkdir()
    cmd = ("id -u; id -g; ignity wait -u -t 5000 web || exit 90; "
           f"touch {ct.base}/cmd-write 2>/dev/null && exit 91; exit 7")
    ct.start("/bin/sh", "-c", cmd, wrapper=_read_only_wrapper(ct, noexec),
             env={"DATA": str(data), "USERMAP_UID": str(UID), "USERMAP_GID": str(UID), "HOME": "/"})
    assert ct.wait() == 7, ct.diag()
    assert sorted(ct.stdout.split()) == sorted(["1000", "1000", "web-up"]), ct.diag()
    warnings = [line for line in ct.stderr.splitlines() if "warning" in line or "fatal" in line]
    assert warnings == [f"ignity: warning: perms: not running as root (uid {UID}): 8 ownership/mode changes "
                        "skipped (apply them at build time with preboot)"], ct.diag()
    assert "Read-only file system" not in ct.stderr, ct.diag()
    assert owner_mode(data)[:2] == (0, 0)
    assert not (ct.base / "probe").exists() and not (ct.base / "cmd-write").exists()


def test_uid_1000_with_runtime_dir_it_owns(ct):
    """§6: non-root with a runtime dir it owns (what preboot prepares), writable root: works end
    to end, and makes no chown at all (nothing in the tree needs one)."""
    reason = _as_uid_can_run_ignity()
    if reason:
        pytest.skip(reason)
    ct.run_dir.mkdir()
    os.chown(ct.run_dir, UID, UID)
    ct.service("web", "echo web-up; exec sleep 1000")
    ct.start("/bin/sh", "-c", "ignity wait -u -t 5000 web && exit 4",
             wrapper=f'exec setpriv --reuid={UID} --regid={UID} --clear-groups "$@"', env={"HOME": "/"})
    assert ct.wait() == 4, ct.diag()
    assert "web-up" in ct.stdout, ct.diag()
    assert "warning" not in ct.stderr, ct.diag()


# ---- preboot ------------------------------------------------------------------------------------

@pytest.fixture
def image():
    """An image at build time: a copy of /etc (bind-mounted over /etc in preboot's own mount
    namespace), a conf tree with perms/, a runtime dir to create."""
    base = Path(tempfile.mkdtemp(prefix="ignity-preboot-"))
    os.chmod(base, 0o755)
    subprocess.run(["cp", "-a", "/etc", str(base / "etc")], check=True)
    (base / "conf" / "perms").mkdir(parents=True)
    (base / "conf" / "envs").mkdir()
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def preboot(image: Path, *, path: str, env: dict[str, str] | None = None, as_uid: int | None = None):
    """`RUN preboot` with /etc replaced by the image's copy; PATH decides whether useradd is found."""
    who = f"setpriv --reuid={as_uid} --regid={as_uid} --clear-groups " if as_uid is not None else ""
    script = f'mount --bind {image}/etc /etc && exec {who}"$@"'
    full_env = {"PATH": path, "IGNITY_CONF_DIR": str(image / "conf"), "IGNITY_RUN_DIR": str(image / "run" / "ignity"),
                "USER": "app", "USERMAP_UID": "1234", "USERMAP_GID": "1235", "IGNITY_VERBOSITY": "2", **(env or {})}
    return subprocess.run([UNSHARE, "--mount", "/bin/sh", "-c", script, "sh", *PREBOOT], env=full_env,
                          capture_output=True, text=True, timeout=60, cwd="/")


def count(image: Path, name: str, user: str) -> int:
    return sum(1 for line in (image / "etc" / name).read_text().splitlines() if line.split(":")[0] == user)


def test_preboot_without_useradd_creates_user_once(image):
    """§6, §11.8: on an image without useradd (PATH without /usr/sbin here), preboot creates the
    group and the user by editing /etc/passwd and /etc/group, gives them the runtime dir and
    applies perms/ with {{USERMAP_UID}}; run again, it changes nothing."""
    data = make_tree(image)
    (image / "conf" / "envs" / "10-app").write_text(f"DATA={data}\n")
    (image / "conf" / "perms" / "10-app").write_text("{{DATA}} {{USERMAP_UID}}:{{USERMAP_GID}} 0640 0750\n")
    no_useradd = "/usr/bin:/bin"
    assert shutil.which("useradd", path=no_useradd) is None
    first = preboot(image, path=no_useradd)
    assert first.returncode == 0, first.stderr
    assert "created user app (1234:1235)" in first.stderr
    passwd_line = next(line for line in (image / "etc/passwd").read_text().splitlines() if line.startswith("app:"))
    assert passwd_line == "app:x:1234:1235::/:/bin/false"
    assert [count(image, f, "app") for f in ("passwd", "group", "shadow", "gshadow")] == [1, 1, 1, 1]
    assert owner_mode(image / "run" / "ignity") == (1234, 1235, 0o1777)
    assert owner_mode(data / "sub" / "b.txt") == (1234, 1235, 0o640)
    files = {f: (image / "etc" / f).read_text() for f in ("passwd", "group", "shadow", "gshadow")}
    second = preboot(image, path=no_useradd)
    assert second.returncode == 0, second.stderr
    assert "created user" not in second.stderr and "preboot: done (0 permission changes)" in second.stderr
    assert {f: (image / "etc" / f).read_text() for f in files} == files


def test_preboot_with_useradd(image):
    """§6: where useradd/groupadd exist, preboot uses them; still exactly once."""
    for _ in range(2):
        done = preboot(image, path=STD_PATH)
        assert done.returncode == 0, done.stderr
    assert [count(image, f, "app") for f in ("passwd", "group")] == [1, 1]
    assert any(line.startswith("app:x:1234:1235:") for line in (image / "etc/passwd").read_text().splitlines())


def test_preboot_skip_perms_does_nothing(image):
    """§6, §9: with IGNITY_SKIP_PERMS=1 preboot does nothing at all."""
    (image / "conf" / "perms" / "10-bad").write_text("junk\n")
    done = preboot(image, path=STD_PATH, env={"IGNITY_SKIP_PERMS": "1"})
    assert done.returncode == 0, done.stderr
    assert count(image, "passwd", "app") == 0 and not (image / "run").exists()


def test_preboot_needs_root(image):
    reason = _as_uid_can_run_ignity()
    if reason:
        pytest.skip(reason)
    done = preboot(image, path=STD_PATH, as_uid=UID)
    assert done.returncode == 100
    assert "ignity: fatal: preboot must run as root (RUN preboot in the Dockerfile)" in done.stderr
