"""A log directory in the s6-log / svlogd layout: ``current``, archived files ``@TAI64N.s``,
rotation, and what happens when the disk says no.

The layout, as s6-log leaves it (and as log shippers and ``s6-tai64nlocal`` users expect):

- ``current``: the file being written. The user-execute bit marks a file no logger writes to
  any more: cleared while ignity writes, set when it closes cleanly.
- ``@<TAI64N label>.s``: an archived file, named by the moment of its rotation, mode 0744.
- ``@<TAI64N label>.u``: a ``current`` found unfinished at start (its writer died): kept, not
  appended to, so a crash never mixes two runs in one file.
- ``lock``: locked while a logger writes here, so two loggers never interleave in one ``current``.

Rotation happens before a write would make ``current`` pass ``max-size``; only whole lines are
written, so a line is never split across two files. Beyond ``keep`` archived files, the oldest go.
At a rotation the archived file's write-back to disk is started, not waited for: an fsync would
stop the one process that logs and supervises every service for as long as the disk takes (s6-log,
a process per log, can afford to wait there). No line is lost when a process dies, ignity
included: they are in the kernel's page cache. What a power loss can take is what the kernel had
not written back yet, seconds at most. ``current`` is fsync'ed when the log is closed.

Never blocking, never dying: a write that fails (full disk, read-only or removed directory,
another logger holding the lock) drops the lines it carried, counts them, and says so once per
episode; the next lines try again, and the first that get through end the episode with the count
lost. A short write is truncated away so that ``current`` holds whole lines only.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time

from . import log
from .logformat import tai64n

# while writes fail, try again at most this often (the lines in between are dropped and counted):
# a full disk is not retried at the pace of the service's output
RETRY_S = 1.0
# a full file system counts as writable again only once this much more room was made than it had
# when the write failed (and beyond the lines to write): without that, the room left by the failed
# write itself, or the last bytes of a page, take a line or two and the episode flaps
RESUME_FREE_BYTES = 16 * 1024
MODE_WRITING = 0o644
MODE_DONE = 0o744  # user-execute: finished (s6-log's mark)
CURRENT = "current"
_HEX = frozenset("0123456789abcdef")


def is_archive(name: str) -> bool:
    """``@`` + 24 hex digits + ``.s`` or ``.u``: the files rotation made or recovery kept."""
    return (len(name) == 27 and name[0] == "@" and name[25] == "." and name[26] in "su"
            and set(name[1:25]) <= _HEX)


def _lock(fd: int) -> None:
    """Lock the whole file or raise. An open-file-description lock: it conflicts with s6-log's
    (a POSIX lock) and with another LogDir of this same process (two services given one
    directory), which a POSIX lock would not."""
    import struct  # at the first log directory only: not on the path of every start

    try:
        # struct flock: l_type, l_whence, l_start, l_len, l_pid (the layout of 64-bit Linux)
        fcntl.fcntl(fd, fcntl.F_OFD_SETLK, struct.pack("hhxxxxqqixxxx", fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0))
    except (AttributeError, OverflowError):  # pragma: no cover - a kernel or libc without OFD locks
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


class LogDir:
    def __init__(self, path: str, max_size: int, keep: int, what: str):
        self.path = path
        self.max_size = max_size
        self.keep = keep
        self.what = what          # who speaks in messages: "log web"
        self.fd: int | None = None
        self.size = 0
        self.lost = 0             # lines dropped in the current episode of failure
        self.failure: str | None = None
        self._full = False        # the failure is a full file system (ENOSPC, EDQUOT)
        self._free_at_failure = 0
        self._retry_at = 0.0
        self._lock_fd: int | None = None
        self._recovered = False   # the leftovers of an earlier run were archived
        self._last_label = 0

    # ---- writing --------------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        """Append whole lines (``data`` ends with a newline), rotating as needed."""
        if self.failure is not None and not self._may_retry(len(data)):
            self.lost += data.count(b"\n")
            return
        start = 0
        try:
            if self.fd is None:
                self._open()
            end = len(data)
            while True:
                room = self.max_size - self.size
                if end - start <= room:
                    self._append(data, start, end)
                    break
                cut = data.rfind(b"\n", start, start + room) + 1
                if not cut and not self.size:
                    cut = data.find(b"\n", start) + 1  # one line larger than max-size: a file of its own
                if cut:
                    self._append(data, start, cut)
                    start = cut
                    if start == end:
                        break
                self.rotate()
        except OSError as e:
            self._fail(e, data.count(b"\n", start))
            return
        if self.failure is not None:
            log.warn(f"{self.what}: writing to {self.path} again; {self.lost} lines were lost")
            self.failure, self.lost = None, 0

    def _append(self, data: bytes, start: int, end: int) -> None:
        assert self.fd is not None
        view = memoryview(data)[start:end]
        written = 0
        try:
            while written < len(view):
                written += os.write(self.fd, view[written:])
        except OSError:
            if written:
                try:
                    os.ftruncate(self.fd, self.size)  # whole lines only in current
                except OSError:
                    pass
            raise
        self.size += written

    def rotate(self) -> None:
        """Archive ``current`` as ``@TAI64N.s`` and start an empty one (nothing to do when it is
        empty). Raises OSError."""
        if self.fd is None:
            self._open()
        assert self.fd is not None
        if not self.size:
            return
        os.rename(self._file(CURRENT), self._file(self._archive_name("s")))
        try:
            # start the write-back now, without waiting for it (and let the cache go: a log that is
            # read again is the exception; its pages would weigh on the container's memory limit)
            os.posix_fadvise(self.fd, 0, 0, os.POSIX_FADV_DONTNEED)
        except OSError:
            pass
        old, self.fd = self.fd, None
        try:
            os.fchmod(old, MODE_DONE)
        finally:
            os.close(old)
        self._open_current()
        self._trim()

    def prepare(self) -> None:
        """Open (and recover) the directory now rather than at the first line, as s6-log does at
        start: a problem is reported at once. Failures are reported, not raised."""
        if self.fd is None:
            try:
                self._open()
            except OSError as e:
                self._fail(e, 0)

    def rotate_now(self) -> None:
        """Rotation on demand (``ignity svc -a``, SIGALRM): failures are reported, not raised."""
        try:
            self.rotate()
        except OSError as e:
            self._fail(e, 0)

    def close(self) -> None:
        """Finish cleanly: ``current`` synced and marked done, the lock released."""
        if self.fd is not None:
            try:
                os.fsync(self.fd)
                os.fchmod(self.fd, MODE_DONE)
            except OSError:
                pass
            os.close(self.fd)
            self.fd = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        if self.failure is not None and self.lost:
            log.warn(f"{self.what}: {self.lost} lines were lost ({self.failure})")

    # ---- opening and recovery -------------------------------------------------------------------
    def _file(self, name: str) -> str:
        return os.path.join(self.path, name)

    def _open(self) -> None:
        if self._lock_fd is None:
            os.makedirs(self.path, exist_ok=True)
            fd = os.open(self._file("lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                _lock(fd)
            except OSError as e:
                os.close(fd)
                if e.errno in (errno.EAGAIN, errno.EACCES):
                    e.strerror = f"{self._file('lock')} is held by another logger"
                raise
            self._lock_fd = fd
        if not self._recovered:
            self._recover()
            self._recovered = True
        self._open_current()

    def _recover(self) -> None:
        """What an earlier writer left: s6-log's ``previous`` (a rotation it did not finish) and a
        ``current`` without its done mark become ``.u`` archives; a finished ``current`` is
        appended to."""
        for name in ("previous", CURRENT):
            try:
                st = os.stat(self._file(name))
            except FileNotFoundError:
                continue
            if name == CURRENT and st.st_mode & 0o100:
                continue
            if st.st_size:
                os.rename(self._file(name), self._file(self._archive_name("u")))
            else:
                os.unlink(self._file(name))
        self._trim()

    def _open_current(self) -> None:
        fd = os.open(self._file(CURRENT), os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, MODE_WRITING)
        try:
            os.fchmod(fd, MODE_WRITING)  # not done: being written
            self.size = os.fstat(fd).st_size
        except OSError:
            os.close(fd)
            raise
        self.fd = fd

    def _archive_name(self, suffix: str) -> str:
        # strictly increasing, so two rotations in one clock tick never overwrite an archive
        ns = max(time.time_ns(), self._last_label + 1)
        self._last_label = ns
        return tai64n(ns).decode() + "." + suffix

    def _trim(self) -> None:
        """Remove the oldest archives beyond ``keep`` (names sort as their timestamps)."""
        archives = sorted(name for name in os.listdir(self.path) if is_archive(name))
        for name in archives[:max(0, len(archives) - self.keep)]:
            try:
                os.unlink(self._file(name))
            except FileNotFoundError:
                pass

    # ---- failure --------------------------------------------------------------------------------
    def _may_retry(self, size: int) -> bool:
        now = time.monotonic()
        if now < self._retry_at:
            return False
        self._retry_at = now + RETRY_S
        if not self._full:
            return True
        free = self._free()
        if free is None:
            return True  # let the write say what is wrong now
        return free >= max(size, self._free_at_failure) + RESUME_FREE_BYTES

    def _free(self) -> int | None:
        try:
            st = os.statvfs(self.path)
        except OSError:
            return None
        return st.f_bavail * st.f_frsize

    def _fail(self, e: OSError, lines: int) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None  # the next write opens current again (it may be gone, or writable again)
        self.lost += lines
        self._full = e.errno in (errno.ENOSPC, errno.EDQUOT)
        if self._full:
            self._free_at_failure = self._free() or 0
        self._retry_at = time.monotonic() + RETRY_S
        reason = e.strerror or str(e)
        if self.failure is None:
            self.failure = reason
            log.warn(f"{self.what}: unable to write to {self.path}: {reason} "
                     "(lines are dropped and counted until it works again)")
