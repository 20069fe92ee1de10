"""The lifecycle of one oneshot (a servicedir whose ``type`` is ``oneshot``, as in s6-rc) as an
explicit machine: no OS calls here.

A oneshot has no long-running process: its ``up`` program runs once, when every dependency is
ready, and the oneshot is up (ready) when ``up`` exits 0; its ``down`` program, if any, runs when
it is taken down (at shutdown, in reverse dependency order). Every (state, event) pair has an
entry in ``TABLE``; the events are ``service.Event`` (``RUN_EXITED`` is the end of ``up`` or
``down``; ``SPAWN_FAILED`` carries the wait status standing for the failure, 126/127 << 8), and
the supervisor performs the effects, as for ``service``.

| state    | meaning                                                         | status |
|----------|-----------------------------------------------------------------|--------|
| DOWN     | ``up`` not run (or ``down`` done)                                | down   |
| WAITING  | wanted up, a dependency is not ready yet                        | down   |
| STARTING | ``up`` running (killed after ``timeout-up``)                     | down   |
| UP       | ``up`` exited 0: ready                                          | up     |
| STOPPING | ``down`` running (killed after ``timeout-down``)                 | up     |
| FAILED   | ``up`` failed, was killed or could not start                    | failed |
"""

from __future__ import annotations

import enum
import os
from collections.abc import Callable

from .record import Record
from .service import Event, KillGroup, LastExit, SetDeadline, Want
from .servicedir import ServiceSpec


class OneshotState(enum.Enum):
    DOWN = "down"
    WAITING = "waiting"
    STARTING = "starting"
    UP = "up"
    STOPPING = "stopping"
    FAILED = "failed"


class StartUp(Record):
    """Spawn ``up``."""


class StartDown(Record):
    """Spawn ``down``."""


class Oneshot(LastExit):
    """The record of one oneshot; the attributes that status and waiters read are those of
    ``service.Service``."""

    __slots__ = ("at_boot", "deadline", "error", "grace", "last_status", "needed_by", "needs", "pgid", "pid",
                 "removed", "shutdown_sent", "shutting_down", "spawns", "spec", "started_at", "state", "timed_out",
                 "timer", "waiting_on", "want")

    # what a longrun's record has and a oneshot never does
    is_logger = False
    restarts = 0
    up_since = None
    finish_pid = None
    main = None
    logger = None
    ready_fd = None
    pump = None

    def __init__(self, spec: ServiceSpec, want: Want = Want.UP):
        self.spec = spec
        self.want = want
        self.state = OneshotState.DOWN
        self.pid: int | None = None            # of `up` or `down`, while it runs
        self.pgid: int | None = None
        self.last_status: int | None = None    # of the last `up` or `down`
        self.spawns = 0
        self.started_at: float | None = None
        self.deadline: float | None = None
        self.grace: float | None = None        # the shutdown's deadline, which bounds `up` and `down` too
        self.waiting_on: list[str] = []        # dependencies not ready, kept by the supervisor
        self.needs: list = []                  # dependency records, set by the supervisor
        self.needed_by: list = []
        self.timer = None                      # the loop timer armed for ``deadline`` (supervisor's)
        self.timed_out = False
        self.shutting_down = False
        self.at_boot = False                   # started by the boot: a failure stops the container
        self.error: str | None = None
        self.removed = False
        self.shutdown_sent = False             # the supervisor's: its turn at shutdown has come

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def main_name(self) -> str:
        return self.spec.name

    @property
    def ready(self) -> bool:
        return self.state is OneshotState.UP

    @property
    def failed(self) -> bool:
        return self.state is OneshotState.FAILED

    def ready_for_dependants(self) -> bool:
        """``up`` has exited 0 (see ``service.Service.ready_for_dependants``)."""
        return self.state is OneshotState.UP

    def is_down(self) -> bool:
        return self.state in (OneshotState.DOWN, OneshotState.WAITING, OneshotState.FAILED)

    def status_word(self) -> str:
        if self.state in (OneshotState.UP, OneshotState.STOPPING):
            return "up"
        return "failed" if self.state is OneshotState.FAILED else "down"



Handler = Callable[[Oneshot, object, float], list]


# ---- handlers ----------------------------------------------------------------------------------
def ignore(shot: Oneshot, arg: object, now: float) -> list:
    return []


def _start(shot: Oneshot) -> list:
    if shot.waiting_on:
        shot.state = OneshotState.WAITING
        return []
    shot.state = OneshotState.STARTING
    shot.timed_out = False
    return [StartUp()]


def want_up(shot: Oneshot, arg: object, now: float) -> list:
    if shot.shutting_down:
        return []
    shot.want = Want.UP
    return _start(shot)


def want_up_later(shot: Oneshot, arg: object, now: float) -> list:
    if not shot.shutting_down:
        shot.want = Want.UP
    return []


def deps_ready(shot: Oneshot, arg: object, now: float) -> list:
    return _start(shot)


def give_up_waiting(shot: Oneshot, arg: object, now: float) -> list:
    shot.want = Want.DOWN
    shot.state = OneshotState.DOWN
    return []


def shutdown_idle(shot: Oneshot, arg: object, now: float) -> list:
    _shutdown(shot, arg)
    shot.state = OneshotState.DOWN
    return []


def want_down_later(shot: Oneshot, arg: object, now: float) -> list:
    shot.want = Want.DOWN
    return []


def spawned(shot: Oneshot, arg: object, now: float) -> list:
    assert isinstance(arg, int)
    shot.pid = shot.pgid = arg
    shot.spawns += 1
    shot.started_at = now
    shot.error = None
    ms = shot.spec.timeout_down_ms if shot.state is OneshotState.STOPPING else shot.spec.timeout_up_ms
    deadline = now + ms / 1000 if ms else None
    if shot.grace is not None:
        deadline = shot.grace if deadline is None else min(deadline, shot.grace)
    return [SetDeadline(deadline)]


def spawn_failed(shot: Oneshot, arg: object, now: float) -> list:
    assert isinstance(arg, int)
    shot.last_status = arg
    shot.state = OneshotState.FAILED if shot.state is OneshotState.STARTING else OneshotState.DOWN
    return [SetDeadline(None)]


def up_exited(shot: Oneshot, arg: object, now: float) -> list:
    assert isinstance(arg, int)
    shot.last_status = arg
    shot.pid = shot.pgid = None
    if shot.shutting_down:
        shot.state = OneshotState.DOWN  # interrupted by the shutdown: nothing to undo with `down`
        return [SetDeadline(None)]
    if not (os.WIFEXITED(arg) and os.WEXITSTATUS(arg) == 0):
        shot.state = OneshotState.FAILED
        return [SetDeadline(None)]
    shot.state = OneshotState.UP
    if shot.want is Want.DOWN:  # `svc -d` while `up` ran: taken down now that it is done
        return [SetDeadline(None), *_take_down(shot)]
    return [SetDeadline(None)]


def _take_down(shot: Oneshot) -> list:
    if not shot.spec.has_down_program:
        shot.state = OneshotState.DOWN
        return []
    shot.state = OneshotState.STOPPING
    return [StartDown()]


def _shutdown(shot: Oneshot, arg: object) -> None:
    assert arg is None or isinstance(arg, float)
    shot.shutting_down = True
    shot.want = Want.DOWN
    shot.grace = arg


def hold(shot: Oneshot, arg: object, now: float) -> list:
    """Shutdown has begun: what runs goes on, ``down`` comes with SHUTDOWN, in its turn."""
    shot.shutting_down = True
    shot.want = Want.DOWN
    return []


def up_down(shot: Oneshot, arg: object, now: float) -> list:
    shot.want = Want.DOWN
    return _take_down(shot)


def up_shutdown(shot: Oneshot, arg: object, now: float) -> list:
    _shutdown(shot, arg)
    return _take_down(shot)


def running_shutdown(shot: Oneshot, arg: object, now: float) -> list:
    """``up`` or ``down`` still running at shutdown: SIGKILL at the grace deadline at the latest."""
    _shutdown(shot, arg)
    if shot.grace is not None and (shot.deadline is None or shot.grace < shot.deadline):
        return [SetDeadline(shot.grace)]
    return []


def down_exited(shot: Oneshot, arg: object, now: float) -> list:
    assert isinstance(arg, int)
    shot.last_status = arg
    shot.pid = shot.pgid = None
    shot.state = OneshotState.DOWN
    return [SetDeadline(None)]


def running_deadline(shot: Oneshot, arg: object, now: float) -> list:
    shot.timed_out = True
    return [KillGroup(), SetDeadline(None)]


# ---- the table: every (state, event) pair is written down --------------------------------------
S, E = OneshotState, Event
TABLE: dict[tuple[OneshotState, Event], Handler] = {
    (S.DOWN, E.CMD_UP): want_up,
    (S.DOWN, E.CMD_ONCE): want_up,
    (S.DOWN, E.CMD_DOWN): want_down_later,
    (S.DOWN, E.CMD_RESTART): ignore,
    (S.DOWN, E.DEPS_READY): ignore,
    (S.DOWN, E.SPAWNED): ignore,
    (S.DOWN, E.SPAWN_FAILED): ignore,
    (S.DOWN, E.READY): ignore,
    (S.DOWN, E.RUN_EXITED): ignore,
    (S.DOWN, E.FINISH_EXITED): ignore,
    (S.DOWN, E.DEADLINE): ignore,
    (S.DOWN, E.SHUTDOWN): shutdown_idle,
    (S.DOWN, E.RELEASE): ignore,
    (S.DOWN, E.HOLD): shutdown_idle,
    (S.DOWN, E.CHECK_EXITED): ignore,  # a oneshot has no check

    (S.WAITING, E.CMD_UP): ignore,
    (S.WAITING, E.CMD_ONCE): ignore,
    (S.WAITING, E.CMD_DOWN): give_up_waiting,
    (S.WAITING, E.CMD_RESTART): ignore,
    (S.WAITING, E.DEPS_READY): deps_ready,
    (S.WAITING, E.SPAWNED): ignore,
    (S.WAITING, E.SPAWN_FAILED): ignore,
    (S.WAITING, E.READY): ignore,
    (S.WAITING, E.RUN_EXITED): ignore,
    (S.WAITING, E.FINISH_EXITED): ignore,
    (S.WAITING, E.DEADLINE): ignore,
    (S.WAITING, E.SHUTDOWN): shutdown_idle,
    (S.WAITING, E.RELEASE): ignore,
    (S.WAITING, E.HOLD): shutdown_idle,
    (S.WAITING, E.CHECK_EXITED): ignore,

    (S.STARTING, E.CMD_UP): want_up_later,
    (S.STARTING, E.CMD_ONCE): want_up_later,
    (S.STARTING, E.CMD_DOWN): want_down_later,
    (S.STARTING, E.CMD_RESTART): ignore,
    (S.STARTING, E.DEPS_READY): ignore,
    (S.STARTING, E.SPAWNED): spawned,
    (S.STARTING, E.SPAWN_FAILED): spawn_failed,
    (S.STARTING, E.READY): ignore,
    (S.STARTING, E.RUN_EXITED): up_exited,
    (S.STARTING, E.FINISH_EXITED): ignore,
    (S.STARTING, E.DEADLINE): running_deadline,
    (S.STARTING, E.SHUTDOWN): running_shutdown,
    (S.STARTING, E.RELEASE): ignore,
    (S.STARTING, E.HOLD): hold,
    (S.STARTING, E.CHECK_EXITED): ignore,

    (S.UP, E.CMD_UP): ignore,
    (S.UP, E.CMD_ONCE): ignore,
    (S.UP, E.CMD_DOWN): up_down,
    (S.UP, E.CMD_RESTART): ignore,
    (S.UP, E.DEPS_READY): ignore,
    (S.UP, E.SPAWNED): ignore,
    (S.UP, E.SPAWN_FAILED): ignore,
    (S.UP, E.READY): ignore,
    (S.UP, E.RUN_EXITED): ignore,
    (S.UP, E.FINISH_EXITED): ignore,
    (S.UP, E.DEADLINE): ignore,
    (S.UP, E.SHUTDOWN): up_shutdown,
    (S.UP, E.RELEASE): ignore,
    (S.UP, E.HOLD): hold,
    (S.UP, E.CHECK_EXITED): ignore,

    (S.STOPPING, E.CMD_UP): want_up_later,
    (S.STOPPING, E.CMD_ONCE): want_up_later,
    (S.STOPPING, E.CMD_DOWN): ignore,
    (S.STOPPING, E.CMD_RESTART): ignore,
    (S.STOPPING, E.DEPS_READY): ignore,
    (S.STOPPING, E.SPAWNED): spawned,
    (S.STOPPING, E.SPAWN_FAILED): spawn_failed,
    (S.STOPPING, E.READY): ignore,
    (S.STOPPING, E.RUN_EXITED): down_exited,
    (S.STOPPING, E.FINISH_EXITED): ignore,
    (S.STOPPING, E.DEADLINE): running_deadline,
    (S.STOPPING, E.SHUTDOWN): running_shutdown,
    (S.STOPPING, E.RELEASE): ignore,
    (S.STOPPING, E.HOLD): hold,
    (S.STOPPING, E.CHECK_EXITED): ignore,

    (S.FAILED, E.CMD_UP): want_up,        # `svc -u` tries `up` again
    (S.FAILED, E.CMD_ONCE): want_up,
    (S.FAILED, E.CMD_DOWN): give_up_waiting,
    (S.FAILED, E.CMD_RESTART): ignore,
    (S.FAILED, E.DEPS_READY): ignore,
    (S.FAILED, E.SPAWNED): ignore,
    (S.FAILED, E.SPAWN_FAILED): ignore,
    (S.FAILED, E.READY): ignore,
    (S.FAILED, E.RUN_EXITED): ignore,
    (S.FAILED, E.FINISH_EXITED): ignore,
    (S.FAILED, E.DEADLINE): ignore,
    (S.FAILED, E.SHUTDOWN): shutdown_idle,
    (S.FAILED, E.RELEASE): ignore,
    (S.FAILED, E.HOLD): shutdown_idle,
    (S.FAILED, E.CHECK_EXITED): ignore,
}


def step(shot: Oneshot, event: Event, arg: object, now: float) -> list:
    """Apply one event; returns the effects to perform, in order. The record's ``deadline``
    follows the last SetDeadline, as in ``service.step``."""
    effects = TABLE[(shot.state, event)](shot, arg, now)
    for effect in effects:
        if isinstance(effect, SetDeadline):
            shot.deadline = effect.when
    return effects
