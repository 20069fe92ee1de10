"""`ignity log`, the built-in logger as a command, against the real s6-log on the same input:
the same directory layout (`current`, `@TAI64N.s` archives, `lock`, the done mark), the same
TAI64N labels, the same keep rule, the same recovery of an interrupted `current` as `@TAI64N.u`,
SIGALRM rotating. Where they differ on purpose (documented in docs/logging.md): ignity rotates
*before* `current` would pass the size, so its files never exceed it (s6-log rotates once it is
reached, a write later); ignity does not create s6-log's processor `state` file."""
from __future__ import annotations

import os
import re
import shutil
import signal
import stat
import subprocess
import time

import pytest

from .harness import PY, wait_for

S6_LOG = shutil.which("s6-log")
needs_s6 = pytest.mark.skipif(S6_LOG is None, reason="s6-log not installed (apt-get install s6) - "
                              "the layout cannot be compared with the real one")
ARCHIVE = re.compile(r"@[0-9a-f]{24}\.[su]")
TAI64N_LINE = re.compile(rb"@4[0-9a-f]{23} ")
IGNITY = [PY, "-m", "ignity", "log"]


def sample(n: int = 12000) -> bytes:
    # lines of varied lengths, none above s6-log's 8192 limit (where the two cut differently)
    return b"".join(b"line %d %s\n" % (i, b"x" * (i * 7 % 300)) for i in range(n))


def layout(path):
    names = sorted(os.listdir(path))
    archives = [n for n in names if ARCHIVE.fullmatch(n)]
    return names, archives


def lines_of(path, names) -> list[bytes]:
    out = []
    for name in names:
        with open(os.path.join(path, name), "rb") as f:
            data = f.read()
        assert not data or data.endswith(b"\n"), f"{name} ends in the middle of a line"
        out += data.splitlines()
    return out


def strip_stamp(lines: list[bytes]) -> list[bytes]:
    assert all(TAI64N_LINE.match(line) for line in lines)
    return [line[26:] for line in lines]


def mode(path, name):
    return stat.S_IMODE(os.stat(os.path.join(path, name)).st_mode)


@needs_s6
def test_same_layout_as_s6_log(tmp_path):
    data = sample()
    s6_dir, our_dir = str(tmp_path / "s6"), str(tmp_path / "ignity")
    subprocess.run([S6_LOG, "t", "s10000", "n4", s6_dir], input=data, check=True, timeout=60)
    subprocess.run([*IGNITY, "-t", "tai64n", "-s", "10000", "-n", "4", our_dir], input=data, check=True,
                   timeout=60)
    s6_names, s6_archives = layout(s6_dir)
    our_names, our_archives = layout(our_dir)
    assert set(s6_names) - set(s6_archives) == {"current", "lock", "state"}
    assert set(our_names) - set(our_archives) == {"current", "lock"}
    assert len(s6_archives) == len(our_archives) == 4
    assert all(n.endswith(".s") for n in s6_archives + our_archives)
    # archives 0744, current 0744 once closed cleanly: the same marks
    assert {mode(s6_dir, n) for n in s6_archives} == {mode(our_dir, n) for n in our_archives} == {0o744}
    assert mode(s6_dir, "current") == mode(our_dir, "current") == 0o744
    # both keep a tail of the input, whole lines, in order, each with a TAI64N label
    original = data.splitlines()
    for path, archives in ((s6_dir, s6_archives), (our_dir, our_archives)):
        kept = strip_stamp(lines_of(path, [*archives, "current"]))
        assert kept == original[len(original) - len(kept):]
    # ignity's files never pass the size
    assert all(os.path.getsize(os.path.join(our_dir, n)) <= 10000 for n in our_archives)


@needs_s6
@pytest.mark.parametrize("logger", ["s6-log", "ignity"])
def test_interrupted_current_is_kept_as_u_and_sigalrm_rotates(tmp_path, logger):
    path = str(tmp_path / "logdir")
    argv = [S6_LOG, "t", path] if logger == "s6-log" else [*IGNITY, "-t", "tai64n", path]

    def start():
        return subprocess.Popen(argv, stdin=subprocess.PIPE)

    p = start()
    p.stdin.write(b"before the crash\n")
    p.stdin.flush()
    wait_for(lambda: os.path.exists(os.path.join(path, "current"))
             and os.path.getsize(os.path.join(path, "current")) > 0, 10, f"{logger} to write")
    p.kill()
    p.wait()
    assert mode(path, "current") == 0o644  # no done mark: it was interrupted
    p = start()
    wait_for(lambda: layout(path)[1], 10, f"{logger} to archive the interrupted current")
    (unfinished,) = layout(path)[1]
    assert unfinished.endswith(".u")
    p.stdin.write(b"after\n")
    p.stdin.flush()
    wait_for(lambda: os.path.getsize(os.path.join(path, "current")) > 0, 10, f"{logger} to write")
    p.send_signal(signal.SIGALRM)
    wait_for(lambda: len(layout(path)[1]) == 2, 10, f"{logger} to rotate on SIGALRM")
    p.stdin.close()
    assert p.wait(timeout=10) == 0
    archives = layout(path)[1]
    assert archives[0] == unfinished and archives[1].endswith(".s")
    assert strip_stamp(lines_of(path, [*archives, "current"])) == [b"before the crash", b"after"]


def test_stdout_only_with_prefix_and_timestamps():
    out = subprocess.run([*IGNITY, "--stdout", "-p", "[app] ", "-t", "iso"], input=b"a\nb",
                         capture_output=True, timeout=30)
    assert out.returncode == 0 and out.stderr == b""
    lines = out.stdout.splitlines()
    assert [re.sub(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z ", b"", line) for line in lines] == \
        [b"[app] a", b"[app] b"]


def test_json_lines_name_the_prefix_as_the_service():
    import json

    out = subprocess.run([*IGNITY, "--stdout", "--json", "-p", "web"], input=b'a "b"\n', capture_output=True,
                         timeout=30)
    assert out.returncode == 0 and json.loads(out.stdout) == {"service": "web", "line": 'a "b"'}


def test_sigterm_flushes_the_partial_line_and_exits_0(tmp_path):
    path = tmp_path / "l"
    p = subprocess.Popen([*IGNITY, "-t", "none", str(path)], stdin=subprocess.PIPE)
    p.stdin.write(b"whole\nhalf")
    p.stdin.flush()
    wait_for(lambda: (path / "current").exists() and (path / "current").read_bytes() == b"whole\n", 10,
             "the whole line")
    time.sleep(0.1)  # "half" is read (or not) by now: either way it must not be lost if read
    p.terminate()
    assert p.wait(timeout=10) == 0
    assert (path / "current").read_bytes() in (b"whole\nhalf\n", b"whole\n")


@pytest.mark.parametrize("args", [["-s", "10"], ["-t", "local", "d"], ["-n", "x", "d"], []])
def test_usage_errors_exit_2(args):
    out = subprocess.run([*IGNITY, *args], capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
    assert out.returncode == 2 and out.stderr.count(b"\n") == 1 and out.stderr.startswith(b"ignity: usage:")
