"""A flaky S3 endpoint: an HTTP proxy on 127.0.0.1 in front of moto that answers a seeded fraction of requests with
the faults object stores really give (throttling, server errors, resets, answers that never come in time)."""

from __future__ import annotations

import http.client
import random
import socket
import struct
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

ERROR = """<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>{code}</Code><Message>injected {code}</Message><RequestId>faulty-endpoint</RequestId></Error>"""

# fault → what the client sees. "slow" forwards the request (it takes effect) and answers only after the client's read
# timeout (its answer is lost), so a retried write finds its own earlier write already done.
FAULTS = ("SlowDown", "InternalError", "reset", "slow")
STATUS = {"SlowDown": 503, "InternalError": 500}
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te", "trailer", "upgrade"}


class FaultyEndpoint:
    """Forwards every request to ``target``; a ``rate`` fraction of them, drawn from ``seed``, get a fault instead.

    At most ``max_slow`` requests are answered slowly (each costs the client a whole read timeout). ``faults`` counts
    what was injected; ``requests`` how many requests arrived; ``answered`` and ``answered_bytes`` the requests
    forwarded and answered, and the bytes of their answers' bodies, by method, and ``paths`` by (method, path). With
    ``rate`` 0 it only counts.
    """

    def __init__(self, target: str, rate: float, seed: int, slow_seconds: float, max_slow: int = 6) -> None:
        self.target = urlsplit(target)
        self.rate, self.slow_seconds, self.max_slow = rate, slow_seconds, max_slow
        self.random = random.Random(seed)
        self.lock = threading.Lock()
        self.faults: Counter[str] = Counter()
        self.requests = 0
        self.answered: Counter[str] = Counter()
        self.answered_bytes: Counter[str] = Counter()
        self.paths: Counter[tuple[str, str]] = Counter()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FaultyEndpoint:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def draw(self) -> str | None:
        """The fault for the next request, or None to forward it untouched."""
        with self.lock:
            self.requests += 1
            if self.random.random() >= self.rate:
                return None
            fault = self.random.choice(FAULTS)
            if fault == "slow" and self.faults["slow"] >= self.max_slow:
                fault = "SlowDown"
            self.faults[fault] += 1
            return fault

    def reset_counts(self) -> None:
        """Start counting requests and answers afresh."""
        with self.lock:
            self.requests = 0
            self.answered.clear()
            self.answered_bytes.clear()
            self.paths.clear()

    def count(self, method: str, path: str, body: bytes) -> None:
        with self.lock:
            self.paths[method, path.split("?", 1)[0]] += 1
            self.answered[method] += 1
            self.answered_bytes[method] += 0 if method == "HEAD" else len(body)

    def forward(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, list, bytes]:
        connection = http.client.HTTPConnection(self.target.hostname, self.target.port, timeout=60)
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            connection.close()


def _handler(endpoint: FaultyEndpoint) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002  (the base class's name)
            pass  # quiet: the counters tell the story

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while size := int(self.rfile.readline().split(b";")[0], 16):
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                self.rfile.readline()  # the blank line after the last chunk
                return b"".join(chunks)
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _answer(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
            self.send_response(status)
            # A HEAD's answer has no body but the length of the object's: pass that one through.
            length = next((value for name, value in headers if name.lower() == "content-length"), None)
            for name, value in headers:
                if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                    self.send_header(name, value)
            self.send_header("Content-Length", length if self.command == "HEAD" and length else str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _reset(self) -> None:
            # SO_LINGER 0: close with a TCP reset, as a dropped connection reaches the client.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True

        def _handle(self) -> None:
            body = self._body()
            fault = endpoint.draw()
            if fault == "reset":
                self._reset()
                return
            if fault in STATUS:
                self._answer(STATUS[fault], [("Content-Type", "application/xml")], ERROR.format(code=fault).encode())
                return
            headers = {name: value for name, value in self.headers.items()
                       if name.lower() not in HOP_BY_HOP | {"content-length"}} | {"Content-Length": str(len(body))}  # fmt: skip
            status, answer_headers, answer = endpoint.forward(self.command, self.path, headers, body)
            if fault == "slow":
                time.sleep(endpoint.slow_seconds)  # the client gave up meanwhile
                self._reset()
                return
            endpoint.count(self.command, self.path, answer)
            self._answer(status, answer_headers, answer)

        do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _handle

    return Handler
