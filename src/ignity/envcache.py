"""The environment every child gets -- ignity's own with the envdir laid over it (SPEC §4) --
read once and kept until the envdir changes.

Every spawn must see the envdir "as it is at that moment", and re-reading it each time costs a
few system calls per variable (≈ 180 ms of CPU per restart at 10 000 variables). An inotify
watch on the envdir says when it changed: the kernel queues the event inside the write, rename
or unlink itself, so by the time a script that changed a variable has exited, the event is
waiting. ``get()`` reads the inotify fd (non-blocking, one system call) before it trusts the
cache; the loop watches the fd too, so events never pile up in the kernel. Nothing is polled:
an idle ignity makes no system call for this.

The first read is free when stage 1 hands over what it wrote (``written``): until ignity
starts its first process, only ignity has touched the envdir, and its files hold exactly that
mapping (the value plus one newline, read back as the value). The watch is set up at the second
read, not the first: a container whose envdir is read once (``/init CMD`` without services or
init scripts) never pays for it. Closing an inotify instance
that holds a watch waits for the kernel's SRCU grace period (≈ 20 ms, more than the whole rest
of ignity's start-up), and that close happens when ignity exits.

The cache is not used (the envdir is read at every spawn, as without it) when inotify is not
available (no ctypes, seccomp, the per-user instance limit), when the envdir is missing, or
when it holds a symbolic link (a change to the link's target makes no event in the envdir).
A change made through a hard link from another directory makes no event either: the envdir is
ignity's own, written in place.
"""

from __future__ import annotations

import os

from . import envdir, log
from .loop import Loop

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: `collections` costs ~1.4 ms at start-up
    from collections.abc import Mapping

# <sys/inotify.h>
IN_MODIFY, IN_ATTRIB, IN_CLOSE_WRITE = 0x2, 0x4, 0x8
IN_MOVED_FROM, IN_MOVED_TO, IN_CREATE, IN_DELETE = 0x40, 0x80, 0x100, 0x200
IN_DELETE_SELF, IN_MOVE_SELF = 0x400, 0x800
WATCH_MASK = (IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE
              | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF)


class EnvCache:
    """``get()``: ``base`` with the envdir at ``path`` laid over it, as it is now. The dict
    returned is shared between calls until the envdir changes: callers must not modify it (the
    spawn module then also reuses its encoded form)."""

    def __init__(self, loop: Loop, base: Mapping[str, str], path: str, written: dict[str, str] | None = None):
        self._loop = loop
        self._written = written  # the first read's answer: see above
        self._base = dict(base)
        self._path = path
        self._fd: int | None = None
        self._add_watch = None
        self._watching = False   # the watch is on the envdir that exists now
        self._env: dict[str, str] | None = None
        self._reads = 0

    def get(self) -> dict[str, str]:
        self._reads += 1
        if self._reads == 1:  # maybe the only read: see above
            written, self._written = self._written, None
            return written if written is not None else envdir.overlay(self._base, self._path)
        if self._reads == 2:
            self._open()
        if self._fd is not None:
            self._drain()
        if self._env is not None:
            return self._env
        if self._fd is not None and not self._watching:
            # (re)watch before reading: a change made while we read is then seen next time
            self._watching = self._add_watch(self._fd, os.fsencode(self._path), WATCH_MASK) >= 0
        env = envdir.overlay(self._base, self._path)
        if self._watching and not envdir.has_links(self._path):
            self._env = env
        return env

    def _open(self) -> None:
        try:
            import ctypes  # loaded for posix_spawn anyway by the time a child is started

            libc = ctypes.CDLL(None, use_errno=True)
            fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        except (OSError, AttributeError) as e:
            log.debug(f"no inotify ({e}): the envdir is read at every start")
            return
        if fd < 0:
            log.debug(f"no inotify ({os.strerror(ctypes.get_errno())}): the envdir is read at every start")
            return
        self._fd = fd
        self._add_watch = libc.inotify_add_watch
        self._loop.add_reader(fd, self._drain)

    def _drain(self) -> None:
        """Any event means: read the envdir again next time. An event about the directory itself
        (removed, moved, the watch dropped) is covered by watching again before that read."""
        changed = False
        try:
            while os.read(self._fd, 65536):
                changed = True
        except BlockingIOError:
            pass
        except OSError:
            changed = True
        if changed:
            self._env = None
            self._watching = False
