"""A loopback HTTP server for client tests: answers each request with the next of a list of
replies, written raw to the socket (so a reply can split, cut or garble its bytes)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

Reply = Callable[[socket.socket, bytes], bool]  # (connection, request) -> keep the connection


def _read_request(conn: socket.socket) -> bytes:
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = conn.recv(65536)
        if not data:
            return b""
        buf += data
    head, _, body = buf.partition(b"\r\n\r\n")
    length = int(
        next(
            ln.split(b":")[1]
            for ln in head.split(b"\r\n")
            if ln.lower().startswith(b"content-length")
        )
    )
    while len(body) < length:
        body += conn.recv(65536)
    return head + b"\r\n\r\n" + body


class _Server:
    """Serves `replies` in order, one per request (from any connection), on 127.0.0.1; a
    thread per connection, so concurrent clients are answered; records the requests."""

    def __init__(self, replies: list[Reply]) -> None:
        self.replies = replies
        self.requests: list[bytes] = []
        self.connections = 0
        self.lock = threading.Lock()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.05)  # accept wakes up to see whether replies are left
        self.stopped = False
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"
        self.threads: list[threading.Thread] = []
        self.thread = threading.Thread(target=self._accept, name="loopback-accept", daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        deadline = time.monotonic() + 20
        while self.replies and not self.stopped and time.monotonic() < deadline:
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self.lock:
                self.connections += 1
            t = threading.Thread(
                target=self._serve, args=(conn,), name="loopback-conn", daemon=True
            )
            self.threads.append(t)
            t.start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            while True:
                try:
                    req = _read_request(conn)
                except OSError:
                    return
                with self.lock:
                    if not req or not self.replies:
                        return
                    self.requests.append(req)
                    reply = self.replies.pop(0)
                if not reply(conn, req):
                    return

    def stop(self) -> None:
        self.stopped = True
        self.sock.close()
        self.thread.join(5)
        for t in self.threads:
            t.join(5)


Serve = Callable[[list[Reply]], _Server]


@pytest.fixture
def serve() -> Iterator[Callable[[list[Reply]], _Server]]:
    servers: list[_Server] = []

    def start(replies: list[Reply]) -> _Server:
        servers.append(_Server(replies))
        return servers[-1]

    yield start
    for s in servers:
        s.stop()


def chunked(events: list[bytes], cut: int = 5) -> Reply:
    def reply(conn: socket.socket, req: bytes) -> bool:
        body = b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in events) + b"0\r\n\r\n"
        raw = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + body
        for i in range(0, len(raw), cut):  # every few bytes a packet of its own
            conn.sendall(raw[i : i + cut])
            time.sleep(0.0005)
        return True

    return reply
