"""Health and metrics: `ignity health`, `ignity metrics`, `status --json` resources and `-l`, and
the optional HTTP listener (IGNITY_HTTP_ADDR: /metrics, /healthz, /readyz) under well-formed,
curl-style and malformed requests."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as strict
from prometheus_client.parser import text_string_to_metric_families

from .harness import syscalls_while_idle, wait_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(port: int, raw: bytes, timeout: float = 5.0) -> bytes:
    """Send raw bytes, read the whole reply until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(raw)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return data
            data += chunk


def get(port: int, path: str) -> tuple[int, bytes]:
    reply = http(port, f"GET {path} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: curl/8\r\nAccept: */*\r\n\r\n".encode())
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def samples(text: str) -> dict:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def serving(ct, port):
    def answers():
        try:
            return get(port, "/healthz")[0] == 200
        except OSError:
            return False
    wait_for(answers, 10, "the HTTP listener", interval=0.05, diag=ct.diag)


def test_status_json_resources_and_table(ct):
    ct.service("web", "exec sh -c 'sleep 1000 & sleep 1000 & wait'")
    ct.start()
    ct.wait_up("web", ready=True)
    wait_for(lambda: ct.status()["web"].get("resources", {}).get("processes") == 3, 10, "web's tree")
    r = ct.ctl("status", "--json")
    doc = json.loads(r.stdout)
    web = doc["services"][0]
    assert web["health"] == "ok"
    assert set(web["resources"]) == {"rss_bytes", "cpu_user_seconds", "cpu_system_seconds", "open_fds",
                                     "threads", "processes"}
    assert web["resources"]["rss_bytes"] > 0 and web["resources"]["threads"] == 3
    me = doc["ignity"]
    assert me["phase"] == "running" and me["resources"]["processes"] == 1
    assert me["resources"]["rss_bytes"] > 1_000_000
    table = ct.ctl("status", "-l").stdout.splitlines()
    assert table[0].split()[:3] == ["NAME", "STATE", "HEALTH"]
    assert table[1].split()[:3] == ["web", "up", "ok"]
    assert table[2].startswith("(ignity)")


def test_health_command(ct):
    ct.service("ok", "exec sleep 1000")
    ct.service("slow", "exec sleep 1000", notification_fd=3)
    ct.service("off", "exec sleep 1000", down=True)
    ct.start()
    ct.wait_up("ok", ready=True)
    ct.wait_up("slow")
    r = ct.ctl("health")
    assert r.returncode == 1
    assert r.stdout.startswith("slow: starting: not ready since"), r.stdout
    assert ct.ctl("health", "ok", "off").returncode == 0
    r = ct.ctl("health", "--json", "slow")
    doc = json.loads(r.stdout)
    assert r.returncode == 1 and doc["healthy"] is False
    assert doc["services"][0]["health"] == "starting"
    assert ct.ctl("health", "nope").returncode == 100


def test_metrics_command_parses(ct):
    ct.service("web", "exec sleep 1000")
    ct.service("off", "exec sleep 1000", down=True)
    ct.start()
    ct.wait_up("web")
    r = ct.ctl("metrics")
    assert r.returncode == 0, r.stderr
    got = samples(r.stdout)
    assert got[("ignity_service_up", (("service", "web"),))] == 1
    assert got[("ignity_service_up", (("service", "off"),))] == 0
    assert got[("ignity_service_healthy", (("service", "off"),))] == 1  # down on purpose
    assert got[("ignity_service_open_fds", (("service", "web"),))] >= 3
    assert got[("ignity_service_rss_bytes", ())] > 1_000_000
    assert ("ignity_service_cpu_seconds_total", (("mode", "user"), ("service", "web"))) in got


def test_http_endpoints(ct):
    port = free_port()
    ct.service("web", "exec sleep 1000")
    ct.service("slow", "until [ -e ready ]; do sleep 0.05; done; echo >&3; exec sleep 1000",
               notification_fd=3)
    ct.start(env={"IGNITY_HTTP_ADDR": f"127.0.0.1:{port}"})
    serving(ct, port)
    ct.wait_up("web", "slow")
    code, body = get(port, "/readyz")
    assert code == 503 and body.startswith(b"slow: starting"), body
    code, body = get(port, "/metrics?x=1")
    assert code == 200, ct.diag()
    assert samples(body.decode())[("ignity_service_ready", (("service", "slow"),))] == 0
    (ct.state_dir("slow") / "ready").write_text("")
    wait_for(lambda: get(port, "/readyz")[0] == 200, 10, "/readyz to turn 200", diag=ct.diag)
    reply = http(port, b"GET /metrics HTTP/1.1\r\nAccept: application/openmetrics-text;version=1.0.0,"
                       b"text/plain;version=0.0.4;q=0.5\r\n\r\n")
    head, _, body = reply.partition(b"\r\n\r\n")
    assert b"Content-Type: application/openmetrics-text; version=1.0.0" in head, head
    names = {s.name for family in strict(body.decode()) for s in family.samples}
    assert {"ignity_service_up", "ignity_service_restarts_total", "ignity_service_cpu_seconds_total"} <= names
    if shutil.which("curl"):
        r = subprocess.run(["curl", "-sf", f"http://127.0.0.1:{port}/metrics"], capture_output=True, text=True,
                           timeout=10)
        assert r.returncode == 0 and "ignity_service_up" in r.stdout


@pytest.mark.parametrize("raw, code", [
    (b"POST /metrics HTTP/1.1\r\n\r\n", 405),
    (b"GET /svc HTTP/1.1\r\n\r\n", 404),
    (b"GET /metrics\r\n\r\n", 400),
    (b"\xff\xfe garbage\r\n\r\n", 400),
    (b"GET /healthz HTTP/1.0\n\n", 200),
    (b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\n\r\n", 431),
])
def test_http_malformed(ct, raw, code):
    port = free_port()
    ct.service("web", "exec sleep 1000")
    ct.start(env={"IGNITY_HTTP_ADDR": f"127.0.0.1:{port}"})
    serving(ct, port)
    reply = http(port, raw)
    assert reply.startswith(f"HTTP/1.1 {code} ".encode()), reply[:100]
    assert get(port, "/healthz")[0] == 200  # still serving


def test_http_silent_and_many_clients(ct):
    """A client that sends nothing and more clients than allowed: dropped, ignity goes on."""
    port = free_port()
    ct.service("web", "exec sleep 1000")
    ct.start(env={"IGNITY_HTTP_ADDR": f"127.0.0.1:{port}"})
    serving(ct, port)
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(40)]
    try:
        time.sleep(0.2)
        assert ct.ctl("svc", "-r", "web").returncode == 0  # supervision unaffected
        ct.wait_up("web")
    finally:
        for s in idle:
            s.close()
    assert get(port, "/healthz")[0] == 200


def test_http_port_in_use(ct):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        ct.service("web", "exec sleep 1000")
        ct.start(env={"IGNITY_HTTP_ADDR": f"127.0.0.1:{port}"})
        ct.wait_up("web")
        lines = [line for line in ct.stderr.splitlines() if "IGNITY_HTTP_ADDR" in line]
        assert len(lines) == 1 and "Address already in use" in lines[0], ct.stderr
    assert ct.running


def test_http_non_loopback_refused(ct):
    ct.start("true", env={"IGNITY_HTTP_ADDR": "0.0.0.0:9000"})
    assert ct.wait() == 100
    assert "IGNITY_HTTP_ADDR_ALLOW_ANY=1" in ct.stderr


# ---- readiness, liveness, crash-loop policy (real PID 1) -------------------------------------------
def test_a_crash_loop_is_never_ready(ct):
    """The probe of docs/images.md answered "ready" for a `run` that is `exit 3`: with ready-after
    (default 1000 ms) it never is, for `wait -U`, the CMD wait and `ignity health`."""
    ct.service("crash", "exit 3")
    ct.start("sh", "-c", "ignity wait -U -t 1 crash; echo $? > $OUT/cmd-wait; exec sleep 1000",
             env={"OUT": str(ct.out), "IGNITY_CMD_WAIT_FOR_SERVICES": "1",
                  "IGNITY_CMD_WAIT_FOR_SERVICES_MAXTIME": "2500"})
    # the status once written (the file exists a moment before its line is in it)
    assert wait_for(lambda: ct.read("cmd-wait").strip(), 15, "the CMD's wait", diag=ct.diag) == "99"
    assert "crash" in ct.stderr and "not ready" in ct.stderr, ct.stderr
    for _ in range(3):
        assert ct.ctl("wait", "-U", "-t", "1000", "crash").returncode == 99
    r = ct.ctl("health")
    assert r.returncode == 1 and r.stdout.startswith("crash: unhealthy: restarting"), r.stdout


def test_ready_after_default(ct):
    ct.service("plain", "exec sleep 1000")
    ct.start()
    ct.wait_up("plain")
    t0 = time.monotonic()
    ct.wait_up("plain", ready=True)
    assert ct.status()["plain"]["ready"] is True
    assert time.monotonic() - t0 < 5
    assert ct.ctl("health").returncode == 0


def test_check_makes_ready_with_env_and_cwd(ct):
    ct.envfile("00", "GREETING=hi\n")
    check = f'echo "$GREETING $PWD $1" > {ct.out}/check-env; [ -e {ct.out}/go ] || {{ echo "not yet"; exit 1; }}'
    ct.service("web", "exec sleep 1000", check_interval=50)
    ct.script("services/web/check", check)
    ct.start()
    ct.wait_up("web")
    # written again at each try (truncated first): keep the first whole line seen
    words = wait_for(lambda: [w for w in [ct.read("check-env").split()] if len(w) == 3], 10, "the check's line",
                     diag=ct.diag)[0]
    assert words == ["hi", str(ct.state_dir("web")), "web"]
    assert ct.ctl("wait", "-U", "-t", "300", "web").returncode == 99
    r = ct.ctl("health", "web")
    assert r.returncode == 1 and "starting" in r.stdout and "(check: not yet)" in r.stdout, r.stdout
    (ct.out / "go").write_text("")
    ct.wait_up("web", ready=True, timeout_ms=5000)
    assert ct.ctl("health").returncode == 0


def test_check_not_executable(ct):
    ct.service("web", "exec sleep 1000")
    ct.write("services/web/check", "#!/bin/sh\nexit 1\n", mode=0o644)
    ct.start()
    ct.wait_up("web", ready=True, timeout_ms=5000)  # ready-after instead
    lines = [line for line in ct.stderr.splitlines() if "check" in line]
    assert len(lines) == 1 and "chmod +x" in lines[0], ct.stderr
    assert ct.running


def test_check_timeout_is_a_failed_start(ct):
    ct.service("web", f"echo start >> {ct.out}/starts; exec sleep 1000", check_interval=50, check_timeout=400)
    ct.script("services/web/check", "exit 1")
    ct.start()
    ct.wait_lines("starts", 2, timeout=10)
    assert "web: not ready after 400 ms" in ct.stderr, ct.stderr
    assert "restarting" in ct.stderr


def test_liveness_restarts_after_retries_and_says_recovery_once(ct):
    # 5 tries 300 ms apart: time enough to take the fault away after the first failure, under load
    ct.service("web", f"echo start >> {ct.out}/starts; exec sleep 1000", check_interval=50,
               health_interval=300, health_retries=5)
    ct.script("services/web/check", f'[ ! -e {ct.out}/sick ] || {{ echo "db down"; exit 1; }}')
    ct.start()
    ct.wait_up("web", ready=True, timeout_ms=5000)
    # one failure, then recovery: said once, no restart
    (ct.out / "sick").write_text("")
    wait_for(lambda: ct.status()["web"].get("health") == "unhealthy", 10, "a failed liveness try")
    (ct.out / "sick").unlink()
    wait_for(lambda: "check passes again" in ct.stderr, 10, "the recovery line", diag=ct.diag)
    assert len(ct.lines("starts")) == 1
    # five in a row: restarted, with one line saying why
    (ct.out / "sick").write_text("")
    ct.wait_lines("starts", 2, timeout=10)
    why = [line for line in ct.stderr.splitlines() if "in a row" in line]
    assert why and "check failed 5 times in a row (db down): restarting" in why[0], ct.stderr
    assert ct.stderr.count("check passes again") == 1


def test_crash_loop_gives_up_then_health_fails(ct):
    ct.service("crash", f"echo x >> {ct.out}/starts; exit 3", restart_limit=2, restart_window=60000)
    ct.service("ok", "exec sleep 1000", ready_after=0)
    ct.start()
    ct.wait_up("ok")
    wait_for(lambda: ct.status()["crash"]["state"] == "failed", 15, "crash to be given up", diag=ct.diag)
    assert len(ct.lines("starts")) == 3
    r = ct.ctl("health")
    assert r.returncode == 1 and r.stdout.startswith("crash: failed: failed 3 times in 60 s, given up"), r.stdout
    assert ct.ctl("health", "ok").returncode == 0
    got = samples(ct.ctl("metrics").stdout)
    assert got[("ignity_service_healthy", (("service", "crash"),))] == 0
    time.sleep(1.5)
    assert len(ct.lines("starts")) == 3  # stays down
    assert ct.ctl("svc", "-u", "crash").returncode == 0  # asked again: a fresh start
    ct.wait_lines("starts", 4)


def test_halt_on_failure(ct):
    ct.service("crash", "exit 3", restart_limit=1, halt_on_failure=True)
    ct.service("other", "exec sleep 1000")
    ct.start()
    assert ct.wait(timeout=20) == 3
    assert "halt-on-failure" in ct.stderr


def test_backoff_grows(ct):
    ct.service("crash", f"date +%s.%N >> {ct.out}/starts; exit 3", restart_max_delay=4000)
    ct.start()
    stamps = [float(x) for x in ct.wait_lines("starts", 4, timeout=15)[:4]]
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    assert 0.8 < gaps[0] < 1.6 and 1.7 < gaps[1] < 2.8 and 3.5 < gaps[2] < 5.0, gaps


def test_a_client_that_does_not_read_its_large_reply_never_holds_supervision(ct):
    """A status with resources of 150 services is larger than a socket buffer: it is written as
    the client reads, and a service that dies meanwhile is restarted at once."""
    for i in range(150):
        ct.service(f"s{i:03d}", "exec sleep 1000", ready_after=0)
    ct.service("victim", f"echo $$ >> {ct.out}/victim; exec sleep 1000", ready_after=0)
    ct.start()
    ct.wait_up("victim")
    time.sleep(1.2)  # up for over a second: restarted at once when killed
    with socket.socket(socket.AF_UNIX) as lazy:
        lazy.connect(str(ct.socket))
        lazy.sendall(b'{"v": 1, "cmd": "status", "names": [], "resources": true}\n')
        time.sleep(0.1)  # the reply is being built, then stuck in the socket: nobody reads
        victim = ct.proc_by_nspid(int(ct.lines("victim")[0]))
        t0 = time.monotonic()
        os.kill(victim.pid, signal.SIGKILL)
        ct.wait_lines("victim", 2, timeout=5)
        # a blocking reply would hold ignity until the client's 1 s send timeout
        assert time.monotonic() - t0 < 0.6


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")
def test_idle_with_http_listener_and_ready_services_makes_no_system_calls(ct):
    """Readiness (ready-after, a check without liveness) and the listener add no timer once the
    services are ready: still no system call."""
    port = free_port()
    names = [f"idle{i:02d}" for i in range(20)]
    for name in names:
        ct.service(name, "exec sleep 1000")
    ct.service("checked", "exec sleep 1000", check_interval=50)  # ready by check, no liveness
    ct.script("services/checked/check", "exit 0")
    names.append("checked")
    ct.start(env={"IGNITY_HTTP_ADDR": f"127.0.0.1:{port}"})
    serving(ct, port)
    ct.wait_up(*names, ready=True, timeout_ms=30000)
    time.sleep(0.5)  # the last clients' connections closed and forgotten
    calls, table = syscalls_while_idle(ct.pid1)
    assert calls == [], table
