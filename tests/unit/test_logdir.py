"""logdir: the s6-log layout (current, @TAI64N.s archives, lock), rotation on size and on demand,
recovery of an unfinished current, and failures that drop and count lines instead of blocking."""
import os
import stat

import pytest

from ignity import logdir
from ignity.logdir import LogDir, is_archive


@pytest.fixture
def retry_at_once(monkeypatch):
    monkeypatch.setattr(logdir, "RETRY_S", 0.0)


def lines(n, start=0, width=20):
    return b"".join(b"%0*d\n" % (width - 1, i) for i in range(start, start + n))


def archives(path):
    return sorted(n for n in os.listdir(path) if is_archive(n))


def content(path):
    return b"".join(open(os.path.join(path, n), "rb").read() for n in [*archives(path), "current"])


def test_rotation_keeps_whole_lines_under_max_size(tmp_path):
    d = LogDir(str(tmp_path / "l"), 4096, 100, "log t")
    for i in range(50):
        d.write(lines(30, i * 30))
    d.close()
    path = str(tmp_path / "l")
    names = archives(path)
    assert names and all(n.endswith(".s") for n in names)
    for n in names:
        with open(os.path.join(path, n), "rb") as f:
            data = f.read()
        assert len(data) <= 4096 and len(data) > 4096 - 20 and data.endswith(b"\n")
        assert stat.S_IMODE(os.stat(os.path.join(path, n)).st_mode) == 0o744
    assert content(path) == lines(1500)
    assert sorted(os.listdir(path)) == [*names, "current", "lock"]
    assert stat.S_IMODE(os.stat(os.path.join(path, "current")).st_mode) == 0o744  # closed cleanly


def test_keep_removes_the_oldest(tmp_path):
    path = str(tmp_path / "l")
    d = LogDir(path, 4096, 2, "log t")
    d.write(lines(1000))
    d.close()
    assert len(archives(path)) == 2
    assert lines(1000).endswith(content(path))


def test_rotate_on_demand_and_not_when_empty(tmp_path):
    path = str(tmp_path / "l")
    d = LogDir(path, 100000, 10, "log t")
    d.rotate_now()
    d.write(b"a\n")
    assert archives(path) == []
    d.rotate_now()
    d.rotate_now()
    assert len(archives(path)) == 1 and os.path.getsize(os.path.join(path, "current")) == 0
    d.close()


def test_a_line_larger_than_max_size_gets_a_file_of_its_own(tmp_path):
    path = str(tmp_path / "l")
    d = LogDir(path, 4096, 10, "log t")
    big = b"x" * 5000 + b"\n"
    d.write(b"a\n" + big + b"b\n")
    d.close()
    sizes = [os.path.getsize(os.path.join(path, n)) for n in [*archives(path), "current"]]
    assert sizes == [2, 5001, 2]


def test_restart_appends_to_a_cleanly_closed_current(tmp_path):
    path = str(tmp_path / "l")
    d = LogDir(path, 100000, 10, "log t")
    d.write(b"one\n")
    d.close()
    d = LogDir(path, 100000, 10, "log t")
    d.write(b"two\n")
    assert stat.S_IMODE(os.stat(os.path.join(path, "current")).st_mode) == 0o644  # being written
    d.close()
    assert archives(path) == [] and content(path) == b"one\ntwo\n"


def test_unfinished_current_is_kept_as_u(tmp_path):
    path = str(tmp_path / "l")
    d = LogDir(path, 100000, 10, "log t")
    d.write(b"one\n")
    os.close(d.fd)  # the writer died: no done mark, its lock gone with it
    os.close(d._lock_fd)
    d = LogDir(path, 100000, 10, "log t")
    d.write(b"two\n")
    d.close()
    names = archives(path)
    assert len(names) == 1 and names[0].endswith(".u")
    assert content(path) == b"one\ntwo\n"


def test_two_writers_on_one_directory_the_second_drops_and_counts(tmp_path, capfd, retry_at_once):
    path = str(tmp_path / "l")
    a, b = LogDir(path, 100000, 10, "log a"), LogDir(path, 100000, 10, "log b")
    a.write(b"1\n")
    b.write(b"2\n3\n")
    b.write(b"4\n")
    assert b.lost == 3
    err = capfd.readouterr().err
    assert err.count("log b: unable to write") == 1 and "lock is held by another logger" in err
    a.close()
    b.write(b"5\n")
    b.close()
    assert "log b: writing to " + path + " again; 3 lines were lost" in capfd.readouterr().err
    assert content(path) == b"1\n5\n"


def test_unwritable_directory_then_writable_again(tmp_path, capfd, retry_at_once):
    blocker = tmp_path / "var"
    blocker.write_text("a file where the directory should be")
    path = str(blocker / "log")
    d = LogDir(path, 100000, 10, "log t")
    for _ in range(3):
        d.write(b"x\ny\n")
    assert d.lost == 6
    blocker.unlink()
    d.write(b"z\n")
    d.close()
    err = capfd.readouterr().err.splitlines()
    assert len(err) == 2 and "Not a directory" in err[0] and "6 lines were lost" in err[1]
    assert content(path) == b"z\n"


def test_while_failing_retries_wait_a_second(tmp_path, capfd):
    blocker = tmp_path / "var"
    blocker.write_text("not a directory")
    d = LogDir(str(blocker / "log"), 100000, 10, "log t")
    d.write(b"a\n")
    blocker.unlink()
    d.write(b"b\n")  # within RETRY_S of the failure: dropped without a try
    assert d.lost == 2 and d.fd is None
