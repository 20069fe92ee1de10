"""``init/`` and ``finalize/`` scripts: one at a time, in byte order, each within its bound.

A script runs in its own process group (so a timeout or a forwarded signal reaches whatever it
started), with stdin /dev/null (the CMD's stdin is not theirs to read) and the container's
stdout and stderr. Scripts are waited for through the loop, so services and the control socket
keep being served while one runs.
"""

from __future__ import annotations

import _signal as signal  # not `signal`: its enums cost ~3 ms of every start
import os

from . import log, spawn
from .errors import EXIT_NOT_EXECUTABLE, EXIT_NOT_FOUND, SpawnError, describe, exit_code
from .loop import Loop

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: `collections` costs ~1.4 ms at start-up
    from collections.abc import Callable, Mapping


def run(loop: Loop, path: str, env: Mapping[str, str], *, timeout_ms: int = 0,
        started: Callable[[int], None] | None = None, argv: list[str] | None = None) -> int:
    """Run one script to its end and return its exit status (128+N if killed by signal N,
    126/127 if it could not be executed). ``timeout_ms`` > 0 SIGKILLs its group after that.
    ``argv``: a command line to run instead of the file ``path`` (which then only names it)."""
    if argv is None:
        if not os.path.exists(path):
            log.error(f"{path}: no such file (a dangling link?)")
            return EXIT_NOT_FOUND
        if not os.access(path, os.X_OK):
            log.error(f"{path}: not executable (chmod +x it)")
            return EXIT_NOT_EXECUTABLE
    try:
        pid = spawn.spawn(argv or [path], env, fds={0: spawn.devnull()}, new_group=True)
    except SpawnError as e:
        log.error(str(e))
        return e.code
    statuses: list[int] = []
    loop.on_exit(pid, statuses.append)
    if started is not None:
        started(pid)
    timer = None
    if timeout_ms:
        def kill() -> None:
            log.warn(f"{path}: still running after {timeout_ms} ms, killing it")
            spawn.kill(pid, signal.SIGKILL, group=True)
        timer = loop.call_later(timeout_ms / 1000, kill)
    loop.run_until(lambda: bool(statuses))
    if timer is not None:
        timer.cancel()
    status = statuses[0]
    code = exit_code(status)
    (log.info if code == 0 else log.warn)(f"{path} {describe(status)}")
    return code
