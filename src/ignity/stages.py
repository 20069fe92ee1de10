"""``ignity init``: stage 1 -> stage 2 -> stage 3 and the container's exit status (SPEC §3, §5).

Stage 1 prepares the runtime dir and the environment; stage 2 applies perms, runs init scripts,
starts services and the CMD, then waits for a reason to stop; stage 3 always runs once stage 1
is done, whatever stage 2 did (an internal error included), and every wait in it ends as soon as
there is nothing left to wait for.
"""

from __future__ import annotations

import _signal as signal  # not `signal`: its enums cost ~3 ms of every start
import errno
import gc
import os
import sys
import time

from . import confdir, envdir, fdlimit, log, spawn
from .control import ControlServer
from .envcache import EnvCache
from .errors import EXIT_CONFIG, EXIT_INTERNAL, ConfigError, SpawnError, describe, exit_code, signal_name
from .loop import Loop, Timer
from .settings import DEFAULT_PATH, Settings

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .s6compat import Compat  # loaded by cli only when the compatibility is on
    from .supervisor import Supervisor

SHUTDOWN_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)
FORWARDED_SIGNALS = (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH)
PR_SET_CHILD_SUBREAPER = 36
# after the final SIGKILL, how long to wait for the kernel to hand back the last zombies
FINAL_REAP_S = 2.0


class InitFailed(Exception):
    """An init script failed: the container exits with ``code``."""

    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


class Init:
    """One run of the container."""

    def __init__(self, settings: Settings, cmd: list[str], compat: Compat | None = None):
        self.settings = settings
        self.cmd = cmd
        self.compat = compat                   # s6-overlay's layout and paths, when asked for
        self.loop = Loop()
        self.supervisor: Supervisor | None = None
        self.control: ControlServer | None = None
        self.http = None                       # httpd.HttpServer, with IGNITY_HTTP_ADDR
        self.stop_signal: int | None = None    # the signal that asked for the shutdown
        self.stopping = False                  # a reason to enter stage 3 has come
        self.halt_code: int | None = None      # `ignity halt --exit-code` / halt-on-exit
        self.halted = False                    # the shutdown came from a halt
        self.cmd_pid: int | None = None
        self.cmd_status: int | None = None     # exit status of the CMD (0-255), once known
        self.cmd_ended_first = False           # the CMD exited before anything asked for a stop
        self.script_pgid: int | None = None    # the init script running now, for signals
        self.script_kill: Timer | None = None  # its SIGKILL, once a shutdown was asked for
        self.fd_budget: fdlimit.Budget | None = None
        self.boot_failure: int | None = None   # status of a oneshot whose `up` failed at boot
        self.env_cache: EnvCache | None = None

    # ---- entry point ----------------------------------------------------------------------------
    def run(self) -> int:
        self._prepare_process()
        try:
            base_env, written = self._stage1()
        except ConfigError as e:
            log.fatal(str(e))
            return EXIT_CONFIG
        code: int | None = None
        try:
            self._stage2(base_env, written)
        except InitFailed as e:
            code = e.code
        except ConfigError as e:
            log.fatal(str(e))
            code = EXIT_CONFIG
        except OSError as e:
            if e.errno not in (errno.EMFILE, errno.ENFILE):
                raise
            log.fatal(self._fd_shortage())
            code = EXIT_CONFIG
        except Exception as e:
            log.fatal(f"internal error: {type(e).__name__}: {e}")
            if log.verbosity() >= log.DEBUG:
                import traceback  # tracebacks only at verbosity 3 (SPEC §5)

                traceback.print_exc()
            code = EXIT_INTERNAL
        try:
            self._stage3()
        except Exception as e:
            log.fatal(f"internal error during shutdown: {type(e).__name__}: {e}")
            code = EXIT_INTERNAL
        if code is None:
            code = self._exit_status()
        log.info(f"exiting {code}")
        return code

    def _exit_status(self) -> int:
        """SPEC §5 / §11.9: a failed boot's status (a oneshot's `up`, as an init script's); then
        the CMD's; then halt's; then 0."""
        if self.boot_failure is not None:
            return self.boot_failure
        if self.compat is not None and not self.cmd_ended_first:
            # s6-overlay's exitcode file, written by a finish script before a halt or a stop, is the
            # container's status unless the CMD ended by itself first (s6-overlay writes the CMD's
            # status into that file then)
            code = self.compat.exit_code()
            if code is not None:
                return code
        if self.cmd_status is not None:
            return self.cmd_status
        if self.cmd and self.stop_signal is not None:
            return 128 + self.stop_signal  # stopped before the CMD could start
        if self.halt_code is not None:
            return self.halt_code
        return 0

    def _prepare_process(self) -> None:
        # a PID 1 may be started with 0-2 closed: keep them taken so no pipe lands there
        for fd in (0, 1, 2):
            try:
                os.fstat(fd)
            except OSError:
                os.open(os.devnull, os.O_RDWR)
        log.never_block()  # a stalled log reader must never stop PID 1 (after 0-2 are taken)
        log.info(spawn.protect_from_oom())
        # inherited masks and SIG_IGNs would reach children spawned by a library; ours reset
        # them anyway (spawn), but ignity itself must hear every signal it handles
        signal.pthread_sigmask(signal.SIG_SETMASK, ())
        # SIGTTOU/SIGTTIN: writing to the terminal while the CMD is its foreground group must
        # not stop PID 1 (tini). Children get SIG_DFL back at spawn.
        signal.signal(signal.SIGTTOU, signal.SIG_IGN)
        signal.signal(signal.SIGTTIN, signal.SIG_IGN)
        # SIGPIPE stays ignored in ignity (a logger gone must not kill PID 1): EPIPE instead
        for sig in SHUTDOWN_SIGNALS:
            self.loop.watch_signal(sig, self._on_shutdown_signal)
        for sig in FORWARDED_SIGNALS:
            self.loop.watch_signal(sig, self._on_forwarded_signal)
        if os.getpid() != 1:
            self._become_subreaper()

    def _become_subreaper(self) -> None:
        """Not PID 1: ask the kernel to hand us orphans of our descendants (SPEC §1)."""
        import ctypes  # only when not PID 1

        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
                raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
            log.info("not PID 1: registered as child subreaper")
        except (OSError, AttributeError) as e:
            log.warn(f"not PID 1 and unable to become a child subreaper ({e}): orphans will not be reaped")

    # ---- stage 1 ------------------------------------------------------------------------------------
    def _stage1(self) -> tuple[dict[str, str], dict[str, str]]:
        """The runtime dir and the envdir; returns ignity's own environment (the base every
        child's is laid over) and what the envdir now holds laid over it."""
        os.environ.setdefault("PATH", DEFAULT_PATH)
        run_dir = self.settings.run_dir
        try:
            _empty_dir(run_dir)
            container = dict(os.environ)
            merged = envdir.merge_files(confdir.visible_files(self.settings.conf("envs")), container)
            envdir.write(self.settings.envdir, merged, shared=self.settings.envs_shared)
            if self.compat is not None:
                self.compat.make_links(self.settings.envdir, self.settings.state_dir)
        except OSError as e:
            raise ConfigError(
                f"unable to prepare the runtime dir {run_dir}: {e.strerror} (it must be writable by "
                f"uid {os.geteuid()}: mount a tmpfs at {run_dir}, or run preboot at image build time)"
            ) from None
        log.info(f"stage 1 done: runtime dir {run_dir}, {len(merged)} variables")
        return container, merged

    # ---- stage 2 ------------------------------------------------------------------------------------
    def _env(self) -> dict[str, str]:
        """What a child gets now: the envdir as it is at this moment over ignity's environment
        (read again only when it changed: envcache)."""
        assert self.env_cache is not None
        return self.env_cache.get()

    def _stage2(self, base_env: dict[str, str], written: dict[str, str]) -> None:
        settings = self.settings
        self.env_cache = EnvCache(self.loop, base_env, settings.envdir, written)
        if confdir.visible_entries(settings.conf("templates")):
            self._render_templates(base_env)
        if not settings.skip_perms and confdir.visible_entries(settings.conf("perms")):
            self._apply_perms(base_env)
        if self.compat is not None and not settings.skip_perms:
            self.compat.fix_attrs(_apply_fix_attrs)
        self.control = ControlServer(self.loop, settings.control_socket, self._get_supervisor, self._on_halt)
        # the init is loaded: what exists now lives until exit, so collections skip it from here on
        # (cli turned collection off while it loaded)
        gc.freeze()
        gc.enable()
        if settings.http_addr is not None:
            self._listen_http(*settings.http_addr)
        if self.compat is not None:
            code = self.compat.init_scripts(lambda path, argv: self._run_init(path, base_env, argv),
                                            lambda: self.stopping)
            if code is not None or self.stopping:
                raise InitFailed(code if code is not None else 128 + (self.stop_signal or signal.SIGTERM))
        for path in confdir.visible_entries(settings.conf("init")):
            if self.stopping:
                break
            if os.path.isdir(path):
                log.warn(f"init script {path} is a directory: skipped")
                continue
            code = self._run_init(path, base_env)
            if code != 0 or self.stopping:
                log.lifecycle(f"boot stopped: init script {os.path.basename(path)} {_status_words(code)}")
                raise InitFailed(code if code != 0 else 128 + (self.stop_signal or signal.SIGTERM))
        if self.stopping:
            return
        sources = [settings.conf("services")]
        if self.compat is not None:
            sources = self.compat.service_sources(sources[0], settings.run_dir)
        self.fd_budget = fdlimit.Budget(settings.conf("services"))
        limit = fdlimit.limit()
        if not fdlimit.unlimited(limit) and self.fd_budget.needed > limit:
            raise ConfigError(self.fd_budget.shortage(limit))
        if self.fd_budget.services or self.compat is not None:
            supervisor = self._get_supervisor()
            supervisor.load(*sources)
            self.control.booted()
            supervisor.start_all()
        else:
            # nothing to supervise: the services' modules stay unloaded (a `rescan` loads them)
            os.makedirs(settings.state_dir, exist_ok=True)
            self.control.booted()
        if not self.cmd:
            log.lifecycle("booted, no CMD: running until told to stop")
            self.loop.run_until(lambda: self.stopping)
            return
        if settings.cmd_wait_for_services:
            self._wait_for_services()
        if self.stopping:
            return
        self._start_cmd(self._env())
        self.loop.run_until(lambda: self.stopping)

    def _get_supervisor(self) -> Supervisor:
        """The supervisor, created the first time there is a service (or a `rescan`)."""
        if self.supervisor is None:
            from .supervisor import Supervisor  # ~5 ms of imports a container without services skips

            self.supervisor = Supervisor(self.loop, self.settings, self._env, self._on_halt,
                                         self._on_boot_failed)
            if self.control is not None:
                self.control.attach(self.supervisor)
        return self.supervisor

    def _render_templates(self, env: dict[str, str]) -> None:
        """Before perms, so that perms can set the owner and mode of what templates write."""
        from . import templates  # jinja2 behind it: only when there are templates

        merged = envdir.overlay(env, self.settings.envdir)
        written = templates.render_dir(self.settings.conf("templates"), self.settings.templates_root, merged)
        log.info(f"templates: {written} files written")

    def _listen_http(self, host: str, port: int) -> None:
        """The metrics/probe listener; one that cannot listen is said once and left off: a
        port taken by something else must not keep the container from booting."""
        from .httpd import HttpServer  # only with IGNITY_HTTP_ADDR: the default boot does not load it

        assert self.control is not None
        control = self.control
        try:
            self.http = HttpServer(self.loop, host, port, lambda full, done: control.status_document(None, full, done))
        except OSError as e:
            log.error(f"unable to listen on IGNITY_HTTP_ADDR {host}:{port}: {e.strerror} "
                      "(metrics and probes over HTTP are off; free the port or choose another)")
            return
        log.info(f"http: serving /metrics, /healthz, /readyz on {host}:{port}")

    def _apply_perms(self, env: dict[str, str]) -> None:
        from . import perms  # pathlib, and jinja2 behind it: only when there are perms files

        merged = envdir.overlay(env, self.settings.envdir)
        perms.apply_dir(self.settings.conf("perms"), merged)

    def _run_init(self, path: str, base_env: dict[str, str], argv: list[str] | None = None) -> int:
        """One init script (or cont-init.d script, or command line), signals passed to its group."""
        name = os.path.basename(path)
        self.control.set_booting(name)
        code = self._run_script(path, self._env(), started=self._script_started, argv=argv)
        self.script_pgid = None
        if self.script_kill is not None:
            self.script_kill.cancel()
        if self.halted:
            # a halt is a shutdown asked for, not a failure: its status, whatever the script's
            log.lifecycle(f"boot stopped: halt requested while init script {name} ran")
            raise InitFailed(self.halt_code or 0)
        return code
    def _run_script(self, path: str, env: dict[str, str], **options: Any) -> int:
        """scripts.run, loaded by the first init or finalize script: a container without
        any never imports it."""
        from . import scripts

        return scripts.run(self.loop, path, env, **options)

    def _fd_shortage(self) -> str:
        """What an EMFILE in stage 2 means, and the fix (the budget is known once the init
        scripts ran; before, the limit alone is said)."""
        limit = fdlimit.limit()
        if self.fd_budget is not None:
            return self.fd_budget.shortage(limit)
        return (f"out of file descriptors: the limit (RLIMIT_NOFILE) is {limit}: raise it, e.g. "
                f"docker run --ulimit nofile={fdlimit.SUGGESTED_MIN}")

    def _script_started(self, pid: int) -> None:
        self.script_pgid = pid

    def _wait_for_services(self) -> None:
        maxtime = self.settings.cmd_wait_for_services_maxtime_ms / 1000
        if self.supervisor is None:
            return  # no services to wait for
        if not self.loop.run_until(lambda: self.stopping or self.supervisor.all_ready(), maxtime):
            names = ", ".join(self.supervisor.not_ready())
            if self.compat is not None and self.compat.s6.behaviour >= 2:
                log.lifecycle(f"services not ready after {maxtime * 1000:.0f} ms: {names}: stopping "
                              "(S6_BEHAVIOUR_IF_STAGE2_FAILS=2)")
                raise InitFailed(1)
            log.warn(f"services not ready after {maxtime * 1000:.0f} ms: {names} (starting the CMD anyway)")
        elif self.halted:
            log.lifecycle("halt requested while waiting for the services: the CMD is not started")

    def _start_cmd(self, env: dict[str, str]) -> None:
        tty_fd = 0 if _is_tty(0) else None
        try:
            pid = spawn.spawn(self.cmd, env, new_group=True, tty_fd=tty_fd, one_off=True)
        except SpawnError as e:
            log.error(f"CMD: {e}")
            self.cmd_status = e.code
            self._request_stop(None)
            return
        self.cmd_pid = pid
        self.loop.on_exit(pid, self._on_cmd_exit)
        log.info(f"CMD started: pid {pid}: {' '.join(self.cmd)}")

    def _on_cmd_exit(self, status: int) -> None:
        self.cmd_ended_first = not self.stopping
        self.cmd_status = exit_code(status)
        self.cmd_pid = None
        log.lifecycle(f"CMD {describe(status)}")
        self._request_stop(None)

    # ---- reasons to stop ---------------------------------------------------------------------------
    def _request_stop(self, signum: int | None) -> None:
        if not self.stopping:
            self.stopping = True
            self.stop_signal = signum

    def _on_shutdown_signal(self, signum: int) -> None:
        log.info(f"got {signal_name(signum)}")
        if (self.compat is not None and self.compat.s6.receive_signals and self.cmd_pid is not None
                and self.script_pgid is None):
            spawn.kill(self.cmd_pid, signum, group=True)  # S6_CMD_RECEIVE_SIGNALS: the CMD's exit stops us
            return
        if self.script_pgid is not None:
            self._stop_script(signum)  # SPEC §11.10
        elif self.cmd_pid is not None:
            # SPEC §3 stage 3.1: the CMD's group gets the signal that triggered the shutdown; a
            # second signal during shutdown is passed on the same way
            spawn.kill(self.cmd_pid, signum, group=True)
        self._request_stop(signum)

    def _stop_script(self, signum: int) -> None:
        """A shutdown asked for while an init script runs: the signal to its group now, SIGKILL
        after IGNITY_KILL_GRACETIME, so a script that ignores it cannot hold the boot forever."""
        pgid = self.script_pgid
        assert pgid is not None
        spawn.kill(pgid, signum, group=True)
        if self.script_kill is None or self.script_kill.cancelled:
            grace = self.settings.kill_gracetime_ms / 1000

            def kill() -> None:
                log.warn(f"init script still running {grace * 1000:.0f} ms after the shutdown was "
                         "asked for: sending SIGKILL")
                spawn.kill(pgid, signal.SIGKILL, group=True)

            self.script_kill = self.loop.call_later(grace, kill)

    def _on_forwarded_signal(self, signum: int) -> None:
        if self.cmd_pid is not None:
            spawn.kill(self.cmd_pid, signum, group=True)
        else:
            log.info(f"ignoring {signal_name(signum)} (no CMD to forward it to)")

    def _on_halt(self, code: int | None) -> None:
        """`ignity halt [--exit-code N]`, or a halt-on-exit service that ended with ``code``."""
        if self.halt_code is None and code is not None:
            self.halt_code = code
        if not self.stopping:
            self.halted = True
            if self.cmd_pid is not None:
                spawn.kill(self.cmd_pid, signal.SIGTERM, group=True)  # SPEC §3 stage 3.1: SIGTERM for halt
            elif self.script_pgid is not None:
                self._stop_script(signal.SIGTERM)  # as a SIGTERM would (SPEC §11.10)
        self._request_stop(None)

    def _on_boot_failed(self, code: int) -> None:
        """A oneshot's `up` failed at boot: like a failed init script, the container stops with its
        status, the CMD included if it already runs (it gets SIGTERM, as for halt)."""
        if self.boot_failure is None:
            self.boot_failure = code
        self._on_halt(None)

    # ---- stage 3 ------------------------------------------------------------------------------------
    def _stage3(self) -> None:
        settings = self.settings
        log.lifecycle("shutting down")
        sup = self.supervisor
        if sup is not None:
            sup.shutdown(settings.services_gracetime_ms / 1000)
        if self.control is not None:
            self.control.stop_accepting_commands()
        base = dict(os.environ)
        for path in confdir.visible_entries(settings.conf("finalize")):
            if os.path.isdir(path):
                continue
            code = self._run_script(path, envdir.overlay(base, settings.envdir),
                                    timeout_ms=settings.kill_finalize_maxtime_ms)
            if code != 0:
                log.lifecycle(f"finalize script {os.path.basename(path)} {_status_words(code)}")
        if sup is not None:
            # the supervisor SIGKILLs what is left at the grace deadline, so this ends by then
            self.loop.run_until(sup.all_down)
        if self.compat is not None:  # s6-overlay runs cont-finish.d once the services are down
            self.compat.finish_scripts(lambda path, argv: self._run_script(
                path, envdir.overlay(base, settings.envdir), timeout_ms=settings.kill_finalize_maxtime_ms))
        self._kill_everything()
        if self.control is not None:
            self.control.close()
        if self.http is not None:
            self.http.close()
        if settings.sync_disks:
            os.sync()

    def _kill_everything(self) -> None:
        """SPEC §3 stage 3.4: TERM+CONT to every process left, KILL after the grace time;
        each wait ends as soon as nothing is left."""
        if not self.loop.children_left():
            return
        grace = self.settings.kill_gracetime_ms / 1000
        log.info("sending SIGTERM to remaining processes")
        _signal_all(signal.SIGTERM)
        _signal_all(signal.SIGCONT)
        if self.loop.run_until(lambda: not self.loop.has_children, grace):
            return
        log.warn(f"processes left after {grace * 1000:.0f} ms: sending SIGKILL")
        _signal_all(signal.SIGKILL)
        self.loop.run_until(lambda: not self.loop.has_children, FINAL_REAP_S)


def _status_words(code: int) -> str:
    name = signal_name(code - 128) if code > 128 else ""
    if name.startswith("SIG"):
        return f"killed by {name} (status {code})"
    return f"failed with status {code}"


def _is_tty(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


def _empty_dir(path: str) -> None:
    """Empty ``path`` (which may be a mount point, e.g. a tmpfs: it is kept) or create it."""
    if not os.path.isdir(path):
        os.makedirs(path, exist_ok=True)
        return
    for entry in os.scandir(path):
        if entry.is_dir(follow_symlinks=False):
            _remove_tree(entry.path)
        else:
            os.unlink(entry.path)


def _remove_tree(path: str) -> None:
    """rm -r without following links (shutil.rmtree would cost ~4 ms of imports per boot)."""
    for entry in os.scandir(path):
        if entry.is_dir(follow_symlinks=False):
            _remove_tree(entry.path)
        else:
            os.unlink(entry.path)
    os.rmdir(path)


def _signal_all(sig: int) -> None:
    """Signal every process of ours: as PID 1 that is kill(-1) (everything in the namespace
    but us); otherwise only our descendants, never the rest of the host."""
    if os.getpid() == 1:
        spawn.kill(-1, sig)
        return
    for pid in _descendants(os.getpid()):
        spawn.kill(pid, sig)


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(name))
    out, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), ()):
            out.append(child)
            todo.append(child)
    return out


def _apply_fix_attrs(files: list[str]) -> None:
    """s6-overlay's fix-attrs.d files: perms lines in s6's own format, without templating."""
    from pathlib import Path

    from . import perms

    rules = []
    for path in files:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"unable to read {path}: {e}") from None
        rules.extend(perms.parse_text(text, Path(path)))
    perms.apply(rules)


def main(settings: Settings, cmd: list[str], compat: Compat | None = None) -> int:
    started = time.monotonic()
    code = Init(settings, cmd, compat).run()
    log.debug(f"ran {time.monotonic() - started:.3f} s")
    sys.stdout.flush()
    return code
