"""Services that know each other: dependencies.d/ (start once dependencies are ready, stop in
reverse order at shutdown, held back by a dependency that is down or failed, svc -u brings them
up), oneshots (up once, a failure stops the boot unless optional, timeout-up, down at shutdown),
and checks at boot (cycles, missing names)."""

from __future__ import annotations

import random
import time

from .harness import wait_for

# a longrun that says when it starts and stops, and is ready only once it said it started
RUN = """\
#!/bin/sh
trap 'echo "stop $1" >> {out}/order; exit 0' TERM
echo "start $1" >> {out}/order
echo >&3
exec 3>&-
while :; do sleep 5 & wait $!; done
"""


def service(ct, name, deps=(), **files):
    ct.service(name, RUN.format(out=ct.out), notification_fd=3, **files)
    for dep in deps:
        ct.write(f"services/{name}/dependencies.d/{dep}")


def positions(ct, word):
    return {line.split()[1]: i for i, line in enumerate(ct.lines("order")) if line.split()[0] == word}


def test_random_dag_of_50_starts_and_stops_in_order(ct):
    """50 services in a random DAG: every service starts after each of its dependencies wrote
    that it started (it is ready only then), and stops before each of them."""
    rng = random.Random(13)
    names = [f"s{i:02d}" for i in range(50)]
    rng.shuffle(names)
    graph = {n: rng.sample(names[:i], min(i, rng.choice([0, 1, 1, 2, 3]))) for i, n in enumerate(names)}
    for name, deps in graph.items():
        service(ct, name, deps)
    ct.start()
    ct.wait_lines("order", 50, timeout=30)
    assert ct.status()[names[0]]["state"] == "up"
    assert ct.stop() == 0, ct.diag()
    started, stopped = positions(ct, "start"), positions(ct, "stop")
    assert set(started) == set(stopped) == set(names), ct.diag()
    for name, deps in graph.items():
        for dep in deps:
            assert started[dep] < started[name], (dep, name, ct.lines("order"))
            assert stopped[name] < stopped[dep], (name, dep, ct.lines("order"))


def test_cycle_stops_the_boot_with_100_naming_it(ct):
    service(ct, "a", ["b"])
    service(ct, "b", ["c"])
    service(ct, "c", ["a"])
    service(ct, "free")
    ct.start("/bin/sh", "-c", f"echo ran > {ct.out}/cmd")
    assert ct.wait() == 100, ct.diag()
    assert "dependency cycle: a -> b -> c -> a" in ct.stderr, ct.diag()
    assert ct.read("order") == "" and ct.read("cmd") == ""


def test_missing_dependency_stops_the_boot_with_100_naming_it(ct):
    service(ct, "app", ["redis"])
    ct.start("/bin/sh", "-c", f"echo ran > {ct.out}/cmd")
    assert ct.wait() == 100, ct.diag()
    assert "service app: dependencies.d/redis: there is no service redis" in ct.stderr, ct.diag()
    assert ct.read("cmd") == ""


def test_dependency_down_holds_back_and_svc_up_brings_it_first(ct):
    """A dependency wanted down holds its dependant (status: waiting on it); `svc -u` of the
    dependant brings the dependency up first; `svc -d` of the dependency leaves the dependant up."""
    service(ct, "db", down=True)
    service(ct, "app", ["db"])
    ct.start()
    ct.wait_socket()
    status = wait_for(lambda: ct.status().get("app"), 10, "status")
    assert status["state"] == "down" and status["waiting_on"] == ["db"], status
    health = ct.ctl("health", "app")
    assert health.returncode == 1 and "app: starting: waiting on db" in health.stdout + health.stderr, health
    text = ct.ctl("status", "app").stdout
    assert "waiting on db" in text, text
    assert ct.ctl("svc", "-u", "app").returncode == 0
    ct.wait_up("app", ready=True)
    assert [line.split()[1] for line in ct.lines("order")] == ["db", "app"]
    assert ct.ctl("svc", "-d", "db").returncode == 0
    assert ct.ctl("wait", "-D", "-t", "5000", "db").returncode == 0
    assert ct.status()["app"]["state"] == "up"
    assert ct.stop() == 0, ct.diag()


def test_failed_dependency_holds_back(ct):
    """A dependency that cannot start (failed, retried) holds its dependant back."""
    ct.service("db", "#!/nonexistent/interpreter\n")
    service(ct, "app", ["db"])
    ct.start()
    ct.wait_socket()
    wait_for(lambda: ct.status()["db"]["state"] == "failed", 10, "db failed")
    assert ct.status()["app"]["waiting_on"] == ["db"]
    assert ct.read("order") == ""


def test_status_json_carries_the_graph(ct):
    service(ct, "db")
    service(ct, "app", ["db"], log=None)
    ct.script("services/app/log/run", "exec cat > /dev/null")
    ct.start()
    ct.wait_up("app", ready=True)
    import json

    doc = json.loads(ct.ctl("status", "--json").stdout)
    # a logger needs what its service needs: it starts with it
    assert doc["dependencies"] == {"app": ["db", "app/log"], "app/log": ["db"], "db": []}
    app = {s["name"]: s for s in doc["services"]}["app"]
    assert (app["type"], app["user"], app["waiting_on"]) == ("longrun", None, [])
    # read once, from services/ (the live copy has none): a stop and a start keep them
    assert not (ct.run_dir / "services-state" / "app" / "dependencies.d").exists()
    ct.ctl("svc", "-d", "app")
    ct.ctl("wait", "-D", "-t", "10000", "app")
    ct.ctl("svc", "-u", "app")
    ct.wait_up("app", ready=True)
    assert json.loads(ct.ctl("status", "--json").stdout)["dependencies"] == doc["dependencies"]


# ---- oneshots -------------------------------------------------------------------------------------

def oneshot(ct, name, up, deps=(), **files):
    ct.write(f"services/{name}/type", "oneshot\n")
    ct.script(f"services/{name}/up", up)
    for key, value in files.items():
        if key == "down":
            ct.script(f"services/{name}/down", value)
        else:
            ct.write(f"services/{name}/{key.replace('_', '-')}", "" if value is True else f"{value}\n")
    for dep in deps:
        ct.write(f"services/{name}/dependencies.d/{dep}")


def test_oneshot_runs_in_dependency_order_and_down_at_shutdown(ct):
    """db -> migrate (oneshot) -> app: migrate's up runs once db is ready, app starts once up
    exited 0; at shutdown app stops, then migrate's down runs, then db stops."""
    service(ct, "db")
    oneshot(ct, "migrate", f'echo "start $1" >> {ct.out}/order', ["db"],
            down=f'echo "stop $1" >> {ct.out}/order', timeout_down=2000)
    service(ct, "app", ["migrate"])
    ct.start()
    ct.wait_up("app", ready=True)
    st = ct.status()["migrate"]
    assert (st["state"], st["type"], st["ready"], st["pid"]) == ("up", "oneshot", True, None), st
    health = ct.ctl("health")
    assert health.returncode == 0, health.stdout + health.stderr  # a oneshot done is healthy
    assert ct.ctl("status", "migrate").stdout == "migrate: up (oneshot) last: exit 0\n"
    table = {line.split()[0]: line.split() for line in ct.ctl("status", "-l").stdout.splitlines()}
    assert table["NAME"][-2:] == ["TYPE", "USER"] and table["migrate"][-2:] == ["oneshot", "-"]
    assert table["app"][-2:] == ["longrun", "-"]
    assert ct.stop() == 0, ct.diag()
    assert ct.lines("order") == ["start db", "start migrate", "start app", "stop app", "stop migrate",
                                 "stop db"], ct.diag()


def test_a_logger_waits_for_its_services_dependencies(ct):
    """A oneshot that prepares the log directory runs before the service's logger starts: the
    logger starts with its service, so it needs what the service needs (s6-overlay's
    logutil-service recipe: a `*-log-prepare` oneshot the service depends on)."""
    oneshot(ct, "log-prepare", f"sleep 0.5; mkdir {ct.out}/logdir")
    service(ct, "app", ["log-prepare"], log=None)
    ct.script("services/app/log/run", f'test -d {ct.out}/logdir && echo ok >> {ct.out}/logger; exec cat > /dev/null')
    ct.start()
    ct.wait_up("app")
    ct.wait_lines("logger", 1)
    assert ct.lines("logger") == ["ok"], ct.diag()
    assert ct.stop() == 0, ct.diag()


def test_failing_oneshot_stops_the_boot_with_its_status(ct):
    service(ct, "db")
    oneshot(ct, "migrate", "exit 3", ["db"])
    service(ct, "app", ["migrate"])
    ct.start("/bin/sh", "-c", "sleep 30")
    assert ct.wait() == 3, ct.diag()
    assert "boot stopped: oneshot migrate: up exited 3" in ct.stderr, ct.diag()
    assert positions(ct, "start").keys() == {"db"}  # the app never started; db stopped at shutdown
    assert "stop db" in ct.lines("order")


def test_oneshot_timeout_up_is_137_and_says_so(ct):
    oneshot(ct, "slow", "exec sleep 30", timeout_up=300)
    ct.start()
    assert ct.wait() == 137, ct.diag()
    assert "boot stopped: oneshot slow: up timed out after 300 ms" in ct.stderr, ct.diag()


def test_optional_oneshot_failure_is_reported_and_holds_back_its_dependants(ct):
    oneshot(ct, "warm-cache", "exit 4", optional=True)
    service(ct, "app", ["warm-cache"])
    service(ct, "other")
    ct.start("/bin/sh", "-c", "ignity wait -U -t 5000 other && sleep 0.3 && ignity status app warm-cache")
    assert ct.wait() == 0, ct.diag()
    assert "oneshot warm-cache: up exited 4 (holding back app)" in ct.stderr, ct.diag()
    assert "warm-cache: failed" in ct.stdout and "app: down" in ct.stdout and "waiting on warm-cache" in ct.stdout
    assert positions(ct, "start").keys() == {"other"}


def test_oneshot_up_not_executable_is_an_s6_rc_command_line(ct):
    """s6-rc's `up` is one execline command line: a non-executable `up` is run as such, without
    execline; a { block } is a failed start naming the file."""
    ct.script("bin/setup", f"echo \"ran $*\" > {ct.out}/setup")
    ct.write("services/setup/type", "oneshot\n")
    ct.write("services/setup/up", f"{ct.conf}/bin/setup \"one arg\" two\n", mode=0o644)
    ct.start("/bin/sh", "-c", "ignity wait -U -t 5000 setup")
    assert ct.wait() == 0, ct.diag()
    assert ct.read("setup") == "ran one arg two\n"
    ct.write("services/setup/up", "if { true } true\n", mode=0o644)
    ct.start("/bin/sh", "-c", "sleep 10")
    assert ct.wait() == 100, ct.diag()
    assert "services-state/setup/up: " in ct.stderr and "make it an executable script" in ct.stderr, ct.diag()


def test_rescan_starts_new_services_and_refuses_one_with_a_missing_name(ct):
    service(ct, "db")
    ct.start()
    ct.wait_up("db", ready=True)
    live = ct.state_dir("app")
    (live / "dependencies.d").mkdir(parents=True)
    (live / "dependencies.d" / "db").write_text("")
    (live / "run").write_text(RUN.format(out=ct.out))
    (live / "run").chmod(0o755)
    (live / "notification-fd").write_text("3\n")
    bad = ct.state_dir("bad")
    (bad / "dependencies.d").mkdir(parents=True)
    (bad / "dependencies.d" / "nope").write_text("")
    (bad / "run").write_text(RUN.format(out=ct.out))
    (bad / "run").chmod(0o755)
    r = ct.ctl("rescan")
    assert r.returncode == 0, r.stderr
    assert "rescan: service bad: dependencies.d/nope: there is no service nope" in ct.stderr, ct.diag()
    ct.wait_up("app", ready=True)
    assert ct.status()["bad"]["state"] == "down"
    assert [line.split()[1] for line in ct.lines("order")] == ["db", "app"]
    assert ct.stop() == 0, ct.diag()


def test_a_service_does_not_wait_for_its_loggers_readiness(ct):
    """A service needs its logger (the logger starts first, stops last) but only running: not
    ready-after's second."""
    ct.service("web", f"echo started > {ct.out}/web; exec sleep 1000", log="exec cat > /dev/null",
               ready_after=5000)
    ct.write("services/web/log/ready-after", "5000\n")
    ct.start()
    ct.wait_file("web", timeout=3)
    assert ct.status()["web/log"]["state"] == "up"


def test_grace_time_bounds_a_stop_in_order(ct):
    """A dependant that ignores SIGTERM holds its dependency's down signal back only until
    IGNITY_SERVICES_GRACETIME: then it gets SIGKILL and the dependency its down signal at once
    (SIGKILL 0.5 s later at most), so the shutdown stays bounded."""
    service(ct, "db")
    ct.service("app", f"""
        trap '' TERM
        echo "start app" >> {ct.out}/order
        exec 3>&-
        while :; do sleep 1; done
    """)
    ct.write("services/app/dependencies.d/db")
    ct.start(env={"IGNITY_SERVICES_GRACETIME": "500", "IGNITY_KILL_GRACETIME": "500"})
    ct.wait_lines("order", 2)
    t0 = time.monotonic()
    assert ct.stop() == 0, ct.diag()
    took = time.monotonic() - t0
    assert 0.4 < took < 3.0, took
    assert ct.lines("order")[-1] == "stop db", ct.lines("order")  # db still stopped cleanly, last
