"""cli/http_stream.StreamConnection against a loopback socket server that answers the ways
OpenAI-compatible servers do: chunked streams (split anywhere across packets), Content-Length
errors, bodies ended by closing, and connections closed between requests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from tui_gen.cli.http_stream import HttpError, StreamConnection

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
    """Serves `replies` in order, one per request, on 127.0.0.1; records the requests."""

    def __init__(self, replies: list[Reply]) -> None:
        self.replies = replies
        self.requests: list[bytes] = []
        self.connections = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(10)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        deadline = time.monotonic() + 20
        while self.replies and time.monotonic() < deadline:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                conn.settimeout(10)
                while self.replies:
                    req = _read_request(conn)
                    if not req:
                        break
                    self.requests.append(req)
                    if not self.replies.pop(0)(conn, req):
                        break

    def stop(self) -> None:
        self.sock.close()
        self.thread.join(5)


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


def test_a_chunked_stream_arrives_whole_and_the_connection_is_kept(serve: Serve) -> None:
    events = [b'data: {"a": 1}\n\n', b"data: [DONE]\n\n"]
    server = serve([chunked(events), chunked(events, cut=1000)])
    with StreamConnection(server.url, {"Authorization": "Bearer k"}, 10) as conn:
        for _ in range(2):
            assert b"".join(conn.post("chat/completions", b'{"x": 1}')) == b"".join(events)
    assert server.connections == 1  # kept alive
    head = server.requests[0].decode()
    assert head.startswith("POST /v1/chat/completions HTTP/1.1\r\n")
    assert "Authorization: Bearer k" in head and head.endswith('{"x": 1}')


def test_an_error_status_raises_with_the_body(serve: Serve) -> None:
    def error(conn: socket.socket, req: bytes) -> bool:
        body = b'{"error": {"message": "bad temperature"}}'
        conn.sendall(
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)
        )
        return True

    server = serve([error, chunked([b"data: [DONE]\n\n"])])
    with StreamConnection(server.url, {}, 10) as conn:
        with pytest.raises(HttpError, match=r"HTTP 400: .*bad temperature"):
            list(conn.post("completions", b"{}"))
        assert list(conn.post("completions", b"{}")) == [b"data: [DONE]\n\n"]  # a new socket


def test_a_body_ended_by_close_and_a_server_that_closes_between_requests(serve: Serve) -> None:
    def close_delimited(conn: socket.socket, req: bytes) -> bool:
        conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\ndata: 1\n\n")
        conn.sendall(b"data: [DONE]\n\n")
        return False  # the server closes: the end of the body

    server = serve([close_delimited, close_delimited])
    with StreamConnection(server.url, {}, 10) as conn:
        for _ in range(2):
            assert b"".join(conn.post("completions", b"{}")) == b"data: 1\n\ndata: [DONE]\n\n"
    assert server.connections == 2


@pytest.mark.parametrize(
    ("raw", "match"),
    [  # a stream cut mid-chunk; something that is not HTTP at all
        (
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n20\r\ndata: {",
            "closed the connection",
        ),
        (b"SSH-2.0-OpenSSH\r\n\r\n", "not an HTTP response"),
    ],
)
def test_cut_and_garbage_responses_raise(serve: Serve, raw: bytes, match: str) -> None:
    def reply(conn: socket.socket, req: bytes) -> bool:
        conn.sendall(raw)
        return False  # and close

    server = serve([reply])
    with (
        StreamConnection(server.url, {}, 10) as conn,
        pytest.raises(ConnectionError, match=match),
    ):
        list(conn.post("completions", b"{}"))


def test_a_url_that_is_not_http_is_refused() -> None:
    with pytest.raises(ValueError, match="not an http"):
        StreamConnection("ftp://x/v1", {}, 1)
