"""servicedir: knob files of SPEC §7, bad values fall back to defaults."""
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from ignity import servicedir

SRC = str(Path(__file__).resolve().parents[2] / "src")


def make(tmp_path, **files):
    d = tmp_path / "svc"
    d.mkdir()
    (d / "run").write_text("#!/bin/sh\n")
    for name, text in files.items():
        (d / name.replace("_", "-")).write_text(text)
    return d


def test_defaults(tmp_path):
    spec = servicedir.read_spec("svc", make(tmp_path))
    assert spec.down_signal == signal.SIGTERM and spec.timeout_finish_ms == 5000 and spec.timeout_kill_ms == 0
    assert spec.notification_fd is None and not spec.down and not spec.halt_on_exit and not spec.has_log


def test_knobs(tmp_path):
    d = make(tmp_path, down="", notification_fd="3\n", down_signal="SIGUSR1", timeout_kill="250",
             timeout_finish="0", halt_on_exit="", finish="#!/bin/sh\n")
    spec = servicedir.read_spec("svc", d)
    assert spec.down and spec.notification_fd == 3 and spec.down_signal == signal.SIGUSR1
    assert spec.timeout_kill_ms == 250 and spec.timeout_finish_ms == 0 and spec.halt_on_exit and spec.has_finish


def test_bad_knobs_use_defaults(tmp_path):
    spec = servicedir.read_spec("svc", make(tmp_path, down_signal="SIGNOPE", timeout_kill="soon",
                                            notification_fd="x"))
    assert spec.down_signal == signal.SIGTERM and spec.timeout_kill_ms == 0 and spec.notification_fd is None


def test_parse_signal():
    assert servicedir.parse_signal("INT") == signal.SIGINT
    assert servicedir.parse_signal("sighup") == signal.SIGHUP
    assert servicedir.parse_signal("10") == 10
    assert servicedir.parse_signal("NOPE") is None


def test_copy_tree_skips_dotfiles(tmp_path):
    src = tmp_path / "services"
    (src / "a" / "log").mkdir(parents=True)
    (src / "a" / "run").write_text("x")
    (src / "a" / ".secret").write_text("x")
    (src / ".hidden").mkdir()
    state = tmp_path / "state"
    servicedir.copy_tree(src, state)
    assert servicedir.service_names(state) == ["a"]
    assert (state / "a" / "run").exists() and (state / "a" / "log").is_dir()
    assert not (state / "a" / ".secret").exists()


def test_programs_are_linked_not_copied(tmp_path):
    """A noexec runtime dir must still run services: run/finish in the live copy are symlinks."""
    src = tmp_path / "services"
    (src / "a" / "log").mkdir(parents=True)
    for rel in ("run", "finish", "log/run", "notification-fd"):
        (src / "a" / rel).write_text("x")
    state = tmp_path / "state"
    servicedir.copy_tree(src, state)
    for rel in ("run", "finish", "log/run"):
        assert (state / "a" / rel).is_symlink() and (state / "a" / rel).resolve() == (src / "a" / rel).resolve()
    assert not (state / "a" / "notification-fd").is_symlink()


# ---- knob files that exist but cannot be read are not absent ------------------------------------
def unreadable(path):
    """A knob file no open(2) can read, even as root: a symbolic link to itself (ELOOP)."""
    path.unlink(missing_ok=True)
    path.symlink_to(path.name)


def test_unreadable_knob_is_listed_and_defaulted_without_a_last_value(tmp_path):
    d = make(tmp_path, notification_fd="3\n")
    unreadable(d / "down-signal")
    spec = servicedir.read_spec("svc", d)
    assert spec.unread == (f"{d}/down-signal: Too many levels of symbolic links",)
    assert spec.down_signal == signal.SIGTERM and spec.notification_fd == 3


def test_unreadable_knob_keeps_the_last_value(tmp_path):
    d = make(tmp_path, notification_fd="3\n", down_signal="SIGINT")
    last = servicedir.read_spec("svc", d)
    assert last.unread == ()
    unreadable(d / "notification-fd")
    unreadable(d / "down-signal")
    (d / "timeout-kill").write_text("700")
    spec = servicedir.read_spec("svc", d, last)
    assert spec.notification_fd == 3 and spec.down_signal == signal.SIGINT and spec.timeout_kill_ms == 700
    assert len(spec.unread) == 2


def test_fifo_knob_does_not_block_and_is_unreadable(tmp_path):
    d = make(tmp_path)
    os.mkfifo(d / "timeout-kill")
    spec = servicedir.read_spec("svc", d)
    assert spec.unread == (f"{d}/timeout-kill: not a regular file",) and spec.timeout_kill_ms == 0


def test_stop_knobs_read_again(tmp_path):
    d = make(tmp_path, down_signal="SIGINT", timeout_kill="100", notification_fd="3")
    spec = servicedir.read_spec("svc", d)
    (d / "down-signal").write_text("SIGUSR1")
    (d / "timeout-kill").write_text("250")
    (d / "notification-fd").write_text("4")
    again = servicedir.read_stop_knobs(spec)
    assert (again.down_signal, again.timeout_kill_ms, again.notification_fd) == (signal.SIGUSR1, 250, 3)
    unreadable(d / "down-signal")
    kept = servicedir.read_stop_knobs(again)
    assert kept.down_signal == signal.SIGUSR1
    assert kept.unread == (f"{d}/down-signal: Too many levels of symbolic links",)
def test_type_dependencies_oneshot_knobs(tmp_path):
    d = make(tmp_path, type="oneshot\n", timeout_up="1500", timeout_down="200", optional="", down="#!/bin/sh\n",
             up="#!/bin/sh\n")
    (d / "dependencies.d").mkdir()
    for name in ("redis", "app", ".hidden"):
        (d / "dependencies.d" / name).write_text("")
    spec = servicedir.read_spec("svc", str(d))
    assert spec.oneshot and spec.type == "oneshot" and spec.problem is None
    assert spec.dependencies == ("app", "redis")
    assert (spec.timeout_up_ms, spec.timeout_down_ms, spec.optional) == (1500, 200, True)
    assert not spec.down  # a oneshot's `down` is its down program, not "not at boot"
    assert spec.up == str(d / "up") and spec.down_program == str(d / "down")


def test_dependencies_are_read_where_they_were_copied_from(tmp_path):
    # the live copy has no dependencies.d/ (no copy, no link: a graph costs a boot nothing per
    # service but the one listing); copy_tree says where each copied directory's are
    src = tmp_path / "services"
    for path in ("app/dependencies.d/redis", "app/log/dependencies.d/mkdirs", "app/data/dependencies.d/x"):
        (src / path).parent.mkdir(parents=True, exist_ok=True)
        (src / path).write_text("")
    (src / "app" / "log" / "run").write_text("#!/bin/sh\n")
    (src / "redis").mkdir()
    state = tmp_path / "state"
    origins = servicedir.copy_tree(str(src), str(state))
    live = state / "app"
    assert origins == {str(live): str(src / "app"), str(live / "log"): str(src / "app" / "log")}
    assert not (live / "dependencies.d").exists() and not (live / "log" / "dependencies.d").exists()
    assert not (live / "data" / "dependencies.d").exists()  # a deeper one is no one's
    spec = servicedir.read_spec("app", str(live), origin=origins[str(live)])
    assert spec.dependencies == ("redis",)
    logger = servicedir.read_spec("app/log", spec.log_dir, origin=origins[spec.log_dir])
    assert logger.dependencies == ("mkdirs",)
    # read once: a later read (a restart) is given them, whatever the live copy holds
    assert servicedir.read_spec("app", str(live), dependencies=spec.dependencies).dependencies == ("redis",)
    # a directory put straight into services-state (ignity rescan) has its own
    (state / "late" / "dependencies.d").mkdir(parents=True)
    (state / "late" / "dependencies.d" / "app").write_text("")
    assert servicedir.read_spec("late", str(state / "late")).dependencies == ("app",)
    assert servicedir.copy_tree(str(src), str(state)) == {}  # already live: nothing copied


def test_defaults_of_new_knobs(tmp_path):
    spec = servicedir.read_spec("svc", str(make(tmp_path)))
    assert spec.type == "longrun" and not spec.oneshot and spec.dependencies == () and spec.user is None
    assert (spec.timeout_up_ms, spec.timeout_down_ms, spec.optional, spec.problem) == (0, 0, False, None)


def test_bad_type_is_a_problem(tmp_path):
    spec = servicedir.read_spec("svc", str(make(tmp_path, type="bundle\n")))
    assert spec.type == "longrun" and "'bundle' is not a type of service" in spec.problem


def test_user_file(tmp_path):
    me = pwd.getpwuid(os.geteuid())
    spec = servicedir.read_spec("svc", str(make(tmp_path, user=f"{me.pw_name}\n")))
    assert spec.problem is None and spec.user.uid == os.geteuid() and spec.user_name == me.pw_name


def test_unknown_user_is_a_problem_naming_the_file(tmp_path):
    d = make(tmp_path, user="no-such-user-here\n")
    spec = servicedir.read_spec("svc", str(d))
    assert spec.problem.startswith(f"{d}/user: unknown user no-such-user-here")


def test_other_user_as_non_root_is_a_problem(tmp_path):
    if os.geteuid() != 0:
        d = make(tmp_path, user="0:0\n")
        assert "not root" in servicedir.read_spec("svc", str(d)).problem
        return
    base = Path(tempfile.mkdtemp(prefix="ignity-user-"))  # pytest's tmp_path is 0700: not for uid 65534
    os.chmod(base, 0o755)
    d = make(base, user="0:0\n")
    code = ("import os, sys; os.setgroups([]); os.setgid(65534); os.setuid(65534); "
            "from ignity import servicedir; print(servicedir.read_spec('svc', sys.argv[1]).problem)")
    out = subprocess.run([sys.executable, "-c", code, str(d)], capture_output=True, text=True, cwd="/",
                         env={**os.environ, "PYTHONPATH": SRC})
    shutil.rmtree(base)
    if "ModuleNotFoundError" in out.stderr or "Permission denied" in out.stderr:
        pytest.skip("this interpreter cannot run as uid 65534")
    assert "ignity runs as uid 65534, not root" in out.stdout, out.stderr
