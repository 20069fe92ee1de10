"""ignity's own messages: one line each on stderr, prefixed ``ignity: `` (SPEC §9).

Levels follow IGNITY_VERBOSITY: 0 errors only, 1 warnings and lifecycle lines, 2 info, 3 debug.
Lines are written with one ``os.write`` so they never interleave with a child's output half-way
and never sit in a Python buffer when PID 1 exits.
"""

from __future__ import annotations

import os

ERROR, WARN, INFO, DEBUG = 0, 1, 2, 3

_verbosity = WARN


def set_verbosity(level: int) -> None:
    global _verbosity
    _verbosity = level


def verbosity() -> int:
    return _verbosity


def _emit(level: int, text: str) -> None:
    if level > _verbosity:
        return
    # one line per message, whatever the text holds (an error string with a newline in it)
    line = "ignity: " + " ".join(text.splitlines()) + "\n"
    try:
        os.write(2, line.encode("utf-8", "replace"))
    except OSError:
        pass  # stderr gone (closed terminal): nothing sensible to do, never die for it


def fatal(text: str) -> None:
    _emit(ERROR, "fatal: " + text)


def error(text: str) -> None:
    _emit(ERROR, "error: " + text)


def warn(text: str) -> None:
    _emit(WARN, "warning: " + text)


def lifecycle(text: str) -> None:
    """A lifecycle line (boot, CMD exit, shutdown): shown at the default verbosity."""
    _emit(WARN, text)


def info(text: str) -> None:
    _emit(INFO, text)


def debug(text: str) -> None:
    _emit(DEBUG, text)
