"""The life of one reply, as the app sees it: start the worker, show batches, wrap up.

The base class of TuiGenApp (it declares what it uses of the app: the history, the widgets and
autosave), kept apart because it is the one part with threads in it. The rules:

* one generation at a time; `_generation` is it, until its screen is final;
* every message carries its generation's id, and messages from a generation that was already
  wrapped up (stopped, then reset) are dropped;
* a generation ends in exactly one place, `_wrap_up`: from its final message, or from
  `_stop_and_wait`, which cancels, waits for the thread (at most one model step) and uses the
  final message the worker returned, so reset/regenerate/quit never race the thread;
* the worker gets an immutable snapshot of the conversation (GenerationJob) and changes
  nothing the app owns; the reply goes into the History when its final message arrives;
* an engine error rolls the conversation back to before the request and says why; when part
  of the reply had already arrived (a remote stream cut mid-way), that part is kept as the
  reply, marked "error".
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from functools import partial
from types import MappingProxyType
from typing import Any

from textual.app import App
from textual.worker import Worker

from tui_gen.app import gcpause
from tui_gen.app.config import AppConfig
from tui_gen.app.history import Checkpoint, History
from tui_gen.app.messages import ReplyChunk, ReplyFailed, ReplyFinished, ReplyNotice
from tui_gen.app.params import Number, to_overrides
from tui_gen.app.tokens import ReplyToken, has_data
from tui_gen.app.transcripts.store import Branch, Conversation, Turn, now_iso, stats_line
from tui_gen.app.widgets.chat_view import ChatView, ReplyTurn
from tui_gen.app.widgets.prompt import PromptInput
from tui_gen.app.widgets.status import StatusBar
from tui_gen.app.worker import FLUSH_INTERVAL, GenerationJob, run_generation
from tui_gen.engine.protocol import ChatBackend
from tui_gen.sanitize import sanitize

#: how often a reply that is still streaming is saved (so a crash keeps most of it)
PARTIAL_SAVE_INTERVAL = 2.0
#: how long after a reply the deferred full garbage collection runs
GC_DELAY = 1.0


@dataclass
class _Generation:
    """The reply being generated: its job, worker and widget."""

    job: GenerationJob
    worker: Worker[ReplyFinished | ReplyFailed]
    reply: ReplyTurn
    before: Checkpoint  #: the history to go back to if the engine fails
    started: float = field(default_factory=time.monotonic)
    tokens: int = 0
    last_save: float = field(default_factory=time.monotonic)
    ending: bool = False
    #: kind "branch": the kept tokens (the chosen alternative last) and the branch point
    prefix: tuple[ReplyToken, ...] = ()
    branch: Branch | None = None


#: how long an action (reset, regenerate, edit, reopen) waits for a reply to stop
STOP_WAIT = 5.0


class GenerationMixin(App[int]):
    """The reply lifecycle of TuiGenApp, and the parts of the app it uses."""

    config: AppConfig
    history: History
    chat: ChatBackend | None
    sampling: dict[str, Number]
    _flush_interval: float | None
    _generation: _Generation | None = None
    _gen_counter: int = 0

    @property
    def conversation(self) -> Conversation:
        """The open conversation, as saved (the History changes it)."""
        return self.history.conversation

    @property
    def chat_view(self) -> ChatView:
        return self.query_one(ChatView)

    @property
    def prompt(self) -> PromptInput:
        return self.query_one(PromptInput)

    @property
    def status(self) -> StatusBar:
        return self.query_one(StatusBar)

    def _model_label(self) -> str:
        raise NotImplementedError

    def _save(self, partial_reply: str | None = None) -> None:
        raise NotImplementedError

    async def _render_conversation(self) -> None:
        raise NotImplementedError

    @property
    def generating(self) -> bool:
        """True from the request until the reply's final text is on screen."""
        return self._generation is not None

    def _logprobs_wanted(self) -> int:
        """How many alternatives per token to ask the engine for (0: none)."""
        return 0

    def _reply_tokens_arrived(self, reply: ReplyTurn) -> None:
        """More token data for the reply being generated (the inspector follows it)."""

    def _overrides(self) -> dict[str, Any]:
        o: dict[str, Any] = to_overrides(self.sampling)
        logprobs = self._logprobs_wanted()
        if logprobs:
            o["logprobs"] = logprobs
        if self.config.stop:
            o["stop_strings"] = list(self.config.stop)
        if self.config.seed is not None:
            o["seed"] = self.config.seed + self._gen_counter  # reproducible, yet regenerate varies
        return o

    async def _start(
        self,
        kind: str,
        text: str = "",
        *,
        prefix: tuple[ReplyToken, ...] = (),
        branch: Branch | None = None,
    ) -> None:
        """Ask for a reply to the history as it is (kind "send": its last turn is the message
        just sent), for a new version of the last reply (kind "regenerate"), or for the last
        reply continued after `prefix`, its kept tokens with the chosen alternative last (kind
        "branch"; `branch` says where, and keeps the original)."""
        assert self.chat is not None
        self._gen_counter += 1
        # what the history goes back to if the engine fails: without the new message, or
        # with the reply that was being regenerated
        before = self.history.checkpoint(drop_last=kind == "send")
        if kind in ("regenerate", "branch"):
            self.history.take_reply()
            await self.chat_view.remove_last(1)
        job = GenerationJob(
            self._gen_counter,
            kind,
            self.history.request_messages(),
            self.history.system,
            text,
            MappingProxyType(self._overrides()),
            prefix_ids=tuple(t.token_id for t in prefix),
        )
        kept = "".join(t.text for t in prefix)
        reply = await self.chat_view.add_reply(self._model_label(), kept, tokens=prefix)
        reply.start()
        interval = FLUSH_INTERVAL if self._flush_interval is None else self._flush_interval
        worker = self.run_worker(
            partial(run_generation, self.chat, job, self.post_message, interval=interval),
            thread=True,
            group="generate",
            name=f"generate-{job.gen_id}",
            exit_on_error=False,
        )
        self._generation = _Generation(job, worker, reply, before, prefix=prefix, branch=branch)
        gcpause.defer_full_collections()
        self.status.state = "generating"
        self.status.speed = "waiting for the first token…"
        self._save()

    def _current(self, gen_id: int) -> _Generation | None:
        """The running generation if `gen_id` is it and it is not being wrapped up."""
        g = self._generation
        return g if g is not None and g.job.gen_id == gen_id and not g.ending else None

    async def on_reply_chunk(self, message: ReplyChunk) -> None:
        g = self._current(message.gen_id)
        if g is None:
            return  # from a generation that was stopped and already wrapped up
        g.tokens += message.tokens
        if message.token_data:  # first: with the heat map on, the Markdown then waits
            g.reply.add_tokens(message.token_data)
            self._reply_tokens_arrived(g.reply)
        await g.reply.append(message.text)
        self.status.context_used = message.context_used
        self.status.speed = f"{g.tokens} tokens…"
        now = time.monotonic()
        if now - g.last_save >= PARTIAL_SAVE_INTERVAL:
            g.last_save = now
            self._save(partial_reply=g.reply.streamed_text)

    def on_reply_notice(self, message: ReplyNotice) -> None:
        if self._current(message.gen_id) is not None:
            self.notify(sanitize(message.message), title="Context", severity="warning")

    async def on_reply_finished(self, message: ReplyFinished) -> None:
        await self._wrap_up(message)

    async def on_reply_failed(self, message: ReplyFailed) -> None:
        await self._wrap_up(message)

    async def _wrap_up(self, message: ReplyFinished | ReplyFailed) -> None:
        """The one place a generation ends (from its message, or from _stop_and_wait)."""
        g = self._current(message.gen_id)
        if g is None:
            return
        g.ending = True
        try:
            if isinstance(message, ReplyFailed) and message.partial:
                await self._keep_partial(g, message)
            elif isinstance(message, ReplyFailed):
                await self._roll_back(g, message)
            else:
                await self._record_reply(g, message)
        finally:
            self._generation = None  # only now: `generating` is true until the screen is final
        self._save()
        gcpause.restore()
        self.set_timer(GC_DELAY, self._collect_if_idle)

    def _collect_if_idle(self) -> None:
        if not self.generating:
            gcpause.collect()

    async def _record_reply(self, g: _Generation, message: ReplyFinished) -> None:
        stopped = message.reason == "cancelled"
        tokens = g.prefix + message.token_data
        turn = Turn(
            "assistant",
            message.text,
            now_iso(),
            finish_reason=message.reason,
            params=message.params,
            stats=message.stats,
            model=self._model_label(),
            tokens=tokens if has_data(tokens) else None,
            branch=g.branch,
        )
        self.history.add_reply(turn, message.dropped)
        await g.reply.finish(message.text, stats_line(turn), stopped=stopped)
        g.reply.set_tokens(tokens)
        self._reply_tokens_arrived(g.reply)
        stats = message.stats
        tps = float(stats.get("decode_tokens_per_second") or 0.0)
        ttft = float(stats.get("time_to_first_token") or 0.0)
        self.status.speed = f"{tps:.1f} tok/s · first token {ttft:.2f} s"
        self.status.context_used = message.context_used
        self.status.state = "stopped" if stopped else "ready"

    async def _keep_partial(self, g: _Generation, message: ReplyFailed) -> None:
        """The backend failed part-way (a remote stream was cut): keep what arrived as the
        reply, marked "error", and say why."""
        turn = Turn(
            "assistant",
            message.partial,
            now_iso(),
            finish_reason="error",
            params=None,
            stats=None,
            model=self._model_label(),
        )
        self.history.add_reply(turn, 0)
        await g.reply.finish(message.partial, stats_line(turn), stopped=True)
        self.status.state = "ready"
        self.status.speed = ""
        self.notify(
            sanitize(message.error), title="Generation failed", severity="error", timeout=15
        )

    async def _roll_back(self, g: _Generation, message: ReplyFailed) -> None:
        """An engine error: the conversation goes back to before the request; nothing is lost
        (a message that could not be answered returns to the prompt box)."""
        self.history.restore(g.before)
        await self._render_conversation()
        if g.job.kind == "send" and not self.prompt.text:
            self.prompt.set_text(g.job.text)
        self.status.state = "ready"
        self.status.speed = ""
        title = "Generation failed" if message.user_error else "Engine error (a bug)"
        self.notify(sanitize(message.error), title=title, severity="error", timeout=15)

    async def _stop_and_wait(self, timeout: float | None = None) -> bool:
        """Cancel the running generation and wait for its thread (at most one model step).

        Give up waiting after `timeout` and return False: a thread stuck in the engine (a chat
        template that never ends) must not freeze the app, whose keys (Ctrl+Q) wait while an
        action waits here. The caller then does nothing, and the user is told how to quit."""
        g = self._generation
        if g is None:
            return True
        g.job.cancel.set()
        self.status.state = "stopping"
        waiting = asyncio.ensure_future(g.worker.wait())
        done, _ = await asyncio.wait({waiting}, timeout=STOP_WAIT if timeout is None else timeout)
        if not done:
            waiting.cancel()
            self.notify(
                "The model does not stop (it may be stuck); Ctrl+Q quits and saves the "
                "conversation.",
                title="Model",
                severity="error",
                timeout=15,
            )
            return False
        with contextlib.suppress(Exception):
            waiting.result()
        result = g.worker.result
        if isinstance(result, (ReplyFinished, ReplyFailed)):
            await self._wrap_up(result)
        elif self._generation is g:  # the worker died without a final message
            await self._wrap_up(ReplyFailed(g.job.gen_id, "the generation thread ended", False))
        return True
