"""setuidgid: supplementary groups, gid and uid of USER (a name or uid:gid), then exec (SPEC §6).
Each drop happens in a child (`python -c` or `python -m ignity setuidgid`), never in pytest."""
import grp
import os
import pwd
import subprocess
import sys
from pathlib import Path

import pytest

from ignity.errors import IgnityError
from ignity.setuidgid import exec_as

SRC = str(Path(__file__).resolve().parents[2] / "src")
ENV = {**os.environ, "PYTHONPATH": SRC}
IDS = "grep -E '^(Uid|Gid|Groups):' /proc/self/status | tr -s '\\t ' ' '"
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to change ids")


def python_works_as(uid: int) -> bool:
    """Whether this interpreter can still import after dropping to uid (a pyenv under /root, 0700,
    cannot): tests that drop privileges in a Python child skip otherwise."""
    code = f"import os; os.setgroups([]); os.setgid({uid}); os.setuid({uid}); import __future__, ignity.setuidgid"
    return subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": SRC},
                          capture_output=True, cwd="/").returncode == 0


def as_child(account, argv, before=""):
    code = f"{before}from ignity.setuidgid import exec_as; exec_as({account!r}, {argv!r})"
    return subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, timeout=30)


def ids(text):
    """{'Uid': [...], 'Gid': [...], 'Groups': [...]} from /proc/self/status lines."""
    out = {}
    for line in text.splitlines():
        key, _, values = line.partition(":")
        out[key] = [int(v) for v in values.split()]
    return out


@root_only
def test_uid_gid_and_no_supplementary_groups():
    done = as_child("65534:65534", ["sh", "-c", IDS])
    assert done.returncode == 0, done.stderr
    got = ids(done.stdout)
    assert got["Uid"] == [65534] * 4 and got["Gid"] == [65534] * 4 and got["Groups"] == []


@root_only
def test_id_program_runs_as_nobody():
    done = as_child("65534:65534", ["id"])
    assert done.stdout.startswith("uid=65534(nobody) gid=65534"), done.stderr


@root_only
def test_name_gets_its_groups():
    # a user of this system that is a member of some other group, if there is one
    users = [(p.pw_name, p.pw_uid, p.pw_gid) for p in pwd.getpwall()]
    member = next(((n, u, g) for n, u, g in users if len(set(os.getgrouplist(n, g))) > 1), None)
    name, uid, gid = member or ("nobody", 65534, 65534)
    done = as_child(name, ["sh", "-c", IDS])
    assert done.returncode == 0, done.stderr
    got = ids(done.stdout)
    assert got["Uid"] == [uid] * 4 and got["Gid"] == [gid] * 4
    assert sorted(got["Groups"]) == sorted(set(os.getgrouplist(name, gid)))


@root_only
def test_user_group_names():
    group = grp.getgrgid(0).gr_name
    done = as_child(f"nobody:{group}", ["sh", "-c", IDS])
    got = ids(done.stdout)
    assert got["Uid"][0] == 65534 and got["Gid"][0] == 0 and got["Groups"] == []


def test_unknown_user_is_100_before_any_change():
    with pytest.raises(IgnityError) as e:
        exec_as("no-such-user-x", ["true"])
    assert e.value.code == 100 and str(e.value) == "unknown user no-such-user-x"


@root_only
def test_exec_failures_through_the_cli(tmp_path):
    script = tmp_path / "not-executable"
    script.write_text("#!/bin/sh\n")
    os.chmod(tmp_path, 0o755)
    for prog, code in (("/nonexistent/prog", 127), (str(script), 126)):
        done = subprocess.run([sys.executable, "-m", "ignity", "setuidgid", "65534:65534", prog],
                              env=ENV, capture_output=True, text=True, timeout=30)
        assert done.returncode == code
        assert done.stderr.startswith(f"ignity: fatal: unable to exec {prog}: ")


@root_only
def test_cli_runs_prog_with_args_from_path():
    done = subprocess.run([sys.executable, "-m", "ignity", "setuidgid", "nobody", "id", "-u"],
                          env=ENV, capture_output=True, text=True, timeout=30)
    assert (done.returncode, done.stdout) == (0, "65534\n"), done.stderr


@root_only
def test_already_that_user_when_not_root():
    if not python_works_as(65534):
        pytest.skip(f"uid 65534 cannot run {sys.executable} (use a venv made from /usr/bin/python3)")
    # a run script written for a root container keeps working under `USER 65534:65534`
    done = as_child("65534:65534", ["id", "-u"], before="import os; os.setgroups([]); os.setgid(65534); "
                                                         "os.setuid(65534); ")
    assert (done.returncode, done.stdout) == (0, "65534\n"), done.stderr


@root_only
def test_not_root_cannot_become_another_user():
    if not python_works_as(65534):
        pytest.skip(f"uid 65534 cannot run {sys.executable} (use a venv made from /usr/bin/python3)")
    code = ("import os, sys; os.setgroups([]); os.setgid(65534); os.setuid(65534); from ignity import cli; "
            "sys.exit(cli.main(['setuidgid', '0:0', 'id', '-u']))")
    done = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, timeout=30)
    assert (done.returncode, done.stdout) == (111, "")
    assert done.stderr == "ignity: fatal: unable to become 0:0 (0:0): Operation not permitted\n"
