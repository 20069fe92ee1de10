"""s6 and s6-overlay commands, for images written for them (docs/migrating.md).

One program under many names (``install.sh --s6-compat`` links each name to one launcher; the
name it is run as, ``argv[0]``, picks the command; ``ignity-s6 NAME ARGS...`` works too). Each
command takes the options of the original that make sense under ignity and turns them into a
request on ignity's control socket, or does the job itself (``s6-setuidgid``, ``execlineb`` for
the single-command form). An option it does not take is a usage error naming it: never ignored.

Exit codes follow the originals: s6 tools exit 100 on a usage error, 111 on a system error (ignity
not running), 102 when the service is not supervised, 99 on a timeout.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

from . import accounts, client, envdir, execline, log, s6compat, s6detect, s6settings, settings, setuidgid
from .errors import ConfigError, IgnityError

S6_USAGE, S6_NOT_SUPERVISED, S6_SYSTEM, S6_TIMEOUT = 100, 102, 111, 99
NOBODY = 65534  # logutil-service's user when the image has no "nobody" (s6-envuidgid -D 65534:65534)
# ignity client statuses -> the s6 tools' (2 usage, 100 no such service, 111 not running, 99 timeout)
FROM_CLIENT = {2: S6_USAGE, 100: S6_NOT_SUPERVISED, 111: S6_SYSTEM, 99: S6_TIMEOUT, 1: S6_SYSTEM}
# execline programs: a script calling them needs execlineb and its package
EXECLINE_PACKAGE = ("the execline package (apt-get install execline, apk add execline), or an s6-rc "
                    "up/down file or script that is a single command line")
SVC_SIGNALS = {"k": signal.SIGKILL, "t": signal.SIGTERM, "h": signal.SIGHUP,
               "i": signal.SIGINT, "q": signal.SIGQUIT, "1": signal.SIGUSR1, "2": signal.SIGUSR2,
               "p": signal.SIGSTOP, "c": signal.SIGCONT, "y": signal.SIGWINCH}
# -a: ignity's alarm, which rotates a built-in log and sends SIGALRM to any other process
SVC_ACTIONS = {"u": "up", "d": "down", "r": "restart", "o": "once", "U": "up", "D": "down", "a": "alarm"}


class Usage(Exception):
    """A usage error: the message names the option or argument."""


# ---- helpers ------------------------------------------------------------------------------------

def _options(args: list[str], with_value: str) -> tuple[list[tuple[str, str | None]], list[str]]:
    """getopt as skalibs does it: clustered flags (``-uwU``), ``with_value`` letters take the rest
    of the word or the next argument, ``--`` ends the options."""
    opts: list[tuple[str, str | None]] = []
    i = 0
    while i < len(args) and args[i].startswith("-") and args[i] != "-":
        word = args[i]
        i += 1
        if word == "--":
            break
        j = 1
        while j < len(word):
            letter = word[j]
            j += 1
            if letter in with_value:
                value = word[j:]
                if not value:
                    if i == len(args):
                        raise Usage(f"option -{letter} needs a value")
                    value = args[i]
                    i += 1
                opts.append((letter, value))
                break
            opts.append((letter, None))
    return opts, args[i:]


def _ms(letter: str, value: str | None) -> int:
    if not (value and value.isascii() and value.isdigit()):
        raise Usage(f"option -{letter} needs a number of milliseconds, not {value!r}")
    return int(value)


def service_name(arg: str, state_dir: str) -> str:
    """The service a servicedir argument names: a path into services-state/ (also through
    /run/service, which links there, and ``.`` from a run or finish script), or, for s6-overlay's
    other locations (/run/s6/legacy-services/NAME, /run/s6-rc/servicedirs/NAME, /var/run/s6/services/NAME),
    its last component; ``NAME/log`` for a logger."""
    path = os.path.realpath(arg)
    state = os.path.realpath(state_dir)
    if path.startswith(state + os.sep):
        return path[len(state) + 1:]
    parent, base = os.path.split(path)
    if base == "log" and parent not in ("", os.sep):
        return os.path.basename(parent) + "/log"
    return base or arg


def _request(message: dict, timeout: float | None = client.REPLY_TIMEOUT_S) -> dict:
    return client.request(settings.paths_only().control_socket, message, timeout)


def _names(dirs: list[str]) -> list[str]:
    if not dirs:
        raise Usage("needs at least one service directory")
    state_dir = settings.paths_only().state_dir
    return [service_name(d, state_dir) for d in dirs]


def _wait(until: str, names: list[str], timeout_ms: int | None, any_: bool = False) -> None:
    """s6 waits use 0 for "no limit"; ignity's wait, None."""
    timeout_ms = timeout_ms or None
    timeout = None if timeout_ms is None else timeout_ms / 1000 + client.REPLY_TIMEOUT_S
    _request({"cmd": "wait", "until": until, "timeout_ms": timeout_ms, "any": any_, "names": names}, timeout)


# ---- the commands -------------------------------------------------------------------------------

def s6_svc(args: list[str]) -> int:
    """s6-svc [-wu|-wU|-wd|-wD] [-T ms] -udrokthaiq12pcyDU... SERVICEDIR..."""
    opts, dirs = _options(args, "wT")
    actions: list[tuple[str, int | None]] = []
    down_file: list[bool] = []  # -D / -U also create / remove ./down
    wait, timeout = None, 0
    for letter, value in opts:
        if letter == "w":
            if value not in ("u", "U", "d", "D"):
                raise Usage(f"option -w{value}: ignity waits for u, U, d or D only")
            wait = value
        elif letter == "T":
            timeout = _ms("T", value)
        elif letter in SVC_ACTIONS:
            actions.append((SVC_ACTIONS[letter], None))
            if letter in "DU":
                down_file.append(letter == "D")
        elif letter in SVC_SIGNALS:
            actions.append(("signal", int(SVC_SIGNALS[letter])))
        else:
            raise Usage(f"option -{letter} is not supported by ignity's s6-svc (see docs/migrating.md)")
    names = _names(dirs)
    state_dir = settings.paths_only().state_dir
    for create in down_file:
        for name in names:
            _set_down_file(os.path.join(state_dir, name, "down"), create)
    for action, signum in actions:
        message: dict = {"cmd": "svc", "action": action, "names": names}
        if signum is not None:
            message["signal"] = signum
        _request(message)
    if wait is not None:
        _wait(wait, names, timeout)
    return 0


def _set_down_file(path: str, create: bool) -> None:
    try:
        if create:
            with open(path, "a"):
                pass
        else:
            os.unlink(path)
    except FileNotFoundError:
        pass


def s6_svwait(args: list[str]) -> int:
    """s6-svwait [-U|-u|-D|-d] [-a|-o] [-t ms] SERVICEDIR..."""
    opts, dirs = _options(args, "t")
    until, any_, timeout = "u", False, 0
    for letter, value in opts:
        if letter in "uUdD":
            until = letter
        elif letter in "ao":
            any_ = letter == "o"
        elif letter == "t":
            timeout = _ms("t", value)
        else:
            raise Usage(f"option -{letter} is not supported by ignity's s6-svwait (see docs/migrating.md)")
    _wait(until, _names(dirs), timeout, any_)
    return 0


STAT_FIELDS = ("up", "wantedup", "normallyup", "ready", "paused", "pid", "exitcode", "signal", "signum", "updownfor")
STAT_SHORT = {"u": "up", "w": "wantedup", "N": "normallyup", "r": "ready", "p": "pid", "e": "exitcode",
              "s": "signal", "t": "updownfor"}


def s6_svstat(args: list[str]) -> int:
    """s6-svstat [-uwNrpest | -o FIELD,...] SERVICEDIR"""
    opts, dirs = _options(args, "o")
    fields: list[str] = []
    for letter, value in opts:
        if letter == "o":
            for field in (value or "").split(","):
                if field not in STAT_FIELDS:
                    raise Usage(f"field {field!r} is not supported by ignity's s6-svstat "
                                f"(it has {', '.join(STAT_FIELDS)})")
                fields.append(field)
        elif letter in STAT_SHORT:
            fields.append(STAT_SHORT[letter])
        else:
            raise Usage(f"option -{letter} is not supported by ignity's s6-svstat (see docs/migrating.md)")
    if len(dirs) != 1:
        raise Usage("needs exactly one service directory")
    name = _names(dirs)[0]
    status = _request({"cmd": "status", "names": [name]})["services"][0]
    normally_up = not os.path.exists(os.path.join(settings.paths_only().state_dir, name, "down"))
    values = _stat_values(status, normally_up)
    if fields:
        sys.stdout.write(" ".join(values[f] for f in fields) + "\n")
    else:
        sys.stdout.write(_stat_line(status, normally_up) + "\n")
    return 0


def _stat_values(s: dict, normally_up: bool) -> dict[str, str]:
    up = s["pid"] is not None
    signum = s.get("last_signal")
    code = s.get("last_exit_code")
    return {
        "up": str(up).lower(), "wantedup": str(s.get("want") != "down").lower(),
        "normallyup": str(normally_up).lower(), "ready": str(bool(s.get("ready"))).lower(), "paused": "false",
        "pid": str(s["pid"] if up else -1),
        "exitcode": str(code if not up and code is not None and signum is None else -1),
        "signal": _signame(signum) if not up and signum is not None else "NA",
        "signum": str(signum if not up and signum is not None else -1),
        "updownfor": str(int(s["uptime_s"])) if s.get("uptime_s") is not None else "0",
    }


def _signame(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return str(signum)


def _stat_line(s: dict, normally_up: bool) -> str:
    """s6-svstat's human-readable line: ``up (pid 42) 12 seconds, ready`` / ``down (exitcode 3)``."""
    if s["pid"] is not None:
        words = [f"up (pid {s['pid']}) {int(s.get('uptime_s') or 0)} seconds"]
        if not normally_up:
            words.append("normally down")
        if s.get("want") == "down":
            words.append("want down")
        if s.get("ready"):
            words.append("ready")
        return ", ".join(words)
    if s.get("last_signal") is not None:
        first = f"down (signal {_signame(s['last_signal'])})"
    elif s.get("last_exit_code") is not None:
        first = f"down (exitcode {s['last_exit_code']})"
    else:
        first = "down"
    words = [first]
    if normally_up:
        words.append("normally up")
    if s.get("want") not in (None, "down"):
        words.append("want up")
    return ", ".join(words)


SCANCTL_HALT = set("tqbi0678p")
SCANCTL_RESCAN = set("ahnN")


def s6_svscanctl(args: list[str]) -> int:
    """s6-svscanctl [-tqb...|-ahnN|-z] SCANDIR: stop the container, or rescan (reaping is ignity's)."""
    opts, dirs = _options(args, "")
    if len(dirs) != 1:
        raise Usage("needs exactly one scan directory")
    letters = {letter for letter, _ in opts}
    bad = sorted(letters - SCANCTL_HALT - SCANCTL_RESCAN - {"z"})
    if bad:
        raise Usage(f"option -{bad[0]} is not supported by ignity's s6-svscanctl (see docs/migrating.md)")
    if letters & SCANCTL_RESCAN:
        _request({"cmd": "rescan"})
    if letters & SCANCTL_HALT:
        _request({"cmd": "halt", "exit_code": None})
    return 0


def halt(args: list[str]) -> int:
    """/run/s6/basedir/bin/halt: stop the container with the status a finish script wrote to
    /run/s6-linux-init-container-results/exitcode (0 when there is none)."""
    if args:
        raise Usage(f"takes no argument, got {args[0]!r}")
    _request({"cmd": "halt", "exit_code": s6compat.read_exitcode(s6detect.root(os.environ))})
    return 0


def with_contenv(args: list[str]) -> int:
    """with-contenv PROG...: the container environment over the current one, then exec PROG."""
    if not args:
        raise Usage("needs a program to run")
    env = envdir.overlay(os.environ, settings.paths_only().envdir)
    _exec(args, env)
    return S6_SYSTEM


def printcontenv(args: list[str]) -> int:
    """printcontenv VAR: the value of a container environment variable; 1 when it is unset."""
    if len(args) != 1:
        raise Usage("needs exactly one variable name")
    env = envdir.overlay(os.environ, settings.paths_only().envdir)
    if args[0] not in env:
        return 1
    sys.stdout.write(env[args[0]] + "\n")
    return 0


def s6_setuidgid(args: list[str]) -> int:
    """s6-setuidgid ACCOUNT PROG...: ACCOUNT is a user name or uid:gid."""
    if args[:1] and args[0].startswith("-") and args[0] != "--":
        raise Usage(f"option {args[0]} is not supported by ignity's s6-setuidgid")
    if args[:1] == ["--"]:
        args = args[1:]
    if len(args) < 2:
        raise Usage("needs an account and a program")
    setuidgid.exec_as(args[0], args[1:])
    return S6_SYSTEM  # not reached


def s6_envuidgid(args: list[str]) -> int:
    """s6-envuidgid [-u|-g|-B] [-i|-D uid:gid[:gidlist]] ACCOUNT PROG...: UID, GID and GIDLIST of
    ACCOUNT in the environment, then exec PROG."""
    import grp
    import pwd

    opts, rest = _options(args, "D")
    which, default = "all", None
    for letter, value in opts:
        if letter in "ugB":
            which = letter
        elif letter == "i":
            default = None
        elif letter == "D":
            default = value
        else:
            raise Usage(f"option -{letter} is not supported by ignity's s6-envuidgid")
    if len(rest) < 2:
        raise Usage("needs an account and a program")
    account, prog = rest[0], rest[1:]
    env = dict(os.environ)
    try:
        if which == "g":
            env["GID"] = str(grp.getgrnam(account).gr_gid)
        elif which == "B":
            user, _, group = account.partition(":")
            env["UID"] = str(pwd.getpwnam(user).pw_uid)
            if group:
                env["GID"] = str(grp.getgrnam(group).gr_gid)
        else:
            entry = pwd.getpwnam(account)
            env["UID"] = str(entry.pw_uid)
            if which == "all":
                env["GID"] = str(entry.pw_gid)
                groups = [g for g in os.getgrouplist(entry.pw_name, entry.pw_gid) if g != entry.pw_gid]
                env["GIDLIST"] = ",".join(map(str, groups))
    except KeyError:
        if default is None:
            log.fatal(f"s6-envuidgid: unknown account {account}")
            return 1
        uid, _, rest_ids = default.partition(":")
        gid, _, gidlist = rest_ids.partition(":")
        env.update({k: v for k, v in (("UID", uid), ("GID", gid), ("GIDLIST", gidlist)) if v or k == "GIDLIST"})
    _exec(prog, env)
    return S6_SYSTEM


def s6_notifyoncheck(args: list[str]) -> int:
    """s6-notifyoncheck [-d] [-3 fd] [-s ms] [-T ms] [-t ms] [-w ms] [-n tries] [-c CHECK] PROG...:
    exec PROG; a child polls ./data/check (or CHECK, run by /bin/sh -c) and, once it exits 0, writes
    the readiness newline on the notification fd (-3, else ./notification-fd)."""
    opts, prog = _options(args, "3sTtwnc")
    cfg = {"3": None, "s": 0, "T": 0, "t": 2000, "w": 1000, "n": 7, "c": None}
    for letter, value in opts:
        if letter == "d":
            continue  # double fork: the checker is always a grandchild here (PROG never sees it)
        if letter not in cfg:
            raise Usage(f"option -{letter} is not supported by ignity's s6-notifyoncheck")
        cfg[letter] = value if letter == "c" else _ms(letter, value)
    if not prog:
        raise Usage("needs a program to run")
    fd = cfg["3"]
    if fd is None:
        try:
            with open("notification-fd") as f:
                fd = int(f.read().strip())
        except (OSError, ValueError):
            raise Usage("no -3 option and no readable ./notification-fd file") from None
    check = ["/bin/sh", "-c", cfg["c"]] if cfg["c"] else ["./data/check"]
    if os.fork() == 0:  # the checker; a second fork so that PROG never gets its SIGCHLD
        if os.fork() == 0:
            os._exit(_check_loop(check, fd, cfg))
        os._exit(0)
    os.wait()
    os.close(fd)  # PROG must not hold the notification fd: the supervisor would never see its EOF
    _exec(prog, dict(os.environ))
    return S6_SYSTEM


def _check_loop(check: list[str], fd: int, cfg: dict) -> int:
    time.sleep(cfg["s"] / 1000)
    deadline = time.monotonic() + cfg["T"] / 1000 if cfg["T"] else None
    tries = cfg["n"] or None
    while True:
        try:
            ok = subprocess.run(check, timeout=cfg["t"] / 1000 or None, stdin=subprocess.DEVNULL).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            ok = False
        if ok:
            os.write(fd, b"\n")
            return 0
        if tries is not None:
            tries -= 1
            if tries <= 0:
                return 1
        if deadline is not None and time.monotonic() >= deadline:
            return 1
        time.sleep(cfg["w"] / 1000)


def with_retries(args: list[str]) -> int:
    """with-retries [-n TRIES] [-t MS] PROG...: run PROG until it succeeds, at most TRIES times
    (default 3), each run killed (SIGTERM) after MS milliseconds (default 500); 0 at the first
    success, else 1."""
    opts, prog = _options(args, "nt")
    tries, timeout = 3, 500
    for letter, value in opts:
        if letter not in "nt":
            raise Usage(f"option -{letter} is not a with-retries option")
        if letter == "n":
            tries = _ms(letter, value)
        else:
            timeout = _ms(letter, value)
    if not prog:
        raise Usage("needs a program to run")
    for _ in range(tries):
        try:
            child = subprocess.Popen(prog)  # not PID 1: this process may wait for its own child
        except OSError as e:
            raise IgnityError(f"unable to exec {prog[0]}: {e.strerror}", 127 if isinstance(e, FileNotFoundError)
                              else 126) from None
        try:
            if child.wait(timeout / 1000 or None) == 0:
                return 0
        except subprocess.TimeoutExpired:
            child.terminate()
            child.wait()
    return 1


def logutil_service(args: list[str]) -> int:
    """logutil-service [-f FIFO] DIR: s6-overlay's rotated log of a service, written by ignity's
    built-in logger (``ignity log``) with the options of S6_LOGGING_SCRIPT, as nobody (65534:65534
    when the image has no such user), reading stdin or FIFO."""
    from . import logconf, logpump

    opts, rest = _options(args, "f")
    fifo = None
    for letter, value in opts:
        if letter != "f":
            raise Usage(f"option -{letter} is not a logutil-service option")
        fifo = value
    if len(rest) != 1:
        raise Usage("needs exactly one log directory")
    env = envdir.overlay(os.environ, settings.paths_only().envdir)
    try:
        options = s6settings.logging_options(env.get("S6_LOGGING_SCRIPT") or s6settings.DEFAULT_LOGGING_SCRIPT)
    except ConfigError as e:
        raise IgnityError(str(e), S6_USAGE) from None
    if fifo is not None:
        try:
            fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO with no writer yet: do not block here
            os.set_blocking(fd, True)
            os.dup2(fd, 0)
            os.close(fd)
        except OSError as e:
            raise IgnityError(f"unable to open {fifo}: {e.strerror}", S6_SYSTEM) from None
    if os.geteuid() == 0:
        try:
            nobody = accounts.resolve("nobody")
        except IgnityError:
            nobody = accounts.Account(None, NOBODY, NOBODY, ())
        setuidgid.become(nobody, "nobody")
    config = logconf.LogConfig(directory=os.path.abspath(rest[0]), keep=options["keep"],
                               max_size=max(options["max_size"], logconf.MIN_MAX_SIZE),
                               file_timestamp=options["timestamp"])
    return logpump.run_command(config, f"logutil-service {rest[0]}")


def execlineb(args: list[str]) -> int:
    """execlineb [-P|-p|-q|-w|-W] SCRIPT [ARGS] (also as a ``#!`` interpreter): a real execlineb when
    the image has one; else the single-command form, run here."""
    real = _real_execlineb()
    if real is not None:
        _exec([real, *args], dict(os.environ))
    opts, rest = _options(args, "Ss")
    letters = {letter for letter, _ in opts}
    for letter, value in opts:
        if letter in "Ss":
            raise Usage(f"option -{letter}{value} (positional parameters) needs a real execlineb: install "
                        f"{EXECLINE_PACKAGE}")
        if letter not in "PpqwWec":
            raise Usage(f"option -{letter} is not an execlineb option")
    if not rest:
        raise Usage("needs a script" + (" after -c" if "c" in letters else " file"))
    if "c" in letters:
        text, where = rest[0], "the execlineb -c script"
    else:
        where = rest[0]  # the script's own arguments, rest[1:], are positional parameters: unused under -P
        try:
            with open(where, encoding="utf-8", errors="surrogateescape") as f:
                text = f.read()
        except OSError as e:
            raise IgnityError(f"unable to read {where}: {e.strerror}", S6_SYSTEM) from None
    return run_text(text, where)


def s6rc_program(which: str, argv0: str, args: list[str]) -> int:
    """A translated s6-rc oneshot's ``up``/``down``: this launcher, linked under that name in the
    service directory, runs the s6-rc file kept beside it (``s6-rc-up``, ``s6-rc-down``) as
    s6-rc does, ``execlineb -P``: a real execlineb when the image has one, else the single command."""
    del args  # the service's name, as ignity passes it to every program of a service: s6-rc's files take none
    path = os.path.join(os.path.dirname(os.path.abspath(argv0)), f"s6-rc-{which}")
    real = _real_execlineb()
    if real is not None:
        _exec([real, "-P", path], dict(os.environ))
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            text = f.read()
    except OSError as e:
        raise IgnityError(f"unable to read {path}: {e.strerror}", S6_SYSTEM) from None
    return run_text(text, f"the s6-rc {which} file of {os.path.basename(os.path.dirname(path))}")


def run_text(text: str, where: str) -> int:
    """Run an execline text without execlineb: one command line (exec'd), or ``if``/``foreground``
    steps before it (execline.chain), with execline's statuses (``if``: the failed step's status,
    1 under ``-n``, 0 under ``-t``; 128+N for a step killed by signal N). An IgnityError naming
    ``where`` and the execline package for anything more."""
    try:
        steps, argv = execline.chain(execline.strip_shebang(text)[1])
    except execline.NotOneCommand as e:
        raise IgnityError(f"{where} is an execline script beyond what ignity runs itself ({e}): it needs "
                          f"execlineb, from {EXECLINE_PACKAGE}", 126) from None
    except execline.ExeclineError as e:
        raise IgnityError(f"{where}: execline syntax error: {e}", S6_USAGE) from None
    for program, flags, block in steps:
        code = _run_step(block)
        if program == "if" and (code == 0) == ("-n" in flags):
            return 0 if "-t" in flags else (1 if code == 0 else code)
    if argv:
        _exec(argv, dict(os.environ))
    return 0


def _run_step(argv: list[str]) -> int:
    """One block of a chain, waited for: this is a service's program, not PID 1, so it may wait
    for its own child."""
    if not argv:
        return 0
    try:
        code = subprocess.call(argv)
    except OSError as e:
        sys.stderr.write(f"unable to exec {argv[0]}: {e.strerror}\n")
        return 127 if isinstance(e, FileNotFoundError) else 126
    return 128 - code if code < 0 else code


def _real_execlineb() -> str | None:
    """An execlineb of the image on PATH that is not this program. (PATH only: the execline
    programs a script calls are found through PATH too.)"""
    me = os.path.realpath(sys.argv[0])
    for path in (os.path.join(d, "execlineb") for d in os.environ.get("PATH", "").split(":") if d):
        if os.access(path, os.X_OK) and os.path.realpath(path) != me and not _is_ours(path):
            return path
    return None


def _is_ours(path: str) -> bool:
    """A launcher of ignity's (a Python script naming an ignity entry point) under another name."""
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError:
        return False
    return b"ignity" in head and head.startswith(b"#!")


def _exec(argv: list[str], env: dict[str, str]) -> None:
    try:
        os.execvpe(argv[0], argv, env)
    except OSError as e:
        code = 127 if isinstance(e, FileNotFoundError) else 126
        hint = f" (an execline program: install {EXECLINE_PACKAGE})" if code == 127 and _execline_name(argv[0]) else ""
        raise IgnityError(f"unable to exec {argv[0]}: {e.strerror}{hint}", code) from None


EXECLINE_PROGRAMS = frozenset((  # noqa: SIM905 (a list of 48 quoted words reads worse)
    "background backtick cd define dollarat elgetopt elgetpositionals elglob eltest emptyenv envfile exec exit "
    "export fdblock fdclose fdmove fdreserve fdswap forbacktickx foreground forstdin forx getcwd getpid heredoc "
    "homeof if ifelse ifte ifthenelse importas loopwhilex multidefine multisubstitute pipeline piperw redirfd "
    "runblock shift trap tryexec umask unexport wait withstdinas s6-envdir s6-applyuidgid").split())


def _execline_name(prog: str) -> bool:
    return os.path.basename(prog) in EXECLINE_PROGRAMS


COMMANDS: dict[str, Callable[[list[str]], int]] = {
    "s6-svc": s6_svc, "s6-svwait": s6_svwait, "s6-svstat": s6_svstat, "s6-svscanctl": s6_svscanctl,
    "s6-setuidgid": s6_setuidgid, "s6-envuidgid": s6_envuidgid, "s6-notifyoncheck": s6_notifyoncheck,
    "with-contenv": with_contenv, "printcontenv": printcontenv, "logutil-service": logutil_service,
    "halt": halt, "poweroff": halt, "reboot": halt, "execlineb": execlineb, "with-retries": with_retries,
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    name = os.path.basename(argv[0])
    args = argv[1:]
    if name not in COMMANDS and name not in ("up", "down"):  # `ignity-s6 NAME ARGS...`
        if not args or args[0] not in COMMANDS:
            sys.stderr.write(f"usage: ignity-s6 COMMAND [ARGS...], COMMAND one of: {' '.join(sorted(COMMANDS))}\n")
            return S6_USAGE
        name, args = args[0], args[1:]
    try:
        if name in ("up", "down"):
            return s6rc_program(name, argv[0], args)
        return COMMANDS[name](args)
    except Usage as e:
        sys.stderr.write(f"{name}: usage: {e}\n")
        return S6_USAGE
    except client.ClientError as e:
        sys.stderr.write(f"{name}: {e}\n")
        return FROM_CLIENT.get(e.code, S6_SYSTEM)
    except IgnityError as e:
        sys.stderr.write(f"{name}: {e}\n")
        return e.code
    except KeyboardInterrupt:
        return 130
