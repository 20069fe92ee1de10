"""The only code that creates processes.

Every child starts with default signal dispositions and an empty signal mask, whatever ignity
blocks or ignores (SPEC §10; CPython ignores SIGPIPE, and a Popen child would keep ignity's mask).
``os.posix_spawn`` gives that in one call (``setsigmask=()``, ``setsigdef=`` every signal), reports
exec errors in the parent (glibc >= 2.24, musl) and is vfork-fast. Two spawns need code in the
child before exec, which posix_spawn cannot run, and fork instead: a CMD that must become the
terminal's foreground process group (``tcsetpgrp``), and a service started as another user
(setgroups, setgid, setuid: a servicedir's ``user`` file). ignity has no threads, so the child of
a fork may run Python until it execs (STYLE.md pitfall 10). The CMD forks too: posix_spawn goes
through ctypes, and loading ctypes (≈ 2.5 ms) costs more than one fork of ignity, so ``/init CMD``
without services or scripts never loads it.

This module never waits for a child: the loop is the only code that calls waitpid.
"""

from __future__ import annotations

import _signal as signal  # not `signal`: its enums cost ~3 ms of every start
import errno
import os

from .errors import SpawnError

TYPE_CHECKING = False  # without importing typing (~7 ms at start-up)
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from .accounts import Account

# SIGKILL and SIGSTOP cannot be reset; everything else goes back to SIG_DFL in the child
_DEFAULT_SIGNALS = frozenset(signal.valid_signals()) - {signal.SIGKILL, signal.SIGSTOP}

_devnull: int | None = None


def devnull() -> int:
    """A read-write /dev/null kept open (close-on-exec) for stdin of services and scripts."""
    global _devnull
    if _devnull is None:
        _devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    return _devnull


def resolve(program: str, env: Mapping[str, str]) -> str:
    """The path to exec for ``program``: as given when it has a '/', else found on the PATH of
    the environment the child gets (not ignity's own)."""
    if "/" in program:
        return program
    denied = False
    for d in env.get("PATH", os.defpath).split(os.pathsep):
        candidate = os.path.join(d or ".", program)
        if os.path.isfile(candidate):
            if os.access(candidate, os.X_OK):
                return candidate
            denied = True
    raise SpawnError(program, errno.EACCES if denied else errno.ENOENT)


def kill(pid: int, sig: int, group: bool = False) -> None:
    """Signal a process (or its process group) that may already be gone."""
    try:
        if group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _safe_fd_map(fds: Mapping[int, int]) -> tuple[list[tuple[int, int]], list[int]]:
    """dup2 actions (target, source) that can run in any order: a source that is also a
    target (or is its own target, where dup2 would be a no-op leaving close-on-exec set) is
    first copied to a fresh descriptor. Returns the actions and the temporary fds to close."""
    targets = set(fds)
    temporary: list[int] = []
    actions = []
    for target, source in sorted(fds.items()):
        if source in targets:
            source = os.dup(source)  # non-inheritable (PEP 446), so only the dup2 target leaks
            while source in targets:
                temporary.append(source)
                source = os.dup(source)
            temporary.append(source)
        actions.append((target, source))
    return actions, temporary


def spawn(argv: Sequence[str], env: Mapping[str, str], *, fds: Mapping[int, int] | None = None,
          cwd: str | None = None, new_session: bool = False, new_group: bool = False,
          tty_fd: int | None = None, user: Account | None = None, one_off: bool = False) -> int:
    """Start ``argv`` and return its pid; raise SpawnError (127/126) if it cannot be executed.

    ``fds`` maps child fd -> ignity fd (fds not named are inherited only for 0, 1, 2).
    ``new_session``: setsid (services). ``new_group``: own process group (CMD, scripts).
    ``tty_fd``: also make that group the foreground group of this terminal.
    ``user``: the child takes these supplementary groups, gid and uid before exec (the caller sets
    HOME, USER, LOGNAME in ``env``); a no-op when ignity already runs with exactly those ids.
    ``one_off``: a child started once per container (the CMD): fork+exec, with the same guarantees,
    rather than loading ctypes for posix_spawn.
    """
    path = resolve(argv[0], env)
    actions, temporary = _safe_fd_map(fds or {})
    if user is not None and not needs_switch(user):
        user = None
    if _oom is not None:
        _oom.for_child()
    try:
        if one_off or tty_fd is not None or user is not None:
            return _fork_exec(path, argv, env, actions, cwd, new_session, new_group, tty_fd, user)
        return _posix_spawn(path, argv, env, actions, cwd, new_session, new_group)
    except SpawnError as e:
        if e.errno != errno.E2BIG:
            raise
        raise SpawnError(e.path, e.errno, _too_big(argv, env)) from None
    finally:
        if _oom is not None:
            _oom.for_self()
        for fd in temporary:
            os.close(fd)


# ---- PID 1 is not the OOM killer's victim -------------------------------------------------------
OOM_SCORE_ADJ = "/proc/self/oom_score_adj"
OOM_PROTECTED = b"-1000"


class _OomShield:
    """ignity at oom_score_adj -1000, every child at the value ignity started with.

    The value is inherited at fork, and posix_spawn runs no code in the child, so ignity puts its
    own value back to the original for the instant of each spawn and lowers it again after (two
    writes on a descriptor kept open). Lowering needs CAP_SYS_RESOURCE; raising does not."""

    __slots__ = ("fd", "original")

    def __init__(self, fd: int, original: bytes):
        self.fd = fd
        self.original = original

    def for_child(self) -> None:
        try:
            os.write(self.fd, self.original)
        except OSError:
            pass  # never a reason not to start a child

    def for_self(self) -> None:
        try:
            os.write(self.fd, OOM_PROTECTED)
        except OSError:
            pass  # the capability went away meanwhile: stay as the children are


_oom: _OomShield | None = None


def protect_from_oom() -> str:
    """Where permitted, lower ignity's own oom_score_adj to -1000 (the kernel then never picks
    PID 1 under memory pressure), children keeping the value ignity had. Returns what happened,
    for a message."""
    global _oom
    try:
        with open(OOM_SCORE_ADJ, "rb") as f:
            original = f.read().strip()
        fd = os.open(OOM_SCORE_ADJ, os.O_WRONLY | os.O_CLOEXEC)
    except OSError as e:
        return f"oom_score_adj unchanged: {OOM_SCORE_ADJ}: {e.strerror}"
    try:
        os.write(fd, OOM_PROTECTED)
    except OSError as e:
        os.close(fd)
        return (f"oom_score_adj left at {original.decode()}: lowering it needs CAP_SYS_RESOURCE "
                f"({e.strerror}); children keep it too")
    if original == OOM_PROTECTED:
        os.close(fd)  # children asked to be unkillable too: nothing to restore around spawns
        return "oom_score_adj is -1000 already, for ignity and its children"
    _oom = _OomShield(fd, original)
    return f"oom_score_adj -1000 for ignity; children start at {original.decode()}"


# the kernel's bound on one argument or "NAME=value" string (MAX_ARG_STRLEN: 32 pages)
MAX_ARG_STRLEN = 32 * 4096


def _too_big(argv: Sequence[str], env: Mapping[str, str]) -> str:
    """Why exec said E2BIG: the largest variable (or argument) and the total, against the
    kernel's limits, so the fix is obvious (usually one huge value in the envdir)."""
    sizes = {f"variable {k}": len(os.fsencode(k)) + len(os.fsencode(v)) + 2 for k, v in env.items()}
    sizes.update({f"argument {i}": len(os.fsencode(a)) + 1 for i, a in enumerate(argv)})
    total = sum(sizes.values()) + 8 * (len(sizes) + 2)  # the strings and their pointers
    biggest = max(sizes, key=sizes.__getitem__)
    limit = os.sysconf("SC_ARG_MAX")
    return (f"{biggest} is {sizes[biggest]} bytes (at most {MAX_ARG_STRLEN} for one), and arguments "
            f"and environment total {total} bytes (at most {limit} here)")


class _LibcSpawn:
    """posix_spawn(3) called through ctypes, for what ``os.posix_spawn`` cannot express.

    glibc and musl set their internal signals (32, 33, and 34 on musl) to SIG_IGN in the
    spawned child unless the "set to default" set names them, and their ``sigaddset`` -- and so
    ``os.posix_spawn(setsigdef=...)`` -- refuses to name them: a child would start with signals
    ignored that no exec resets. Here the set is built bit by bit. It also gives
    ``posix_spawn_file_actions_addchdir_np`` (glibc >= 2.29, musl >= 1.1.24), so no fchdir dance.
    """

    # <spawn.h> flag values, the same in glibc and musl
    SETPGROUP, SETSIGDEF, SETSIGMASK, SETSID = 0x02, 0x04, 0x08, 0x80
    OPAQUE_SIZE = 1024  # larger than posix_spawnattr_t / posix_spawn_file_actions_t anywhere

    def __init__(self) -> None:
        import ctypes  # here, not at module level: only the init spawns processes

        self.ctypes = ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        self.libc = libc
        self.addchdir = getattr(libc, "posix_spawn_file_actions_addchdir_np", None)
        self._env_key: Mapping[str, str] | None = None
        self._env_array: object = None
        sigset = ctypes.c_ulong * (128 // ctypes.sizeof(ctypes.c_ulong))
        self.empty = sigset()
        self.defaults = sigset()
        bits = ctypes.sizeof(ctypes.c_ulong) * 8
        for sig in range(1, 65):
            if sig not in (signal.SIGKILL, signal.SIGSTOP):
                self.defaults[(sig - 1) // bits] |= 1 << ((sig - 1) % bits)

    def _encoded_env(self, env: Mapping[str, str]) -> object:
        """envp for ``env``; a batch of spawns with the same mapping (boot: hundreds of services)
        encodes it once. The mapping is kept referenced, so its id cannot be reused meanwhile."""
        if self._env_key is not env:
            items = [os.fsencode(k) + b"=" + os.fsencode(v) for k, v in env.items()]
            self._env_array = (self.ctypes.c_char_p * (len(items) + 1))(*items, None)
            self._env_key = env
        return self._env_array

    def spawn(self, path: str, argv: Sequence[str], env: Mapping[str, str], actions: list[tuple[int, int]],
              cwd: str | None, new_session: bool, new_group: bool) -> int:
        ct, libc = self.ctypes, self.libc
        attr = ct.create_string_buffer(self.OPAQUE_SIZE)
        file_actions = ct.create_string_buffer(self.OPAQUE_SIZE)
        libc.posix_spawnattr_init(attr)
        libc.posix_spawn_file_actions_init(file_actions)
        try:
            flags = self.SETSIGDEF | self.SETSIGMASK
            if new_session:
                flags |= self.SETSID
            elif new_group:
                flags |= self.SETPGROUP
                libc.posix_spawnattr_setpgroup(attr, 0)
            libc.posix_spawnattr_setflags(attr, ct.c_short(flags))
            libc.posix_spawnattr_setsigmask(attr, ct.byref(self.empty))
            libc.posix_spawnattr_setsigdefault(attr, ct.byref(self.defaults))
            for target, source in actions:
                libc.posix_spawn_file_actions_adddup2(file_actions, source, target)
            if cwd is not None:
                libc.posix_spawn_file_actions_addchdir_np(file_actions, os.fsencode(cwd))
            c_argv = (ct.c_char_p * (len(argv) + 1))(*[os.fsencode(a) for a in argv], None)
            c_env = self._encoded_env(env)
            pid = ct.c_int()
            err = libc.posix_spawn(ct.byref(pid), os.fsencode(path), file_actions, attr, c_argv, c_env)
        finally:
            libc.posix_spawn_file_actions_destroy(file_actions)
            libc.posix_spawnattr_destroy(attr)
        if err:
            raise SpawnError(path if cwd is None or err != errno.ENOENT or os.path.exists(cwd)
                             else f"{argv[0]} (cwd {cwd})", err)
        return pid.value


_libc_spawn: _LibcSpawn | None = None


def _posix_spawn(path: str, argv: Sequence[str], env: Mapping[str, str], actions: list[tuple[int, int]],
                 cwd: str | None, new_session: bool, new_group: bool) -> int:
    global _libc_spawn
    if _libc_spawn is None:
        _libc_spawn = _LibcSpawn()
    if _libc_spawn.addchdir is not None or cwd is None:
        return _libc_spawn.spawn(path, argv, env, actions, cwd, new_session, new_group)
    # a libc without addchdir_np: change our own directory around the call (no threads here)
    saved_cwd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            os.chdir(cwd)
        except OSError as e:
            raise SpawnError(f"{argv[0]} (cwd {cwd})", e.errno) from None
        return _libc_spawn.spawn(path, argv, env, actions, None, new_session, new_group)
    finally:
        os.fchdir(saved_cwd)
        os.close(saved_cwd)


def needs_switch(user: Account) -> bool:
    """Whether starting as ``user`` changes any id of ours (groups only matter to root, the only
    one who may set them)."""
    if (user.uid, user.gid) != (os.geteuid(), os.getegid()):
        return True
    return os.geteuid() == 0 and set(user.groups) != set(os.getgroups())


_ALL_SIGNALS = frozenset(signal.valid_signals())


def _fork_exec(path: str, argv: Sequence[str], env: Mapping[str, str], actions: list[tuple[int, int]],
               cwd: str | None, new_session: bool, new_group: bool, tty_fd: int | None,
               user: Account | None) -> int:
    """fork + exec, for what must run in the child: ``tcsetpgrp`` (a CMD taking the terminal, as
    tini's isolate_child) and set*id (a service's ``user``). Signals are blocked across the fork so
    that no handler of ignity's runs in the child; the child resets every disposition, then clears
    the mask just before exec. A failure comes back through a close-on-exec pipe as
    ``exec ERRNO`` or ``ids ERRNO``."""
    report_r, report_w = os.pipe()
    saved_mask = signal.pthread_sigmask(signal.SIG_BLOCK, _ALL_SIGNALS)
    try:
        pid = os.fork()
    except OSError as e:
        os.close(report_r)
        os.close(report_w)
        signal.pthread_sigmask(signal.SIG_SETMASK, saved_mask)
        raise SpawnError(path, e.errno or errno.EAGAIN) from None
    if pid == 0:  # child: no return from here, only exec or _exit
        step = "exec"
        try:
            if new_session:
                os.setsid()
            elif new_group or tty_fd is not None:
                os.setpgid(0, 0)
            if tty_fd is not None:
                # SIGTTOU is ignored (and blocked) here until reset: tcsetpgrp from a background
                # group would otherwise stop us
                try:
                    os.tcsetpgrp(tty_fd, os.getpid())
                except OSError:
                    pass  # not our controlling terminal (e.g. no session): run anyway
            for sig in _DEFAULT_SIGNALS:
                try:
                    signal.signal(sig, signal.SIG_DFL)
                except (OSError, ValueError):
                    pass
            for target, source in actions:
                os.dup2(source, target)
            if cwd is not None:
                os.chdir(cwd)
            if user is not None:
                step = "ids"
                # groups and gid first: they need the privilege that the uid change gives up
                os.setgroups(list(user.groups))
                os.setgid(user.gid)
                os.setuid(user.uid)
                step = "exec"
            signal.pthread_sigmask(signal.SIG_SETMASK, ())
            os.execve(path, list(argv), dict(env))
        except OSError as e:
            os.write(report_w, f"{step} {e.errno or errno.EINVAL}".encode())
        finally:
            os._exit(127)
    signal.pthread_sigmask(signal.SIG_SETMASK, saved_mask)
    os.close(report_w)
    try:
        report = os.read(report_r, 64)
    finally:
        os.close(report_r)
    if report:
        # the child has exited 127; the loop reaps it like any other process
        step, _, number = report.decode().partition(" ")
        if step == "ids" and user is not None:
            raise SpawnError(f"{path} as {user.uid}:{user.gid}", int(number))
        raise SpawnError(path if cwd is None or os.path.isdir(cwd) else f"{argv[0]} (cwd {cwd})", int(number))
    return pid
