"""Messages the background threads post to the app (all of them, in one place).

The model loads and generates on worker threads; they never touch widgets. They post these
messages (Textual's post_message is thread-safe and keeps order), and the app updates the
screen on its own thread. Every reply message carries the `gen_id` of its generation, so
messages from a generation the user already stopped and replaced are recognised and dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from textual.message import Message

from tui_gen.app.tokens import ReplyToken
from tui_gen.engine.protocol import ChatBackend, ChatEngine


@dataclass(frozen=True)
class ModelInfo:
    """What the status bar and transcripts say about the loaded model (plain strings)."""

    name: str
    device: str = "cpu"
    dtype: str = "float32"
    max_context: int = 2048
    parameters: int = 0
    source_format: str = ""
    quantization: str = ""  #: "int8" | "int4" | "" (float weights)
    chat_template: bool = False
    defaults: dict[str, Any] = field(default_factory=dict)
    #: recurrent models (BDH): "recurrent, unbounded" and the length trained on, if known
    context_note: str = ""
    trained_context: int = 0


@dataclass(eq=False)
class EngineLoaded(Message):
    """The model is ready: `engine` is the Generator (or a stand-in with the same surface) and
    `chat` the ChatBackend the app talks to, a ChatSession on it (made on the worker thread,
    where importing it costs nothing). A remote model has no local engine (None): `chat` is
    a RemoteChat (tui_gen/remote)."""

    engine: ChatEngine | None
    info: ModelInfo
    chat: ChatBackend


@dataclass(eq=False)
class EngineFailed(Message):
    """The model could not be loaded; `error` is one line for the user."""

    error: str


@dataclass(eq=False)
class ReplyChunk(Message):
    """A batch of streamed reply text (already sanitized) and how many tokens it holds;
    `token_data`: those tokens with what the model weighed (tokens.py), for the inspector."""

    gen_id: int
    text: str
    tokens: int
    context_used: int
    token_data: tuple[ReplyToken, ...] = ()


@dataclass(eq=False)
class ReplyNotice(Message):
    """Something the engine wants the user to know mid-reply (e.g. old turns were dropped)."""

    gen_id: int
    message: str
    kind: str


@dataclass(eq=False)
class ReplyFinished(Message):
    """The reply ended (eos, stop, length or cancelled). `text` is the reply as the
    conversation stores it (not sanitized); `stats` and `params` are plain dicts."""

    gen_id: int
    reason: str
    text: str
    tokens: int
    stats: dict[str, Any]
    params: dict[str, Any]
    context_used: int
    #: how many of the oldest messages the prompt had to leave out (the context was full)
    dropped: int = 0
    #: every new token of the reply (a branch's kept prefix is not repeated here)
    token_data: tuple[ReplyToken, ...] = ()


@dataclass(eq=False)
class ReplyFailed(Message):
    """The engine raised; the app rolls the conversation back to before the request, unless
    part of the reply had already streamed in (`partial`, e.g. a remote stream that was cut):
    then that part is kept as the reply, marked as failed."""

    gen_id: int
    error: str
    user_error: bool = True
    partial: str = ""
