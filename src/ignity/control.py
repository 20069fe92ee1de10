"""The control socket server: ``$IGNITY_RUN_DIR/control``, mode 0600 (SPEC §8).

Every connection is non-blocking and bounded: a request larger than ``protocol.MAX_REQUEST``,
not JSON, or never finished gets an error reply or is dropped; nothing a client sends or fails to
send can block or stop PID 1. The peer's uid is checked (SO_PEERCRED) besides the socket's mode.

Out of file descriptors, ``accept`` fails and the listener stays readable: watched as is, it
would wake the loop forever. A spare descriptor (/dev/null) is kept for that moment: closed, it
lets one pending connection be accepted and refused with a reply, then it is taken again. With
no spare left the listener is not watched; a timer retries every FD_RETRY_S until descriptors
are free again. One warning when such an episode starts, one with the count refused when it ends.
"""

from __future__ import annotations

# _socket, not `socket` (its enums cost ~2 ms of every container start); the services' modules
# (supervisor, service, oneshot, resources) only once there is a service: `/init CMD` without
# services never loads them
import _socket as socket
import errno
import os
import sys
import time

from . import fdlimit, log, protocol
from .loop import Loop, Timer
from .protocol import ProtocolError, with_short_path

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from .supervisor import Supervisor

MAX_CONNECTIONS = 64
UCRED_SIZE = 12  # struct ucred: pid, uid, gid, 4 bytes each
# processes of /proc read per turn of the loop for a status with resources: ~3 ms each
SCAN_SLICE = 100
# a client that connects and sends nothing complete within this is dropped
REQUEST_TIMEOUT_S = 10.0
# a client that does not read its reply within this is dropped (replies are small)
SEND_TIMEOUT_S = 1.0
# after replying to `halt`, how long the shutdown waits for that client to go away
HALT_CLIENT_WAIT_S = 0.5
# while short of file descriptors, how often to look whether some are free again
FD_RETRY_S = 1.0
FD_SHORT = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
SIGNALS = {"kill": 9, "term": 15, "hup": 1, "int": 2, "quit": 3, "usr1": 10, "usr2": 12, "stop": 19, "cont": 18}


def _condition(until: str) -> Callable[[object], bool]:
    """``ignity wait`` conditions on one service record (s6-svwait -u -U -d -D)."""
    from .oneshot import OneshotState  # loaded already: there are services to wait for
    from .service import State

    # `up`: a longrun's run alive (being stopped included), a oneshot's up done
    up_states = (State.UP, State.STOPPING, OneshotState.UP, OneshotState.STOPPING)
    if until == "u":
        return lambda s: s.state in up_states
    if until == "U":
        return lambda s: s.state in up_states and s.ready
    if until == "d":
        return lambda s: s.state not in up_states
    return lambda s: s.is_down()


class _Connection:
    __slots__ = ("buffer", "deferred", "on_close", "sock", "timer", "waiter")

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buffer = b""
        self.timer: Timer | None = None
        self.waiter: Callable[[], bool] | None = None   # set while the client waits for something
        self.on_close: Callable[[], None] | None = None  # run once the connection is gone
        self.deferred: dict | None = None  # a `wait` that came during boot, checked once it is over


class ControlServer:
    def __init__(self, loop: Loop, path: str, supervisor: Callable[[], Supervisor],
                 on_halt: Callable[[int | None], None]):
        """``supervisor()`` gives the supervisor, creating it the first time (a container
        without services has none until a `rescan` finds some)."""
        self.loop = loop
        self.path = path
        self._make_supervisor = supervisor
        self.supervisor: Supervisor | None = None
        self.on_halt = on_halt
        self.accepting_commands = True
        # the init script running while the container boots; None once the services exist
        self.booting: str | None = ""
        self._connections: dict[int, _Connection] = {}
        self._spare: int | None = None
        self._fd_timer: Timer | None = None
        self._short = False  # an fd shortage is going on...
        self._refused = 0    # ...and this many connections were refused in it
        self._listening = False
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
        self._spare = _open_spare()
        self._listen(True)

    def attach(self, supervisor: Supervisor) -> None:
        """The supervisor exists: waiters are told of every change of its services."""
        if self.supervisor is None:
            self.supervisor = supervisor
            supervisor.listeners.append(self._check_waiters)

    @property
    def _services(self) -> dict:
        return self.supervisor.services if self.supervisor is not None else {}

    @property
    def phase(self) -> str:
        """ignity's own phase, for health verdicts: booting (init scripts), running, stopping."""
        if self.booting is not None:
            return "booting"
        return "running" if self.accepting_commands else "stopping"

    def set_booting(self, script: str) -> None:
        """Stage 2 runs init script ``script``: commands about services cannot be served yet."""
        self.booting = script

    def booted(self) -> None:
        """The services exist: `wait`s that came during boot are checked now."""
        self.booting = None
        for conn in list(self._connections.values()):
            if conn.deferred is not None:
                request, conn.deferred = conn.deferred, None
                self._start_wait(conn, request, armed=True)

    def stop_accepting_commands(self) -> None:
        """At shutdown only `status` and `wait` are served; a `wait` that came during a boot that
        never finished is told so."""
        self.accepting_commands = False
        for conn in list(self._connections.values()):
            if conn.deferred is not None:
                self._finish(conn, protocol.error_reply("the container is shutting down before its "
                                                        "services started", protocol.FAILURE))

    def close(self) -> None:
        for conn in list(self._connections.values()):
            self._drop(conn)
        if self._fd_timer is not None:
            self._fd_timer.cancel()
        if self._spare is not None:
            os.close(self._spare)
            self._spare = None
        self._listen(False)
        self._sock.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass

    # ---- connections --------------------------------------------------------------------------------
    def _accept(self) -> None:
        while True:
            try:
                sock = _accept(self._sock)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                if e.errno in FD_SHORT:
                    self._fds_short()
                    return
                if e.errno == errno.ECONNABORTED:
                    continue  # the client gave up before we got to it
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

    # ---- out of file descriptors ---------------------------------------------------------------
    def _fds_short(self) -> None:
        """accept() found no free descriptor: refuse one pending client with the spare, or stop
        watching the listener; either way retry on a timer until descriptors are free."""
        helpless = self._spare is None
        refused = False
        if self._spare is not None:
            os.close(self._spare)
            self._spare = None
            try:
                sock = _accept(self._sock)
            except (BlockingIOError, InterruptedError):
                pass  # nothing was pending: accept checks for a free descriptor first
            except OSError:
                helpless = True
            else:
                _refuse(sock)
                sock.close()
                refused = True
            self._spare = _open_spare()
            helpless = helpless or self._spare is None
        if not (refused or helpless):
            return  # no client was turned away: no shortage to speak of yet
        if not self._short:
            self._short = True
            self._refused = 0
            log.warn(f"control: out of file descriptors (limit {fdlimit.limit()}): refusing control "
                     "connections until some are free (raise the limit: docker run --ulimit nofile=N)")
        self._refused += refused
        if helpless:
            self._listen(False)  # nothing to refuse with: an unwatched listener cannot spin
        if self._fd_timer is None:
            self._fd_timer = self.loop.call_later(FD_RETRY_S, self._fds_retry)

    def _fds_retry(self) -> None:
        self._fd_timer = None
        if self._spare is None:
            self._spare = _open_spare()
        probe = _open_spare() if self._spare is not None else None
        if probe is None:
            # still short: with a spare again, pending clients can at least be refused
            self._listen(self._spare is not None)
            self._fd_timer = self.loop.call_later(FD_RETRY_S, self._fds_retry)
            return
        os.close(probe)
        self._short = False
        log.warn(f"control: file descriptors available again; {self._refused} control "
                 f"connection(s) refused meanwhile")
        self._listen(True)
        self._accept()

    def _listen(self, on: bool) -> None:
        if on and not self._listening:
            self.loop.add_reader(self._sock.fileno(), self._accept)
        elif not on and self._listening:
            self.loop.remove_reader(self._sock.fileno())
        self._listening = on

    def _peer_allowed(self, sock: socket.socket) -> bool:
        try:
            creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, UCRED_SIZE)
        except OSError:
            return False
        uid = int.from_bytes(creds[4:8], sys.byteorder)  # struct ucred {pid; uid; gid}, no `struct`
        return uid in (0, self._uid)

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
        except (OSError, ImportError) as e:
            # json not imported yet and no descriptor to read it with: a refusal, not a crash
            log.warn(f"control: unable to serve a request: {e}")
            _refuse(conn.sock)
            self._drop(conn)
        except Exception as e:  # a request must never leave a connection open or reach the loop
            log.error(f"control: internal error serving a request: {type(e).__name__}: {e}")
            self._finish(conn, protocol.error_reply("internal error", protocol.FAILURE))

    def _reply(self, conn: _Connection, reply: dict) -> None:
        try:
            data = protocol.encode(reply)
        except (OSError, ImportError):  # json could not be imported: out of file descriptors
            _refuse(conn.sock)
            return
        try:
            conn.sock.settimeout(SEND_TIMEOUT_S)
            conn.sock.sendall(data)
        except OSError:
            pass  # the client is gone or not reading: its loss

    def _finish(self, conn: _Connection, reply: dict) -> None:
        """The last reply, written as the client reads it (a status of 500 services with their
        resources is larger than the socket buffer: a blocking send would hold up supervision
        until the client reads); a client that reads nothing is dropped after SEND_TIMEOUT_S."""
        try:
            data = protocol.encode(reply)
        except (OSError, ImportError):  # json could not be imported: out of file descriptors
            _refuse(conn.sock)
            self._drop(conn)
            return
        fd = conn.sock.fileno()
        if fd < 0:
            return
        conn.waiter = None
        conn.sock.setblocking(False)
        self.loop.remove_reader(fd)
        if conn.timer is not None:
            conn.timer.cancel()
        conn.timer = self.loop.call_later(SEND_TIMEOUT_S, lambda: self._drop(conn))
        self.loop.send(conn.sock, data, lambda: self._drop(conn))

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
            if self.booting is not None and cmd in ("svc", "rescan"):
                raise protocol.booting(self.booting)
            if cmd == "svc":
                reply = self._svc(request)
            elif cmd == "status":
                names = request["names"] if self.booting is None else []
                self._check_names(names)
                extra = {"booting": self.booting} if self.booting is not None else {}
                self.status_document(names, bool(request.get("resources")),
                                     lambda document: self._finish(conn, {"ok": True, **extra, **document}))
                return
            elif cmd == "rescan":
                self.attach(self._make_supervisor())
                added, removed = self.supervisor.rescan()
                reply = {"ok": True, "added": added, "removed": removed}
            else:
                self._halt(conn, request.get("exit_code"))
                return
        except ProtocolError as e:
            reply = protocol.error_reply(str(e), e.code)
        self._finish(conn, reply)

    def status_document(self, names: list[str] | None, with_resources: bool,
                        done: Callable[[dict], None]) -> None:
        """``done(the status JSON)``: ``{"services": [...], "dependencies": {...}, "ignity":
        {"pid", "phase"}}``, each service with its ``health`` word; while booting no services and
        no graph yet. With resources, each service's ``resources`` and ignity's own: the process
        trees are read SCAN_SLICE processes per turn of the loop, so that a service exiting
        meanwhile is restarted without waiting for the whole pass."""
        sup = self.supervisor if self.booting is None else None
        services = sup.status(names) if sup is not None else []
        ignity: dict = {"pid": os.getpid(), "phase": self.phase}
        document = {"services": services, "ignity": ignity}
        if self.booting is None:
            document["dependencies"] = sup.graph() if sup is not None else {}
        if not with_resources:
            done(document)
            return
        from . import resources  # /proc reading: only for a status that asks for resources

        scan = resources.TreeScan(sup.process_roots([s["name"] for s in services]) if sup is not None else {})

        def step() -> None:
            if not scan.step(SCAN_SLICE):
                self.loop.call_later(0, step)
                return
            usage = scan.result()
            for s in services:
                s["resources"] = usage.get(s["name"], resources.NOTHING).as_dict()
            ignity["resources"] = resources.of_ignity().as_dict()
            done(document)

        step()

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
            if name not in self._services:
                raise protocol.no_such_service(name)

    def _svc(self, request: dict) -> dict:
        names = request["names"]
        self._check_names(names)
        for name in names:
            if request["action"] == "signal":
                self.supervisor.send_signal(name, request["signal"])
            elif request["action"] == "alarm":
                self.supervisor.rotate(name)
            else:
                self.supervisor.command(name, request["action"])
        return {"ok": True}

    def _start_wait(self, conn: _Connection, request: dict, armed: bool = False) -> None:
        """A `wait` request; ``armed``: its timeout already runs (it came during boot)."""
        if not armed:
            self._arm_wait_timeout(conn, request)
        if self.booting is not None:
            conn.deferred = request  # the services do not exist yet: see booted()
            conn.waiter = lambda: False
            return
        names = request["names"]
        try:
            self._check_names(names)
        except ProtocolError as e:
            self._finish(conn, protocol.error_reply(str(e), e.code))
            return
        condition = _condition(request["until"])
        combine = any if request.get("any") else all
        services = self._services

        def satisfied() -> bool:
            return combine(name in services and condition(services[name]) for name in names)

        if satisfied():
            self._finish(conn, {"ok": True})
            return
        conn.waiter = satisfied

    def _arm_wait_timeout(self, conn: _Connection, request: dict) -> None:
        if conn.timer is not None:
            conn.timer.cancel()
            conn.timer = None
        timeout = request.get("timeout_ms")
        if timeout is not None:
            conn.timer = self.loop.call_at(time.monotonic() + timeout / 1000,
                                           lambda: self._wait_timed_out(conn, request))

    def _wait_timed_out(self, conn: _Connection, request: dict) -> None:
        """Name only the services that are late (all of them with --any)."""
        condition = _condition(request["until"])
        services = self._services
        late = [n for n in request["names"] if n not in services or not condition(services[n])]
        what = f"{'any of ' if request.get('any') and len(late) > 1 else ''}{', '.join(late)} to be " \
               f"{protocol.WAIT_UNTIL[request['until']]}"
        if self.booting is not None:
            what += f" (still booting: init script {self.booting} is running)"
        self._finish(conn, protocol.timed_out(what))

    def _check_waiters(self) -> None:
        for conn in list(self._connections.values()):
            if conn.waiter is not None and conn.waiter():
                self._finish(conn, {"ok": True})


def _accept(listener: socket.socket) -> socket.socket:
    """socket.socket.accept() without the `socket` module (close-on-exec, as accept4 makes it)."""
    fd, _ = listener._accept()
    return socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, 0, fd)


def _open_spare() -> int | None:
    try:
        return os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None


def _refuse(sock: socket.socket) -> None:
    """Tell a client ignity is out of file descriptors, without anything that needs one."""
    try:
        sock.send(protocol.error_line("ignity is out of file descriptors: try again later, or "
                                      "raise its limit (docker run --ulimit nofile=N)"),
                  socket.MSG_DONTWAIT)
    except OSError:
        pass
