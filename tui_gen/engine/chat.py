"""Chat sessions: messages rendered with the model's template, KV reuse, context trimming.

Templates come from model files, i.e. from strangers, so they run in Jinja's immutable sandbox
(no code of theirs can run), with limits on top (:class:`_LimitedSandbox`): a render may take
RENDER_SECONDS, produce MAX_SIZE characters (strings and lists built on the way too), nest
macros MAX_DEPTH deep; `range`, `*`, `**`, `+`, `%` and the filters refuse results past those
limits before building them. Every failure is one TemplateError line naming the template.
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
import re
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


#: limits of one render (a real chat template renders in milliseconds, to a few hundred KB)
RENDER_SECONDS = 2.0
MAX_SIZE = 4_000_000  # characters of a string, items of a list
MAX_RANGE = 100_000
MAX_DEPTH = 64  # nested macro calls
MAX_INT_BITS = 4096  # integers a template may compute (a power tower stops here)
MAX_INT_ARGUMENT = 1_000_000  # widths, counts and sizes passed to functions and filters


class _Limit(Exception):
    """A template went past one of the render limits."""


class _Timeout(_Limit):
    """Raised in the rendering thread at the deadline (by _Watchdog)."""

    def __init__(self) -> None:
        super().__init__(f"took more than {RENDER_SECONDS:g} s")


class _Watchdog:
    """Interrupt the calling thread at a deadline by raising _Timeout in it (between two
    bytecodes, so a loop of template code stops however it is written); costs nothing while
    the render is on time."""

    def __init__(self, seconds: float) -> None:
        self.tid = threading.get_ident()
        self.lock = threading.Lock()
        self.active, self.fired = True, False
        self.timer = threading.Timer(seconds, self._fire)
        self.timer.daemon = True
        self.timer.start()

    def _raise(self, exc: Any) -> None:
        import ctypes

        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self.tid), exc)

    def _fire(self) -> None:
        import ctypes

        with self.lock:
            if self.active:
                self.fired = True
                self._raise(ctypes.py_object(_Timeout))

    def stop(self) -> None:
        self.timer.cancel()
        with self.lock:
            self.active = False
            if self.fired:
                self._raise(None)  # a _Timeout not raised yet must not escape later


class _State(threading.local):
    depth = 0


_state = _State()
_FORMAT_WIDTH = re.compile(r"\d{7,}")  # a printf/format width or precision of a million or more


def _size(value: Any) -> int:
    return len(value) if isinstance(value, (str, list, tuple, dict)) else 0


def _checked(value: Any) -> Any:
    if _size(value) > MAX_SIZE:
        raise _Limit(f"built a value of more than {MAX_SIZE:,} characters or items")
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise _Limit(f"computed an integer of more than {MAX_INT_BITS} bits")
    return value


def _check_arguments(args: Sequence[Any], kwargs: dict[str, Any]) -> None:
    for a in (*args, *kwargs.values()):
        if isinstance(a, int) and not isinstance(a, bool) and abs(a) > MAX_INT_ARGUMENT:
            raise _Limit(f"passed {a} to a function (at most {MAX_INT_ARGUMENT:,})")
        if isinstance(a, str) and _FORMAT_WIDTH.search(a) and ("%" in a or "{" in a):
            raise _Limit("used a format width of a million or more")


def _check_replace(text: Any, old: Any, new: Any) -> None:
    """str.replace (the method or the filter) can square a string's length: check first."""
    if isinstance(text, str) and isinstance(old, str) and isinstance(new, str):
        grow = (len(new) - len(old)) * (text.count(old) if old else len(text) + 1)
        if len(text) + grow > MAX_SIZE:
            raise _Limit(f"built a value of more than {MAX_SIZE:,} characters or items")


def _limited_range(*args: int) -> range:
    r = range(*args)
    if len(r) > MAX_RANGE:
        raise _Limit(f"asked for a range of {len(r):,} numbers (at most {MAX_RANGE:,})")
    return r


def _limited_join(seq: Any) -> str:
    """Jinja's `~` (str_join/markup_join), with the size checked before the join."""
    parts = [str(x) for x in seq]
    if sum(map(len, parts)) > MAX_SIZE:
        raise _Limit(f"built a value of more than {MAX_SIZE:,} characters or items")
    return "".join(parts)


def _binop_size(op: str, left: Any, right: Any) -> None:
    """Refuse an operation whose result would be past the limits, before computing it."""
    ints = isinstance(left, int) and isinstance(right, int)
    if op == "*":
        if isinstance(right, int) and _size(left) * abs(right) > MAX_SIZE:
            raise _Limit(f"built a value of more than {MAX_SIZE:,} characters or items")
        if isinstance(left, int) and _size(right) * abs(left) > MAX_SIZE:
            raise _Limit(f"built a value of more than {MAX_SIZE:,} characters or items")
        if ints and left.bit_length() + right.bit_length() > MAX_INT_BITS:
            raise _Limit(f"computed an integer of more than {MAX_INT_BITS} bits")
    elif op == "**" and ints and right > 0 and left not in (0, 1, -1):
        if left.bit_length() * right > MAX_INT_BITS:
            raise _Limit(f"computed an integer of more than {MAX_INT_BITS} bits")
    elif op == "+" and _size(left) + _size(right) > MAX_SIZE:
        raise _Limit(f"built a value of more than {MAX_SIZE:,} characters or items")
    elif op == "%" and isinstance(left, str) and _FORMAT_WIDTH.search(left):
        raise _Limit("used a format width of a million or more")


def _limited_filter(f: Any) -> Any:
    def call(*args: Any, **kwargs: Any) -> Any:
        _check_arguments(args[1:], kwargs)
        if args and isinstance(args[0], str) and _FORMAT_WIDTH.search(args[0]):
            _check_arguments(args[:1], {})  # the value is the format string of `format`
        if f.__name__ in ("do_join", "sync_do_join") and args:
            items = list(args[1]) if len(args) > 1 else []
            if sum(len(str(x)) for x in items[: MAX_SIZE + 1]) > MAX_SIZE:
                raise _Limit(f"built a value of more than {MAX_SIZE:,} characters or items")
            args = (args[0], items, *args[2:])
        if f.__name__ == "do_replace" and len(args) >= 4:
            _check_replace(*args[1:4])
        return _checked(f(*args, **kwargs))

    for attr in ("jinja_pass_arg",):  # @pass_context / @pass_environment markers
        if hasattr(f, attr):
            setattr(call, attr, getattr(f, attr))
    return call


def _environment() -> Any:
    from jinja2.runtime import Macro
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class _LimitedSandbox(ImmutableSandboxedEnvironment):
        """The immutable sandbox with limits on time, size and macro depth."""

        intercepted_binops = frozenset({"*", "**", "+", "%", "//", "/"})

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            _binop_size(operator, left, right)
            return _checked(super().call_binop(context, operator, left, right))

        def getattr(self, obj: Any, attribute: str) -> Any:
            if isinstance(obj, str) and attribute in ("format", "format_map"):
                _check_arguments((obj,), {})  # "{:>9999999999}".format(...)
            return super().getattr(obj, attribute)

        def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
            _check_arguments(args, kwargs)
            bound = getattr(__obj, "__self__", None)
            name = getattr(__obj, "__name__", None)
            if isinstance(bound, str) and name == "replace" and len(args) >= 2:
                _check_replace(bound, *args[:2])
            if name == "join" and isinstance(bound, str):
                items = [str(x) for x in args[0]] if args else []
                if sum(map(len, items)) > MAX_SIZE:
                    raise _Limit(f"built a value of more than {MAX_SIZE:,} characters or items")
                args = (items, *args[1:])
            if not isinstance(__obj, Macro):
                return _checked(super().call(__context, __obj, *args, **kwargs))
            if _state.depth >= MAX_DEPTH:
                raise _Limit(f"nested macros more than {MAX_DEPTH} deep")
            _state.depth += 1
            try:
                return _checked(super().call(__context, __obj, *args, **kwargs))
            finally:
                _state.depth -= 1

    env = _LimitedSandbox(
        trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
    )
    env.filters = {name: _limited_filter(f) for name, f in env.filters.items()}
    env.filters["tojson"] = _limited_filter(_tojson)
    env.globals["range"] = _limited_range
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env


@lru_cache(maxsize=16)
def _compile(template: str) -> Any:
    from jinja2 import TemplateSyntaxError

    try:
        t = _environment().from_string(template)
    except TemplateSyntaxError as e:
        raise TemplateError(f"the model's chat template is not valid Jinja ({e})") from None
    except RecursionError:
        raise TemplateError("the model's chat template is nested too deeply to compile") from None
    # `~` joins through these names of the compiled module: check the size they build
    t.root_render_func.__globals__.update(str_join=_limited_join, markup_join=_limited_join)
    return t


def _render(t: Any, variables: dict[str, Any]) -> str:
    """Render with the limits: a deadline (a watchdog interrupts the render), the output size
    and the macro depth."""
    _state.depth = 0
    watchdog = _Watchdog(RENDER_SECONDS)
    try:
        out: list[str] = []
        size = 0
        for piece in t.generate(**variables):
            size += len(piece)
            if size > MAX_SIZE:
                raise _Limit(f"wrote more than {MAX_SIZE:,} characters")
            out.append(piece)
        return "".join(out)
    finally:
        watchdog.stop()


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
    variables = {
        "messages": messages,
        "add_generation_prompt": add_generation_prompt,
        "bos_token": bos_token or "",
        "eos_token": eos_token or "",
    }
    try:
        return _render(_compile(template), variables)
    except TemplateError:
        raise
    except _Limit as e:
        raise TemplateError(f"the model's chat template was stopped: it {e}") from None
    except RecursionError:
        raise TemplateError(
            "the model's chat template failed to render (it recursed too deeply)"
        ) from None
    except MemoryError:
        raise TemplateError("the model's chat template failed to render (out of memory)") from None
    except Exception as e:  # anything a template can raise: ZeroDivisionError, OverflowError...
        raise TemplateError(
            f"the model's chat template failed to render ({type(e).__name__}: {e})"
        ) from None


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
        prefix_ids: Sequence[int] = (),
        **overrides: Any,
    ) -> Iterator[Event]:
        """Stream the reply to `messages` (with `system`, not this session's own prompt).

        Reads `messages` once, before the first event, and never changes it or this session's
        conversation. When the oldest turns do not fit, a NoticeEvent of kind
        "context_trimmed" says how many were `dropped`. The FinishEvent's text is the reply as
        it belongs in the conversation (stripped in the plain format).

        `prefix_ids` branch the reply: the prompt is the rendered conversation plus these
        assistant ids, so the engine's KV cache reuses everything up to the branch point; the
        TokenEvents are the new tokens, the FinishEvent the whole reply (protocol.py)."""
        p = self._params(params, overrides)
        prefix = [int(t) for t in prefix_ids]
        ids, dropped = self.fit(messages, p.max_new_tokens + len(prefix), system)
        if dropped:
            yield NoticeEvent(
                f"the conversation no longer fits in {self.generator.max_context} tokens; "
                f"dropped the {dropped} oldest message(s)",
                kind="context_trimmed",
                dropped=dropped,
            )
        # engines without branching (test doubles, benchmarks' fakes) never see the keyword
        branch = {"prefix_ids": prefix} if prefix else {}
        for ev in self.generator.stream_events(ids, p, cancel=cancel, **branch):
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
