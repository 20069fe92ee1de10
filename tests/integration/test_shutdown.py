"""SPEC §3 stage 3: shutdown in bounded time, and as fast as the processes allow."""

from __future__ import annotations

import signal
import time

from .harness import BOOT_S, wait_for

LOOP = "while :; do sleep 0.05; done"


def test_docker_stop_with_cmd_honouring_term_is_fast(ct):
    """§3 stage 3.4 "a container whose processes all honour SIGTERM stops in well under a second":
    `docker stop` (SIGTERM) with a CMD and two services that die of it → exit 143 (§5 row 2) in
    under 1 s (bound: 2 s)."""
    ct.service("a", "exec sleep 1000")
    ct.service("b", "exec sleep 1000", log="exec cat > /dev/null")
    ct.start("/bin/sh", "-c", "sleep 1000 & wait")
    ct.wait_up("a", "b")
    ct.wait_handler(signal.SIGTERM)
    t0 = time.monotonic()
    ct.send_signal(signal.SIGTERM)
    rc = ct.wait()
    elapsed = time.monotonic() - t0
    assert rc == 143, ct.diag()
    assert elapsed < 2.0, f"docker stop took {elapsed:.2f} s"


def test_cmd_exit_shutdown_is_fast(ct):
    """§3 stage 3.4: a CMD exiting with services that honour SIGTERM → exit in well under a second."""
    ct.service("a", "exec sleep 1000")
    ct.start("/bin/sh", "-c", "ignity wait -u -t 5000 a >/dev/null; touch " + str(ct.out / "up") +
             f"; until [ -e {ct.out}/go ]; do sleep 0.01; done; exit 0")
    ct.wait_file("up")
    t0 = time.monotonic()
    (ct.out / "go").write_text("")
    assert ct.wait() == 0, ct.diag()
    assert time.monotonic() - t0 < 2.0


def test_stray_setsid_process_ignoring_term_killed_after_kill_gracetime(ct):
    """§3 stage 3.4: a process outside every service and the CMD (its own session, via setsid) that
    ignores SIGTERM gets SIGKILL after IGNITY_KILL_GRACETIME ms: the container exits after about that
    long, not before and not much after."""
    ct.init("10-stray", f"""
        setsid sh -c 'trap "" TERM; echo $$ > {ct.out}/stray; while :; do sleep 0.05; done' \\
            </dev/null >/dev/null 2>&1 &
        until [ -s {ct.out}/stray ]; do sleep 0.01; done
    """)
    ct.start(env={"IGNITY_KILL_GRACETIME": "1000"})
    ct.wait_file("stray")
    ct.wait_socket()
    stray = ct.proc_by_nspid(int(ct.read("stray")))
    assert stray is not None and stray.sid != ct.pid1
    ct.wait_handler(signal.SIGTERM)
    t0 = time.monotonic()
    ct.send_signal(signal.SIGTERM)
    rc = ct.wait(timeout=10)
    elapsed = time.monotonic() - t0
    assert rc == 0, ct.diag()
    assert 0.9 <= elapsed < 1.0 + 2.0, f"exited after {elapsed:.2f} s, IGNITY_KILL_GRACETIME=1000"


def test_service_ignoring_term_killed_at_services_gracetime(ct):
    """§3 stage 3.3: a service that ignores SIGTERM gets SIGKILL on its group after
    IGNITY_SERVICES_GRACETIME; the container exits within grace + kill grace + 1 s."""
    ct.service("stubborn", f"trap '' TERM; touch {ct.out}/up; exec sleep 1000")
    ct.service("polite", "exec sleep 1000")
    ct.start(env={"IGNITY_SERVICES_GRACETIME": "1000", "IGNITY_KILL_GRACETIME": "1000"})
    ct.wait_file("up")
    ct.wait_up("stubborn", "polite")
    ct.wait_handler(signal.SIGTERM)
    t0 = time.monotonic()
    ct.send_signal(signal.SIGTERM)
    rc = ct.wait(timeout=10)
    elapsed = time.monotonic() - t0
    assert rc == 0, ct.diag()
    assert 0.9 <= elapsed < 1.0 + 1.0 + 1.0, f"exited after {elapsed:.2f} s"


def test_stopped_service_still_stops_at_shutdown(ct):
    """§3 stage 3.2: services get their down signal followed by SIGCONT, so a SIGSTOPped service still
    goes down at once (long before IGNITY_SERVICES_GRACETIME, set high here)."""
    ct.service("frozen", f"echo $$ > {ct.out}/pid; exec sleep 1000")
    ct.start(env={"IGNITY_SERVICES_GRACETIME": "8000", "IGNITY_KILL_GRACETIME": "8000"})
    ct.wait_up("frozen")
    nspid = int(ct.wait_file("pid"))
    assert ct.ctl("svc", "-p", "frozen").returncode == 0

    def stopped() -> bool:
        p = ct.proc_by_nspid(nspid)
        return p is not None and p.state == "T"

    wait_for(stopped, BOOT_S, "the service in state T", diag=ct.diag)
    ct.wait_handler(signal.SIGTERM)
    t0 = time.monotonic()
    ct.send_signal(signal.SIGTERM)
    assert ct.wait() == 0, ct.diag()
    assert time.monotonic() - t0 < 3.0


def test_services_and_finalize_scripts_go_down_together(ct):
    """§3 stage 3.2: services get their down signal and, at the same time, the finalize scripts run: a
    finalize script sees the service's TERM handled while it runs (the service waits for nothing)."""
    ct.service("svc", f"""
        trap 'echo down >> {ct.out}/events; exit 0' TERM
        touch {ct.out}/up
        {LOOP}
    """)
    ct.finalize("10", f"""
        echo finalize-start >> {ct.out}/events
        i=0
        until grep -q down {ct.out}/events || [ $i -ge 200 ]; do sleep 0.01; i=$((i+1)); done
        echo finalize-end >> {ct.out}/events
    """)
    ct.start()
    ct.wait_file("up")
    ct.wait_up("svc")
    assert ct.stop() == 0, ct.diag()
    events = ct.lines("events")
    assert sorted(events) == ["down", "finalize-end", "finalize-start"], events
    assert events[-1] == "finalize-end", events


def test_logger_gets_the_services_last_lines(ct):
    """§3 stage 3.3: a service's logger is stopped after its service, so the lines the service writes
    while going down are logged."""
    ct.service("talker", """
        trap 'echo "last words"; exit 0' TERM
        echo "first words"
        while :; do sleep 0.05; done
    """, log=f"exec cat >> {ct.out}/log")
    ct.start()
    ct.wait_file("log")
    wait_for(lambda: "first words" in ct.read("log"), BOOT_S, "the first line logged")
    assert ct.stop() == 0, ct.diag()
    assert ct.lines("log") == ["first words", "last words"]


def test_finish_runs_for_the_shutdown_exit(ct):
    """§11.5: `finish` also runs when `run` exits on its down signal at shutdown (256 15 NAME PGID)."""
    ct.service("svc", f"echo $$ > {ct.out}/pid; exec sleep 1000", finish=f'echo "$@" > {ct.out}/finish')
    ct.start()
    pid = ct.wait_file("pid").strip()
    ct.wait_up("svc")
    assert ct.stop() == 0, ct.diag()
    assert ct.read("finish").split() == ["256", "15", "svc", pid]


def test_sync_disks(ct):
    """§3 stage 3.5, §9: IGNITY_SYNC_DISKS=1 syncs before exit; the status is unchanged."""
    ct.start("/bin/sh", "-c", "exit 6", env={"IGNITY_SYNC_DISKS": "1"})
    assert ct.wait() == 6, ct.diag()


def test_nothing_left_when_the_cmd_exits(ct):
    """§3 stage 3.4-3.5: background processes the CMD left behind are terminated and reaped; the
    container exits with the CMD's status."""
    ct.start("/bin/sh", "-c", "sleep 1000 & (setsid sleep 1000 &) ; exit 9")
    assert ct.wait() == 9, ct.diag()
