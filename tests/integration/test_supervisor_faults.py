"""Supervision under faults: what cannot be read, prepared or started is a failed start, reported
and retried at the restart pace; never a service left down while wanted up (SPEC §7 restart policy)."""

from __future__ import annotations

import os
import resource
import signal
import time

from .harness import BOOT_S, kill_pid, sh, wait_for

NOW = "date +%s.%N"  # wall-clock seconds with a fraction, written by the scripts


def gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in zip(times, times[1:])]


def test_restart_one_second_after_finish_cannot_start(ct):
    """`run` exits at once and `finish` is not executable: the next start comes 1 s after the last
    one (the restart throttle), not after timeout-finish (5 s): the failed finish's event is handled
    after the deadline of the finish it replaces."""
    ct.service("flappy", f"{NOW} >> {ct.out}/starts; exit 1")
    ct.write("services/flappy/finish", sh("exit 0"), 0o644)
    ct.start()
    starts = [float(x) for x in ct.wait_lines("starts", 3, timeout=8)]
    assert all(0.9 <= g < 2.0 for g in gaps(starts[:3])), gaps(starts)
    assert "finish: Permission denied" in ct.stderr, ct.diag()
    assert ct.stop() == 0, ct.diag()


# root without CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH: file modes apply to ignity, so a knob file
# of mode 000 is a real EACCES (Docker's `--cap-drop DAC_OVERRIDE`)
NO_DAC = 'exec setpriv --bounding-set -dac_override,-dac_read_search "$@"'

# a service that says whether it got fd 3 and which stop signal it received
PROBE = """
    echo $$ >> {out}/{name}-pids
    if [ -e /proc/$$/fd/3 ]; then echo yes >> {out}/{name}-fd3; else echo no >> {out}/{name}-fd3; fi
    trap 'echo INT >> {out}/{name}-sigs; exit 0' INT
    trap 'echo TERM >> {out}/{name}-sigs; exit 0' TERM
    trap 'echo USR1 >> {out}/{name}-sigs; exit 0' USR1
    while :; do sleep 0.05; done
"""


def probe(ct, name: str) -> str:
    return PROBE.format(out=ct.out, name=name)


def test_unreadable_knob_keeps_the_last_good_value(ct):
    """Knob files that become unreadable (EACCES) are not read as absent: the restart keeps the
    notification fd last read, the stop keeps the down signal last read; both reported."""
    ct.service("keeper", probe(ct, "keeper"), notification_fd=3, down_signal="SIGINT")
    ct.start(wrapper=NO_DAC)
    first = int(ct.wait_lines("keeper-pids", 1)[0])
    for knob in ("notification-fd", "down-signal"):
        (ct.state_dir("keeper") / knob).chmod(0)
    proc = ct.proc_by_nspid(first)
    assert proc is not None, ct.diag()
    kill_pid(proc.pid, signal.SIGKILL)
    ct.wait_lines("keeper-pids", 2)
    assert ct.wait_lines("keeper-fd3", 2) == ["yes", "yes"], ct.diag()
    assert ct.ctl("svc", "-d", "keeper").returncode == 0, ct.diag()
    assert ct.wait_lines("keeper-sigs", 1) == ["INT"], ct.diag()
    live = ct.state_dir("keeper")
    assert f"unable to read {live}/down-signal: Permission denied" in ct.stderr, ct.diag()
    assert "keeping the values last read" in ct.stderr and "stopping it with SIGINT" in ct.stderr, ct.diag()
    assert ct.stop() == 0, ct.diag()


def test_unreadable_knob_with_no_value_read_is_a_failed_start(ct):
    """A service whose knob file could never be read is not started on defaults it did not ask
    for: a failed start, reported and retried each second, started once the file is readable."""
    ct.start(wrapper=NO_DAC)
    ct.wait_socket()
    live = ct.state_dir("late")
    live.mkdir()
    (live / "run").write_text(sh(probe(ct, "late")))
    (live / "run").chmod(0o755)
    (live / "notification-fd").write_text("3\n")
    (live / "notification-fd").chmod(0)
    assert ct.ctl("rescan").returncode == 0, ct.diag()
    wait_for(lambda: ct.status("late")["late"]["state"] == "failed", BOOT_S, "a failed start", diag=ct.diag)
    assert f"unable to read {live}/notification-fd: Permission denied: not started on defaults" in ct.stderr
    assert not (ct.out / "late-pids").exists(), ct.diag()
    (live / "notification-fd").chmod(0o644)
    ct.wait_lines("late-pids", 1, timeout=3)
    assert ct.wait_lines("late-fd3", 1) == ["yes"], ct.diag()  # written just after the pid
    assert ct.stop() == 0, ct.diag()


def test_down_signal_read_again_at_stop(ct):
    """docs/services.md: down-signal and timeout-kill are read at each stop (as s6 does): an edit
    of the live copy after the start is what `svc -d` sends."""
    ct.service("edited", probe(ct, "edited"))
    ct.start()
    ct.wait_lines("edited-pids", 1)
    (ct.state_dir("edited") / "down-signal").write_text("SIGUSR1\n")
    assert ct.ctl("svc", "-d", "edited").returncode == 0, ct.diag()
    assert ct.wait_lines("edited-sigs", 1) == ["USR1"], ct.diag()
    assert ct.stop() == 0, ct.diag()


def lowest_free_fd(pid: int) -> int:
    used = {int(fd) for fd in os.listdir(f"/proc/{pid}/fd")}
    return min(set(range(len(used) + 1)) - used)


def settled_lowest_free_fd(pid: int) -> int:
    """The lowest free fd of an idle ignity: asleep in the loop's wait, with the same fd table
    over several readings. Read while it still works (a service's pid file can be written
    before ignity closes its side of the notification pipe), the limit would leave room for
    the very pipe2 this test wants to fail."""
    def reading() -> tuple:
        with open(f"/proc/{pid}/wchan") as f:
            wchan = f.read()
        return wchan, sorted(os.listdir(f"/proc/{pid}/fd"))

    readings: list[tuple] = []

    def steady() -> bool:
        readings.append(reading())
        last = readings[-3:]
        return len(last) == 3 and "epoll" in last[0][0] and all(r == last[0] for r in last)

    wait_for(steady, BOOT_S, "ignity idle in its loop", interval=0.1)
    return lowest_free_fd(pid)


def test_no_fd_for_the_notification_pipe_is_a_failed_start(ct):
    """A start that cannot get its fds (pipe2 fails with EMFILE: ignity's RLIMIT_NOFILE lowered
    from outside to what it holds) is a failed start: reported, retried each second, and the
    service starts once fds are available again; never an internal error leaving it down."""
    ct.service("needy", f"echo $$ >> {ct.out}/needy-pids; exec sleep 1000", notification_fd=3)
    ct.start()
    first = int(ct.wait_lines("needy-pids", 1)[0])
    soft, hard = resource.prlimit(ct.pid1, resource.RLIMIT_NOFILE)
    # every fd ignity may open now fails; the ready fd it closes when `run` exits leaves one free,
    # and pipe2 needs two
    resource.prlimit(ct.pid1, resource.RLIMIT_NOFILE, (settled_lowest_free_fd(ct.pid1), hard))
    proc = ct.proc_by_nspid(first)
    assert proc is not None, ct.diag()
    kill_pid(proc.pid, signal.SIGKILL)
    wait_for(lambda: "service needy: unable to start: Too many open files (retrying in 1 s)" in ct.stderr,
             BOOT_S, "the failed start reported", diag=ct.diag)
    time.sleep(1.5)  # at least one retry, failing too
    assert ct.lines("needy-pids") == [str(first)], ct.diag()
    resource.prlimit(ct.pid1, resource.RLIMIT_NOFILE, (soft, hard))
    ct.wait_lines("needy-pids", 2, timeout=3)
    assert "internal error" not in ct.stderr, ct.diag()
    assert ct.status("needy")["needy"]["state"] == "up", ct.diag()
    assert ct.stop() == 0, ct.diag()


# ---- messages that name the user's file and the fix ---------------------------------------------
def test_start_errors_name_the_users_file(ct):
    """A `run` without the exec bit, or with a missing #! interpreter, is named as the user's file
    under services/ (not the live copy), with the fix."""
    ct.service("noexec", "exec sleep 1000", run_mode=0o644)
    ct.service("badinterp", "#!/nonexistent/interpreter\n")
    ct.start()
    run = ct.conf / "services" / "noexec" / "run"
    wait_for(lambda: f"service noexec: unable to exec {run}: Permission denied: it is not executable "
                     f"(chmod +x {run}) (retrying in 1 s)" in ct.stderr, BOOT_S, "the noexec message", diag=ct.diag)
    run = ct.conf / "services" / "badinterp" / "run"
    wait_for(lambda: f"service badinterp: unable to exec {run}: its interpreter /nonexistent/interpreter (from "
                     "its #! line) does not exist" in ct.stderr, BOOT_S, "the interpreter message", diag=ct.diag)
    assert "services-state" not in ct.stderr, ct.diag()
    assert ct.stop() == 0, ct.diag()


def test_crash_loop_says_how_many_restarts(ct):
    ct.service("flappy", f"echo x >> {ct.out}/starts; exit 3")
    ct.start()
    ct.wait_lines("starts", 3, timeout=5)
    wait_for(lambda: "service flappy: exited 3 (restarted 2 times so far)" in ct.stderr, 3, "the count",
             diag=ct.diag)
    assert ct.stop() == 0, ct.diag()


def test_sigkill_after_grace_suggests_the_settings(ct):
    """A service still up after its down signal and grace time is SIGKILLed, and the message says
    where to name another down signal or give it longer: timeout-kill for `svc -d`,
    IGNITY_SERVICES_GRACETIME at shutdown."""
    deaf = "trap '' TERM; echo $$ >> {out}/{name}; while :; do sleep 0.05; done"
    ct.service("deaf", deaf.format(out=ct.out, name="deaf"), timeout_kill=300)
    ct.service("deafer", deaf.format(out=ct.out, name="deafer"))
    ct.start(env={"IGNITY_SERVICES_GRACETIME": "400"})
    ct.wait_lines("deaf", 1)
    ct.wait_lines("deafer", 1)
    assert ct.ctl("svc", "-d", "deaf").returncode == 0, ct.diag()
    conf = ct.conf / "services"
    wait_for(lambda: f"service deaf: still up after SIGTERM and its grace time, sending SIGKILL (if it stops on "
                     f"another signal, name it in {conf}/deaf/down-signal; to give it longer, raise "
                     f"{conf}/deaf/timeout-kill (300 ms))" in ct.stderr, BOOT_S, "the svc -d message", diag=ct.diag)
    assert ct.stop() == 0, ct.diag()
    assert (f"service deafer: still up after SIGTERM and its grace time, sending SIGKILL (if it stops on "
            f"another signal, name it in {conf}/deafer/down-signal; to give it longer, raise "
            "IGNITY_SERVICES_GRACETIME (400 ms))") in ct.stderr, ct.diag()
