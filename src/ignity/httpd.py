"""The optional HTTP listener (``IGNITY_HTTP_ADDR``): ``GET /metrics``, ``/healthz``, ``/readyz``,
served from the one loop, for Prometheus and Kubernetes probes.

Read-only by design: GET only, three paths, no control action. Like the control socket every
connection is non-blocking and bounded (``MAX_CONNECTIONS``, ``MAX_REQUEST`` bytes of request
head, ``CONNECTION_TIMEOUT_S`` for the whole exchange): a client that sends garbage gets a 4xx
and is closed, one that sends nothing or reads nothing is dropped; the reply is written as the
socket takes it, so a slow reader never blocks PID 1. One request per connection
(``Connection: close``), which is what probes and scrapers do.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

from . import health, log, metrics
from .loop import Loop, Timer

MAX_CONNECTIONS = 16
MAX_REQUEST = 8 * 1024
CONNECTION_TIMEOUT_S = 5.0
LISTEN_BACKLOG = 16

# status(with_resources, done): done(the status JSON document), now or a few turns of the loop later
StatusSource = Callable[[bool, Callable[[dict], None]], None]

_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            431: "Request Header Fields Too Large", 500: "Internal Server Error", 503: "Service Unavailable"}
TEXT = "text/plain; charset=utf-8"


def _response(code: int, body: bytes, content_type: str = TEXT, extra: str = "") -> bytes:
    head = (f"HTTP/1.1 {code} {_REASONS[code]}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n{extra}\r\n")
    return head.encode("ascii") + body


def _text(code: int, text: str, extra: str = "") -> bytes:
    return _response(code, text.encode("utf-8"), extra=extra)


class _Connection:
    __slots__ = ("buffer", "sock", "timer")

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buffer = b""
        self.timer: Timer | None = None


class HttpServer:
    def __init__(self, loop: Loop, host: str, port: int, status: StatusSource):
        """Bind and listen; raises OSError (port in use, address not here) for the caller to report."""
        self.loop = loop
        self.status = status
        self._connections: dict[int, _Connection] = {}
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            # a restarted container must not wait out TIME_WAIT of the previous one's scrapes
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._sock.bind((host, port))
            self._sock.listen(LISTEN_BACKLOG)
        except OSError:
            self._sock.close()
            raise
        self._sock.setblocking(False)
        self.address = self._sock.getsockname()[:2]
        loop.add_reader(self._sock.fileno(), self._accept)

    def close(self) -> None:
        for conn in list(self._connections.values()):
            self._drop(conn)
        self.loop.remove_reader(self._sock.fileno())
        self._sock.close()

    # ---- connections -----------------------------------------------------------------------------
    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                log.warn(f"http: unable to accept: {e.strerror}")
                return
            if len(self._connections) >= MAX_CONNECTIONS:
                sock.close()  # the client sees a reset and retries: probes and scrapers do
                continue
            sock.setblocking(False)
            conn = _Connection(sock)
            self._connections[sock.fileno()] = conn
            conn.timer = self.loop.call_later(CONNECTION_TIMEOUT_S, lambda c=conn: self._drop(c))
            self.loop.add_reader(sock.fileno(), lambda c=conn: self._readable(c))

    def _drop(self, conn: _Connection) -> None:
        fd = conn.sock.fileno()
        if fd < 0:
            return
        if conn.timer is not None:
            conn.timer.cancel()
        self._connections.pop(fd, None)
        self.loop.remove_reader(fd)
        self.loop.remove_writer(fd)
        conn.sock.close()

    def _readable(self, conn: _Connection) -> None:
        try:
            data = conn.sock.recv(MAX_REQUEST + 1)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(conn)  # gone before a whole request came
            return
        conn.buffer += data
        end = conn.buffer.find(b"\r\n\r\n")
        if end < 0:
            end = conn.buffer.find(b"\n\n")  # bare newlines, as hand-typed requests have
        if end < 0 and len(conn.buffer) <= MAX_REQUEST:
            return
        self.loop.remove_reader(conn.sock.fileno())
        if end < 0 or end > MAX_REQUEST:
            self._respond(conn, _text(431, f"request head larger than {MAX_REQUEST} bytes\n"))
            return
        try:
            self._serve(conn, conn.buffer[:end])
        except Exception as e:  # a request must never reach the loop or leave the connection open
            log.error(f"http: internal error serving a request: {type(e).__name__}: {e}")
            self._respond(conn, _text(500, "internal error\n"))

    def _respond(self, conn: _Connection, reply: bytes) -> None:
        if conn.sock.fileno() >= 0:  # not dropped meanwhile (CONNECTION_TIMEOUT_S)
            self.loop.send(conn.sock, reply, lambda: self._close(conn))

    def _close(self, conn: _Connection) -> None:
        """All written: end the stream (the client reads to end of file), then forget it."""
        try:
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        self._drop(conn)

    # ---- requests -------------------------------------------------------------------------------
    def _serve(self, conn: _Connection, head: bytes) -> None:
        try:
            request_line = head.split(b"\n", 1)[0].rstrip(b"\r").decode("ascii")
        except UnicodeDecodeError:
            self._respond(conn, _text(400, "malformed request line\n"))
            return
        parts = request_line.split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1.") or not parts[1].startswith("/"):
            self._respond(conn, _text(400, "malformed request line (want: GET /metrics HTTP/1.1)\n"))
            return
        method, target = parts[0], parts[1].split("?", 1)[0]
        if target not in ("/metrics", "/healthz", "/readyz"):
            self._respond(conn, _text(404, "not found (try /metrics, /healthz or /readyz)\n"))
        elif method != "GET":
            self._respond(conn, _text(405, "GET only\n", extra="Allow: GET\r\n"))
        elif target == "/healthz":
            self._respond(conn, _text(200, "ok\n"))  # answered by the loop itself: ignity is alive and serving
        elif target == "/readyz":
            self.status(False, lambda document: self._respond(conn, _readyz(document)))
        else:
            # Prometheus asks for OpenMetrics first (Accept: application/openmetrics-text;...)
            openmetrics = b"application/openmetrics-text" in head.lower()
            self.status(True, lambda document: self._respond(conn, _metrics(document, openmetrics)))


def _readyz(document: dict) -> bytes:
    lines = health.verdict(document["services"], document["ignity"]["phase"])
    return _text(503, "\n".join(lines) + "\n") if lines else _text(200, "ok\n")


def _metrics(document: dict, openmetrics: bool) -> bytes:
    text = metrics.exposition(document["services"], document["ignity"].get("resources"), openmetrics)
    kind = metrics.OPENMETRICS_CONTENT_TYPE if openmetrics else metrics.CONTENT_TYPE
    return _response(200, text.encode("utf-8"), kind)
