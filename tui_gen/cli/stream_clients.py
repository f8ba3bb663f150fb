"""bench-serve's simulated clients: streamed requests to any OpenAI-compatible server, every
client of a level read from one thread, and what is kept of each response (tokens, time to
first token). Kept lean on purpose: it shares the machine with the server it measures.
"""

from __future__ import annotations

import json
import math
import re
import selectors
import socket
import ssl
import time
from dataclasses import dataclass, field
from typing import Any

from tui_gen.cli.http_stream import RECV, HttpError, ResponseParser, StreamConnection

TIMEOUT = 600.0  # seconds one request may take


@dataclass
class LevelResult:
    clients: int
    requests: int = 0
    tokens: int = 0
    seconds: float = 0.0
    ttft: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    #: aggregate tok/s of each round (one entry per round the level ran)
    round_rates: list[float] = field(default_factory=list)

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0

    def add(self, other: LevelResult) -> None:
        """Fold another round of the same level in."""
        self.requests += other.requests
        self.tokens += other.tokens
        self.seconds += other.seconds
        self.ttft += other.ttft
        self.errors += other.errors
        self.round_rates.append(other.tokens_per_second)

    def to_dict(self) -> dict[str, Any]:
        rates = self.round_rates or [self.tokens_per_second]
        return {
            "clients": self.clients,
            "requests": self.requests,
            "completion_tokens": self.tokens,
            "seconds": round(self.seconds, 3),
            "tokens_per_second": round(self.tokens_per_second, 2),
            "rounds": len(rates),
            "tokens_per_second_min": round(min(rates), 2),
            "tokens_per_second_max": round(max(rates), 2),
            "ttft_p50": round(percentile(self.ttft, 50), 4),
            "ttft_p99": round(percentile(self.ttft, 99), 4),
            "errors": len(self.errors),
        }


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile, nearest rank (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def _content(choice: dict[str, Any]) -> str:
    """The text a streamed choice carries: a chat delta's content or a completion's text."""
    delta = choice.get("delta")
    if isinstance(delta, dict):
        return str(delta.get("content") or "")
    return str(choice.get("text") or "")


def _path(endpoint: str) -> str:
    return "chat/completions" if endpoint == "chat" else "completions"


class StreamTally:
    """What bench-serve keeps of one streamed response, fed its SSE payloads one by one:
    completion tokens and the time from t0 to the first content.

    Why the payloads are not all JSON-decoded: the client shares the machine with the server
    it measures, and decoding every chunk of eight streams cost ~0.3 ms of CPU per token here
    (a third of what the server itself spends). A chunk is decoded until the first content
    (the time to first token), when it may carry an error or the usage, and, only for a
    server that sends no usage, after the stream has ended (to count the content chunks)."""

    def __init__(self, t0: float) -> None:
        self.t0 = t0
        self.ttft = -1.0
        self.usage: dict[str, Any] | None = None
        self.later: list[bytes] = []  # chunks after the first content, decoded only without usage
        self.first = 0  # content chunks among those decoded as they came
        self.ended = False  # [DONE] arrived

    def feed(self, data: bytes) -> None:
        """One payload; an error chunk raises RuntimeError with its message."""
        if self.ended:
            return
        if data == b"[DONE]":
            self.ended = True
            return
        if self.ttft >= 0 and not _may_matter(data):
            self.later.append(data)
            return
        obj = json.loads(data)
        if "error" in obj:
            raise RuntimeError(str(obj["error"].get("message")))
        if obj.get("usage"):
            self.usage = obj["usage"]
        n = _content_chunks(obj)
        if n and self.ttft < 0:
            self.ttft = time.perf_counter() - self.t0
        self.first += n

    def result(self) -> tuple[int, float]:
        ttft = max(self.ttft, 0.0)
        if self.usage:
            return int(self.usage["completion_tokens"]), ttft
        return self.first + sum(_content_chunks(json.loads(d)) for d in self.later), ttft


_NULL_USAGE = re.compile(rb'"usage"\s*:\s*null')


def _may_matter(data: bytes) -> bool:
    """Whether a chunk after the first content may carry an error or the usage."""
    if b'"error"' in data:
        return True
    return b'"usage"' in data and _NULL_USAGE.search(data) is None


def _content_chunks(obj: dict[str, Any]) -> int:
    """How many of a chunk's choices carry text (one token each, for a server without usage)."""
    return sum(1 for ch in obj.get("choices") or [] if _content(ch))


class SsePayloads:
    """The `data:` payloads of a server-sent event stream fed as byte pieces, however the
    pieces split the events (lines end in LF or CRLF; other fields are skipped)."""

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, piece: bytes) -> list[bytes]:
        *lines, self._buf = (self._buf + piece).split(b"\n")
        return [line[5:].strip() for line in lines if line.startswith(b"data:")]

    def close(self) -> list[bytes]:
        """The last line, when the stream ended without a newline."""
        buf, self._buf = self._buf, b""
        return [buf[5:].strip()] if buf.startswith(b"data:") else []


class _Client:
    """One simulated client of a level: `requests` streamed POSTs one after another over its
    StreamConnection, read without blocking when the level's selector says its socket is
    readable."""

    def __init__(
        self,
        conn: StreamConnection,
        requests: int,
        sel: selectors.BaseSelector,
        request: tuple[str, bytes],
        res: LevelResult,
    ) -> None:
        self.conn, self.left, self.sel, self.request, self.res = conn, requests, sel, request, res
        self.sock: socket.socket | None = None
        self.parser = ResponseParser()
        self.sse = SsePayloads()
        self.tally = StreamTally(0.0)
        self.error_body = b""

    @property
    def active(self) -> bool:
        return self.sock is not None

    def start_next(self) -> None:
        """Send the next request (a failed send counts as an error), or stop when none is left."""
        while self.left > 0:
            self.left -= 1
            t0 = time.perf_counter()
            try:
                sock = self.conn.send(*self.request)
            except OSError as e:
                self.res.errors.append(f"cannot send the request: {e}")
                continue
            sock.setblocking(False)
            self.sock, self.parser, self.sse = sock, ResponseParser(), SsePayloads()
            self.tally, self.error_body = StreamTally(t0), b""
            self.sel.register(sock, selectors.EVENT_READ, self)
            return

    def readable(self) -> None:
        """Read what arrived; when the response is complete, count it and start the next."""
        assert self.sock is not None
        try:
            pieces = self._read()
            if pieces is None:
                return  # TLS had no whole record yet
            if self.parser.status and self.parser.status != 200:
                self.error_body = (self.error_body + b"".join(pieces))[:500]
                if self.parser.done:
                    text = self.error_body.decode("utf-8", "replace")
                    raise HttpError(f"HTTP {self.parser.status}: {text}")
                return
            for piece in pieces:
                for data in self.sse.feed(piece):
                    self.tally.feed(data)
            if not self.parser.done:
                return
            for data in self.sse.close():
                self.tally.feed(data)
            tokens, ttft = self.tally.result()
        except Exception as e:  # keep measuring; count it (as the server's answer, not ours)
            self.res.errors.append(str(e))
            self._release(keep=False)
        else:
            self.res.requests += 1
            self.res.tokens += tokens
            self.res.ttft.append(ttft)
            self._release(keep=True)
        self.start_next()

    def fail(self, why: str) -> None:
        self.res.errors.append(why)
        self._release(keep=False)
        self.left = 0

    def _read(self) -> list[bytes] | None:
        assert self.sock is not None
        try:
            data = self.sock.recv(RECV)
        except (ssl.SSLWantReadError, BlockingIOError):
            return None
        if not data:
            return self.parser.close()
        if isinstance(self.sock, ssl.SSLSocket):  # decrypted bytes the selector cannot see
            while self.sock.pending():
                data += self.sock.recv(RECV)
        return self.parser.feed(data)

    def _release(self, keep: bool) -> None:
        sock, self.sock = self.sock, None
        if sock is None:
            return
        self.sel.unregister(sock)
        if keep:
            sock.settimeout(self.conn.timeout)  # blocking again, for the next send
            self.conn.keep(sock, self.parser)
        else:
            sock.close()


def run_level(
    url: str,
    model: str,
    clients: int,
    requests: int,
    body: dict[str, Any],
    api_key: str | None,
    endpoint: str = "chat",
) -> LevelResult:
    """`clients` clients each sending `requests` streamed requests one after another, all
    read from this one thread through a selector: a wake-up returns every socket that has
    data (a decode step's worth of chunks, usually), where a thread per client woke once per
    token and paid for the hand-over of the interpreter lock each time."""
    res = LevelResult(clients)
    request = (_path(endpoint), json.dumps({**body, "model": model}).encode())
    conns = [StreamConnection(url, headers(api_key), TIMEOUT) for _ in range(clients)]
    with selectors.DefaultSelector() as sel:
        streams = [_Client(conn, requests, sel, request, res) for conn in conns]
        t0 = time.perf_counter()
        try:
            for c in streams:
                c.start_next()
            while any(c.active for c in streams):
                ready = sel.select(TIMEOUT)
                if not ready:
                    for c in streams:
                        if c.active:
                            c.fail(f"no answer for {TIMEOUT:.0f} s")
                for key, _ in ready:
                    key.data.readable()
        finally:
            for c in streams:
                c._release(keep=False)
            for conn in conns:
                conn.close()
        res.seconds = time.perf_counter() - t0
    return res
