"""Users and groups: resolve an account for ``ignity setuidgid``, and create ``USER`` for ``preboot``
(SPEC §6, §11.8).

Creating uses groupadd/useradd when they are installed and the target is the running system;
otherwise (Alpine's busybox, distroless, scratch-based images, a tree under another root) it edits
``etc/passwd`` and ``etc/group`` itself the way shadow-utils does: under the ``etc/.pwd.lock`` lock,
by writing a new file beside the old one and renaming it into place, so a crash never leaves half a
passwd file. Never called from PID 1 (preboot is its own process), so starting useradd is fine.
"""

from __future__ import annotations

import errno
import fcntl
import grp
import os
import pwd
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from . import log
from .errors import EXIT_CONFIG, ConfigError, IgnityError

# a portable user name (POSIX's portable file name characters, not starting with '-' or '.'): what
# goes into passwd must never hold ':' or a newline
NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}")
MAX_ID = 0xFFFFFFFE  # (uid_t)-1 is "no change" to the set*id calls: never a real id
SHELL = "/bin/false"  # present in every image, unlike nologin (/usr/sbin on Debian, /sbin on Alpine)
HOME = "/"


class Account(NamedTuple):
    """Whom to become: ids, and the supplementary groups (empty for a bare ``uid:gid``)."""

    name: str | None
    uid: int
    gid: int
    groups: tuple[int, ...]


# ---- resolving ----------------------------------------------------------------------------------

def resolve(account: str) -> Account:
    """``NAME`` (its uid, primary gid and every group it is a member of), ``uid:gid`` (no
    supplementary groups, as s6-setuidgid), or ``user:group`` with names or numbers on each side.
    Unknown name: IgnityError with exit code 100."""
    user, sep, group = account.partition(":")
    if not sep:
        try:
            entry = pwd.getpwuid(int(user)) if _is_number(user) else pwd.getpwnam(user)
        except (KeyError, ValueError, OverflowError):  # ValueError: a NUL in the name
            raise IgnityError(f"unknown user {user}", EXIT_CONFIG) from None
        return Account(entry.pw_name, entry.pw_uid, entry.pw_gid,
                       tuple(os.getgrouplist(entry.pw_name, entry.pw_gid)))
    uid = _number_or(user, lambda name: pwd.getpwnam(name).pw_uid, "user")
    gid = _number_or(group, lambda name: grp.getgrnam(name).gr_gid, "group")
    return Account(None, uid, gid, ())


def login_env(account: Account) -> dict[str, str]:
    """HOME, USER and LOGNAME for a process started as ``account``, from its passwd entry (by name,
    else by uid); a uid without an entry gets its number as the name and ``/`` as home."""
    try:
        entry = pwd.getpwnam(account.name) if account.name else pwd.getpwuid(account.uid)
        name, home = entry.pw_name, entry.pw_dir or HOME
    except (KeyError, ValueError, OverflowError):
        name, home = str(account.uid), HOME
    return {"HOME": home, "USER": name, "LOGNAME": name}


def _is_number(text: str) -> bool:
    return text.isascii() and text.isdigit()  # str.isdigit alone takes "²", which int() refuses


def _number_or(text: str, lookup: Callable[[str], int], kind: str) -> int:
    if _is_number(text):
        number = int(text)
        if number > MAX_ID:
            raise IgnityError(f"{kind} id {number} is out of range", EXIT_CONFIG)
        return number
    try:
        return lookup(text)
    except (KeyError, ValueError):  # ValueError: a NUL in the name
        raise IgnityError(f"unknown {kind} {text}", EXIT_CONFIG) from None


# ---- the users and groups of a root tree -------------------------------------------------------

def _entries(path: Path) -> list[tuple[str, int, int]]:
    """(name, id, primary gid or -1) of each line of a passwd- or group-style file ([] when missing)."""
    try:
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
    except FileNotFoundError:
        return []
    entries = []
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) > 2 and _is_number(fields[2]):
            gid = fields[3] if len(fields) > 3 else ""
            entries.append((fields[0], int(fields[2]), int(gid) if _is_number(gid) else -1))
    return entries


def _users(root: Path) -> list[tuple[str, int, int]]:
    """(name, uid, gid) of every user: through NSS for the running system, else from the file."""
    if str(root) == "/":
        return [(e.pw_name, e.pw_uid, e.pw_gid) for e in pwd.getpwall()]
    return _entries(root / "etc" / "passwd")


def _groups(root: Path) -> list[tuple[str, int, int]]:
    if str(root) == "/":
        return [(e.gr_name, e.gr_gid, -1) for e in grp.getgrall()]
    return _entries(root / "etc" / "group")


def find_user(name: str, root: Path = Path("/")) -> tuple[int, int] | None:
    """(uid, gid) of user ``name`` in the tree under ``root``, None if there is none."""
    return next(((uid, gid) for user, uid, gid in _users(root) if user == name), None)


# ---- creating -----------------------------------------------------------------------------------

def ensure_user(name: str, uid: int, gid: int, root: Path = Path("/")) -> bool:
    """Create group ``gid`` (named ``name``, unless a group with that gid exists) and user ``name``
    with ``uid`` in the tree under ``root``, if no user of that name exists; True if it created
    the user. Idempotent: a second call finds the user and changes nothing."""
    if not NAME_RE.fullmatch(name):
        raise ConfigError(f"USER={name!r} is not a valid user name (letters, digits, '_', '.', '-'; "
                          "up to 32, starting with a letter or '_')")
    for label, number in (("USERMAP_UID", uid), ("USERMAP_GID", gid)):
        if not 0 <= number <= MAX_ID:
            raise ConfigError(f"{label}={number} is out of range")
    existing = find_user(name, root)
    if existing is not None:
        if existing != (uid, gid):
            log.warn(f"preboot: user {name} exists as {existing[0]}:{existing[1]}, not USERMAP_UID:USERMAP_GID "
                     f"{uid}:{gid}: left as it is")
        return False
    groups = _groups(root)
    has_group = any(number == gid for _, number, _ in groups)
    if not has_group:
        other = next((number for group, number, _ in groups if group == name), None)
        if other is not None:
            raise ConfigError(f"unable to create group {name} with gid {gid}: group {name} exists with gid "
                              f"{other} (set USERMAP_GID={other}, or another USER)")
    other_user = next((user for user, number, _ in _users(root) if number == uid), None)
    if other_user is not None:
        # SPEC §6 is about the numeric id (files on volumes, USER uid:gid): the name is a label, so
        # a second name for an existing uid is what the image asked for
        log.warn(f"preboot: uid {uid} already belongs to user {other_user}: {name} is created with the same uid")
    useradd = _which("useradd")
    groupadd = _which("groupadd")
    if str(root) == "/" and useradd and groupadd:
        if not has_group:
            _run([groupadd, "-g", str(gid), name])
        # -M no home, -N no user group (the group is ours), -l no lastlog/faillog entry (sparse files
        # of uid * 292 bytes: gigabytes in an image layer for a large uid), -o a duplicate uid is fine
        _run([useradd, "-M", "-N", "-l", "-o", "-u", str(uid), "-g", str(gid), "-s", SHELL, "-d", HOME, name])
    else:
        try:
            if not _add_to_files(name, uid, gid, not has_group, root):
                return False
        except OSError as e:
            raise ConfigError(f"unable to add user {name} to {root / 'etc'}: {e.strerror}") from None
    log.info(f"preboot: created user {name} ({uid}:{gid})")
    return True


def _which(program: str) -> str | None:
    """shutil.which without shutil's imports (this module is loaded by every setuidgid)."""
    for directory in os.get_exec_path():
        candidate = os.path.join(directory, program)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def _run(argv: list[str]) -> None:
    # subprocess costs ~20 ms of imports that `ignity setuidgid` (which imports this module on every
    # service start) must not pay: only preboot creates users
    import subprocess

    result = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            check=False)
    if result.returncode != 0:
        output = result.stdout.decode("utf-8", "replace").strip()
        raise ConfigError(f"{' '.join(argv)} failed with status {result.returncode}: {output}")


def _add_to_files(name: str, uid: int, gid: int, with_group: bool, root: Path) -> bool:
    """Add the user (and its group) to the files under ``root``; False if it was there already."""
    etc = root / "etc"
    days = int(time.time() // 86400)  # shadow's "last password change", in days since the epoch
    lock = os.open(etc / ".pwd.lock", os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        # the lock shadow-utils' lckpwdf() takes: useradd, passwd, vipw running at the same time wait
        fcntl.lockf(lock, fcntl.LOCK_EX)
        # looked again under the lock: another preboot may have added it while we waited
        if any(user == name for user, _, _ in _entries(etc / "passwd")):
            return False
        if with_group:
            _append_line(etc / "group", f"{name}:x:{gid}:", required=True)
            _append_line(etc / "gshadow", f"{name}:!::", required=False)
        _append_line(etc / "passwd", f"{name}:x:{uid}:{gid}::{HOME}:{SHELL}", required=True)
        _append_line(etc / "shadow", f"{name}:!:{days}::::::", required=False)  # "!": no password login
        return True
    finally:
        os.close(lock)  # releases the lock


def _append_line(path: Path, line: str, required: bool) -> None:
    """Replace ``path`` by a copy with ``line`` added: a temporary file in the same directory,
    same mode and owner, fsync'ed, renamed over the old one (atomic), then the directory fsync'ed."""
    try:
        old = path.read_bytes()
        st = os.stat(path)
        mode, owner = st.st_mode & 0o7777, (st.st_uid, st.st_gid)
    except FileNotFoundError:
        if not required:
            return  # no shadow/gshadow in this image: nothing to keep in step
        old, mode, owner = b"", 0o644, None
    if old and not old.endswith(b"\n"):
        old += b"\n"
    temp = path.with_name(f".{path.name}.ignity-{os.getpid()}")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        os.unlink(temp)  # left by a preboot of ours that died: we hold the lock, it is stale
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        try:
            if owner is not None:
                os.fchown(fd, *owner)
            os.fchmod(fd, mode)  # after fchown, which may clear bits
            data = old + line.encode("utf-8") + b"\n"
            while data:
                data = data[os.write(fd, data):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
    except OSError as e:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise ConfigError(f"unable to update {path}: {e.strerror}") from None
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.EROFS):  # some file systems cannot sync a directory
            raise
    finally:
        os.close(fd)
