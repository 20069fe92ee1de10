"""Bad input never takes PID 1 down and never prints a traceback: malformed env files (§11.2),
scripts that cannot run (§3 stage 2.2), bad IGNITY_* values (§9, §11.6), an unwritable runtime dir
(§3 stage 1.2), junk in service directories (§7) and garbage on the control socket (§8)."""

from __future__ import annotations

import re
import socket
import time

import pytest

from .harness import BOOT_S, wait_for


def assert_no_traceback(ct) -> None:
    assert "Traceback" not in ct.stderr, ct.stderr


@pytest.mark.parametrize(("text", "line"), [
    ("GOOD=1\nALSO_GOOD=2\nthis is not valid\nLATER=3\n", 3),
    ("# a comment\n\nA=1\n\n   \nB='unterminated\n", 6),
    ("=no-name\n", 1),
])
def test_malformed_env_file_names_file_and_line(ct, text, line):
    """§11.2: a line python-dotenv cannot parse is an error naming file and line; the boot stops with
    100 (nothing of stage 2 runs)."""
    ct.envfile("10-good", "FINE=yes\n")
    ct.write("envs/20-broken", text)
    ct.init("10", f"echo ran > {ct.out}/init")
    ct.start("/bin/sh", "-c", f"echo ran > {ct.out}/cmd")
    assert ct.wait() == 100, ct.diag()
    named = [ln for ln in ct.stderr.splitlines() if "20-broken" in ln]
    assert named, ct.stderr
    assert any(re.search(rf"\b{line}\b", ln) for ln in named), named
    assert all(ln.startswith("ignity: ") for ln in ct.stderr.splitlines()), ct.stderr
    assert (ct.read("init"), ct.read("cmd")) == ("", "")
    assert_no_traceback(ct)


def test_non_executable_init_script_is_126(ct):
    """§3 stage 2.2, §5 row 4: an init script that is not executable stops the boot with 126, named."""
    ct.init("10-noexec", f"echo ran > {ct.out}/noexec", mode=0o644)
    ct.init("20-later", f"echo ran > {ct.out}/later")
    ct.start("/bin/sh", "-c", f"echo ran > {ct.out}/cmd")
    assert ct.wait() == 126, ct.diag()
    assert "10-noexec" in ct.stderr
    assert (ct.read("noexec"), ct.read("later"), ct.read("cmd")) == ("", "", "")
    assert_no_traceback(ct)


def test_init_script_with_missing_interpreter(ct):
    """§3 stage 2.2: an init script whose #! interpreter is missing cannot be executed: the boot stops
    with a non-zero status (127 / 126) naming the script, and no traceback."""
    ct.init("10-badinterp", "#!/nonexistent/interpreter\n")
    ct.start("/bin/sh", "-c", f"echo ran > {ct.out}/cmd")
    assert ct.wait() in (126, 127), ct.diag()
    assert "10-badinterp" in ct.stderr
    assert ct.read("cmd") == ""
    assert_no_traceback(ct)


def test_missing_interpreter_is_named(ct):
    """A missing #! interpreter is named, for an init script (boot stops, 127), a finalize script
    (reported) and the CMD (127); a #! line with Windows line endings says so."""
    ct.finalize("10-python4", "#!/usr/bin/python4 -u\nprint('hi')\n")
    ct.start(str(ct.script("cmd-crlf", "#!/bin/sh\r\nexit 0\r\n")))
    assert ct.wait() == 127, ct.diag()
    assert ("cmd-crlf: its #! line ends with a carriage return (Windows line endings), so the interpreter "
            "'/bin/sh' does not exist; convert the file: sed -i 's/\\r$//' ") in ct.stderr, ct.diag()
    assert ("10-python4: its interpreter /usr/bin/python4 (from its #! line) does not exist: install it "
            "or fix the #! line") in ct.stderr, ct.diag()
    assert_no_traceback(ct)


def test_init_script_names_its_missing_interpreter(ct):
    ct.init("10-node", "#!/usr/local/bin/node\nconsole.log(1)\n")
    ct.start("/bin/true")
    assert ct.wait() == 127, ct.diag()
    assert "10-node: its interpreter /usr/local/bin/node (from its #! line) does not exist" in ct.stderr, ct.diag()


def test_non_executable_finalize_script_is_reported_only(ct):
    """§3 stage 3.2: finalize exit codes are reported, not acted on: a non-executable one is named,
    the next one still runs, the CMD's status stands."""
    ct.finalize("10-noexec", "exit 0", mode=0o644)
    ct.finalize("20-next", f"echo ran > {ct.out}/next")
    ct.start("/bin/sh", "-c", "exit 3")
    assert ct.wait() == 3, ct.diag()
    assert ct.read("next") == "ran\n"
    assert "10-noexec" in ct.stderr
    assert_no_traceback(ct)


@pytest.mark.parametrize(("name", "value"), [
    ("IGNITY_KILL_GRACETIME", "abc"),
    ("IGNITY_KILL_GRACETIME", "-5"),
    ("IGNITY_SERVICES_GRACETIME", "1.5"),
    ("IGNITY_KILL_FINALIZE_MAXTIME", "5s"),
    ("IGNITY_CMD_WAIT_FOR_SERVICES_MAXTIME", "0x10"),
    ("IGNITY_VERBOSITY", "9"),
    ("IGNITY_SYNC_DISKS", "yes"),
    ("IGNITY_SKIP_PERMS", "2"),
    ("IGNITY_CMD_WAIT_FOR_SERVICES", "true"),
    ("IGNITY_ENVS_MODE", "bogus"),
])
def test_bad_setting_is_100_naming_the_variable(ct, name, value):
    """§9, §11.6: a junk value in any IGNITY_* setting exits 100 with a message naming the variable;
    nothing runs."""
    ct.init("10", f"echo ran > {ct.out}/init")
    ct.start("/bin/sh", "-c", f"echo ran > {ct.out}/cmd", env={name: value})
    assert ct.wait() == 100, ct.diag()
    assert name in ct.stderr, ct.stderr
    assert (ct.read("init"), ct.read("cmd")) == ("", "")
    assert_no_traceback(ct)


def test_empty_settings_mean_the_defaults(ct):
    """§11.6: an empty value means the default."""
    empty = {name: "" for name in (
        "IGNITY_KILL_GRACETIME", "IGNITY_SERVICES_GRACETIME", "IGNITY_KILL_FINALIZE_MAXTIME",
        "IGNITY_CMD_WAIT_FOR_SERVICES", "IGNITY_CMD_WAIT_FOR_SERVICES_MAXTIME", "IGNITY_VERBOSITY",
        "IGNITY_SYNC_DISKS", "IGNITY_SKIP_PERMS", "IGNITY_ENVS_MODE")}
    ct.start("/bin/sh", "-c", "exit 4", env=empty)
    assert ct.wait() == 4, ct.diag()
    assert_no_traceback(ct)


def test_unwritable_runtime_dir_is_100_naming_dir_and_fix(ct):
    """§3 stage 1.2: a runtime dir that is not writable (a read-only mount, as on a read-only root
    file system) → 100, with a message naming the dir and the fix (a tmpfs or preboot)."""
    ct.run_dir.mkdir()
    ct.start("/bin/sh", "-c", f"echo ran > {ct.out}/cmd",
             wrapper=f'mount -t tmpfs -o ro tmpfs {ct.run_dir} && exec "$@"')
    assert ct.wait() == 100, ct.diag()
    lines = [ln for ln in ct.stderr.splitlines() if str(ct.run_dir) in ln]
    assert lines, ct.stderr
    assert any("tmpfs" in ln or "preboot" in ln for ln in lines), lines
    assert ct.read("cmd") == ""
    assert_no_traceback(ct)


def test_junk_in_service_directories(ct):
    """§7: junk in a service's files (notification-fd, down-signal, timeout-kill, timeout-finish) or a
    service dir without `run` never takes PID 1 down: the other services run, status answers,
    SIGTERM stops the container with 0, and there is no traceback."""
    ct.service("junk1", "exec sleep 1000", notification_fd="abc", down_signal="SIGBOGUS")
    ct.service("junk2", "exec sleep 1000", timeout_kill="-5", timeout_finish="xyz", notification_fd="1")
    ct.service("junk3", "exec sleep 1000", down_signal="99999", timeout_kill="1e9")
    ct.write("services/norun/down-signal", "TERM\n")
    ct.write("services/notadir", "just a file\n")
    ct.service("good", f"echo up > {ct.out}/good; exec sleep 1000")
    ct.start()
    ct.wait_file("good")
    ct.wait_socket()
    assert ct.ctl("status").returncode == 0
    for name in ("junk1", "junk2", "junk3"):
        ct.ctl("svc", "-d", name)  # whatever it answers, PID 1 must survive it
    assert ct.status("good")["good"]["state"] == "up"
    assert ct.stop() == 0, ct.diag()
    assert_no_traceback(ct)


def _connect(ct) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(str(ct.socket))
    return s


def _send_and_read(ct, data: bytes, shut_write: bool = True) -> bytes | None:
    """Send data, optionally half-close, and read until ignity closes the connection: what came back,
    or None when ignity neither replied nor closed within the socket timeout (5 s)."""
    with _connect(ct) as s:
        chunks = []
        try:
            s.sendall(data)
            if shut_write:
                s.shutdown(socket.SHUT_WR)
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # ignity refused to read it all: fair for an oversized request
        except socket.timeout:
            return None
        return b"".join(chunks)


GARBAGE = [
    b"\n",
    b"garbage\n",
    b"\x00\x01\x02\xff\xfe\n",
    b"\xc3\x28 not utf-8\n",
    b"{\n",
    b"[]\n",
    b"null\n",
    b'"a string"\n',
    b"1" * 10000 + b"\n",                      # an integer too long for int()
    b"[" * 30000 + b"]" * 30000 + b"\n",       # nested deeper than the recursion limit
    b'{"' + b"k" * 1000 + b'": ' + b"{}" * 10 + b"}\n",
    b"x" * (2 * 1024 * 1024) + b"\n",          # oversized
    b'{"cmd": "status"' * 3000 + b"\n",
]


def test_garbage_on_the_control_socket(ct):
    """§8: malformed requests get an error reply and never disturb ignity: after garbage, oversized
    and deeply nested requests, ignity still runs and `ignity status` answers; no traceback."""
    ct.service("svc", "exec sleep 1000")
    ct.start()
    ct.wait_up("svc")
    for data in [*GARBAGE, b"garbage without a newline, then end of file"]:
        reply = _send_and_read(ct, data)
        assert ct.running, f"PID 1 died after {data[:40]!r}\n{ct.diag()}"
        assert reply is not None, f"no reply and no close for {data[:40]!r}\n{ct.stderr[-600:]}"
        assert "internal error" not in ct.stderr, f"after {data[:40]!r}: {ct.stderr[-600:]}"
    r = ct.ctl("status", "svc")
    assert r.returncode == 0, r.stderr + ct.diag()
    assert ct.stop() == 0, ct.diag()
    assert_no_traceback(ct)


def test_malformed_request_gets_a_reply(ct):
    """§8 "Malformed requests get an error reply": something comes back for a garbage line (its
    format is not this test's business), and the connection is closed."""
    ct.start()
    ct.wait_socket()
    reply = _send_and_read(ct, b"this is not a request\n", shut_write=False)
    assert reply is not None and reply.strip(), "no reply to a malformed request"
    assert ct.stop() == 0, ct.diag()


def test_half_sent_requests_and_disconnects_do_not_block(ct):
    """§8: clients that connect and send nothing, send half a request and stay, or go away mid-request
    neither block ignity nor stop it: `ignity status` answers while they hang on, and after they go."""
    ct.service("svc", "exec sleep 1000")
    ct.start()
    ct.wait_up("svc")
    idle = [_connect(ct) for _ in range(5)]
    half = []
    for _ in range(5):
        s = _connect(ct)
        s.sendall(b'{"cmd": "sta')
        half.append(s)
    try:
        t0 = time.monotonic()
        r = ct.ctl("status", "svc")
        assert r.returncode == 0, r.stderr + ct.diag()
        assert time.monotonic() - t0 < 5.0
    finally:
        for s in idle + half:
            s.close()
    # mid-request disconnects: half a request then a reset (SO_LINGER 0), or a plain close
    for _ in range(20):
        s = _connect(ct)
        s.sendall(b'{"cmd": "status", "na')
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()
        s = _connect(ct)
        s.close()
    # many connections at once, all dropped without a word
    crowd = []
    for _ in range(100):
        try:
            crowd.append(_connect(ct))
        except OSError:
            break
    for s in crowd:
        s.close()

    def answers() -> bool:
        return ct.ctl("status", "svc").returncode == 0

    wait_for(answers, BOOT_S, "ignity status to answer again", interval=0.2)
    assert ct.running
    assert ct.stop() == 0, ct.diag()
    assert_no_traceback(ct)


def test_client_not_reading_its_reply(ct):
    """§8: a client that sends a request and never reads the reply (nor closes) does not stop ignity
    from serving others."""
    ct.service("svc", "exec sleep 1000")
    ct.start()
    ct.wait_up("svc")
    silent = [_connect(ct) for _ in range(5)]
    try:
        for s in silent:
            s.sendall(b"garbage\n")
        r = ct.ctl("status", "svc")
        assert r.returncode == 0, r.stderr + ct.diag()
    finally:
        for s in silent:
            s.close()
    assert ct.stop() == 0, ct.diag()
    assert_no_traceback(ct)
