"""oneshot: the machine of a `type oneshot` servicedir: every (state, event) pair written down; up
runs once when its dependencies are ready and is ready on exit 0; down at shutdown, bounded."""
import os
import signal

import pytest

from ignity.oneshot import TABLE, Oneshot, OneshotState, StartDown, StartUp, step
from ignity.service import Event, KillGroup, SetDeadline, Want
from ignity.servicedir import ServiceSpec

E, S = Event, OneshotState


def spec(**kw):
    base = dict(name="setup", path="/x/setup", down=False, has_finish=False, notification_fd=None,
                down_signal=int(signal.SIGTERM), timeout_kill_ms=0, timeout_finish_ms=5000,
                halt_on_exit=False, has_log=False, type="oneshot")
    base.update(kw)
    return ServiceSpec(**base)


def exited(code):
    return code << 8


def test_every_pair_is_written_down():
    assert set(TABLE) == {(s, e) for s in S for e in E}


@pytest.mark.parametrize("state", list(S))
@pytest.mark.parametrize("event", list(E))
def test_no_cell_crashes(state, event):
    shot = Oneshot(spec())
    shot.state = state
    arg = {E.SPAWNED: 10, E.SPAWN_FAILED: exited(126), E.RUN_EXITED: exited(0), E.SHUTDOWN: 5.0}.get(event)
    assert isinstance(step(shot, event, arg, 1.0), list)


def test_up_runs_once_and_is_ready_on_exit_0_with_timeout_up():
    shot = Oneshot(spec(timeout_up_ms=2000))
    assert step(shot, E.CMD_UP, None, 0.0) == [StartUp()] and shot.state is S.STARTING
    assert step(shot, E.SPAWNED, 42, 0.0) == [SetDeadline(2.0)] and not shot.ready
    assert step(shot, E.RUN_EXITED, exited(0), 0.5) == [SetDeadline(None)]
    assert shot.ready and shot.state is S.UP and shot.status_word() == "up"
    assert step(shot, E.CMD_UP, None, 1.0) == []  # once: never again while up


def test_waits_for_dependencies():
    shot = Oneshot(spec())
    shot.waiting_on = ["redis"]
    assert step(shot, E.CMD_UP, None, 0.0) == [] and shot.state is S.WAITING
    shot.waiting_on = []
    assert step(shot, E.DEPS_READY, None, 0.0) == [StartUp()]


def test_failure_and_timeout():
    shot = Oneshot(spec(timeout_up_ms=100))
    step(shot, E.CMD_UP, None, 0.0)
    step(shot, E.SPAWNED, 42, 0.0)
    assert step(shot, E.DEADLINE, None, 0.1) == [KillGroup(), SetDeadline(None)] and shot.timed_out
    step(shot, E.RUN_EXITED, signal.SIGKILL, 0.1)
    assert shot.state is S.FAILED and shot.status_word() == "failed" and shot.last_signal == signal.SIGKILL
    assert step(shot, E.CMD_UP, None, 1.0) == [StartUp()]  # svc -u tries again
    step(shot, E.SPAWNED, 43, 1.0)
    step(shot, E.RUN_EXITED, exited(3), 1.1)
    assert shot.failed and shot.last_exit_code == 3


def test_down_at_shutdown_bounded_by_timeout_down_and_grace():
    shot = Oneshot(spec(timeout_down_ms=3000, has_down_program=True))
    step(shot, E.CMD_UP, None, 0.0)
    step(shot, E.SPAWNED, 42, 0.0)
    step(shot, E.RUN_EXITED, exited(0), 0.0)
    assert step(shot, E.SHUTDOWN, 2.0, 1.0) == [StartDown()] and shot.state is S.STOPPING
    assert step(shot, E.SPAWNED, 50, 1.0) == [SetDeadline(2.0)]  # the grace is nearer than 1 s + 3 s
    assert step(shot, E.RUN_EXITED, exited(0), 1.5) == [SetDeadline(None)] and shot.state is S.DOWN


def test_no_down_program_is_down_at_once():
    shot = Oneshot(spec())
    shot.state = S.UP
    assert step(shot, E.SHUTDOWN, None, 0.0) == [] and shot.state is S.DOWN and shot.want is Want.DOWN


def test_up_interrupted_by_shutdown_is_killed_at_grace_and_not_undone():
    shot = Oneshot(spec(has_down_program=True))
    step(shot, E.CMD_UP, None, 0.0)
    step(shot, E.SPAWNED, 42, 0.0)
    assert step(shot, E.SHUTDOWN, 5.0, 1.0) == [SetDeadline(5.0)]
    assert step(shot, E.RUN_EXITED, exited(0), 2.0) == [SetDeadline(None)] and shot.state is S.DOWN
    assert step(shot, E.CMD_UP, None, 3.0) == []


def test_svc_down_while_up_runs_takes_it_down_after():
    shot = Oneshot(spec(has_down_program=True))
    step(shot, E.CMD_UP, None, 0.0)
    step(shot, E.SPAWNED, 42, 0.0)
    step(shot, E.CMD_DOWN, None, 0.1)
    assert step(shot, E.RUN_EXITED, exited(0), 0.2) == [SetDeadline(None), StartDown()]


def test_spawn_failure_is_failed_with_its_status():
    shot = Oneshot(spec())
    step(shot, E.CMD_UP, None, 0.0)
    step(shot, E.SPAWN_FAILED, exited(126), 0.0)
    assert shot.failed and shot.last_exit_code == 126
    assert os.WIFEXITED(shot.last_status)
