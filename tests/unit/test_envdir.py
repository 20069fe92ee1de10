"""envdir: dotenv merge order and interpolation, envdir write/read (SPEC §4, §11.2-3)."""
import os
import stat

import pytest

from ignity import confdir, envdir
from ignity.errors import ConfigError


def write(path, text):
    path.write_text(text)
    return path


def test_precedence_container_over_later_over_earlier(tmp_path):
    a = write(tmp_path / "00-a", "A=1\nB=1\nC=1\n")
    b = write(tmp_path / "10-b", "B=2\nC=2\n")
    env = envdir.merge_files([a, b], {"C": "container"})
    assert (env["A"], env["B"], env["C"]) == ("1", "2", "container")


def test_interpolation_sees_container_and_earlier(tmp_path):
    a = write(tmp_path / "00-a", "export X=1\nY='q u'\nZ=${X}-${Y}-${HOME_}\nQ=\"a b\"  # comment\n")
    b = write(tmp_path / "10-b", "W=${Z}!\n")
    env = envdir.merge_files([a, b], {"HOME_": "/h"})
    assert (env["X"], env["Y"], env["Z"], env["Q"], env["W"]) == ("1", "q u", "1-q u-/h", "a b", "1-q u-/h!")


def test_malformed_line_names_file_and_line(tmp_path):
    bad = write(tmp_path / "10-bad", "OK=1\n\nthis line is not valid\n")
    with pytest.raises(ConfigError) as e:
        envdir.merge_files([bad], {})
    assert "10-bad" in str(e.value) and "line 3" in str(e.value)


def test_write_and_read_round_trip(tmp_path):
    d = tmp_path / "envs"
    envdir.write(d, {"A": "x", "MULTI": "l1\nl2", "EMPTY": "", "bad-name": "no"})
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    assert stat.S_IMODE((d / "A").stat().st_mode) == 0o600
    assert (d / "A").read_text() == "x\n"
    assert not (d / "bad-name").exists()
    got = envdir.read(d)
    assert got["A"] == "x" and got["MULTI"] == "l1\nl2" and got["EMPTY"] == ""


def test_shared_mode(tmp_path):
    d = tmp_path / "envs"
    envdir.write(d, {"A": "x"}, shared=True)
    assert stat.S_IMODE(d.stat().st_mode) == 0o755
    assert stat.S_IMODE((d / "A").stat().st_mode) == 0o644


def test_read_rules(tmp_path):
    d = tmp_path / "envs"
    d.mkdir()
    for name, data in {"V": b"bar\n", "TWO": b"a\n\n", "NOEOL": b"x", "GONE": b"", "bad-name": b"x\n"}.items():
        (d / name).write_bytes(data)
    env = envdir.overlay({"GONE": "set", "KEEP": "k", "V": "old"}, d)
    assert env == {"V": "bar", "TWO": "a\n", "NOEOL": "x", "KEEP": "k"}


def test_visible_entries_byte_order_without_dotfiles(tmp_path):
    for name in ("9-c", "10-b", "00-a", ".hidden"):
        (tmp_path / name).write_text("")
    assert [os.path.basename(p) for p in confdir.visible_entries(tmp_path)] == ["00-a", "10-b", "9-c"]
    assert confdir.visible_entries(tmp_path / "missing") == []
    assert os.path.exists(tmp_path / ".hidden")


def test_service_env_dotenv_file_wins_over_base_and_expands(tmp_path):
    (tmp_path / "env").write_text("PORT=81\nURL=http://${HOST}:${PORT}/\n")
    env = envdir.service_env({"HOST": "db", "PORT": "80", "KEEP": "1"}, str(tmp_path))
    assert env == {"HOST": "db", "PORT": "81", "URL": "http://db:81/", "KEEP": "1"}


def test_service_env_envdir_sets_and_unsets(tmp_path):
    (tmp_path / "env").mkdir()
    (tmp_path / "env" / "PORT").write_text("81\n")
    (tmp_path / "env" / "SECRET").write_text("")
    env = envdir.service_env({"SECRET": "x", "PORT": "80"}, str(tmp_path))
    assert env == {"PORT": "81"}


def test_service_env_error_names_file_and_line(tmp_path):
    (tmp_path / "env").write_text("A=1\nnot valid\n")
    with pytest.raises(ConfigError) as e:
        envdir.service_env({}, str(tmp_path))
    assert str(e.value).startswith(f"env file {tmp_path}/env line 2: cannot parse")


def test_service_env_none(tmp_path):
    assert envdir.service_env({"A": "1"}, str(tmp_path)) == {"A": "1"}
