"""SPEC §3 stage 2.2 (init scripts) and stage 3.2 (finalize scripts), §11.10."""

from __future__ import annotations

import signal
import time

LOOP = "while :; do sleep 0.05; done"


def test_init_scripts_run_one_at_a_time_in_lexical_order(ct):
    """§3 stage 2.2, §2: every executable in init/ runs one at a time in byte order of the names
    (`10-a` < `20-b` < `9-c`), dot-files skipped, all before services and the CMD. The first
    script is the slowest: had they run concurrently, it would be last."""
    ct.init("10-a", f"sleep 0.3; echo 10-a >> {ct.out}/order")
    ct.init("20-b", f"sleep 0.1; echo 20-b >> {ct.out}/order")
    ct.init("9-c", f"echo 9-c >> {ct.out}/order")
    ct.init(".hidden", f"echo hidden >> {ct.out}/order")
    ct.service("svc", f"echo svc >> {ct.out}/order; exec sleep 1000")
    ct.start("/bin/sh", "-c", f"until grep -q svc {ct.out}/order; do sleep 0.02; done; echo cmd >> {ct.out}/order")
    assert ct.wait() == 0, ct.diag()
    assert ct.lines("order") == ["10-a", "20-b", "9-c", "svc", "cmd"]


def test_failing_init_script_stops_the_boot(ct):
    """§3 stage 2.2, §5 row 4: an init script exiting 4 stops the boot: no later init script, no
    service and no CMD start; finalize still runs (stage 3); the container exits 4; the message
    names the script and its status."""
    ct.init("10-ok", f"echo 10-ok >> {ct.out}/order")
    ct.init("20-fail", f"echo 20-fail >> {ct.out}/order; exit 4")
    ct.init("30-later", f"echo 30-later >> {ct.out}/order")
    ct.service("svc", f"echo svc >> {ct.out}/order; exec sleep 1000")
    ct.finalize("10-fin", f"echo finalize >> {ct.out}/order")
    ct.start("/bin/sh", "-c", f"echo cmd >> {ct.out}/order")
    assert ct.wait() == 4, ct.diag()
    assert ct.lines("order") == ["10-ok", "20-fail", "finalize"]
    assert any("20-fail" in line and "4" in line for line in ct.stderr.splitlines()), ct.stderr


def test_init_script_gets_the_merged_environment(ct):
    """§4: init scripts run with the envdir laid over ignity's environment (IGNITY_RUN_DIR among
    it), so they can reach the envdir."""
    ct.envfile("10", "FROM_FILE=yes\n")
    ct.init("10", f'echo "$FROM_FILE $IGNITY_RUN_DIR" > {ct.out}/init')
    ct.start("true")
    assert ct.wait() == 0, ct.diag()
    assert ct.read("init") == f"yes {ct.run_dir}\n"


def test_shutdown_signal_during_init_script(ct):
    """§11.10: SIGTERM while an init script runs: the script gets the signal, nothing else starts,
    and the container exits as for a failed init script (here the script exits 3 on TERM)."""
    ct.init("10-slow", f"trap 'echo term > {ct.out}/term; exit 3' TERM; touch {ct.out}/started; {LOOP}")
    ct.init("20-later", f"echo later > {ct.out}/later")
    ct.service("svc", f"echo svc > {ct.out}/svc; exec sleep 1000")
    ct.start("/bin/sh", "-c", f"echo cmd > {ct.out}/cmd")
    ct.wait_file("started")
    assert ct.stop(signal.SIGTERM) == 3, ct.diag()
    assert ct.read("term") == "term\n"
    assert (ct.read("later"), ct.read("svc"), ct.read("cmd")) == ("", "", "")


def test_shutdown_signal_kills_init_script_not_trapping_it(ct):
    """§11.10, §5 row 4: an init script killed by the forwarded SIGINT → 128+2."""
    ct.init("10-slow", f"touch {ct.out}/started; exec sleep 1000")
    ct.start("/bin/sh", "-c", f"echo cmd > {ct.out}/cmd")
    ct.wait_file("started")
    assert ct.stop(signal.SIGINT) == 130, ct.diag()
    assert ct.read("cmd") == ""


def test_finalize_scripts_in_order_exit_codes_not_acted_on(ct):
    """§3 stage 3.2: finalize scripts run one at a time in lexical order at shutdown; their exit
    codes are reported, not acted on (the container keeps the CMD's status)."""
    ct.finalize("10-a", f"sleep 0.2; echo 10-a >> {ct.out}/order; exit 7")
    ct.finalize("20-b", f"echo 20-b >> {ct.out}/order")
    ct.finalize("3-c", f"echo 3-c >> {ct.out}/order; kill -KILL $$")
    ct.start("/bin/sh", "-c", "exit 2")
    assert ct.wait() == 2, ct.diag()
    assert ct.lines("order") == ["10-a", "20-b", "3-c"]
    assert "Traceback" not in ct.stderr


def test_finalize_timeout_kills_a_hanging_script_next_one_runs(ct):
    """§3 stage 3.2: a finalize script is killed after IGNITY_KILL_FINALIZE_MAXTIME ms and the next one
    still runs; the shutdown takes about that bound, not the script's hang."""
    ct.finalize("10-hang", f"echo hang >> {ct.out}/order; exec sleep 1000")
    ct.finalize("20-next", f"echo next >> {ct.out}/order")
    ct.start("/bin/sh", "-c", f"until [ -e {ct.out}/go ]; do sleep 0.02; done",
             env={"IGNITY_KILL_FINALIZE_MAXTIME": "600"})
    ct.wait_handler(signal.SIGTERM)
    t0 = time.monotonic()
    (ct.out / "go").write_text("")
    assert ct.wait() == 0, ct.diag()
    elapsed = time.monotonic() - t0
    assert ct.lines("order") == ["hang", "next"]
    assert 0.5 <= elapsed < 0.6 + 2.5, elapsed


def test_finalize_scripts_run_on_signal_shutdown_without_cmd(ct):
    """§3 stage 3.2: finalize scripts also run on a signal-triggered shutdown without a CMD."""
    ct.finalize("10", f"echo fin > {ct.out}/fin")
    ct.start()
    ct.wait_socket()
    assert ct.stop() == 0, ct.diag()
    assert ct.read("fin") == "fin\n"


def test_halt_during_init_script_is_a_shutdown(ct):
    """Issue 9.5 (docs/init.md): `ignity halt --exit-code 7` while an init script runs: the
    script's group gets SIGTERM at once, nothing later starts, the container exits 7 (not the
    script's 143) and the message says a halt was requested."""
    ct.init("10-slow", f"trap 'echo term > {ct.out}/term; exit 0' TERM; touch {ct.out}/started; {LOOP}")
    ct.init("20-later", f"echo later > {ct.out}/later")
    ct.service("svc", f"echo svc > {ct.out}/svc; exec sleep 1000")
    ct.start("/bin/sh", "-c", f"echo cmd > {ct.out}/cmd")
    ct.wait_file("started")
    began = time.monotonic()
    ct.ctl("halt", "--exit-code", "7")  # its own status is not asserted: the shutdown may kill it
    assert ct.wait() == 7, ct.diag()
    assert time.monotonic() - began < 5
    assert ct.read("term") == "term\n"
    assert (ct.read("later"), ct.read("svc"), ct.read("cmd")) == ("", "", "")
    assert "halt requested" in ct.stderr and "failed with status" not in ct.stderr, ct.stderr


def test_halt_during_init_script_that_ignores_term(ct):
    """Issue 9.5: a script that ignores SIGTERM and never ends: the halt still ends the boot (the
    script is killed in stage 3) and the status is the halt's default, 0."""
    ct.init("10-stuck", f"trap '' TERM; touch {ct.out}/started; {LOOP}")
    ct.start("/bin/sh", "-c", f"echo cmd > {ct.out}/cmd", env={"IGNITY_KILL_GRACETIME": "300"})
    ct.wait_file("started")
    ct.ctl("halt")
    assert ct.wait() == 0, ct.diag()
    assert ct.read("cmd") == ""


def test_halt_while_waiting_for_services_before_the_cmd(ct):
    """Issue 9.5: a halt during IGNITY_CMD_WAIT_FOR_SERVICES: the CMD never starts, the status is
    the halt's, and the message says why."""
    ct.service("never", "exec sleep 1000", notification_fd=3)
    ct.start("/bin/sh", "-c", f"echo cmd > {ct.out}/cmd",
             env={"IGNITY_CMD_WAIT_FOR_SERVICES": "1", "IGNITY_CMD_WAIT_FOR_SERVICES_MAXTIME": "20000"})
    ct.wait_up("never")
    ct.ctl("halt", "--exit-code", "5")
    assert ct.wait() == 5, ct.diag()
    assert ct.read("cmd") == ""
    assert "halt requested" in ct.stderr, ct.stderr
