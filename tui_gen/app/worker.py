"""The work that runs on background threads: loading the model and streaming a reply.

Nothing here touches a widget. Results go back as messages (messages.py) through a `post`
callable (the app's post_message, which is thread-safe). Tokens are batched: a message per
token would flood the event loop at hundreds of tokens per second, so text is flushed every
FLUSH_INTERVAL seconds or FLUSH_TOKENS tokens, whichever comes first, and at once when a slow
model takes longer than the interval between two tokens.

torch is imported here only inside functions, on the worker thread, so the first screen paints
before it loads.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from textual.message import Message

from tui_gen.app import tokens as token_data
from tui_gen.app.messages import (
    ModelInfo,
    ReplyChunk,
    ReplyFailed,
    ReplyFinished,
    ReplyNotice,
)
from tui_gen.engine.protocol import ChatBackend, ChatEngine, ChatMessage
from tui_gen.errors import TuiGenError
from tui_gen.remote import is_endpoint
from tui_gen.sanitize import StreamSanitizer

if TYPE_CHECKING:
    from tui_gen.app.config import AppConfig
    from tui_gen.engine.generator import Generator

FLUSH_INTERVAL = 0.03  # seconds
FLUSH_TOKENS = 64

Post = Callable[[Message], Any]


def load_generator(
    model: str,
    device: str = "auto",
    dtype: str = "auto",
    max_context: int | None = None,
    quantize: str | None = None,
    kv_cache_dtype: str = "auto",
    activations: str = "fast",
) -> Generator:
    """Load the real engine (imports torch: call it on a worker thread).

    OpenMP threads that spin while waiting for work would take the CPU the UI thread needs to
    draw and read keys (on two cores, spinning halved the decode speed and multiplied the UI's
    lag); passive waiting is set unless the user chose a policy."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from tui_gen.engine.generator import Generator

    return Generator.load(
        model,
        device=device,
        dtype=dtype,
        max_context=max_context,
        quantize=quantize,
        kv_cache_dtype=kv_cache_dtype,
        activations=activations,
    )


def open_backend(config: AppConfig) -> tuple[ChatEngine | None, ModelInfo, ChatBackend]:
    """What the app chats with (on the worker thread): a ChatSession on the local engine, or a
    RemoteChat when MODEL is an endpoint URL (tui_gen.remote.is_endpoint decides; torch is
    then never imported). Returns (local engine or None, its description, the backend)."""
    if is_endpoint(config.model):
        from tui_gen.remote.backend import RemoteChat

        remote = RemoteChat.connect(
            config.model, config.remote_model, config.api_key, max_context=config.max_context
        )
        return None, remote_info(remote), remote
    engine = load_generator(
        config.model,
        config.device,
        config.dtype,
        config.max_context,
        config.quantize,
        config.kv_cache_dtype,
        config.activations,
    )
    from tui_gen.engine.chat import ChatSession

    return engine, model_info(engine), ChatSession(engine)


def remote_info(chat: ChatBackend) -> ModelInfo:
    """Describe a remote model: its name says the model and the endpoint (so do transcripts)."""
    return ModelInfo(
        name=str(chat.name),
        device="remote",
        dtype="",
        max_context=int(chat.max_context),
        source_format="openai-api",
        chat_template=chat.has_template,
        defaults=chat.defaults.to_dict(),
    )


def model_info(engine: ChatEngine) -> ModelInfo:
    """Describe a loaded engine with plain values (tolerates stand-ins that lack some parts)."""
    loaded = getattr(engine, "loaded", None)
    defaults = engine.defaults
    cfg = getattr(engine, "config", None)
    recurrent = bool(getattr(cfg, "recurrent", False))
    trained = int(getattr(cfg, "trained_context", 0) or 0) if recurrent else 0
    return ModelInfo(
        context_note="recurrent, unbounded" if recurrent else "",
        trained_context=trained,
        name=str(engine.name),
        device=str(getattr(engine, "device", "cpu")),
        dtype=str(getattr(engine, "dtype", "float32")).removeprefix("torch."),
        max_context=int(engine.max_context),
        parameters=int(getattr(loaded, "num_parameters", 0) or 0),
        source_format=str(getattr(loaded, "source_format", "") or ""),
        quantization=quantization_label(getattr(loaded, "model", None)),
        chat_template=bool(engine.chat_template),
        defaults=defaults.to_dict(),
    )


def quantization_label(model: Any) -> str:
    """ "int8", "int4" or "" for the status bar (the engine's full description is longer)."""
    info = getattr(model, "quantization", None)
    return str(info.get("mode", "")) if isinstance(info, dict) else ""


def warm_up_highlighting() -> None:
    """Load the syntax highlighter for common languages now, on this worker thread, rather than
    in the middle of the first reply with a code block (a visible stall on a slow machine)."""
    try:
        from textual.highlight import highlight

        for language in ("python", "bash", "json", "javascript", "c", "rust", "markdown"):
            highlight("x = 1\n", language=language)
    except Exception:  # only an optimisation
        pass


class Batcher:
    """Collects streamed text and says when it is time to send it to the UI."""

    def __init__(
        self,
        interval: float = FLUSH_INTERVAL,
        max_tokens: int = FLUSH_TOKENS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = interval
        self.max_tokens = max_tokens
        self._clock = clock
        self._parts: list[str] = []
        self._tokens = 0
        self._last_flush = clock()

    def add(self, text: str, tokens: int = 1) -> None:
        if text:
            self._parts.append(text)
        self._tokens += tokens

    @property
    def pending(self) -> bool:
        return bool(self._tokens or self._parts)

    def due(self) -> bool:
        """True when the batch should go out now (enough tokens, or enough time passed)."""
        if not self.pending:
            return False
        return self._tokens >= self.max_tokens or self._clock() - self._last_flush >= self.interval

    def take(self) -> tuple[str, int]:
        """The batched text and token count; starts a new batch."""
        text, tokens = "".join(self._parts), self._tokens
        self._parts, self._tokens = [], 0
        self._last_flush = self._clock()
        return text, tokens


@dataclass(frozen=True)
class GenerationJob:
    """One request to the engine, as an immutable snapshot taken on the UI thread: the
    conversation the reply is for (read-only messages), the system prompt and the sampling
    overrides. The worker reads it and reports back only through messages; the cancel event
    is the one thing both threads share (the UI sets it, the engine checks it)."""

    gen_id: int
    kind: str  # "send" | "regenerate" | "branch"
    messages: tuple[ChatMessage, ...]
    system: str | None = None
    text: str = ""  # the message sent (kind "send"), put back in the prompt box on an error
    overrides: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    cancel: threading.Event = field(default_factory=threading.Event, compare=False)
    #: kind "branch": the reply continues after these assistant token ids (ChatBackend)
    prefix_ids: tuple[int, ...] = ()


def run_generation(
    chat: ChatBackend,
    job: GenerationJob,
    post: Post,
    *,
    interval: float = FLUSH_INTERVAL,
    max_tokens: int = FLUSH_TOKENS,
) -> ReplyFinished | ReplyFailed:
    """Stream one reply from `chat`, posting batches, then one final message.

    Runs on a worker thread and changes nothing the app owns: the job is a snapshot, and the
    reply (and how many old turns the prompt had to drop) goes back in the final message. That
    message is also returned, so a caller that waits for the thread (stop, then reset) can wrap
    up without waiting for the message queue.
    """
    from tui_gen.engine.events import FinishEvent, NoticeEvent, TokenEvent

    batcher = Batcher(interval, max_tokens)
    clean = StreamSanitizer()
    dropped = 0
    streamed: list[str] = []  # the reply so far, kept if the backend fails part-way
    reply_tokens: list[token_data.ReplyToken] = []  # the whole reply's, for the final message
    sent = 0  # how many of them a chunk carried already

    def flush() -> None:
        nonlocal sent
        text, tokens = batcher.take()
        if text or tokens:
            new = tuple(reply_tokens[sent:])
            sent = len(reply_tokens)
            post(ReplyChunk(job.gen_id, text, tokens, chat.cached_tokens, new))

    final: ReplyFinished | ReplyFailed = ReplyFailed(
        job.gen_id, "the engine ended without finishing the reply", user_error=False
    )
    try:
        params = chat.params(**job.overrides)
        # prefix_ids only when branching: a backend without branching never sees the keyword
        extra = {"prefix_ids": job.prefix_ids} if job.prefix_ids else {}
        events = chat.stream_reply(
            job.messages, params, system=job.system, cancel=job.cancel, **extra
        )
        for ev in events:
            if isinstance(ev, TokenEvent):
                streamed.append(ev.text)
                if ev.token_id >= 0:
                    reply_tokens.append(token_data.from_event(ev.token_id, ev.text, ev.logprobs))
                elif reply_tokens:  # held-back text released at the end: the last token's
                    reply_tokens[-1] = reply_tokens[-1].with_text(ev.text)
                batcher.add(clean.feed(ev.text))
                if batcher.due():
                    flush()
            elif isinstance(ev, NoticeEvent):
                flush()
                dropped += ev.dropped
                post(ReplyNotice(job.gen_id, ev.message, ev.kind))
            elif isinstance(ev, FinishEvent):
                batcher.add(clean.flush(), 0)
                flush()
                final = ReplyFinished(
                    job.gen_id,
                    ev.reason,
                    ev.text,
                    len(ev.token_ids),
                    ev.stats.to_dict(),
                    params.to_dict(),
                    chat.cached_tokens,
                    dropped,
                    tuple(reply_tokens),
                )
    except TuiGenError as e:
        batcher.add(clean.flush(), 0)
        flush()
        final = ReplyFailed(job.gen_id, str(e), user_error=True, partial="".join(streamed))
    except Exception as e:  # a bug in the engine must not take the app down
        final = ReplyFailed(job.gen_id, f"{type(e).__name__}: {e}", user_error=False)
    post(final)
    return final
