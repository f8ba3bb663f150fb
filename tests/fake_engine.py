"""A stand-in for tui_gen.engine.generator.Generator with the small surface the app uses.

Deterministic (scripted replies, fixed stats) and controllable from a test: it can pause after
N tokens until released, or raise. It mirrors the real engine's contract: the cancel event is
checked before every step after the first, one generation at a time, FinishEvent last.
The real SamplingParams and ChatSession are used with it.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from tui_gen.engine.events import (
    Event,
    FinishEvent,
    FinishReason,
    GenerationStats,
    TokenAlternative,
    TokenEvent,
    TokenLogprobs,
)
from tui_gen.errors import TuiGenError
from tui_gen.options import SamplingParams

RECIPE = (
    "Here is a quick **pancake** batter:\n\n"
    "1. Whisk 2 eggs with 250 ml milk.\n"
    "2. Fold in 125 g flour and a pinch of salt.\n"
    "3. Rest it for 10 minutes.\n\n"
    "```python\nfor pan in range(4):\n    print('flip', pan)\n```\n\n"
    "Serve warm with lemon."
)


#: the chosen token's probability at step i is CHOSEN_P[i % 4] (a spread the heat map shades)
CHOSEN_P = (0.92, 0.55, 0.3, 0.04)
ALT_BASE = 10000  #: alternative k is the token ALT_BASE + k, text f" alt{k}"


def alt_text(k: int) -> str:
    return f" alt{k}"


def fake_logprobs(token_id: int, text: str, step: int, n: int) -> TokenLogprobs:
    """A deterministic distribution for step `step`: the token itself with CHOSEN_P, the rest
    spread over " alt1", " alt2", ... halving each time (90% of what is left; 10% is the tail
    nobody sees); the top n, most likely first."""
    p0 = CHOSEN_P[step % len(CHOSEN_P)]
    rest = (1 - p0) * 0.9
    weights = [0.5**k for k in range(1, 21)]
    alts = [(ALT_BASE + k, alt_text(k), rest * w / sum(weights)) for k, w in enumerate(weights, 1)]
    ranked = sorted([(token_id, text, p0), *alts], key=lambda a: -a[2])[:n]
    top = tuple(TokenAlternative(i, t, math.log(p)) for i, t, p in ranked)
    return TokenLogprobs(token_id, text, math.log(p0), top, math.log(p0), top)


class FakeTokenizer:
    bos_token = "<s>"
    eos_token = "</s>"


class FakeEngine:
    """Replies with scripted text, one word (with its trailing space) per token."""

    def __init__(
        self,
        replies: list[str] | None = None,
        *,
        name: str = "fake-chef",
        max_context: int = 2048,
        chat_template: str | None = None,
        pause_after: int | None = None,
        error: Exception | None = None,
    ) -> None:
        self.name = name
        self.device = "cpu"
        self.dtype = "float32"
        self.max_context = max_context
        self.chat_template = chat_template
        self.tokenizer = FakeTokenizer()
        self.defaults = SamplingParams(temperature=0.7, top_k=40, top_p=0.9, max_new_tokens=512)
        self.replies = list(replies or [RECIPE])
        self.pause_after = pause_after
        self.error = error
        self.paused = threading.Event()  # set when the stream reached pause_after
        self.resume = threading.Event()  # set by the test to continue
        #: params, prompt size and prompt text (as the chat session rendered it) of every generation
        self.calls: list[dict[str, Any]] = []
        self._last_text = ""
        self.resets = 0
        self.yielded = 0  # TokenEvents yielded in total
        self._cached = 0
        self._busy = threading.Lock()
        self._reply_index = 0
        #: token id -> text of every token it produced (alternatives: ALT_BASE + k)
        self.vocab: dict[int, str] = {ALT_BASE + k: alt_text(k) for k in range(1, 21)}

    @property
    def cached_tokens(self) -> int:
        return self._cached

    def params(self, params: SamplingParams | None = None, **overrides: Any) -> SamplingParams:
        base = params if params is not None else self.defaults
        return base.replace(**overrides)

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        self._last_text = text  # the chat session encodes the prompt it sends last
        return list(range(len(text.split()) + int(add_special_tokens)))

    def reset(self) -> None:
        self.resets += 1
        self._cached = 0

    def next_reply(self) -> str:
        reply = self.replies[self._reply_index % len(self.replies)]
        self._reply_index += 1
        return reply

    def stream_events(
        self,
        prompt: list[int],
        params: SamplingParams,
        *,
        cancel: threading.Event | None = None,
        prefix_ids: Sequence[int] = (),
    ) -> Iterator[Event]:
        """`prefix_ids` (a branch) stand for the first len(prefix_ids) pieces of the next
        scripted reply: the stream continues with the pieces after them, and the FinishEvent
        covers the whole reply (as the real engine's does)."""
        if not self._busy.acquire(blocking=False):
            raise TuiGenError("a generation is already running on this model; stop it first")
        try:
            # subclasses that override _run(ids, p, cancel) keep working without a branch
            branch = (list(prefix_ids),) if prefix_ids else ()
            yield from self._run(list(prompt), params, cancel, *branch)
        finally:
            self._busy.release()

    def _run(
        self,
        ids: list[int],
        p: SamplingParams,
        cancel: threading.Event | None,
        prefix: list[int] | None = None,
    ) -> Iterator[Event]:
        prefix = prefix or []
        self.calls.append(
            {
                "params": p.to_dict(),
                "prompt_tokens": len(ids),
                "prompt": self._last_text,
                "prefix_ids": prefix,
            }
        )
        if self.error is not None:
            raise self.error
        pieces = re.findall(r"\S+\s*|\s+", self.next_reply())
        self._cached = len(ids) + len(prefix)
        text, generated = "".join(pieces[: len(prefix)]), list(prefix)
        reason: FinishReason = "eos"
        for i, piece in enumerate(pieces[len(prefix) :], len(prefix)):
            if i - len(prefix) >= p.max_new_tokens:
                reason = "length"
                break
            if i and cancel is not None and cancel.is_set():
                reason = "cancelled"
                break
            if self.pause_after is not None and i == self.pause_after:
                self.paused.set()
                self._hold(cancel)
            generated.append(i)
            text += piece
            self._cached += 1
            self.yielded += 1
            self.vocab[i] = piece
            lp = fake_logprobs(i, piece, i, p.logprobs) if p.logprobs else None
            yield TokenEvent(i, piece, logprobs=lp)
        n = len(generated) - len(prefix)
        stats = GenerationStats(
            prompt_tokens=len(ids),
            prefill_tokens=len(ids),
            generated_tokens=n,
            time_to_first_token=0.125,
            prefill_seconds=0.1,
            decode_seconds=(n - 1) / 40 if n > 1 else 0.0,
        )
        yield FinishEvent(reason, text, generated, stats)

    def _hold(self, cancel: threading.Event | None) -> None:
        """The paused step: it lasts until the test resumes it or the app cancels (the app does
        on exit, so an app that quits mid-reply never waits out the safety net)."""
        deadline = time.monotonic() + 30  # a safety net against a hung test only
        while not self.resume.wait(timeout=0.01):
            if (cancel is not None and cancel.is_set()) or time.monotonic() > deadline:
                return


class BranchingChat:
    """A ChatBackend with the branching contract the engine is getting: stream_reply(...,
    prefix_ids) continues the reply after those assistant token ids; its TokenEvents cover only
    the new tokens; the FinishEvent has the whole reply's text and ids. Over a ChatSession on a
    FakeEngine (everything else is the session's); the continuation is `continuation`, word by
    word, with token ids from CONTINUATION_BASE."""

    CONTINUATION_BASE = 20000

    def __init__(self, chat: Any, continuation: str = "and then serve it warm.") -> None:
        self._chat = chat
        self.continuation = continuation
        #: (messages, prefix_ids) of every branched request
        self.branches: list[tuple[list[dict[str, str]], tuple[int, ...]]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._chat, name)

    def stream_reply(
        self,
        messages: Sequence[Any],
        params: SamplingParams | None = None,
        *,
        system: str | None = None,
        cancel: threading.Event | None = None,
        prefix_ids: Sequence[int] = (),
    ) -> Iterator[Event]:
        if not prefix_ids:
            yield from self._chat.stream_reply(messages, params, system=system, cancel=cancel)
            return
        engine = self._chat.generator
        self.branches.append(([dict(m) for m in messages], tuple(prefix_ids)))
        p = params or engine.defaults
        text = "".join(engine.vocab[i] for i in prefix_ids)
        ids = list(prefix_ids)
        for j, piece in enumerate(" " + word for word in self.continuation.split()):
            if j and cancel is not None and cancel.is_set():
                break
            token_id = self.CONTINUATION_BASE + j
            engine.vocab[token_id] = piece
            ids.append(token_id)
            text += piece
            lp = fake_logprobs(token_id, piece, j, p.logprobs) if p.logprobs else None
            yield TokenEvent(token_id, piece, logprobs=lp)
        stats = GenerationStats(generated_tokens=len(ids) - len(prefix_ids), decode_seconds=0.1)
        yield FinishEvent("eos", text, ids, stats)


def branching(app: Any, continuation: str = "and then serve it warm.") -> BranchingChat:
    """Put a BranchingChat in front of the loaded app's chat session (call after ready())."""
    chat = BranchingChat(app.chat, continuation)
    app.chat = chat
    return chat


# --- helpers for pilot tests ---------------------------------------------------------------------


async def wait_until(pilot: Any, predicate: Any, what: str = "a condition", timeout: float = 20):
    """Let the app run until `predicate()` is true. The timeout is only a safety net against a
    hung test, never what a test checks."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.01)


def make_app(
    tmp_path: Any,
    engine: Any = None,
    *,
    factory: Any = None,
    flush_interval: float | None = None,
    **config: Any,
) -> Any:
    """A TuiGenApp on `engine` (a FakeEngine by default) with its files under tmp_path.
    `flush_interval=0` sends every token to the UI at once (so a paused engine's tokens are
    already on screen)."""
    from tui_gen.app.app import AppConfig, TuiGenApp
    from tui_gen.app.settings import Settings

    engine = engine if engine is not None else FakeEngine()
    config.setdefault("transcripts", str(tmp_path / "transcripts"))
    app = TuiGenApp(
        AppConfig(model=config.pop("model", "models/fake-chef"), **config),
        engine_factory=factory or (lambda: engine),
        settings=Settings.load(tmp_path / "config" / "settings.json"),
        flush_interval=flush_interval,
    )
    app.fake = engine  # type: ignore[attr-defined]
    return app


def model_messages(app: Any) -> list[dict[str, str]]:
    """The messages the app's next request sends the model (derived from its history)."""
    return [dict(m) for m in app.history.request_messages()]


def model_prompt(app: Any) -> str:
    """The prompt text the app's next request sends the model (before the generation prompt
    is added, the newest user message included)."""
    return app.chat.render(app.history.request_messages(), system=app.history.system)


async def ready(pilot: Any) -> None:
    """Wait until the model is loaded (a remote model has a backend but no local engine)."""
    app = pilot.app
    await wait_until(pilot, lambda: app.chat is not None or app.load_error, "the model")


async def send(pilot: Any, text: str) -> None:
    """Type `text` in the prompt box and press Enter."""
    app = pilot.app
    app.prompt.focus()
    app.prompt.insert(text)
    await pilot.press("enter")


async def reply(pilot: Any, text: str) -> None:
    """Send `text` and wait until the reply has finished."""
    app = pilot.app
    before = sum(t.role == "assistant" for t in app.conversation.turns)
    await send(pilot, text)
    await wait_until(
        pilot,
        lambda: (
            not app.generating
            and sum(t.role == "assistant" for t in app.conversation.turns) > before
        ),
        "the reply",
    )


@pytest.fixture(autouse=False)
def isolated_dirs(tmp_path: Any, monkeypatch: Any) -> Any:
    """Point the config and data folders at tmp_path (import this fixture into a test module)."""
    monkeypatch.setenv("TUI_GEN_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("TUI_GEN_DATA_DIR", str(tmp_path / "data"))
    return tmp_path
