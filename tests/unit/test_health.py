"""health: the word of each service and the verdict of `ignity health` and /readyz."""
import pytest

from ignity import health


def svc(**kw):
    base = {"name": "web", "state": "up", "want": "up", "pid": 10, "ready": True, "restarts": 0,
            "uptime_s": 3.0, "last_exit_code": None, "last_signal": None, "error": None}
    base.update(kw)
    return base


@pytest.mark.parametrize("status, word", [
    (svc(), "ok"),
    (svc(ready=False), "starting"),
    (svc(state="down", pid=None, ready=False, last_exit_code=3, restarts=5), "unhealthy"),
    (svc(state="finishing", pid=None, ready=False), "unhealthy"),
    (svc(state="failed", pid=None, ready=False, error="unable to exec ./run"), "failed"),
    (svc(state="down", pid=None, ready=False, want="down"), "ok"),
    (svc(state="failed", pid=None, ready=False, want="down", error="unable to exec ./run"), "ok"),
    (svc(state="failed", pid=None, ready=False, want="down", given_up=True), "failed"),
    (svc(health_failures=2), "unhealthy"),
    (svc(type="oneshot", pid=None), "ok"),                                      # up exited 0
    (svc(type="oneshot", state="down", ready=False), "starting"),               # up runs
    (svc(state="down", pid=None, ready=False, waiting_on=["db"]), "starting"),  # held back
])
def test_words(status, word):
    assert health.assess(status)[0] == word


def test_reasons_say_why():
    assert health.verdict([svc()]) == []
    assert health.verdict([svc(ready=False, uptime_s=1.2, recent_restarts=4, restart_window_s=60.0)]) == [
        "web: starting: not ready since 1 s, 4 restarts in 60 s"]
    lines = health.verdict([
        svc(ready=False, uptime_s=12.4, check_output="connection refused"),
        svc(name="db", state="down", pid=None, ready=False, last_exit_code=3, recent_restarts=5,
            restart_window_s=30.0),
        svc(name="x", state="failed", pid=None, error="gave up after 5 restarts in 60 s"),
    ])
    assert lines == [
        "web: starting: not ready since 12 s (check: connection refused)",
        "db: unhealthy: restarting: 5 restarts in 30 s, last exit 3",
        "x: failed: gave up after 5 restarts in 60 s",
    ]


def test_waiting_on_a_dependency_says_so():
    assert health.assess(svc(state="down", pid=None, ready=False, waiting_on=["db", "cache"])) == (
        "starting", "waiting on db, cache")


def test_not_healthy_while_booting_or_stopping():
    assert health.verdict([svc()], "booting") == ["ignity: booting"]
    assert health.verdict([], "stopping") == ["ignity: stopping"]
    assert health.verdict([], "running") == []
