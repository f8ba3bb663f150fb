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
from collections.abc import Iterator
from datetime import datetime
from functools import lru_cache
from typing import Any

from tui_gen.engine.events import Event, FinishEvent, NoticeEvent
from tui_gen.errors import TuiGenError
from tui_gen.options import SamplingParams

PLAIN_STOP_STRINGS = ["\nUser:"]

Message = dict[str, str]


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


def render_plain(messages: list[Message], add_generation_prompt: bool = True) -> str:
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
    messages: list[Message],
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
    """A conversation with one model: send, regenerate, reset; turns survive cancellation."""

    def __init__(
        self,
        generator: Any,
        system: str | None = None,
        messages: list[Message] | None = None,
    ) -> None:
        self.generator = generator
        self.system = system
        self.messages: list[Message] = list(messages or [])

    @property
    def has_template(self) -> bool:
        return bool(self.generator.chat_template)

    def full_messages(self, messages: list[Message] | None = None) -> list[Message]:
        msgs = self.messages if messages is None else messages
        head = [{"role": "system", "content": self.system}] if self.system else []
        return head + list(msgs)

    def render(self, messages: list[Message] | None = None, add_generation_prompt: bool = True):
        tok = self.generator.tokenizer
        return render_messages(
            self.generator.chat_template,
            self.full_messages(messages),
            add_generation_prompt=add_generation_prompt,
            bos_token=tok.bos_token,
            eos_token=tok.eos_token,
        )

    def _encode(self, messages: list[Message]) -> list[int]:
        if self.has_template:
            # the template writes BOS and other specials itself
            return self.generator.encode(self.render(messages), add_special_tokens=False)
        return self.generator.encode(self.render(messages), add_special_tokens=True)

    def prompt_ids(self, max_new_tokens: int) -> tuple[list[int], int]:
        """Token ids of the conversation, dropping the oldest turns until it fits.

        Returns (ids, number of messages dropped). The system prompt and the newest user
        message are always kept; if even they do not fit, the generator keeps the most recent
        tokens of the prompt.
        """
        ctx = self.generator.max_context
        budget = max(ctx - max_new_tokens, ctx // 2)
        msgs = list(self.messages)
        dropped = 0
        ids = self._encode(msgs)
        while len(ids) > budget and len(msgs) > 1:
            # drop the oldest exchange (a user message and the replies up to the next one)
            cut = 1
            while cut < len(msgs) - 1 and msgs[cut]["role"] != "user":
                cut += 1
            msgs = msgs[cut:]
            dropped += cut
            ids = self._encode(msgs)
        if dropped:
            self.messages = msgs
        return ids, dropped

    def _params(self, params: SamplingParams | None, overrides: dict[str, Any]) -> SamplingParams:
        p = self.generator.params(params, **overrides)
        if not self.has_template:
            extra = [s for s in PLAIN_STOP_STRINGS if s not in p.stop_strings]
            p = p.replace(stop_strings=[*p.stop_strings, *extra])
        return p

    def _reply(self, params: SamplingParams, cancel: threading.Event | None) -> Iterator[Event]:
        ids, dropped = self.prompt_ids(params.max_new_tokens)
        if dropped:
            yield NoticeEvent(
                f"the conversation no longer fits in {self.generator.max_context} tokens; "
                f"dropped the {dropped} oldest message(s)",
                kind="context_trimmed",
            )
        for ev in self.generator.stream_events(ids, params, cancel=cancel):
            if isinstance(ev, FinishEvent):
                text = ev.text.strip() if not self.has_template else ev.text
                self.messages.append({"role": "assistant", "content": text})
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
