"""Built-in logging (docs/logging.md): a service's `log/` without `run` is read by ignity itself,
into files in the s6-log layout and/or the container's stdout with a prefix; IGNITY_LOG_PREFIX and
IGNITY_LOG_TIMESTAMPS for services without `log/`; `ignity svc -a` rotates. Every line once, in
order, across restarts and rotations; a full disk drops and counts lines without blocking anyone;
a stalled stdout holds back only the service writing to it."""
from __future__ import annotations

import os
import re
import shutil
import time

import pytest

from .harness import BOOT_S, syscalls_while_idle, wait_for

ARCHIVE = re.compile(r"@[0-9a-f]{24}\.[su]")
ISO = rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z "


def archives(path):
    return sorted(n for n in os.listdir(path) if ARCHIVE.fullmatch(n))


def log_content(path) -> bytes:
    out = b""
    for name in [*archives(path), "current"]:
        with open(os.path.join(path, name), "rb") as f:
            out += f.read()
    return out


def log_dir(ct, service, **knobs):
    for key, value in knobs.items():
        ct.write(f"services/{service}/log/{key.replace('_', '-')}", f"{value}\n")
    (ct.conf / "services" / service / "log").mkdir(parents=True, exist_ok=True)


def test_files_with_rotation_every_line_once_across_restarts(ct):
    logs = ct.out / "logs"
    # three runs of 400 lines each, the last one ending on an unfinished line, then it waits
    ct.service("web", """
        n=$(cat runs 2>/dev/null || echo 0); n=$((n+1)); echo $n > runs
        i=0; while [ $i -lt 400 ]; do i=$((i+1)); echo "run $n line $i"; done
        [ $n -lt 3 ] && exit 0
        printf 'unfinished'
        exec sleep 1000
    """)
    log_dir(ct, "web", directory=logs, max_size=4096, keep=1000, timestamp="none", prefix="")
    ct.start()
    wait_for(lambda: (ct.state_dir("web") / "runs").exists() and
             (ct.state_dir("web") / "runs").read_text().strip() == "3", 15, "three runs", diag=ct.diag)
    expected = b"".join(b"run %d line %d\n" % (n, i) for n in (1, 2, 3) for i in range(1, 401))
    wait_for(lambda: log_content(logs) == expected, BOOT_S, "every line in the log", diag=ct.diag)
    names = archives(logs)
    assert len(names) >= 4 and all(os.path.getsize(logs / n) <= 4096 for n in names)
    # ignity svc -a NAME rotates the built-in log on demand
    assert ct.ctl("svc", "-a", "web").returncode == 0
    wait_for(lambda: len(archives(logs)) == len(names) + 1, BOOT_S, "a rotation on demand", diag=ct.diag)
    assert os.path.getsize(logs / "current") == 0
    assert ct.stop() == 0
    # at shutdown the unfinished last line is written, and current is closed cleanly
    assert log_content(logs) == expected + b"unfinished\n"
    assert os.stat(logs / "current").st_mode & 0o777 == 0o744
    assert "ignity: warning" not in ct.stderr


def test_prefixed_lines_on_stdout_for_docker_logs(ct):
    ct.service("web", "echo 'GET /'; echo 'oops' >&2; exec sleep 1000")
    log_dir(ct, "web")  # log/ without run or directory: prefixed lines on stdout
    ct.service("db", "echo ready; exec sleep 1000")  # no log/: IGNITY_LOG_PREFIX applies
    ct.service("api", "echo started; echo 'to the log too' >&2; exec sleep 1000")
    log_dir(ct, "api", prefix="api| ", stderr=1, timestamp="iso")
    ct.start(env={"IGNITY_LOG_PREFIX": "1"})
    wait_for(lambda: all(s in ct.stdout for s in ("[web] GET /", "[db] ready", "to the log too")), BOOT_S,
             "prefixed lines", diag=ct.diag)
    assert ct.stop() == 0
    out = ct.stdout.encode()
    assert b"[web] GET /\n" in out and b"[db] ready\n" in out
    assert re.search(ISO + rb"api\| started\n", out) and re.search(ISO + rb"api\| to the log too\n", out)
    assert "oops" in ct.stderr and "[web] oops" not in ct.stdout  # stderr not captured by default


def test_json_lines_in_files_and_on_stdout(ct):
    import json

    logs = ct.out / "logs"
    ct.service("api", """printf 'GET /\\n"quoted" \\\\ and a tab\\t\\n'; exec sleep 1000""")
    log_dir(ct, "api", directory=logs, stdout=1, format="json")
    ct.start()
    wait_for(lambda: ct.stdout.count("\n") >= 2, BOOT_S, "two lines", diag=ct.diag)
    assert ct.stop() == 0
    on_stdout = [json.loads(line) for line in ct.stdout.splitlines()]
    assert on_stdout == [{"service": "api", "line": "GET /"},
                         {"service": "api", "line": '"quoted" \\ and a tab\t'}]
    in_file = [json.loads(line) for line in log_content(logs).splitlines()]
    assert [o["line"] for o in in_file] == [o["line"] for o in on_stdout]
    assert all(re.fullmatch(ISO.decode().rstrip(" "), o["time"]) for o in in_file)


def test_timestamps_without_prefix_for_services_without_log(ct):
    ct.service("db", "echo ready; exec sleep 1000")
    ct.start(env={"IGNITY_LOG_TIMESTAMPS": "tai64n"})
    wait_for(lambda: "ready" in ct.stdout, BOOT_S, "the line", diag=ct.diag)
    assert ct.stop() == 0
    assert re.fullmatch(rb"@4[0-9a-f]{23} ready\n", ct.stdout.encode())


@pytest.mark.parametrize("name,value", [("IGNITY_LOG_PREFIX", "yes"), ("IGNITY_LOG_TIMESTAMPS", "local")])
def test_junk_log_settings_exit_100(ct, name, value):
    ct.start(env={name: value})
    assert ct.wait() == 100
    assert name in ct.stderr


def test_bad_knob_is_named_with_its_default(ct):
    ct.service("web", "echo hi; exec sleep 1000")
    log_dir(ct, "web", max_size="lots")
    ct.start()
    wait_for(lambda: "[web] hi" in ct.stdout, BOOT_S, "the line", diag=ct.diag)
    assert ct.stop() == 0
    (line,) = [x for x in ct.stderr.splitlines() if "max-size" in x]
    assert line.startswith("ignity: warning: ") and "'lots' is not a number >= 4096, using 1000000" in line


@pytest.mark.skipif(os.geteuid() != 0, reason="mounts a tmpfs")
def test_full_disk_drops_and_counts_then_resumes(ct):
    logs = ct.out / "logs"
    logs.mkdir()
    # a 128 KiB tmpfs (mounted inside the container's mount namespace) fills up; the service goes on
    ct.service("chatty", """
        i=0; while :; do i=$((i+1)); echo "line $i of some length to fill the disk quickly........"
        [ -e ../../../out/stop-chatty ] && exec sleep 1000; done
    """)
    log_dir(ct, "chatty", directory=logs, max_size=1000000, timestamp="none")
    ct.service("other", "while :; do date +%s%N > ../../../out/other.beat; sleep 0.05; done")
    ct.start(wrapper=f'mount -t tmpfs -o size=128k tmpfs {logs} && exec "$@"')
    wait_for(lambda: "unable to write to" in ct.stderr, BOOT_S, "the full-disk report", diag=ct.diag)
    time.sleep(1)
    # PID 1 answers and the other service runs on while lines are being dropped
    t0 = time.monotonic()
    assert ct.ctl("status", "other").returncode == 0
    assert time.monotonic() - t0 < 5
    beat = ct.read("other.beat")
    wait_for(lambda: ct.read("other.beat") != beat, BOOT_S, "the other service to go on", diag=ct.diag)
    assert ct.stderr.count("unable to write to") == 1, ct.stderr  # once per episode
    # room again: writing resumes by itself and says how many lines were lost
    assert ct.exec("sh", "-c", f": > {logs}/current").returncode == 0
    wait_for(lambda: "again;" in ct.stderr, BOOT_S, "writing to resume", diag=ct.diag)
    lost = int(re.search(r"again; (\d+) lines were lost", ct.stderr).group(1))
    assert lost > 0
    (ct.out / "stop-chatty").touch()
    assert ct.stop() == 0


def test_writer_faster_than_the_disk_loses_nothing_and_blocks_nobody(ct):
    logs = ct.out / "logs"
    ct.service("flood", f"""#!{shutil.which('python3') or '/usr/bin/python3'}
import os, sys
out = sys.stdout.buffer
for block in range(200):
    out.write(b"".join(b"%07d %s\\n" % (block * 1000 + i, b"x" * 80) for i in range(1000)))
out.flush()
open("../../../out/flood.done", "w").close()
os.execvp("sleep", ["sleep", "1000"])
""")
    log_dir(ct, "flood", directory=logs, max_size=1000000, keep=100, timestamp="tai64n", prefix="")
    ct.start()
    ct.wait_socket()
    worst = 0.0
    while not (ct.out / "flood.done").exists():
        t0 = time.monotonic()
        assert ct.ctl("status", "flood").returncode == 0
        worst = max(worst, time.monotonic() - t0)
        assert time.monotonic() - t0 < 60
    assert worst < 5, f"a status request took {worst:.1f} s while the log was written"
    wait_for(lambda: len(log_content(logs)) >= 200_000 * 115, 30, "every line written", diag=ct.diag)
    assert ct.stop() == 0
    lines = log_content(logs).splitlines()
    assert [int(line[26:33]) for line in lines] == list(range(200_000))


def test_stalled_stdout_holds_back_only_its_writer(ct):
    """The container's stdout is a pipe nobody reads: the prefixed service blocks once its pipe
    is full, PID 1 and the other services go on; when the reader comes, every line arrives once,
    in order."""
    fifo = ct.base / "stdout.fifo"
    os.mkfifo(fifo)
    ct.service("talker", """
        i=0; while [ $i -lt 20000 ]; do i=$((i+1)); echo "talk $i"; done
        touch ../../../out/talker.done; exec sleep 1000
    """)
    ct.service("other", "while :; do date +%s%N > ../../../out/other.beat; sleep 0.05; done")
    # stdout opened read-write: the pipe has a reader (itself) but nobody ever reads it
    ct.start(env={"IGNITY_LOG_PREFIX": "1"}, wrapper=f'exec "$@" 1<>{fifo}')
    ct.wait_socket()
    time.sleep(1.5)
    assert not (ct.out / "talker.done").exists()  # held back: its pipe is full
    t0 = time.monotonic()
    assert ct.ctl("status").returncode == 0 and time.monotonic() - t0 < 5
    beat = ct.read("other.beat")
    wait_for(lambda: ct.read("other.beat") != beat, BOOT_S, "the other service to go on", diag=ct.diag)
    # the reader comes back
    got = bytearray()
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and got.count(b"\n") < 20000:
            try:
                got += os.read(fd, 65536)
            except BlockingIOError:
                time.sleep(0.01)
    finally:
        os.close(fd)
    assert bytes(got) == b"".join(b"[talker] talk %d\n" % i for i in range(1, 20001))
    ct.wait_file("talker.done")
    assert ct.stop() == 0


def test_external_logger_gets_sigalrm(ct):
    """`log/` with `run` keeps the external logger; `ignity svc -a web/log` sends it SIGALRM, as
    s6-svc -a does (an `ignity log` or s6-log rotates on it)."""
    logs = ct.out / "logs"
    ct.service("web", "echo one; exec sleep 1000", log=f"exec ignity log -t none {logs}")
    ct.start()
    wait_for(lambda: (logs / "current").exists() and (logs / "current").read_bytes() == b"one\n", BOOT_S,
             "the line", diag=ct.diag)
    assert ct.ctl("svc", "-a", "web/log").returncode == 0
    wait_for(lambda: archives(logs), BOOT_S, "the rotation", diag=ct.diag)
    assert ct.stop() == 0
    assert log_content(logs) == b"one\n"


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")
def test_idle_with_builtin_logs_makes_no_system_calls(ct):
    names = [f"idle{i:02d}" for i in range(20)]
    for name in names:
        ct.service(name, "echo started; exec sleep 1000")
        log_dir(ct, name, directory=ct.out / "logs" / name)
    ct.start(env={"IGNITY_LOG_PREFIX": "1"})
    ct.wait_up(*names, ready=True, timeout_ms=30000)  # ready-after's timers done
    wait_for(lambda: all((ct.out / "logs" / n / "current").exists() and
                         (ct.out / "logs" / n / "current").stat().st_size for n in names), BOOT_S, "the lines")
    time.sleep(0.5)
    calls, table = syscalls_while_idle(ct.pid1)
    assert calls == [], table
    assert ct.stop() == 0
