"""File descriptors running out, as real limits on a real PID 1 (`prlimit`, `ulimit -n`):
the control socket refuses cleanly and never spins, supervision goes on, and a configuration
too large for the limit says so with the numbers and the fix (docs/control.md, docs/init.md)."""

from __future__ import annotations

import os
import resource
import socket
import time

from .harness import BOOT_S, wait_for

TICKS = os.sysconf("SC_CLK_TCK")


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def set_soft_limit(pid: int, soft: int) -> None:
    _, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))


def test_control_socket_out_of_fds_refuses_without_spinning(ct):
    """With RLIMIT_NOFILE reached, clients get a clean refusal, PID 1 does not spin, supervision
    goes on, and the shortage is reported once when it starts and once, with the count, when it
    ends."""
    ct.service("svc", f"echo $$ >> {ct.out}/pids; exec sleep 1000")
    ct.start()
    ct.wait_up("svc")
    pid1 = ct.pid1
    set_soft_limit(pid1, fd_count(pid1))  # not one more descriptor
    for _ in range(3):
        r = ct.ctl("status")
        assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
        assert "out of file descriptors" in r.stderr, r.stderr
    # below the count: nothing left to refuse with, so the listener is not watched; a client
    # that connects now waits, and PID 1 stays idle meanwhile
    set_soft_limit(pid1, fd_count(pid1) - 2)
    waiting = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    waiting.settimeout(10)
    waiting.connect(str(ct.socket))
    before = cpu_s(pid1)
    time.sleep(1.0)
    assert cpu_s(pid1) - before < 0.2, "PID 1 spins while out of file descriptors"
    # supervision goes on: a service that dies is reaped at once (its restart, which needs
    # descriptors in ignity and in the service, comes once there are some again)
    first = ct.wait_lines("pids", 1)[0]
    os.kill(ct.proc_by_nspid(int(first)).pid, 9)
    wait_for(lambda: not ct.zombies(), BOOT_S, "the killed service to be reaped", diag=ct.diag)
    set_soft_limit(pid1, 1024)
    ct.wait_lines("pids", 2)
    # the client that waited meanwhile gets its reply, or (when a descriptor came free while
    # others were still short) the clean refusal: never silence
    try:
        waiting.sendall(b'{"v":1,"cmd":"status","names":[]}\n')
    except BrokenPipeError:
        pass
    reply = waiting.recv(65536)
    waiting.close()
    assert b'"ok":true' in reply or b"out of file descriptors" in reply, reply
    wait_for(lambda: "available again" in ct.stderr, BOOT_S, "the end of the shortage", diag=ct.diag)
    starts = [line for line in ct.stderr.splitlines() if "control: out of file descriptors" in line]
    ends = [line for line in ct.stderr.splitlines() if "available again" in line]
    assert len(starts) == 1 and len(ends) == 1, ct.stderr
    assert "(limit " in starts[0] and "--ulimit nofile=" in starts[0], starts[0]
    assert " control connection(s) refused" in ends[0], ends[0]
    assert int(ends[0].split(";")[1].split()[0]) >= 3, ends[0]
    assert ct.ctl("status").returncode == 0
    assert ct.stop() == 0, ct.diag()


def test_status_under_fd_pressure_gets_a_reply_or_a_clean_refusal(ct):
    """The first request ever (json not imported yet) with one descriptor free: a reply or a
    refusal that says why, never "no valid reply"."""
    ct.service("svc", f"touch {ct.out}/up; exec sleep 1000")
    ct.start()
    ct.wait_file("up")
    pid1 = ct.pid1
    wait_for(lambda: ct.socket.exists(), BOOT_S, "the control socket")
    for spare in (1, 0):
        set_soft_limit(pid1, fd_count(pid1) + spare)
        r = ct.ctl("status")
        assert "no valid reply" not in r.stderr, r.stderr
        assert r.returncode == 0 or "out of file descriptors" in r.stderr, (r.returncode, r.stderr)
    set_soft_limit(pid1, 1024)
    assert ct.ctl("status").returncode == 0
    assert ct.stop() == 0, ct.diag()


def test_boot_beyond_the_fd_limit_says_the_limit_the_need_and_the_fix(ct):
    """40 services with loggers under `ulimit -n 64`: exit 100 with one line naming the limit,
    about how many are needed and `--ulimit nofile=`, not an internal error."""
    for i in range(40):
        ct.service(f"s{i:02}", "exec sleep 1000", log="exec cat")
    ct.start(wrapper='ulimit -n 64 && exec "$@"')
    assert ct.wait() == 100, ct.diag()
    lines = [line for line in ct.stderr.splitlines() if "file descriptors" in line]
    assert len(lines) == 1, ct.stderr
    assert "is 64" in lines[0] and "40 services with 40 loggers need about" in lines[0], lines[0]
    assert "--ulimit nofile=" in lines[0], lines[0]
    assert "internal error" not in ct.stderr, ct.stderr


def test_boot_that_fits_the_fd_limit_runs(ct):
    """The check counts what is held, not a guess: 10 services with loggers fit in 64."""
    for i in range(10):
        ct.service(f"s{i:02}", f"echo x > {ct.out}/s{i:02}; exec sleep 1000", log="exec cat")
    ct.start(wrapper='ulimit -n 64 && exec "$@"')
    for i in range(10):
        ct.wait_file(f"s{i:02}")
    assert ct.stop() == 0, ct.diag()
