"""spawn with a user (a servicedir's `user` file): the child takes the groups, gid and uid before
exec, with clean signals; failures come back as SpawnError. Children are reaped here with
waitpid(pid): the test is not PID 1 and no other reaper runs."""
import os
import signal

import pytest

from ignity import spawn
from ignity.accounts import Account
from ignity.errors import SpawnError

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to change ids")
STATUS = "grep -E '^(Uid|Gid|Groups|SigBlk|SigIgn):' /proc/self/status"


def run(tmp_path, user, script=STATUS, **kw):
    out = tmp_path / "out"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    try:
        pid = spawn.spawn(["/bin/sh", "-c", script], {"PATH": "/usr/bin:/bin"}, fds={1: fd}, user=user, **kw)
    finally:
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    fields = {}
    for line in out.read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.split()
    return os.waitstatus_to_exitcode(status), fields


@root_only
def test_child_becomes_the_user_with_its_groups(tmp_path):
    # signals ignored and blocked in ignity must not reach the child on the fork path either
    old_handler = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    try:
        code, f = run(tmp_path, Account("nobody", 65534, 65534, (65534, 100)), new_session=True)
    finally:
        signal.signal(signal.SIGHUP, old_handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
    assert code == 0
    assert f["Uid"] == ["65534"] * 4 and f["Gid"] == ["65534"] * 4 and sorted(f["Groups"]) == ["100", "65534"]
    assert int(f["SigBlk"][0], 16) == 0 and int(f["SigIgn"][0], 16) == 0
    assert signal.pthread_sigmask(signal.SIG_BLOCK, ()) == old_mask  # ignity's own mask is back


def test_same_ids_take_the_posix_spawn_path(tmp_path):
    me = Account(None, os.geteuid(), os.getegid(), tuple(os.getgroups()))
    assert not spawn.needs_switch(me)
    code, f = run(tmp_path, me)
    assert code == 0 and f["Uid"][0] == str(os.geteuid())


@root_only
def test_exec_error_on_the_fork_path(tmp_path):
    with pytest.raises(SpawnError) as e:
        spawn.spawn(["/nonexistent/missing"], {}, user=Account(None, 65534, 65534, ()))
    assert e.value.code == 127
    os.waitpid(-1, 0)  # the child that reported it exited 127


def test_id_change_refused_names_the_ids(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root may become anyone")
    with pytest.raises(SpawnError, match=r"as 0:0: Operation not permitted"):
        spawn.spawn(["/bin/true"], {}, user=Account(None, 0, 0, ()))
    os.waitpid(-1, 0)
