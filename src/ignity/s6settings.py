"""s6-overlay's ``S6_*`` settings, read when the s6-overlay compatibility is on (docs/migrating.md).

Each one is honoured, either as the ``IGNITY_*`` setting it maps onto or as a field of
``S6Settings`` that the compatibility layer acts on, or refused with a ``ConfigError`` naming it
when its value asks for something ignity does not do (exit 100 at boot: a silently ignored setting
is worse than a container that says why it stops). An ``IGNITY_*`` variable set explicitly wins
over the ``S6_*`` one mapped onto it. An ``S6_*`` name ignity does not know is reported once.

Pure: reads a mapping, returns a new one; no file system, no process.
"""

from __future__ import annotations

from .errors import ConfigError
from .record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: `collections` costs ~1.4 ms at start-up
    from collections.abc import Mapping

# s6-overlay's "0 = infinite" for S6_CMD_WAIT_FOR_SERVICES_MAXTIME: ignity's bound is a number of
# ms, so "no limit" becomes the largest one a timer takes without overflow (~24 days)
NO_LIMIT_MS = 2**31 - 1
# S6_VERBOSITY (0-5, default 2 = start/stop lines) -> IGNITY_VERBOSITY (0-3, default 1 = lifecycle lines)
VERBOSITY = {0: "0", 1: "1", 2: "1", 3: "2", 4: "3", 5: "3"}
# s6-overlay adds these to PATH whatever the image says: scripts call /command tools by name
ALWAYS_IN_PATH = ("/command", "/usr/bin", "/bin")

# S6_* -> IGNITY_* taken as they are (milliseconds, 0 meaning the same in both)
SAME_MS = {
    "S6_SERVICES_GRACETIME": "IGNITY_SERVICES_GRACETIME",
    "S6_KILL_GRACETIME": "IGNITY_KILL_GRACETIME",
    "S6_KILL_FINISH_MAXTIME": "IGNITY_KILL_FINALIZE_MAXTIME",
}
# accepted with no effect, and why (docs/migrating.md says the same)
NO_EFFECT = {
    "S6_KEEP_ENV": "every process ignity starts sees the whole container environment",
    "S6_SERVICES_READYTIME": "ignity knows when a service is up: there is no race to sleep over",
    "S6_READ_ONLY_ROOT": "ignity writes only under its runtime dir",
    "S6_CMD_USE_TERMINAL": "the CMD always has the container's stdout, stderr and terminal",
    "S6_CATCHALL_USER": "there is no catch-all logger",
    "S6_YES_I_WANT_A_WORLD_WRITABLE_RUN_BECAUSE_KUBERNETES": "ignity does not refuse a world-writable /run",
    "S6_OVERLAY_VERSION": "a build argument of images, not a setting",
}
HANDLED = {
    *SAME_MS, *NO_EFFECT, "S6_BEHAVIOUR_IF_STAGE2_FAILS", "S6_CMD_WAIT_FOR_SERVICES",
    "S6_CMD_WAIT_FOR_SERVICES_MAXTIME", "S6_SYNC_DISKS", "S6_VERBOSITY", "S6_LOGGING", "S6_LOGGING_SCRIPT",
    "S6_CMD_ARG0", "S6_CMD_RECEIVE_SIGNALS", "S6_FIX_ATTRS_HIDDEN", "S6_STAGE2_HOOK", "S6_WAIT_FOR_CLOSING_FD",
    "S6_RUNTIME_PROFILE", "S6_RUNTIME_BUNDLEDIR",
}
DEFAULT_LOGGING_SCRIPT = "n20 s1000000 T"


class S6Settings(Record):
    """What the compatibility layer itself acts on (the rest became IGNITY_* settings)."""

    __slots__ = ("behaviour", "bundle_dir", "cmd_arg0", "fix_attrs_hidden", "logging_script", "profile",
                 "receive_signals", "stage2_hook", "unknown")

    def __init__(self, *, behaviour: int = 0, cmd_arg0: tuple = (), receive_signals: bool = False,
                 fix_attrs_hidden: bool = False, stage2_hook: str | None = None, profile: str | None = None,
                 bundle_dir: str | None = None, logging_script: str = DEFAULT_LOGGING_SCRIPT,
                 unknown: tuple = ()):
        self._set(behaviour=behaviour, cmd_arg0=cmd_arg0, receive_signals=receive_signals,
                  fix_attrs_hidden=fix_attrs_hidden, stage2_hook=stage2_hook, profile=profile,
                  bundle_dir=bundle_dir, logging_script=logging_script, unknown=unknown)


def _number(env: Mapping[str, str], name: str) -> int | None:
    """A non-negative integer, None when unset or empty; junk is a ConfigError naming it."""
    value = env.get(name) or None
    if value is None:
        return None
    if not (value.isascii() and value.isdigit()):
        raise ConfigError(f"{name}={value!r} is not a non-negative integer")
    return int(value)


def translate(env: Mapping[str, str]) -> tuple[dict[str, str], S6Settings]:
    """``env`` with the IGNITY_* settings the S6_* ones ask for (an explicit IGNITY_* is kept),
    and the S6Settings. ConfigError for a value ignity cannot honour."""
    out = dict(env)

    def put(name: str, value: str) -> None:
        if not env.get(name):  # an IGNITY_* set explicitly wins (an empty one means "unset")
            out[name] = value

    for s6, ignity in SAME_MS.items():
        value = _number(env, s6)
        if value is not None:
            put(ignity, str(value))
    if _number(env, "S6_CMD_WAIT_FOR_SERVICES"):
        put("IGNITY_CMD_WAIT_FOR_SERVICES", "1")
        maxtime = _number(env, "S6_CMD_WAIT_FOR_SERVICES_MAXTIME") or 0  # v3: unset = 0 = no limit
        put("IGNITY_CMD_WAIT_FOR_SERVICES_MAXTIME", str(maxtime or NO_LIMIT_MS))
    if _number(env, "S6_SYNC_DISKS"):
        put("IGNITY_SYNC_DISKS", "1")
    verbosity = _number(env, "S6_VERBOSITY")
    if verbosity is not None:
        put("IGNITY_VERBOSITY", VERBOSITY.get(verbosity, "3"))
    for name in NO_EFFECT:
        if name != "S6_OVERLAY_VERSION":
            _number(env, name)  # no effect, but junk is still refused
    if _number(env, "S6_LOGGING"):
        raise ConfigError(f"S6_LOGGING={env['S6_LOGGING']}: ignity has no catch-all logger; unset it "
                          "(output goes to the container's stdout; a service's own log/ keeps its logs)")
    closing_fd = _number(env, "S6_WAIT_FOR_CLOSING_FD")
    if closing_fd is not None and closing_fd >= 3:
        raise ConfigError(f"S6_WAIT_FOR_CLOSING_FD={closing_fd}: ignity does not wait for a container manager's "
                          "fd; unset it")
    behaviour = _number(env, "S6_BEHAVIOUR_IF_STAGE2_FAILS") or 0
    script = env.get("S6_LOGGING_SCRIPT") or DEFAULT_LOGGING_SCRIPT
    logging_options(script)  # refused at boot, not when the first logger starts
    out["PATH"] = _with_command_dirs(env.get("PATH") or "")
    return out, S6Settings(
        behaviour=min(behaviour, 2),
        cmd_arg0=tuple((env.get("S6_CMD_ARG0") or "").split()),  # `$arg0 "$@"` in sh: split on blanks
        receive_signals=bool(_number(env, "S6_CMD_RECEIVE_SIGNALS")),
        fix_attrs_hidden=bool(_number(env, "S6_FIX_ATTRS_HIDDEN")),
        stage2_hook=env.get("S6_STAGE2_HOOK") or None,
        profile=_profile(env.get("S6_RUNTIME_PROFILE") or None),
        bundle_dir=env.get("S6_RUNTIME_BUNDLEDIR") or None,
        logging_script=script,
        unknown=tuple(sorted(n for n in env if n.startswith("S6_") and n not in HANDLED)),
    )


def _profile(name: str | None) -> str | None:
    if name is not None and ("/" in name or name in (".", "..")):
        raise ConfigError(f"S6_RUNTIME_PROFILE={name!r} must be the name of a directory of /etc/cont-profile.d")
    return name


def _with_command_dirs(path: str) -> str:
    """PATH with s6-overlay's always-present directories where missing: /command first, so that
    ignity's s6 commands win over real s6 binaries left in the image (which cannot talk to ignity),
    /usr/bin and /bin at the end."""
    parts = [p for p in path.split(":") if p and p != "/command"]
    return ":".join(["/command", *parts, *(d for d in ALWAYS_IN_PATH[1:] if d not in parts)])


def logging_options(script: str) -> dict:
    """S6_LOGGING_SCRIPT, an s6-log script, as the options of ignity's built-in logger:
    ``nN`` files kept, ``sN`` bytes per file, ``T`` ISO 8601 / ``t`` TAI64N timestamps. Any other
    directive (selections, processors, a second directory...) is a ConfigError naming it."""
    options: dict = {"keep": 20, "max_size": 99999, "timestamp": "none"}
    for word in script.split():
        head, rest = word[:1], word[1:]
        if head in "ns" and rest.isascii() and rest.isdigit():
            options["keep" if head == "n" else "max_size"] = int(rest)
        elif word == "T":
            options["timestamp"] = "iso"
        elif word == "t":
            options["timestamp"] = "tai64n"
        else:
            raise ConfigError(f"S6_LOGGING_SCRIPT: {word!r} is an s6-log directive ignity's logger does not "
                              "have (it takes nN, sN, t and T)")
    return options
