"""The loop's signal hand-off: a signal recorded while the pending ones are being dispatched is
never lost (a lost SIGTERM is a PID 1 that ignores `docker stop`)."""

from __future__ import annotations

import os
import signal

from ignity.loop import Loop


class _SignalOnRead(list):
    """A pending-signal list that sends ``signum`` to this process while it is being read, so
    the handler runs at the worst moment: once the dispatcher has read the list, before it
    let go of it."""

    def __init__(self, items: list[int], signum: int):
        super().__init__(items)
        self.signum = signum

    def __iter__(self):
        yield from list(super().__iter__())
        signum, self.signum = self.signum, None
        if signum is not None:
            os.kill(os.getpid(), signum)  # its handler runs before the next bytecode


def test_a_signal_arriving_during_dispatch_is_not_lost():
    loop = Loop()
    seen: list[int] = []
    previous = signal.getsignal(signal.SIGUSR2)
    try:
        loop.watch_signal(signal.SIGUSR1, seen.append)
        loop.watch_signal(signal.SIGUSR2, seen.append)
        loop._pending_signals = _SignalOnRead([signal.SIGUSR1], signal.SIGUSR2)
        loop._dispatch_signals()
        assert seen == [signal.SIGUSR1, signal.SIGUSR2]
    finally:
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGUSR1, signal.SIGUSR2, signal.SIGCHLD):
            signal.signal(sig, previous if sig != signal.SIGCHLD else signal.SIG_DFL)
