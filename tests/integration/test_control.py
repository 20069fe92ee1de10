"""SPEC §8 (the `ignity` control commands and their exit codes), §11.11 (status --json), §11.12."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import time

import pytest

from .harness import BOOT_S, NSENTER, PY, STD_PATH, VENV_BIN, py, wait_for

NOBODY = 65534

# a service that appends the name of every signal it gets to out/NAME.signals (STOP and KILL
# cannot be caught: they are checked in /proc and through the restart)
RECORDER = """
    import os, signal, sys, time
    name = sys.argv[1]
    def handler(sig, frame):
        with open(f"{out}/{{name}}.signals", "a") as f:
            f.write(signal.Signals(sig).name + "\\n")
    for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGUSR1,
              signal.SIGUSR2, signal.SIGCONT):
        signal.signal(s, handler)
    with open(f"{out}/{{name}}.pids", "a") as f:
        f.write(f"{{os.getpid()}}\\n")
    while True:
        time.sleep(0.05)
"""


def test_status_json_shape(ct):
    """§11.11: `ignity status --json` prints {"services": [...]} with name, state, pid (null when
    down), ready, restarts, uptime_s, last_exit_code, last_signal for each service; NAME... selects."""
    ct.service("up", "exec sleep 1000")
    ct.service("down", "exec sleep 1000", down=True)
    ct.start()
    ct.wait_up("up", ready=True)  # ready once up for ready-after (1 s)
    r = ct.ctl("status", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert set(doc) == {"services", "dependencies", "ignity"}  # ignity: its own pid, phase and resources
    assert doc["dependencies"] == {"up": [], "down": []}  # the graph: name -> names it depends on
    by_name = {s["name"]: s for s in doc["services"]}
    assert set(by_name) == {"up", "down"}
    keys = {"name", "state", "pid", "ready", "restarts", "uptime_s", "last_exit_code", "last_signal"}
    for s in doc["services"]:
        assert keys <= set(s), s
        assert s["state"] in ("up", "down", "finishing", "failed"), s
    up, down = by_name["up"], by_name["down"]
    assert up["state"] == "up" and isinstance(up["pid"], int) and up["ready"] is True, up
    assert isinstance(up["uptime_s"], (int, float)) and up["restarts"] == 0, up
    assert down["state"] == "down" and down["pid"] is None, down
    selected = json.loads(ct.ctl("status", "--json", "down").stdout)["services"]
    assert [s["name"] for s in selected] == ["down"]
    human = ct.ctl("status")
    assert human.returncode == 0 and "up" in human.stdout and "down" in human.stdout
    assert ct.stop() == 0, ct.diag()


def test_status_reports_last_exit(ct):
    """§8 status "last exit", §11.11: last_exit_code after an exit, last_signal after a kill."""
    ct.service("exits", f"echo x >> {ct.out}/exits; [ -e {ct.out}/exits2 ] && exec sleep 1000; "
                        f"touch {ct.out}/exits2; exit 6")
    ct.service("killed", f"echo $$ >> {ct.out}/killed; exec sleep 1000")
    ct.start()
    ct.wait_lines("exits", 2)
    ct.wait_lines("killed", 1)
    ct.wait_up("killed")
    assert ct.ctl("svc", "-k", "killed").returncode == 0
    ct.wait_lines("killed", 2)
    status = ct.status()
    assert status["exits"]["last_exit_code"] == 6 and status["exits"]["restarts"] >= 1, status["exits"]
    assert status["killed"]["last_signal"] == signal.SIGKILL, status["killed"]
    assert ct.stop() == 0, ct.diag()


def test_svc_signal_flags(ct):
    """§8 `ignity svc -t/-h/-i/-q/-1/-2/-c`: send TERM, HUP, INT, QUIT, USR1, USR2, CONT to the service;
    -p sends STOP (state T), -k sends KILL (the service is restarted)."""
    ct.service("rec", py(RECORDER.format(out=ct.out)))
    ct.start(env={"IGNITY_SERVICES_GRACETIME": "300"})  # it survives SIGTERM: no long wait at the end
    ct.wait_up("rec")
    first = int(ct.wait_lines("rec.pids", 1)[0])
    expected = []
    for flag, name in (("-h", "SIGHUP"), ("-i", "SIGINT"), ("-q", "SIGQUIT"), ("-1", "SIGUSR1"),
                       ("-2", "SIGUSR2"), ("-c", "SIGCONT"), ("-t", "SIGTERM")):
        r = ct.ctl("svc", flag, "rec")
        assert r.returncode == 0, (flag, r.stderr)
        expected.append(name)
        ct.wait_lines("rec.signals", len(expected))
    assert ct.lines("rec.signals") == expected
    assert ct.ctl("svc", "-p", "rec").returncode == 0
    wait_for(lambda: (p := ct.proc_by_nspid(first)) is not None and p.state == "T", BOOT_S, "state T")
    assert ct.ctl("svc", "-c", "rec").returncode == 0
    wait_for(lambda: (p := ct.proc_by_nspid(first)) is not None and p.state != "T", BOOT_S, "running again")
    assert ct.ctl("svc", "-k", "rec").returncode == 0
    second = int(ct.wait_lines("rec.pids", 2)[1])
    assert second != first
    assert ct.stop() == 0, ct.diag()


def test_svc_up_down_restart_once(ct):
    """§8 `ignity svc -d/-u/-r/-o`: down (stays down), up, restart (a new pid), once (runs, and is not
    restarted after it exits)."""
    ct.service("svc", f"""
        echo $$ >> {ct.out}/pids
        until [ -e {ct.out}/quit ]; do sleep 0.02; done
        rm -f {ct.out}/quit
        exit 0
    """)
    ct.start()
    ct.wait_up("svc")
    ct.wait_lines("pids", 1)
    assert ct.ctl("svc", "-d", "svc").returncode == 0
    assert ct.ctl("wait", "-D", "-t", "5000", "svc").returncode == 0
    assert ct.status("svc")["svc"]["pid"] is None
    assert ct.ctl("svc", "-u", "svc").returncode == 0
    ct.wait_lines("pids", 2)
    assert ct.ctl("svc", "-r", "svc").returncode == 0
    pids = ct.wait_lines("pids", 3, timeout=5)
    assert len(set(pids)) == 3
    ct.wait_up("svc")
    assert ct.ctl("svc", "-o", "svc").returncode == 0       # up now, not restarted once it exits
    (ct.out / "quit").write_text("")
    assert ct.ctl("wait", "-D", "-t", "5000", "svc").returncode == 0
    time.sleep(1.3)  # longer than the restart throttle: a restart would have happened by now
    assert len(ct.lines("pids")) == 3
    assert ct.status("svc")["svc"]["state"] == "down"
    assert ct.stop() == 0, ct.diag()


def test_wait_modes_and_any(ct):
    """§8 `ignity wait`: -u up, -d down, -D down with finish done, --any: the first of the names;
    99 on timeout."""
    ct.service("a", "exec sleep 1000")
    ct.service("b", "exec sleep 1000", down=True,
               finish=f"sleep 0.4; echo done >> {ct.out}/b-finish")
    ct.start()
    ct.wait_up("a")
    assert ct.ctl("wait", "-u", "-t", "300", "a", "b").returncode == 99
    assert ct.ctl("wait", "-u", "--any", "-t", "3000", "a", "b").returncode == 0
    assert ct.ctl("wait", "-d", "-t", "3000", "b").returncode == 0
    assert ct.ctl("svc", "-u", "b").returncode == 0
    ct.wait_up("b")
    assert ct.ctl("svc", "-d", "b").returncode == 0
    r = ct.ctl("wait", "-D", "-t", "5000", "b")
    assert r.returncode == 0, r.stderr
    assert ct.read("b-finish") == "done\n"  # -D returned only once finish had ended
    assert ct.stop() == 0, ct.diag()


def test_wait_blocks_until_the_event(ct):
    """§8 `ignity wait -u` blocks until the service comes up (here started 0.5 s later by svc -u)."""
    ct.service("late", "exec sleep 1000", down=True)
    ct.start()
    ct.wait_socket()
    waiter = subprocess.Popen([NSENTER, "-t", str(ct.pid1), "-p", "-m", "--", PY, "-m", "ignity",
                               "wait", "-u", "-t", "10000", "late"],
                              env={"PATH": f"{VENV_BIN}:{STD_PATH}", "IGNITY_RUN_DIR": str(ct.run_dir)},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(0.5)
        assert waiter.poll() is None, "ignity wait -u returned before the service was up"
        assert ct.ctl("svc", "-u", "late").returncode == 0
        assert waiter.wait(10) == 0
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait()
    assert ct.stop() == 0, ct.diag()


def test_unknown_service_is_100(ct):
    """§8: exit 100 for no such service, for svc, status and wait."""
    ct.service("real", "exec sleep 1000")
    ct.start()
    ct.wait_up("real")
    for args in (("svc", "-u", "ghost"), ("status", "ghost"), ("wait", "-u", "-t", "100", "ghost"),
                 ("svc", "-d", "real", "ghost")):
        r = ct.ctl(*args)
        assert r.returncode == 100, (args, r.returncode, r.stderr)
        assert "ghost" in r.stderr and "Traceback" not in r.stderr
    assert ct.status("real")["real"]["state"] == "up"
    assert ct.stop() == 0, ct.diag()


def test_usage_errors_are_2(ct):
    """§8: exit 2 for usage errors, before talking to ignity (none runs here)."""
    env = {"PATH": f"{VENV_BIN}:{STD_PATH}", "IGNITY_RUN_DIR": str(ct.run_dir)}
    for args in (["svc", "name"], ["svc", "-u"], ["svc", "-u", "-d", "name"], ["wait", "name"],
                 ["wait", "-u", "-t", "abc", "name"], ["halt", "--exit-code", "x"], ["frobnicate"]):
        r = subprocess.run([PY, "-m", "ignity", *args], env=env, capture_output=True, text=True, timeout=20)
        assert r.returncode == 2, (args, r.returncode, r.stderr)
        assert "Traceback" not in r.stderr


def test_not_running_is_111_naming_the_socket(ct):
    """§8: exit 111 when ignity is not running, with the socket path it tried."""
    env = {"PATH": f"{VENV_BIN}:{STD_PATH}", "IGNITY_RUN_DIR": str(ct.run_dir)}
    for args in (["status"], ["svc", "-u", "x"], ["halt"], ["rescan"], ["wait", "-u", "x"]):
        r = subprocess.run([PY, "-m", "ignity", *args], env=env, capture_output=True, text=True, timeout=20)
        assert r.returncode == 111, (args, r.returncode, r.stderr)
        assert str(ct.socket) in r.stderr


def test_rescan_starts_added_and_stops_removed(ct):
    """§8 `ignity rescan`: starts services added to services-state/, stops removed ones."""
    ct.service("old", f"trap 'echo stopped > {ct.out}/old; exit 0' TERM; while :; do sleep 0.05; done")
    ct.start()
    ct.wait_up("old")
    new = ct.state_dir("new")
    new.mkdir()
    (new / "run").write_text(f"#!/bin/sh\necho started > {ct.out}/new\nexec sleep 1000\n")
    (new / "run").chmod(0o755)
    shutil.rmtree(ct.state_dir("old"))
    r = ct.ctl("rescan")
    assert r.returncode == 0, r.stderr
    assert ct.wait_file("new") == "started\n"
    assert ct.wait_file("old") == "stopped\n"
    ct.wait_up("new")
    assert "new" in ct.status()
    assert ct.stop() == 0, ct.diag()


def test_halt_with_exit_code_from_a_service(ct):
    """§8 `ignity halt --exit-code N` from inside (a service runs it): the container exits N."""
    ct.service("halter", f"until [ -e {ct.out}/go ]; do sleep 0.02; done; ignity halt --exit-code 12; "
                         "exec sleep 1000")
    ct.start()
    ct.wait_up("halter")
    (ct.out / "go").write_text("")
    assert ct.wait() == 12, ct.diag()


def test_socket_mode_0600(ct):
    """§8: the control socket is mode 0600, owned by ignity's user."""
    ct.start()
    ct.wait_socket()
    st = os.stat(ct.socket)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_uid == 0
    assert ct.stop() == 0, ct.diag()


def test_non_owner_is_refused(ct):
    """§8, §11.12: a client that is not ignity's user (uid 65534 here) gets permission denied: exit 1,
    "permission denied" in its message; ignity is undisturbed."""
    ct.service("svc", "exec sleep 1000")
    ct.start()
    ct.wait_up("svc")
    probe = ct.exec(PY, "-c", "import ignity", user=NOBODY)
    if probe.returncode != 0:
        pytest.skip(f"uid {NOBODY} cannot run {PY} with ignity (install it where all can read): {probe.stderr}")
    for args in (("status",), ("svc", "-d", "svc"), ("halt",)):
        r = ct.ctl(*args, user=NOBODY)
        assert r.returncode == 1, (args, r.returncode, r.stderr)
        assert "permission denied" in r.stderr.lower(), r.stderr
    assert ct.status("svc")["svc"]["state"] == "up"
    assert ct.stop() == 0, ct.diag()


def test_commands_during_boot(ct):
    """Issue 10.5 (docs/control.md): while an init script runs, `status` says the container is
    booting and which script runs, exit 3 (JSON: "booting"); `svc` is refused with 3; `wait`
    waits for the services to exist within its timeout instead of exiting 100 at once."""
    ct.init("10-slow", f"touch {ct.out}/started; until [ -e {ct.out}/go ]; do sleep 0.02; done")
    ct.service("web", "exec sleep 1000")
    ct.start()
    ct.wait_file("started")
    wait_for(lambda: ct.socket.exists(), BOOT_S, "the control socket")
    r = ct.ctl("status")
    assert r.returncode == 3, (r.returncode, r.stdout, r.stderr)
    assert "booting" in r.stdout and "10-slow" in r.stdout, r.stdout
    doc = json.loads(ct.ctl("status", "--json").stdout)
    assert doc["services"] == [] and doc["booting"] == "10-slow", doc
    assert doc["ignity"]["pid"] == 1 and doc["ignity"]["phase"] == "booting", doc  # and its own resources
    r = ct.ctl("svc", "-d", "web")
    assert r.returncode == 3 and "booting" in r.stderr, (r.returncode, r.stderr)
    # a short wait times out naming the service and the boot, it is not "no such service"
    r = ct.ctl("wait", "-u", "-t", "200", "web")
    assert r.returncode == 99 and "web" in r.stderr and "booting" in r.stderr, (r.returncode, r.stderr)
    waiter = subprocess.Popen([NSENTER, "-t", str(ct.pid1), "-p", "-m", "--", PY, "-m", "ignity",
                               "wait", "-u", "-t", "10000", "web"],
                              env={"PATH": f"{VENV_BIN}:{STD_PATH}", "IGNITY_RUN_DIR": str(ct.run_dir)},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ghost = subprocess.Popen([NSENTER, "-t", str(ct.pid1), "-p", "-m", "--", PY, "-m", "ignity",
                              "wait", "-u", "-t", "10000", "ghost"],
                             env={"PATH": f"{VENV_BIN}:{STD_PATH}", "IGNITY_RUN_DIR": str(ct.run_dir)},
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)
        assert waiter.poll() is None and ghost.poll() is None, "wait returned during boot"
        (ct.out / "go").touch()
        assert waiter.wait(10) == 0, waiter.stderr.read()
        assert ghost.wait(10) == 100, ghost.stderr.read()
    finally:
        for p in (waiter, ghost):
            if p.poll() is None:
                p.kill()
                p.wait()
    assert ct.ctl("status").returncode == 0
    assert ct.stop() == 0, ct.diag()


def test_wait_timeout_names_only_the_late_services(ct):
    """Issue 10.6: `ignity wait` on timeout names the services that are late, not every name."""
    ct.service("early", "exec sleep 1000")
    ct.service("late", "exec sleep 1000", down=True)
    ct.start()
    ct.wait_up("early")
    r = ct.ctl("wait", "-u", "-t", "200", "early", "late")
    assert r.returncode == 99, r.stderr
    assert "late" in r.stderr and "early" not in r.stderr, r.stderr
    assert ct.stop() == 0, ct.diag()


def test_rescan_in_a_container_that_started_without_services(ct):
    """docs/design.md "Start-up": without services ignity loads no service machinery, yet
    services-state/ exists, status answers, and a `rescan` starts what was added there."""
    ct.start()
    ct.wait_socket()
    assert ct.status() == {}
    assert ct.ctl("wait", "-u", "-t", "100", "late").returncode == 100
    new = ct.state_dir("late")
    new.mkdir()
    (new / "run").write_text(f"#!/bin/sh\necho started > {ct.out}/late\nexec sleep 1000\n")
    (new / "run").chmod(0o755)
    r = ct.ctl("rescan")
    assert r.returncode == 0, r.stderr
    assert ct.wait_file("late") == "started\n"
    ct.wait_up("late")
    assert ct.stop() == 0, ct.diag()
