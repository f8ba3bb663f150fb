"""The OpenAI wire format, both ways: SamplingParams -> request fields, stream chunks -> text,
logprobs and finish reasons. Pure functions, no I/O.

Request fields (the names vLLM, llama.cpp, Ollama and `tui-gen serve` accept):

    max_new_tokens      max_tokens
    temperature         temperature (0 when greedy)
    top_p, seed, stop   top_p, seed, stop
    top_k, min_p        top_k, min_p (extensions; always sent, so "off" means off and not the
                        server's own default, e.g. llama-cpp-python's min_p 0.05)
    repetition_penalty  repetition_penalty, and repeat_penalty (llama.cpp's name)
    logprobs = N > 0    chat: logprobs: true, top_logprobs: N; completions: logprobs: N

A server reports text, not token ids: logprobs alternatives carry token_id -1. A server reports
one distribution per token (the one it sampled from, or the raw one, depending on the server),
so a TokenLogprobs carries it in both its raw and its sampled fields.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tui_gen.engine.events import FinishReason, TokenAlternative, TokenLogprobs
from tui_gen.engine.protocol import ChatMessage
from tui_gen.options import SamplingParams
from tui_gen.remote.client import RemoteError

#: the token id of everything a server reports (it gives text, not ids)
UNKNOWN_ID = -1


def _sampling_fields(p: SamplingParams) -> dict[str, Any]:
    if p.repetition_window:
        raise RemoteError(
            "repetition_window has no field in the OpenAI API; set it to 0 for a remote model"
        )
    body: dict[str, Any] = {
        "max_tokens": p.max_new_tokens,
        "temperature": 0.0 if p.greedy else p.temperature,
        "top_p": p.top_p,
        "top_k": p.top_k,
        "min_p": p.min_p,
        "repetition_penalty": p.repetition_penalty,
        "repeat_penalty": p.repetition_penalty,
    }
    if p.seed is not None:
        body["seed"] = p.seed
    if p.stop_strings:
        body["stop"] = list(p.stop_strings)
    return body


def _streaming(body: dict[str, Any], stream: bool) -> dict[str, Any]:
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def request_body(
    model: str, messages: Sequence[ChatMessage], p: SamplingParams, *, stream: bool = True
) -> dict[str, Any]:
    """The /v1/chat/completions request for `messages` with the values of `p`."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
        **_sampling_fields(p),
    }
    if p.logprobs:
        body["logprobs"] = True
        body["top_logprobs"] = p.logprobs
    return _streaming(body, stream)


def completion_body(
    model: str, prompt: str, p: SamplingParams, *, stream: bool = True
) -> dict[str, Any]:
    """The /v1/completions request (plain text, no chat template) with the values of `p`."""
    body: dict[str, Any] = {"model": model, "prompt": prompt, **_sampling_fields(p)}
    if p.logprobs:
        body["logprobs"] = p.logprobs  # the legacy API: an int
    return _streaming(body, stream)


def first_choice(chunk: dict[str, Any]) -> dict[str, Any]:
    choices = chunk.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices else {}
    return choice if isinstance(choice, dict) else {}


def choice_text(choice: dict[str, Any]) -> str:
    """The text a chunk's choice adds: chat's delta.content, or completions' text."""
    delta = choice.get("delta")
    text = delta.get("content") if isinstance(delta, dict) else choice.get("text")
    return text if isinstance(text, str) else ""


def choice_logprobs(choice: dict[str, Any]) -> list[TokenLogprobs | None]:
    """One entry per token the chunk carries: chat's logprobs.content list, or the legacy
    completions format (tokens, token_logprobs, top_logprobs as {token: logprob})."""
    lp = choice.get("logprobs")
    if not isinstance(lp, dict):
        return []
    content = lp.get("content")
    if isinstance(content, list):
        return [_chat_entry(e) for e in content]
    tokens, values = lp.get("tokens"), lp.get("token_logprobs")
    if not isinstance(tokens, list) or not isinstance(values, list):
        return []
    tops = lp.get("top_logprobs") or []
    out = []
    for i, (token, value) in enumerate(zip(tokens, values)):
        top = tops[i] if i < len(tops) and isinstance(tops[i], dict) else {}
        out.append(_entry(token, value, [{"token": t, "logprob": v} for t, v in top.items()]))
    return out


def _chat_entry(entry: Any) -> TokenLogprobs | None:
    if not isinstance(entry, dict):
        return None
    return _entry(entry.get("token"), entry.get("logprob"), entry.get("top_logprobs") or [])


def _entry(token: Any, value: Any, top: Any) -> TokenLogprobs | None:
    try:
        alternatives = tuple(
            TokenAlternative(UNKNOWN_ID, str(t.get("token", "")), float(t["logprob"]))
            for t in top
            if isinstance(t, dict) and "logprob" in t
        )
        logprob = float(value)
    except (KeyError, TypeError, ValueError):
        return None
    text = str(token or "")
    return TokenLogprobs(UNKNOWN_ID, text, logprob, alternatives, logprob, alternatives)


def finish_reason(reason: Any) -> FinishReason:
    """OpenAI's reasons as ours: "length" stays; "stop" (the model ended, or a stop string
    the server does not tell apart) and anything else are "eos"."""
    return "length" if reason == "length" else "eos"
