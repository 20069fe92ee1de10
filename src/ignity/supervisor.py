"""Owns every ``Service``: feeds them events, performs the effects their machine returns, and holds
the pipes that outlive a process (logger pipes, readiness fds).

All in the one ignity process, event-driven: a service costs a record, a few fds and, while a
deadline is pending, one timer. Nothing is polled; an idle supervisor makes no system calls.
One service's problem never leaves this module: it is reported, backed off and retried.
"""

from __future__ import annotations

import errno
import os
import signal
import time
from collections.abc import Callable

from . import log, servicedir, spawn
from .errors import SpawnError, describe, exit_code
from .loop import Loop, Timer
from .service import (
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
from .settings import Settings

# after a service is down at shutdown, how long its logger may take to drain the pipe and exit
# on end-of-file before it gets its down signal
LOGGER_EOF_GRACE_S = 0.5
# a logger signalled after the services' grace deadline still gets this long before SIGKILL
LOGGER_MIN_KILL_S = 0.5
READY_READ_MAX = 512

Env = Callable[[], dict]


class Supervisor:
    def __init__(self, loop: Loop, settings: Settings, env: Env, on_halt: Callable[[int | None], None]):
        self.loop = loop
        self.settings = settings
        self._env_source = env
        self._env_batch: dict | None = None
        self.on_halt = on_halt
        self.services: dict[str, Service] = {}       # services and their loggers ("web/log")
        self._timers: dict[str, Timer] = {}
        self._log_pipes: dict[str, tuple[int, int | None]] = {}  # service -> (read end, write end)
        self._ready_fds: dict[str, int] = {}
        self.listeners: list[Callable[[], None]] = []   # told of every state change (ignity wait)
        self.shutting_down = False
        self._grace_deadline: float | None = None

    # ---- the table of services ------------------------------------------------------------------
    def load(self, services_dir: str) -> None:
        """Copy ``services/`` to the live ``services-state/`` and add a record for each service."""
        servicedir.copy_tree(services_dir, self.settings.state_dir)
        self._add_new()

    def _add_new(self) -> list[Service]:
        added = []
        state_dir = self.settings.state_dir
        for name in servicedir.service_names(state_dir):
            if name in self.services:
                continue
            spec = servicedir.read_spec(name, os.path.join(state_dir, name))
            svc = Service(spec, want=Want.DOWN if spec.down else Want.UP)
            self.services[name] = svc
            added.append(svc)
            if spec.has_log:
                logger_spec = servicedir.read_spec(f"{name}/log", spec.log_dir)
                logger = Service(logger_spec, want=Want.DOWN if logger_spec.down else Want.UP, is_logger=True)
                self.services[logger.name] = logger
                added.append(logger)
                self._log_pipes[name] = os.pipe()  # close-on-exec; children get them by dup2
        return added

    def start_all(self) -> None:
        self._start(list(self.services.values()))

    def _start(self, services: list[Service]) -> None:
        self._env_batch = self._env_source()  # one read of the envdir for the whole batch
        try:
            # loggers first: their service's first lines find a reader at once
            for svc in sorted(services, key=lambda s: not s.is_logger):
                if svc.want is not Want.DOWN:
                    self.feed(svc, Event.CMD_UP)
        finally:
            self._env_batch = None
        log.info(f"{sum(1 for s in services if s.state is State.UP)} services started")

    def rescan(self) -> tuple[list[str], list[str]]:
        """Start services added to services-state/, stop the ones removed (SPEC §8)."""
        if self.shutting_down:
            return [], []
        added = self._add_new()
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

    def _forget_if_done(self, svc: Service) -> None:
        if svc.removed and svc.state is State.DOWN:
            self.services.pop(svc.name, None)
            self._set_deadline(svc, None)
            if not svc.is_logger and svc.name in self._log_pipes and svc.name + "/log" not in self.services:
                self._close_log_pipe(svc.name)
            if svc.is_logger and svc.main_name not in self.services:
                self._close_log_pipe(svc.main_name)

    # ---- the machine ----------------------------------------------------------------------------
    def feed(self, svc: Service, event: Event, arg: object = None) -> None:
        before = (svc.state, svc.ready)
        effects = step(svc, event, arg, time.monotonic())
        if not effects and before == (svc.state, svc.ready):
            log.debug(f"service {svc.name}: {event.value} ignored in state {svc.state.value}")
        for effect in effects:
            self._perform(svc, effect)
        if before != (svc.state, svc.ready):
            log.debug(f"service {svc.name}: {before[0].value} -> {svc.state.value} on {event.value}"
                      + (" (ready)" if svc.ready else ""))
            self._changed(svc)

    def _perform(self, svc: Service, effect: object) -> None:
        if isinstance(effect, SetDeadline):
            self._set_deadline(svc, effect.when)
        elif isinstance(effect, StartRun):
            self._start_run(svc)
        elif isinstance(effect, StartFinish):
            self._start_finish(svc)
        elif isinstance(effect, SignalRun):
            self._signal_run(svc, effect.signum)
        elif isinstance(effect, KillGroup):
            pgid = svc.finish_pid if effect.finish else svc.pgid
            if effect.finish:
                log.warn(f"service {svc.name}: finish still running after "
                         f"{svc.spec.timeout_finish_ms} ms, killing it")
            else:
                log.warn(f"service {svc.name}: still up after its grace time, sending SIGKILL")
            if pgid is not None:
                spawn.kill(pgid, signal.SIGKILL, group=True)
        else:  # pragma: no cover - the machine returns only the effects above
            raise TypeError(f"unknown effect {effect!r}")

    def _set_deadline(self, svc: Service, when: float | None) -> None:
        old = self._timers.pop(svc.name, None)
        if old is not None:
            old.cancel()
        svc.deadline = when
        if when is not None:
            self._timers[svc.name] = self.loop.call_at(when, lambda: self.feed(svc, Event.DEADLINE))

    def _changed(self, svc: Service) -> None:
        if self.shutting_down and not svc.is_logger and svc.state is State.DOWN:
            self._release_logger(svc.name)
        self._forget_if_done(svc)
        for listener in list(self.listeners):
            listener()

    # ---- effects --------------------------------------------------------------------------------
    def _env(self) -> dict:
        return self._env_batch if self._env_batch is not None else self._env_source()

    def _report(self, svc: Service, message: str, warn: bool = True) -> None:
        """Say it once per change of what is wrong (a broken service must not flood the log)."""
        if svc.error != message:
            svc.error = message
            (log.warn if warn else log.info)(message)

    def _start_run(self, svc: Service) -> None:
        if svc.spawns or svc.failed:  # knobs read fresh at each restart (s6); at boot they just were
            svc.spec = servicedir.read_spec(svc.name, svc.spec.path)
        spec = svc.spec
        fds = {0: spawn.devnull()}
        pipe = self._log_pipes.get(svc.main_name)
        if pipe is not None:
            if svc.is_logger:
                fds[0] = pipe[0]
            elif pipe[1] is not None:
                fds[1] = pipe[1]
        ready_w = None
        if spec.notification_fd is not None:
            ready_r, ready_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
            fds[spec.notification_fd] = ready_w
        try:
            if not os.path.exists(spec.run):
                raise SpawnError(spec.run, errno.ENOENT)
            pid = spawn.spawn([spec.run, svc.name], self._env(), fds=fds, cwd=spec.path,
                              new_session=True)
        except SpawnError as e:
            if ready_w is not None:
                os.close(ready_r)
                os.close(ready_w)
            self._report(svc, f"service {svc.name}: {e} (retrying in 1 s)")
            self.feed(svc, Event.SPAWN_FAILED, str(e))
            return
        if ready_w is not None:
            os.close(ready_w)
            self._watch_ready(svc, ready_r)
        self.loop.on_exit(pid, lambda status: self._on_run_exit(svc, status))
        self.feed(svc, Event.SPAWNED, pid)
        log.info(f"service {svc.name}: started, pid {pid}")

    def _on_run_exit(self, svc: Service, status: int) -> None:
        self._unwatch_ready(svc)
        on_its_own = svc.state is State.UP and not self.shutting_down
        if on_its_own:
            self._report(svc, f"service {svc.name}: {describe(status)}", warn=status != 0)
        else:
            log.info(f"service {svc.name}: {describe(status)}")
        self.feed(svc, Event.RUN_EXITED, status)
        if on_its_own and svc.spec.halt_on_exit:
            log.lifecycle(f"service {svc.name} {describe(status)}: halting the container (halt-on-exit)")
            self.on_halt(exit_code(status))

    def _start_finish(self, svc: Service) -> None:
        status = svc.last_status or 0
        if os.WIFSIGNALED(status):
            code, sig = 256, os.WTERMSIG(status)  # SPEC §7: 256 when killed, and the signal
        else:
            code, sig = os.WEXITSTATUS(status), 0
        fds = {0: spawn.devnull()}
        pipe = self._log_pipes.get(svc.name)
        if pipe is not None and pipe[1] is not None:
            fds[1] = pipe[1]
        argv = [svc.spec.finish, str(code), str(sig), svc.name, str(svc.pgid or 0)]
        try:
            pid = spawn.spawn(argv, self._env(), fds=fds, cwd=svc.spec.path, new_session=True)
        except SpawnError as e:
            self._report(svc, f"service {svc.name}: {e}")
            self.feed(svc, Event.FINISH_EXITED, e.code << 8)
            return
        svc.finish_pid = pid
        self.loop.on_exit(pid, lambda st: self._on_finish_exit(svc, st))

    def _on_finish_exit(self, svc: Service, status: int) -> None:
        log.info(f"service {svc.name}: finish {describe(status)}")
        self.feed(svc, Event.FINISH_EXITED, status)

    def _signal_run(self, svc: Service, signum: int) -> None:
        if svc.pid is not None:
            spawn.kill(svc.pid, signum)
        if svc.pgid is not None and signum != signal.SIGCONT:
            spawn.kill(svc.pgid, signal.SIGCONT, group=True)  # a stopped service must still get to its handler

    # ---- readiness (notification-fd) -----------------------------------------------------------
    def _watch_ready(self, svc: Service, fd: int) -> None:
        self._ready_fds[svc.name] = fd

        def readable() -> None:
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

        self.loop.add_reader(fd, readable)

    def _unwatch_ready(self, svc: Service) -> None:
        fd = self._ready_fds.pop(svc.name, None)
        if fd is not None:
            self.loop.remove_reader(fd)
            os.close(fd)

    # ---- commands (control socket) ----------------------------------------------------------------
    def command(self, name: str, action: str) -> None:
        """up/down/once/restart for one service (raises KeyError if there is no such service)."""
        svc = self.services[name]
        event = {"up": Event.CMD_UP, "down": Event.CMD_DOWN, "once": Event.CMD_ONCE,
                 "restart": Event.CMD_RESTART}[action]
        self.feed(svc, event)

    def send_signal(self, name: str, signum: int) -> None:
        svc = self.services[name]
        if svc.pid is not None:
            spawn.kill(svc.pid, signum)

    def status(self, names: list[str] | None = None) -> list[dict]:
        now = time.monotonic()
        out = []
        for name in names or sorted(self.services):
            svc = self.services[name]
            out.append({
                "name": svc.name,
                "state": svc.status_word(),
                "pid": svc.pid,
                "ready": bool(svc.ready and svc.pid is not None),
                "restarts": svc.restarts,
                "uptime_s": round(now - svc.up_since, 3) if svc.up_since is not None else None,
                "last_exit_code": svc.last_exit_code,
                "last_signal": svc.last_signal,
                "want": svc.want.value,
                "error": svc.error if svc.failed else None,
            })
        return out

    # ---- waiting for services (CMD wait, ignity wait) --------------------------------------------
    def all_ready(self) -> bool:
        return not self.not_ready()

    def not_ready(self) -> list[str]:
        return [s.name for s in self.services.values()
                if s.want is not Want.DOWN and not s.is_logger and not (s.state is State.UP and s.ready)]

    def all_down(self) -> bool:
        return all(s.state is State.DOWN for s in self.services.values())

    # ---- shutdown -------------------------------------------------------------------------------
    def shutdown(self, grace_s: float) -> None:
        """SPEC §3 stage 3.2-3.3: every service gets its down signal; what is still up at the
        grace deadline gets SIGKILL; each logger is stopped after its service."""
        if self.shutting_down:
            return
        self.shutting_down = True
        self._grace_deadline = time.monotonic() + grace_s
        for svc in list(self.services.values()):
            if not svc.is_logger:
                self.feed(svc, Event.SHUTDOWN, self._grace_deadline)
        for svc in list(self.services.values()):
            if not svc.is_logger and svc.state is State.DOWN:
                self._release_logger(svc.name)

    def _release_logger(self, name: str) -> None:
        """The service is down: close our write end so the logger reads to end-of-file and exits;
        if it does not, it gets its down signal after LOGGER_EOF_GRACE_S."""
        logger = self.services.get(name + "/log")
        pipe = self._log_pipes.get(name)
        if pipe is not None and pipe[1] is not None:
            os.close(pipe[1])
            self._log_pipes[name] = (pipe[0], None)
        if logger is None or logger.shutting_down:
            return
        self.feed(logger, Event.RELEASE)

        def stop_logger() -> None:
            kill_at = max(self._grace_deadline or 0.0, time.monotonic() + LOGGER_MIN_KILL_S)
            self.feed(logger, Event.SHUTDOWN, kill_at)

        if logger.state is not State.DOWN:
            self.loop.call_later(LOGGER_EOF_GRACE_S, stop_logger)

    def _close_log_pipe(self, name: str) -> None:
        pipe = self._log_pipes.pop(name, None)
        if pipe is not None:
            for fd in pipe:
                if fd is not None:
                    os.close(fd)
