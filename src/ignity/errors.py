"""Exceptions that carry an exit status, and wait statuses turned into exit statuses.

This module must not depend on any other ignity module.
"""

from __future__ import annotations

import _signal  # not `signal`: its IntEnums cost ~3 ms of every container start
import errno
import os
import stat

EXIT_USAGE = 2
EXIT_BOOTING = 3  # a control command while the init scripts run (services do not exist yet)
EXIT_TIMEOUT = 99
EXIT_CONFIG = 100  # permanent: bad setting, unusable configuration (s6: 100)
EXIT_NO_SERVICE = 100
EXIT_INTERNAL = 111  # ignity itself failed (s6: 111)
EXIT_NOT_EXECUTABLE = 126
EXIT_NOT_FOUND = 127


class IgnityError(Exception):
    """An error with the exit status the process should end with."""

    code = 1

    def __init__(self, message: str, code: int | None = None):
        super().__init__(message)
        if code is not None:
            self.code = code


class ConfigError(IgnityError):
    """Bad setting, malformed env/perms file, runtime dir not writable: exit 100."""

    code = EXIT_CONFIG


class SpawnError(IgnityError):
    """A program could not be executed; ``code`` is 127 (not found) or 126 (not executable)."""

    def __init__(self, path: str, err: int, detail: str | None = None):
        self.path = path
        self.errno = err
        reason = os.strerror(err)
        if detail:
            reason += f": {detail}"
        if err == errno.ENOENT:
            # exec says ENOENT for a missing #! interpreter too: name it when that is the cause
            reason = _interpreter_problem(path) or "No such file or directory"
        elif err == errno.EACCES and _lacks_exec_bit(path):
            reason += f": it is not executable (chmod +x {path})"
        code = EXIT_NOT_FOUND if err == errno.ENOENT else EXIT_NOT_EXECUTABLE
        super().__init__(f"unable to exec {path}: {reason}", code)


def _interpreter_problem(path: str) -> str | None:
    """Why an existing file could not be exec'd with ENOENT: its #! line, read as the kernel
    does (the interpreter is the first word), or None when that is not the reason."""
    try:
        with open(path, "rb") as f:
            head = f.read(256)
    except OSError:
        return None
    if not head.startswith(b"#!"):
        return None
    line = head[2:].split(b"\n", 1)[0]
    words = line.split()
    if not words:
        return "its #! line names no interpreter"
    interpreter = os.fsdecode(words[0])
    if line.endswith(b"\r"):
        return (f"its #! line ends with a carriage return (Windows line endings), so the interpreter "
                f"{interpreter.rstrip()!r} does not exist; convert the file: sed -i 's/\\r$//' {path}")
    if not os.path.exists(interpreter):
        return f"its interpreter {interpreter} (from its #! line) does not exist: install it or fix the #! line"
    return None


def _lacks_exec_bit(path: str) -> bool:
    """A regular file with no x bit at all (EACCES can also mean a noexec mount or a directory
    that cannot be searched: chmod would not help there)."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and not st.st_mode & 0o111


def exit_code(status: int) -> int:
    """A waitpid status as a shell would report it: r, or 128+N when killed by signal N."""
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status)
    return 128 + os.WSTOPSIG(status) if os.WIFSTOPPED(status) else 255


def describe(status: int) -> str:
    """'exited 3' or 'killed by SIGTERM', for messages."""
    if os.WIFSIGNALED(status):
        return f"killed by {signal_name(os.WTERMSIG(status))}"
    return f"exited {os.WEXITSTATUS(status)}"


# the names signal.Signals would give (aliases left out), without importing enum
_ALIASES = frozenset(("SIGIOT", "SIGCLD", "SIGPOLL"))
_NAMES = {getattr(_signal, n): n for n in dir(_signal)
          if n.startswith("SIG") and not n.startswith("SIG_") and n not in _ALIASES}


def signal_name(signum: int) -> str:
    return _NAMES.get(signum, f"signal {signum}")
