"""``ignity setuidgid USER PROG ARGS...``: become USER and exec PROG (SPEC §6), for ``run`` scripts
that drop privileges — by exec, never by a preexec_fn in a process that might have threads
(STYLE.md pitfall 10).

Like s6-setuidgid, it leaves the environment alone (HOME, USER, LOGNAME are not set: a service
sets what it needs, e.g. through its env files), and PROG is looked up in PATH.
"""

from __future__ import annotations

import os
from typing import NoReturn

from . import log
from .accounts import Account, resolve
from .errors import EXIT_INTERNAL, IgnityError, SpawnError


def exec_as(account: str, argv: list[str]) -> NoReturn:
    """Set the supplementary groups, gid and uid of ``account`` (a name, or ``uid:gid``), in that
    order (groups and gid need the privilege the uid change gives up), then exec ``argv``.

    Unknown account: IgnityError, code 100. Failed set*id: IgnityError, code 111. Exec failure:
    SpawnError (127 not found, 126 not executable)."""
    become(resolve(account), account)
    try:
        os.execvp(argv[0], argv)
    except OSError as e:
        raise SpawnError(argv[0], e.errno) from None


def become(target: Account, label: str) -> None:
    """Take ``target``'s groups, gid and uid (``label`` names it in the error)."""
    if _already(target):
        # not root, and already that uid and gid: nothing to drop, and setgroups would be refused,
        # so the same run script works in an image run as root and run with `USER uid:gid`
        log.debug(f"setuidgid: already uid {target.uid} gid {target.gid}")
        return
    try:
        os.setgroups(list(target.groups))
        os.setgid(target.gid)
        os.setuid(target.uid)
    except OSError as e:
        raise IgnityError(f"unable to become {label} ({target.uid}:{target.gid}): {e.strerror}",
                          EXIT_INTERNAL) from None


def _already(target: Account) -> bool:
    return (os.geteuid() != 0 and os.getuid() == os.geteuid() == target.uid
            and os.getgid() == os.getegid() == target.gid)
