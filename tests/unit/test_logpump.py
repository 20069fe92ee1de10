"""logpump: a pipe read into a log without a process; a stalled stdout stops the reading of that
one pipe (back-pressure) with at most one read held, and every line comes out once, in order."""
import fcntl
import os
import time

import pytest

from ignity.logconf import LogConfig
from ignity.logpump import READ_MAX, Pump, Stdout
from ignity.loop import Loop

F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)


@pytest.fixture
def loop():
    return Loop()


def small_pipe(size=4096):
    r, w = os.pipe()
    fcntl.fcntl(w, F_SETPIPE_SZ, size)
    return r, w


def run_for(loop, seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        loop.run_once(end)


def test_lines_to_stdout_with_prefix(loop):
    r, w = os.pipe()
    out_r, out_w = os.pipe()
    pump = Pump(loop, r, LogConfig(stdout=True, prefix=b"[web] "), "log web", Stdout(loop, out_w))
    pump.start()
    os.write(w, b"one\ntwo\nthr")
    run_for(loop, 0.05)
    os.write(w, b"ee\n")
    run_for(loop, 0.05)
    assert os.read(out_r, 1000) == b"[web] one\n[web] two\n[web] three\n"


def test_stalled_stdout_fills_only_that_services_pipe(loop):
    service_r, service_w = os.pipe()
    os.set_blocking(service_w, False)
    out_r, out_w = small_pipe()
    stdout = Stdout(loop, out_w)
    pump = Pump(loop, service_r, LogConfig(stdout=True, prefix=b"> "), "log web", stdout)
    pump.start()
    other_r, other_w = os.pipe()
    other = Pump(loop, other_r, LogConfig(stdout=False, directory=None), "log other", stdout)
    other.start()
    sent = 0
    stalled = False
    while not stalled:  # the service writes until its own pipe is full (12-byte writes are atomic)
        try:
            os.write(service_w, b"line %06d\n" % sent)
            sent += 1
        except BlockingIOError:
            run_for(loop, 0.05)  # the pump's chance to make room: it must not take it
            try:
                os.write(service_w, b"line %06d\n" % sent)
                sent += 1
            except BlockingIOError:
                stalled = True
        if sent % 500 == 0:
            run_for(loop, 0.001)
    assert not pump.reading and pump.held <= READ_MAX + 8192
    assert sent * 12 < 64 * 1024 + READ_MAX + 4096  # its pipe + one read held + the stdout pipe
    os.write(other_w, b"still served\n")  # another log is not held back
    run_for(loop, 0.02)
    assert other.bytes_in == 13
    # the reader comes back: everything arrives, once, in order
    got = bytearray()
    os.close(service_w)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not pump.ended:
        try:
            got += os.read(out_r, 65536)
        except BlockingIOError:
            pass
        os.set_blocking(out_r, False)
        run_for(loop, 0.005)
    pump.close()
    os.set_blocking(out_r, False)
    try:
        got += os.read(out_r, 1 << 20)
    except BlockingIOError:
        pass
    assert bytes(got) == b"".join(b"> line %06d\n" % i for i in range(sent))


def test_files_and_stdout_at_once_with_their_own_timestamps(loop, tmp_path):
    r, w = os.pipe()
    out_r, out_w = os.pipe()
    config = LogConfig(directory=str(tmp_path / "l"), stdout=True, prefix=b"[a] ")
    pump = Pump(loop, r, config, "log a", Stdout(loop, out_w))
    pump.start()
    os.write(w, b"hello\n")
    os.close(w)
    run_for(loop, 0.05)
    assert pump.ended
    pump.close()
    assert os.read(out_r, 100) == b"[a] hello\n"
    line = (tmp_path / "l" / "current").read_bytes()
    assert line.endswith(b"Z [a] hello\n") and len(line) == len(b"2026-11-28T07:50:00.123456Z [a] hello\n")


def test_partial_last_line_is_flushed_at_close(loop, tmp_path):
    r, w = os.pipe()
    pump = Pump(loop, r, LogConfig(directory=str(tmp_path / "l"), file_timestamp="none"), "log a", None)
    pump.start()
    os.write(w, b"whole\nhalf")
    pump.close()
    assert (tmp_path / "l" / "current").read_bytes() == b"whole\nhalf\n"


def test_json_lines_held_for_a_stalled_stdout_come_out_whole(loop):
    import json

    service_r, service_w = os.pipe()
    out_r, out_w = small_pipe()
    pump = Pump(loop, service_r, LogConfig(stdout=True, format="json", name="api"), "log api", Stdout(loop, out_w))
    pump.start()
    lines = [b'line %d "quoted" \\ %s' % (i, b"x" * (i % 50)) for i in range(400)]
    os.write(service_w, b"\n".join(lines) + b"\n")
    run_for(loop, 0.05)
    assert not pump.reading  # the 4 KiB stdout pipe is full
    os.set_blocking(out_r, False)
    got = bytearray()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and got.count(b"\n") < 400:
        try:
            got += os.read(out_r, 65536)
        except BlockingIOError:
            pass
        run_for(loop, 0.005)
    assert [json.loads(line) for line in got.splitlines()] == \
        [{"service": "api", "line": line.decode()} for line in lines]


def test_stdout_that_is_a_socket_never_blocks(loop):
    import socket

    a, b = socket.socketpair()
    out = Stdout(loop, a.fileno())
    taken = sum(out.write(b"x" * 65536) for _ in range(64))  # far more than the socket buffers
    assert 0 < taken < 64 * 65536 and out.write(b"more\n") == 0
    a.close()
    b.close()


def test_new_knobs_at_a_restart_move_the_log(loop, tmp_path):
    r, w = os.pipe()
    pump = Pump(loop, r, LogConfig(directory=str(tmp_path / "a"), file_timestamp="none"), "log a", None)
    pump.start()
    os.write(w, b"one\n")
    run_for(loop, 0.05)
    pump.reconfigure(LogConfig(directory=str(tmp_path / "b"), file_timestamp="none", max_size=5000), None)
    os.write(w, b"two\n")
    run_for(loop, 0.05)
    pump.close()
    assert (tmp_path / "a" / "current").read_bytes() == b"one\n"
    assert (tmp_path / "b" / "current").read_bytes() == b"two\n"
    assert (tmp_path / "a" / "current").stat().st_mode & 0o777 == 0o744  # the old one closed cleanly


def test_stdout_of_its_own_leaves_the_shared_description_blocking(loop):
    master, slave = os.openpty()
    out = Stdout(loop, slave)
    assert out.fd != slave and not os.get_blocking(out.fd) and os.get_blocking(slave)
    assert out.write(b"hello\n") == 6
    for fd in (out.fd, master, slave):
        os.close(fd)
