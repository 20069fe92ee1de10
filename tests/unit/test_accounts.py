"""accounts: resolving USER for setuidgid, creating USER for preboot in an image tree without
useradd (SPEC §6, §11.8). Never touches the real /etc: creation runs against a temporary root
with its own passwd, group, shadow and gshadow."""
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from ignity import accounts
from ignity.errors import ConfigError, IgnityError

SRC = str(Path(accounts.__file__).resolve().parents[1])
PASSWD = "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
GROUP = "root:x:0:\nshadow:x:42:\nusers:x:100:\nnogroup:x:65534:\n"
SHADOW = "root:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n"
GSHADOW = "root:*::\nshadow:*::\nusers:*::\nnogroup:*::\n"


@pytest.fixture
def image(tmp_path):
    """A root tree as an image has it: passwd/group 0644, shadow/gshadow 0640 root:shadow."""
    etc = tmp_path / "etc"
    etc.mkdir()
    for name, text, mode in (("passwd", PASSWD, 0o644), ("group", GROUP, 0o644),
                             ("shadow", SHADOW, 0o640), ("gshadow", GSHADOW, 0o640)):
        (etc / name).write_text(text)
        os.chmod(etc / name, mode)
        if name.endswith("shadow") and os.geteuid() == 0:
            os.chown(etc / name, 0, 42)
    return tmp_path


def read(root, name):
    return (root / "etc" / name).read_text()


# ---- resolve ------------------------------------------------------------------------------------

def test_resolve_name_has_its_groups():
    account = accounts.resolve("root")
    assert (account.name, account.uid, account.gid) == ("root", 0, 0)
    assert account.groups == tuple(os.getgrouplist("root", 0))


def test_resolve_uid_gid_has_no_supplementary_groups():
    assert accounts.resolve("65534:65534") == accounts.Account(None, 65534, 65534, ())


def test_resolve_user_group_names():
    assert accounts.resolve("nobody:root")[1:3] == (65534, 0)


def test_resolve_bare_uid_of_a_known_user():
    assert accounts.resolve("0")[:3] == ("root", 0, 0)


@pytest.mark.parametrize("account, says", [
    ("no-such-user-x", "unknown user no-such-user-x"),
    ("no-such-user-x:0", "unknown user no-such-user-x"),
    ("0:no-such-group-x", "unknown group no-such-group-x"),
    ("0:4294967295", "out of range"),
])
def test_resolve_unknown_is_code_100(account, says):
    with pytest.raises(IgnityError) as e:
        accounts.resolve(account)
    assert e.value.code == 100 and says in str(e.value)


# ---- ensure_user on a tree without useradd ------------------------------------------------------

def test_creates_user_and_group_exactly_once(image):
    assert accounts.ensure_user("app", 1000, 1000, root=image) is True
    assert read(image, "passwd") == PASSWD + "app:x:1000:1000::/:/bin/false\n"
    assert read(image, "group") == GROUP + "app:x:1000:\n"
    assert read(image, "gshadow") == GSHADOW + "app:!::\n"
    last = read(image, "shadow").splitlines()[-1].split(":")
    assert last[:2] == ["app", "!"] and last[2].isdigit() and len(last) == 9
    before = {n: read(image, n) for n in ("passwd", "group", "shadow", "gshadow")}
    assert accounts.ensure_user("app", 1000, 1000, root=image) is False
    assert {n: read(image, n) for n in before} == before
    assert accounts.find_user("app", image) == (1000, 1000)


def test_mode_and_owner_kept_no_temp_files_left(image):
    accounts.ensure_user("app", 1000, 1000, root=image)
    etc = image / "etc"
    assert stat.S_IMODE(os.stat(etc / "passwd").st_mode) == 0o644
    assert stat.S_IMODE(os.stat(etc / "shadow").st_mode) == 0o640
    if os.geteuid() == 0:
        assert os.stat(etc / "shadow").st_gid == 42
    assert sorted(os.listdir(etc)) == [".pwd.lock", "group", "gshadow", "passwd", "shadow"]


def test_existing_gid_is_used_not_created(image):
    accounts.ensure_user("app", 1000, 100, root=image)
    assert read(image, "group") == GROUP
    assert read(image, "passwd").endswith("app:x:1000:100::/:/bin/false\n")


def test_existing_user_is_left_alone(image, capfd):
    assert accounts.ensure_user("nobody", 1000, 1000, root=image) is False
    assert read(image, "passwd") == PASSWD
    assert "user nobody exists as 65534:65534" in capfd.readouterr().err


def test_uid_already_taken_by_another_name_is_allowed(image, capfd):
    accounts.ensure_user("app", 65534, 2000, root=image)
    assert read(image, "passwd").endswith("app:x:65534:2000::/:/bin/false\n")
    assert "uid 65534 already belongs to user nobody" in capfd.readouterr().err


def test_group_name_taken_with_another_gid_is_an_error(image):
    with pytest.raises(ConfigError, match="group users exists with gid 100"):
        accounts.ensure_user("users", 1000, 1000, root=image)
    assert read(image, "passwd") == PASSWD


def test_no_shadow_files_are_not_created(image):
    (image / "etc" / "shadow").unlink()
    (image / "etc" / "gshadow").unlink()
    accounts.ensure_user("app", 1000, 1000, root=image)
    assert not (image / "etc" / "shadow").exists() and not (image / "etc" / "gshadow").exists()


def test_missing_final_newline_is_kept_apart(image):
    (image / "etc" / "passwd").write_text(PASSWD.rstrip("\n"))
    accounts.ensure_user("app", 1000, 1000, root=image)
    assert read(image, "passwd") == PASSWD + "app:x:1000:1000::/:/bin/false\n"


@pytest.mark.parametrize("name", ["", "1app", "-app", "a:b", "a\nb", "a b", "x" * 33])
def test_bad_names_are_refused(image, name):
    with pytest.raises(ConfigError, match="not a valid user name"):
        accounts.ensure_user(name, 1000, 1000, root=image)
    assert read(image, "passwd") == PASSWD


def test_concurrent_calls_add_one_line(image):
    """Two preboots at once (the lock, and the second look under it)."""
    code = ("import sys; from pathlib import Path; from ignity import accounts; "
            "accounts.ensure_user('app', 1000, 1000, root=Path(sys.argv[1]))")
    env = {**os.environ, "PYTHONPATH": SRC}
    procs = [subprocess.Popen([sys.executable, "-c", code, str(image)], env=env) for _ in range(4)]
    assert [p.wait(timeout=30) for p in procs] == [0, 0, 0, 0]
    assert read(image, "passwd").count("\napp:") == 1
    assert read(image, "group").count("\napp:") == 1
