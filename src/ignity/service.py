"""The lifecycle of one service as an explicit machine, and its one record: no OS calls here.

Wanted state (``want``: up, down, once) is kept apart from the process state, as in s6. Every
(state, event) pair has an entry in ``TABLE``; a pair with nothing to do maps to ``ignore``
(no effect, the record unchanged). Handlers change the ``Service`` record and return effects as
data; the supervisor performs them (spawn, signal, timer) and feeds the outcome back as events,
queued until the current effect list is done (a handler never runs inside another's effects).

| state     | meaning                                                             | status     |
|-----------|---------------------------------------------------------------------|------------|
| DOWN      | no process: not wanted, done for good, or a spawn about to happen   | down       |
| BACKOFF   | wanted up, waiting out the 1 s restart throttle or a failed start   | down/failed|
| UP        | ``run`` alive; ``ready``: notification fd, check, or ready-after     | up         |
| STOPPING  | down signal + SIGCONT sent, ``run`` still alive                     | up         |
| FINISHING | ``run`` reaped, ``finish`` running (killed after ``timeout-finish``)  | finishing  |
| DRAINING  | shutdown, a logger whose input is closed: LOGGER_EOF_GRACE_S to read | up         |
|           | to end-of-file and exit, then its down signal (-> STOPPING)         |            |
| WAITING   | wanted up, a dependency is not ready (``waiting_on`` names them)    | down       |

Events: CMD_UP/DOWN/ONCE/RESTART (control), SPAWNED(pid) / SPAWN_FAILED(message) (outcome of
StartRun: one of the two always follows), READY, RUN_EXITED(status), FINISH_EXITED(status)
(also when ``finish`` cannot start), CHECK_EXITED((pid, status): a try of ``check``), DEADLINE
(the record's one timer), SHUTDOWN(kill deadline),
RELEASE(kill deadline: a logger's service is down at shutdown), DEPS_READY (every dependency is
ready now), HOLD (shutdown has begun: a service waiting for its dependants to stop first is never
started again; its SHUTDOWN comes once they are down). One deadline per record; what it
means depends on the state: the restart backoff (BACKOFF), SIGKILL (STOPPING), the end of
``finish`` (FINISHING), the end of a logger's input grace (DRAINING); in UP the next try of
``check``, the end of a try that overran, or ``ready-after`` (none once ready without liveness,
so an idle service has no timer).

Crash-loop policy: ``failures`` holds when ``run`` failed within ``restart-window``; ``delay``
doubles at each backoff up to ``restart-max-delay`` and goes back to 1 s once ``run`` stays up
that long; over ``restart-limit`` the service is given up (DOWN, want down, ``gave_up``: status
``failed``).

Dependencies: the supervisor sets ``waiting_on`` (the dependencies that are not ready, see
``ready_for_dependants``) before every event; wherever the machine would start ``run`` it goes
to WAITING instead while that list is not empty, and the supervisor feeds DEPS_READY once it is.

Invariant, after every event with its effects performed (``supervised``; a property test drives
random event sequences through the table): a service wanted up and not shutting down has a
process, a deadline that will start one, or dependencies it waits on.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Callable

from .record import Record
from .servicedir import ServiceSpec

TYPE_CHECKING = False  # without importing typing (~7 ms at start-up)
if TYPE_CHECKING:
    from .logpump import Pump
    from .loop import Timer

RESTART_THROTTLE_S = 1.0  # SPEC §7: at most one start of `run` per second; the first backoff step
# a service restarted because its check failed (not ready in time, liveness) gets SIGKILL this long
# after its down signal when it has no timeout-kill: a hung service is the one that ignores it
CHECK_RESTART_KILL_S = 5.0
FINISH_DO_NOT_RESTART = 125  # SPEC §7: finish exiting 125 means "do not restart"
# at shutdown, once a service is down, how long its logger may take to drain the pipe and exit on
# end-of-file before it gets its down signal
LOGGER_EOF_GRACE_S = 0.5
# a process stopped after the shutdown's grace deadline (a logger) still gets this long before SIGKILL
LATE_KILL_S = 0.5


class State(enum.Enum):
    DOWN = "down"
    BACKOFF = "backoff"
    UP = "up"
    STOPPING = "stopping"
    FINISHING = "finishing"
    DRAINING = "draining"
    WAITING = "waiting"


class Want(enum.Enum):
    UP = "up"
    DOWN = "down"
    ONCE = "once"


class Event(enum.Enum):
    CMD_UP = "up"
    CMD_DOWN = "down"
    CMD_ONCE = "once"
    CMD_RESTART = "restart"
    SPAWNED = "spawned"            # arg: pid
    SPAWN_FAILED = "spawn-failed"  # arg: message
    READY = "ready"
    RUN_EXITED = "run-exited"      # arg: wait status
    FINISH_EXITED = "finish-exited"  # arg: wait status
    DEADLINE = "deadline"
    SHUTDOWN = "shutdown"          # arg: absolute deadline for SIGKILL
    RELEASE = "release"            # arg: kill deadline; a logger whose input is closed at shutdown
    DEPS_READY = "deps-ready"      # every dependency is ready now
    HOLD = "hold"                  # shutdown has begun: never start again; SHUTDOWN comes in its turn
    CHECK_EXITED = "check-exited"  # arg: (pid, wait status) of a try of `check` (pid None: could not start)


# ---- effects: what the supervisor is asked to do ------------------------------------------------
class _Effect(Record):
    """An effect: a value object (equal when of the same kind with the same fields)."""


class StartRun(_Effect):
    """Spawn `run`."""


class StartFinish(_Effect):
    """Spawn `finish` with the last exit of `run`."""


class SignalRun(_Effect):
    """``signum`` to the ``run`` process, then SIGCONT to its group (it may be stopped)."""

    __slots__ = ("signum",)

    def __init__(self, signum: int):
        self._set(signum=signum)


class KillGroup(_Effect):
    """SIGKILL to the process group of ``run`` or of ``finish``."""

    __slots__ = ("finish",)

    def __init__(self, finish: bool = False):
        self._set(finish=finish)


class StartCheck(_Effect):
    """Spawn one try of ``check``; CHECK_EXITED always follows (at once if it cannot start)."""


class KillCheck(_Effect):
    """SIGKILL to the process group of the try of ``check`` ``pid``."""

    __slots__ = ("pid",)

    def __init__(self, pid: int):
        self._set(pid=pid)


class Report(_Effect):
    """Say one line about the service (why it is restarted, that it recovered)."""

    __slots__ = ("text",)

    def __init__(self, text: str):
        self._set(text=text)


class GiveUp(_Effect):
    """The service failed more than ``restart-limit`` times in ``restart-window``: it stays down
    (state failed); with ``halt-on-failure`` the container halts with its last status."""


class SetDeadline(_Effect):
    """Arm (or with None, cancel) the service's one timer."""

    __slots__ = ("when",)

    def __init__(self, when: float | None):
        self._set(when=when)


class LastExit:
    """``last_exit_code`` and ``last_signal`` (status JSON) from a record's ``last_status``: shared
    by services and oneshots."""

    __slots__ = ()
    last_status: int | None

    @property
    def last_exit_code(self) -> int | None:
        if self.last_status is None or os.WIFSIGNALED(self.last_status):
            return None
        return os.WEXITSTATUS(self.last_status)

    @property
    def last_signal(self) -> int | None:
        if self.last_status is None or not os.WIFSIGNALED(self.last_status):
            return None
        return os.WTERMSIG(self.last_status)


class Service(LastExit):
    """The one record of a service, or of a logger ("web/log"): everything ignity knows about it.

    Three kinds of fields, kept in this one place so that nothing about a service lives in a
    parallel table keyed by its name:

    - the machine's (``want``, ``state``, pids, ``deadline``, counters): changed only by the
      handlers below, through ``step``;
    - the links: ``logger`` (a service's logger record, or None) and ``main`` (a logger's service
      record; None for a service), set once when the records are made; ``needs`` (the records of
      its dependencies, its logger included) and ``needed_by`` (the reverse), set by the
      supervisor at boot and at each rescan; ``waiting_on``, the names of the ``needs`` that are
      not ready, refreshed by the supervisor before every event (the machine reads it);
    - the supervisor's resources, which handlers never read or write: ``timer`` (the loop timer
      armed for ``deadline``), ``ready_fd`` (read end of the notification pipe while ``run`` is
      up), ``log_read``/``log_write`` (the logger pipe, held by the service's record so that
      neither side's restart loses data; the logger reads ``main.log_read``), ``pump`` (the
      built-in logger reading ``log_read`` when ``log/`` has no ``run``, or the IGNITY_LOG_*
      settings ask for one), ``spec_ok`` (False while ``spec`` holds defaults standing in for knob
      files that could not be read: such a service is not started on them) and ``removed`` (gone
      from services-state/ at a rescan).
    """

    __slots__ = ("check_failures", "check_output", "check_pid", "check_read", "deadline", "delay", "error", "failed",
                 "failures", "finish_pid", "gave_up", "kill_deadline", "last_status", "log_read", "log_write",
                 "logger", "main", "needed_by", "needs", "pgid", "pid", "pump", "ready", "ready_fd", "removed",
                 "restarts", "shutdown_sent", "shutting_down", "spawns", "spec", "spec_ok", "started_at", "state",
                 "timer", "up_since", "waiting_on", "want")

    def __init__(self, spec: ServiceSpec, want: Want = Want.UP, main: Service | None = None):
        self.spec = spec
        self.want = want
        self.state = State.DOWN
        self.pid: int | None = None
        self.pgid: int | None = None
        self.finish_pid: int | None = None
        self.ready = False
        self.started_at = float("-inf")      # monotonic time of the last spawn of `run`
        self.up_since: float | None = None
        self.restarts = 0
        self.spawns = 0
        self.last_status: int | None = None
        self.failed = False
        self.error: str | None = None        # last reported problem, to report each once
        self.shutting_down = False
        self.deadline: float | None = None   # the one deadline; set by ``step`` from SetDeadline
        self.kill_deadline: float | None = None  # at shutdown: when what is still up gets SIGKILL
        # checks and the crash-loop policy (docs/health.md)
        self.check_pid: int | None = None    # the try of `check` running now
        self.check_failures = 0              # liveness tries failed in a row
        self.check_output = ""               # last line of the last failed try (the supervisor's)
        self.delay = RESTART_THROTTLE_S      # wait before the next start after a fast exit
        self.failures: list[float] = []      # when run failed, within restart-window
        self.gave_up = False
        self.main = main
        self.logger: Service | None = None
        if main is not None:
            main.logger = self
        self.needs: list = []                # records (Service or Oneshot) this one depends on
        self.needed_by: list = []
        self.waiting_on: list[str] = []
        self.timer: Timer | None = None
        self.ready_fd: int | None = None
        self.check_read: int | None = None  # read end of the running check's output pipe
        self.log_read: int | None = None
        self.log_write: int | None = None
        self.spec_ok = not spec.unread
        self.pump: Pump | None = None
        self.removed = False
        self.shutdown_sent = False           # at shutdown, its turn has come (SHUTDOWN or RELEASE fed)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def is_logger(self) -> bool:
        return self.main is not None

    @property
    def main_name(self) -> str:
        """The service a logger belongs to ("web" for "web/log"); a service's own name."""
        return self.main.name if self.main is not None else self.name

    def status_word(self) -> str:
        """SPEC §11.11 state: up | down | finishing | failed."""
        if self.state in (State.UP, State.STOPPING, State.DRAINING):
            return "up"
        if self.state is State.FINISHING:
            return "finishing"
        return "failed" if self.failed or self.gave_up else "down"

    def ready_for_dependants(self) -> bool:
        """The one readiness predicate for dependencies (and the CMD wait): ``run`` up, not being
        stopped, and ready (its notification-fd spoke, its check passed, or up for ready-after).
        A logger needs only to be running: its service's lines wait in the pipe ignity holds, and
        a service must not wait a logger's ready-after before it starts."""
        if self.main is not None:
            return self.state is State.UP
        return self.state is State.UP and self.ready

    def is_down(self) -> bool:
        """No process of its own and none coming before an event: what dependencies wait for
        at shutdown, and `ignity wait -D`."""
        return self.state in (State.DOWN, State.BACKOFF, State.WAITING)



def supervised(svc: Service) -> bool:
    """The invariant that holds after every event (its effects performed): a service wanted up
    (or once) and not shutting down has a process (``run`` or ``finish``) or a deadline that
    will start one. A start that cannot be prepared is a failed start, never a lost one."""
    if svc.want is Want.DOWN or svc.shutting_down:
        return True
    if svc.state is State.BACKOFF:
        return svc.deadline is not None
    if svc.state is State.WAITING:
        return bool(svc.waiting_on)
    return svc.state is not State.DOWN


Handler = Callable[[Service, object, float], list]


# ---- handlers ----------------------------------------------------------------------------------
def ignore(svc: Service, arg: object, now: float) -> list:
    return []


def _want(want: Want) -> Handler:
    def handler(svc: Service, arg: object, now: float) -> list:
        if not svc.shutting_down:
            svc.want = want
        return []
    return handler


def _start(svc: Service) -> list:
    """Start ``run`` now, or wait for the dependencies that are not ready yet."""
    if svc.waiting_on:
        svc.state = State.WAITING  # from DOWN: no deadline to cancel
        return []
    return [StartRun()]


def _want_and_start(want: Want) -> Handler:
    def handler(svc: Service, arg: object, now: float) -> list:
        if svc.shutting_down:
            return []
        svc.want = want
        svc.gave_up = False  # asked for again: a fresh start of the crash-loop policy
        svc.failures.clear()
        svc.delay = RESTART_THROTTLE_S
        return _start(svc)
    return handler


def deps_ready(svc: Service, arg: object, now: float) -> list:
    svc.state = State.DOWN
    return _start(svc)


def _down_from_backoff(svc: Service, arg: object, now: float) -> list:
    svc.want = Want.DOWN
    svc.state = State.DOWN
    return [SetDeadline(None)]


def _stop(svc: Service, deadline: float | None) -> list:
    svc.state = State.STOPPING
    return [SignalRun(svc.spec.down_signal), SetDeadline(deadline)]


def _kill_after(svc: Service, now: float) -> float | None:
    ms = svc.spec.timeout_kill_ms
    return now + ms / 1000 if ms else None


def _late_kill(svc: Service, now: float) -> float:
    """SIGKILL deadline for a process stopped during shutdown: the shutdown's, but never sooner
    than LATE_KILL_S from now (a logger stopped after its service still gets to flush)."""
    return max(svc.kill_deadline if svc.kill_deadline is not None else now, now + LATE_KILL_S)


def _earliest(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    return a if b is None else min(a, b)


def up_down(svc: Service, arg: object, now: float) -> list:
    svc.want = Want.DOWN
    return _stop(svc, _kill_after(svc, now))


def up_restart(svc: Service, arg: object, now: float) -> list:
    return _stop(svc, _kill_after(svc, now))


def up_ready(svc: Service, arg: object, now: float) -> list:
    svc.ready = True
    if svc.state is State.UP and svc.check_pid is None:
        return [SetDeadline(_next_liveness(svc, now))]
    return []


# ---- check: readiness and liveness (docs/health.md) -----------------------------------------------
def _next_liveness(svc: Service, now: float) -> float | None:
    ms = svc.spec.health_interval_ms if svc.spec.has_check else 0
    return now + ms / 1000 if ms else None


def _restart_failing(svc: Service, now: float, why: str) -> list:
    """Stop a service whose check failed (want stays up: restarted by the policy), counted as a
    failure of the crash-loop policy."""
    _count_failure(svc, now)
    ms = svc.spec.timeout_kill_ms
    kill_at = now + (ms / 1000 if ms else CHECK_RESTART_KILL_S)
    return [Report(f"service {svc.name}: {why}: restarting"), *_stop(svc, kill_at)]


def up_deadline(svc: Service, arg: object, now: float) -> list:
    """UP's deadline: a try of ``check`` that overran (kill it: its exit is a failed try), the
    next try, or (no check, no notification-fd) ``ready-after`` elapsed."""
    spec = svc.spec
    if svc.check_pid is not None:
        return [KillCheck(svc.check_pid), SetDeadline(None)]
    if spec.has_check:
        return [StartCheck(), SetDeadline(now + spec.check_try_timeout_ms / 1000)]
    svc.ready = True
    return [SetDeadline(None)]


def _check_words(svc: Service) -> str:
    return f" ({svc.check_output})" if svc.check_output else ""


def up_check_exited(svc: Service, arg: object, now: float) -> list:
    """A try of ``check`` ended: ready (exit 0), not yet, not in time (a failed start), or a
    liveness result."""
    assert isinstance(arg, tuple)
    pid, status = arg
    if pid != svc.check_pid:
        return []  # a try of an earlier run, killed when that run exited
    svc.check_pid = None
    spec = svc.spec
    passed = status == 0
    if not svc.ready:
        if passed:
            svc.ready = True
            svc.check_output = ""
            return [SetDeadline(_next_liveness(svc, now))]
        if spec.check_timeout_ms and now >= svc.started_at + spec.check_timeout_ms / 1000:
            return _restart_failing(svc, now, f"not ready after {spec.check_timeout_ms} ms{_check_words(svc)}")
        return [SetDeadline(now + spec.check_interval_ms / 1000)]
    if passed:
        effects: list = [SetDeadline(_next_liveness(svc, now))]
        if svc.check_failures:
            effects.insert(0, Report(f"service {svc.name}: check passes again after {svc.check_failures} failures"))
        svc.check_failures = 0
        svc.check_output = ""
        return effects
    if not spec.health_interval_ms:
        return [SetDeadline(None)]  # ready by notification-fd, no liveness asked: nothing more runs
    svc.check_failures += 1
    if svc.check_failures >= spec.health_retries:
        return _restart_failing(svc, now, f"check failed {svc.check_failures} times in a row{_check_words(svc)}")
    return [SetDeadline(_next_liveness(svc, now))]


def check_gone(svc: Service, arg: object, now: float) -> list:
    """A try of ``check`` ended after its run did (the run's exit killed it)."""
    assert isinstance(arg, tuple)
    if arg[0] is not None and arg[0] == svc.check_pid:
        svc.check_pid = None
    return []


# ---- the crash-loop policy (docs/health.md) --------------------------------------------------------
def _count_failure(svc: Service, now: float) -> None:
    window = svc.spec.restart_window_ms / 1000
    svc.failures = [t for t in svc.failures if t > now - window] + [now]


def _over_limit(svc: Service) -> bool:
    limit = svc.spec.restart_limit
    return bool(limit) and len(svc.failures) > limit


def _give_up(svc: Service) -> list:
    svc.gave_up = True
    svc.want = Want.DOWN
    svc.state = State.DOWN
    return [SetDeadline(None), GiveUp()]


def _grow_delay(svc: Service) -> None:
    """A backoff was needed: the next one is twice as long, up to restart-max-delay."""
    svc.delay = min(svc.delay * 2, max(svc.spec.restart_max_delay_ms / 1000, RESTART_THROTTLE_S))


def spawned(svc: Service, arg: object, now: float) -> list:
    assert isinstance(arg, int)
    svc.state = State.UP
    svc.pid = svc.pgid = arg
    svc.restarts += 1 if svc.spawns else 0
    svc.spawns += 1
    svc.started_at = svc.up_since = now
    svc.failed = False
    svc.error = None
    svc.check_failures = 0
    svc.check_output = ""
    spec = svc.spec
    if svc.shutting_down:  # shutdown began while the start was under way: stop it at once
        return _stop(svc, _late_kill(svc, now))
    # ready: by notification-fd, by check, or once up for ready-after ms (a crash loop never is)
    svc.ready = False
    if spec.has_check:
        return [SetDeadline(now + spec.check_interval_ms / 1000)]
    if spec.notification_fd is None:
        if not spec.ready_after_ms:
            svc.ready = True
            return [SetDeadline(None)]
        return [SetDeadline(now + spec.ready_after_ms / 1000)]
    return [SetDeadline(None)]


def spawn_failed(svc: Service, arg: object, now: float) -> list:
    svc.failed = True
    svc.started_at = now
    if svc.want is Want.DOWN or svc.shutting_down:
        svc.state = State.DOWN
        return [SetDeadline(None)]
    _count_failure(svc, now)
    if _over_limit(svc):
        return _give_up(svc)
    svc.state = State.BACKOFF
    delay = svc.delay
    _grow_delay(svc)
    return [SetDeadline(now + delay)]


def run_exited(svc: Service, arg: object, now: float) -> list:
    assert isinstance(arg, int)
    stopping = svc.state is State.STOPPING
    if svc.state is State.UP and svc.want is not Want.DOWN and not svc.shutting_down:
        _count_failure(svc, now)  # exited on its own: a failure for restart-limit
    # stayed up long enough: the backoff starts again from 1 s (s6: restart at once)
    if now - svc.started_at >= max(svc.spec.restart_max_delay_ms / 1000, RESTART_THROTTLE_S):
        svc.delay = RESTART_THROTTLE_S
    svc.last_status = arg
    svc.pid = None
    svc.ready = False
    svc.up_since = None
    effects: list = []
    if svc.check_pid is not None:  # a try of check outlives no run
        effects.append(KillCheck(svc.check_pid))
        svc.check_pid = None
    if svc.spec.has_finish:
        svc.state = State.FINISHING
        ms = svc.spec.timeout_finish_ms
        deadline = now + ms / 1000 if ms else None
        if svc.shutting_down and stopping:  # finish too must end by the shutdown's deadline
            deadline = _earliest(deadline, svc.deadline)
        return [*effects, StartFinish(), SetDeadline(deadline)]
    return effects + settle(svc, now)


def finish_exited(svc: Service, arg: object, now: float) -> list:
    assert isinstance(arg, int)
    svc.finish_pid = None
    if os.WIFEXITED(arg) and os.WEXITSTATUS(arg) == FINISH_DO_NOT_RESTART:
        svc.want = Want.DOWN
    return settle(svc, now)


def settle(svc: Service, now: float) -> list:
    """``run`` and ``finish`` are gone: start again, wait out the throttle, or stay down.
    SPEC §11.5: never restarted before its finish has ended."""
    svc.pgid = None
    if svc.want is Want.UP and not svc.shutting_down:
        if _over_limit(svc):
            return _give_up(svc)
        next_start = svc.started_at + svc.delay
        if now >= next_start:
            svc.state = State.DOWN
            return [SetDeadline(None), *_start(svc)]
        if svc.failures and svc.failures[-1] >= svc.started_at:  # not `svc -r`: that is no failure
            _grow_delay(svc)
        svc.state = State.BACKOFF
        return [SetDeadline(next_start)]
    if svc.want is Want.ONCE:
        svc.want = Want.DOWN
    svc.state = State.DOWN
    return [SetDeadline(None)]


def backoff_deadline(svc: Service, arg: object, now: float) -> list:
    svc.state = State.DOWN
    return [SetDeadline(None), *_start(svc)]


def stopping_deadline(svc: Service, arg: object, now: float) -> list:
    return [KillGroup(), SetDeadline(None)]


def finishing_deadline(svc: Service, arg: object, now: float) -> list:
    return [KillGroup(finish=True), SetDeadline(None)]


def _shutdown(svc: Service, arg: object) -> float | None:
    assert arg is None or isinstance(arg, float)
    svc.shutting_down = True
    svc.want = Want.DOWN
    svc.kill_deadline = arg
    return arg


def hold(svc: Service, arg: object, now: float) -> list:
    """Shutdown has begun: a process keeps running until its SHUTDOWN (after its dependants),
    but nothing is started again."""
    _shutdown(svc, None)
    return []


def down_shutdown(svc: Service, arg: object, now: float) -> list:
    _shutdown(svc, arg)
    svc.state = State.DOWN
    return [SetDeadline(None)]


def up_shutdown(svc: Service, arg: object, now: float) -> list:
    return _stop(svc, _shutdown(svc, arg))


def stopping_shutdown(svc: Service, arg: object, now: float) -> list:
    return [SetDeadline(_earliest(svc.deadline, _shutdown(svc, arg)))]


def release(svc: Service, arg: object, now: float) -> list:
    """The input of a logger is closed at shutdown (its service is down): not restarted again."""
    _shutdown(svc, arg)
    if svc.state is State.BACKOFF:
        svc.state = State.DOWN
        return [SetDeadline(None)]
    return []


def up_release(svc: Service, arg: object, now: float) -> list:
    """A logger still reading: it gets LOGGER_EOF_GRACE_S to read to end-of-file and exit."""
    _shutdown(svc, arg)
    svc.state = State.DRAINING
    return [SetDeadline(now + LOGGER_EOF_GRACE_S)]


def stopping_release(svc: Service, arg: object, now: float) -> list:
    _shutdown(svc, arg)
    return [SetDeadline(_earliest(svc.deadline, _late_kill(svc, now)))]


def drain_deadline(svc: Service, arg: object, now: float) -> list:
    """Still running past its end-of-input grace: its down signal, SIGKILL at the shutdown's
    deadline (at least LATE_KILL_S from now)."""
    return _stop(svc, _late_kill(svc, now))


# ---- the table: every (state, event) pair is written down --------------------------------------
S, E = State, Event
TABLE: dict[tuple[State, Event], Handler] = {
    (S.DOWN, E.CMD_UP): _want_and_start(Want.UP),
    (S.DOWN, E.CMD_ONCE): _want_and_start(Want.ONCE),
    (S.DOWN, E.CMD_DOWN): _want(Want.DOWN),
    (S.DOWN, E.CMD_RESTART): ignore,       # s6: -r does nothing to a service that is down
    (S.DOWN, E.SPAWNED): spawned,
    (S.DOWN, E.SPAWN_FAILED): spawn_failed,
    (S.DOWN, E.READY): ignore,
    (S.DOWN, E.RUN_EXITED): ignore,
    (S.DOWN, E.FINISH_EXITED): ignore,
    (S.DOWN, E.DEADLINE): ignore,
    (S.DOWN, E.SHUTDOWN): down_shutdown,
    (S.DOWN, E.RELEASE): release,
    (S.DOWN, E.DEPS_READY): ignore,      # only a service that waits cares
    (S.DOWN, E.HOLD): down_shutdown,
    (S.DOWN, E.CHECK_EXITED): check_gone,

    (S.BACKOFF, E.CMD_UP): _want(Want.UP),
    (S.BACKOFF, E.CMD_ONCE): _want(Want.ONCE),
    (S.BACKOFF, E.CMD_DOWN): _down_from_backoff,
    (S.BACKOFF, E.CMD_RESTART): ignore,
    (S.BACKOFF, E.SPAWNED): spawned,
    (S.BACKOFF, E.SPAWN_FAILED): spawn_failed,
    (S.BACKOFF, E.READY): ignore,
    (S.BACKOFF, E.RUN_EXITED): ignore,
    (S.BACKOFF, E.FINISH_EXITED): ignore,
    (S.BACKOFF, E.DEADLINE): backoff_deadline,
    (S.BACKOFF, E.SHUTDOWN): down_shutdown,
    (S.BACKOFF, E.RELEASE): release,
    (S.BACKOFF, E.DEPS_READY): ignore,
    (S.BACKOFF, E.HOLD): down_shutdown,
    (S.BACKOFF, E.CHECK_EXITED): check_gone,

    (S.UP, E.CMD_UP): _want(Want.UP),
    (S.UP, E.CMD_ONCE): _want(Want.ONCE),
    (S.UP, E.CMD_DOWN): up_down,
    (S.UP, E.CMD_RESTART): up_restart,
    (S.UP, E.SPAWNED): ignore,
    (S.UP, E.SPAWN_FAILED): ignore,
    (S.UP, E.READY): up_ready,
    (S.UP, E.RUN_EXITED): run_exited,
    (S.UP, E.FINISH_EXITED): ignore,
    (S.UP, E.DEADLINE): up_deadline,
    (S.UP, E.SHUTDOWN): up_shutdown,
    (S.UP, E.RELEASE): up_release,
    (S.UP, E.DEPS_READY): ignore,
    (S.UP, E.HOLD): hold,
    (S.UP, E.CHECK_EXITED): up_check_exited,

    (S.STOPPING, E.CMD_UP): _want(Want.UP),
    (S.STOPPING, E.CMD_ONCE): _want(Want.ONCE),
    (S.STOPPING, E.CMD_DOWN): _want(Want.DOWN),
    (S.STOPPING, E.CMD_RESTART): ignore,
    (S.STOPPING, E.SPAWNED): ignore,
    (S.STOPPING, E.SPAWN_FAILED): ignore,
    (S.STOPPING, E.READY): up_ready,
    (S.STOPPING, E.RUN_EXITED): run_exited,
    (S.STOPPING, E.FINISH_EXITED): ignore,
    (S.STOPPING, E.DEADLINE): stopping_deadline,
    (S.STOPPING, E.SHUTDOWN): stopping_shutdown,
    (S.STOPPING, E.RELEASE): stopping_release,
    (S.STOPPING, E.DEPS_READY): ignore,
    (S.STOPPING, E.HOLD): hold,
    (S.STOPPING, E.CHECK_EXITED): check_gone,

    (S.FINISHING, E.CMD_UP): _want(Want.UP),
    (S.FINISHING, E.CMD_ONCE): _want(Want.ONCE),
    (S.FINISHING, E.CMD_DOWN): _want(Want.DOWN),
    (S.FINISHING, E.CMD_RESTART): ignore,
    (S.FINISHING, E.SPAWNED): ignore,
    (S.FINISHING, E.SPAWN_FAILED): ignore,
    (S.FINISHING, E.READY): ignore,
    (S.FINISHING, E.RUN_EXITED): ignore,
    (S.FINISHING, E.FINISH_EXITED): finish_exited,
    (S.FINISHING, E.DEADLINE): finishing_deadline,
    (S.FINISHING, E.SHUTDOWN): stopping_shutdown,
    (S.FINISHING, E.RELEASE): stopping_release,
    (S.FINISHING, E.DEPS_READY): ignore,
    (S.FINISHING, E.HOLD): hold,
    (S.FINISHING, E.CHECK_EXITED): check_gone,

    (S.DRAINING, E.CMD_UP): _want(Want.UP),      # shutting down: want stays down
    (S.DRAINING, E.CMD_ONCE): _want(Want.ONCE),
    (S.DRAINING, E.CMD_DOWN): drain_deadline,    # stop now rather than at the end of the grace
    (S.DRAINING, E.CMD_RESTART): ignore,
    (S.DRAINING, E.SPAWNED): ignore,
    (S.DRAINING, E.SPAWN_FAILED): ignore,
    (S.DRAINING, E.READY): up_ready,
    (S.DRAINING, E.RUN_EXITED): run_exited,      # it read to end-of-file and exited: the usual end
    (S.DRAINING, E.FINISH_EXITED): ignore,
    (S.DRAINING, E.DEADLINE): drain_deadline,
    (S.DRAINING, E.SHUTDOWN): up_shutdown,
    (S.DRAINING, E.RELEASE): ignore,
    (S.DRAINING, E.DEPS_READY): ignore,
    (S.DRAINING, E.HOLD): hold,
    (S.DRAINING, E.CHECK_EXITED): check_gone,

    (S.WAITING, E.CMD_UP): _want(Want.UP),
    (S.WAITING, E.CMD_ONCE): _want(Want.ONCE),
    (S.WAITING, E.CMD_DOWN): _down_from_backoff,
    (S.WAITING, E.CMD_RESTART): ignore,
    (S.WAITING, E.SPAWNED): ignore,
    (S.WAITING, E.SPAWN_FAILED): ignore,
    (S.WAITING, E.READY): ignore,
    (S.WAITING, E.RUN_EXITED): ignore,
    (S.WAITING, E.FINISH_EXITED): ignore,
    (S.WAITING, E.DEADLINE): ignore,
    (S.WAITING, E.SHUTDOWN): down_shutdown,
    (S.WAITING, E.RELEASE): down_shutdown,
    (S.WAITING, E.DEPS_READY): deps_ready,
    (S.WAITING, E.HOLD): down_shutdown,
    (S.WAITING, E.CHECK_EXITED): check_gone,
}

# the cells that send the down signal: the supervisor reads the stop knobs (``down-signal``,
# ``timeout-kill``) fresh before it steps one of them, as s6 does at each stop
STOP_CELLS = frozenset(cell for cell, handler in TABLE.items()
                       if handler in (up_down, up_restart, up_shutdown, drain_deadline))


def step(svc: Service, event: Event, arg: object, now: float) -> list:
    """Apply one event; returns the effects to perform, in order. The record's ``deadline``
    follows the last SetDeadline: the supervisor only arms the matching timer."""
    effects = TABLE[(svc.state, event)](svc, arg, now)
    for effect in effects:
        if isinstance(effect, SetDeadline):
            svc.deadline = effect.when
    return effects
