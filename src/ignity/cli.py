"""Entry points: ``ignity`` (init and the control commands), ``with-env``, ``preboot``.

The only module that turns errors into exit statuses. Client commands import only what they
need, so ``ignity svc`` and ``with-env`` do not pay for the init's modules.
"""

from __future__ import annotations

import _signal as signal  # not `signal`: its enums cost ~3 ms of every start
import gc
import os
import sys

from . import log, settings
from .errors import EXIT_CONFIG, EXIT_INTERNAL, EXIT_USAGE, ConfigError, IgnityError

SVC_FLAGS = {
    "-u": ("up", None), "-d": ("down", None), "-r": ("restart", None), "-o": ("once", None), "-a": ("alarm", None),
    "-k": ("signal", signal.SIGKILL), "-t": ("signal", signal.SIGTERM), "-h": ("signal", signal.SIGHUP),
    "-i": ("signal", signal.SIGINT), "-q": ("signal", signal.SIGQUIT), "-1": ("signal", signal.SIGUSR1),
    "-2": ("signal", signal.SIGUSR2), "-p": ("signal", signal.SIGSTOP), "-c": ("signal", signal.SIGCONT),
}

USAGE = """usage: ignity COMMAND [ARGS...]

commands:
  init [CMD ARGS...]                  run as the container's init (what /init runs)
  svc -u|-d|-r|-o|-a|-k|-t|-h|-i|-q|-1|-2|-p|-c NAME...
                                      up, down, restart, once, alarm (rotate the log);
                                      send KILL TERM HUP INT QUIT USR1 USR2 STOP CONT
  status [--json|-l] [NAME...]        state, pid, uptime, ready, restarts, last exit, health of services
                                      (--json and -l: with the resources of each process tree)
  health [--json] [NAME...]           exit 0 when every service wanted up is up, ready, not failing (1: not)
  metrics                             the Prometheus text exposition of services and ignity
  wait -u|-U|-d|-D [-t MS] [--any] NAME...
                                      block until up / ready / down / down with finish done (99: timeout)
  halt [--exit-code N]                shut the container down
  rescan                              start services added to services-state/, stop removed ones
  setuidgid USER PROG [ARGS...]       exec PROG as USER (name or uid:gid) with its groups
  render TEMPLATE                     print a template of templates/ rendered with the environment
  log [-s MAXSIZE] [-n KEEP] [-t none|iso|tai64n] [-p PREFIX] [--stdout] [--json] DIR
                                      log stdin into DIR (current, @TAI64N.s archives) and/or stdout
exit codes: 0 ok, 1 failure, 2 usage, 3 booting, 99 timeout, 100 no such service, 111 ignity not running
"""


class UsageError(Exception):
    pass


def _parser(prog: str):
    """An argparse parser that raises instead of exiting, so every usage error is one line and
    exit 2. argparse is imported here: `ignity init` does not need it."""
    import argparse

    class Parser(argparse.ArgumentParser):
        def error(self, message: str):  # type: ignore[override]
            raise UsageError(f"{self.prog}: {message}")

    return Parser(prog=prog, add_help=False)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        return _dispatch(args)
    except UsageError as e:
        sys.stderr.write(f"ignity: usage: {e} (ignity --help lists the commands)\n")
        return EXIT_USAGE
    except IgnityError as e:
        log.fatal(str(e))
        return e.code
    except KeyboardInterrupt:
        return 130


def _dispatch(args: list[str]) -> int:
    if not args or args[0] in ("-h", "--help", "help"):
        sys.stdout.write(USAGE)
        return 0 if args else EXIT_USAGE
    command, rest = args[0], args[1:]
    if command == "init":
        return _init(rest)
    if command == "setuidgid":
        if len(rest) < 2:
            raise UsageError("setuidgid: needs USER and PROG")
        from .setuidgid import exec_as

        exec_as(rest[0], rest[1:])
        return EXIT_INTERNAL  # exec_as does not return
    if command == "render":
        return _render(rest)
    if command in ("svc", "status", "wait", "halt", "rescan", "health", "metrics"):
        return _control(command, rest)
    if command == "log":
        return _log(rest)
    raise UsageError(f"unknown command {command!r}")


def _init(cmd: list[str]) -> int:
    if cmd[:1] == ["--"]:
        cmd = cmd[1:]
    # loading the init makes objects that all live as long as it does: no garbage for the ~10
    # collections (~0.2 ms) they would trigger; stages turns collection back on (gc.freeze)
    gc.disable()
    from . import s6detect  # small: the check costs a stat or two

    try:
        env: dict[str, str] | os._Environ = os.environ
        compat = None
        if s6detect.enabled(env, settings.paths_only(env).conf_dir):
            from . import s6compat, s6settings  # the layer's modules, only when it is on

            env, s6 = s6settings.translate(env)
            os.environ["PATH"] = env["PATH"]  # s6-overlay's tools are called by name from /command
            if cmd:
                cmd = [*s6.cmd_arg0, *cmd]  # S6_CMD_ARG0: only in front of a CMD, as s6-overlay
            compat = s6compat.Compat(s6, env, settings.paths_only(env).conf_dir)
        conf = settings.load(env)
    except ConfigError as e:
        log.fatal(str(e))
        return EXIT_CONFIG
    log.set_verbosity(conf.verbosity)
    if compat is None:
        s6detect.notice(os.environ)
    else:
        compat.report_settings()
    from . import stages  # the init's modules, only for `ignity init`

    code = stages.main(conf, cmd, compat)
    # Everything is reaped and said: skip the interpreter's teardown (~10 ms of freeing objects
    # that the kernel frees at once), which would only delay the container's exit.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _render(args: list[str]) -> int:
    """``ignity render TEMPLATE``: what boot would write for it, on stdout. The environment is the
    running container's (the envdir over this process's environment, as with-env), or, before the
    container runs (image build), the envs/ files merged over this process's environment."""
    if len(args) != 1 or args[0].startswith("-"):
        raise UsageError("render: needs one TEMPLATE (a path, or a path inside templates/)")
    from . import confdir, envdir, templates

    conf = settings.paths_only()
    path = args[0]
    if not os.path.exists(path) and not os.path.isabs(path):
        path = os.path.join(conf.conf("templates"), path)
    if os.path.isdir(conf.envdir):
        env = envdir.overlay(os.environ, conf.envdir)
    else:
        env = envdir.merge_files(confdir.visible_files(conf.conf("envs")), dict(os.environ))
    text = templates.render_file(path, env)
    sys.stdout.write(text)
    return 0


def _control(command: str, args: list[str]) -> int:
    from . import client

    message = _control_request(command, args)
    as_json = message.pop("json", False)
    long = message.pop("long", False)
    timeout = client.REPLY_TIMEOUT_S
    if command == "wait":
        ms = message.get("timeout_ms")
        timeout = None if ms is None else ms / 1000 + client.REPLY_TIMEOUT_S
    path = settings.paths_only().control_socket
    try:
        reply = client.request(path, message, timeout)
    except client.ClientError as e:
        sys.stderr.write(f"ignity: {command}: {e}\n")
        return e.code
    if command == "status":
        return client.print_status(reply, as_json, long)
    elif command == "health":
        return client.print_health(reply, as_json)
    elif command == "metrics":
        client.print_metrics(reply)
    return 0


def _control_request(command: str, args: list[str]) -> dict:
    if command == "svc":
        actions, names = [], []
        for arg in args:
            if arg in SVC_FLAGS:
                actions.append(SVC_FLAGS[arg])
            elif arg.startswith("-"):
                raise UsageError(f"svc: unknown option {arg}")
            else:
                names.append(arg)
        if len(actions) != 1 or not names:
            raise UsageError("svc: needs exactly one of -u -d -r -o -a -k -t -h -i -q -1 -2 -p -c, and NAME...")
        action, signum = actions[0]
        message = {"cmd": "svc", "action": action, "names": names}
        if signum is not None:
            message["signal"] = int(signum)
        return message
    parser = _parser(f"ignity {command}")
    if command in ("status", "health"):
        parser.add_argument("--json", action="store_true")
        if command == "status":
            parser.add_argument("-l", "--long", action="store_true")
        parser.add_argument("names", nargs="*")
        ns = parser.parse_args(args)
        long = getattr(ns, "long", False)
        # health asks for states only: a probe every few seconds must not cost a walk of /proc
        return {"cmd": "status", "names": ns.names, "json": ns.json, "long": long,
                "resources": command == "status" and (ns.json or long)}
    if command == "metrics":
        parser.parse_args(args)
        return {"cmd": "status", "names": [], "resources": True}
    if command == "wait":
        group = parser.add_mutually_exclusive_group(required=True)
        for flag in ("u", "U", "d", "D"):
            group.add_argument(f"-{flag}", dest="until", action="store_const", const=flag)
        parser.add_argument("-t", dest="timeout", type=_non_negative, default=None)
        parser.add_argument("--any", "-o", action="store_true")
        parser.add_argument("names", nargs="+")
        ns = parser.parse_args(args)
        return {"cmd": "wait", "until": ns.until, "timeout_ms": ns.timeout, "any": ns.any, "names": ns.names}
    if command == "halt":
        parser.add_argument("--exit-code", type=_exit_code, default=None)
        ns = parser.parse_args(args)
        return {"cmd": "halt", "exit_code": ns.exit_code}
    parser.parse_args(args)  # rescan takes nothing
    return {"cmd": "rescan"}


def _log(args: list[str]) -> int:
    """``ignity log``: the built-in logger as a command reading its stdin (a ``log/run``, or
    outside ignity)."""
    from . import logconf, logpump
    from .logformat import TIMESTAMPS

    parser = _parser("ignity log")
    parser.add_argument("-s", dest="max_size", type=_at_least(logconf.MIN_MAX_SIZE), default=logconf.DEFAULT_MAX_SIZE)
    parser.add_argument("-n", dest="keep", type=_non_negative, default=logconf.DEFAULT_KEEP)
    parser.add_argument("-t", dest="timestamp", choices=TIMESTAMPS, default=None)
    parser.add_argument("-p", dest="prefix", default="")
    parser.add_argument("--stdout", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("directory", nargs="?")
    ns = parser.parse_args(args)
    if ns.directory is None and not ns.stdout:
        raise UsageError("log: needs DIR, or --stdout")
    if "\n" in ns.prefix:
        raise UsageError("log: PREFIX must be one line")
    config = logconf.LogConfig(
        directory=ns.directory and os.path.abspath(ns.directory), max_size=ns.max_size, keep=ns.keep,
        file_timestamp=ns.timestamp or "iso", stdout_timestamp=ns.timestamp or "none",
        prefix=ns.prefix.encode(), stdout=ns.stdout, format="json" if ns.json else "text",
        name=ns.prefix.strip() if ns.json else "")
    return logpump.run_command(config, f"log {ns.directory or 'stdout'}")


def _at_least(minimum: int):
    def parse(text: str) -> int:
        import argparse  # loaded already by _parser

        if not (text.isascii() and text.isdigit()) or int(text) < minimum:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number >= {minimum}")
        return int(text)
    return parse


def _non_negative(text: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise ValueError(f"{text!r} is not a number of milliseconds")
    return int(text)


def _exit_code(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) > 255:
        raise ValueError(f"{text!r} is not an exit code (0-255)")
    return int(text)


def with_env_main(argv: list[str] | None = None) -> int:
    """``with-env PROG ARGS...``: the envdir laid over the current environment, then exec."""
    from . import envdir

    args = sys.argv[1:] if argv is None else argv
    if not args:
        sys.stderr.write("usage: with-env PROG [ARGS...]\n")
        return EXIT_USAGE
    try:
        conf = settings.paths_only()
    except ConfigError as e:
        log.fatal(str(e))
        return EXIT_CONFIG
    env = envdir.overlay(os.environ, conf.envdir)
    try:
        os.execvpe(args[0], args, env)
    except OSError as e:
        code = 127 if isinstance(e, FileNotFoundError) else 126
        log.fatal(f"unable to exec {args[0]}: {e.strerror}")
        return code
    return EXIT_INTERNAL  # not reached


def s6_main(argv: list[str] | None = None) -> int:
    """``ignity-s6``, and every s6 command name linked to it (``install.sh --s6-compat``)."""
    from . import s6shims

    return s6shims.main(sys.argv if argv is None else argv)


def preboot_main(argv: list[str] | None = None) -> int:
    """``preboot [PROG ARGS...]``: prepare the image (user, runtime dir, perms), then exec PROG
    if one is given (so it can also chain-load, as the original preboot did)."""
    from . import confdir, envdir, preboot

    args = sys.argv[1:] if argv is None else argv
    try:
        conf = settings.load()
        log.set_verbosity(conf.verbosity)
        env = envdir.merge_files(confdir.visible_files(conf.conf("envs")), dict(os.environ))
        preboot.run(conf, env)
    except IgnityError as e:
        log.fatal(str(e))
        return e.code
    if args:
        try:
            os.execvp(args[0], args)
        except OSError as e:
            log.fatal(f"unable to exec {args[0]}: {e.strerror}")
            return 127 if isinstance(e, FileNotFoundError) else 126
    return 0
