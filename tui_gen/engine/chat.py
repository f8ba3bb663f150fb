"""Chat sessions: messages rendered with the model's template, KV reuse, context trimming.

Templates come from model files, i.e. from strangers, so they run in Jinja's immutable sandbox.
A model without a template gets a plain, documented format:

    {system}            (only when a system prompt is set, followed by a blank line)
    User: {message}
    Assistant: {reply}
    ...
    Assistant:

with "\\nUser:" as a stop string so the model does not write the user's next turn.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from tui_gen.engine.events import Event, FinishEvent, NoticeEvent
from tui_gen.engine.protocol import ChatEngine, ChatMessage
from tui_gen.errors import TuiGenError
from tui_gen.options import SamplingParams

PLAIN_STOP_STRINGS = ["\nUser:"]

Message = dict[str, str]


class _Unset:
    """The type of UNSET: "use the session's own system prompt"."""


UNSET = _Unset()


class TemplateError(TuiGenError):
    """The model's chat template failed to render (or raised on purpose)."""


def _raise_exception(message: str) -> None:
    raise TemplateError(f"the chat template refused the conversation: {message}")


def _tojson(value: Any, indent: int | None = None, **_: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=indent)


@lru_cache(maxsize=16)
def _compile(template: str) -> Any:
    from jinja2 import TemplateSyntaxError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    try:
        return env.from_string(template)
    except TemplateSyntaxError as e:
        raise TemplateError(f"the model's chat template is not valid Jinja ({e})") from None


def render_plain(messages: Sequence[ChatMessage], add_generation_prompt: bool = True) -> str:
    parts: list[str] = []
    for m in messages:
        if m["role"] == "system":
            parts.append(f"{m['content']}\n\n")
        else:
            who = "User" if m["role"] == "user" else "Assistant"
            parts.append(f"{who}: {m['content']}\n")
    if add_generation_prompt:
        parts.append("Assistant:")
    return "".join(parts)


def render_messages(
    template: str | None,
    messages: Sequence[ChatMessage],
    *,
    add_generation_prompt: bool = True,
    bos_token: str | None = None,
    eos_token: str | None = None,
) -> str:
    """Render like transformers' apply_chat_template(tokenize=False); plain format without one."""
    if not template:
        return render_plain(messages, add_generation_prompt)
    from jinja2.exceptions import SecurityError
    from jinja2.exceptions import TemplateError as JinjaError

    try:
        return _compile(template).render(
            messages=messages,
            add_generation_prompt=add_generation_prompt,
            bos_token=bos_token or "",
            eos_token=eos_token or "",
        )
    except TemplateError:
        raise
    except (SecurityError, JinjaError, TypeError, ValueError, KeyError) as e:
        raise TemplateError(f"the model's chat template failed to render ({e})") from None


class ChatSession:
    """A conversation with one model: send, regenerate, reset; turns survive cancellation.

    Two ways to use it. The Python API keeps the conversation here: `send`, `regenerate`,
    `pop_last_exchange` and `reset` change `messages`, and the oldest turns are dropped from it
    when the context fills. A front end that owns its conversation (the app) calls
    `stream_reply` with the whole conversation each time instead; that never reads or changes
    `messages` or `system` (it is the ChatBackend protocol, protocol.py). Either way the KV
    cache is reused across turns: the Generator keeps the longest prefix of token ids it
    already holds, so only the new tokens of each prompt are prefilled.
    """

    def __init__(
        self,
        generator: ChatEngine,
        system: str | None = None,
        messages: Sequence[ChatMessage] | None = None,
    ) -> None:
        self.generator = generator
        self.system = system
        self.messages: list[Message] = [dict(m) for m in messages or []]

    # --- what the app reads (ChatBackend) ----------------------------------------------------
    @property
    def name(self) -> str:
        return self.generator.name

    @property
    def max_context(self) -> int:
        return self.generator.max_context

    @property
    def defaults(self) -> SamplingParams:
        return self.generator.defaults

    @property
    def cached_tokens(self) -> int:
        return self.generator.cached_tokens

    @property
    def has_template(self) -> bool:
        return bool(self.generator.chat_template)

    def params(self, params: SamplingParams | None = None, **overrides: Any) -> SamplingParams:
        """The model's defaults, then `params`, then overrides (as Generator.params)."""
        return self.generator.params(params, **overrides)

    # --- rendering ---------------------------------------------------------------------------
    def full_messages(
        self, messages: Sequence[ChatMessage] | None = None, system: str | _Unset | None = UNSET
    ) -> list[Message]:
        """The system prompt (this session's unless `system` is given) and the messages."""
        msgs = self.messages if messages is None else messages
        sys_prompt = self.system if isinstance(system, _Unset) else system
        head = [{"role": "system", "content": sys_prompt}] if sys_prompt else []
        return head + [dict(m) for m in msgs]

    def render(
        self,
        messages: Sequence[ChatMessage] | None = None,
        add_generation_prompt: bool = True,
        system: str | _Unset | None = UNSET,
    ) -> str:
        tok = self.generator.tokenizer
        return render_messages(
            self.generator.chat_template,
            self.full_messages(messages, system),
            add_generation_prompt=add_generation_prompt,
            bos_token=tok.bos_token,
            eos_token=tok.eos_token,
        )

    def _encode(
        self, messages: Sequence[ChatMessage], system: str | _Unset | None = UNSET
    ) -> list[int]:
        text = self.render(messages, system=system)
        # a template writes BOS and other specials itself
        return self.generator.encode(text, add_special_tokens=not self.has_template)

    def count_tokens(self, messages: Sequence[ChatMessage], system: str | None = None) -> int:
        """Tokens the conversation takes as a prompt (with the generation prompt)."""
        return len(self._encode(messages, system))

    def fit(
        self,
        messages: Sequence[ChatMessage],
        max_new_tokens: int,
        system: str | _Unset | None = UNSET,
    ) -> tuple[list[int], int]:
        """Token ids of the conversation, dropping the oldest turns until it fits.

        Returns (ids, number of messages dropped from the front of `messages`). The system
        prompt and the newest user message are always kept; if even they do not fit, the
        generator keeps the most recent tokens of the prompt.
        """
        ctx = self.generator.max_context
        budget = max(ctx - max_new_tokens, ctx // 2)
        msgs = list(messages)
        dropped = 0
        ids = self._encode(msgs, system)
        while len(ids) > budget and len(msgs) > 1:
            # drop the oldest exchange (a user message and the replies up to the next one)
            cut = 1
            while cut < len(msgs) - 1 and msgs[cut]["role"] != "user":
                cut += 1
            msgs = msgs[cut:]
            dropped += cut
            ids = self._encode(msgs, system)
        return ids, dropped

    def prompt_ids(self, max_new_tokens: int) -> tuple[list[int], int]:
        """fit() for this session's own messages; the dropped turns leave `messages`."""
        ids, dropped = self.fit(self.messages, max_new_tokens)
        if dropped:
            del self.messages[:dropped]
        return ids, dropped

    def _params(self, params: SamplingParams | None, overrides: dict[str, Any]) -> SamplingParams:
        p = self.generator.params(params, **overrides)
        if not self.has_template:
            extra = [s for s in PLAIN_STOP_STRINGS if s not in p.stop_strings]
            p = p.replace(stop_strings=[*p.stop_strings, *extra])
        return p

    # --- the stateless core (ChatBackend) ----------------------------------------------------
    def stream_reply(
        self,
        messages: Sequence[ChatMessage],
        params: SamplingParams | None = None,
        *,
        system: str | None = None,
        cancel: threading.Event | None = None,
        **overrides: Any,
    ) -> Iterator[Event]:
        """Stream the reply to `messages` (with `system`, not this session's own prompt).

        Reads `messages` once, before the first event, and never changes it or this session's
        conversation. When the oldest turns do not fit, a NoticeEvent of kind
        "context_trimmed" says how many were `dropped`. The FinishEvent's text is the reply as
        it belongs in the conversation (stripped in the plain format)."""
        p = self._params(params, overrides)
        ids, dropped = self.fit(messages, p.max_new_tokens, system)
        if dropped:
            yield NoticeEvent(
                f"the conversation no longer fits in {self.generator.max_context} tokens; "
                f"dropped the {dropped} oldest message(s)",
                kind="context_trimmed",
                dropped=dropped,
            )
        for ev in self.generator.stream_events(ids, p, cancel=cancel):
            if isinstance(ev, FinishEvent) and not self.has_template:
                ev = replace(ev, text=ev.text.strip())
            yield ev

    # --- the Python API: the conversation kept here ------------------------------------------
    def _reply(self, params: SamplingParams, cancel: threading.Event | None) -> Iterator[Event]:
        for ev in self.stream_reply(self.messages, params, system=self.system, cancel=cancel):
            if isinstance(ev, NoticeEvent) and ev.dropped:
                del self.messages[: ev.dropped]
            elif isinstance(ev, FinishEvent):
                self.messages.append({"role": "assistant", "content": ev.text})
            yield ev

    def send(
        self,
        user_text: str,
        params: SamplingParams | None = None,
        *,
        cancel: threading.Event | None = None,
        **overrides: Any,
    ) -> Iterator[Event]:
        """Add a user message and stream the reply; the reply is stored when it finishes."""
        p = self._params(params, overrides)
        self.messages.append({"role": "user", "content": user_text})
        yield from self._reply(p, cancel)

    def regenerate(
        self,
        params: SamplingParams | None = None,
        *,
        cancel: threading.Event | None = None,
        **overrides: Any,
    ) -> Iterator[Event]:
        """Drop the last reply and generate it again."""
        if not self.messages or self.messages[-1]["role"] != "assistant":
            raise TuiGenError("there is no reply to regenerate yet; send a message first")
        p = self._params(params, overrides)
        self.messages.pop()
        yield from self._reply(p, cancel)

    def pop_last_exchange(self) -> str | None:
        """Remove the last user message and its reply; return the user text (edit and resend)."""
        for i in range(len(self.messages) - 1, -1, -1):
            if self.messages[i]["role"] == "user":
                text = self.messages[i]["content"]
                del self.messages[i:]
                return text
        return None

    def reset(self) -> None:
        """Clear the conversation and the KV cache (the system prompt stays)."""
        self.messages.clear()
        self.generator.reset()


if TYPE_CHECKING:
    from tui_gen.engine.generator import Generator
    from tui_gen.engine.protocol import ChatBackend

    def _satisfies_the_protocols(gen: Generator) -> tuple[ChatEngine, ChatBackend]:
        """For mypy only: the Generator is a ChatEngine and a ChatSession a ChatBackend."""
        return gen, ChatSession(gen)
