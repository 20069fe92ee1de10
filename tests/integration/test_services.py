"""SPEC §7 (service directories, restart policy, finish, loggers), §3 stage 2.3-2.4."""

from __future__ import annotations

import json
import shutil
import signal
import time

import pytest

from .harness import BOOT_S, PY, READ_SYSCALL, kill_pid, py, read_proc, syscalls_while_idle, wait_for

LOOP = "while :; do sleep 0.05; done"
NOW = "date +%s.%N"  # wall-clock seconds with a fraction, written by the scripts


def floats(lines: list[str]) -> list[float]:
    return [float(x) for x in lines]


def gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in zip(times, times[1:])]


def test_service_process_environment(ct):
    """§7 `run`: own session, cwd = the live copy services-state/NAME (§11.4), stdin /dev/null,
    $1 = the service name; §10: default signal dispositions and an empty mask."""
    ct.service("probe", f"""
        grep -E '^Sig(Blk|Ign)' /proc/self/status > {ct.out}/sig
        exec {PY} -c '
import json, os, sys
print(json.dumps({{"sid": os.getsid(0), "pid": os.getpid(), "cwd": os.getcwd(),
                  "stdin": os.readlink("/proc/self/fd/0"), "argv1": sys.argv[1]}}))
' "$1" > {ct.out}/probe
    """)
    ct.start()
    info = json.loads(wait_for(lambda: ct.read("probe").endswith("\n") and ct.read("probe"), BOOT_S,
                               "the probe's output"))
    assert info["sid"] == info["pid"], info
    assert info["cwd"] == str(ct.state_dir("probe")), info
    assert info["stdin"] == "/dev/null", info
    assert info["argv1"] == "probe", info
    sig = dict(line.split(":") for line in ct.lines("sig"))
    assert int(sig["SigBlk"], 16) == 0 and int(sig["SigIgn"], 16) == 0, sig
    assert ct.stop() == 0, ct.diag()


def test_restart_after_crash_is_immediate(ct):
    """§7 restart policy: a service that had been up for more than 1 s and crashes (SIGKILL) is
    restarted at once: within 0.2 s (bound: 0.5 s)."""
    ct.service("crashy", f"echo $$ >> {ct.out}/pids; exec sleep 1000")
    ct.start()
    first = int(ct.wait_lines("pids", 1)[0])
    time.sleep(1.3)  # precondition, not a hope: the service has now been up for over 1 s
    proc = ct.proc_by_nspid(first)
    assert proc is not None, ct.diag()
    t0 = time.monotonic()
    kill_pid(proc.pid, signal.SIGKILL)
    ct.wait_lines("pids", 2)
    elapsed = time.monotonic() - t0
    assert elapsed < 0.5, f"restarted after {elapsed:.2f} s"
    status = ct.status("crashy")["crashy"]
    assert status["restarts"] >= 1 and status["state"] == "up", status
    assert ct.stop() == 0, ct.diag()


def test_run_exiting_at_once_restarts_at_most_once_a_second(ct):
    """§7 restart policy: a `run` that exits at once is restarted, at most once per second (and it
    keeps being restarted: each gap is under 2 s)."""
    ct.service("flappy", f"{NOW} >> {ct.out}/starts; exit 1")
    ct.start()
    starts = floats(ct.wait_lines("starts", 4, timeout=10))
    assert all(0.9 <= g < 2.0 for g in gaps(starts[:4])), gaps(starts)
    assert ct.stop() == 0, ct.diag()


def test_finish_arguments(ct):
    """§7 `finish`: after `run` exits 3 on its own: `3 0 NAME PGID`; after it is killed by the SIGTERM
    of `ignity svc -d`: `256 15 NAME PGID` (PGID = run's pid: it leads its own session)."""
    ct.service("fin", f"""
        echo $$ >> {ct.out}/runpids
        if [ ! -e {ct.out}/first ]; then touch {ct.out}/first; exit 3; fi
        exec sleep 1000
    """, finish=f'echo "$@" >> {ct.out}/finish')
    ct.start()
    ct.wait_lines("finish", 1)
    pids = ct.wait_lines("runpids", 2)
    ct.wait_up("fin")
    assert ct.ctl("svc", "-d", "fin").returncode == 0
    finish = ct.wait_lines("finish", 2)
    assert finish[0].split() == ["3", "0", "fin", pids[0]], finish
    assert finish[1].split() == ["256", "15", "fin", pids[1]], finish
    assert ct.stop() == 0, ct.diag()


def test_hanging_finish_killed_after_timeout_finish(ct):
    """§7 `finish`: killed after `timeout-finish` ms; `run` is never restarted before its finish has
    ended (§11.5): the next start comes about timeout-finish after the finish started (1.5 s here,
    longer than the 1 s throttle), and status says "finishing" meanwhile (§11.11)."""
    ct.service("slowfin", f"{NOW} >> {ct.out}/starts; exit 1",
               finish=f"{NOW} >> {ct.out}/finstarts; exec sleep 1000", timeout_finish=1500)
    ct.start()
    ct.wait_lines("finstarts", 1)
    assert ct.status("slowfin")["slowfin"]["state"] == "finishing"
    starts = floats(ct.wait_lines("starts", 2, timeout=8))
    finstart = floats(ct.lines("finstarts"))[0]
    assert 1.4 <= starts[1] - finstart < 1.5 + 1.5, (starts, finstart)
    assert ct.stop() == 0, ct.diag()


def test_finish_exit_125_stops_restarts(ct):
    """§7 `finish`: exit status 125 means do not restart: after it the service stays down."""
    ct.service("once", f"{NOW} >> {ct.out}/starts; exit 1", finish=f"echo f >> {ct.out}/finish; exit 125")
    ct.start()
    ct.wait_lines("finish", 1)
    r = ct.ctl("wait", "-D", "-t", "5000", "once")
    assert r.returncode == 0, r.stderr
    time.sleep(1.5)  # longer than the restart throttle: a restart would have happened by now
    assert len(ct.lines("starts")) == 1
    status = ct.status("once")["once"]
    assert status["state"] == "down" and status["pid"] is None, status
    assert ct.stop() == 0, ct.diag()


def test_down_file_then_svc_up(ct):
    """§7 `down`: not started at boot; `ignity svc -u NAME` starts it."""
    ct.service("lazy", f"echo started >> {ct.out}/lazy; exec sleep 1000", down=True)
    ct.service("eager", "exec sleep 1000")
    ct.start()
    ct.wait_up("eager")
    status = ct.status()
    assert status["lazy"]["state"] == "down" and status["lazy"]["pid"] is None, status
    assert ct.read("lazy") == ""
    assert ct.ctl("svc", "-u", "lazy").returncode == 0
    ct.wait_up("lazy")
    assert ct.wait_file("lazy") == "started\n"
    assert isinstance(ct.status("lazy")["lazy"]["pid"], int)
    assert ct.stop() == 0, ct.diag()


def test_down_signal_honoured(ct):
    """§7 `down-signal`: a name with or without SIG, or a number; sent instead of SIGTERM by
    `ignity svc -d` (SIGCONT follows)."""
    trap = "; ".join(f"trap 'echo {s} >> {ct.out}/$1; exit 0' {s}" for s in ("TERM", "USR1", "INT", "USR2"))
    for name, down_signal in (("a", "SIGUSR1"), ("b", "INT"), ("c", str(int(signal.SIGUSR2)))):
        ct.service(name, f"{trap}; touch {ct.out}/$1-up; {LOOP}", down_signal=down_signal)
    ct.start()
    for name in "abc":
        ct.wait_file(f"{name}-up")
    ct.wait_up("a", "b", "c")
    assert ct.ctl("svc", "-d", "a", "b", "c").returncode == 0
    wait_for(lambda: all(ct.read(n) for n in "abc"), BOOT_S, "the three traps")
    got = {name: ct.read(name).split()[0] for name in "abc"}
    assert got == {"a": "USR1", "b": "INT", "c": "USR2"}
    assert ct.stop() == 0, ct.diag()


def test_timeout_kill_on_svc_down(ct):
    """§7 `timeout-kill`: a service ignoring its down signal gets SIGKILL that many ms after
    `ignity svc -d`; without it, it is never killed by svc -d."""
    ct.service("kill-me", "trap '' TERM; exec sleep 1000", timeout_kill=500)
    ct.service("keep-me", "trap '' TERM; exec sleep 1000")
    ct.start(env={"IGNITY_SERVICES_GRACETIME": "300"})  # keep-me ignores TERM at shutdown too
    ct.wait_up("kill-me", "keep-me")
    t0 = time.monotonic()
    assert ct.ctl("svc", "-d", "kill-me", "keep-me").returncode == 0
    r = ct.ctl("wait", "-d", "-t", "5000", "kill-me")
    assert r.returncode == 0, r.stderr
    assert 0.4 <= time.monotonic() - t0 < 0.5 + 3.0
    assert ct.ctl("wait", "-d", "-t", "700", "keep-me").returncode == 99
    assert ct.status("keep-me")["keep-me"]["pid"] is not None
    assert ct.stop() == 0, ct.diag()


def test_wait_ready_with_notification_fd(ct):
    """§7 `notification-fd`, §8 `ignity wait -U`: not ready until `run` writes a newline on that fd:
    `wait -U -t` times out with 99 before, returns 0 after; `wait -u` does not need readiness."""
    ct.service("slowready", f"""
        until [ -e {ct.out}/go ]; do sleep 0.02; done
        echo >&3
        exec sleep 1000
    """, notification_fd=3)
    ct.start()
    ct.wait_up("slowready")
    t0 = time.monotonic()
    r = ct.ctl("wait", "-U", "-t", "400", "slowready")
    assert r.returncode == 99, r.stderr
    assert time.monotonic() - t0 >= 0.35
    assert ct.status("slowready")["slowready"]["ready"] is False
    (ct.out / "go").write_text("")
    r = ct.ctl("wait", "-U", "-t", "5000", "slowready")
    assert r.returncode == 0, r.stderr
    assert ct.status("slowready")["slowready"]["ready"] is True
    assert ct.stop() == 0, ct.diag()


def test_cmd_waits_for_services(ct):
    """§3 stage 2.4: with IGNITY_CMD_WAIT_FOR_SERVICES=1 the CMD starts only once every started
    service is ready."""
    ct.service("db", f"""
        sleep 0.5
        echo ready >> {ct.out}/order
        echo >&3
        exec sleep 1000
    """, notification_fd=3)
    ct.start("/bin/sh", "-c", f"echo cmd >> {ct.out}/order", env={"IGNITY_CMD_WAIT_FOR_SERVICES": "1"})
    assert ct.wait() == 0, ct.diag()
    assert ct.lines("order") == ["ready", "cmd"]


def test_cmd_wait_for_services_times_out(ct):
    """§3 stage 2.4: the wait is bounded by IGNITY_CMD_WAIT_FOR_SERVICES_MAXTIME; then the services
    that are not ready are named on stderr and the CMD runs anyway."""
    ct.service("never-ready", "exec sleep 1000", notification_fd=3)
    ct.start("/bin/sh", "-c", "exit 5", env={"IGNITY_CMD_WAIT_FOR_SERVICES": "1",
                                             "IGNITY_CMD_WAIT_FOR_SERVICES_MAXTIME": "500"})
    t0 = time.monotonic()
    assert ct.wait() == 5, ct.diag()
    assert time.monotonic() - t0 < 0.5 + 3.0
    assert "never-ready" in ct.stderr


def test_broken_service_does_not_affect_others(ct):
    """§7 restart policy: a broken service (no `run`, not executable, bad interpreter) is reported
    and retried at the 1 s pace; the others run; PID 1 stays up."""
    ct.service("noexec", "exec sleep 1000", run_mode=0o644)
    ct.service("badinterp", "#!/nonexistent/interpreter\n")
    ct.write("services/norun/notification-fd", "3\n")
    ct.service("good", f"echo $$ >> {ct.out}/good; exec sleep 1000")
    ct.start()
    ct.wait_up("good")
    time.sleep(1.2)  # long enough for at least one retry of the broken ones
    assert len(ct.lines("good")) == 1
    status = ct.status()
    assert status["good"]["state"] == "up"
    for name in ("noexec", "badinterp"):
        assert status[name]["state"] in ("down", "failed"), status[name]
        assert name in ct.stderr, ct.stderr
    assert ct.stop() == 0, ct.diag()
    assert "Traceback" not in ct.stderr


def test_two_hundred_services_boot_and_stop_cleanly(ct):
    """§7 at scale: 200 services come up, nothing is left over, and they all go down at SIGTERM
    quickly (they honour it) with exit 0."""
    names = [f"s{i:03d}" for i in range(200)]
    for name in names:
        ct.service(name, "exec sleep 1000")
    ct.start()
    ct.wait_up(*names, timeout_ms=30000)
    status = ct.status()
    assert sorted(status) == names
    assert all(s["state"] == "up" and isinstance(s["pid"], int) for s in status.values())
    assert not ct.zombies()
    t0 = time.monotonic()
    assert ct.stop() == 0, ct.diag()
    assert time.monotonic() - t0 < 5.0
    assert "Traceback" not in ct.stderr


@pytest.mark.timeout(150)
@pytest.mark.skipif(READ_SYSCALL is None, reason="needs the read(2) number for /proc/PID/syscall")
def test_logger_killed_20_times_loses_no_line(ct):
    """§7 `log/`: run's stdout goes to the logger through a pipe ignity holds, so no line is lost
    when the logger restarts. The writer writes 100 000 numbered lines steadily (~20 s); the logger
    is SIGKILLed 20 times meanwhile; every line arrives exactly once, in order.

    Fairness: data a logger has read but not yet written is the logger's own to lose, so each kill
    lands while the logger is blocked reading an empty pipe: the writer is SIGSTOPped, the logger
    drains the pipe and blocks in read(0, ...) (/proc/PID/syscall), it is killed, and once it is dead
    the writer is SIGCONTed and keeps writing while no logger is alive."""
    out = ct.out
    ct.service("writer", py(f"""
        import os, sys, time
        with open("{out}/writer.pid.tmp", "w") as f:
            f.write(str(os.getpid()))
        os.rename("{out}/writer.pid.tmp", "{out}/writer.pid")
        if os.path.exists("{out}/written"):        # restarted: never write twice
            while True:
                time.sleep(1000)
        n = 0
        while n < 100000:                          # 250 lines every 60 ms: about 24 s
            sys.stdout.write("".join(f"{{i}}\\n" for i in range(n + 1, n + 251)))
            sys.stdout.flush()
            n += 250
            time.sleep(0.06)
        open("{out}/written", "w").close()
        while True:
            time.sleep(1000)
        """), log=py(f"""
        import os
        fd = os.open("{out}/log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        with open("{out}/logger.pid.tmp", "w") as f:
            f.write(str(os.getpid()))
        os.rename("{out}/logger.pid.tmp", "{out}/logger.pid")
        while True:
            data = os.read(0, 65536)
            if not data:
                break
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        """))
    ct.start()

    def host_pid(marker: str, not_nspid: int = 0) -> tuple[int, int]:
        def found():
            text = ct.read(marker)
            if not text or int(text) == not_nspid:
                return None
            proc = ct.proc_by_nspid(int(text))
            return (proc.pid, int(text)) if proc is not None and proc.state != "Z" else None
        return wait_for(found, BOOT_S, f"a new {marker}", diag=ct.diag)

    def blocked_in_read(pid: int) -> bool:
        try:
            with open(f"/proc/{pid}/syscall") as f:
                fields = f.read().split()
        except OSError:
            return False
        return len(fields) > 1 and fields[0] == str(READ_SYSCALL) and int(fields[1], 16) == 0

    writer, _ = host_pid("writer.pid")
    logger, logger_ns = host_pid("logger.pid")
    def stopped(pid: int) -> bool:
        proc = read_proc(pid)
        return proc is not None and proc.state == "T"

    def dead(pid: int) -> bool:
        proc = read_proc(pid)
        return proc is None or proc.state in ("Z", "X")

    kills = while_writing = 0
    while kills < 20:
        kill_pid(writer, signal.SIGSTOP)
        wait_for(lambda: stopped(writer), BOOT_S, "the writer stopped")
        wait_for(lambda pid=logger: blocked_in_read(pid), BOOT_S, "the logger blocked reading an empty pipe")
        kill_pid(logger, signal.SIGKILL)
        # a reader woken by SIGKILL still takes data that reaches the pipe before it runs (pipe_read
        # checks the buffer before the signal): the writer goes on only once the logger is dead
        wait_for(lambda pid=logger: dead(pid), BOOT_S, "the logger dead")
        kill_pid(writer, signal.SIGCONT)
        kills += 1
        while_writing += not (out / "written").exists()
        logger, logger_ns = host_pid("logger.pid", not_nspid=logger_ns)
    assert while_writing >= 15, f"only {while_writing} kills while the writer wrote: make it slower"
    ct.wait_file("written", timeout=60)
    expected = "".join(f"{i}\n" for i in range(1, 100001))
    wait_for(lambda: len(ct.read("log")) >= len(expected), 20, "every line in the log")
    assert ct.stop() == 0, ct.diag()
    log = ct.read("log")
    if log != expected:
        numbers = [int(x) for x in log.split()]
        missing = sorted(set(range(1, 100001)) - set(numbers))
        dups = len(numbers) - len(set(numbers))
        pytest.fail(f"{len(numbers)} lines, {len(missing)} missing (first {missing[:5]}), {dups} duplicated")


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")
def test_idle_supervisor_makes_no_system_calls(ct):
    """§7, event-driven supervision: with 100 services up and nothing happening, ignity sleeps in
    one epoll_wait without a timeout: strace attached for 2 s sees no system call at all."""
    names = [f"idle{i:03d}" for i in range(100)]
    for name in names:
        ct.service(name, "exec sleep 1000")
    ct.start()
    ct.wait_up(*names, ready=True, timeout_ms=30000)  # ready-after's timers done
    time.sleep(0.5)  # let the last status client's connection be closed and forgotten
    calls, table = syscalls_while_idle(ct.pid1)
    assert calls == [], table
    assert ct.stop() == 0
