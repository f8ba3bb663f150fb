"""RemoteChat: the ChatBackend protocol over an OpenAI-compatible /v1/chat/completions stream.

The server applies the model's chat template and samples; this side maps SamplingParams onto
request fields (wire.py), turns chunks into the engine's events and measures the stats itself
(time to first token from the request, tok/s from the first token to the last, with the
server's `usage` counts when it sends them and the number of streamed tokens otherwise).
`stream_completion` is the same over /v1/completions, for plain text without a template.

A server reports text, not token ids: every TokenEvent carries token_id -1 and the FinishEvent
no ids.

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
    TokenEvent,
)
from tui_gen.engine.protocol import BranchingUnavailable, ChatMessage
from tui_gen.options import SamplingParams
from tui_gen.remote.client import PROBE_TIMEOUT, Endpoint, RemoteError, StreamCut, _one_line
from tui_gen.remote.wire import (
    UNKNOWN_ID,
    choice_logprobs,
    choice_text,
    completion_body,
    finish_reason,
    first_choice,
    request_body,
)

#: what a remote model starts with (the server's own defaults are not published by the API);
#: the extension samplers are off, so a plain OpenAI-style request is what is asked for
REMOTE_DEFAULTS = SamplingParams(
    temperature=0.7, top_k=0, top_p=1.0, min_p=0.0, repetition_penalty=1.0, max_new_tokens=512
)
#: the context assumed when the server does not say (and --max-context is not given)
ASSUMED_CONTEXT = 4096
#: the estimate when the server cannot count tokens
CHARS_PER_TOKEN = 4


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

    @property
    def token_counting(self) -> str | None:
        """How count_tokens counts: "vllm" or "llama.cpp" (the server), "estimate", or None
        before the first count."""
        return self._counter

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
        prefix_ids: Sequence[int] = (),
    ) -> Iterator[Event]:
        """TokenEvents as chunks arrive, then one FinishEvent (reason "cancelled" when `cancel`
        closed the stream). A failure raises RemoteError with the text so far in `partial`.

        `prefix_ids` (continuing a reply from a chosen token) needs token ids the server
        neither takes nor returns, so it is refused."""
        if prefix_ids:
            raise BranchingUnavailable(
                "branching needs a local model (an OpenAI endpoint takes no token ids); "
                "open the model with tui-gen itself to branch from a token"
            )
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
        yield from self._stream("/chat/completions", body, p, cancel, kept, system)

    def stream_completion(
        self,
        prompt: str,
        params: SamplingParams | None = None,
        *,
        cancel: threading.Event | None = None,
    ) -> Iterator[Event]:
        """The continuation of plain text (/v1/completions: no chat template), as events."""
        p = params if params is not None else self._defaults
        body = completion_body(self.model, prompt, p)
        yield from self._stream("/completions", body, p, cancel, [], None, prompt)

    def _stream(
        self,
        path: str,
        body: dict[str, Any],
        p: SamplingParams,
        cancel: threading.Event | None,
        messages: Sequence[ChatMessage],
        system: str | None,
        prompt: str = "",
    ) -> Iterator[Event]:
        """The chunks of one request as TokenEvents, then one FinishEvent with the stats."""
        cancel = cancel or threading.Event()
        t0 = time.perf_counter()
        first = last = 0.0
        parts: list[str] = []
        tokens = 0
        usage: dict[str, Any] = {}
        reason: FinishReason | None = None
        try:
            for chunk in self.endpoint.stream(path, body, cancel):
                if isinstance(chunk.get("usage"), dict):
                    usage = chunk["usage"]
                choice = first_choice(chunk)
                text = choice_text(choice)
                entries = choice_logprobs(choice) if p.logprobs else []
                if text or entries:
                    now = time.perf_counter()
                    first = first or now
                    last = now
                    parts.append(text)
                    for i, entry in enumerate(entries or [None]):
                        tokens += 1  # a chunk per token, unless its logprobs list several
                        yield TokenEvent(UNKNOWN_ID, text if i == 0 else "", 0, entry)
                if choice.get("finish_reason"):
                    reason = finish_reason(choice["finish_reason"])
        except StreamCut as e:
            if reason is None:
                raise StreamCut(f"{e}; the partial reply is kept", "".join(parts)) from None
        except RemoteError as e:
            raise RemoteError(str(e), "".join(parts)) from None
        if cancel.is_set() and reason is None:
            reason = "cancelled"
        n_prompt = usage.get("prompt_tokens")
        generated = usage.get("completion_tokens")
        stats = GenerationStats(
            prompt_tokens=n_prompt if isinstance(n_prompt, int) else 0,
            prefill_tokens=n_prompt if isinstance(n_prompt, int) else 0,
            generated_tokens=generated if isinstance(generated, int) else tokens,
            time_to_first_token=(first - t0) if first else 0.0,
            prefill_seconds=(first - t0) if first else 0.0,
            decode_seconds=(last - first) if first else 0.0,
        )
        # the context bar: the server's prompt count, else our estimate of it
        used = stats.prompt_tokens
        if not used:
            estimate = len(prompt) // CHARS_PER_TOKEN + 1
            used = self.count_tokens(messages, system) if messages else estimate
        self._cached = used + stats.generated_tokens
        yield FinishEvent(reason or "eos", "".join(parts), [], stats)
