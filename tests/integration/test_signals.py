"""SPEC §10 (signals to ignity) and §3 stage 2.5 (how the CMD is started)."""

from __future__ import annotations

import json
import signal

import pytest

from .harness import PY, py

LOOP = "while :; do sleep 0.05; done"

SHUTDOWN = [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGQUIT, 131)]
FORWARDED = [(signal.SIGHUP, 129), (signal.SIGUSR1, 138), (signal.SIGUSR2, 140)]


@pytest.mark.parametrize(("sig", "code"), SHUTDOWN)
def test_shutdown_signal_with_cmd_goes_to_cmd_first(ct, sig, code):
    """§10 row 1, §5 row 2: SIGTERM/SIGINT/SIGQUIT shut down; the CMD's group gets the same signal,
    and a CMD killed by it makes the container exit 128+N."""
    ct.start("sleep", "1000")
    assert ct.stop(sig) == code, ct.diag()


@pytest.mark.parametrize(("sig", "_code"), SHUTDOWN)
def test_shutdown_signal_without_cmd_exits_0(ct, sig, _code):
    """§10 row 1, §5 row 5: without a CMD, SIGTERM/SIGINT/SIGQUIT → shutdown, exit 0."""
    ct.start()
    ct.wait_socket()
    assert ct.stop(sig) == 0, ct.diag()


@pytest.mark.parametrize(("sig", "code"), FORWARDED)
def test_forwarded_signal_reaches_cmd(ct, sig, code):
    """§10 row 2: SIGHUP/SIGUSR1/SIGUSR2 are forwarded to the CMD's group; a `sleep` CMD dies of
    it, and the container exits 128+N (§5 row 2)."""
    ct.start("sleep", "1000")
    assert ct.stop(sig) == code, ct.diag()


def test_forwarded_signals_reach_the_whole_cmd_group_and_are_handled(ct):
    """§10 row 2: HUP, USR1, USR2 and WINCH reach the CMD's process group (here a child of the CMD)
    and do not shut the container down; the CMD handles them and exits with its own status."""
    child = ct.write("child.py", py(f"""
        import signal, sys, time
        seen = []
        def handler(sig, frame):
            seen.append(signal.Signals(sig).name)
            with open("{ct.out}/seen", "a") as f:
                f.write(signal.Signals(sig).name + "\\n")
        for s in (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH):
            signal.signal(s, handler)
        open("{ct.out}/child-ready", "w").write("1")
        while len(seen) < 4:
            time.sleep(0.01)
        sys.exit(42)
        """), mode=0o755)
    # the CMD is a shell (ignoring them) that waits for its child: the signals must reach the child
    # through the group
    ct.start("/bin/sh", "-c", f"trap '' HUP USR1 USR2 WINCH; {child}; exit $?")
    ct.wait_file("child-ready")
    for sig in (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH):
        before = len(ct.lines("seen"))
        ct.send_signal(sig)
        ct.wait_lines("seen", before + 1)
    assert ct.wait() == 42, ct.diag()
    assert ct.lines("seen") == ["SIGHUP", "SIGUSR1", "SIGUSR2", "SIGWINCH"]


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGUSR1])
def test_forwardable_signal_without_cmd_is_ignored(ct, sig):
    """§10 row 2: without a CMD, SIGHUP/SIGUSR1 are ignored: ignity keeps running and answering,
    then SIGTERM stops it with 0."""
    ct.service("svc", "exec sleep 1000")
    ct.start()
    ct.wait_up("svc")
    ct.send_signal(sig, require_handler=False)  # PID 1 drops it anyway if it has no handler
    r = ct.ctl("status", "svc")
    assert r.returncode == 0, r.stderr + ct.diag()
    assert ct.running
    assert ct.stop(signal.SIGTERM) == 0, ct.diag()
    assert "Traceback" not in ct.stderr


def test_cmd_trapping_term_sets_the_status(ct):
    """§10 row 1, §5 row 1: a CMD that traps TERM and exits 42 → 42."""
    ct.start("/bin/sh", "-c", f"trap 'exit 42' TERM; touch {ct.out}/ready; {LOOP}")
    ct.wait_file("ready")
    assert ct.stop(signal.SIGTERM) == 42, ct.diag()


def test_cmd_starts_with_clean_signal_state_in_its_own_group(ct):
    """§10 last paragraph: the CMD starts with an empty signal mask and no ignored signal (SIGPIPE
    included); §3 stage 2.5: in its own process group, not ignity's, in ignity's working directory."""
    # grep, run by the shell, shows what ignity gave (a Python CMD would show Python's own SIGPIPE and
    # SIGXFSZ ignores, and dash blocks every signal while it forks)
    ct.start("/bin/sh", "-c", f"grep -E '^Sig(Blk|Ign)' /proc/self/status > {ct.out}/sig; exec {PY} -c '"
             "import json, os; print(json.dumps({"
             '\"pid\": os.getpid(), \"pgrp\": os.getpgrp(), \"ppid\": os.getppid(), '
             '\"ppgrp\": os.getpgid(os.getppid()), \"cwd\": os.getcwd(), '
             '\"stdin\": os.readlink(\"/proc/self/fd/0\")}))'
             "'", cwd=ct.out)
    assert ct.wait() == 0, ct.diag()
    sig = dict(line.split(":") for line in ct.lines("sig"))
    assert int(sig["SigBlk"], 16) == 0, sig
    assert int(sig["SigIgn"], 16) == 0, sig
    info = json.loads(ct.stdout.strip().splitlines()[-1])
    assert info["pgrp"] == info["pid"], info
    assert info["ppid"] == 1, info
    assert info["ppgrp"] != info["pgrp"], info
    assert info["cwd"] == str(ct.out), info
    assert info["stdin"] == "/dev/null", info  # the container's stdin (the harness gives /dev/null)


def test_sigchld_never_shuts_down(ct):
    """§10 row 3: SIGCHLD (many children of PID 1 exiting) never causes a shutdown by itself."""
    ct.start()
    ct.wait_socket()
    ct.wait_handler(signal.SIGCHLD)
    for _ in range(3):
        ct.send_signal(signal.SIGCHLD)
    r = ct.ctl("status")
    assert r.returncode == 0 and ct.running, ct.diag()
    assert ct.stop() == 0
