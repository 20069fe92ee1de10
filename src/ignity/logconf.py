"""What a built-in log does: the knob files of a service's ``log/`` directory without ``run``
(one value per file, s6 style), the options of ``ignity log``, or the IGNITY_LOG_* settings for
services without ``log/``, read into one immutable ``LogConfig``.

A bad value is reported in one line naming the file and the default used; a log is never
refused for a typo.
"""

from __future__ import annotations

import os

from . import log
from .logformat import FORMATS, TIMESTAMPS
from .record import Record

DEFAULT_MAX_SIZE = 1_000_000
MIN_MAX_SIZE = 4096  # s6-log's floor: smaller files would mostly be rotation
DEFAULT_KEEP = 10
KNOBS = ("directory", "max-size", "keep", "timestamp", "prefix", "stdout", "stderr", "format")


class LogConfig(Record):
    """``directory`` None: no files. Timestamps are kept apart for files and stdout because their
    defaults differ (``iso`` in files, ``none`` on stdout, where docker adds its own). ``format``
    ``json`` writes objects naming the service ``name`` instead of prefixed text."""

    __slots__ = ("directory", "file_timestamp", "format", "keep", "max_size", "name", "prefix", "stderr",
                 "stdout", "stdout_timestamp")

    def __init__(self, *, directory: str | None = None, max_size: int = DEFAULT_MAX_SIZE,
                 keep: int = DEFAULT_KEEP, file_timestamp: str = "iso", stdout_timestamp: str = "none",
                 prefix: bytes = b"", stdout: bool = False, stderr: bool = False, format: str = "text",
                 name: str = ""):
        self._set(directory=directory, max_size=max_size, keep=keep, file_timestamp=file_timestamp,
                  stdout_timestamp=stdout_timestamp, prefix=prefix, stdout=stdout, stderr=stderr,
                  format=format, name=name)


def default_prefix(name: str) -> bytes:
    return f"[{name}] ".encode()


def is_builtin(log_dir: str) -> bool:
    """A ``log/`` directory without ``run`` is handled by ignity itself."""
    return os.path.isdir(log_dir) and not os.path.lexists(os.path.join(log_dir, "run"))


def _read(path: str) -> str | None:
    """The file's text minus one trailing newline; None when absent. Not stripped: a prefix may
    end with a space."""
    try:
        with open(path, "rb") as f:
            data = f.read(4097)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:
        log.warn(f"unable to read {path}: {e.strerror} (using the default)")
        return None
    if data.endswith(b"\n"):
        data = data[:-1]
    return data.decode("utf-8", "replace")


def from_dir(log_dir: str, name: str) -> LogConfig:
    """The knob files of a built-in ``log/`` directory of service ``name`` (read at every start:
    one listing, then only the files that are there)."""
    try:
        present = set(os.listdir(log_dir))
    except OSError:
        present = set(KNOBS)  # let each read say what is wrong

    def knob(file: str) -> tuple[str, str | None]:
        path = os.path.join(log_dir, file)
        return path, _read(path) if file in present else None

    def bad(path: str, text: str, what: str, default: object) -> None:
        log.warn(f"{path}: {text[:40]!r} is not {what}, using {default}")

    path, text = knob("directory")
    directory = None
    if text is not None and text.strip():
        directory = os.path.join(log_dir, text.strip())  # relative: to log/, as s6-log's cwd would be

    def number(file: str, default: int, minimum: int) -> int:
        path, text = knob(file)
        if text is None or not text.strip():
            return default
        value = text.strip()
        if not (value.isascii() and value.isdigit()) or int(value) < minimum:
            bad(path, text, f"a number >= {minimum}", default)
            return default
        return int(value)

    def flag(file: str, default: bool) -> bool:
        path, text = knob(file)
        if text is None or not text.strip():
            return default
        if text.strip() not in ("0", "1"):
            bad(path, text, "0 or 1", int(default))
            return default
        return text.strip() == "1"

    max_size = number("max-size", DEFAULT_MAX_SIZE, MIN_MAX_SIZE)
    keep = number("keep", DEFAULT_KEEP, 0)
    file_timestamp, stdout_timestamp = "iso", "none"
    path, text = knob("timestamp")
    if text is not None and text.strip():
        if text.strip() in TIMESTAMPS:
            file_timestamp = stdout_timestamp = text.strip()
        else:
            bad(path, text, "none, iso or tai64n", "iso in files and none on stdout")
    prefix = default_prefix(name)
    path, text = knob("prefix")
    if text is not None:
        if "\n" in text:
            bad(path, text, "one line of text", repr(prefix.decode()))
        else:
            prefix = text.encode()
    fmt = "text"
    path, text = knob("format")
    if text is not None and text.strip():
        if text.strip() in FORMATS:
            fmt = text.strip()
        else:
            bad(path, text, "text or json", "text")
    return LogConfig(directory=directory, max_size=max_size, keep=keep, file_timestamp=file_timestamp,
                     stdout_timestamp=stdout_timestamp, prefix=prefix,
                     stdout=flag("stdout", directory is None), stderr=flag("stderr", False), format=fmt,
                     name=name)


def for_stdout(name: str, prefix: bool, timestamp: str) -> LogConfig:
    """A service without ``log/`` under IGNITY_LOG_PREFIX / IGNITY_LOG_TIMESTAMPS."""
    return LogConfig(stdout=True, stdout_timestamp=timestamp, prefix=default_prefix(name) if prefix else b"",
                     name=name)
