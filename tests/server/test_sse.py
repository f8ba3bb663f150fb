"""server/sse.Chunks: a token's templated chunk is byte for byte what json.dumps writes for
the same dict, for any text and every kind of stream."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tui_gen.server.sse import DONE, Chunks, sse


def reference(c: Chunks, index: int, text: str) -> str:
    """The chunk as the dict-and-dumps path builds it (what the template must equal)."""
    if c.chat:
        choice: dict[str, Any] = {
            "index": index,
            "delta": {"content": text},
            "logprobs": None,
            "finish_reason": None,
        }
    else:
        choice = {"index": index, "text": text, "logprobs": None, "finish_reason": None}
    obj: dict[str, Any] = {
        "id": c.rid,
        "object": c.object,
        "created": c.created,
        "model": c.model,
        "choices": [choice],
        "system_fingerprint": None,
    }
    if c.include_usage:
        obj["usage"] = None
    return sse(obj)


@settings(max_examples=200, deadline=None)
@given(
    text=st.text(min_size=1),
    index=st.integers(0, 127),
    chat=st.booleans(),
    usage=st.booleans(),
    model=st.text(max_size=20),
)
def test_a_piece_is_what_json_dumps_writes(
    text: str, index: int, chat: bool, usage: bool, model: str
) -> None:
    c = Chunks("chatcmpl-0f", 1700000000, model, chat, 0, usage)
    got = c.piece(index, text)
    assert got == reference(c, index, text)
    obj = json.loads(got.removeprefix("data: "))
    key = obj["choices"][0]["delta"]["content"] if chat else obj["choices"][0]["text"]
    assert key == text and obj["choices"][0]["index"] == index


@pytest.mark.parametrize("chat", [True, False])
def test_role_finish_and_usage_chunks(chat: bool) -> None:
    c = Chunks("id-1", 5, "m", chat, 0, True)
    first = json.loads(c.chunk(0, None, [], None, role=True).removeprefix("data: "))
    if chat:
        assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    end = json.loads(c.chunk(2, None, [], "length").removeprefix("data: "))
    assert end["choices"][0]["finish_reason"] == "length" and end["choices"][0]["index"] == 2
    assert end["usage"] is None  # include_usage: every chunk carries the key
    usage = {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    last = json.loads(c.usage(usage).removeprefix("data: "))
    assert last["choices"] == [] and last["usage"]["total_tokens"] == 7
    assert {first["id"], end["id"], last["id"]} == {"id-1"}
    assert DONE == "data: [DONE]\n\n"


def test_without_include_usage_no_chunk_has_the_key() -> None:
    c = Chunks("id-2", 5, "m", True, 0, False)
    for chunk in (c.piece(0, "a"), c.chunk(0, None, [], "stop")):
        assert "usage" not in json.loads(chunk.removeprefix("data: "))
