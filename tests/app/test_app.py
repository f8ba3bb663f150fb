"""The chat app with the real engine on a tiny model: streaming, stop, reset, regenerate, edit,
errors, loading in the background, and output shown literally."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from fake_engine import (
    FakeEngine,
    isolated_dirs,
    make_app,
    model_messages,
    ready,
    reply,
    send,
    wait_until,
)

from tui_gen.app.messages import ReplyChunk
from tui_gen.app.widgets.chat_view import ReplyTurn, UserTurn
from tui_gen.engine.events import FinishEvent, TokenEvent
from tui_gen.errors import ModelLoadError
from tui_gen.sanitize import sanitize

pytestmark = pytest.mark.usefixtures("isolated_dirs")
UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
__all__ = ["isolated_dirs"]


@pytest.fixture(scope="module")
def tiny_engine(tiny_llama: Path) -> Any:
    from tui_gen.engine.generator import Generator

    return Generator.load(tiny_llama, device="cpu")


class Recorder:
    """Wraps a Generator's stream_events to see what the engine really produced."""

    def __init__(self, engine: Any, gate_after: int | None = None) -> None:
        self.engine = engine
        self.original = engine.stream_events
        self.tokens = 0
        self.after_cancel = 0
        self.finish: FinishEvent | None = None
        self.cancel: threading.Event | None = None
        self.gate_after = gate_after
        self.paused = threading.Event()
        self.release = threading.Event()
        engine.stream_events = self.stream

    def stream(self, prompt: Any, params: Any = None, *, cancel: Any = None, **kw: Any):
        self.cancel = cancel
        for ev in self.original(prompt, params, cancel=cancel, **kw):
            if isinstance(ev, TokenEvent):
                self.tokens += 1
                if cancel is not None and cancel.is_set():
                    self.after_cancel += 1
            elif isinstance(ev, FinishEvent):
                self.finish = ev
            yield ev
            if self.tokens == self.gate_after and not self.paused.is_set():
                self.paused.set()
                self.release.wait(timeout=30)

    def restore(self) -> None:
        self.engine.stream_events = self.original


@pytest.fixture
def engine(tiny_engine: Any) -> Any:
    tiny_engine.reset()
    yield tiny_engine
    if "stream_events" in vars(tiny_engine):
        del tiny_engine.stream_events


def spy_chunks(app: Any) -> list[ReplyChunk]:
    """Record every ReplyChunk the worker posts to the app."""
    seen: list[ReplyChunk] = []
    original = app.post_message

    def post(message: Any) -> bool:
        if isinstance(message, ReplyChunk):
            seen.append(message)
        return original(message)

    app.post_message = post
    return seen


async def test_streams_a_reply_and_shows_every_token(tmp_path: Path, engine: Any) -> None:
    rec = Recorder(engine)
    app = make_app(tmp_path, engine, sampling={"max_new_tokens": 40, "temperature": 0.0})
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        chunks = spy_chunks(app)
        await reply(pilot, "How long do I boil an egg?")
        finish = rec.finish
        assert finish is not None and finish.reason == "length"
        # tokens shown == tokens generated: every token the engine yielded reached the UI
        assert sum(c.tokens for c in chunks) == rec.tokens
        assert len(finish.token_ids) == finish.stats.generated_tokens == 40
        turn = app.conversation.turns[-1]
        assert turn.stats["generated_tokens"] == 40 and turn.finish_reason == "length"
        shown = app.chat_view.last_reply()
        assert shown.source == sanitize(finish.text)
        assert "".join(c.text for c in chunks) == sanitize(finish.text)
        assert not UNSAFE.search(shown.source)  # the random model emits ESC bytes: gone
        assert "40 tokens" in str(shown.query_one(".reply--meta").render())
        assert app.status.state == "ready" and "tok/s" in app.status.speed
        assert app.status.context_used == engine.cached_tokens > 40
        assert model_messages(app)[-1] == {"role": "assistant", "content": finish.text}


@pytest.mark.slow
async def test_stop_halts_decoding_within_one_step(tmp_path: Path, engine: Any) -> None:
    rec = Recorder(engine, gate_after=5)
    app = make_app(tmp_path, engine, sampling={"max_new_tokens": 200})
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await send(pilot, "Tell me a long story")
        await wait_until(pilot, rec.paused.is_set, "five tokens")
        await pilot.press("escape")
        assert rec.cancel is not None and rec.cancel.is_set()
        rec.release.set()
        await wait_until(pilot, lambda: not app.generating, "the stop")
        assert rec.finish is not None and rec.finish.reason == "cancelled"
        assert rec.tokens == 5 and rec.after_cancel == 0  # not one more model step
        turn = app.conversation.turns[-1]
        assert turn.finish_reason == "cancelled" and turn.content == rec.finish.text
        widget = app.chat_view.last_reply()
        assert widget.has_class("-stopped")
        assert "stopped by the user" in str(widget.query_one(".reply--meta").render())
        assert app.status.state == "stopped"
        assert model_messages(app)[-1]["content"] == rec.finish.text  # partial reply kept
        await pilot.press(*"/max_tokens 3", "enter")
        await reply(pilot, "go on")  # the engine is free again
        assert app.conversation.turns[-1].stats["generated_tokens"] == 3


async def test_reset_clears_conversation_and_kv_cache(tmp_path: Path, engine: Any) -> None:
    app = make_app(tmp_path, engine, sampling={"max_new_tokens": 8})
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await reply(pilot, "hello")
        old_id = app.conversation.id
        assert engine.cached_tokens > 0
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert engine.cached_tokens == 0
        assert model_messages(app) == [] and app.conversation.turns == []
        assert app.conversation.id != old_id
        assert app.chat_view.turns == [] and app.chat_view.welcome.display
        assert app.status.context_used == 0
        await wait_until(pilot, lambda: (tmp_path / "transcripts" / f"{old_id}.json").exists())


@pytest.mark.slow
async def test_reset_while_generating_stops_first(tmp_path: Path, engine: Any) -> None:
    rec = Recorder(engine, gate_after=3)
    app = make_app(tmp_path, engine, sampling={"max_new_tokens": 200})
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await send(pilot, "a long one")
        await wait_until(pilot, rec.paused.is_set, "three tokens")
        threading.Timer(0.05, rec.release.set).start()
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert not app.generating and app.conversation.turns == [] and model_messages(app) == []
        assert engine.cached_tokens == 0
        rec.restore()
        await pilot.press(*"/max_tokens 3", "enter")
        await reply(pilot, "fresh start")  # no "already running" error
        assert [t.role for t in app.conversation.turns] == ["user", "assistant"]


async def test_regenerate_replaces_the_last_reply(tmp_path: Path, engine: Any) -> None:
    app = make_app(tmp_path, engine, sampling={"max_new_tokens": 12}, seed=7)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await reply(pilot, "name a herb")
        rec = Recorder(engine)
        await pilot.press("ctrl+g")
        await wait_until(pilot, lambda: rec.finish is not None and not app.generating)
        turns = app.conversation.turns
        assert [t.role for t in turns] == ["user", "assistant"]
        assert turns[-1].content == rec.finish.text
        assert turns[-1].params["seed"] == 9  # seed + reply number: a new draw
        assert len(app.chat_view.query(ReplyTurn)) == 1
        assert model_messages(app) == [
            {"role": "user", "content": "name a herb"},
            {"role": "assistant", "content": rec.finish.text},
        ]


async def test_edit_last_prompt_and_resend(tmp_path: Path, engine: Any) -> None:
    app = make_app(tmp_path, engine, sampling={"max_new_tokens": 6})
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await reply(pilot, "first question")
        await reply(pilot, "secnod question")
        await pilot.press("ctrl+l")
        await pilot.pause()
        assert app.prompt.text == "secnod question"
        assert [t.content for t in app.conversation.turns][:1] == ["first question"]
        assert len(app.conversation.turns) == 2 and len(model_messages(app)) == 2
        assert len(app.chat_view.turns) == 2
        app.prompt.clear()
        await reply(pilot, "second question")
        assert [t.content for t in app.conversation.turns if t.role == "user"] == [
            "first question",
            "second question",
        ]


async def test_engine_error_is_a_notice_and_nothing_is_lost(tmp_path: Path) -> None:
    fake = FakeEngine(error=RuntimeError("CUDA fell off the table"))
    app = make_app(tmp_path, fake)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await send(pilot, "will this work?")
        await wait_until(pilot, lambda: not app.generating, "the failure")
        await pilot.pause()
        notes = [n.message for n in app._notifications]
        assert any("CUDA fell off the table" in n for n in notes)
        assert app.is_running and app.status.state == "ready"
        assert app.conversation.turns == [] and model_messages(app) == []
        assert app.chat_view.turns == []
        assert app.prompt.text == "will this work?"  # the message comes back to the box
        fake.error = None
        app.prompt.clear()
        await reply(pilot, "and now?")
        assert [t.role for t in app.conversation.turns] == ["user", "assistant"]


async def test_model_load_failure_keeps_the_app_up(tmp_path: Path) -> None:
    def boom() -> Any:
        raise ModelLoadError("models/nope: no such directory")

    app = make_app(tmp_path, factory=boom)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: app.load_error is not None, "the load error")
        await pilot.pause()
        assert app.status.state == "error"
        assert any("no such directory" in n.message for n in app._notifications)
        await send(pilot, "hello?")
        assert app.conversation.turns == [] and app.prompt.text == "hello?"
        await pilot.press("ctrl+q")
    assert app.return_code == 2


async def test_first_paint_does_not_wait_for_the_model(tmp_path: Path) -> None:
    loaded = threading.Event()
    fake = FakeEngine()

    def slow_factory() -> Any:
        loaded.wait(timeout=30)
        return fake

    app = make_app(tmp_path, factory=slow_factory)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert app.status.state == "loading"
        assert app.chat_view.welcome.query("LoadingIndicator")
        await send(pilot, "queued while loading")  # typing and sending already work
        assert [t.content for t in app.conversation.turns] == ["queued while loading"]
        loaded.set()
        await wait_until(pilot, lambda: len(app.conversation.turns) == 2 and not app.generating)
        assert fake.calls and model_messages(app)[0]["content"] == "queued while loading"


def test_importing_the_app_does_not_import_torch(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from tui_gen.app.app import TuiGenApp, AppConfig\n"
        f"app = TuiGenApp(AppConfig(model='m', transcripts={str(tmp_path)!r}))\n"
        "import importlib, pkgutil, tui_gen.app\n"
        "for m in pkgutil.walk_packages(tui_gen.app.__path__, 'tui_gen.app.'):\n"
        "    importlib.import_module(m.name)\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        env={"TUI_GEN_CONFIG_DIR": str(tmp_path / "c"), "PATH": ""},
    )  # fmt: skip
    assert out.stdout.strip() == "False"


async def test_markup_and_escapes_in_output_are_shown_literally(tmp_path: Path) -> None:
    nasty = "[bold red]hot[/] \x1b[31mred\x1b[0m \x1b]0;title\x07 bell\x07 <b>tag</b>"
    fake = FakeEngine([nasty])
    app = make_app(tmp_path, fake)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await reply(pilot, "[i]user markup[/i] \x1b[2J")
        user = app.chat_view.query_one(UserTurn)
        assert str(user.render()) == "[i]user markup[/i] "
        widget = app.chat_view.last_reply()
        shown = widget.source
        assert shown == "[bold red]hot[/] red  bell\u2407 <b>tag</b>"
        block = widget.body.children[0]
        rendered = str(block._content)
        assert "[bold red]hot[/]" in rendered and "<b>tag</b>" in rendered
        assert not UNSAFE.search(rendered)
        assert app.conversation.turns[-1].content == nasty  # the transcript keeps the truth


async def test_typing_is_never_blocked_while_a_reply_streams(tmp_path: Path) -> None:
    fake = FakeEngine(pause_after=4)
    app = make_app(tmp_path, fake)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await send(pilot, "slow reply please")
        await wait_until(pilot, fake.paused.is_set)
        await pilot.press(*"next one")
        assert app.prompt.text == "next one"
        await pilot.press("enter")  # refused while busy, but the text stays
        assert app.prompt.text == "next one" and len(app.conversation.turns) == 1
        await pilot.pause()
        assert any("Esc stops it" in n.message for n in app._notifications)
        fake.resume.set()
        await wait_until(pilot, lambda: not app.generating)
        await pilot.press("enter")
        await wait_until(pilot, lambda: len(app.conversation.turns) == 4 and not app.generating)


async def test_context_trimming_notice(tmp_path: Path) -> None:
    fake = FakeEngine(["short answer"], max_context=24)
    app = make_app(tmp_path, fake, sampling={"max_new_tokens": 4})
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        for i in range(3):
            await reply(pilot, f"question {i} " + "word " * 6)
        await pilot.pause()
        assert any("dropped" in n.message for n in app._notifications)
        assert len(app.conversation.turns) == 6  # the transcript keeps every turn
