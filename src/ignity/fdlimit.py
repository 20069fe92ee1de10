"""How many file descriptors a configuration needs, against RLIMIT_NOFILE.

ignity holds some descriptors for as long as it runs: both ends of each logger pipe (so that
neither side's restart loses a line) and the read end of each notification fd while its service
is up. Under a low limit (``docker run --ulimit nofile=64``) a large configuration cannot boot;
this module says so before anything starts, with the numbers and the fix, instead of an
``OSError`` half-way through the boot.
"""

from __future__ import annotations

import os

from .confdir import visible_dirs

# a spawn may need two more for a moment (a notification pipe), a few control clients one each
HEADROOM = 8
# what to suggest: comfortably above the need, a round number
SUGGESTED_MIN = 1024


class Budget:
    """The descriptors a services/ tree will hold once its services run."""

    __slots__ = ("loggers", "notified", "open_now", "services")

    def __init__(self, services_dir: str):
        self.services = self.loggers = self.notified = 0
        for name in visible_dirs(services_dir):
            path = os.path.join(services_dir, name)
            self.services += 1
            self.notified += os.path.exists(os.path.join(path, "notification-fd"))
            if os.path.isdir(os.path.join(path, "log")):
                self.loggers += 1
                self.notified += os.path.exists(os.path.join(path, "log", "notification-fd"))
        self.open_now = _open_count() if self.services else 0

    @property
    def needed(self) -> int:
        return self.open_now + 2 * self.loggers + self.notified + HEADROOM

    def shortage(self, limit: int) -> str:
        """The one-line explanation of running out at ``limit``."""
        suggested = max(SUGGESTED_MIN, 2 * self.needed)
        return (f"out of file descriptors: the limit (RLIMIT_NOFILE) is {limit}, and {self.services} "
                f"services with {self.loggers} loggers need about {self.needed} (2 per logger pipe, "
                f"1 per notification-fd, {self.open_now + HEADROOM} for ignity itself): raise it, "
                f"e.g. docker run --ulimit nofile={suggested}")


def limit() -> int:
    """The soft RLIMIT_NOFILE, -1 when unlimited. sysconf asks getrlimit (glibc and musl alike)
    without opening anything, so it answers when the descriptors are gone, and it spares every
    start the ``resource`` module (~0.3 ms)."""
    return os.sysconf("SC_OPEN_MAX")


def unlimited(value: int) -> bool:
    return value < 0


def _open_count() -> int:
    try:
        return len(os.listdir("/proc/self/fd")) - 1  # less the one listdir opened
    except OSError:
        return 16  # no /proc: a typical count at this point of the boot
