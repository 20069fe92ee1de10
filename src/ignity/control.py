"""The control socket server: ``$IGNITY_RUN_DIR/control``, mode 0600 (SPEC §8).

Every connection is non-blocking and bounded: a request larger than ``protocol.MAX_REQUEST``,
not JSON, or never finished gets an error reply or is dropped; nothing a client sends or fails to
send can block or stop PID 1. The peer's uid is checked (SO_PEERCRED) besides the socket's mode.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from collections.abc import Callable

from . import log, protocol
from .loop import Loop, Timer
from .protocol import ProtocolError, with_short_path
from .service import State
from .supervisor import Supervisor

MAX_CONNECTIONS = 64
# a client that connects and sends nothing complete within this is dropped
REQUEST_TIMEOUT_S = 10.0
# a client that does not read its reply within this is dropped (replies are small)
SEND_TIMEOUT_S = 1.0
# after replying to `halt`, how long the shutdown waits for that client to go away
HALT_CLIENT_WAIT_S = 0.5
SIGNALS = {"kill": 9, "term": 15, "hup": 1, "int": 2, "quit": 3, "usr1": 10, "usr2": 12, "stop": 19, "cont": 18}


def _condition(until: str) -> Callable[[object], bool]:
    """``ignity wait`` conditions on one service record (s6-svwait -u -U -d -D)."""
    if until == "u":
        return lambda s: s.state in (State.UP, State.STOPPING)
    if until == "U":
        return lambda s: s.state in (State.UP, State.STOPPING) and s.ready
    if until == "d":
        return lambda s: s.state not in (State.UP, State.STOPPING)
    return lambda s: s.state in (State.DOWN, State.BACKOFF)


class _Connection:
    __slots__ = ("buffer", "on_close", "sock", "timer", "waiter")

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buffer = b""
        self.timer: Timer | None = None
        self.waiter: Callable[[], bool] | None = None   # set while the client waits for something
        self.on_close: Callable[[], None] | None = None  # run once the connection is gone


class ControlServer:
    def __init__(self, loop: Loop, path: str, supervisor: Supervisor,
                 on_halt: Callable[[int | None], None]):
        self.loop = loop
        self.path = path
        self.supervisor = supervisor
        self.on_halt = on_halt
        self.accepting_commands = True
        self._connections: dict[int, _Connection] = {}
        self._uid = os.geteuid()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        old_umask = os.umask(0o177)  # the socket is born 0600: no window where others can connect
        try:
            with_short_path(path, self._sock.bind)
        finally:
            os.umask(old_umask)
        self._sock.listen(MAX_CONNECTIONS)
        self._sock.setblocking(False)
        loop.add_reader(self._sock.fileno(), self._accept)
        supervisor.listeners.append(self._check_waiters)

    def stop_accepting_commands(self) -> None:
        """At shutdown only `status` and `wait` are served."""
        self.accepting_commands = False

    def close(self) -> None:
        for conn in list(self._connections.values()):
            self._drop(conn)
        self.loop.remove_reader(self._sock.fileno())
        self._sock.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass

    # ---- connections --------------------------------------------------------------------------------
    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                log.warn(f"control: unable to accept: {e.strerror}")
                return
            if len(self._connections) >= MAX_CONNECTIONS:
                sock.close()
                continue
            sock.setblocking(False)
            conn = _Connection(sock)
            if not self._peer_allowed(sock):
                self._reply(conn, protocol.error_reply("permission denied"))
                sock.close()
                continue
            self._connections[sock.fileno()] = conn
            conn.timer = self.loop.call_later(REQUEST_TIMEOUT_S, lambda c=conn: self._drop(c))
            self.loop.add_reader(sock.fileno(), lambda c=conn: self._readable(c))

    def _peer_allowed(self, sock: socket.socket) -> bool:
        try:
            creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        except OSError:
            return False
        _pid, uid, _gid = struct.unpack("3i", creds)
        return uid in (0, self._uid)

    def _drop(self, conn: _Connection) -> None:
        fd = conn.sock.fileno()
        if fd < 0:
            return
        if conn.timer is not None:
            conn.timer.cancel()
        self._connections.pop(fd, None)
        self.loop.remove_reader(fd)
        conn.sock.close()
        on_close, conn.on_close = conn.on_close, None
        if on_close is not None:
            on_close()

    def _readable(self, conn: _Connection) -> None:
        try:
            data = conn.sock.recv(protocol.MAX_REQUEST + 1)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if conn.waiter is not None:
            if not data:
                self._drop(conn)  # a waiting client went away
            return  # anything sent while waiting is ignored
        if data:
            conn.buffer += data
            if len(conn.buffer) > protocol.MAX_REQUEST:
                self._finish(conn, protocol.error_reply(
                    f"request larger than {protocol.MAX_REQUEST} bytes", protocol.FAILURE))
                return
            if b"\n" not in conn.buffer:
                return
            line = conn.buffer.split(b"\n", 1)[0]
        else:
            line = conn.buffer  # end of file: what came is the request, if anything
            if not line.strip():
                self._drop(conn)
                return
        try:
            self._serve(conn, line)
        except Exception as e:  # a request must never leave a connection open or reach the loop
            log.error(f"control: internal error serving a request: {type(e).__name__}: {e}")
            self._finish(conn, protocol.error_reply("internal error", protocol.FAILURE))

    def _reply(self, conn: _Connection, reply: dict) -> None:
        try:
            conn.sock.settimeout(SEND_TIMEOUT_S)
            conn.sock.sendall(protocol.encode(reply))
        except OSError:
            pass  # the client is gone or not reading: its loss

    def _finish(self, conn: _Connection, reply: dict) -> None:
        self._reply(conn, reply)
        self._drop(conn)

    # ---- requests -------------------------------------------------------------------------------------
    def _serve(self, conn: _Connection, line: bytes) -> None:
        try:
            request = protocol.decode_request(line)
            cmd = request["cmd"]
            if cmd == "wait":
                self._start_wait(conn, request)
                return
            if cmd in ("svc", "rescan", "halt") and not self.accepting_commands:
                raise ProtocolError("ignity is shutting down", protocol.FAILURE)
            if cmd == "svc":
                reply = self._svc(request)
            elif cmd == "status":
                names = request["names"]
                self._check_names(names)
                reply = {"ok": True, "services": self.supervisor.status(names)}
            elif cmd == "rescan":
                added, removed = self.supervisor.rescan()
                reply = {"ok": True, "added": added, "removed": removed}
            else:
                self._halt(conn, request.get("exit_code"))
                return
        except ProtocolError as e:
            reply = protocol.error_reply(str(e), e.code)
        self._finish(conn, reply)

    def _halt(self, conn: _Connection, code: int | None) -> None:
        """Reply, then start the shutdown once the client has read the reply and gone (at most
        HALT_CLIENT_WAIT_S later): stage 3 signals every process, and an `ignity halt` run inside
        the container (`docker exec`) would otherwise be killed before it could exit 0."""
        self._reply(conn, {"ok": True})
        conn.on_close = lambda: self.on_halt(code)
        conn.waiter = lambda: False
        if conn.timer is not None:
            conn.timer.cancel()
        conn.timer = self.loop.call_later(HALT_CLIENT_WAIT_S, lambda: self._drop(conn))

    def _check_names(self, names: list[str]) -> None:
        for name in names:
            if name not in self.supervisor.services:
                raise protocol.no_such_service(name)

    def _svc(self, request: dict) -> dict:
        names = request["names"]
        self._check_names(names)
        for name in names:
            if request["action"] == "signal":
                self.supervisor.send_signal(name, request["signal"])
            else:
                self.supervisor.command(name, request["action"])
        return {"ok": True}

    def _start_wait(self, conn: _Connection, request: dict) -> None:
        names = request["names"]
        try:
            self._check_names(names)
        except ProtocolError as e:
            self._finish(conn, protocol.error_reply(str(e), e.code))
            return
        condition = _condition(request["until"])
        combine = any if request.get("any") else all
        services = self.supervisor.services

        def satisfied() -> bool:
            return combine(name in services and condition(services[name]) for name in names)

        if satisfied():
            self._finish(conn, {"ok": True})
            return
        conn.waiter = satisfied
        if conn.timer is not None:
            conn.timer.cancel()
            conn.timer = None
        timeout = request.get("timeout_ms")
        if timeout is not None:
            what = f"{', '.join(names)} to be {protocol.WAIT_UNTIL[request['until']]}"
            conn.timer = self.loop.call_at(time.monotonic() + timeout / 1000,
                                           lambda: self._finish(conn, protocol.timed_out(what)))

    def _check_waiters(self) -> None:
        for conn in list(self._connections.values()):
            if conn.waiter is not None and conn.waiter():
                self._finish(conn, {"ok": True})
