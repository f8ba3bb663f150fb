"""Snapshot tests of the app's main states (pytest-textual-snapshot).

Deterministic by construction: a fixed terminal size, the scripted FakeEngine (fixed text and
fixed stats), fixed transcript dates, no clock-derived text. Every file a test writes goes to its
own tmp_path (also HOME), which is the working directory, so the transcripts folder on screen
is the relative `transcripts`. Update after an intended change with
`pytest tests/app/test_snapshots.py --snapshot-update` and review the SVGs.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from fake_engine import RECIPE, FakeEngine, make_app, ready, reply, send, wait_until

from tui_gen.app.transcripts.store import Conversation, TranscriptStore, Turn
from tui_gen.errors import ModelLoadError

pytestmark = pytest.mark.slow  # an app run and an SVG compare each
SIZE = (110, 34)


@pytest.fixture
def base(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """tmp_path as the working directory and HOME, with relative folders for the app's files
    (the transcripts folder is on screen, so it must not show the per-run path)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("TUI_GEN_CONFIG_DIR", "config")
    monkeypatch.setenv("TUI_GEN_DATA_DIR", "data")
    return Path(".")


async def _settle(pilot: Any) -> None:
    """Let the screen catch up; no toasts, no blinking cursor (its phase depends on timing)."""
    for area in pilot.app.query("TextArea"):
        area.cursor_blink = False
    await pilot.wait_for_scheduled_animations()
    await pilot.pause()
    pilot.app.clear_notifications()
    await pilot.pause()


def test_ready_and_empty(snap_compare: Any, base: Path) -> None:
    async def run_before(pilot: Any) -> None:
        await ready(pilot)
        await _settle(pilot)

    assert snap_compare(make_app(base), terminal_size=SIZE, run_before=run_before)


def test_conversation_with_markdown_reply(snap_compare: Any, base: Path) -> None:
    async def run_before(pilot: Any) -> None:
        await ready(pilot)
        await reply(pilot, "How do I make pancakes? [b]not bold[/b]")
        await _settle(pilot)

    assert snap_compare(make_app(base), terminal_size=SIZE, run_before=run_before)


def test_reply_streaming(snap_compare: Any, base: Path) -> None:
    fake = FakeEngine(pause_after=20)

    async def run_before(pilot: Any) -> None:
        await ready(pilot)
        await send(pilot, "How do I make pancakes?")
        await wait_until(pilot, fake.paused.is_set)
        shown = "".join(re.findall(r"\S+\s*|\s+", RECIPE)[:20])
        await wait_until(pilot, lambda: pilot.app.chat_view.last_reply().source == shown)
        await _settle(pilot)

    app = make_app(base, fake, flush_interval=0.0)
    try:
        assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
    finally:
        fake.resume.set()


def test_reply_stopped(snap_compare: Any, base: Path) -> None:
    fake = FakeEngine(pause_after=12)

    async def run_before(pilot: Any) -> None:
        await ready(pilot)
        await send(pilot, "How do I make pancakes?")
        await wait_until(pilot, fake.paused.is_set)
        await pilot.press("escape")
        fake.resume.set()
        await wait_until(pilot, lambda: not pilot.app.generating)
        await _settle(pilot)

    assert snap_compare(make_app(base, fake), terminal_size=SIZE, run_before=run_before)


def test_light_theme_and_moved_sliders(snap_compare: Any, base: Path) -> None:
    async def run_before(pilot: Any) -> None:
        await ready(pilot)
        await reply(pilot, "How do I make pancakes?")
        pilot.app.theme = "tui-gen-light"
        pilot.app.panel.slider("temperature").focus()
        await pilot.press("right", "right", "tab", "pagedown", "tab", "home")
        await _settle(pilot)

    assert snap_compare(make_app(base), terminal_size=SIZE, run_before=run_before)


def test_narrow_terminal_hides_the_panel(snap_compare: Any, base: Path) -> None:
    async def run_before(pilot: Any) -> None:
        await ready(pilot)
        await reply(pilot, "How do I make pancakes?")
        await _settle(pilot)

    assert snap_compare(make_app(base), terminal_size=(72, 30), run_before=run_before)


def test_help_screen(snap_compare: Any, base: Path) -> None:
    async def run_before(pilot: Any) -> None:
        await ready(pilot)
        await pilot.press("f1")
        await _settle(pilot)

    assert snap_compare(make_app(base), terminal_size=SIZE, run_before=run_before)


def test_transcript_browser(snap_compare: Any, base: Path) -> None:
    store = TranscriptStore(base / "transcripts")
    for i, (title, when) in enumerate(
        [
            ("Weeknight tomato soup", "2025-03-02T19:15:00+01:00"),
            ("Sourdough starter troubles", "2025-02-11T08:40:00+01:00"),
            ("Lemon tart for eight", "2025-01-05T16:02:00+01:00"),
        ]
    ):
        conv = Conversation(f"2025-0{3 - i}-01T00-00-00-00000{i}", "cooking", when, when)
        conv.turns = [
            Turn("user", title + "?", when),
            Turn("assistant", f"Here is how:\n\n- step one\n- step two ({title.lower()})", when,
                 "eos", {"temperature": 0.7, "top_k": 40}, {"generated_tokens": 12}, "cooking"),
        ]  # fmt: skip
        store.save(conv)
    (base / "transcripts" / "corrupt.json").write_text("{ not json")

    async def run_before(pilot: Any) -> None:
        await ready(pilot)
        await pilot.press("ctrl+o")
        await wait_until(pilot, lambda: len(getattr(pilot.app.screen, "summaries", [])) == 3)
        await _settle(pilot)

    assert snap_compare(make_app(base), terminal_size=SIZE, run_before=run_before)


def test_model_failed_to_load(snap_compare: Any, base: Path) -> None:
    def boom() -> Any:
        raise ModelLoadError("models/nope: no such file or directory; pass a model directory")

    async def run_before(pilot: Any) -> None:
        await wait_until(pilot, lambda: pilot.app.load_error is not None)
        await _settle(pilot)

    app = make_app(base, factory=boom)
    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_token_inspector(snap_compare: Any, base: Path) -> None:
    """The heat map with the inspector's cursor on a token, its alternatives as bars, and the
    ones the current top-k would remove marked."""

    async def run_before(pilot: Any) -> None:
        await ready(pilot)
        await reply(pilot, "How do I make pancakes?")
        pilot.app.set_param("top_k", 3, explicit=False)
        await pilot.press("f9", "home", "right", "right", "right", "down")
        await _settle(pilot)

    assert snap_compare(make_app(base), terminal_size=SIZE, run_before=run_before)
