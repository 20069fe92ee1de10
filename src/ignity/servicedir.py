"""One s6-style service directory, parsed into a frozen ``ServiceSpec`` (SPEC §7), and the copy of
``services/`` into ``services-state/`` made at boot.

Knob files are read when the supervisor needs them (at each start, at each stop), as s6 does, so
an edit in the live copy applies without a rescan. A knob with a bad value is reported and its
default used: one service's typo never stops the container.
"""

from __future__ import annotations

import os
import signal

from . import log
from .confdir import visible_names
from .record import Record

DEFAULT_TIMEOUT_FINISH_MS = 5000  # SPEC §7, s6-supervise's default


class ServiceSpec(Record):
    """What the files of one service directory say; immutable: read again to see changes.
    ``name`` is "web", or "web/log" for a logger; ``path`` is the live copy in services-state/."""

    __slots__ = ("down", "down_signal", "halt_on_exit", "has_finish", "has_log", "name", "notification_fd",
                 "path", "timeout_finish_ms", "timeout_kill_ms")

    def __init__(self, *, name: str, path: str, down: bool, has_finish: bool, notification_fd: int | None,
                 down_signal: int, timeout_kill_ms: int, timeout_finish_ms: int, halt_on_exit: bool,
                 has_log: bool):
        self._set(name=name, path=path, down=down, has_finish=has_finish, notification_fd=notification_fd,
                  down_signal=down_signal, timeout_kill_ms=timeout_kill_ms, timeout_finish_ms=timeout_finish_ms,
                  halt_on_exit=halt_on_exit, has_log=has_log)

    @property
    def run(self) -> str:
        return os.path.join(self.path, "run")

    @property
    def finish(self) -> str:
        return os.path.join(self.path, "finish")

    @property
    def log_dir(self) -> str:
        return os.path.join(self.path, "log")


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read().strip()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
    except OSError as e:
        log.warn(f"unable to read {path}: {e.strerror}")
        return None


def _number(path: str, default: int | None, minimum: int = 0) -> int | None:
    text = _read(path)
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
    try:
        return int(signal.Signals[name])
    except KeyError:
        return None


def read_spec(name: str, path: str) -> ServiceSpec:
    """Parse the knob files of one (live) service directory."""
    def knob(file: str) -> str:
        return os.path.join(path, file)

    down_signal = signal.SIGTERM
    text = _read(knob("down-signal"))
    if text:
        parsed = parse_signal(text)
        if parsed is None:
            log.warn(f"{knob('down-signal')}: {text[:40]!r} is not a signal, using SIGTERM")
        else:
            down_signal = parsed
    has_log = os.path.isdir(knob("log"))
    return ServiceSpec(
        name=name,
        path=path,
        down=os.path.exists(knob("down")),
        has_finish=os.path.exists(knob("finish")),
        notification_fd=_number(knob("notification-fd"), None, minimum=3 if has_log else 1),
        down_signal=int(down_signal),
        timeout_kill_ms=_number(knob("timeout-kill"), 0) or 0,
        timeout_finish_ms=_number(knob("timeout-finish"), DEFAULT_TIMEOUT_FINISH_MS) or 0,
        halt_on_exit=os.path.exists(knob("halt-on-exit")),
        has_log=has_log,
    )


def service_names(directory: str) -> list[str]:
    """Names of the service directories under ``directory``, byte order, dot-names left out."""
    return [name for name in visible_names(directory) if os.path.isdir(os.path.join(directory, name))]


# the programs of a service: linked, not copied, into the live copy (see copy_tree)
PROGRAMS = ("run", "finish")


def _copy_entry(source: str, target: str) -> str:
    """copytree's copy function: programs become symlinks to the originals, the rest is copied."""
    import shutil

    if os.path.basename(source) in PROGRAMS:
        os.symlink(os.path.abspath(source), target)
        return target
    return shutil.copy2(source, target)


def copy_tree(source: str, state: str) -> None:
    """Copy ``services/`` to ``services-state/`` (SPEC §3 stage 2.3); dot-files are left out
    everywhere (SPEC §2).

    ``run`` and ``finish`` (of services and loggers) are symlinks to the originals rather than
    copies: the runtime dir is often a tmpfs mounted ``noexec`` (Docker's ``--tmpfs`` default), and
    exec follows the link to a file system that allows it. Everything else is copied, so knob files
    can be edited in the live copy. Symlinks in ``services/`` are followed.
    """
    os.makedirs(state, exist_ok=True)
    names = service_names(source)
    if not names:
        return
    import shutil  # ~4 ms of imports (bz2, lzma): only when there are services to copy

    for name in names:
        origin, target = os.path.join(source, name), os.path.join(state, name)
        if os.path.exists(target):
            continue  # already live (rescan): the live copy is the one that counts
        try:
            shutil.copytree(origin, target, copy_function=_copy_entry,
                            ignore=lambda _d, names: [n for n in names if n.startswith(".")])
        except (OSError, shutil.Error) as e:
            log.warn(f"service {name}: unable to copy {origin} to {target}: {e}")
