"""The event loop: one selector, signals through a wakeup fd, timers, and the reaper.

This is the only module that calls ``waitpid``. Each reaped pid goes to the callback registered
for it by whoever started it; any other pid is an orphan the kernel handed to us (PID 1 or child
subreaper) and is simply reaped. Nothing here polls: the loop sleeps in one ``select`` until a
watched fd is readable, a signal arrives, or the nearest timer is due; with no timers it sleeps
without a timeout, so an idle ignity makes no system calls.

Why a wakeup fd (PEP 475): CPython retries ``epoll_wait`` after a signal handler runs and only
a raising handler gets out, so a handler alone would not wake the loop. ``signal.set_wakeup_fd``
writes a byte for every signal that has a Python handler; the handlers only record the signal,
and the loop acts on it after ``select`` returns (handlers run between bytecodes, anywhere).
"""

from __future__ import annotations

# _signal, _socket, _heapq and epoll rather than `signal`, `socket`, `heapq` and `selectors`:
# the same calls without their enums, namedtuples and pure-Python parts, which would cost ~4 ms
# of every container start
import _heapq as heapq
import _signal as signal
import _socket
import itertools
import math
import os
import select
import time

from . import log

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: `collections` costs ~1.4 ms at start-up
    from collections.abc import Callable

Callback = "Callable[[], None]"  # a name for annotations only


class Timer:
    """A callback due at ``when`` (time.monotonic); ``cancel()`` drops it."""

    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callback):
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Loop:
    def __init__(self) -> None:
        self._epoll = select.epoll()
        self._events: dict[int, int] = {}  # fd -> the epoll events it is registered for
        self._readers: dict[int, Callback] = {}
        self._writers: dict[int, Callback] = {}
        self._timers: list[tuple[float, int, Timer]] = []
        self._seq = itertools.count()
        self._exit_callbacks: dict[int, Callable[[int], None]] = {}
        self._signal_callbacks: dict[int, Callable[[int], None]] = {}
        self._pending_signals: list[int] = []
        # True until a waitpid says ECHILD: then nothing is left in our process tree
        self.has_children = True
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._set_events(self._wake_r, select.EPOLLIN)
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        self.watch_signal(signal.SIGCHLD, lambda _sig: self.reap())

    # ---- registration -------------------------------------------------------------------------
    def watch_signal(self, signum: int, callback: Callable[[int], None]) -> None:
        """Run ``callback(signum)`` from the loop when ``signum`` arrives."""
        self._signal_callbacks[signum] = callback
        signal.signal(signum, self._record_signal)

    def _record_signal(self, signum: int, _frame: object) -> None:
        self._pending_signals.append(signum)

    def on_exit(self, pid: int, callback: Callable[[int], None]) -> None:
        """Run ``callback(wait_status)`` when ``pid`` is reaped."""
        self._exit_callbacks[pid] = callback

    def add_reader(self, fd: int, callback: Callback) -> None:
        self._readers[fd] = callback
        self._update(fd)

    def remove_reader(self, fd: int) -> None:
        if self._readers.pop(fd, None) is not None:
            self._update(fd)

    def add_writer(self, fd: int, callback: Callback) -> None:
        """Run ``callback`` when ``fd`` can be written (a log waiting for a stalled stdout)."""
        self._writers[fd] = callback
        self._update(fd)

    def remove_writer(self, fd: int) -> None:
        if self._writers.pop(fd, None) is not None:
            self._update(fd)

    def send(self, sock: _socket.socket, data: bytes, done: Callback) -> None:
        """Write ``data`` to the non-blocking ``sock`` as fast as the peer reads it, from the loop
        (a reply larger than the socket buffer must not hold PID 1 in a blocking send), then call
        ``done()``; also when the peer is gone. Whoever closes ``sock`` before that calls
        ``remove_writer`` (a bound on the time the peer may take is the caller's)."""
        fd = sock.fileno()
        rest = memoryview(data)

        def attempt() -> None:
            nonlocal rest
            try:
                rest = rest[sock.send(rest):]
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                rest = rest[:0]  # the peer is gone: nothing more to write
            if not rest:
                self.remove_writer(fd)
                done()
            elif fd not in self._writers:
                self.add_writer(fd, attempt)

        attempt()

    def _update(self, fd: int) -> None:
        self._set_events(fd, (select.EPOLLIN if fd in self._readers else 0)
                         | (select.EPOLLOUT if fd in self._writers else 0))

    def _set_events(self, fd: int, events: int) -> None:
        registered = self._events.get(fd, 0)
        if events == registered:
            return
        if not events:
            del self._events[fd]
            try:
                self._epoll.unregister(fd)
            except OSError:
                pass  # closed already: the kernel dropped it from the epoll set itself
            return
        if registered:
            self._epoll.modify(fd, events)
        else:
            self._epoll.register(fd, events)
        self._events[fd] = events

    def call_at(self, when: float, callback: Callback) -> Timer:
        timer = Timer(when, callback)
        heapq.heappush(self._timers, (when, next(self._seq), timer))
        return timer

    def call_later(self, delay: float, callback: Callback) -> Timer:
        return self.call_at(time.monotonic() + delay, callback)

    # ---- running ------------------------------------------------------------------------------
    def run_until(self, done: Callable[[], bool], timeout: float | None = None) -> bool:
        """Run until ``done()`` is true (returns True) or ``timeout`` seconds pass (False)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not done():
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                return False
            self.run_once(deadline)
        return True

    def run_once(self, deadline: float | None = None) -> None:
        """Wait for one batch of events (at most until ``deadline``) and dispatch them."""
        when = self._next_timer()
        if deadline is not None and (when is None or deadline < when):
            when = deadline
        # epoll counts in ms: round up, or a timer due in 0.4 ms would spin through a 0 timeout
        timeout = -1 if when is None else math.ceil(max(0.0, when - time.monotonic()) * 1e3) * 1e-3
        for fd, events in self._epoll.poll(timeout, max(len(self._events), 1)):
            if fd == self._wake_r:
                self._drain_wakeup()
                continue
            # an error or hang-up wakes both sides, as selectors would report it
            if events & ~select.EPOLLOUT:
                callback = self._readers.get(fd)
                if callback is not None:
                    self._guard(callback)
            if events & ~select.EPOLLIN:
                callback = self._writers.get(fd)
                if callback is not None:
                    self._guard(callback)
        self._dispatch_signals()
        self._run_due_timers()

    def _next_timer(self) -> float | None:
        while self._timers and self._timers[0][2].cancelled:
            heapq.heappop(self._timers)
        return self._timers[0][0] if self._timers else None

    def _run_due_timers(self) -> None:
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            _, _, timer = heapq.heappop(self._timers)
            if not timer.cancelled:
                timer.cancelled = True
                self._guard(timer.callback)

    def _drain_wakeup(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass

    def _dispatch_signals(self) -> None:
        # SIGCHLD first, so that a shutdown signal and a CMD exit seen together settle the CMD's
        # status before the shutdown acts on it
        while self._pending_signals:
            # take the list and leave a fresh one in one step: a handler that runs between a
            # read and a clear() would append to the list being cleared, and its signal (a
            # SIGTERM arriving during a burst of SIGCHLDs) would be lost
            taken, self._pending_signals = self._pending_signals, []
            pending = sorted(set(taken), key=lambda s: s != signal.SIGCHLD)
            for signum in pending:
                callback = self._signal_callbacks.get(signum)
                if callback is not None:
                    self._guard(lambda cb=callback, s=signum: cb(s))

    def _guard(self, callback: Callback) -> None:
        """One failing callback is reported and must not take PID 1 down (s6-svscan's rule)."""
        try:
            callback()
        except Exception as e:
            log.error(f"internal error: {type(e).__name__}: {e}")
            if log.verbosity() >= log.DEBUG:
                import traceback  # only at verbosity 3: tracebacks are for maintainers

                traceback.print_exc()

    # ---- the reaper ---------------------------------------------------------------------------
    def reap(self) -> None:
        """Reap every exited child: ``waitpid(-1, WNOHANG)`` until 0 or ECHILD."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.has_children = False
                return
            if pid == 0:
                self.has_children = True
                return
            callback = self._exit_callbacks.pop(pid, None)
            if callback is None:
                log.debug(f"reaped orphan {pid} (status {status})")
            else:
                self._guard(lambda cb=callback, st=status: cb(st))

    def children_left(self) -> bool:
        """Whether anything is left to wait for (reaps first, so the answer is current)."""
        self.reap()
        return self.has_children
