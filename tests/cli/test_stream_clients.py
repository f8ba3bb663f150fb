"""cli/stream_clients (bench-serve's clients): SSE payloads however the bytes are split,
token counts and errors from streams of servers with and without a usage chunk, and a
level's clients read from one thread against a loopback server."""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from loopback_http import Reply, Serve

from tui_gen.cli.stream_clients import SsePayloads, StreamTally, run_level


def sse_payloads(chunks: list[bytes]) -> list[bytes]:
    """SsePayloads over a list of byte pieces, as a level's client feeds it."""
    sse = SsePayloads()
    return [data for chunk in chunks for data in sse.feed(chunk)] + sse.close()


def read_stream(chunks: list[bytes], t0: float) -> tuple[int, float]:
    """StreamTally over a stream's body pieces, as a level's client feeds it."""
    tally = StreamTally(t0)
    for data in sse_payloads(chunks):
        tally.feed(data)
    return tally.result()


EVENTS = [b'data: {"a": 1}', b": a comment", b'data: {"b": "x\\ny"}', b"data: [DONE]"]


@given(st.lists(st.integers(0, 200), max_size=8), st.booleans())
def test_payloads_survive_any_split_of_the_bytes(cuts: list[int], crlf: bool) -> None:
    sep = b"\r\n\r\n" if crlf else b"\n\n"
    raw = sep.join(EVENTS) + sep
    points = sorted({min(c, len(raw)) for c in cuts})
    parts = [raw[a:b] for a, b in zip([0, *points], [*points, len(raw)])]
    assert list(sse_payloads(parts)) == [b'{"a": 1}', b'{"b": "x\\ny"}', b"[DONE]"]


def _stream(chunks: list[dict[str, Any]], compact: bool) -> bytes:
    sep = (",", ":") if compact else (", ", ": ")
    body = "".join(f"data: {json.dumps(c, separators=sep)}\n\n" for c in chunks)
    return (body + "data: [DONE]\n\n").encode()


def _chunk(text: str | None, usage: Any = "absent") -> dict[str, Any]:
    choices = [] if text is None else [{"index": 0, "delta": {"content": text}}]
    out: dict[str, Any] = {"id": "x", "choices": choices}
    if usage != "absent":
        out["usage"] = usage
    return out


def _run(body: bytes) -> tuple[int, float]:
    pieces = [body[i : i + 7] for i in range(0, len(body), 7)]  # split mid-event
    return read_stream(pieces, time.perf_counter())


@pytest.mark.parametrize("compact", [True, False])
def test_the_usage_chunk_counts_the_tokens(compact: bool) -> None:
    usage = {"prompt_tokens": 2, "completion_tokens": 7, "total_tokens": 9}
    chunks = [_chunk("", None), _chunk("a", None), _chunk("b", None), _chunk(None, usage)]
    tokens, ttft = _run(_stream(chunks, compact))
    assert tokens == 7 and ttft >= 0


def test_without_usage_every_content_chunk_counts() -> None:
    chunks = [_chunk(""), _chunk("a"), _chunk("b"), _chunk(""), _chunk("c")]
    assert _run(_stream(chunks, compact=True))[0] == 3


@pytest.mark.parametrize("first", [True, False])
def test_an_error_chunk_is_raised_before_or_after_the_first_content(first: bool) -> None:
    err = {"error": {"message": "the model broke", "type": "server_error"}}
    chunks = [err] if first else [_chunk("a", None), _chunk("b", None), err]
    with pytest.raises(RuntimeError, match="the model broke"):
        _run(_stream(chunks, compact=False))


def _reply(body: bytes, status: str = "200 OK", cut: int = 0) -> Reply:
    """A chunked reply of `body` (one chunk per event), or a cut one: `cut` bytes, then close."""

    def reply(conn: socket.socket, req: bytes) -> bool:
        events = [e + b"\n\n" for e in body.split(b"\n\n") if e]
        raw = b"HTTP/1.1 %s\r\ntransfer-encoding: chunked\r\n\r\n" % status.encode()
        raw += b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in events) + b"0\r\n\r\n"
        if cut:
            conn.sendall(raw[:cut])
            return False
        for i in range(0, len(raw), 40):  # a few packets per event
            conn.sendall(raw[i : i + 40])
        return True

    return reply


def test_a_level_reads_every_client_from_one_thread_over_kept_connections(serve: Serve) -> None:
    usage = {"prompt_tokens": 2, "completion_tokens": 5, "total_tokens": 7}
    ok = _stream([_chunk("", None), _chunk("a", None), _chunk(None, usage)], compact=True)
    seen: set[str] = set()  # the client side's threads while it reads

    def watched(conn: socket.socket, req: bytes) -> bool:
        seen.update(t.name for t in threading.enumerate() if not t.name.startswith("loopback"))
        return _reply(ok)(conn, req)

    server = serve([watched for _ in range(6)])
    before = {t.name for t in threading.enumerate()}
    res = run_level(server.url, "m", 3, 2, {"stream": True}, "k")
    assert seen and seen <= before  # no thread per client
    assert (res.requests, res.tokens, len(res.ttft), res.errors) == (6, 30, 6, [])
    assert server.connections == 3  # each client kept its connection for its second request
    first = server.requests[0].decode()
    assert first.startswith("POST /v1/chat/completions HTTP/1.1\r\n")
    assert "Authorization: Bearer k" in first and first.endswith('{"stream": true, "model": "m"}')


def test_errors_are_counted_and_the_client_goes_on(serve: Serve) -> None:
    usage = {"prompt_tokens": 2, "completion_tokens": 4, "total_tokens": 6}
    ok = _stream([_chunk("a", None), _chunk(None, usage)], compact=True)
    bad = b'data: {"error": {"message": "max_tokens must be at least 1"}}\n\n'
    replies = [_reply(b'{"detail": "nope"}\n\n', "400 Bad Request"), _reply(ok, cut=60)]
    server = serve([*replies, _reply(bad), _reply(ok)])
    res = run_level(server.url, "m", 1, 4, {}, None, endpoint="completions")
    assert (res.requests, res.tokens) == (1, 4)
    assert len(res.errors) == 3
    assert "HTTP 400" in res.errors[0] and "nope" in res.errors[0]
    assert "mid-response" in res.errors[1]
    assert "max_tokens must be at least 1" in res.errors[2]
    assert server.requests[0].startswith(b"POST /v1/completions ")
    assert server.connections == 4  # an error closes its connection; the next opens one
