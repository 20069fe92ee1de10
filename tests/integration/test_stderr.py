"""ignity's own stderr (docs/design.md): a log reader that stalls must never block PID 1. Here
stderr is a FIFO whose reader never reads, filled before ignity writes its first line."""

from __future__ import annotations

import os
import time
from pathlib import Path

from .harness import BOOT_S, wait_for


def fill(fd: int) -> None:
    """Write to a non-blocking fd until the pipe is full."""
    chunk = b"x" * 4096
    while True:
        try:
            os.write(fd, chunk)
        except BlockingIOError:
            return


def test_full_stderr_does_not_block_pid1_and_losses_are_counted(ct):
    fifo = ct.base / "stderr.fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # held open, never read until the end
    try:
        writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        fill(writer)
        os.close(writer)
        # a service that fails at once: ignity says so at every retry (once a second)
        ct.service("broken", "exit 3")
        ct.service("ok", f"touch {ct.out}/ok; exec sleep 1000")
        ct.start(wrapper=f'exec 2>{fifo}; exec "$@"', env={"IGNITY_VERBOSITY": "2"})
        ct.wait_file("ok")
        # PID 1 is not stuck in write(2): it serves the control socket and supervises
        assert ct.status()["broken"]["restarts"] >= 0
        wait_for(lambda: ct.status()["broken"]["restarts"] >= 2, BOOT_S, "restarts of broken")
        # the shared description of fd 2 (what services write to) is still blocking
        fdinfo = Path(f"/proc/{ct.pid1}/fdinfo/2").read_text()
        flags = int(fdinfo.split("flags:")[1].split()[0], 8)
        assert not flags & os.O_NONBLOCK
        # drain: the next message says how many were lost
        drained = b""
        deadline = time.monotonic() + BOOT_S
        while b"message(s) lost" not in drained and time.monotonic() < deadline:
            try:
                drained += os.read(reader, 65536)
            except BlockingIOError:
                time.sleep(0.05)
        text = drained.replace(b"x", b"").decode(errors="replace")
        assert "message(s) lost: stderr was full" in text, text[-2000:]
        # and it shuts down promptly on SIGTERM
        began = time.monotonic()
        ct.send_signal(15)
        while ct.running and time.monotonic() - began < BOOT_S:
            try:
                os.read(reader, 65536)
            except BlockingIOError:
                time.sleep(0.02)
        assert ct.wait() == 0
    finally:
        os.close(reader)


def test_stalled_stderr_never_blocks_shutdown(ct):
    """Nothing ever reads: SIGTERM still ends the container at once."""
    fifo = ct.base / "stderr.fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        fill(writer)
        os.close(writer)
        ct.service("ok", f"touch {ct.out}/ok; exec sleep 1000")
        ct.start(wrapper=f'exec 2>{fifo}; exec "$@"', env={"IGNITY_VERBOSITY": "3"})
        ct.wait_file("ok")
        began = time.monotonic()
        ct.send_signal(15)
        assert ct.wait() == 0
        assert time.monotonic() - began < 5
    finally:
        os.close(reader)


