"""One s6-style service directory, parsed into a frozen ``ServiceSpec`` (SPEC §7), and the copy of
``services/`` into ``services-state/`` made at boot.

Knob files are read when the supervisor needs them, as s6 does, so an edit in the live copy applies
without a rescan: all of them at each start, ``down-signal`` and ``timeout-kill`` again at each
stop. A knob with a bad value is reported and its default used: one service's typo never stops the
container. A knob file that exists but cannot be read (EACCES, EIO, EMFILE) is not taken for
absent: the spec says so (``unread``) and the supervisor decides (keep the last value, or do not
start on defaults the service did not ask for).
"""

from __future__ import annotations

import _signal as signal  # not `signal`: its enums cost ~3 ms of every container start
import errno
import os
import stat

from . import log
from .confdir import visible_dirs, visible_names
from .errors import IgnityError
from .record import Record

TYPE_CHECKING = False  # without importing typing (~7 ms at start-up), nor collections (~1.2 ms)
if TYPE_CHECKING:
    from collections.abc import Callable

    from .accounts import Account

DEFAULT_TIMEOUT_FINISH_MS = 5000  # SPEC §7, s6-supervise's default
KNOB_MAX_BYTES = 4096  # a knob holds one short value; more is not read
LONGRUN, ONESHOT = "longrun", "oneshot"  # the `type` file (s6-rc)
# readiness and liveness by `check` (docs/health.md)
DEFAULT_CHECK_INTERVAL_MS = 250
DEFAULT_CHECK_TIMEOUT_MS = 30000
DEFAULT_CHECK_TRY_TIMEOUT_MS = 5000  # one try of `check` is killed after this, as finish is
DEFAULT_HEALTH_RETRIES = 3
# a service with neither notification-fd nor check is ready once up this long: as long as the
# restart throttle, so a run that dies at once (a crash loop) is never reported ready
DEFAULT_READY_AFTER_MS = 1000
# crash-loop policy: these defaults are s6's (restart at most once a second, forever)
DEFAULT_RESTART_MAX_DELAY_MS = 1000
DEFAULT_RESTART_WINDOW_MS = 60000


class ServiceSpec(Record):
    """What the files of one service directory say; immutable: read again to see changes.
    ``name`` is "web", or "web/log" for a logger; ``path`` is the live copy in services-state/.
    ``unread`` names the knob files that exist but could not be read ("PATH: reason"); their
    fields hold the value last read (when ``read_spec`` was given one) or else the default."""

    __slots__ = ("check_interval_ms", "check_timeout_ms", "check_try_timeout_ms", "dependencies", "down",
                 "down_signal", "halt_on_exit", "halt_on_failure", "has_check", "has_down_program", "has_env",
                 "has_finish", "has_log", "health_interval_ms", "health_retries", "name", "notification_fd", "optional",
                 "path", "problem", "ready_after_ms", "restart_limit", "restart_max_delay_ms", "restart_window_ms",
                 "timeout_down_ms", "timeout_finish_ms", "timeout_kill_ms", "timeout_up_ms", "type", "unread", "user",
                 "user_env", "user_name")

    def __init__(self, *, name: str, path: str, down: bool, has_finish: bool, notification_fd: int | None,
                 down_signal: int, timeout_kill_ms: int, timeout_finish_ms: int, halt_on_exit: bool,
                 has_log: bool, unread: tuple[str, ...] = (), type: str = LONGRUN,
                 dependencies: tuple[str, ...] = (), user: Account | None = None, user_name: str | None = None,
                 user_env: dict | None = None, optional: bool = False, timeout_up_ms: int = 0,
                 timeout_down_ms: int = 0, has_down_program: bool = False, problem: str | None = None,
                 has_check: bool = False, check_interval_ms: int = DEFAULT_CHECK_INTERVAL_MS,
                 check_timeout_ms: int = DEFAULT_CHECK_TIMEOUT_MS,
                 check_try_timeout_ms: int = DEFAULT_CHECK_TRY_TIMEOUT_MS, health_interval_ms: int = 0,
                 health_retries: int = DEFAULT_HEALTH_RETRIES, ready_after_ms: int = DEFAULT_READY_AFTER_MS,
                 restart_max_delay_ms: int = DEFAULT_RESTART_MAX_DELAY_MS, restart_limit: int = 0,
                 restart_window_ms: int = DEFAULT_RESTART_WINDOW_MS, halt_on_failure: bool = False,
                 has_env: bool = False):
        self._set(name=name, path=path, down=down, has_finish=has_finish, notification_fd=notification_fd,
                  down_signal=down_signal, timeout_kill_ms=timeout_kill_ms, timeout_finish_ms=timeout_finish_ms,
                  halt_on_exit=halt_on_exit, has_log=has_log, unread=unread, type=type, dependencies=dependencies,
                  user=user, user_name=user_name, user_env=user_env, optional=optional,
                  timeout_up_ms=timeout_up_ms, timeout_down_ms=timeout_down_ms, has_down_program=has_down_program,
                  problem=problem, has_check=has_check, check_interval_ms=check_interval_ms,
                  check_timeout_ms=check_timeout_ms, check_try_timeout_ms=check_try_timeout_ms,
                  health_interval_ms=health_interval_ms, health_retries=health_retries,
                  ready_after_ms=ready_after_ms, restart_max_delay_ms=restart_max_delay_ms,
                  restart_limit=restart_limit, restart_window_ms=restart_window_ms, halt_on_failure=halt_on_failure,
                  has_env=has_env)

    @property
    def oneshot(self) -> bool:
        return self.type == ONESHOT

    @property
    def up(self) -> str:
        """A oneshot's ``up`` program."""
        return os.path.join(self.path, "up")

    @property
    def down_program(self) -> str:
        """A oneshot's ``down`` program (for a longrun, a ``down`` file means "not at boot")."""
        return os.path.join(self.path, "down")

    @property
    def run(self) -> str:
        return os.path.join(self.path, "run")

    @property
    def finish(self) -> str:
        return os.path.join(self.path, "finish")

    @property
    def check(self) -> str:
        return os.path.join(self.path, "check")

    @property
    def log_dir(self) -> str:
        return os.path.join(self.path, "log")


def _read(path: str) -> str | None:
    """The stripped text of a knob file, None when there is none; raises OSError when it exists
    but cannot be read (EACCES, EIO, EMFILE, a FIFO...): that is not the same as absent.
    O_NONBLOCK: a FIFO put in place of a knob must not block PID 1 in open(2) or read(2)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            return None
        if not stat.S_ISREG(mode):
            raise OSError(errno.EINVAL, "not a regular file")
        data = os.read(fd, KNOB_MAX_BYTES)
    finally:
        os.close(fd)
    return data.decode("utf-8", "replace").strip()


def _number(path: str, text: str | None, default: int | None, minimum: int = 0) -> int | None:
    if text is None or text == "":
        return default
    if not (text.isascii() and text.isdigit()) or int(text) < minimum:
        log.warn(f"{path}: {text[:40]!r} is not a number >= {minimum}, using the default")
        return default
    return int(text)


def parse_signal(text: str) -> int | None:
    """'SIGINT', 'INT', 'int' or '2' -> 2; None if it names no signal."""
    text = text.strip()
    if text.isascii() and text.isdigit():
        return int(text) if int(text) in signal.valid_signals() else None
    name = text.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    value = getattr(signal, name, None) if not name.startswith("SIG_") else None
    return value if isinstance(value, int) else None


def _down_signal(path: str, text: str | None, has_log: bool) -> int:
    if not text:
        return int(signal.SIGTERM)
    parsed = parse_signal(text)
    if parsed is None:
        log.warn(f"{path}: {text[:40]!r} is not a signal, using SIGTERM")
        return int(signal.SIGTERM)
    return parsed


def _notification_fd(path: str, text: str | None, has_log: bool) -> int | None:
    return _number(path, text, None, minimum=3 if has_log else 1)  # fd 1 is the logger's pipe


def _timeout_kill(path: str, text: str | None, has_log: bool) -> int:
    return _number(path, text, 0) or 0


def _timeout_finish(path: str, text: str | None, has_log: bool) -> int:
    return _number(path, text, DEFAULT_TIMEOUT_FINISH_MS) or 0


def _timeout_up(path: str, text: str | None, has_log: bool) -> int:
    return _number(path, text, 0) or 0


def _ms(default: int, minimum: int = 0):
    """The parser of a knob holding a number (ms, or a count) >= ``minimum``, ``default`` when absent."""
    def parse(path: str, text: str | None, has_log: bool) -> int:
        value = _number(path, text, default, minimum)
        return default if value is None else value
    return parse


def _restart_max_delay(path: str, text: str | None, has_log: bool) -> int:
    # below the 1 s restart throttle means the throttle (SPEC §7)
    return max(_ms(DEFAULT_RESTART_MAX_DELAY_MS)(path, text, has_log), DEFAULT_RESTART_MAX_DELAY_MS)


# the knob files holding a value: file -> (field of ServiceSpec, parser of its text, None if absent)
KNOBS = {
    "down-signal": ("down_signal", _down_signal),
    "notification-fd": ("notification_fd", _notification_fd),
    "timeout-kill": ("timeout_kill_ms", _timeout_kill),
    "timeout-finish": ("timeout_finish_ms", _timeout_finish),
    "timeout-up": ("timeout_up_ms", _timeout_up),
    "timeout-down": ("timeout_down_ms", _timeout_up),
    # readiness, liveness and the crash-loop policy (docs/health.md)
    "check-interval": ("check_interval_ms", _ms(DEFAULT_CHECK_INTERVAL_MS, minimum=1)),
    "check-timeout": ("check_timeout_ms", _ms(DEFAULT_CHECK_TIMEOUT_MS)),
    "check-try-timeout": ("check_try_timeout_ms", _ms(DEFAULT_CHECK_TRY_TIMEOUT_MS, minimum=1)),
    "health-interval": ("health_interval_ms", _ms(0)),
    "health-retries": ("health_retries", _ms(DEFAULT_HEALTH_RETRIES, minimum=1)),
    "ready-after": ("ready_after_ms", _ms(DEFAULT_READY_AFTER_MS)),
    "restart-max-delay": ("restart_max_delay_ms", _restart_max_delay),
    "restart-limit": ("restart_limit", _ms(0)),
    "restart-window": ("restart_window_ms", _ms(DEFAULT_RESTART_WINDOW_MS, minimum=1)),
}
# read again at each stop, as s6 does: the others are read at each start
STOP_KNOBS = ("down-signal", "timeout-kill")


def _read_knobs(path: str, files: tuple[str, ...], last: ServiceSpec | None,
                has_log: bool, present: frozenset[str] | None = None) -> tuple[dict, tuple[str, ...]]:
    values: dict = {}
    unread = []
    for file in files:
        field, parse = KNOBS[file]
        knob = os.path.join(path, file)
        if present is not None and file not in present:
            values[field] = parse(knob, None, has_log)  # absent: no open(2) to find that out
            continue
        try:
            text = _read(knob)
        except OSError as e:
            unread.append(f"{knob}: {e.strerror or e}")
            values[field] = getattr(last, field) if last is not None else parse(knob, None, has_log)
            continue
        values[field] = parse(knob, text, has_log)
    return values, tuple(unread)


def read_spec(name: str, path: str, last: ServiceSpec | None = None, origin: str | None = None,
              dependencies: tuple[str, ...] | None = None) -> ServiceSpec:
    """Parse the knob files of one (live) service directory. A knob file that exists but cannot
    be read keeps ``last``'s value, else the default, and is listed in ``unread``: never read
    as absent without the caller knowing.

    The dependencies are read once, when the service is added: from ``origin/dependencies.d``
    for a directory copied from there (copy_tree leaves it out of the live copy), else from the
    live copy's own. A later read passes them in (``dependencies``) and keeps them."""
    def knob(file: str) -> str:
        return os.path.join(path, file)

    # one listing of the directory: a file it does not name is absent without a system call of
    # its own (a spec is read at every start, and most of its twenty files are usually absent)
    present = _listing(path)

    def there(file: str) -> bool:
        return present is None or file in present

    has_log = there("log") and os.path.isdir(knob("log"))
    values, unread = _read_knobs(path, tuple(KNOBS), last, has_log, present)
    problems: list[str] = []
    kind = ((_text(knob("type"), problems) if there("type") else None) or LONGRUN).lower()
    if kind not in (LONGRUN, ONESHOT):
        problems.append(f"{knob('type')}: {kind[:40]!r} is not a type of service (longrun or oneshot)")
        kind = LONGRUN
    if kind == ONESHOT and not (there("up") and os.path.lexists(knob("up"))):
        problems.append(f"{path}: a oneshot needs an `up` program")
    user_name = (_text(knob("user"), problems) if there("user") else None) or None
    user = user_env = None
    if user_name is not None:
        user, user_env, problem = _account(knob("user"), user_name)
        if problem:
            problems.append(problem)
    return ServiceSpec(
        name=name,
        path=path,
        # a oneshot's `down` is its down program, not "do not start at boot" (s6-rc)
        down=kind == LONGRUN and there("down") and os.path.exists(knob("down")),
        has_finish=there("finish") and os.path.exists(knob("finish")),
        halt_on_exit=there("halt-on-exit") and os.path.exists(knob("halt-on-exit")),
        has_log=has_log,
        unread=unread,
        type=kind,
        dependencies=(dependencies if dependencies is not None
                      else _dependencies(origin or path, origin is not None or there("dependencies.d"))),
        user=user,
        user_name=user_name,
        user_env=user_env,
        optional=there("optional") and os.path.exists(knob("optional")),
        has_env=there("env") and os.path.lexists(knob("env")),
        has_down_program=kind == ONESHOT and there("down") and os.path.isfile(knob("down")),
        problem="; ".join(problems) or None,
        has_check=kind == LONGRUN and there("check") and _has_check(knob("check")),
        halt_on_failure=there("halt-on-failure") and os.path.exists(knob("halt-on-failure")),
        **values,
    )


def _dependencies(directory: str, present: bool) -> tuple[str, ...]:
    return tuple(visible_names(os.path.join(directory, "dependencies.d"))) if present else ()


def _listing(path: str) -> frozenset[str] | None:
    """The names in a service directory; None when it cannot be listed (every file is then
    looked at on its own, and says why it cannot be read)."""
    try:
        return frozenset(os.listdir(path))
    except OSError:
        return None


def _has_check(path: str) -> bool:
    """A ``check`` that is there but cannot be run is said (with the fix) and left out: the
    service is then ready as one without a check is (ready-after), rather than never."""
    if not os.path.lexists(path):
        return False
    if os.path.isfile(path) and os.access(path, os.X_OK):
        return True
    log.warn(f"{path}: not an executable file (chmod +x it): readiness without a check (ready-after)")
    return False


def _text(path: str, problems: list[str]) -> str | None:
    """A knob that has no default to fall back on (``type``, ``user``): unreadable is a problem."""
    try:
        return _read(path)
    except OSError as e:
        problems.append(f"unable to read {path}: {e.strerror or e}")
        return None


def _account(path: str, text: str) -> tuple[Account | None, dict | None, str | None]:
    """The account a ``user`` file names, its HOME/USER/LOGNAME, and what forbids starting as it
    (None when nothing): an unknown name, or ignity not being root and not being that user."""
    # accounts (re, pathlib: ~5 ms of imports) only for services that have a `user` file
    from .accounts import login_env, resolve

    try:
        account = resolve(text.split()[0])
    except IgnityError as e:  # an unknown user or group, an id out of range
        return None, None, f"{path}: {e}"
    euid = os.geteuid()
    if euid != 0 and account.uid != euid:
        return account, None, (f"{path}: ignity runs as uid {euid}, not root, so it can start services "
                               f"only as itself, not as {text} (uid {account.uid}): run the container as "
                               "root, or remove the file")
    return account, login_env(account), None


def read_stop_knobs(spec: ServiceSpec) -> ServiceSpec:
    """``spec`` with ``down-signal`` and ``timeout-kill`` read again (at a stop); an unreadable
    one keeps its value and is listed in ``unread``."""
    values, unread = _read_knobs(spec.path, STOP_KNOBS, spec, spec.has_log)
    return spec.replace(unread=unread, **values)


def service_names(directory: str) -> list[str]:
    """Names of the service directories under ``directory``, byte order, dot-names left out."""
    return visible_dirs(directory)


# the programs of a service: linked, not copied, into the live copy (see copy_tree)
PROGRAMS = ("run", "finish", "up", "check")


def _copy_entry(source: str, target: str) -> str:
    """copytree's copy function: programs become symlinks to the originals, the rest is copied."""
    import shutil

    name = os.path.basename(source)
    # `down`: a oneshot's down program (executable), or a longrun's "not at boot" marker (copied)
    if name in PROGRAMS or (name == "down" and os.access(source, os.X_OK)):
        os.symlink(os.path.abspath(source), target)
        return target
    return shutil.copy2(source, target)


def _not_copied(with_deps: list[str]) -> Callable[[str, list[str]], list[str]]:
    """copytree's ignore: dot-names (SPEC §2), and dependencies.d/, which is read where it is.
    The directories that hold a ``dependencies.d`` are noted in ``with_deps``, for copy_tree's
    answer."""
    def ignore(directory: str, names: list[str]) -> list[str]:
        if "dependencies.d" in names:
            with_deps.append(directory)
        return [n for n in names if n.startswith(".") or n == "dependencies.d"]
    return ignore


def copy_tree(source: str, state: str) -> dict[str, str]:
    """Copy ``services/`` to ``services-state/`` (SPEC §3 stage 2.3); dot-files are left out
    everywhere (SPEC §2). Returns, for each live directory copied (a service's, its ``log/``)
    whose original holds a ``dependencies.d/``, that original: read_spec's ``origin``.

    ``run``, ``finish`` and ``check`` (of services and loggers) are symlinks to the originals rather than
    copies: the runtime dir is often a tmpfs mounted ``noexec`` (Docker's ``--tmpfs`` default), and
    exec follows the link to a file system that allows it. ``dependencies.d/`` is not copied at
    all: it is read once, from the original, when the service is added, and a copy (or a link)
    per service would cost a boot with a dependency graph more than the graph itself. Everything
    else is copied, so knob files can be edited in the live copy. Symlinks in ``services/`` are
    followed.
    """
    os.makedirs(state, exist_ok=True)
    origins: dict[str, str] = {}
    names = service_names(source)
    if not names:
        return origins
    import shutil  # ~4 ms of imports (bz2, lzma): only when there are services to copy

    source = os.path.abspath(source)  # the origins are read later, whatever the cwd then
    for name in names:
        origin, target = os.path.join(source, name), os.path.join(state, name)
        if os.path.exists(target):
            continue  # already live (rescan): the live copy is the one that counts
        with_deps: list[str] = []
        try:
            shutil.copytree(origin, target, copy_function=_copy_entry, ignore=_not_copied(with_deps))
            # the service's own, its logger's (a deeper one is no one's: neither copied nor read)
            for directory, live in ((origin, target), (os.path.join(origin, "log"), os.path.join(target, "log"))):
                if directory in with_deps:
                    origins[live] = directory
        except (OSError, shutil.Error) as e:
            log.warn(f"service {name}: unable to copy {origin} to {target}: {e}")
    return origins
