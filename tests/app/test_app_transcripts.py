"""Autosave, the transcript browser, reopening and continuing a conversation (fake engine)."""

from __future__ import annotations

import json
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
from textual.widgets import DataTable

from tui_gen.app import generation as generation_module
from tui_gen.app.screens.confirm import ConfirmScreen
from tui_gen.app.screens.transcripts import TranscriptBrowser
from tui_gen.app.transcripts.store import Conversation, TranscriptStore, Turn
from tui_gen.app.widgets.chat_view import ReplyTurn, UserTurn

pytestmark = pytest.mark.usefixtures("isolated_dirs")
__all__ = ["isolated_dirs"]
SIZE = (120, 40)


def saved(tmp_path: Path, conv_id: str) -> dict[str, Any]:
    path = tmp_path / "transcripts" / f"{conv_id}.json"
    return json.loads(path.read_text()) if path.exists() else {}


def old_conversation(store: TranscriptStore, title: str, when: str) -> Conversation:
    conv = Conversation.new("old-model", created=when)
    conv.turns = [
        Turn("user", title, when),
        Turn("assistant", f"Answer about {title}.", when, "eos", model="old-model"),
    ]
    store.save(conv)
    return conv


async def test_every_turn_is_autosaved(tmp_path: Path) -> None:
    fake = FakeEngine(["one", "two"])
    app = make_app(tmp_path, fake)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await reply(pilot, "first")
        conv_id = app.conversation.id
        await wait_until(pilot, lambda: len(saved(tmp_path, conv_id).get("turns", [])) == 2)
        data = saved(tmp_path, conv_id)
        assert data["turns"][1]["content"] == "one"
        assert data["turns"][1]["finish_reason"] == "eos"
        assert data["turns"][1]["params"]["temperature"] == 0.7
        assert data["turns"][1]["stats"]["generated_tokens"] == 1
        await reply(pilot, "second")
        await wait_until(pilot, lambda: len(saved(tmp_path, conv_id).get("turns", [])) == 4)
        leftovers = [p.name for p in (tmp_path / "transcripts").iterdir() if p.suffix != ".json"]
        assert leftovers == []  # no temporary files left behind


async def test_a_reply_in_progress_is_saved_as_interrupted(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(generation_module, "PARTIAL_SAVE_INTERVAL", 0.0)
    fake = FakeEngine(pause_after=5)
    app = make_app(tmp_path, fake, flush_interval=0.0)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await send(pilot, "long one")
        await wait_until(pilot, fake.paused.is_set)
        conv_id = app.conversation.id

        def partial() -> str:
            turns = saved(tmp_path, conv_id).get("turns", [])
            ok = len(turns) == 2 and turns[1].get("finish_reason") == "interrupted"
            return turns[1]["content"] if ok else ""

        # as if the process were killed now: the file already holds the partial reply
        await wait_until(pilot, lambda: partial().startswith("Here is a quick **pancake**"))
        fake.resume.set()
        await wait_until(pilot, lambda: not app.generating)
        await wait_until(
            pilot, lambda: saved(tmp_path, conv_id)["turns"][1]["finish_reason"] == "eos"
        )


@pytest.mark.slow
async def test_browser_reopens_a_conversation_to_continue(tmp_path: Path) -> None:
    store = TranscriptStore(tmp_path / "transcripts")
    old_conversation(store, "About bread", "2025-01-01T10:00:00+00:00")
    soup = old_conversation(store, "About soup", "2025-02-01T10:00:00+00:00")
    fake = FakeEngine(["More about soup."])
    app = make_app(tmp_path, fake)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("ctrl+o")
        browser = app.screen
        assert isinstance(browser, TranscriptBrowser)
        await wait_until(pilot, lambda: len(browser.summaries) == 2)
        assert browser.summaries[0].title == "About soup"  # newest first
        assert browser.query_one(DataTable).row_count == 2
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.conversation.id == soup.id)
        assert not isinstance(app.screen, TranscriptBrowser)
        assert [type(w) for w in app.chat_view.turns] == [UserTurn, ReplyTurn]
        assert model_messages(app) == soup.messages() and fake.resets == 1
        await pilot.pause()
        assert any("old-model" in n.message for n in app._notifications)
        await reply(pilot, "and the garnish?")
        assert fake.calls[-1]["prompt_tokens"] > 4  # the old turns are in the prompt
        await wait_until(pilot, lambda: len(saved(tmp_path, soup.id).get("turns", [])) == 4)
        assert saved(tmp_path, soup.id)["turns"][3]["content"] == "More about soup."


async def test_browser_skips_corrupt_files_with_a_notice_and_keeps_them(tmp_path: Path) -> None:
    folder = tmp_path / "transcripts"
    store = TranscriptStore(folder)
    old_conversation(store, "Fine one", "2025-01-01T10:00:00+00:00")
    (folder / "broken.json").write_text('{"id": "broken", "turns": [{"role"')
    (folder / "alien.json").write_text("[1, 2, 3]")
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("ctrl+o")
        browser = app.screen
        await wait_until(pilot, lambda: len(browser.summaries) == 1)
        await pilot.pause()
        assert any(
            "Skipped 2 unreadable" in n.message and "left untouched" in n.message
            for n in app._notifications
        )
        assert (folder / "broken.json").exists() and (folder / "alien.json").exists()


@pytest.mark.slow
async def test_browser_deletes_after_confirming_into_the_trash(tmp_path: Path) -> None:
    store = TranscriptStore(tmp_path / "transcripts")
    conv = old_conversation(store, "Delete me", "2025-01-01T10:00:00+00:00")
    keep = old_conversation(store, "Keep me", "2024-01-01T10:00:00+00:00")
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("ctrl+o")
        browser = app.screen
        await wait_until(pilot, lambda: len(browser.summaries) == 2)
        await pilot.press("d")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")  # changed my mind
        assert (tmp_path / "transcripts" / f"{conv.id}.json").exists()
        await pilot.press("d", "y")
        await wait_until(pilot, lambda: len(browser.summaries) == 1)
        assert browser.summaries[0].id == keep.id
        assert (tmp_path / "transcripts" / ".trash" / f"{conv.id}.json").exists()


async def test_browser_exports_markdown(tmp_path: Path) -> None:
    store = TranscriptStore(tmp_path / "transcripts")
    conv = old_conversation(store, "Export me", "2025-01-01T10:00:00+00:00")
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("ctrl+o")
        await wait_until(pilot, lambda: len(app.screen.summaries) == 1)
        await pilot.press("e")
        md = (tmp_path / "transcripts" / "exports" / f"{conv.id}.md").read_text()
        assert md.startswith("# Export me\n") and "Answer about Export me." in md


@pytest.mark.slow
async def test_deleting_the_open_conversation_never_writes_it_back(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await reply(pilot, "ephemeral")
        conv_id = app.conversation.id
        await wait_until(pilot, lambda: bool(saved(tmp_path, conv_id)))
        await pilot.press("ctrl+o")
        await wait_until(pilot, lambda: len(app.screen.summaries) == 1)
        await pilot.press("d", "y", "escape")
        await wait_until(pilot, lambda: not app.conversation.turns)
        assert app.conversation.id != conv_id
        await pilot.press("ctrl+q")
    assert not (tmp_path / "transcripts" / f"{conv_id}.json").exists()
    assert (tmp_path / "transcripts" / ".trash" / f"{conv_id}.json").exists()


async def test_quitting_mid_reply_keeps_the_partial_reply(tmp_path: Path) -> None:
    fake = FakeEngine(pause_after=6)
    app = make_app(tmp_path, fake)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await send(pilot, "quick, before I go")
        await wait_until(pilot, fake.paused.is_set)
        threading.Timer(0.1, fake.resume.set).start()  # the model step under way ends
        await pilot.press("ctrl+q")
    turns = saved(tmp_path, app.conversation.id)["turns"]
    assert turns[1]["finish_reason"] == "cancelled"
    assert turns[1]["content"] == "Here is a quick **pancake** batter:\n\n1."
    assert fake.yielded == 7


async def test_a_failing_autosave_is_reported_and_the_chat_goes_on(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the transcripts folder should be")
    app = make_app(tmp_path, transcripts=str(blocker))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await reply(pilot, "hello")
        await wait_until(
            pilot,
            lambda: any("cannot save" in n.message for n in app._notifications),
            "the autosave error",
        )
        await reply(pilot, "still here?")
        assert len(app.conversation.turns) == 4
    assert blocker.read_text().startswith("a file")
