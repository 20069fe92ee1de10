"""The example app: counts visits in redis (plain RESP over a socket, no client library) and says
when it listens (notification-fd 3)."""

import http.server
import os
import socket


def redis(*args: str) -> bytes:
    with socket.create_connection((os.environ["REDIS_HOST"], int(os.environ["REDIS_PORT"])), timeout=2) as s:
        s.sendall(f"*{len(args)}\r\n".encode() + b"".join(f"${len(a)}\r\n{a}\r\n".encode() for a in args))
        return s.recv(4096)


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        visits = redis("INCR", "visits").strip().lstrip(b":").decode()
        body = f"{os.environ['APP_GREETING']} (visit {visits})\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


server = http.server.ThreadingHTTPServer((os.environ["APP_HOST"], int(os.environ["APP_PORT"])), Handler)
print(f"app: listening on port {server.server_address[1]} as {os.environ.get('USER')}", flush=True)
try:
    os.write(3, b"\n")  # ready: nginx, which depends on the app, starts now
    os.close(3)
except OSError:
    pass
server.serve_forever()
