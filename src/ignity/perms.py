"""The ``perms/`` files of SPEC §6: rendered with Jinja2 against the merged environment, parsed into
rules, and applied by changing only what differs.

Runs inside PID 1 (stage 2), so it never starts a process; Jinja2 comes through ``render``, as for
``templates/``. Every file is rendered and parsed before anything is changed: a typo on
line 40 stops the boot (exit 100) without leaving lines 1-39 half applied.

A line is ``path account fmode dmode`` (recursive) or ``path recurse account fmode dmode`` with
recurse ``true``/``false``. ``account`` is ``uid:gid`` or ``user:group`` (each side a number, a name,
or s6-overlay's ``name,fallback-id``). Modes are octal. Directories get ``dmode``, everything
else ``fmode``; symbolic links are never followed: their owner is changed (lchown), never their
mode. A path named by a later rule is left to that rule, so overlapping rules do not undo each
other on every boot and a second pass over a tree that is already right makes no change at all.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import NamedTuple

from . import log, render
from .confdir import visible_names
from .errors import ConfigError

FORMATS = "4 fields 'path account fmode dmode' or 5 fields 'path recurse account fmode dmode'"
MAX_ID = 0xFFFFFFFE  # (uid_t)-1 means "leave unchanged" to chown(2): never a real id


class Rule(NamedTuple):
    """One parsed line. (A NamedTuple rather than a frozen dataclass: this module is imported by
    PID 1 at boot and ``dataclasses`` costs ~10 ms of imports.)"""

    path: str        # absolute, normalised
    recursive: bool
    uid: int
    gid: int
    fmode: int       # permission bits only (S_IMODE range, 0 to 0o7777)
    dmode: int
    where: str       # "perms file /etc/ignity/perms/10-app line 3", for messages


# ---- reading ------------------------------------------------------------------------------------

def perms_files(perms_dir: str | os.PathLike) -> list[Path]:
    """The files of ``perms_dir`` in byte order of their names, dot-files left out (SPEC §2).
    A missing directory has none."""
    perms_dir = Path(perms_dir)
    try:
        names = visible_names(perms_dir)
    except OSError as e:
        raise ConfigError(f"unable to read the perms dir {perms_dir}: {e.strerror}") from None
    files = []
    for name in names:
        path = perms_dir / name
        if not path.is_file():
            log.warn(f"perms: {path} is not a regular file: skipped")
            continue
        files.append(path)
    return files


def load_dir(perms_dir: str | os.PathLike, env: Mapping[str, str]) -> list[Rule]:
    """Every rule of ``perms_dir``, in order; ConfigError (naming file and line) on the first
    problem."""
    files = perms_files(perms_dir)
    if not files:
        return []
    rules: list[Rule] = []
    for path in files:
        try:
            source = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise ConfigError(f"perms file {path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
        except OSError as e:
            raise ConfigError(f"unable to read perms file {path}: {e.strerror}") from None
        text = render.render(source, env, lambda line, path=path: f"perms file {path} line {line}")
        rules.extend(parse_text(text, path, source))
    return rules


def parse_text(text: str, path: Path, source: str | None = None) -> list[Rule]:
    """The rules of one rendered file. Line numbers are the source's when rendering kept the
    lines where they were (always, unless ``{% %}`` blocks added or removed lines); otherwise
    messages say "rendered line N"."""
    lines = text.splitlines()
    shifted = source is not None and len(source.splitlines()) != len(lines)
    label = "rendered line" if shifted else "line"
    rules = []
    for number, line in enumerate(lines, 1):
        rule = parse_line(line, f"perms file {path} {label} {number}")
        if rule is not None:
            rules.append(rule)
    return rules


def parse_line(line: str, where: str) -> Rule | None:
    """One line as a Rule, None for a blank or ``#`` line; ConfigError prefixed ``where``."""
    fields = line.split()
    if not fields or fields[0].startswith("#"):
        return None
    if len(fields) == 4:
        path, account, fmode, dmode = fields
        recursive = True  # SPEC §6: the 4-field form is applied recursively
    elif len(fields) == 5:
        path, recurse, account, fmode, dmode = fields
        if recurse.lower() not in ("true", "false"):
            raise ConfigError(f"{where}: recurse must be true or false, got {recurse!r}")
        recursive = recurse.lower() == "true"
    else:
        missing = "a field is missing" if len(fields) < 4 else "too many fields"
        raise ConfigError(f"{where}: {missing}: expected {FORMATS}, got {len(fields)} ({line.strip()!r})")
    if not path.startswith("/"):
        raise ConfigError(f"{where}: path {path!r} must be absolute")
    uid, gid = parse_account(account, where)
    return Rule(_normalise(path), recursive, uid, gid,
                _mode(fmode, "fmode", where), _mode(dmode, "dmode", where), where)


def _normalise(path: str) -> str:
    # normpath keeps a leading "//" (POSIX leaves its meaning to the system); Linux reads it as "/"
    path = os.path.normpath(path)
    return "/" + path.lstrip("/")


def parse_account(account: str, where: str) -> tuple[int, int]:
    """``uid:gid``, ``user:group`` or a mix, each side optionally ``name,fallback-id``
    (s6-overlay's fix-attrs: the id is used when the name is unknown)."""
    user, sep, group = account.partition(":")
    if not sep or not user or not group:
        raise ConfigError(f"{where}: account must be uid:gid or user:group, got {account!r}")
    return (_id(user, "user", pwd.getpwnam, where), _id(group, "group", grp.getgrnam, where))


def _id(text: str, kind: str, lookup: Callable[[str], tuple], where: str) -> int:
    name, _, fallback = text.partition(",")
    if _is_number(name) and not fallback:
        number = int(name)
    else:
        try:
            number = lookup(name)[2]  # pw_uid / gr_gid
        except (KeyError, ValueError):  # ValueError: a NUL in the name
            if not _is_number(fallback):
                raise ConfigError(f"{where}: unknown {kind} {name!r}") from None
            number = int(fallback)
    if number > MAX_ID:
        raise ConfigError(f"{where}: {kind} id {number} is out of range")
    return number


def _is_number(text: str) -> bool:
    return text.isascii() and text.isdigit()  # str.isdigit alone takes "²", which int() refuses


def _mode(text: str, which: str, where: str) -> int:
    digits = text[2:] if text[:2] in ("0o", "0O") else text
    if not digits or len(digits) > 5 or any(c not in "01234567" for c in digits) or int(digits, 8) > 0o7777:
        raise ConfigError(f"{where}: {which} must be an octal mode like 0644, got {text!r}")
    return int(digits, 8)


# ---- applying -----------------------------------------------------------------------------------

class _Run:
    """Counters of one apply: changes made, changes skipped for want of root, failures."""

    def __init__(self) -> None:
        self.euid = os.geteuid()
        self.root = self.euid == 0
        self.changes = 0
        self.skipped = 0
        self.failures = 0
        self.first_failure = ""

    def fail(self, what: str, path: str, error: OSError) -> None:
        self.failures += 1
        if not self.first_failure:
            self.first_failure = f"unable to {what} {path}: {error.strerror}"


def apply_dir(perms_dir: str | os.PathLike, env: Mapping[str, str]) -> int:
    """Render, parse and apply every file of ``perms_dir`` (SPEC §6); the number of changes made.

    Malformed files raise ConfigError before anything is changed. Not root: ownership changes are
    skipped and counted (one warning for the run); modes of our own files are still fixed.
    """
    rules = load_dir(perms_dir, env)
    return apply(rules) if rules else 0


def apply(rules: list[Rule]) -> int:
    run = _Run()
    for index, rule in enumerate(rules):
        _apply_rule(rule, rules[index + 1:], run)
    if run.skipped:
        log.warn(f"perms: not running as root (uid {run.euid}): {run.skipped} ownership/mode changes skipped "
                 "(apply them at build time with preboot)")
    if run.failures:
        log.warn(f"perms: {run.failures} changes failed, the first: {run.first_failure}")
    log.info(f"perms: {len(rules)} rules applied, {run.changes} changes")
    return run.changes


def _apply_rule(rule: Rule, later: list[Rule], run: _Run) -> None:
    # A path is set by the last rule naming it (or a recursive rule above it): the earlier rule
    # leaves it alone, rather than setting it only for the later rule to set it back, on every boot
    # (and, in between, a secret file with the wrong owner).
    if any(_covers(other, rule.path) for other in later):
        log.debug(f"perms: {rule.where}: {rule.path} is set by a later rule")
        return
    # later rules inside this one's tree: path -> whether the subtree is theirs too
    inner = {other.path: other.recursive for other in later if _is_under(other.path, rule.path)}
    try:
        st = os.lstat(rule.path)
    except FileNotFoundError:
        log.warn(f"{rule.where}: {rule.path} does not exist: skipped")
        return
    except OSError as e:
        run.fail("stat", rule.path, e)
        return
    is_dir = stat.S_ISDIR(st.st_mode)
    _fix(rule.path, st, rule.uid, rule.gid, rule.dmode if is_dir else rule.fmode, run)
    if is_dir and rule.recursive:
        for path, entry_st in _walk(rule.path, inner, run):
            mode = rule.dmode if stat.S_ISDIR(entry_st.st_mode) else rule.fmode
            _fix(path, entry_st, rule.uid, rule.gid, mode, run)


def _covers(later: Rule, path: str) -> bool:
    """Whether the later rule sets ``path``: names it, or reaches it by a recursive walk (through
    real directories only: walks never follow symbolic links)."""
    if later.path == path:
        return True
    if not later.recursive or not _is_under(path, later.path):
        return False
    # every directory from later.path down to path's parent must be a real directory
    parent = os.path.dirname(path)
    while True:
        try:
            if not stat.S_ISDIR(os.lstat(parent).st_mode):
                return False
        except OSError:
            return False
        if parent == later.path:
            return True
        parent = os.path.dirname(parent)


def _is_under(path: str, top: str) -> bool:
    return path != top and path.startswith(top if top.endswith("/") else top + "/")


def _walk(top: str, inner: Mapping[str, bool], run: _Run) -> Iterator[tuple[str, os.stat_result]]:
    """Every entry below ``top`` with its lstat, depth first, without following symbolic links;
    one scandir per directory and one lstat per entry (a second stat would double the time of a
    pass over a large tree). Entries that later rules own (``inner``) are passed over; their
    subtrees too when those rules are recursive."""
    stack = [top]
    while stack:
        directory = stack.pop()
        found = []
        try:
            with os.scandir(directory) as entries:
                for entry in entries:
                    try:
                        found.append((entry.path, entry.stat(follow_symlinks=False)))
                    except FileNotFoundError:
                        pass  # removed while we walked: nothing to fix
        except FileNotFoundError:
            continue
        except OSError as e:
            run.fail("read directory", directory, e)
            continue
        for path, st in found:
            owned = inner.get(path) if inner else None
            if owned is None:
                yield path, st
            if stat.S_ISDIR(st.st_mode) and owned is not True:
                stack.append(path)


def _fix(path: str, st: os.stat_result, uid: int, gid: int, mode: int, run: _Run) -> None:
    """Give ``path`` (whose lstat is ``st``) the owner and mode, touching only what differs."""
    is_link = stat.S_ISLNK(st.st_mode)
    current_mode = stat.S_IMODE(st.st_mode)
    chowned = False
    if st.st_uid != uid or st.st_gid != gid:
        if not run.root:
            run.skipped += 1  # only root may give a file away (keep it simple: no chgrp as non-root)
        else:
            try:
                os.lchown(path, uid, gid)
                run.changes += 1
                chowned = True
            except OSError as e:
                run.fail("chown", path, e)
    if is_link:
        return  # a link's own mode means nothing on Linux, and chmod would follow it
    # chown(2) clears the setuid and setgid bits of a file: set the mode again when it wants them
    wants_again = chowned and mode & (stat.S_ISUID | stat.S_ISGID) and not stat.S_ISDIR(st.st_mode)
    if current_mode != mode or wants_again:
        if not run.root and st.st_uid != run.euid:
            run.skipped += 1
            return
        try:
            os.chmod(path, mode)
            run.changes += 1
        except OSError as e:
            run.fail("chmod", path, e)
