"""The example service: a tiny HTTP server that says when it is ready (notification-fd 3)."""

import http.server
import os
import signal
import sys
import threading


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"{os.environ['APP_GREETING']} (booted at {os.environ.get('APP_BOOTED_AT', '?')})\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, fmt, *args):
        print(f"app: {self.command} {self.path} from {self.client_address[0]}", flush=True)


server = http.server.ThreadingHTTPServer(("0.0.0.0", int(os.environ["APP_PORT"])), Handler)
print(f"app: listening on port {server.server_address[1]}", flush=True)
try:
    os.write(3, b"\n")  # ready: ignity marks the service ready (`ignity wait -U app`)
    os.close(3)
except OSError:
    pass  # started without notification-fd


def stop(signum, frame):
    print(f"app: {signal.Signals(signum).name} received, stopping", flush=True)
    threading.Thread(target=server.shutdown).start()


signal.signal(signal.SIGTERM, stop)
server.serve_forever()
print("app: bye", flush=True)
sys.exit(0)
