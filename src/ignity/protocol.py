"""The control socket's wire format, shared by the server (``control``) and the client.

One request per connection: a single line of JSON, at most ``MAX_REQUEST`` bytes, newline
terminated. One reply: a single line of JSON, then the server closes the connection.

Requests (``v`` is the protocol version, 1):
  {"v": 1, "cmd": "svc", "action": "up|down|once|restart|alarm|signal", "signal": N, "names": [...]}
  {"v": 1, "cmd": "status", "names": [...], "resources": bool}  names empty = every service
  {"v": 1, "cmd": "wait", "until": "u|U|d|D", "timeout_ms": N|null, "any": bool, "names": [...]}
  {"v": 1, "cmd": "halt", "exit_code": N|null}
  {"v": 1, "cmd": "rescan"}
Replies:
  {"ok": true, ...}                     status adds "services": [...] (SPEC §11.11), each with its
                                        "health"; with "resources": true each service's "resources"
                                        and ignity's own: "ignity": {"pid", "resources"}
  {"ok": false, "code": N, "error": "..."}   N is the client's exit status (SPEC §8)

This module must not depend on any other ignity module but ``errors``.
"""

from __future__ import annotations

import os

from .errors import EXIT_BOOTING, EXIT_NO_SERVICE, EXIT_TIMEOUT, EXIT_USAGE

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: `collections` costs ~1.4 ms at start-up
    from collections.abc import Callable

VERSION = 1
MAX_REQUEST = 64 * 1024
COMMANDS = ("svc", "status", "wait", "halt", "rescan")
SVC_ACTIONS = ("up", "down", "once", "restart", "alarm", "signal")
WAIT_UNTIL = {"u": "up", "U": "ready", "d": "down", "D": "down, finish done"}

FAILURE = 1
# sun_path holds 108 bytes on Linux; a longer socket path is reached through its directory
SUN_PATH_MAX = 107


def with_short_path(path: str, call: Callable[[str], None]) -> None:
    """``call(address)`` for a Unix socket at ``path`` (bind or connect), also when the path is
    longer than sun_path holds: then from inside its directory, by its name. Changing the working
    directory is safe here because ignity and its client are single-threaded."""
    if len(os.fsencode(path)) <= SUN_PATH_MAX:
        call(path)
        return
    saved = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.chdir(os.path.dirname(path))
        call(os.path.basename(path))
    finally:
        os.fchdir(saved)
        os.close(saved)


class ProtocolError(Exception):
    """A request that cannot be served; ``code`` is what the client exits with."""

    def __init__(self, message: str, code: int = EXIT_USAGE):
        super().__init__(message)
        self.code = code


def encode(message: dict) -> bytes:
    import json  # here, not at the top: ~3 ms that `ignity init` pays only once a client speaks

    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def error_reply(message: str, code: int = FAILURE) -> dict:
    return {"ok": False, "code": code, "error": message}


def error_line(message: str, code: int = FAILURE) -> bytes:
    """``encode(error_reply(...))`` without ``json``: a refusal sent while ignity is short of file
    descriptors, when importing ``json`` (which opens files) would fail too."""
    text = "".join(c if " " <= c < "\x7f" and c not in '"\\' else "?" for c in message)
    return b'{"ok":false,"code":%d,"error":"%s"}\n' % (code, text.encode())


def decode_request(line: bytes) -> dict:
    """Parse and validate one request line; raises ProtocolError with a one-line reason."""
    import json  # see encode

    try:
        request = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: [[[[... nested deep
        raise ProtocolError("malformed request: not a JSON object") from None
    if not isinstance(request, dict):
        raise ProtocolError("malformed request: not a JSON object")
    if request.get("v", VERSION) != VERSION:
        raise ProtocolError(f"unsupported protocol version {request.get('v')!r} (this ignity speaks {VERSION})")
    cmd = request.get("cmd")
    if cmd not in COMMANDS:
        raise ProtocolError(f"unknown command {cmd!r}")
    names = request.get("names", [])
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ProtocolError("malformed request: names must be a list of strings")
    if cmd == "svc":
        if request.get("action") not in SVC_ACTIONS:
            raise ProtocolError(f"unknown svc action {request.get('action')!r}")
        if request["action"] == "signal" and not _is_int(request.get("signal")):
            raise ProtocolError("svc signal needs a signal number")
        if not names:
            raise ProtocolError("svc needs at least one service name")
    elif cmd == "wait":
        if request.get("until") not in WAIT_UNTIL:
            raise ProtocolError(f"unknown wait condition {request.get('until')!r}")
        timeout = request.get("timeout_ms")
        if timeout is not None and (not _is_int(timeout) or timeout < 0):
            raise ProtocolError("wait timeout_ms must be a non-negative integer")
        if not names:
            raise ProtocolError("wait needs at least one service name")
    elif cmd == "status":
        if not isinstance(request.get("resources", False), bool):
            raise ProtocolError("status resources must be true or false")
    elif cmd == "halt":
        code = request.get("exit_code")
        if code is not None and (not _is_int(code) or not 0 <= code <= 255):
            raise ProtocolError("halt exit_code must be an integer from 0 to 255")
    return request


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def no_such_service(name: str) -> ProtocolError:
    return ProtocolError(f"no such service: {name}", EXIT_NO_SERVICE)


def timed_out(what: str) -> dict:
    return error_reply(f"timed out waiting for {what}", EXIT_TIMEOUT)


def booting(script: str) -> ProtocolError:
    return ProtocolError(f"the container is booting (init script {script} is running; services "
                         "start after the init scripts)", EXIT_BOOTING)
