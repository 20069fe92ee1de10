"""service: the lifecycle machine, cell by cell, with no processes (SPEC §7, §11.5)."""
import os
import signal
from pathlib import Path

import pytest

from ignity.service import (
    RESTART_THROTTLE_S,
    TABLE,
    Event,
    KillGroup,
    Service,
    SetDeadline,
    SignalRun,
    StartFinish,
    StartRun,
    State,
    Want,
    step,
)
from ignity.servicedir import ServiceSpec


def spec(**kw):
    base = dict(name="a", path=Path("/x/a"), down=False, has_finish=False, notification_fd=None,
                down_signal=int(signal.SIGTERM), timeout_kill_ms=0, timeout_finish_ms=5000,
                halt_on_exit=False, has_log=False)
    base.update(kw)
    return ServiceSpec(**base)


def exited(code):
    return code << 8


def killed(sig):
    return sig


def up(svc, now=100.0, pid=42):
    assert StartRun() in step(svc, Event.CMD_UP, None, now)
    step(svc, Event.SPAWNED, pid, now)
    assert svc.state is State.UP and svc.pid == pid
    return svc


def test_every_pair_is_written_down():
    assert set(TABLE) == {(s, e) for s in State for e in Event}


@pytest.mark.parametrize("state", list(State))
@pytest.mark.parametrize("event", list(Event))
def test_no_cell_crashes(state, event):
    svc = Service(spec(has_finish=True))
    svc.state = state
    svc.pid = svc.pgid = 42 if state in (State.UP, State.STOPPING) else None
    arg = {Event.SPAWNED: 42, Event.RUN_EXITED: 0, Event.FINISH_EXITED: 0, Event.SHUTDOWN: 200.0,
           Event.SPAWN_FAILED: "boom"}.get(event)
    effects = step(svc, event, arg, 100.0)
    assert isinstance(effects, list)


def test_ready_at_once_without_notification_fd():
    assert up(Service(spec())).ready


def test_ready_waits_for_notification():
    svc = up(Service(spec(notification_fd=3)))
    assert not svc.ready
    step(svc, Event.READY, None, 100.5)
    assert svc.ready


def test_quick_exit_is_throttled_to_one_start_per_second():
    svc = up(Service(spec()), now=100.0)
    effects = step(svc, Event.RUN_EXITED, exited(1), 100.2)
    assert svc.state is State.BACKOFF
    assert SetDeadline(100.0 + RESTART_THROTTLE_S) in effects and StartRun() not in effects
    assert StartRun() in step(svc, Event.DEADLINE, None, 101.0)


def test_long_running_service_restarts_at_once():
    svc = up(Service(spec()), now=100.0)
    assert StartRun() in step(svc, Event.RUN_EXITED, exited(1), 102.0)


def test_finish_runs_then_125_means_no_restart():
    svc = up(Service(spec(has_finish=True)))
    effects = step(svc, Event.RUN_EXITED, exited(3), 103.0)
    assert svc.state is State.FINISHING and StartFinish() in effects
    assert SetDeadline(103.0 + 5.0) in effects
    step(svc, Event.FINISH_EXITED, exited(125), 103.1)
    assert svc.state is State.DOWN and svc.want is Want.DOWN


def test_never_restarted_before_finish_ends():
    svc = up(Service(spec(has_finish=True)), now=100.0)
    step(svc, Event.RUN_EXITED, exited(1), 105.0)
    assert step(svc, Event.DEADLINE, None, 110.0) == [KillGroup(finish=True), SetDeadline(None)]
    assert svc.state is State.FINISHING
    assert StartRun() in step(svc, Event.FINISH_EXITED, killed(9), 110.1)


def test_down_sends_down_signal_and_timeout_kill():
    svc = up(Service(spec(down_signal=int(signal.SIGUSR1), timeout_kill_ms=500)))
    effects = step(svc, Event.CMD_DOWN, None, 100.0)
    assert effects == [SignalRun(int(signal.SIGUSR1)), SetDeadline(100.5)]
    assert svc.state is State.STOPPING and svc.want is Want.DOWN
    assert KillGroup() in step(svc, Event.DEADLINE, None, 100.5)
    step(svc, Event.RUN_EXITED, killed(9), 100.6)
    assert svc.state is State.DOWN and svc.last_signal == 9


def test_restart_keeps_want_up():
    svc = up(Service(spec()), now=100.0)
    step(svc, Event.CMD_RESTART, None, 102.0)
    assert svc.state is State.STOPPING and svc.want is Want.UP
    assert StartRun() in step(svc, Event.RUN_EXITED, killed(15), 102.1)


def test_once_runs_one_time():
    svc = Service(spec(), want=Want.DOWN)
    assert StartRun() in step(svc, Event.CMD_ONCE, None, 100.0)
    step(svc, Event.SPAWNED, 7, 100.0)
    step(svc, Event.RUN_EXITED, exited(0), 105.0)
    assert svc.state is State.DOWN and svc.want is Want.DOWN


def test_shutdown_stops_with_grace_deadline_and_never_restarts():
    svc = up(Service(spec()))
    assert step(svc, Event.SHUTDOWN, 105.0, 100.0) == [SignalRun(int(signal.SIGTERM)), SetDeadline(105.0)]
    step(svc, Event.RUN_EXITED, exited(0), 101.0)
    assert svc.state is State.DOWN
    assert step(svc, Event.CMD_UP, None, 101.0) == []


def test_spawn_failure_backs_off_and_reports_failed():
    svc = Service(spec())
    step(svc, Event.CMD_UP, None, 100.0)
    effects = step(svc, Event.SPAWN_FAILED, "no run", 100.0)
    assert svc.state is State.BACKOFF and SetDeadline(101.0) in effects and svc.status_word() == "failed"


def test_last_exit_fields():
    svc = up(Service(spec()))
    step(svc, Event.RUN_EXITED, exited(3), 100.5)
    assert (svc.last_exit_code, svc.last_signal) == (3, None)
    assert os.WIFEXITED(svc.last_status)
