"""cli/bench_serve's client side: SSE payloads however the bytes are split, and token counts
and errors from streams of servers with and without a usage chunk."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tui_gen.cli.bench_serve import read_stream, sse_payloads

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


def test_rounds_alternate_the_levels_and_report_each_over_all_its_rounds(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tui_gen.cli import bench_serve, main

    calls: list[int] = []
    rates = iter([100.0, 400.0, 50.0, 300.0])  # round 1: levels 1, 8; round 2: levels 1, 8

    def fake_level(url: str, model: str, clients: int, *a: Any, **k: Any) -> Any:
        calls.append(clients)
        r = bench_serve.LevelResult(clients, requests=clients, tokens=100, ttft=[0.01])
        r.seconds = 100 / next(rates)
        return r

    monkeypatch.setattr(bench_serve, "run_level", fake_level)
    monkeypatch.setattr(bench_serve, "first_model", lambda client, url: "m")
    argv = ["bench-serve", "http://127.0.0.1:9/v1", "--clients", "1,8", "--rounds", "2"]
    assert main([*argv, "--json"]) == 0
    assert calls == [1, 8, 1, 8]
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    one, eight = rows
    assert one["rounds"] == 2 and one["completion_tokens"] == 200
    assert one["tokens_per_second"] == pytest.approx(200 / 3.0, abs=0.01)  # 1 s + 2 s
    assert (one["tokens_per_second_min"], one["tokens_per_second_max"]) == (50.0, 100.0)
    assert (eight["tokens_per_second_min"], eight["tokens_per_second_max"]) == (300.0, 400.0)
    calls.clear()
    rates = iter([100.0, 400.0, 100.0, 400.0])
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "(4.00x of the first level)" in out and "(rounds 400..400)" in out
