"""The client side of the control socket: one request, one reply, an exit status (SPEC §8).

Imports only layer-0 modules and ``settings`` so that ``ignity svc`` starts fast.
"""

from __future__ import annotations

import errno
import json
import socket
import sys

from . import health, metrics, protocol
from .errors import EXIT_BOOTING, EXIT_INTERNAL

# a reply to anything but `wait` comes at once; this only bounds a wedged server
REPLY_TIMEOUT_S = 30.0
FAILURE = 1


class ClientError(Exception):
    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


def request(path: str, message: dict, timeout: float | None = REPLY_TIMEOUT_S) -> dict:
    """Send one request and return the decoded reply; raises ClientError."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        try:
            protocol.with_short_path(path, sock.connect)
        except OSError as e:
            if e.errno in (errno.EACCES, errno.EPERM):
                raise ClientError(f"permission denied on the control socket {path} "
                                  "(run as the user ignity runs as, or root)", FAILURE) from None
            raise ClientError(f"ignity is not running (unable to connect to {path}: "
                              f"{e.strerror})", EXIT_INTERNAL) from None
        try:
            sock.sendall(protocol.encode({"v": protocol.VERSION, **message}))
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before it read the request (out of descriptors): the refusal waits below
        data = b""
        while b"\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except socket.timeout:
        raise ClientError(f"no reply from ignity on {path}", FAILURE) from None
    except OSError as e:
        raise ClientError(f"control socket {path}: {e.strerror}", FAILURE) from None
    finally:
        sock.close()
    try:
        reply = json.loads(data.decode())
    except ValueError:
        raise ClientError(f"no valid reply from ignity on {path}", FAILURE) from None
    if not isinstance(reply, dict):
        raise ClientError(f"no valid reply from ignity on {path}", FAILURE)
    if not reply.get("ok"):
        raise ClientError(str(reply.get("error", "request failed")), int(reply.get("code", FAILURE)))
    return reply


def format_status(services: list[dict]) -> str:
    """Human-readable status, one line per service (s6-svstat style)."""
    lines = []
    for s in services:
        words = [f"{s['name']}:", s["state"]]
        if s.get("type", "longrun") != "longrun":
            words.append(f"({s['type']})")
        if s.get("user"):
            words.append(f"user {s['user']}")
        if s.get("waiting_on"):
            words.append(f"waiting on {', '.join(s['waiting_on'])}")
        if s["pid"] is not None:
            words.append(f"(pid {s['pid']})")
            if s.get("uptime_s") is not None:
                words.append(f"{s['uptime_s']:.0f} seconds")
            if s.get("ready"):
                words.append("ready")
        # a oneshot that is up has no process: its `up` has done its work
        running = s["pid"] is not None or (s.get("type") == "oneshot" and s["state"] == "up")
        if s.get("want") and s["want"] != ("up" if running else "down"):
            words.append(f"want {s['want']}")
        if s.get("restarts"):
            words.append(f"restarts {s['restarts']}")
        if s.get("last_signal") is not None:
            words.append(f"last: killed by signal {s['last_signal']}")
        elif s.get("last_exit_code") is not None:
            words.append(f"last: exit {s['last_exit_code']}")
        if s.get("error"):
            words.append(f"({s['error']})")
        lines.append(" ".join(words))
    return "\n".join(lines)


def _mib(n: int) -> str:
    return f"{n / 1048576:.1f}M"


def format_table(services: list[dict], ignity: dict | None) -> str:
    """``ignity status -l``: one row per service with its resources, and ignity's own last."""
    header = ("NAME", "STATE", "HEALTH", "PID", "UPTIME", "RESTARTS", "RSS", "CPU(U+S)", "FDS", "THREADS", "PROCS",
              "TYPE", "USER")
    rows = [header]

    def usage(res: dict | None) -> tuple:
        if not res:
            return ("-",) * 5
        cpu = res["cpu_user_seconds"] + res["cpu_system_seconds"]
        return (_mib(res["rss_bytes"]), f"{cpu:.2f}s", str(res["open_fds"]), str(res["threads"]),
                str(res["processes"]))

    for s in services:
        uptime = f"{s['uptime_s']:.0f}s" if s.get("uptime_s") is not None else "-"
        rows.append((s["name"], s["state"], s.get("health") or "-",
                     str(s["pid"]) if s["pid"] is not None else "-", uptime, str(s.get("restarts", 0)),
                     *usage(s.get("resources")), s.get("type") or "-", s.get("user") or "-"))
    if ignity:
        rows.append(("(ignity)", "up", "-", str(ignity.get("pid", "-")), "-", "-", *usage(ignity.get("resources")),
                     "-", "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


def print_status(reply: dict, as_json: bool, long: bool = False) -> int:
    """Print a status reply; the exit status: 0, or EXIT_BOOTING while the init scripts run."""
    services = reply.get("services", [])
    booting = reply.get("booting")
    if as_json:
        document = {"services": services}
        if "dependencies" in reply:
            document["dependencies"] = reply["dependencies"]
        if booting is not None:
            document["booting"] = booting
        if "ignity" in reply:
            document["ignity"] = reply["ignity"]
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
    elif booting is not None:
        sys.stdout.write(f"booting: init script {booting or '(none yet)'} is running "
                         "(services start after the init scripts)\n")
    elif long:
        sys.stdout.write(format_table(services, reply.get("ignity")) + "\n")
    elif services:
        sys.stdout.write(format_status(services) + "\n")
    return EXIT_BOOTING if booting is not None else 0


def print_health(reply: dict, as_json: bool) -> int:
    """``ignity health``: 0 when every service asked about is ok, else 1 and one line per
    service that is not, with the reason."""
    services = reply.get("services", [])
    phase = "booting" if reply.get("booting") is not None else (reply.get("ignity") or {}).get("phase", "running")
    lines = health.verdict(services, phase)
    if as_json:
        verdicts = [{"name": s["name"], "health": word, "reason": reason or None}
                    for s in services for word, reason in [health.assess(s)]]
        sys.stdout.write(json.dumps({"healthy": not lines, "reasons": lines, "services": verdicts}, indent=2)
                         + "\n")
    elif lines:
        sys.stdout.write("\n".join(lines) + "\n")
    return FAILURE if lines else 0


def print_metrics(reply: dict) -> None:
    sys.stdout.write(metrics.exposition(reply.get("services", []), (reply.get("ignity") or {}).get("resources")))
