"""Whether this boot runs an s6-overlay image as is, and the one line said when it does not.

Split from ``s6compat`` so that a boot without the compatibility layer (the common case) loads
only this: the check costs a stat or two, the layer's modules about half a millisecond.
"""

from __future__ import annotations

import os

from . import log
from .errors import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: `collections` costs ~1.2 ms at start-up
    from collections.abc import Mapping

MARKER = "s6-compat"
LEGACY_DIRS = ("s6-overlay", "services.d", "cont-init.d", "cont-finish.d", "fix-attrs.d")


def root(env: Mapping[str, str]) -> str:
    value = env.get("IGNITY_S6_ROOT") or "/"
    if not os.path.isabs(value):
        raise ConfigError(f"IGNITY_S6_ROOT={value!r} must be an absolute path")
    return value


def enabled(env: Mapping[str, str], conf_dir: str) -> bool:
    value = env.get("IGNITY_S6_COMPAT") or None
    if value is None:
        return os.path.exists(os.path.join(conf_dir, MARKER))
    if value not in ("0", "1"):
        raise ConfigError(f"IGNITY_S6_COMPAT={value!r} must be 0 or 1")
    return value == "1"


def notice(env: Mapping[str, str]) -> None:
    """Compatibility off: one line when the image has s6-overlay's directories."""
    try:
        etc = os.path.join(root(env), "etc")
    except ConfigError:
        return
    found = [f"/etc/{d}" for d in LEGACY_DIRS if os.path.isdir(os.path.join(etc, d))]
    if found:
        log.warn(f"{', '.join(found)} found but not used: this image is made for s6-overlay; install ignity with "
                 "install.sh --s6-compat (or set IGNITY_S6_COMPAT=1) to run it as is, or move them to /etc/ignity "
                 "(docs/migrating.md)")
