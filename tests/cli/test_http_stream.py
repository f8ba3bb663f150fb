"""cli/http_stream.StreamConnection against a loopback socket server that answers the ways
OpenAI-compatible servers do: chunked streams (split anywhere across packets), Content-Length
errors, bodies ended by closing, and connections closed between requests."""

from __future__ import annotations

import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st
from loopback_http import Serve, chunked

from tui_gen.cli.http_stream import HttpError, ResponseParser, StreamConnection


def _split(raw: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(raw)) for c in cuts})
    return [raw[a:b] for a, b in zip([0, *points], [*points, len(raw)])]


def _feed(parser: ResponseParser, parts: list[bytes]) -> list[bytes]:
    return [piece for part in parts for piece in parser.feed(part)]


EVENTS = [b'data: {"a": 1}\n\n', b"data: " + b"x" * 300 + b"\n\n", b"data: [DONE]\n\n"]


@given(
    st.lists(st.integers(0, 500), max_size=12),
    st.sampled_from(["", "; ext=1"]),
    st.sampled_from([b"\r\n", b"x-trailer: 1\r\n\r\n"]),
    st.booleans(),
)
def test_a_chunked_body_parses_the_same_however_it_is_split(
    cuts: list[int], ext: str, trailer: bytes, close: bool
) -> None:
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
    head += b"Connection: close\r\n\r\n" if close else b"\r\n"
    body = b"".join(b"%x%s\r\n%s\r\n" % (len(e), ext.encode(), e) for e in EVENTS)
    parser = ResponseParser()
    pieces = _feed(parser, _split(head + body + b"0\r\n" + trailer, cuts))
    assert pieces == EVENTS  # one piece per chunk, nothing before the head is whole
    assert parser.status == 200 and parser.done and parser.reusable is not close
    assert parser.feed(b"HTTP/1.1 200 OK\r\n") == []  # after the end: nothing more


@given(st.lists(st.integers(0, 80), max_size=6))
def test_a_sized_body_ends_at_its_length(cuts: list[int]) -> None:
    body = b'{"error": {"message": "bad"}}'
    raw = b"HTTP/1.1 400 Bad Request\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)
    parser = ResponseParser()
    assert b"".join(_feed(parser, _split(raw + b"EXTRA", cuts))) == body
    assert parser.status == 400 and parser.done and parser.reusable


def test_a_body_without_length_ends_when_the_server_closes() -> None:
    parser = ResponseParser()
    assert parser.feed(b"HTTP/1.0 200 OK\r\n\r\ndata: 1\n") == [b"data: 1\n"]
    assert not parser.done
    assert parser.close() == [] and parser.done and not parser.reusable


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n", "chunk size"),
        (b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n", "Content-Length"),
        (b"garbage\r\n\r\n", "not an HTTP response"),
    ],
)
def test_a_malformed_response_raises(raw: bytes, match: str) -> None:
    with pytest.raises(ConnectionError, match=match):
        ResponseParser().feed(raw)


def test_a_close_before_the_body_ends_raises() -> None:
    parser = ResponseParser()
    parser.feed(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc")
    with pytest.raises(ConnectionError, match="mid-response"):
        parser.close()
    with pytest.raises(ConnectionError, match="mid-response"):
        ResponseParser().close()  # nothing at all


def test_headers_that_never_end_are_refused() -> None:
    parser = ResponseParser()
    with pytest.raises(ConnectionError, match="do not end"):
        for _ in range(100):
            parser.feed(b"x-padding: " + b"a" * 1000 + b"\r\n")


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
