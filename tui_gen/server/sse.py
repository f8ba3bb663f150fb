"""The server-sent events of a streamed completion, as text: chunks, the usage chunk, [DONE].

Why a template: a streaming client costs one chunk per token, and building each chunk as a
dict and `json.dumps`-ing it was the largest part of the event loop's ~150 us per token with
eight clients (profiled with py-spy), on a 2-core machine where the loop shares the cores
with the decode. Everything in a chunk but the choice's index and text is fixed for the
stream, so `Chunks` serialises it once and a token's chunk is two string joins and one
encoding of its text. The bytes are exactly what `json.dumps` gives for the same dict (the
tests compare them); chunks with logprobs, rare and large, still go through the dict.
"""

from __future__ import annotations

import json
from typing import Any

from tui_gen.engine.events import TokenLogprobs
from tui_gen.server.convert import chat_logprobs, completion_logprobs

#: the encoder json.dumps(..., ensure_ascii=False) uses for a str (the C one when available)
_encode_str = json.encoder.encode_basestring

DONE = "data: [DONE]\n\n"


def sse(obj: Any) -> str:
    """One event carrying `obj` as JSON."""
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"


class Chunks:
    """The events of one streamed response: same id, object, created and model in every one."""

    def __init__(
        self, rid: str, created: int, model: str, chat: bool, top: int, include_usage: bool
    ) -> None:
        self.rid, self.created, self.model = rid, created, model
        self.chat, self.top, self.include_usage = chat, top, include_usage
        self.object = "chat.completion.chunk" if chat else "text_completion"
        head = self._envelope([{"index": 0}])
        # '... "choices": [{"index": 0}], "system_fingerprint": null}' split around the choice
        cut = head.index('[{"index": 0}]')
        self._head = head[:cut] + '[{"index": '
        self._tail = "}]" + head[cut + len('[{"index": 0}]') :]
        self._text_key = '"delta": {"content": ' if chat else '"text": '
        # a chat delta's object closes before the choice's other fields
        self._text_end = ("}" if chat else "") + ', "logprobs": null, "finish_reason": null'

    def _envelope(self, choices: list[dict[str, Any]], usage: Any = None) -> str:
        obj: dict[str, Any] = {
            "id": self.rid,
            "object": self.object,
            "created": self.created,
            "model": self.model,
            "choices": choices,
            "system_fingerprint": None,
        }
        if self.include_usage or usage is not None:
            obj["usage"] = usage
        return json.dumps(obj, ensure_ascii=False)

    def piece(self, index: int, text: str) -> str:
        """A chunk with a token's text and nothing else (the common case)."""
        return (
            f"data: {self._head}{index}, {self._text_key}{_encode_str(text)}"
            f"{self._text_end}{self._tail}\n\n"
        )

    def chunk(
        self,
        index: int,
        piece: str | None,
        lps: list[TokenLogprobs],
        reason: str | None,
        role: bool = False,
    ) -> str:
        """Any chunk: the role's first delta, a piece with its logprobs, a finish_reason."""
        if self.chat:
            delta: dict[str, Any] = {"role": "assistant", "content": ""} if role else {}
            if piece is not None:
                delta["content"] = piece
            lp = chat_logprobs(lps, self.top) if lps else None
            choice = {"index": index, "delta": delta, "logprobs": lp, "finish_reason": reason}
        else:
            lp = completion_logprobs(lps, self.top) if lps else None
            choice = {"index": index, "text": piece or "", "logprobs": lp, "finish_reason": reason}
        return f"data: {self._envelope([choice])}\n\n"

    def usage(self, usage: dict[str, int]) -> str:
        """The last chunk of stream_options.include_usage: no choices, the token counts."""
        return f"data: {self._envelope([], usage)}\n\n"
