"""SPEC §5: the container's exit status, one test per row of the table (the last row, an internal
error, cannot be provoked from outside without breaking ignity on purpose)."""

from __future__ import annotations

import signal

import pytest

from .harness import PY

LOOP = "while :; do sleep 0.05; done"  # a shell wait that still runs its traps promptly


@pytest.mark.parametrize("code", [0, 3, 255])
def test_cmd_exit_status_is_the_containers(ct, code):
    """§5 row 1: CMD exited with r → r."""
    ct.start("/bin/sh", "-c", f"exit {code}")
    assert ct.wait() == code, ct.diag()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGUSR2, signal.SIGSEGV])
def test_cmd_killed_by_signal_gives_128_plus_n(ct, sig):
    """§5 row 2: CMD killed by signal N → 128+N (never Python's negative status)."""
    ct.start(PY, "-c", f"import os; os.kill(os.getpid(), {int(sig)})")
    assert ct.wait() == 128 + sig, ct.diag()


def test_cmd_not_found_is_127_with_reason(ct):
    """§5 row 3: CMD not found → 127, with the reason on stderr."""
    ct.start("/nonexistent/ignity-no-such-cmd")
    assert ct.wait() == 127, ct.diag()
    assert "ignity-no-such-cmd" in ct.stderr
    assert "Traceback" not in ct.stderr


def test_cmd_not_on_path_is_127(ct):
    """§5 row 3: a bare CMD name that PATH does not have → 127."""
    ct.start("ignity-no-such-cmd")
    assert ct.wait() == 127, ct.diag()
    assert "ignity-no-such-cmd" in ct.stderr


def test_cmd_not_executable_is_126_with_reason(ct):
    """§5 row 3: CMD not executable → 126, with the reason on stderr."""
    cmd = ct.write("notexec.sh", "#!/bin/sh\nexit 0\n", mode=0o644)
    ct.start(str(cmd))
    assert ct.wait() == 126, ct.diag()
    assert "notexec.sh" in ct.stderr
    assert "Traceback" not in ct.stderr


def test_init_script_status_is_the_containers(ct):
    """§5 row 4: init script failed with status s → s."""
    ct.init("10-fail", "exit 4")
    ct.start("/bin/sh", "-c", f"echo ran > {ct.out}/cmd")
    assert ct.wait() == 4, ct.diag()
    assert ct.read("cmd") == ""


def test_init_script_killed_by_signal_gives_128_plus_n(ct):
    """§5 row 4: init script killed by signal N → 128+N."""
    ct.init("10-killed", "kill -KILL $$")
    ct.start("/bin/sh", "-c", f"echo ran > {ct.out}/cmd")
    assert ct.wait() == 137, ct.diag()
    assert ct.read("cmd") == ""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGQUIT])
def test_no_cmd_stopped_by_signal_is_0(ct, sig):
    """§5 row 5: no CMD, stopped by a signal → 0."""
    ct.start()
    ct.wait_socket()
    assert ct.stop(sig) == 0, ct.diag()


def test_no_cmd_halt_is_0(ct):
    """§5 row 5: no CMD, stopped by `ignity halt` → 0."""
    ct.start()
    ct.wait_socket()
    ct.ctl("halt")  # its own status is not asserted: the shutdown may kill it before it exits
    assert ct.wait() == 0, ct.diag()


def test_halt_exit_code_without_cmd(ct):
    """§5 row 6: `ignity halt --exit-code N` → N."""
    ct.start()
    ct.wait_socket()
    ct.ctl("halt", "--exit-code", "7")
    assert ct.wait() == 7, ct.diag()


def test_halt_on_exit_service_status(ct):
    """§5 row 6: a `halt-on-exit` service that ended with r → r."""
    ct.service("quitter", f"echo started > {ct.out}/started; exit 9", halt_on_exit=True)
    ct.start()
    assert ct.wait() == 9, ct.diag()
    assert ct.read("started")


def test_halt_on_exit_service_killed_by_signal(ct):
    """§5 row 6: a `halt-on-exit` service killed by signal N → 128+N."""
    ct.service("quitter", "kill -USR2 $$", halt_on_exit=True)
    ct.start()
    assert ct.wait() == 128 + signal.SIGUSR2, ct.diag()


def test_cmd_status_wins_over_halt_exit_code(ct):
    """§5 row 6 "unless a CMD status exists", §11.9: the CMD, which gets SIGTERM from the halt
    (§3 stage 3.1) and exits 5 on it, sets the status, not `--exit-code 7`."""
    ct.start("/bin/sh", "-c", f"trap 'exit 5' TERM; ignity halt --exit-code 7; {LOOP}")
    assert ct.wait() == 5, ct.diag()


def test_cmd_status_wins_over_halt_on_exit_service(ct):
    """§11.9: a halt-on-exit service exiting 9 stops the container, but the CMD's status (it exits 6
    on the SIGTERM of the shutdown) is the container's."""
    ct.service("quitter", f"while [ ! -e {ct.out}/go ]; do sleep 0.02; done; exit 9", halt_on_exit=True)
    ct.start("/bin/sh", "-c", f"trap 'exit 6' TERM; touch {ct.out}/go; {LOOP}")
    assert ct.wait() == 6, ct.diag()


def test_unusable_configuration_is_100(ct):
    """§5 row 7 (and §6): a malformed perms line is unusable configuration → 100, naming file and line."""
    ct.write("perms/10-bad", "# comment\n/tmp this-is not-a valid line at all\n")
    ct.start("/bin/sh", "-c", f"echo ran > {ct.out}/cmd")
    assert ct.wait() == 100, ct.diag()
    assert "10-bad" in ct.stderr and "2" in ct.stderr, ct.stderr
    assert ct.read("cmd") == ""


def test_verbosity_0_clean_run_prints_nothing_of_ignitys_own(ct):
    """§11.13, §9: with IGNITY_VERBOSITY=0 a clean run (init script, service, finalize script, CMD)
    prints nothing but what the CMD prints."""
    ct.init("10-ok", f"echo init >> {ct.out}/trace")
    ct.service("svc", f"echo svc >> {ct.out}/trace; exec sleep 1000")
    ct.finalize("10-ok", f"echo finalize >> {ct.out}/trace")
    ct.start("/bin/sh", "-c", f"until grep -q svc {ct.out}/trace 2>/dev/null; do sleep 0.02; done; "
             f"echo hello; echo cmd >> {ct.out}/trace",
             env={"IGNITY_VERBOSITY": "0"})
    assert ct.wait() == 0, ct.diag()
    assert ct.stdout == "hello\n"
    assert ct.stderr == ""
    assert ct.lines("trace") == ["init", "svc", "cmd", "finalize"]
