"""A lean HTTP/1.1 client for bench-serve's streaming POSTs: kept-alive sockets, read as bytes
arrive.

Why not httpx here (the rest of tui-gen uses it): a load generator shares the machine with the
server it measures, and its CPU per token is taken from the server. With eight streams of the
cooking model, httpx (httpcore and h11, pure Python) cost the client ~0.25 ms of CPU per
token, a third of what the server itself spends on one, on a 2-core machine where those cores
are all there is. Here a `ResponseParser` takes whatever one `recv` returned and de-chunks it
with `bytes.find`, as vLLM's benchmark reads with aiohttp's C parser for the same reason.
The parser is fed, not reading: bench-serve drives every client's socket from one thread with
a selector (one wake-up per batch of ready sockets, not one thread wake-up per token), and
`StreamConnection` is the same parser over one blocking socket.

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
#: bytes asked of one recv: a 256 KiB buffer cost ~17 us more per call here (its allocation)
#: than 64 KiB, for the ~200 bytes a streamed token brings
RECV = 64 * 1024


class HttpError(RuntimeError):
    """The server answered with a status other than 200 (the message holds its body)."""


class ResponseParser:
    """One HTTP/1.1 response, parsed incrementally: `feed` the bytes as they arrive and get
    the body's bytes back; `close` when the server closed the connection.

    After the head: `status` and `headers` (lower-case names). `done` once the body is
    complete; `reusable` then says whether the connection may carry the next request."""

    def __init__(self) -> None:
        self._buf = b""
        self.status = 0  # 0 until the status line and headers have arrived
        self.headers: dict[str, str] = {}
        self._mode = ""  # "chunked" | "sized" | "close", once the head is read
        self._left = 0  # sized: body bytes still to come
        self.done = False

    @property
    def reusable(self) -> bool:
        return (
            self.done
            and self._mode != "close"
            and self.headers.get("connection", "").lower() != "close"
        )

    def feed(self, data: bytes) -> list[bytes]:
        """The body bytes that `data` completes (a piece per chunk of a chunked body)."""
        if self.done:
            return []
        self._buf += data
        if not self.status:
            if b"\r\n\r\n" not in self._buf:
                if len(self._buf) > MAX_HEADER:
                    raise ConnectionError("the response's headers do not end")
                return []
            self._head()
        if self._mode == "chunked":
            return self._chunks()
        piece, self._buf = self._buf, b""
        if self._mode == "sized":
            piece = piece[: self._left]
            self._left -= len(piece)
            self.done = self._left <= 0
        return [piece] if piece else []

    def close(self) -> list[bytes]:
        """The server closed the connection: the rest of a close-delimited body; a body that
        should have gone on raises ConnectionError."""
        if self.done:
            return []
        if self._mode == "close":
            self.done = True
            piece, self._buf = self._buf, b""
            return [piece] if piece else []
        raise ConnectionError("the server closed the connection mid-response")

    def _head(self) -> None:
        head, _, self._buf = self._buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        fields = lines[0].split(" ", 2)
        if len(fields) < 2 or not fields[0].startswith("HTTP/") or not fields[1].isdigit():
            raise ConnectionError(f"not an HTTP response: {lines[0][:80]!r}")
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()
        self.status = int(fields[1])
        length = self.headers.get("content-length")
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            self._mode = "chunked"
        elif length is not None:
            if not length.isdigit():
                raise ConnectionError(f"a Content-Length that is not a number: {length[:20]!r}")
            self._mode, self._left = "sized", int(length)
            self.done = self._left == 0
        else:
            self._mode = "close"

    def _chunks(self) -> list[bytes]:
        """The complete chunks in the buffer: `size-in-hex CRLF data CRLF` ... `0 CRLF CRLF`
        (and trailers), the incomplete rest kept for the next feed."""
        out: list[bytes] = []
        buf = self._buf
        while True:
            eol = buf.find(b"\r\n")
            if eol < 0:
                break
            try:
                size = int(buf[:eol].split(b";", 1)[0], 16)
            except ValueError:
                raise ConnectionError(f"a bad chunk size line: {buf[:eol][:20]!r}") from None
            if size == 0:  # the last chunk, then trailers up to an empty line
                rest = buf[eol + 2 :]
                if rest.startswith(b"\r\n") or b"\r\n\r\n" in rest:
                    self.done = True
                    buf = b""
                break
            if len(buf) < eol + 2 + size + 2:
                break
            out.append(buf[eol + 2 : eol + 2 + size])
            buf = buf[eol + 2 + size + 2 :]
        self._buf = buf
        return out


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

    def connect(self) -> socket.socket:
        """A new (blocking) socket to the server, TLS-wrapped for https."""
        sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.https:
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=self.host)
        return sock

    def request(self, path: str, body: bytes) -> bytes:
        """The bytes of a POST of `body` (JSON) to base/path."""
        extra = "".join(f"{k}: {v}\r\n" for k, v in self.headers.items())
        return (
            f"POST {self.base}/{path} HTTP/1.1\r\nHost: {self.host_header}\r\n"
            "Content-Type: application/json\r\nAccept: text/event-stream\r\n"
            f"Content-Length: {len(body)}\r\n{extra}\r\n"
        ).encode("latin-1") + body

    def send(self, path: str, body: bytes) -> socket.socket:
        """Send the POST on the kept connection (or a new one when the server closed it);
        the socket is the caller's until it gives it back with `keep`."""
        raw = self.request(path, body)
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.sendall(raw)
                return sock
            except OSError:  # the server closed the idle connection: open a new one
                sock.close()
        sock = self.connect()
        sock.sendall(raw)
        return sock

    def keep(self, sock: socket.socket, parser: ResponseParser) -> None:
        """Take the socket back after its response: kept when the response allows it."""
        if parser.reusable and self._sock is None:
            self._sock = sock
        else:
            sock.close()

    def post(self, path: str, body: bytes) -> Iterator[bytes]:
        """POST `body` (JSON) to base/path; yield the response body's bytes as they arrive.
        A status other than 200 raises HttpError with the body's start."""
        sock = self.send(path, body)
        parser = ResponseParser()
        try:
            pieces = _pieces(sock, parser)
            first = next(pieces, b"")  # the head arrives with or before the body's first bytes
            if parser.status != 200:
                text = (first + b"".join(pieces))[:500].decode("utf-8", "replace")
                raise HttpError(f"HTTP {parser.status}: {text}")
            if first:
                yield first
            yield from pieces
        finally:
            if parser.done:
                self.keep(sock, parser)
            else:
                sock.close()


def _pieces(sock: socket.socket, parser: ResponseParser) -> Iterator[bytes]:
    """The body bytes of `parser`'s response, read from `sock` (blocking) until it is done."""
    while not parser.done:
        data = sock.recv(RECV)
        yield from parser.feed(data) if data else parser.close()
