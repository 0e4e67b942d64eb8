"""A loopback HTTP judge for the remote reward tests: records what it receives, behaves as told.

By default it answers ``{"scores": [len(completion), ...]}``. A test passes ``behave(handler, n,
body)`` to answer otherwise (``n``: the request's number, from 1); it returns ``True`` when it
answered. The server counts requests, keeps their paths, bodies and headers, and the most
requests it had in flight at once.
"""

from __future__ import annotations

import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Optional


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep test output quiet
        pass

    def do_POST(self):
        judge: Judge = self.server.judge
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        n = judge.enter(self.path, body, dict(self.headers))
        try:
            if judge.behave is None or not judge.behave(self, n, body):
                scores = [float(len(c)) for c in json.loads(body)["completions"]]
                send(self, 200, json.dumps({"scores": scores}).encode())
        finally:
            judge.leave()


def send(handler: BaseHTTPRequestHandler, status: int, payload: bytes = b"", headers: Optional[dict] = None,
         length: Optional[int] = None) -> None:
    """Answer ``status`` with ``payload``; ``length`` overrides the Content-Length header sent."""
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(payload) if length is None else length))
    handler.end_headers()
    handler.wfile.write(payload)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):  # a client that hung up (timeout, size cap): expected
        pass


class Judge:
    """One loopback server (see the module doc)."""

    def __init__(self, behave: Optional[Callable] = None, tls: Optional[tuple[str, str]] = None) -> None:
        self.behave = behave
        self.scheme = "https" if tls else "http"
        self.requests: list[tuple[str, dict, dict]] = []
        self.in_flight = self.max_in_flight = 0
        self._lock = threading.Lock()
        self.httpd = _Server(("127.0.0.1", 0), Handler)
        self.httpd.judge = self
        if tls:  # (certificate, key) files
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def url(self, path: str = "/score", host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.httpd.server_address[1]}{path}"

    def enter(self, path: str, body: bytes, headers: dict) -> int:
        with self._lock:
            try:
                parsed = json.loads(body) if body else {}
            except ValueError:
                parsed = {"raw": body.decode("utf-8", "replace")}
            self.requests.append((path, parsed, headers))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            return len(self.requests)

    def leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
