"""RemoteChat: the ChatBackend protocol over an OpenAI-compatible /v1/chat/completions stream.

The server applies the model's chat template and samples; this side maps SamplingParams onto
request fields, turns chunks into the engine's events and measures the stats itself (time to
first token from the request, tok/s from the first token to the last, with the server's
`usage` counts when it sends them and the number of streamed tokens otherwise).

Request fields (the names vLLM, llama.cpp, Ollama and `tui-gen serve` accept):

    max_new_tokens      max_tokens
    temperature         temperature (0 when greedy)
    top_p, seed, stop   top_p, seed, stop
    top_k, min_p        top_k, min_p (extensions; always sent, so "off" means off and not the
                        server's own default, e.g. llama-cpp-python's min_p 0.05)
    repetition_penalty  repetition_penalty, and repeat_penalty (llama.cpp's name)
    logprobs = N > 0    logprobs: true, top_logprobs: N

A server reports text, not token ids: every TokenEvent carries token_id -1, the FinishEvent
no ids, and logprobs alternatives token_id -1 too. A server reports one distribution per
token (the one it sampled from, or the raw one, depending on the server), so a TokenLogprobs
carries it in both its raw and its sampled fields.

The context size and token counts are best effort, since servers differ: `max_model_len` in
/v1/models (vLLM, ours), llama.cpp's /props n_ctx, else --max-context, else ASSUMED_CONTEXT.
Counting uses vLLM's /tokenize (messages in, count out) or llama-server's /apply-template and
/tokenize when the server has them, else an estimate of a token per CHARS_PER_TOKEN characters.
When the context size is known, the oldest exchanges are dropped as a ChatSession drops them
(a NoticeEvent "context_trimmed" says how many).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

from tui_gen.engine.events import (
    Event,
    FinishEvent,
    FinishReason,
    GenerationStats,
    NoticeEvent,
    TokenAlternative,
    TokenEvent,
    TokenLogprobs,
)
from tui_gen.engine.protocol import ChatMessage
from tui_gen.options import SamplingParams
from tui_gen.remote.client import PROBE_TIMEOUT, Endpoint, RemoteError, StreamCut, _one_line

#: what a remote model starts with (the server's own defaults are not published by the API);
#: the extension samplers are off, so a plain OpenAI-style request is what is asked for
REMOTE_DEFAULTS = SamplingParams(
    temperature=0.7, top_k=0, top_p=1.0, min_p=0.0, repetition_penalty=1.0, max_new_tokens=512
)
#: the context assumed when the server does not say (and --max-context is not given)
ASSUMED_CONTEXT = 4096
#: the estimate when the server cannot count tokens
CHARS_PER_TOKEN = 4
_UNKNOWN_ID = -1


def request_body(
    model: str, messages: Sequence[ChatMessage], p: SamplingParams, *, stream: bool = True
) -> dict[str, Any]:
    """The /v1/chat/completions request for `messages` with the values of `p`."""
    if p.repetition_window:
        raise RemoteError(
            "repetition_window has no field in the OpenAI API; set it to 0 for a remote model"
        )
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
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
    if p.logprobs:
        body["logprobs"] = True
        body["top_logprobs"] = p.logprobs
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def _logprobs(entry: Any) -> TokenLogprobs | None:
    """One entry of a chunk's choices[0].logprobs.content, as the engine's TokenLogprobs."""
    if not isinstance(entry, dict):
        return None
    try:
        top = tuple(
            TokenAlternative(_UNKNOWN_ID, str(t.get("token", "")), float(t["logprob"]))
            for t in entry.get("top_logprobs") or []
            if isinstance(t, dict) and "logprob" in t
        )
        logprob = float(entry["logprob"])
    except (KeyError, TypeError, ValueError):
        return None
    text = str(entry.get("token", ""))
    return TokenLogprobs(_UNKNOWN_ID, text, logprob, top, logprob, top)


def _entries(choice: dict[str, Any]) -> list[Any]:
    """The logprobs entries of a chunk's choice (one per token it carries)."""
    lp = choice.get("logprobs")
    content = lp.get("content") if isinstance(lp, dict) else None
    return content if isinstance(content, list) else []


def _finish_reason(reason: Any) -> FinishReason:
    return "length" if reason == "length" else "eos"


class RemoteChat:
    """A model served over HTTP, as the app and the command line see a local ChatSession."""

    def __init__(
        self,
        endpoint: Endpoint,
        model: str,
        *,
        max_context: int | None = None,
        defaults: SamplingParams = REMOTE_DEFAULTS,
        served: Sequence[str] = (),
    ) -> None:
        self.endpoint = endpoint
        self.model = model
        self._defaults = defaults
        self.served = list(served)  #: the model ids /v1/models listed
        self.context_source = "--max-context" if max_context else ""
        self._max_context = max_context or 0
        #: the server said its context size, or --max-context did (not ASSUMED_CONTEXT)
        self.context_known = bool(max_context)
        self._cached = 0
        self._counter: str | None = None  # "vllm" | "llama.cpp" | "estimate", found on first use

    @classmethod
    def connect(
        cls,
        url: str,
        model: str | None = None,
        api_key: str | None = None,
        *,
        max_context: int | None = None,
        endpoint: Endpoint | None = None,
    ) -> RemoteChat:
        """Check the endpoint (GET /models: reachable, key accepted, an OpenAI-style API) and
        pick the model: `model`, else the first the server lists."""
        ep = endpoint or Endpoint(url, api_key)
        listing = ep.get_json("/models")
        entries = listing.get("data") if isinstance(listing, dict) else None
        if not isinstance(entries, list):
            raise RemoteError(
                f"{ep.display}/models did not list models (no 'data' list); is this an "
                "OpenAI-compatible API?"
            )
        ids = [str(e["id"]) for e in entries if isinstance(e, dict) and "id" in e]
        if model is None:
            if not ids:
                raise RemoteError(f"{ep.display} serves no models; give one with --model NAME")
            model = ids[0]
        chat = cls(ep, model, max_context=max_context, served=ids)
        if not max_context:
            chat._max_context, chat.context_source = chat._probe_context(entries)
            chat.context_known = not chat.context_source.startswith("assumed")
        return chat

    def _probe_context(self, entries: list[Any]) -> tuple[int, str]:
        """The server's context size, where it tells: its /v1/models entry, llama.cpp's /props."""
        for e in entries:
            if isinstance(e, dict) and str(e.get("id")) == self.model:
                for key in ("max_model_len", "context_length", "max_context_length", "n_ctx"):
                    value = e.get(key)
                    if isinstance(value, int) and value > 0:
                        return value, f"/v1/models {key}"
        try:
            props = self.endpoint.get_json("/props", root=True, timeout=PROBE_TIMEOUT)
        except RemoteError:
            props = None
        if isinstance(props, dict):
            settings = props.get("default_generation_settings")
            for value in (props.get("n_ctx"), (settings or {}).get("n_ctx")):
                if isinstance(value, int) and value > 0:
                    return value, "/props n_ctx"
        return ASSUMED_CONTEXT, "assumed (the server does not say; --max-context sets it)"

    # --- what the app reads (ChatBackend) --------------------------------------------------
    @property
    def name(self) -> str:
        """The model and where it runs, as the status bar and transcripts record it. A model
        id that is a file path (llama-cpp-python's) is shown by its file name."""
        model = self.model
        if model.startswith("/") or "\\" in model:
            model = model.replace("\\", "/").rsplit("/", 1)[-1] or model
        return f"{_one_line(model, 120)} @ {self.endpoint.display}"

    @property
    def max_context(self) -> int:
        return self._max_context

    @property
    def defaults(self) -> SamplingParams:
        return self._defaults

    @property
    def has_template(self) -> bool:
        return True  # the server formats the messages with the model's template

    @property
    def cached_tokens(self) -> int:
        return self._cached

    def params(self, params: SamplingParams | None = None, **overrides: Any) -> SamplingParams:
        base = params if params is not None else self._defaults
        return base.replace(**overrides) if overrides else base.replace()

    def reset(self) -> None:
        self._cached = 0  # the server keeps no conversation of ours

    def close(self) -> None:
        self.endpoint.close()

    @staticmethod
    def full_messages(
        messages: Sequence[ChatMessage], system: str | None = None
    ) -> list[dict[str, str]]:
        head = [{"role": "system", "content": system}] if system else []
        return head + [{"role": m["role"], "content": m["content"]} for m in messages]

    def count_tokens(self, messages: Sequence[ChatMessage], system: str | None = None) -> int:
        """Best effort: the server's count where it has one (vLLM's /tokenize with messages,
        or llama-server's /apply-template then /tokenize), else an estimate of one token per
        CHARS_PER_TOKEN characters and a few per message. The way is found on first use."""
        msgs = self.full_messages(messages, system)
        if self._counter is None:
            for way in ("vllm", "llama.cpp"):
                count = self._server_count(way, msgs)
                if count is not None:
                    self._counter = way
                    return count
            self._counter = "estimate"
        elif self._counter != "estimate":
            count = self._server_count(self._counter, msgs)
            if count is not None:
                return count
        return sum(len(m["content"]) // CHARS_PER_TOKEN + 4 for m in msgs) + 2

    def _server_count(self, way: str, msgs: list[dict[str, str]]) -> int | None:
        ep = self.endpoint
        try:
            if way == "vllm":
                body = {"model": self.model, "messages": msgs, "add_generation_prompt": True}
                answer = ep.post_json("/tokenize", body, root=True, timeout=PROBE_TIMEOUT)
                count = answer.get("count") if isinstance(answer, dict) else None
                return count if isinstance(count, int) else None
            rendered = ep.post_json(
                "/apply-template", {"messages": msgs}, root=True, timeout=PROBE_TIMEOUT
            )
            prompt = rendered.get("prompt") if isinstance(rendered, dict) else None
            if not isinstance(prompt, str):
                return None
            body = {"content": prompt, "add_special": False}
            answer = ep.post_json("/tokenize", body, root=True, timeout=PROBE_TIMEOUT)
            tokens = answer.get("tokens") if isinstance(answer, dict) else None
            return len(tokens) if isinstance(tokens, list) else None
        except RemoteError:
            return None

    def fit(
        self, messages: Sequence[ChatMessage], max_new_tokens: int, system: str | None = None
    ) -> tuple[list[ChatMessage], int]:
        """The messages that fit the context with room for the reply, dropping the oldest
        exchanges (as ChatSession.fit); (messages, how many were dropped). Only when the
        context size is known (the server said, or --max-context): an assumed size must not
        drop turns a larger server would have kept, and the server's own error says when a
        prompt is too long."""
        msgs = list(messages)
        if not self.context_known:
            return msgs, 0
        ctx = self._max_context
        budget = max(ctx - max_new_tokens, ctx // 2)
        dropped = 0
        while len(msgs) > 1 and self.count_tokens(msgs, system) > budget:
            cut = 1  # the oldest exchange: a user message and the replies up to the next one
            while cut < len(msgs) - 1 and msgs[cut]["role"] != "user":
                cut += 1
            msgs = msgs[cut:]
            dropped += cut
        return msgs, dropped

    # --- the reply -------------------------------------------------------------------------
    def stream_reply(
        self,
        messages: Sequence[ChatMessage],
        params: SamplingParams | None = None,
        *,
        system: str | None = None,
        cancel: threading.Event | None = None,
    ) -> Iterator[Event]:
        """TokenEvents as chunks arrive, then one FinishEvent (reason "cancelled" when `cancel`
        closed the stream). A failure raises RemoteError with the text so far in `partial`."""
        p = params if params is not None else self._defaults
        kept, dropped = self.fit(messages, p.max_new_tokens, system)
        body = request_body(self.model, self.full_messages(kept, system), p)
        if dropped:
            yield NoticeEvent(
                f"the conversation no longer fits in {self._max_context} tokens; "
                f"dropped the {dropped} oldest message(s)",
                kind="context_trimmed",
                dropped=dropped,
            )
        cancel = cancel or threading.Event()
        t0 = time.perf_counter()
        first = last = 0.0
        parts: list[str] = []
        tokens = 0
        usage: dict[str, Any] = {}
        reason: FinishReason | None = None
        try:
            for chunk in self.endpoint.stream("/chat/completions", body, cancel):
                if isinstance(chunk.get("usage"), dict):
                    usage = chunk["usage"]
                choices = chunk.get("choices")
                choice = choices[0] if isinstance(choices, list) and choices else {}
                if not isinstance(choice, dict):
                    continue
                delta = choice.get("delta") or {}
                text = delta.get("content") if isinstance(delta, dict) else None
                text = text if isinstance(text, str) else ""
                entries = _entries(choice) if p.logprobs else []
                if text or entries:
                    now = time.perf_counter()
                    first = first or now
                    last = now
                    parts.append(text)
                    if entries:
                        for i, entry in enumerate(entries):
                            tokens += 1
                            piece = text if i == 0 else ""
                            yield TokenEvent(_UNKNOWN_ID, piece, 0, _logprobs(entry))
                    else:
                        tokens += 1
                        yield TokenEvent(_UNKNOWN_ID, text)
                if choice.get("finish_reason"):
                    reason = _finish_reason(choice["finish_reason"])
        except StreamCut as e:
            if reason is None:
                raise StreamCut(f"{e}; the partial reply is kept", "".join(parts)) from None
        except RemoteError as e:
            raise RemoteError(str(e), "".join(parts)) from None
        if cancel.is_set() and reason is None:
            reason = "cancelled"
        prompt = usage.get("prompt_tokens")
        generated = usage.get("completion_tokens")
        stats = GenerationStats(
            prompt_tokens=prompt if isinstance(prompt, int) else 0,
            prefill_tokens=prompt if isinstance(prompt, int) else 0,
            generated_tokens=generated if isinstance(generated, int) else tokens,
            time_to_first_token=(first - t0) if first else 0.0,
            prefill_seconds=(first - t0) if first else 0.0,
            decode_seconds=(last - first) if first else 0.0,
        )
        # the context bar: the server's prompt count, else our estimate of it
        used = stats.prompt_tokens or self.count_tokens(kept, system)
        self._cached = used + stats.generated_tokens
        yield FinishEvent(reason or "eos", "".join(parts), [], stats)
