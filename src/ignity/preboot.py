"""``preboot``: prepare an image at build time (``RUN preboot``, as root) so that the container can
then run as ``USER ${USERMAP_UID}:${USERMAP_GID}`` (SPEC §6, §11.8): create USER and its group,
give them the runtime dir, apply ``perms/``. Idempotent: running it again changes nothing.

Its own process, never PID 1: it may start useradd/groupadd.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from . import accounts, log, perms
from .errors import ConfigError
from .settings import Settings

# Sticky and world-writable, like /tmp. A container engine that mounts a tmpfs on the runtime
# dir without a mode (Docker's and runc's `--tmpfs /run/ignity`) gives the tmpfs this directory's
# mode, owned by root: 0755 would leave `USER 1000` unable to write it; 1777 lets any user boot.
# What ignity writes inside guards itself: the envdir is 0700, the control socket 0600.
RUN_DIR_MODE = 0o1777


def run(settings: Settings, env: Mapping[str, str]) -> None:
    """Everything preboot does; ``env`` is the merged environment the perms files are rendered
    with. ConfigError (exit 100) on any problem."""
    if settings.skip_perms:
        log.info("preboot: IGNITY_SKIP_PERMS=1: nothing to do")
        return
    if os.geteuid() != 0:
        raise ConfigError("preboot must run as root (RUN preboot in the Dockerfile)")
    uid, gid = settings.usermap_uid, settings.usermap_gid
    if settings.user != "root" and uid != 0:
        accounts.ensure_user(settings.user, uid, gid)
    else:
        log.info(f"preboot: USER={settings.user} USERMAP_UID={uid}: no user to create")
    _give_run_dir(settings, uid, gid)
    changes = perms.apply_dir(settings.conf("perms"), env)
    log.info(f"preboot: done ({changes} permission changes)")


def _give_run_dir(settings: Settings, uid: int, gid: int) -> None:
    run_dir = settings.run_dir
    try:
        os.makedirs(run_dir, mode=RUN_DIR_MODE, exist_ok=True)
        st = os.stat(run_dir)  # followed: a runtime dir that is a link means the dir it points to
        if (st.st_uid, st.st_gid) != (uid, gid):
            os.chown(run_dir, uid, gid)
        if st.st_mode & 0o7777 != RUN_DIR_MODE:
            os.chmod(run_dir, RUN_DIR_MODE)
    except OSError as e:
        raise ConfigError(f"unable to give the runtime dir {run_dir} to {uid}:{gid}: {e.strerror}") from None
