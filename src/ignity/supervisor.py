"""Owns every service record: feeds them events, performs the effects their machine returns, and
holds what outlives a process (logger pipes, readiness fds, timers) in each service's own record.

All in the one ignity process, event-driven: a service costs a record, a few fds and, while a
deadline is pending, one timer. Nothing is polled; an idle supervisor makes no system calls.
One service's problem never leaves this module: it is reported, backed off and retried; every
OSError met while starting a process is a failed start (reported, retried at the restart pace).

Events are queued: an event raised while effects are performed (a spawn that fails or succeeds,
a finish that cannot start, a logger released because its service went down) is handled after
the current effect list, so effects always apply in the order the machine returned them.

Dependencies (``dependencies.d/``, and each service on its own logger) link the records: before
every event a record learns which of its dependencies are not ready (``waiting_on``), and when
a record changes, the ones that wait on it are told. At shutdown a record is stopped only once
every record that depends on it is down. Oneshots (``oneshot.Oneshot``) are records too, with
their own machine; both kinds are fed ``service.Event``s.
"""

from __future__ import annotations

import collections
import errno
import os
import signal
import time
from collections.abc import Callable, Mapping

from . import dependencies, envdir, execline, health, log, logconf, oneshot, servicedir, spawn
from .errors import EXIT_INTERNAL, ConfigError, IgnityError, SpawnError, describe, exit_code, signal_name
from .logconf import LogConfig
from .logpump import Pump, Stdout
from .loop import Loop, Timer
from .oneshot import Oneshot, OneshotState, StartDown, StartUp
from .service import (
    LATE_KILL_S,
    STOP_CELLS,
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
    step,
)
from .settings import Settings

READY_READ_MAX = 512
# what is kept of a check's output: its tail, of which the last line is said
CHECK_OUTPUT_MAX = 512
WAITING = (State.WAITING, OneshotState.WAITING)

Env = Callable[[], dict]
TYPE_CHECKING = False  # without importing typing (~7 ms at start-up)
if TYPE_CHECKING:
    from typing import Union

    Record = Union[Service, Oneshot]  # a name for annotations, which are never evaluated


class Supervisor:
    def __init__(self, loop: Loop, settings: Settings, env: Env, on_halt: Callable[[int | None], None],
                 on_boot_failed: Callable[[int], None] | None = None):
        self.loop = loop
        self.settings = settings
        self._env_source = env
        self._env_batch: dict | None = None
        self.on_halt = on_halt
        self.on_boot_failed = on_boot_failed         # a oneshot started at boot failed: its status
        self.services: dict[str, Record] = {}        # services, oneshots, and loggers ("web/log")
        self._queue: collections.deque[tuple[Record, Event, object]] = collections.deque()
        self._feeding = False
        self.listeners: list[Callable[[], None]] = []   # told of every state change (ignity wait)
        self.shutting_down = False
        self._grace_deadline: float | None = None
        self._stdout: Stdout | None = None  # the container's stdout for built-in logs, opened at first use
        self._grace_timer: Timer | None = None
        self._graph: dict[str, list[str]] = {}  # as of the last load or rescan, for _problems

    # ---- the table of services ------------------------------------------------------------------
    def load(self, *sources: str) -> None:
        """Copy the service directories of ``sources`` (``services/``, and with the s6-overlay
        layer its directories after it: a name already live keeps the first copy) to the live
        ``services-state/`` and add a record for each service. ConfigError (the boot stops with
        100) for what no start could fix: an unusable ``user`` or ``type``, an ``env`` that
        cannot be parsed, a missing dependency, a cycle."""
        origins: dict[str, str] = {}
        for source in sources:
            origins.update(servicedir.copy_tree(source, self.settings.state_dir))
        added = self._add_new(origins)
        problems = self._problems(added)
        if problems:
            raise ConfigError(next(iter(problems.values())))

    def _add_new(self, origins: dict[str, str] | None = None) -> list[Record]:
        """A record for each live directory without one; ``origins`` (copy_tree's answer) says
        where the dependencies of a copied one are read."""
        origins = origins or {}
        added: list[Record] = []
        state_dir = self.settings.state_dir
        for name in servicedir.service_names(state_dir):
            if name in self.services:
                continue
            path = os.path.join(state_dir, name)
            spec = servicedir.read_spec(name, path, origin=origins.get(path))
            if spec.oneshot:
                self.services[name] = shot = Oneshot(spec)
                added.append(shot)
                continue
            svc = Service(spec, want=Want.DOWN if spec.down else Want.UP)
            self.services[name] = svc
            added.append(svc)
            if spec.has_log and not logconf.is_builtin(spec.log_dir):
                logger_spec = servicedir.read_spec(f"{name}/log", spec.log_dir, origin=origins.get(spec.log_dir))
                logger = Service(logger_spec, want=Want.DOWN if logger_spec.down else Want.UP, main=svc)
                self.services[logger.name] = logger
                added.append(logger)
        self._graph = self._link()
        return added

    def graph(self) -> dict[str, list[str]]:
        """name -> the names it depends on (its logger included): ``status --json``'s graph."""
        graph = {}
        for name, rec in self.services.items():
            names = list(rec.spec.dependencies)
            if rec.logger is not None:
                names.append(rec.logger.name)
            if rec.main is not None:
                # a logger starts with its service, so it needs what its service needs (a oneshot
                # that makes its log directory, say); its own dependencies.d/ adds to that
                names += [n for n in rec.main.spec.dependencies if n not in names]
            graph[name] = names
        return graph

    def _link(self) -> dict[str, list[str]]:
        """Each record's ``needs`` and ``needed_by`` from the graph (at boot and each rescan);
        returns that graph, which ``_problems`` checks next (built once per load)."""
        for rec in self.services.values():
            rec.needed_by = []
        graph = self.graph()
        for name, names in graph.items():
            rec = self.services[name]
            rec.needs = [self.services[n] for n in names if n in self.services]
            for dep in rec.needs:
                dep.needed_by.append(rec)
        return graph

    def _problems(self, added: list[Record]) -> dict[str, str]:
        """What forbids starting each of the records just added (name -> one message): an
        unusable ``user``/``type``/``env``, a dependency that is not a service, being on a cycle."""
        problems = {rec.name: f"service {rec.name}: {rec.spec.problem}" for rec in added if rec.spec.problem}
        for rec in added:
            try:
                if rec.spec.has_env:
                    envdir.service_env({}, rec.spec.path)
            except ConfigError as e:
                problems.setdefault(rec.name, f"service {rec.name}: {e}")
        graph = self._graph
        for rec in added:
            problem = dependencies.missing(graph, rec.name)
            if problem:
                problems.setdefault(rec.name, problem)
        cycle = dependencies.find_cycle(graph)
        for name in cycle or ():
            problems.setdefault(name, dependencies.cycle_message(cycle))
        return problems

    def start_all(self) -> None:
        for rec in self.services.values():
            if isinstance(rec, Oneshot):
                rec.at_boot = True  # a failure of its first `up` stops the boot (unless `optional`)
        self._start(list(self.services.values()))

    def _start(self, services: list[Record]) -> None:
        self._env_batch = self._env_source()  # one read of the envdir for the whole batch
        try:
            # loggers first: their service's first lines find a reader at once
            for svc in sorted(services, key=lambda s: not s.is_logger):
                if svc.want is not Want.DOWN:
                    self.feed(svc, Event.CMD_UP)
        finally:
            self._env_batch = None
        log.info(f"{sum(1 for s in services if s.state is State.UP)} services started, "
                 f"{sum(1 for s in services if s.state in WAITING)} waiting on dependencies")

    def rescan(self) -> tuple[list[str], list[str]]:
        """Start services added to services-state/, stop the ones removed (SPEC §8)."""
        if self.shutting_down:
            return [], []
        added = self._add_new()
        # the rest runs on: what cannot start is reported and left down (its dependants wait on it)
        for name, problem in self._problems(added).items():
            log.warn(f"rescan: {problem}: not started")
            self.services[name].want = Want.DOWN
        state_dir = self.settings.state_dir
        removed = []
        for svc in list(self.services.values()):
            if not svc.removed and not os.path.isdir(os.path.join(state_dir, svc.main_name)):
                svc.removed = True
                removed.append(svc.name)
                self.feed(svc, Event.CMD_DOWN)
                self._forget_if_done(svc)
        self._start(added)
        return [s.name for s in added], removed

    def _forget_if_done(self, svc: Record) -> None:
        """A removed service is dropped once down; the logger pipe goes with the last of the pair."""
        if not (svc.removed and svc.is_down() and self.services.get(svc.name) is svc):
            return
        del self.services[svc.name]
        self._arm_timer(svc)
        main = svc.main or svc
        if main.logger is not None and all(self.services.get(s.name) is not s for s in (main, main.logger)):
            self._close_log_pipe(main)

    # ---- the machine ----------------------------------------------------------------------------
    def feed(self, svc: Record, event: Event, arg: object = None) -> None:
        """Hand an event to a service's machine. Raised while effects are being performed, it
        waits in the queue until the current effect list is done; the outermost call drains it."""
        self._queue.append((svc, event, arg))
        if self._feeding:
            return
        self._feeding = True
        try:
            while self._queue:
                self._step(*self._queue.popleft())
        finally:
            self._feeding = False  # a bug that raised leaves the rest queued for the next event

    def _step(self, svc: Record, event: Event, arg: object) -> None:
        svc.waiting_on = _not_ready(svc.needs)
        if (svc.state, event) in STOP_CELLS:
            self._read_stop_knobs(svc)
        before = (svc.state, svc.ready)
        if isinstance(svc, Oneshot):
            effects = oneshot.step(svc, event, arg, time.monotonic())
        else:
            effects = step(svc, event, arg, time.monotonic())
        if not effects and before == (svc.state, svc.ready) and log.verbosity() >= log.DEBUG:
            log.debug(f"service {svc.name}: {event.value} in state {svc.state.value}: no change of state")
        for effect in effects:
            self._perform(svc, effect)
        if before != (svc.state, svc.ready):
            log.debug(f"service {svc.name}: {before[0].value} -> {svc.state.value} on {event.value}"
                      + (" (ready)" if svc.ready else ""))
            self._changed(svc)

    def _perform(self, svc: Record, effect: object) -> None:
        if isinstance(effect, SetDeadline):
            self._arm_timer(svc)
        elif isinstance(effect, StartRun):
            self._start_run(svc)
        elif isinstance(effect, (StartUp, StartDown)):
            self._start_oneshot(svc, "up" if isinstance(effect, StartUp) else "down")
        elif isinstance(effect, StartFinish):
            self._start_finish(svc)
        elif isinstance(effect, SignalRun):
            self._signal_run(svc, effect.signum)
        elif isinstance(effect, StartCheck):
            self._start_check(svc)
        elif isinstance(effect, KillCheck):
            spawn.kill(effect.pid, signal.SIGKILL, group=True)
        elif isinstance(effect, Report):
            log.warn(effect.text)
        elif isinstance(effect, GiveUp):
            self._give_up(svc)
        elif isinstance(effect, KillGroup):
            pgid = svc.finish_pid if effect.finish else svc.pgid
            if isinstance(svc, Oneshot):
                which = "up" if svc.state is OneshotState.STARTING else "down"
                log.warn(f"oneshot {svc.name}: {which} still running after its timeout, killing it (to give it "
                         f"longer, raise {self._conf_file(svc, 'timeout-' + which)})")
            elif effect.finish:
                log.warn(f"service {svc.name}: finish still running after {svc.spec.timeout_finish_ms} ms, "
                         f"killing it (to give it longer, raise {self._conf_file(svc, 'timeout-finish')})")
            else:
                log.warn(self._killed_message(svc))
            if pgid is not None:
                spawn.kill(pgid, signal.SIGKILL, group=True)
        else:  # pragma: no cover - the machine returns only the effects above
            raise TypeError(f"unknown effect {effect!r}")

    def _conf_file(self, svc: Record, file: str) -> str:
        """Where the user sets ``file`` of a service for good: under services/ of the configuration,
        or the live copy for a service that was added there."""
        conf = os.path.join(self.settings.conf("services"), svc.name)
        return os.path.join(conf if os.path.isdir(conf) else svc.spec.path, file)

    def _killed_message(self, svc: Service) -> str:
        sent = signal_name(svc.spec.down_signal)
        if svc.shutting_down:
            grace = f"IGNITY_SERVICES_GRACETIME ({self.settings.services_gracetime_ms} ms)"
        else:
            grace = f"{self._conf_file(svc, 'timeout-kill')} ({svc.spec.timeout_kill_ms} ms)"
        return (f"service {svc.name}: still up after {sent} and its grace time, sending SIGKILL (if it "
                f"stops on another signal, name it in {self._conf_file(svc, 'down-signal')}; to give it "
                f"longer, raise {grace})")

    def _arm_timer(self, svc: Record) -> None:
        """The record's one timer follows its deadline (cancelled for a record no longer held)."""
        if svc.timer is not None:
            svc.timer.cancel()
            svc.timer = None
        if svc.deadline is not None and self.services.get(svc.name) is svc:
            svc.timer = self.loop.call_at(svc.deadline, lambda: self.feed(svc, Event.DEADLINE))

    def _changed(self, svc: Record) -> None:
        if self.shutting_down and svc.is_down():
            if svc.pump is not None:
                self._release_logger(svc, self._grace_deadline)  # a built-in log: drained and closed now
            for dep in svc.needs:
                self._stop_if_free(dep)
        for dependant in svc.needed_by:
            if dependant.state in WAITING:  # the others look again at their next event
                dependant.waiting_on = _not_ready(dependant.needs)
                if not dependant.waiting_on:
                    self.feed(dependant, Event.DEPS_READY)
        if isinstance(svc, Oneshot) and svc.state is OneshotState.FAILED:
            self._oneshot_failed(svc)
        self._forget_if_done(svc)
        for listener in list(self.listeners):
            listener()

    # ---- effects --------------------------------------------------------------------------------
    def _env(self) -> dict:
        return self._env_batch if self._env_batch is not None else self._env_source()

    def _service_env(self, spec: servicedir.ServiceSpec) -> Mapping[str, str]:
        """The container's environment, then HOME/USER/LOGNAME of its ``user``, then its own
        ``env``; ConfigError for an unusable ``user`` or ``env`` (a failed start)."""
        if spec.problem:
            raise ConfigError(spec.problem)
        env: Mapping[str, str] = self._env()
        if spec.user_env:
            env = {**env, **spec.user_env}
        return envdir.service_env(env, spec.path) if spec.has_env else env

    def _report(self, svc: Service, message: str, warn: bool = True) -> None:
        """Say it once per change of what is wrong (a broken service must not flood the log)."""
        if svc.error != message:
            svc.error = message
            (log.warn if warn else log.info)(message)

    def _log_pipe(self, svc: Service) -> tuple[int | None, int | None]:
        """(read end, write end) of the pipe between a service and its logger (process or
        built-in), made at the first start of either; (None, None) without a logger."""
        main = svc.main or svc
        if main.logger is None and main.pump is None:
            return None, None
        if main.log_read is None and not self.shutting_down:
            main.log_read, main.log_write = os.pipe()  # close-on-exec; children get them by dup2
        return main.log_read, main.log_write

    def _start_run(self, svc: Service) -> None:
        """Spawn ``run``; its outcome, SPAWNED or SPAWN_FAILED, is always fed back."""
        ready_r = ready_w = None
        try:
            # knobs read fresh at each restart (s6); at boot they just were
            if (svc.spawns or svc.failed or not svc.spec_ok) and not self._read_spec(svc):
                return
            spec = svc.spec
            fds = {0: spawn.devnull()}
            self._builtin_log(svc)
            log_r, log_w = self._log_pipe(svc)
            if svc.is_logger and log_r is not None:
                fds[0] = log_r
            elif log_w is not None:
                fds[1] = log_w
                if svc.pump is not None and svc.pump.config.stderr:
                    fds[2] = log_w
            if spec.notification_fd is not None:
                ready_r, ready_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
                fds[spec.notification_fd] = ready_w
            env = self._service_env(spec)
            if not os.path.exists(spec.run):
                raise SpawnError(spec.run, errno.ENOENT)
            pid = spawn.spawn([spec.run, svc.name], env, fds=fds, cwd=spec.path,
                              new_session=True, user=spec.user)
        except (SpawnError, ConfigError, OSError) as e:
            for fd in (ready_r, ready_w):
                if fd is not None:
                    os.close(fd)
            self._failed_start(svc, self._start_error(e, svc.spec.run))
            return
        # the exit callback first: nothing that can fail may stand between a spawn and it
        self.loop.on_exit(pid, lambda status: self._on_run_exit(svc, status))
        self.feed(svc, Event.SPAWNED, pid)
        log.info(f"service {svc.name}: started, pid {pid}")
        if ready_w is not None:
            os.close(ready_w)
            self._watch_ready(svc, ready_r)

    @staticmethod
    def _start_error(e: Exception, program: str) -> str:
        """Why ``program`` (``run`` or ``finish`` in the live copy) could not start, naming the
        user's file: the live copy's programs are symlinks to the originals (servicedir)."""
        if not isinstance(e, SpawnError):
            return f"unable to start: {e.strerror or e}" if isinstance(e, OSError) else str(e)
        if e.path != program or not os.path.islink(program):
            return str(e)
        try:
            original = os.readlink(program)
        except OSError:
            return str(e)
        return str(SpawnError(original, e.errno))

    def _failed_start(self, svc: Service, reason: str) -> None:
        self._report(svc, f"service {svc.name}: {reason} (retrying in 1 s)")
        self.feed(svc, Event.SPAWN_FAILED, reason)

    def _read_spec(self, svc: Service) -> bool:
        """Read the knob files for a start. A file that exists but cannot be read keeps the value
        last read; with none read yet, the start fails (retried): a service is never started on
        defaults it did not ask for (no notification fd, SIGTERM instead of its down signal)."""
        last = svc.spec if svc.spec_ok else None
        svc.spec = spec = servicedir.read_spec(svc.name, svc.spec.path, last, dependencies=svc.spec.dependencies)
        svc.spec_ok = last is not None or not spec.unread
        if not spec.unread:
            return True
        unread = "; ".join(spec.unread)
        if not svc.spec_ok:
            self._failed_start(svc, f"unable to read {unread}: not started on defaults it did not ask for")
            return False
        log.warn(f"service {svc.name}: unable to read {unread}: keeping the values last read")
        return True

    def _read_stop_knobs(self, svc: Service) -> None:
        """Before a stop: ``down-signal`` and ``timeout-kill`` as they are now (s6 reads the down
        signal when it stops a service); an unreadable one keeps the value last read."""
        svc.spec = spec = servicedir.read_stop_knobs(svc.spec)
        if spec.unread:
            log.warn(f"service {svc.name}: unable to read {'; '.join(spec.unread)}: stopping it with "
                     f"{signal_name(spec.down_signal)}, timeout-kill {spec.timeout_kill_ms} ms (the values last read)")

    def _on_run_exit(self, svc: Service, status: int) -> None:
        self._unwatch_ready(svc)
        if svc.pump is not None:
            # what run wrote is in the pipe now: out before the exit is reported, and an unfinished
            # last line is not glued to the next run's first
            svc.pump.drain()
            svc.pump.flush_partial()
        on_its_own = svc.state is State.UP and not self.shutting_down
        if on_its_own:
            so_far = f" (restarted {svc.restarts} times so far)" if svc.restarts and svc.want is Want.UP else ""
            self._report(svc, f"service {svc.name}: {describe(status)}{so_far}", warn=status != 0)
        else:
            log.info(f"service {svc.name}: {describe(status)}")
        self.feed(svc, Event.RUN_EXITED, status)
        if on_its_own and svc.spec.halt_on_exit:
            log.lifecycle(f"service {svc.name} {describe(status)}: halting the container (halt-on-exit)")
            self.on_halt(exit_code(status))

    def _start_finish(self, svc: Service) -> None:
        """Spawn ``finish``; if it cannot start, FINISH_EXITED is fed back with its exec status."""
        status = svc.last_status or 0
        if os.WIFSIGNALED(status):
            code, sig = 256, os.WTERMSIG(status)  # SPEC §7: 256 when killed, and the signal
        else:
            code, sig = os.WEXITSTATUS(status), 0
        argv = [svc.spec.finish, str(code), str(sig), svc.name, str(svc.pgid or 0)]
        try:
            fds = {0: spawn.devnull()}
            _log_r, log_w = self._log_pipe(svc)
            if log_w is not None and not svc.is_logger:
                fds[1] = log_w
                if svc.pump is not None and svc.pump.config.stderr:
                    fds[2] = log_w
            pid = spawn.spawn(argv, self._service_env(svc.spec), fds=fds, cwd=svc.spec.path, new_session=True,
                              user=svc.spec.user)
        except (SpawnError, ConfigError, OSError) as e:
            self._report(svc, f"service {svc.name}: {self._start_error(e, svc.spec.finish)}")
            self.feed(svc, Event.FINISH_EXITED, (e.code if isinstance(e, IgnityError) else EXIT_INTERNAL) << 8)
            return
        svc.finish_pid = pid
        self.loop.on_exit(pid, lambda st: self._on_finish_exit(svc, st))

    def _on_finish_exit(self, svc: Service, status: int) -> None:
        log.info(f"service {svc.name}: finish {describe(status)}")
        self.feed(svc, Event.FINISH_EXITED, status)

    def _give_up(self, svc: Service) -> None:
        window_s = svc.spec.restart_window_ms / 1000
        svc.error = (f"failed {len(svc.failures)} times in {window_s:.0f} s, given up "
                     f"(ignity svc -u {svc.name} starts it again)")
        log.warn(f"service {svc.name}: {svc.error}")
        if svc.spec.halt_on_failure and not self.shutting_down:
            code = exit_code(svc.last_status) if svc.last_status is not None else 1
            log.lifecycle(f"service {svc.name} given up: halting the container (halt-on-failure)")
            self.on_halt(code)

    # ---- check: readiness and liveness ------------------------------------------------------------
    def _start_check(self, svc: Service) -> None:
        """One try of ``check``, with the service's environment, user and cwd, in its own session
        (an overrun kills all it started), its output kept for the reason it failed; CHECK_EXITED
        always follows, at once when it cannot start."""
        spec = svc.spec
        out_r = out_w = None
        try:
            out_r, out_w = os.pipe()
            os.set_blocking(out_r, False)
            pid = spawn.spawn([spec.check, svc.name], self._service_env(spec),
                              fds={0: spawn.devnull(), 1: out_w, 2: out_w}, cwd=spec.path, new_session=True,
                              user=spec.user)
        except (SpawnError, ConfigError, OSError) as e:
            for fd in (out_r, out_w):
                if fd is not None:
                    os.close(fd)
            reason = self._start_error(e, spec.check)
            self._report(svc, f"service {svc.name}: check: {reason}")
            svc.check_output = reason
            self.feed(svc, Event.CHECK_EXITED, (None, (e.code if isinstance(e, IgnityError) else EXIT_INTERNAL) << 8))
            return
        os.close(out_w)
        svc.check_pid = pid
        svc.check_read = out_r
        tail = [b""]

        def readable() -> None:
            try:
                data = os.read(out_r, 4096)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if data:
                tail[0] = (tail[0] + data)[-CHECK_OUTPUT_MAX:]
            else:
                self._close_check_output(svc)

        def exited(status: int) -> None:
            if svc.check_read == out_r:
                readable()  # what it wrote last, if not read yet
            self._close_check_output(svc, out_r)
            if status != 0:
                lines = tail[0].decode("utf-8", "replace").strip().splitlines()
                svc.check_output = lines[-1][:200] if lines else describe(status)
            self.feed(svc, Event.CHECK_EXITED, (pid, status))

        self.loop.add_reader(out_r, readable)
        self.loop.on_exit(pid, exited)

    def _close_check_output(self, svc: Service, fd: int | None = None) -> None:
        """Stop reading a try's output (``fd``: only if it is still that try's)."""
        if svc.check_read is None or (fd is not None and svc.check_read != fd):
            return
        fd, svc.check_read = svc.check_read, None
        self.loop.remove_reader(fd)
        os.close(fd)

    def _signal_run(self, svc: Service, signum: int) -> None:
        if svc.pid is not None:
            spawn.kill(svc.pid, signum)
        if svc.pgid is not None and signum != signal.SIGCONT:
            spawn.kill(svc.pgid, signal.SIGCONT, group=True)  # a stopped service must still get to its handler

    # ---- the built-in logger ---------------------------------------------------------------------
    def _log_config(self, svc: Service) -> LogConfig | None:
        """What a service's built-in logger does: its ``log/`` knobs (a ``log/`` without ``run``),
        or the IGNITY_LOG_* settings for a service without ``log/``; None: no built-in logger."""
        if svc.is_logger or svc.logger is not None:
            return None
        if svc.spec.has_log:
            return logconf.from_dir(svc.spec.log_dir, svc.name)
        if self.settings.log_prefix or self.settings.log_timestamps != "none":
            return logconf.for_stdout(svc.name, self.settings.log_prefix, self.settings.log_timestamps)
        return None

    def _builtin_log(self, svc: Service) -> None:
        """Before each start of ``run``: the log knobs read fresh (as every knob); the pump and its
        pipe made at the first start and kept across restarts, so no line is lost between runs."""
        config = self._log_config(svc)
        if config is None or self.shutting_down:
            return
        stdout = self._stdout_sink() if config.stdout else None
        if svc.pump is not None:
            svc.pump.reconfigure(config, stdout)
            return
        if svc.log_read is None:
            svc.log_read, svc.log_write = os.pipe()
        pump = Pump(self.loop, svc.log_read, config, f"log {svc.name}", stdout)
        pump.start()  # only ignity reads this pipe: non-blocking is safe
        svc.pump = pump

    def _stdout_sink(self) -> Stdout | None:
        if self._stdout is None:
            try:
                self._stdout = Stdout(self.loop)
            except OSError as e:
                log.warn(f"unable to use the container's stdout for logs: {e.strerror} (those lines are dropped)")
                return None
        return self._stdout

    def rotate(self, name: str) -> None:
        """``ignity svc -a``: a built-in log rotates; any other process gets SIGALRM (s6's alarm,
        which rotates an s6-log or an ``ignity log``)."""
        svc = self.services[name]
        if svc.pump is not None:
            svc.pump.rotate()
        elif svc.pid is not None:
            spawn.kill(svc.pid, signal.SIGALRM)

    # ---- oneshots --------------------------------------------------------------------------------
    def _start_oneshot(self, shot: Oneshot, which: str) -> None:
        """Spawn a oneshot's ``up`` or ``down``; SPAWNED or SPAWN_FAILED (with the status that
        stands for the failure: 126/127, 100 for an unusable user or env) is always fed back."""
        spec = shot.spec
        program = spec.up if which == "up" else spec.down_program
        if shot.spawns or shot.state is OneshotState.STOPPING:
            shot.spec = spec = servicedir.read_spec(shot.name, spec.path, dependencies=spec.dependencies)
        try:
            env = self._service_env(spec)
            if not os.path.exists(program):
                raise SpawnError(program, errno.ENOENT)
            argv = [program, shot.name] if os.access(program, os.X_OK) else _command_line(program)
            pid = spawn.spawn(argv, env, fds={0: spawn.devnull()}, cwd=spec.path, new_session=True,
                              user=spec.user)
        except (SpawnError, ConfigError, OSError) as e:
            code = e.code if isinstance(e, IgnityError) else EXIT_INTERNAL
            shot.error = f"oneshot {shot.name}: {which}: {e if isinstance(e, IgnityError) else e.strerror}"
            log.warn(shot.error)
            self.feed(shot, Event.SPAWN_FAILED, code << 8)
            return
        self.loop.on_exit(pid, lambda status: self._on_oneshot_exit(shot, which, status))
        self.feed(shot, Event.SPAWNED, pid)
        log.info(f"oneshot {shot.name}: {which} started, pid {pid}")

    def _on_oneshot_exit(self, shot: Oneshot, which: str, status: int) -> None:
        if which == "down" and status != 0:
            log.warn(f"oneshot {shot.name}: down {describe(status)}")
        else:
            log.info(f"oneshot {shot.name}: {which} {describe(status)}")
        self.feed(shot, Event.RUN_EXITED, status)

    def _oneshot_failed(self, shot: Oneshot) -> None:
        """Its ``up`` failed: the boot stops with that status, as for an init script (unless
        ``optional``, or it was not started by the boot: then it is reported)."""
        status = shot.last_status or 0
        what = (f"timed out after {shot.spec.timeout_up_ms} ms" if shot.timed_out else describe(status))
        fatal = shot.at_boot and not shot.spec.optional and not self.shutting_down
        shot.at_boot = False
        shot.error = shot.error or f"up {what}"
        if fatal and self.on_boot_failed is not None:
            log.lifecycle(f"boot stopped: oneshot {shot.name}: up {what} (status {exit_code(status)})")
            self.on_boot_failed(exit_code(status))
        else:
            held = [d.name for d in shot.needed_by]
            log.warn(f"oneshot {shot.name}: up {what}" + (f" (holding back {', '.join(held)})" if held else ""))

    # ---- readiness (notification-fd) -----------------------------------------------------------
    def _watch_ready(self, svc: Service, fd: int) -> None:
        svc.ready_fd = fd
        try:
            self.loop.add_reader(fd, lambda: self._ready_readable(svc, fd))
        except OSError as e:  # epoll_ctl: ENOMEM, ENOSPC (max_user_watches)
            svc.ready_fd = None
            self.loop.remove_reader(fd)  # forget the callback; the selector has nothing registered
            os.close(fd)
            log.warn(f"service {svc.name}: unable to watch its notification fd: {e.strerror or e} "
                     "(it runs, but will not be seen ready until its next start)")

    def _ready_readable(self, svc: Service, fd: int) -> None:
        try:
            data = os.read(fd, READY_READ_MAX)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if b"\n" in data:
            self._unwatch_ready(svc)
            self.feed(svc, Event.READY)
        elif not data:
            self._unwatch_ready(svc)  # closed without a newline: never ready this time

    def _unwatch_ready(self, svc: Service) -> None:
        fd, svc.ready_fd = svc.ready_fd, None
        if fd is not None:
            self.loop.remove_reader(fd)
            os.close(fd)

    # ---- commands (control socket) ----------------------------------------------------------------
    def command(self, name: str, action: str) -> None:
        """up/down/once/restart for one service (raises KeyError if there is no such service)."""
        svc = self.services[name]
        event = {"up": Event.CMD_UP, "down": Event.CMD_DOWN, "once": Event.CMD_ONCE,
                 "restart": Event.CMD_RESTART}[action]
        if event in (Event.CMD_UP, Event.CMD_ONCE):
            # its dependencies first (svc -d, by contrast, leaves the dependants alone)
            for dep in _dependencies_of(svc, self.graph(), self.services):
                self.feed(dep, Event.CMD_UP)
        self.feed(svc, event)

    def send_signal(self, name: str, signum: int) -> None:
        svc = self.services[name]
        if svc.pid is not None:
            spawn.kill(svc.pid, signum)

    def status(self, names: list[str] | None = None) -> list[dict]:
        """The status JSON of each service (docs/control.md), with its ``health`` word."""
        now = time.monotonic()
        out = []
        for name in names or sorted(self.services):
            svc = self.services[name]
            entry = {
                "name": svc.name,
                "type": svc.spec.type,
                "user": svc.spec.user_name,
                "waiting_on": list(svc.waiting_on) if svc.state in WAITING else [],
                "state": svc.status_word(),
                "pid": svc.pid,
                "ready": bool(svc.ready and (svc.pid is not None or isinstance(svc, Oneshot))),
                "restarts": svc.restarts,
                "uptime_s": round(now - svc.up_since, 3) if svc.up_since is not None else None,
                "last_exit_code": svc.last_exit_code,
                "last_signal": svc.last_signal,
                "want": svc.want.value,
                "error": svc.error if svc.failed or getattr(svc, "gave_up", False) else None,
                **self._health_fields(svc, now),
            }
            entry["health"] = health.assess(entry)[0]
            out.append(entry)
        return out

    @staticmethod
    def _health_fields(svc: Record, now: float) -> dict:
        """What the health word and its reason are made of (health.assess); a oneshot has none."""
        if not isinstance(svc, Service):
            return {}
        window_s = svc.spec.restart_window_ms / 1000
        return {
            "given_up": svc.gave_up,
            "recent_restarts": sum(1 for t in svc.failures if t > now - window_s),
            "restart_window_s": window_s,
            "backoff_s": round(svc.deadline - now, 3) if svc.state is State.BACKOFF and svc.deadline else None,
            "health_failures": svc.check_failures,
            "check_output": svc.check_output or None,
        }

    def process_roots(self, names: list[str]) -> dict[str, list[int]]:
        """The session leaders of each service's processes now (``run``, ``finish``, a try of
        ``check``, a oneshot's program): where its process tree is found (resources)."""
        roots = {}
        for name in names:
            svc = self.services[name]
            pids = (getattr(svc, "pgid", None), getattr(svc, "finish_pid", None), getattr(svc, "check_pid", None))
            roots[name] = [pid for pid in pids if pid is not None]
        return roots

    # ---- waiting for services (CMD wait, ignity wait) --------------------------------------------
    def all_ready(self) -> bool:
        return not self.not_ready()

    def not_ready(self) -> list[str]:
        return [s.name for s in self.services.values()
                if s.want is not Want.DOWN and not s.is_logger and not s.ready_for_dependants()]

    def all_down(self) -> bool:
        return all(s.is_down() for s in self.services.values())

    # ---- shutdown -------------------------------------------------------------------------------
    def shutdown(self, grace_s: float) -> None:
        """SPEC §3 stage 3.2-3.3, in reverse dependency order: nothing starts any more; a record
        gets its down signal (a logger: the end of its input) once every record that depends on
        it is down; at the grace deadline what is still up gets SIGKILL, and what still waited
        for its turn gets its down signal then, and SIGKILL LATE_KILL_S later."""
        if self.shutting_down:
            return
        self.shutting_down = True
        self._grace_deadline = time.monotonic() + grace_s
        for rec in list(self.services.values()):
            self.feed(rec, Event.HOLD)
        for rec in list(self.services.values()):
            if rec.pump is not None and rec.is_down():
                self._release_logger(rec, self._grace_deadline)
            self._stop_if_free(rec)
        if not self.all_down():
            self._grace_timer = self.loop.call_at(self._grace_deadline, self._stop_the_rest)

    def _stop_if_free(self, rec: Record) -> None:
        if rec.shutdown_sent or self.services.get(rec.name) is not rec:
            return
        if all(d.is_down() or self.services.get(d.name) is not d for d in rec.needed_by):
            self._stop_now(rec, self._kill_at())

    def _kill_at(self) -> float | None:
        """SIGKILL deadline for a record whose turn to stop comes now: the grace deadline, or
        LATE_KILL_S from now once it has passed (a dependant was killed at it): even then the
        record gets its down signal first."""
        now = time.monotonic()
        if self._grace_deadline is None or now < self._grace_deadline:
            return self._grace_deadline
        return now + LATE_KILL_S

    def _stop_now(self, rec: Record, kill_at: float | None) -> None:
        rec.shutdown_sent = True
        if rec.main is not None:
            self._release_logger(rec.main, kill_at)
        else:
            self.feed(rec, Event.SHUTDOWN, kill_at)

    def _stop_the_rest(self) -> None:
        self._grace_timer = None
        for rec in list(self.services.values()):
            if not rec.shutdown_sent:
                self._stop_now(rec, self._kill_at())

    def _release_logger(self, main: Service, kill_at: float | None) -> None:
        """The service is down: close our write end so its logger reads to end-of-file and exits
        (the machine gives it LOGGER_EOF_GRACE_S, then its down signal). A built-in log is drained
        and closed now: what the service wrote is in the pipe already."""
        if main.log_write is not None:
            os.close(main.log_write)
            main.log_write = None
        if main.pump is not None:
            main.pump.close()
        if main.logger is not None:
            self.feed(main.logger, Event.RELEASE, kill_at)

    def _close_log_pipe(self, main: Service) -> None:
        if main.pump is not None:
            main.pump.close()
            main.pump = None
        for fd in (main.log_read, main.log_write):
            if fd is not None:
                os.close(fd)
        main.log_read = main.log_write = None


def _command_line(path: str) -> list[str]:
    """A non-executable ``up``/``down`` is s6-rc's: one execline command line, run without
    execline (``execline.command_line``); empty means nothing to do. ConfigError otherwise."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read(65536)
        argv = execline.command_line(execline.strip_shebang(text)[1])
    except OSError as e:
        raise ConfigError(f"unable to read {path}: {e.strerror}") from None
    except ValueError as e:  # ExeclineError, NotOneCommand
        raise ConfigError(f"{path}: {e} (make it an executable script)") from None
    return argv or ["true"]


def _not_ready(records: list[Record]) -> list[str]:
    return [rec.name for rec in records if not rec.ready_for_dependants()]


def _dependencies_of(rec: Record, graph: Mapping[str, list[str]], records: Mapping[str, Record]) -> list[Record]:
    """Everything ``rec`` depends on, directly or not, each after its own dependencies."""
    return [records[name] for name in dependencies.closure(graph, [rec.name]) if name != rec.name]
