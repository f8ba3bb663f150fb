"""One conversation history: the saved transcript and what the model is sent always agree, the
decode thread gets an immutable snapshot, and a system prompt change needs no timer."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import pytest
from fake_engine import FakeEngine, isolated_dirs, make_app, ready, reply, send, wait_until

from tui_gen.app.history import History
from tui_gen.app.messages import ReplyFinished
from tui_gen.app.transcripts.store import Conversation
from tui_gen.app.worker import GenerationJob, run_generation
from tui_gen.engine.chat import ChatSession, render_messages

if TYPE_CHECKING:
    from tui_gen.engine.generator import Generator
    from tui_gen.engine.protocol import ChatBackend, ChatEngine

pytestmark = pytest.mark.usefixtures("isolated_dirs")
__all__ = ["isolated_dirs"]
SIZE = (120, 40)


def _check_protocols(gen: Generator, fake: FakeEngine, chat: ChatSession) -> None:
    """Never called: mypy checks that the engines and the session satisfy the Protocols:
    MYPYPATH=tests mypy --follow-imports=silent tests/fake_engine.py tests/app/test_app_history.py
    (tui_gen/engine/chat.py checks the Generator and ChatSession in every `mypy` run)."""
    engine: ChatEngine = gen
    engine = fake
    backend: ChatBackend = chat
    del engine, backend


def saved_file(tmp_path: Path, conv_id: str) -> Path:
    return tmp_path / "transcripts" / f"{conv_id}.json"


def read_saved(tmp_path: Path, conv_id: str) -> dict[str, Any] | None:
    try:
        return json.loads(saved_file(tmp_path, conv_id).read_text())
    except (FileNotFoundError, ValueError):
        return None


async def saved_agrees(pilot: Any, tmp_path: Path) -> dict[str, Any]:
    """Wait until the transcript on disk holds exactly the app's conversation; return it."""
    app = pilot.app

    def current() -> bool:
        data = read_saved(tmp_path, app.conversation.id)
        mine = [(t.role, t.content) for t in app.conversation.turns]
        return data is not None and [(t["role"], t["content"]) for t in data["turns"]] == mine

    await wait_until(pilot, current, "the autosave")
    data = read_saved(tmp_path, app.conversation.id)
    assert data is not None
    return data


def prompt_for(saved: dict[str, Any], skip: int = 0) -> str:
    """The prompt the last reply of a saved transcript was made from (plain format)."""
    msgs = [{"role": t["role"], "content": t["content"]} for t in saved["turns"][skip:-1]]
    head = [{"role": "system", "content": saved["system"]}] if saved.get("system") else []
    return render_messages(None, head + msgs)


async def test_saved_transcript_and_prompt_agree_through_every_edit(tmp_path: Path) -> None:
    fake = FakeEngine(["first answer", "second answer", "regenerated", "edited answer"])
    app = make_app(tmp_path, fake, system="Be brief.")
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await reply(pilot, "one")
        assert fake.calls[-1]["prompt"] == prompt_for(await saved_agrees(pilot, tmp_path))
        await reply(pilot, "two")
        assert fake.calls[-1]["prompt"] == prompt_for(await saved_agrees(pilot, tmp_path))
        await pilot.press("ctrl+g")  # regenerate
        await wait_until(pilot, lambda: not app.generating and len(fake.calls) == 3)
        saved = await saved_agrees(pilot, tmp_path)
        assert [t["content"] for t in saved["turns"]][-1] == "regenerated"
        assert fake.calls[-1]["prompt"] == prompt_for(saved) == fake.calls[-2]["prompt"]
        await pilot.press("ctrl+l")  # take back "two" and its reply
        await wait_until(pilot, lambda: app.prompt.text == "two")
        saved = await saved_agrees(pilot, tmp_path)
        assert [t["content"] for t in saved["turns"]] == ["one", "first answer"]
        app.prompt.clear()
        await reply(pilot, "two, edited")
        saved = await saved_agrees(pilot, tmp_path)
        assert [t["content"] for t in saved["turns"]] == [
            "one",
            "first answer",
            "two, edited",
            "edited answer",
        ]
        assert fake.calls[-1]["prompt"] == prompt_for(saved)
        assert "regenerated" not in fake.calls[-1]["prompt"]


async def test_edit_last_then_reset_leaves_no_stale_transcript(tmp_path: Path) -> None:
    app = make_app(tmp_path, FakeEngine(["an answer"]))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await reply(pilot, "only question")
        conv_id = app.conversation.id
        await saved_agrees(pilot, tmp_path)
        await pilot.press("ctrl+l")  # the conversation is empty again
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: not saved_file(tmp_path, conv_id).exists(), "the move")
        assert app.store.scan() == ([], [])  # nothing lists the two turns that were taken back
        assert (tmp_path / "transcripts" / ".trash" / f"{conv_id}.json").exists()  # recoverable
        app.prompt.clear()  # Ctrl+L put the question back in the prompt box
        await reply(pilot, "a new start")
        assert [t["content"] for t in (await saved_agrees(pilot, tmp_path))["turns"]] == [
            "a new start",
            "an answer",
        ]


async def test_reopened_conversation_is_what_the_model_continues(tmp_path: Path) -> None:
    fake = FakeEngine(["about bread", "about soup", "more about bread"])
    app = make_app(tmp_path, fake)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await reply(pilot, "bread?")
        bread = app.conversation.id
        await saved_agrees(pilot, tmp_path)
        await pilot.press("ctrl+r")
        await reply(pilot, "soup?")
        resets = fake.resets
        assert await app.open_conversation(bread)
        assert fake.resets == resets + 1  # the cache held the other conversation
        await reply(pilot, "and rye?")
        saved = await saved_agrees(pilot, tmp_path)
        assert saved["turns"][0]["content"] == "bread?"
        assert fake.calls[-1]["prompt"] == prompt_for(saved)
        assert "soup" not in fake.calls[-1]["prompt"]


@pytest.mark.slow
async def test_full_context_drops_old_turns_from_the_prompt_only(tmp_path: Path) -> None:
    # the fake counts words as tokens: 60 of context, 10 for the reply, 10 words per exchange
    fake = FakeEngine(["ok ok ok ok ok"], max_context=60)
    app = make_app(tmp_path, fake, sampling={"max_new_tokens": 10})
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        for i in range(8):
            await reply(pilot, f"question number {i}")
        saved = await saved_agrees(pilot, tmp_path)
        assert len(saved["turns"]) == 16  # the transcript keeps everything
        start = app.history.context_start
        assert start > 0 and start % 2 == 0  # whole exchanges were dropped
        assert fake.calls[-1]["prompt"] == prompt_for(saved, skip=start)
        assert "question number 0" not in fake.calls[-1]["prompt"]


async def test_the_decode_thread_gets_an_immutable_snapshot(tmp_path: Path) -> None:
    fake = FakeEngine(["an answer"], pause_after=1)
    app = make_app(tmp_path, fake, flush_interval=0)
    received: list[tuple[Any, str | None]] = []
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        original = app.chat.stream_reply

        def spy(messages: Any, params: Any = None, **kw: Any) -> Any:
            received.append((messages, kw.get("system")))
            return original(messages, params, **kw)

        app.chat.stream_reply = spy
        await send(pilot, "hello")
        await wait_until(pilot, fake.paused.is_set)
        messages, _ = received[-1]
        assert isinstance(messages, tuple)
        assert all(isinstance(m, MappingProxyType) for m in messages)
        with pytest.raises(TypeError):
            messages[0]["content"] = "changed"
        fake.resume.set()
        await wait_until(pilot, lambda: not app.generating)
        # the conversation grew on the UI thread; the worker's snapshot did not
        assert [t.role for t in app.conversation.turns] == ["user", "assistant"]
        assert [dict(m) for m in messages] == [{"role": "user", "content": "hello"}]


def test_run_generation_changes_nothing_it_was_given() -> None:
    chat = ChatSession(FakeEngine(["hi there"]))
    history = History(Conversation.new("fake"))
    history.add_user("hello")
    job = GenerationJob(1, "send", history.request_messages(), "Be kind.", "hello")
    before = (job.messages, [dict(m) for m in job.messages])
    posted: list[Any] = []
    final = run_generation(chat, job, posted.append)
    assert isinstance(final, ReplyFinished) and final.text == "hi there" and posted[-1] is final
    assert job.messages is before[0] and [dict(m) for m in job.messages] == before[1]
    assert chat.messages == [] and chat.system is None  # the session kept no copy
    assert [(t.role, t.content) for t in history.turns] == [("user", "hello")]
    with pytest.raises(AttributeError):
        job.system = "changed"  # type: ignore[misc]
    assert isinstance(job.cancel, threading.Event)


async def test_system_prompt_change_applies_to_the_next_reply_without_a_timer(
    tmp_path: Path,
) -> None:
    fake = FakeEngine(["the first reply", "the second reply"], pause_after=1)
    app = make_app(tmp_path, fake, flush_interval=0)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await send(pilot, "a")
        await wait_until(pilot, fake.paused.is_set)
        await pilot.press(*"/system Be nice.", "enter")
        # set at once, while the reply that had already started keeps its prompt
        assert app.history.system == app.conversation.system == "Be nice."
        assert not fake.calls[0]["prompt"].startswith("Be nice.")
        fake.pause_after = None
        fake.resume.set()
        await wait_until(pilot, lambda: not app.generating)
        await reply(pilot, "b")
        assert fake.calls[-1]["prompt"].startswith("Be nice.\n\nUser: a\n")
        assert (await saved_agrees(pilot, tmp_path))["system"] == "Be nice."
