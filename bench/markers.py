"""The marker files the services write, watched with inotify (through ctypes: no extra deps).

Every service's ``run`` writes ``NAME.pid`` when it starts and ``NAME.term`` when its TERM
handler has finished. inotify reports each file when it is closed after writing, so the
benchmark learns the moment a service is up without polling a directory of 500 files (polling
would also steal CPU from the supervisor being measured on a 2-core machine).
"""

from __future__ import annotations

import ctypes
import os
import select
import struct
import time
from collections.abc import Callable
from pathlib import Path

IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC
IN_CLOSE_WRITE = 0x00000008
# while waiting for many markers, how often to check that the tool is still running
ALIVE_CHECK_S = 0.1
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len; then len bytes of name

_libc = ctypes.CDLL(None, use_errno=True)


class Markers:
    """Watches ``directory`` from creation on; ``seen[name]`` is the perf_counter time at which
    the latest write of ``name`` was observed."""

    def __init__(self, directory: Path):
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.fd = _libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        if _libc.inotify_add_watch(self.fd, os.fsencode(directory), IN_CLOSE_WRITE) < 0:
            os.close(self.fd)
            raise OSError(ctypes.get_errno(), f"inotify_add_watch {directory}")
        self.seen: dict[str, float] = {}
        self._poll = select.poll()
        self._poll.register(self.fd, select.POLLIN)

    def close(self) -> None:
        os.close(self.fd)

    def __enter__(self) -> Markers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _read(self, timeout_s: float) -> list[str]:
        """Names closed after writing, waiting at most ``timeout_s`` for the first one."""
        if not self._poll.poll(max(0, int(timeout_s * 1000))):
            return []
        now = time.perf_counter()
        names = []
        try:
            data = os.read(self.fd, 1 << 16)
        except BlockingIOError:
            return []
        offset = 0
        while offset < len(data):
            _wd, _mask, _cookie, length = _EVENT.unpack_from(data, offset)
            offset += _EVENT.size
            name = data[offset : offset + length].rstrip(b"\0").decode()
            offset += length
            self.seen[name] = now
            names.append(name)
        return names

    def drain(self) -> None:
        while self._read(0):
            pass

    def wait_count(self, suffix: str, count: int, timeout_s: float,
                   alive: Callable[[], bool] = lambda: True) -> float | None:
        """Time at which ``count`` distinct names ending in ``suffix`` had been written, or None
        after ``timeout_s`` or as soon as ``alive()`` turns false."""
        deadline = time.perf_counter() + timeout_s
        while True:
            done = [t for name, t in self.seen.items() if name.endswith(suffix)]
            if len(done) >= count:
                return max(done)
            left = deadline - time.perf_counter()
            if left <= 0 or not alive():
                return None
            self._read(min(left, ALIVE_CHECK_S))

    def wait_write(self, name: str, timeout_s: float) -> float | None:
        """Time at which ``name`` is next written, or None."""
        deadline = time.perf_counter() + timeout_s
        while True:
            left = deadline - time.perf_counter()
            if left <= 0:
                return None
            if name in self._read(left):
                return self.seen[name]

    def count(self, suffix: str) -> int:
        self.drain()
        return sum(1 for name in self.seen if name.endswith(suffix))

    def pid(self, name: str) -> int | None:
        try:
            return int((self.directory / f"{name}.pid").read_text())
        except (OSError, ValueError):
            return None
