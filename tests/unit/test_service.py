"""service: the lifecycle machine, cell by cell, with no processes (SPEC §7, §11.5), and its
invariant over random event sequences."""
import collections
import os
import random
import signal
from pathlib import Path

import pytest

from ignity.service import (
    CHECK_RESTART_KILL_S,
    LATE_KILL_S,
    LOGGER_EOF_GRACE_S,
    RESTART_THROTTLE_S,
    STOP_CELLS,
    TABLE,
    Event,
    GiveUp,
    KillCheck,
    KillGroup,
    Report,
    Service,
    SetDeadline,
    SignalRun,
    StartCheck,
    StartFinish,
    StartRun,
    State,
    Want,
    ignore,
    step,
    supervised,
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


def in_state(state, **kw):
    """A record as the machine leaves it in ``state`` (pids where a process runs, a deadline where
    one is pending)."""
    svc = Service(spec(has_finish=True, **kw))
    svc.state = state
    if state in (State.UP, State.STOPPING, State.DRAINING):
        svc.pid = svc.pgid = 42
    if state is State.FINISHING:
        svc.pgid, svc.finish_pid = 42, 43
    if state in (State.BACKOFF, State.STOPPING, State.FINISHING, State.DRAINING):
        svc.deadline = 105.0
    return svc


ARGS = {Event.SPAWNED: 42, Event.RUN_EXITED: 0, Event.FINISH_EXITED: 0, Event.SHUTDOWN: 200.0,
        Event.RELEASE: 200.0, Event.SPAWN_FAILED: "boom", Event.CHECK_EXITED: (77, 0)}


def snapshot(svc):
    return {name: getattr(svc, name) for name in Service.__slots__}


@pytest.mark.parametrize("state", list(State))
@pytest.mark.parametrize("event", list(Event))
def test_every_cell(state, event):
    """Every cell returns a list of effects; an ``ignore`` cell returns none and leaves the record
    exactly as it was."""
    svc = in_state(state)
    before = snapshot(svc)
    effects = step(svc, event, ARGS.get(event), 100.0)
    assert isinstance(effects, list)
    if TABLE[(state, event)] is ignore:
        assert effects == []
        assert snapshot(svc) == before


@pytest.mark.parametrize("cell", sorted(STOP_CELLS, key=str))
def test_stop_cells_send_the_down_signal(cell):
    svc = in_state(cell[0], down_signal=int(signal.SIGUSR2))
    assert SignalRun(int(signal.SIGUSR2)) in step(svc, cell[1], ARGS.get(cell[1]), 100.0)


def test_ready_at_once_with_ready_after_0():
    assert up(Service(spec(ready_after_ms=0))).ready


def test_ready_after_staying_up():
    svc = up(Service(spec()), now=100.0)
    assert not svc.ready and svc.deadline == 101.0
    assert step(svc, Event.DEADLINE, None, 101.0) == [SetDeadline(None)]
    assert svc.ready


def test_a_crash_loop_is_never_ready():
    """issue: `run` being `exit 3` must never be reported ready (wait -U, the CMD wait, health)."""
    svc = up(Service(spec()), now=100.0)
    for i in range(5):
        effects = step(svc, Event.RUN_EXITED, exited(3), svc.started_at + 0.01)
        assert not svc.ready
        if StartRun() not in effects:
            step(svc, Event.DEADLINE, None, svc.deadline)
        step(svc, Event.SPAWNED, 50 + i, svc.started_at + 1.0)
        assert not svc.ready


# ---- check: readiness, liveness -----------------------------------------------------------------
def checked(**kw):
    return up(Service(spec(has_check=True, **kw)), now=100.0)


def try_check(svc, now, status, pid=77):
    """The check's deadline comes, a try starts (pid) and ends 0.25 s later with ``status``."""
    assert step(svc, Event.DEADLINE, None, now)[0] == StartCheck()
    svc.check_pid = pid  # what the supervisor does when the spawn succeeds
    return step(svc, Event.CHECK_EXITED, (pid, status), now + 0.25)


def test_check_makes_ready():
    svc = checked()
    assert not svc.ready and svc.deadline == 100.25
    assert try_check(svc, 100.25, exited(1)) == [SetDeadline(100.75)]
    assert not svc.ready
    assert try_check(svc, 100.75, exited(0)) == [SetDeadline(None)]  # no liveness: nothing more runs
    assert svc.ready


def test_check_try_that_overruns_is_killed():
    svc = checked(check_try_timeout_ms=2000)
    assert step(svc, Event.DEADLINE, None, 100.25) == [StartCheck(), SetDeadline(102.25)]
    svc.check_pid = 77
    assert step(svc, Event.DEADLINE, None, 102.25) == [KillCheck(77), SetDeadline(None)]
    assert step(svc, Event.CHECK_EXITED, (77, killed(9)), 102.5) == [SetDeadline(102.75)]


def test_not_ready_in_time_is_a_failed_start():
    svc = checked(check_timeout_ms=1000, timeout_kill_ms=0)
    svc.check_output = "connection refused"
    effects = try_check(svc, 101.0, exited(1))
    assert effects == [Report("service a: not ready after 1000 ms (connection refused): restarting"),
                       SignalRun(int(signal.SIGTERM)), SetDeadline(101.25 + CHECK_RESTART_KILL_S)]
    assert svc.state is State.STOPPING and svc.want is Want.UP and len(svc.failures) == 1


def test_liveness_retries_then_restart_and_recovery_is_said_once():
    svc = checked(health_interval_ms=1000, health_retries=2, timeout_kill_ms=500)
    try_check(svc, 100.25, exited(0))
    assert svc.ready and svc.deadline == 101.5
    assert try_check(svc, 101.5, exited(1)) == [SetDeadline(102.75)]
    assert svc.check_failures == 1
    assert try_check(svc, 102.75, exited(0)) == [Report("service a: check passes again after 1 failures"),
                                                 SetDeadline(104.0)]
    assert try_check(svc, 104.0, exited(0)) == [SetDeadline(105.25)]  # said once
    try_check(svc, 105.25, exited(1))
    effects = try_check(svc, 106.5, exited(1))
    assert effects == [Report("service a: check failed 2 times in a row: restarting"),
                       SignalRun(int(signal.SIGTERM)), SetDeadline(107.25)]


def test_a_check_outlives_no_run():
    svc = checked()
    step(svc, Event.DEADLINE, None, 100.25)
    svc.check_pid = 77
    effects = step(svc, Event.RUN_EXITED, exited(1), 100.5)
    assert effects[0] == KillCheck(77) and svc.check_pid is None
    # its exit, reported later, is not a try of the next run
    assert step(svc, Event.CHECK_EXITED, (77, killed(9)), 100.75) == []


# ---- crash-loop policy ----------------------------------------------------------------------------
def crash(svc, now):
    """run exits 0.1 s after its start; returns when the next start is due."""
    step(svc, Event.RUN_EXITED, exited(3), now)
    return svc.deadline


def test_backoff_doubles_up_to_restart_max_delay_and_resets():
    svc = up(Service(spec(restart_max_delay_ms=4000)), now=100.0)
    starts = []
    for _ in range(5):
        due = crash(svc, svc.started_at + 0.1)
        starts.append(round(due - svc.started_at, 3))
        step(svc, Event.DEADLINE, None, due)
        step(svc, Event.SPAWNED, 9, due)
    assert starts == [1.0, 2.0, 4.0, 4.0, 4.0]
    # up for longer than restart-max-delay: restarted at once, the backoff back to 1 s
    assert StartRun() in step(svc, Event.RUN_EXITED, exited(3), svc.started_at + 5.0)
    step(svc, Event.SPAWNED, 10, svc.started_at + 5.0)
    assert crash(svc, svc.started_at + 0.1) == svc.started_at + 1.0


def test_a_requested_restart_is_no_failure():
    svc = up(Service(spec(restart_max_delay_ms=8000, restart_limit=1)), now=100.0)
    for i in range(3):
        step(svc, Event.CMD_RESTART, None, svc.started_at + 0.1)
        effects = step(svc, Event.RUN_EXITED, killed(15), svc.started_at + 0.2)
        assert SetDeadline(svc.started_at + 1.0) in effects  # the 1 s throttle, not a growing backoff
        step(svc, Event.DEADLINE, None, svc.started_at + 1.0)
        step(svc, Event.SPAWNED, 9 + i, svc.started_at + 1.0)
    assert svc.failures == [] and not svc.gave_up


def test_default_policy_is_one_start_a_second_forever():
    svc = up(Service(spec()), now=100.0)
    for i in range(30):
        due = crash(svc, svc.started_at + 0.1)
        assert due == svc.started_at + 1.0
        step(svc, Event.DEADLINE, None, due)
        step(svc, Event.SPAWNED, 9 + i, due)
    assert not svc.gave_up


def test_restart_limit_gives_up_and_up_starts_again():
    svc = up(Service(spec(restart_limit=2, restart_window_ms=60000)), now=100.0)
    for _ in range(2):
        due = crash(svc, svc.started_at + 0.1)
        step(svc, Event.DEADLINE, None, due)
        step(svc, Event.SPAWNED, 9, due)
    effects = step(svc, Event.RUN_EXITED, exited(3), svc.started_at + 0.1)
    assert effects == [SetDeadline(None), GiveUp()]
    assert svc.state is State.DOWN and svc.want is Want.DOWN and svc.status_word() == "failed"
    assert supervised(svc)
    assert StartRun() in step(svc, Event.CMD_UP, None, 200.0)
    assert not svc.gave_up and svc.failures == []


def test_failures_outside_the_window_do_not_count():
    svc = up(Service(spec(restart_limit=2, restart_window_ms=1500)), now=100.0)
    for _ in range(6):
        due = crash(svc, svc.started_at + 0.1)
        step(svc, Event.DEADLINE, None, due)
        step(svc, Event.SPAWNED, 9, due)
    assert not svc.gave_up


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


def test_down_then_restart_with_finish_that_cannot_start():
    """The machine's side of a finish that cannot start: FINISH_EXITED comes after the effect list
    of RUN_EXITED, and the throttle deadline (1 s after the start), not timeout-finish, is last."""
    svc = up(Service(spec(has_finish=True)), now=100.0)
    effects = step(svc, Event.RUN_EXITED, exited(1), 100.1)
    assert effects == [StartFinish(), SetDeadline(105.1)]
    assert step(svc, Event.FINISH_EXITED, exited(126), 100.1) == [SetDeadline(101.0)]
    assert svc.state is State.BACKOFF and svc.deadline == 101.0


# ---- the logger's end of input at shutdown ----------------------------------------------------
def test_released_logger_drains_then_gets_its_down_signal():
    logger = up(Service(spec(name="a/log")), now=100.0)
    assert step(logger, Event.RELEASE, 110.0, 101.0) == [SetDeadline(101.0 + LOGGER_EOF_GRACE_S)]
    assert logger.state is State.DRAINING and logger.want is Want.DOWN and logger.status_word() == "up"
    assert step(logger, Event.DEADLINE, None, 101.5) == [SignalRun(int(signal.SIGTERM)), SetDeadline(110.0)]
    assert logger.state is State.STOPPING


def test_released_logger_that_reads_to_end_of_file_is_down():
    logger = up(Service(spec(name="a/log")), now=100.0)
    step(logger, Event.RELEASE, 110.0, 101.0)
    assert step(logger, Event.RUN_EXITED, exited(0), 101.1) == [SetDeadline(None)]
    assert logger.state is State.DOWN and logger.deadline is None


def test_logger_released_after_the_grace_deadline_still_gets_time_before_sigkill():
    logger = up(Service(spec(name="a/log")), now=100.0)
    step(logger, Event.RELEASE, 105.0, 106.0)
    effects = step(logger, Event.DEADLINE, None, 106.5)
    assert effects == [SignalRun(int(signal.SIGTERM)), SetDeadline(106.5 + LATE_KILL_S)]


def test_start_landing_after_shutdown_is_stopped():
    svc = Service(spec())
    step(svc, Event.CMD_UP, None, 100.0)
    step(svc, Event.SHUTDOWN, 105.0, 100.0)
    assert step(svc, Event.SPAWNED, 7, 100.0) == [SignalRun(int(signal.SIGTERM)), SetDeadline(105.0)]
    assert svc.state is State.STOPPING


# ---- the invariant over random event sequences --------------------------------------------------
class Driver:
    """Plays the supervisor and the OS for one record: performs effects the way the supervisor
    does (each start succeeds or fails, at random; events raised by effects wait in a queue until
    the effect list is done) and only reports what the OS could report (an exit for a process
    that exists, the deadline when it is due)."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.svc = Service(spec(has_finish=rng.random() < 0.5,
                                notification_fd=rng.choice([None, 3]),
                                timeout_kill_ms=rng.choice([0, 500]),
                                timeout_finish_ms=rng.choice([0, 5000]),
                                has_check=rng.random() < 0.5,
                                health_interval_ms=rng.choice([0, 1000]),
                                check_timeout_ms=rng.choice([0, 2000]),
                                restart_limit=rng.choice([0, 3]),
                                restart_max_delay_ms=rng.choice([1000, 8000])),
                           want=rng.choice([Want.UP, Want.DOWN]))
        self.now = 100.0
        self.queue = collections.deque()
        self.finish_running = False
        self.next_pid = 1000
        self.checks: set[int] = set()  # tries of check still running (killed ones too)

    def perform(self, effects):
        for effect in effects:
            if isinstance(effect, StartRun):
                assert self.svc.pid is None and not self.finish_running, "a second process of the service"
                if self.rng.random() < 0.3:
                    self.queue.append((Event.SPAWN_FAILED, "unable to start: Too many open files"))
                else:
                    self.next_pid += 1
                    self.queue.append((Event.SPAWNED, self.next_pid))
            elif isinstance(effect, StartFinish):
                if self.rng.random() < 0.3:
                    self.queue.append((Event.FINISH_EXITED, exited(126)))
                else:
                    self.finish_running = True
                    self.svc.finish_pid = 1
            elif isinstance(effect, StartCheck):
                assert self.svc.check_pid is None and self.svc.pid is not None, "a check without its run"
                if self.rng.random() < 0.2:
                    self.queue.append((Event.CHECK_EXITED, (None, exited(126))))
                else:
                    self.next_pid += 1
                    self.svc.check_pid = self.next_pid
                    self.checks.add(self.next_pid)

    def external(self):
        """One event the world could send now."""
        svc, rng = self.svc, self.rng
        choices = [Event.CMD_UP, Event.CMD_DOWN, Event.CMD_ONCE, Event.CMD_RESTART, Event.READY]
        # a dependency goes and comes back: waiting_on as the supervisor keeps it, DEPS_READY
        # once it is empty again
        if rng.random() < 0.1:
            svc.waiting_on = [] if svc.waiting_on else ["db"]
            if not svc.waiting_on:
                return Event.DEPS_READY, None  # the supervisor feeds it at once
        if rng.random() < 0.01:
            choices += [Event.HOLD]
        if svc.pid is not None:
            choices += [Event.RUN_EXITED] * 3
        if self.finish_running:
            choices += [Event.FINISH_EXITED] * 3
        if svc.deadline is not None:
            choices += [Event.DEADLINE] * 3
        if self.checks:
            choices += [Event.CHECK_EXITED] * 3
        if rng.random() < 0.02:
            choices += [Event.SHUTDOWN, Event.RELEASE]
        event = rng.choice(choices)
        if event is Event.DEADLINE:
            self.now = max(self.now, svc.deadline)
            return event, None
        self.now += rng.choice([0.0, 0.01, 0.3, 1.0, 6.0])
        if event is Event.RUN_EXITED:
            return event, rng.choice([exited(0), exited(1), killed(9)])
        if event is Event.CHECK_EXITED:
            pid = rng.choice(sorted(self.checks))
            self.checks.discard(pid)
            return event, (pid, rng.choice([exited(0), exited(1), killed(9)]))
        if event is Event.FINISH_EXITED:
            self.finish_running = False
            return event, rng.choice([exited(0), exited(125), killed(9)])
        if event in (Event.SHUTDOWN, Event.RELEASE):
            return event, self.now + 5.0
        return event, None

    def run(self, steps):
        if self.svc.want is Want.UP:
            self.queue.append((Event.CMD_UP, None))  # as the supervisor starts what is wanted up
        for _ in range(steps):
            self.queue.append(self.external())
            trail = []
            while self.queue:
                event, arg = self.queue.popleft()
                trail.append((self.svc.state, event))
                self.perform(step(self.svc, event, arg, self.now))
            assert supervised(self.svc), (trail, self.svc.state, self.svc.want, self.svc.deadline)


@pytest.mark.parametrize("seed", range(200))
def test_wanted_up_is_running_finishing_or_timed(seed):
    Driver(random.Random(seed)).run(300)


# ---- dependencies -------------------------------------------------------------------------------
def test_waits_for_dependencies_then_starts():
    svc = Service(spec(), want=Want.DOWN)
    svc.waiting_on = ["db"]
    assert step(svc, Event.CMD_UP, None, 100.0) == []
    assert svc.state is State.WAITING and supervised(svc) and svc.status_word() == "down"
    svc.waiting_on = []
    assert step(svc, Event.DEPS_READY, None, 100.0) == [StartRun()]
    step(svc, Event.SPAWNED, 42, 100.0)
    assert not svc.ready_for_dependants()  # ready-after: up for 1 s first
    step(svc, Event.DEADLINE, None, 101.0)
    assert svc.ready_for_dependants()


def test_restart_after_exit_waits_for_a_dependency_that_went_away():
    svc = Service(spec())
    step(svc, Event.CMD_UP, None, 100.0)
    step(svc, Event.SPAWNED, 42, 100.0)
    svc.waiting_on = ["db"]
    assert step(svc, Event.RUN_EXITED, exited(1), 105.0) == [SetDeadline(None)]
    assert svc.state is State.WAITING
    assert step(svc, Event.CMD_DOWN, None, 106.0) == [SetDeadline(None)] and svc.state is State.DOWN


def test_hold_keeps_the_process_but_never_restarts():
    svc = Service(spec())
    step(svc, Event.CMD_UP, None, 100.0)
    step(svc, Event.SPAWNED, 42, 100.0)
    assert step(svc, Event.HOLD, None, 101.0) == [] and svc.state is State.UP
    step(svc, Event.RUN_EXITED, exited(1), 105.0)
    assert svc.state is State.DOWN and svc.want is Want.DOWN
    waiting = Service(spec())
    waiting.waiting_on = ["db"]
    step(waiting, Event.CMD_UP, None, 100.0)
    assert step(waiting, Event.HOLD, None, 101.0) == [SetDeadline(None)] and waiting.state is State.DOWN
