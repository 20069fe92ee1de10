"""Every IGNITY_* setting (SPEC §9), read once from the environment into an immutable ``Settings``.

A value that is not what the setting takes is a ``ConfigError`` naming the variable (exit 100);
an empty value means the default (SPEC §11.6).

Paths are plain strings here and in every module on the path of ``ignity init``: ``pathlib``
(with ``re``, ``urllib.parse`` and ``ipaddress`` behind it) and ``typing`` would add ~10 ms to
each container start, a fifth of the budget of ``/init true``.
"""

from __future__ import annotations

import os

from .errors import ConfigError
from .record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: `collections` costs ~1.4 ms at start-up
    from collections.abc import Mapping

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_CONF_DIR = "/etc/ignity"
DEFAULT_RUN_DIR = "/run/ignity"


class Settings(Record):
    """Immutable once read."""

    __slots__ = ("cmd_wait_for_services", "cmd_wait_for_services_maxtime_ms", "conf_dir", "envs_shared",
                 "http_addr", "kill_finalize_maxtime_ms", "kill_gracetime_ms", "log_prefix", "log_timestamps",
                 "run_dir", "services_gracetime_ms", "skip_perms", "sync_disks", "templates_root", "user",
                 "usermap_gid", "usermap_uid", "verbosity")

    def __init__(self, *, conf_dir: str, run_dir: str, cmd_wait_for_services: bool = False,
                 cmd_wait_for_services_maxtime_ms: int = 5000, kill_finalize_maxtime_ms: int = 5000,
                 services_gracetime_ms: int = 5000, kill_gracetime_ms: int = 3000, skip_perms: bool = False,
                 sync_disks: bool = False, verbosity: int = 1, envs_shared: bool = False, user: str = "root",
                 usermap_uid: int = 0, usermap_gid: int = 0, templates_root: str = "/", log_prefix: bool = False,
                 log_timestamps: str = "none", http_addr: tuple[str, int] | None = None):
        self._set(conf_dir=conf_dir, run_dir=run_dir, cmd_wait_for_services=cmd_wait_for_services,
                  cmd_wait_for_services_maxtime_ms=cmd_wait_for_services_maxtime_ms,
                  kill_finalize_maxtime_ms=kill_finalize_maxtime_ms, services_gracetime_ms=services_gracetime_ms,
                  kill_gracetime_ms=kill_gracetime_ms, skip_perms=skip_perms, sync_disks=sync_disks,
                  verbosity=verbosity, envs_shared=envs_shared, user=user, usermap_uid=usermap_uid,
                  usermap_gid=usermap_gid, templates_root=templates_root, log_prefix=log_prefix,
                  log_timestamps=log_timestamps, http_addr=http_addr)

    @property
    def envdir(self) -> str:
        return os.path.join(self.run_dir, "envs")

    @property
    def state_dir(self) -> str:
        return os.path.join(self.run_dir, "services-state")

    @property
    def control_socket(self) -> str:
        return os.path.join(self.run_dir, "control")

    def conf(self, name: str) -> str:
        """A directory of the configuration tree: envs, perms, templates, init, services or finalize."""
        return os.path.join(self.conf_dir, name)


def _get(env: Mapping[str, str], name: str) -> str | None:
    """The value, or None when unset or empty (SPEC §11.6). Not stripped: " 10" is not a number."""
    return env.get(name) or None


def _ms(env: Mapping[str, str], name: str, default: int) -> int:
    value = _get(env, name)
    if value is None:
        return default
    if not (value.isascii() and value.isdigit()):  # isdigit alone takes "²"
        raise ConfigError(f"{name}={value!r} is not a time in milliseconds (a non-negative integer)")
    return int(value)


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    value = _get(env, name)
    if value is None:
        return default
    if value not in ("0", "1"):
        raise ConfigError(f"{name}={value!r} must be 0 or 1")
    return value == "1"


def _choice(env: Mapping[str, str], name: str, choices: tuple, default: str) -> str:
    value = _get(env, name)
    if value is None:
        return default
    if value not in choices:
        raise ConfigError(f"{name}={value!r} must be one of: {', '.join(choices)}")
    return value


def _id(env: Mapping[str, str], name: str) -> int:
    value = _get(env, name)
    if value is None:
        return 0
    if not (value.isascii() and value.isdigit()):  # isdigit alone takes "²"
        raise ConfigError(f"{name}={value!r} is not a numeric id")
    return int(value)


def _dir(env: Mapping[str, str], name: str, default: str) -> str:
    value = _get(env, name) or default
    if not os.path.isabs(value):
        raise ConfigError(f"{name}={value!r} must be an absolute path")
    return os.path.normpath(value)


def _http_addr(env: Mapping[str, str]) -> tuple[str, int] | None:
    """IGNITY_HTTP_ADDR: ``HOST:PORT`` of the metrics/probe listener, off when unset. Only a
    loopback address unless IGNITY_HTTP_ADDR_ALLOW_ANY=1: the endpoints need no credentials, so
    reaching them from outside the container must be asked for in so many words."""
    value = _get(env, "IGNITY_HTTP_ADDR")
    allow_any = _flag(env, "IGNITY_HTTP_ADDR_ALLOW_ANY", False)
    if value is None:
        return None
    host, sep, port = value.rpartition(":")
    if not sep or not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
        raise ConfigError(f"IGNITY_HTTP_ADDR={value!r} must be HOST:PORT with a port from 1 to 65535 "
                          "(e.g. 127.0.0.1:9000)")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host == "localhost":
        host = "127.0.0.1"
    if not _is_ip(host):
        raise ConfigError(f"IGNITY_HTTP_ADDR={value!r}: {host!r} is not an IP address "
                          "(write 127.0.0.1, [::1], 0.0.0.0 or [::])")
    if not (host.startswith("127.") or host == "::1") and not allow_any:
        raise ConfigError(f"IGNITY_HTTP_ADDR={value!r} is not a loopback address: set "
                          "IGNITY_HTTP_ADDR_ALLOW_ANY=1 to serve metrics and probes beyond the container")
    return host, int(port)


def _is_ip(host: str) -> bool:
    import socket  # only with IGNITY_HTTP_ADDR set

    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
            return True
        except OSError:
            continue
    return False


def paths_only(env: Mapping[str, str] = os.environ) -> Settings:
    """Only the two directories: for clients (`ignity svc`, `with-env`) that must start fast and
    must not refuse to work because of an unrelated bad setting."""
    return Settings(conf_dir=_dir(env, "IGNITY_CONF_DIR", DEFAULT_CONF_DIR),
                    run_dir=_dir(env, "IGNITY_RUN_DIR", DEFAULT_RUN_DIR))


def load(env: Mapping[str, str] = os.environ) -> Settings:
    """All settings, validated; raises ConfigError naming the first bad variable."""
    return Settings(
        conf_dir=_dir(env, "IGNITY_CONF_DIR", DEFAULT_CONF_DIR),
        run_dir=_dir(env, "IGNITY_RUN_DIR", DEFAULT_RUN_DIR),
        cmd_wait_for_services=_flag(env, "IGNITY_CMD_WAIT_FOR_SERVICES", False),
        cmd_wait_for_services_maxtime_ms=_ms(env, "IGNITY_CMD_WAIT_FOR_SERVICES_MAXTIME", 5000),
        kill_finalize_maxtime_ms=_ms(env, "IGNITY_KILL_FINALIZE_MAXTIME", 5000),
        services_gracetime_ms=_ms(env, "IGNITY_SERVICES_GRACETIME", 5000),
        kill_gracetime_ms=_ms(env, "IGNITY_KILL_GRACETIME", 3000),
        skip_perms=_flag(env, "IGNITY_SKIP_PERMS", False),
        sync_disks=_flag(env, "IGNITY_SYNC_DISKS", False),
        verbosity=int(_choice(env, "IGNITY_VERBOSITY", ("0", "1", "2", "3"), "1")),
        envs_shared=_choice(env, "IGNITY_ENVS_MODE", ("private", "shared"), "private") == "shared",
        user=_get(env, "USER") or "root",
        usermap_uid=_id(env, "USERMAP_UID"),
        usermap_gid=_id(env, "USERMAP_GID"),
        templates_root=_dir(env, "IGNITY_TEMPLATES_ROOT", "/"),
        log_prefix=_flag(env, "IGNITY_LOG_PREFIX", False),
        log_timestamps=_choice(env, "IGNITY_LOG_TIMESTAMPS", ("none", "iso", "tai64n"), "none"),
        http_addr=_http_addr(env),
    )
