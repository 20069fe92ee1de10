"""The built-in logger: a service's output read from the pipe ignity holds, framed into lines,
written to its log directory and/or the container's stdout, without a logger process. Also
``ignity log``, the same code as a command reading its stdin.

Back-pressure, not buffering: a pump holds at most one read of its pipe (READ_MAX) and one
unfinished line. When the container's stdout cannot take more (its reader stalled), the pump stops
reading its pipe until stdout drains: that service's pipe fills and its writes block, and nobody
else's. Files are written at once (a regular file never says "later"); when they fail the lines
are dropped and counted (``logdir``), never held.

Nothing here polls or arms a timer: a pump costs nothing while its service is silent.
"""

from __future__ import annotations

import os
import signal
import stat
import time

from . import log
from .logconf import LogConfig
from .logdir import LogDir
from .logformat import Framer, renderer
from .loop import Loop

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: `collections` costs ~1.4 ms at start-up
    from collections.abc import Callable

# one read of a pipe: the default pipe capacity, so a full pipe is emptied in one go
READ_MAX = 64 * 1024
# at the end of a log, how many reads a drain may take: a pipe holds 64 KiB (1 MiB if enlarged);
# a writer that is still alive (a grandchild) must not keep ignity reading forever
DRAIN_READS_MAX = 16


class Stdout:
    """The container's stdout for the logs that copy lines to it.

    PID 1 must never block on it: a reader that stalls (``docker logs`` driver, a paused
    terminal) would freeze everything. Setting O_NONBLOCK on fd 1 is not an option, as the
    services share that open file description and would get EAGAIN. A pipe or a terminal is
    opened again through /proc/self/fd/1: a description of our own, made non-blocking. A regular
    file never blocks and is used through a dup (sharing the offset with the services); a socket
    gets MSG_DONTWAIT on each send.
    """

    def __init__(self, loop: Loop | None, fd: int = 1, blocking: bool = False):
        self.loop = loop
        self.lost = 0
        self.failure: str | None = None
        self._waiting: list[Pump] = []
        self._sock = None  # a socket.socket when stdout is a socket
        self.fd = os.dup(fd) if blocking else self._open(fd)

    def _open(self, fd: int) -> int:
        mode = os.fstat(fd).st_mode
        if stat.S_ISFIFO(mode) or stat.S_ISCHR(mode):
            try:
                # O_NOCTTY: PID 1 is a session leader, and opening a terminal would make it ours
                return os.open(f"/proc/self/fd/{fd}", os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
            except OSError:
                pass  # no /proc: a dup, which can block (said in docs/logging.md)
        dup = os.dup(fd)
        if stat.S_ISSOCK(mode):
            import socket  # rare (stdout a socket): not on the path of every start

            self._sock = socket.socket(fileno=dup)
            self._dontwait = socket.MSG_DONTWAIT
        return dup

    def write(self, data: bytes) -> int:
        """Bytes taken (all of them when stdout is gone: those lines are counted lost)."""
        try:
            if self._sock is not None:
                return self._sock.send(data, self._dontwait)
            return os.write(self.fd, data)
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError as e:
            self.lost += data.count(b"\n")
            if self.failure is None:
                self.failure = e.strerror or str(e)
                log.warn(f"unable to write log lines to the container's stdout: {self.failure} "
                         "(they are dropped and counted)")
            return len(data)

    def wait(self, pump: Pump) -> None:
        """Call ``pump.flush_stdout()`` when stdout can take more; pumps wait in order."""
        if pump not in self._waiting:
            self._waiting.append(pump)
        if len(self._waiting) == 1 and self.loop is not None:
            self.loop.add_writer(self.fd, self._writable)

    def forget(self, pump: Pump) -> None:
        if pump in self._waiting:
            self._waiting.remove(pump)
            if not self._waiting and self.loop is not None:
                self.loop.remove_writer(self.fd)

    def _writable(self) -> None:
        while self._waiting:
            if not self._waiting[0].flush_stdout():
                return
            self._waiting.pop(0)
        if self.loop is not None:
            self.loop.remove_writer(self.fd)


class Pump:
    """One log: the read end of a pipe -> lines -> log directory and/or stdout."""

    def __init__(self, loop: Loop | None, fd: int, config: LogConfig, what: str, stdout: Stdout | None):
        self.loop = loop
        self.fd = fd
        self.config = config
        self.what = what                      # "log web", for messages
        self.framer = Framer()
        self.dir = LogDir(config.directory, config.max_size, config.keep, what) if config.directory else None
        self.stdout = stdout if config.stdout else None
        self.reading = False
        self.closed = False
        self.ended = False                    # end of input seen
        self.bytes_in = 0
        # lines waiting for stdout: the unwritten end of a started line, the lines not begun
        # (raw, as read: at most one read), and the head they are rendered with
        self._fragment = b""
        self._pending: list[bytes] = []
        self._pending_render: Callable[[list[bytes]], bytes] = _nothing

    # ---- reading ------------------------------------------------------------------------------
    def start(self, nonblocking: bool = True) -> None:
        """Watch the pipe. ``nonblocking`` only on a read end nobody else shares: a logger
        started later on the same open file (``log/run``) would inherit O_NONBLOCK."""
        if nonblocking:
            os.set_blocking(self.fd, False)
        if self.dir is not None:
            self.dir.prepare()
        self._resume()

    def _resume(self) -> None:
        if not self.reading and not self.ended and not self.closed and self.loop is not None:
            self.reading = True
            self.loop.add_reader(self.fd, self.readable)

    def _pause(self) -> None:
        if self.reading and self.loop is not None:
            self.reading = False
            self.loop.remove_reader(self.fd)

    def readable(self) -> bool:
        """Read once; False when there was nothing to read (now or ever again)."""
        try:
            data = os.read(self.fd, READ_MAX)
        except BlockingIOError:
            return False
        except OSError:
            data = b""
        if not data:
            self.ended = True
            self._pause()
            self.feed_lines(self.framer.flush())
            return False
        self.bytes_in += len(data)
        self.feed_lines(self.framer.feed(data))
        return True

    def feed(self, data: bytes) -> None:
        """Lines from a chunk of input that did not come through ``fd`` (``ignity log`` on a file)."""
        self.bytes_in += len(data)
        self.feed_lines(self.framer.feed(data))

    def feed_lines(self, lines: list[bytes]) -> None:
        if not lines:
            return
        ns = time.time_ns()
        c = self.config
        if self.dir is not None:
            self.dir.write(renderer(c.format, c.file_timestamp, c.prefix, c.name, ns)(lines))
        if self.stdout is not None:
            if self._pending or self._fragment:  # behind earlier lines: keep the order
                self._pending.extend(lines)
                return
            render = renderer(c.format, c.stdout_timestamp, c.prefix, c.name, ns)
            out = render(lines)
            taken = self.stdout.write(out)
            if taken < len(out):
                self._hold(b"", lines, render, taken)

    # ---- stdout back-pressure -------------------------------------------------------------------
    def _hold(self, fragment: bytes, lines: list[bytes], render: Callable[[list[bytes]], bytes],
              taken: int) -> None:
        """Keep what stdout did not take, as raw lines (so held memory is at most one read) with
        the renderer of the moment they were read, and stop reading until it drains."""
        if taken < len(fragment):
            self._fragment, self._pending = fragment[taken:], lines
        else:
            taken -= len(fragment)
            self._fragment, self._pending = b"", []
            for i, line in enumerate(lines):  # stdout is stalled: one render per line is cheap here
                rendered = render([line])
                if taken < len(rendered):
                    self._fragment = rendered[taken:]
                    self._pending = lines[i + 1:]
                    break
                taken -= len(rendered)
        self._pending_render = render
        if self._fragment or self._pending:
            self._pause()
            if self.stdout is not None:
                self.stdout.wait(self)

    def flush_stdout(self) -> bool:
        """Write what waits for stdout; True once nothing waits (reading resumes)."""
        if self.stdout is None or not (self._fragment or self._pending):
            return True
        fragment, lines = self._fragment, self._pending
        out = fragment + (self._pending_render(lines) if lines else b"")
        taken = self.stdout.write(out)
        if taken < len(out):
            self._hold(fragment, lines, self._pending_render, taken)
            return False
        self._fragment, self._pending = b"", []
        self._resume()
        return True

    @property
    def held(self) -> int:
        """Bytes of input read but not yet written (bounded by READ_MAX plus one line)."""
        return len(self._fragment) + sum(map(len, self._pending)) + len(self.framer.partial)

    # ---- control --------------------------------------------------------------------------------
    def reconfigure(self, config: LogConfig, stdout: Stdout | None) -> None:
        """New knobs (read again at a restart of the service). A new directory, size or count
        closes the old directory and opens the new one; stdout changes once nothing waits for it."""
        old, self.config = self.config, config
        if (config.directory, config.max_size, config.keep) != (old.directory, old.max_size, old.keep):
            if self.dir is not None:
                self.dir.close()
            self.dir = LogDir(config.directory, config.max_size, config.keep, self.what) \
                if config.directory else None
            if self.dir is not None:
                self.dir.prepare()
        if not (self._fragment or self._pending):
            self.stdout = stdout if config.stdout else None

    def rotate(self) -> None:
        if self.dir is not None:
            self.dir.rotate_now()

    def drain(self) -> None:
        """Read what the pipe holds now (the service has stopped): bounded, never waits."""
        for _ in range(DRAIN_READS_MAX):
            if self._fragment or self._pending or not self.readable():
                return

    def flush_partial(self) -> None:
        """The unfinished last line goes out as a line (its writer has exited)."""
        self.feed_lines(self.framer.flush())

    def close(self, drain: bool = True) -> None:
        """End of this log: drain (unless told not to: a stop signal means now), write the last
        partial line, close the directory cleanly. What stdout still refuses after one last try
        is counted lost."""
        if self.closed:
            return
        self.closed = True
        if drain:
            self.drain()
        self._pause()
        self.flush_partial()
        if self.dir is not None:
            self.dir.close()
        if self.stdout is not None:
            self.flush_stdout()
            self.stdout.forget(self)
            lost = len(self._pending) + (1 if self._fragment else 0)
            if lost:
                log.warn(f"{self.what}: {lost} lines could not be written to stdout before the end")
            self._fragment, self._pending = b"", []


def _nothing(lines: list[bytes]) -> bytes:
    return b""


def run_command(config: LogConfig, what: str = "log") -> int:
    """``ignity log``: stdin to the log until end of input or SIGTERM; SIGALRM rotates (as s6-log)."""
    loop = Loop()
    stdout = Stdout(loop, blocking=True) if config.stdout else None  # its own process: it may block
    pump = Pump(loop, 0, config, what, stdout)
    stop: list[int] = []
    loop.watch_signal(signal.SIGALRM, lambda _sig: pump.rotate())
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.watch_signal(signum, stop.append)
    if pump.dir is not None:
        pump.dir.prepare()  # as s6-log: the directory is made and recovered before the first line
    mode = os.fstat(0).st_mode
    if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or os.isatty(0):
        # polled, so that SIGALRM rotates at once; reads stay blocking (one read per readiness)
        pump.start(nonblocking=False)
        loop.run_until(lambda: pump.ended or bool(stop))
    else:
        _read_all(pump, lambda: bool(stop))  # a file or /dev/null cannot be polled: read it straight
    pump.close(drain=False)
    return 0


def _read_all(pump: Pump, stopped: Callable[[], bool]) -> None:
    while not stopped():
        data = os.read(pump.fd, READ_MAX)
        if not data:
            break
        pump.feed(data)
