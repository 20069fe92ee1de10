"""ignity's own messages: one line each on stderr, prefixed ``ignity: `` (SPEC §9).

Levels follow IGNITY_VERBOSITY: 0 errors only, 1 warnings and lifecycle lines, 2 info, 3 debug.
Lines are written with one ``os.write`` so they never interleave with a child's output half-way
and never sit in a Python buffer when PID 1 exits.

PID 1 must never block on its own messages: a container whose log reader stalls would otherwise
stop reaping, serving and shutting down at the first line past the pipe's buffer. After
``never_block()`` a message that finds stderr full is dropped and counted, and the next one that
gets through is preceded by how many were lost. fd 2 is usually shared with the services, so its
open file description is never made non-blocking (they would get EAGAIN): for a pipe, FIFO or
terminal ignity opens its own description of the same file through /proc/self/fd/2; for a socket
it sends with MSG_DONTWAIT; otherwise it asks poll() first.
"""

from __future__ import annotations

import os
import stat

ERROR, WARN, INFO, DEBUG = 0, 1, 2, 3

_verbosity = WARN
# where messages go, and how: fd 2 as it is until never_block() found better
_fd = 2
_send = None   # a socket's send, with MSG_DONTWAIT
_poll = None   # a poll object on fd 2, asked before each write
_lost = 0      # messages dropped while stderr was full, not yet reported
# lines are cut to this, so that a write to a non-blocking pipe is all or nothing (PIPE_BUF)
MAX_LINE = 4096


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
    global _lost
    if _lost and _write(f"ignity: warning: {_lost} message(s) lost: stderr was full "
                        "(nothing reads the container's output)\n"):
        _lost = 0
    if not _lost and _write(line):
        return
    _lost += 1


def _write(line: str) -> bool:
    """Write one line without blocking; False when stderr was full (the line is dropped)."""
    data = line.encode("utf-8", "replace")
    if len(data) > MAX_LINE:
        data = data[:MAX_LINE - 4] + b"...\n"
    try:
        if _send is not None:
            _send(data)
            return True
        if _poll is not None and not _poll.poll(0):
            return False
        os.write(_fd, data)
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        pass  # stderr gone (closed terminal, reader exited): nothing sensible to do, never die for it
    return True


def never_block() -> None:
    """From now on a full stderr drops messages instead of blocking ignity (see the module doc)."""
    global _fd, _send, _poll
    try:
        mode = os.fstat(2).st_mode
    except OSError:
        return  # no stderr at all: writes fail at once, nothing can block
    if stat.S_ISREG(mode) or stat.S_ISBLK(mode):
        return  # a file: a write never waits for a reader
    if stat.S_ISSOCK(mode):
        import socket  # only when stderr is a socket (journald's stream, a log driver's)

        sock = socket.socket(fileno=os.dup(2))
        _send = lambda data: sock.send(data, socket.MSG_DONTWAIT)  # noqa: E731
        return
    try:
        # a new open file description of the same pipe, FIFO or terminal, private to ignity
        _fd = os.open("/proc/self/fd/2", os.O_WRONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
        return
    except OSError:
        pass  # no /proc, or a FIFO whose reader is gone
    import select  # selectors, which the loop uses, has imported it already

    _poll = select.poll()
    _poll.register(2, select.POLLOUT)


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
