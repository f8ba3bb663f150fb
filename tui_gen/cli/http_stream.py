"""A lean HTTP/1.1 client for bench-serve's streaming POSTs: one keep-alive socket per client.

Why not httpx here (the rest of tui-gen uses it): a load generator shares the machine with the
server it measures, and its CPU per token is taken from the server. With eight streams of the
cooking model, httpx (httpcore and h11, pure Python) cost the client ~0.25 ms of CPU per
token, a third of what the server itself spends on one, on a 2-core machine where those cores
are all there is. This client reads whatever has arrived with one `recv` and de-chunks it
with `bytes.find`, as vLLM's benchmark reads with aiohttp's C parser for the same reason.

It speaks what OpenAI-compatible servers answer a streaming request with: a status line,
headers, then a chunked body (uvicorn, llama.cpp's server, Ollama), a Content-Length body
(an error), or a body that ends when the server closes. http and https URLs.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from urllib.parse import urlsplit

#: the most bytes of headers accepted before giving up on a response
MAX_HEADER = 64 * 1024
RECV = 256 * 1024


class HttpError(RuntimeError):
    """The server answered with a status other than 200 (the message holds its body)."""


class StreamConnection:
    """POSTs to one server over one kept-alive connection (reopened when the server closed)."""

    def __init__(self, url: str, headers: dict[str, str], timeout: float) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.https = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.https else 80)
        self.base = parts.path.rstrip("/")
        self.timeout = timeout
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.https else 80
        self.host_header = host if self.port == default else f"{host}:{self.port}"
        self.headers = headers
        self._sock: socket.socket | None = None

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> StreamConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _connect(self) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.https:
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=self.host)
        return sock

    def post(self, path: str, body: bytes) -> Iterator[bytes]:
        """POST `body` (JSON) to base/path; yield the response body's bytes as they arrive.
        A status other than 200 raises HttpError with the body's start."""
        extra = "".join(f"{k}: {v}\r\n" for k, v in self.headers.items())
        head = (
            f"POST {self.base}/{path} HTTP/1.1\r\nHost: {self.host_header}\r\n"
            "Content-Type: application/json\r\nAccept: text/event-stream\r\n"
            f"Content-Length: {len(body)}\r\n{extra}\r\n"
        ).encode("latin-1")
        sock = self._sock
        if sock is not None:
            try:
                sock.sendall(head + body)
            except OSError:  # the server closed the idle connection: open a new one
                sock.close()
                sock = None
        if sock is None:
            sock = self._sock = self._connect()
            sock.sendall(head + body)
        self._sock = None  # given back below only when the body was read to its end
        status, headers, rest = _read_head(sock)
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        length = headers.get("content-length")
        if chunked:
            parts = _dechunk(sock, rest)
        elif length is not None:
            parts = _sized(sock, rest, int(length))
        else:
            parts = _until_close(sock, rest)
        if status != 200:
            text = b"".join(parts)[:500].decode("utf-8", "replace")
            sock.close()
            raise HttpError(f"HTTP {status}: {text}")
        complete = False
        try:
            yield from parts
            complete = chunked or length is not None
        finally:
            keep = complete and headers.get("connection", "").lower() != "close"
            if keep:
                self._sock = sock
            else:
                sock.close()


def _recv(sock: socket.socket) -> bytes:
    data = sock.recv(RECV)
    if not data:
        raise ConnectionError("the server closed the connection mid-response")
    return data


def _read_head(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    buf = b""
    while b"\r\n\r\n" not in buf:
        if len(buf) > MAX_HEADER:
            raise ConnectionError("the response's headers do not end")
        buf += _recv(sock)
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    fields = lines[0].split(" ", 2)
    if len(fields) < 2 or not fields[0].startswith("HTTP/") or not fields[1].isdigit():
        raise ConnectionError(f"not an HTTP response: {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(fields[1]), headers, rest


def _dechunk(sock: socket.socket, buf: bytes) -> Iterator[bytes]:
    """The data of a chunked body: `size-in-hex CRLF data CRLF` ... `0 CRLF CRLF`."""
    while True:
        while (eol := buf.find(b"\r\n")) < 0:
            buf += _recv(sock)
        size = int(buf[:eol].split(b";", 1)[0], 16)
        buf = buf[eol + 2 :]
        if size == 0:
            while not buf.startswith(b"\r\n") and b"\r\n\r\n" not in buf:  # trailers
                buf += _recv(sock)
            return
        while len(buf) < size + 2:
            buf += _recv(sock)
        yield buf[:size]
        buf = buf[size + 2 :]


def _sized(sock: socket.socket, buf: bytes, length: int) -> Iterator[bytes]:
    left = length
    while True:
        piece = buf[:left]
        if piece:
            yield piece
        left -= len(piece)
        if left <= 0:
            return
        buf = _recv(sock)


def _until_close(sock: socket.socket, buf: bytes) -> Iterator[bytes]:
    if buf:
        yield buf
    while data := sock.recv(RECV):
        yield data
