"""envcache: the envdir is read again exactly when it changed (a real inotify watch on a real
directory); otherwise the same environment object comes back, without reading a file."""

from __future__ import annotations

import os

from ignity import envdir
from ignity.envcache import EnvCache


class Readers:
    """The one loop method EnvCache uses: the fd it wants watched."""

    def __init__(self):
        self.fds = {}

    def add_reader(self, fd, callback):
        self.fds[fd] = callback


def make(tmp_path, files):
    d = tmp_path / "envs"
    d.mkdir()
    for name, value in files.items():
        (d / name).write_text(value + "\n")
    readers = Readers()
    return d, readers, EnvCache(readers, {"BASE": "1", "A": "base"}, str(d))


def test_the_first_read_sets_up_no_watch(tmp_path):
    # an envdir read once (/init CMD alone) never pays for inotify (its close at exit is slow)
    d, readers, cache = make(tmp_path, {"A": "x"})
    assert cache.get() == {"BASE": "1", "A": "x"}
    assert readers.fds == {}
    (d / "A").write_text("y\n")
    assert cache.get()["A"] == "y"
    assert len(readers.fds) == 1


def test_unchanged_envdir_is_not_read_again(tmp_path):
    _d, readers, cache = make(tmp_path, {"A": "x", "B": "y"})
    cache.get()
    first = cache.get()
    assert first == {"BASE": "1", "A": "x", "B": "y"}
    assert len(readers.fds) == 1  # the loop watches the inotify fd
    calls = []
    real = envdir.overlay
    envdir.overlay = lambda *a: calls.append(a) or real(*a)
    try:
        assert cache.get() is first
    finally:
        envdir.overlay = real
    assert calls == []


def test_every_kind_of_change_is_seen_by_the_next_get(tmp_path):
    d, readers, cache = make(tmp_path, {"A": "x"})
    cache.get()
    (d / "NEW").write_text("n\n")
    assert cache.get()["NEW"] == "n"
    (d / "NEW").write_text("m\n")
    assert cache.get()["NEW"] == "m"
    (d / "NEW").unlink()
    assert "NEW" not in cache.get()
    (d / "A").write_text("")  # empty: unset, even the base's value
    assert "A" not in cache.get()
    (tmp_path / "tmp").write_text("renamed\n")
    os.rename(tmp_path / "tmp", d / "R")
    assert cache.get()["R"] == "renamed"
    # the loop's callback drains too: the next get still sees the change
    (d / "S").write_text("s\n")
    for callback in readers.fds.values():
        callback()
    assert cache.get()["S"] == "s"


def test_envdir_replaced_is_watched_again(tmp_path):
    d, _readers, cache = make(tmp_path, {"A": "x"})
    cache.get()
    (d / "A").unlink()
    d.rmdir()
    assert cache.get() == {"BASE": "1", "A": "base"}
    d.mkdir()
    (d / "A").write_text("again\n")
    assert cache.get()["A"] == "again"
    (d / "A").write_text("later\n")
    assert cache.get()["A"] == "later"


def test_a_symlink_in_the_envdir_turns_the_cache_off(tmp_path):
    d, _readers, cache = make(tmp_path, {"A": "x"})
    target = tmp_path / "target"
    target.write_text("1\n")
    (d / "L").symlink_to(target)
    assert cache.get()["L"] == "1"
    target.write_text("2\n")  # no event in the envdir: only a fresh read sees it
    assert cache.get()["L"] == "2"


def test_the_first_read_is_what_stage_1_wrote(tmp_path):
    # before ignity's first process, the envdir holds what stage 1 wrote: not read back
    d, readers, _ = make(tmp_path, {"A": "x"})
    written = {"BASE": "1", "A": "x"}
    cache = EnvCache(readers, {"BASE": "1", "A": "base"}, str(d), written)
    calls = []
    real = envdir.overlay
    envdir.overlay = lambda *a: calls.append(a) or real(*a)
    try:
        assert cache.get() is written
        assert calls == []
        (d / "A").write_text("changed by an init script\n")
        assert cache.get()["A"] == "changed by an init script"
        assert len(calls) == 1
    finally:
        envdir.overlay = real


def test_what_stage_1_writes_reads_back_the_same(tmp_path):
    # the premise of the free first read: write then overlay is the identity on the merged env,
    # whatever the values hold (newlines, empty, undecodable bytes) and with names left unwritten
    merged = {"EMPTY": "", "LINES": "a\nb\n", "TRAIL": "x\n", "BYTES": "caf\udce9", "NOT.A.NAME": "kept",
              "SPACE": " y "}
    envdir.write(str(tmp_path / "envs"), merged)
    assert envdir.overlay(merged, str(tmp_path / "envs")) == merged
