"""What a front end needs of an engine, as Protocols: torch-free, so the app may import them.

Two levels:

* `ChatBackend` is what the app talks to: messages in, an event stream out (events.py),
  stopped through a `threading.Event`, plus the context size, token counting, the sampling
  defaults and the model's name. `ChatSession` (chat.py) over a local `Generator` is one; a
  remote backend (an OpenAI-compatible HTTP client) is meant to be another. It holds no
  conversation of its own: every call gets the whole conversation, and the caller owns it.
* `ChatEngine` is what a `ChatSession` needs of a local engine: token ids in, events out, a
  KV cache that reuses the longest prefix it already holds. `Generator` is one, and so is the
  tests' FakeEngine.

Nothing here mentions tensors; tokens are plain ints.

Branching ("regenerate from this alternative"): `stream_reply(..., prefix_ids=[...])` continues
a reply after some of its tokens (those kept and a chosen alternative, ids from the TokenEvents
of an earlier reply). Only a local model can: a backend that cannot raises BranchingUnavailable.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from tui_gen.engine.events import Event
from tui_gen.errors import TuiGenError
from tui_gen.options import SamplingParams

#: one chat message: {"role": "system" | "user" | "assistant", "content": text}. Read-only: a
#: backend copies what it needs and never changes the caller's messages.
ChatMessage = Mapping[str, str]


class BranchingUnavailable(TuiGenError):
    """stream_reply got prefix_ids but the backend cannot continue a reply from token ids."""

    def __init__(self, message: str = "branching needs a local model") -> None:
        super().__init__(message)


class TokenizerInfo(Protocol):
    """The special tokens a chat template may write."""

    @property
    def bos_token(self) -> str | None: ...

    @property
    def eos_token(self) -> str | None: ...


@runtime_checkable
class ChatEngine(Protocol):
    """A local engine under a ChatSession (one generation at a time; not thread-safe)."""

    @property
    def name(self) -> str: ...

    @property
    def max_context(self) -> int: ...

    @property
    def chat_template(self) -> str | None: ...

    @property
    def tokenizer(self) -> TokenizerInfo: ...

    @property
    def defaults(self) -> SamplingParams: ...

    @property
    def cached_tokens(self) -> int:
        """Positions of the KV cache that hold the last prompt and reply."""
        ...

    def params(self, params: SamplingParams | None = None, **overrides: Any) -> SamplingParams:
        """The defaults, then `params`, then keyword overrides (validated)."""
        ...

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]: ...

    def reset(self) -> None:
        """Forget what the KV cache holds."""
        ...

    def stream_events(
        self,
        prompt: list[int],
        params: SamplingParams,
        *,
        cancel: threading.Event | None = None,
        prefix_ids: Sequence[int] = (),
    ) -> Iterator[Event]:
        """TokenEvents (and NoticeEvents), then exactly one FinishEvent; `cancel` stops it
        before the next model step. `prefix_ids` already belong to the reply (see
        Generator.stream_events): the FinishEvent covers them, the TokenEvents do not."""
        ...


@runtime_checkable
class ChatBackend(Protocol):
    """What the app needs to chat with a model (local or remote)."""

    @property
    def name(self) -> str: ...

    @property
    def max_context(self) -> int:
        """Tokens the model's context holds (prompt and reply together)."""
        ...

    @property
    def defaults(self) -> SamplingParams:
        """The model's own sampling values."""
        ...

    @property
    def has_template(self) -> bool:
        """True when the model brings its own chat format."""
        ...

    @property
    def cached_tokens(self) -> int:
        """Tokens of context the last reply used (0 after reset)."""
        ...

    def params(self, params: SamplingParams | None = None, **overrides: Any) -> SamplingParams: ...

    def count_tokens(self, messages: Sequence[ChatMessage], system: str | None = None) -> int:
        """How many tokens the conversation takes as a prompt."""
        ...

    def stream_reply(
        self,
        messages: Sequence[ChatMessage],
        params: SamplingParams | None = None,
        *,
        system: str | None = None,
        cancel: threading.Event | None = None,
        prefix_ids: Sequence[int] = (),
    ) -> Iterator[Event]:
        """The assistant's next reply to `messages` (the last is usually the user's).

        Yields TokenEvents, NoticeEvents (one of kind "context_trimmed", with `dropped` set,
        when the oldest messages did not fit) and exactly one FinishEvent, whose text is the
        reply as it belongs in the conversation. Never changes `messages`.

        With `prefix_ids` the reply continues after these assistant token ids (a branch: the
        kept tokens of an earlier reply plus a chosen alternative); the TokenEvents cover only
        the new tokens, the FinishEvent's text and token_ids the whole reply. A backend that
        cannot branch raises BranchingUnavailable ("branching needs a local model")."""
        ...

    def reset(self) -> None:
        """Forget any cached state (the next reply starts from an empty cache)."""
        ...
