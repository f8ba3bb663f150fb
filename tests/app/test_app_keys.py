"""Every key binding, every slash command, the command palette and the keymap (fake engine)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fake_engine import (
    RECIPE,
    FakeEngine,
    isolated_dirs,
    make_app,
    model_messages,
    model_prompt,
    ready,
    reply,
    send,
    wait_until,
)
from textual.command import CommandPalette

from tui_gen.app.commands import binding_ids
from tui_gen.app.screens.help import HelpScreen
from tui_gen.app.screens.transcripts import TranscriptBrowser
from tui_gen.app.widgets.chat_view import ReplyTurn

pytestmark = pytest.mark.usefixtures("isolated_dirs")
__all__ = ["isolated_dirs"]
SIZE = (120, 40)


def notes(app: Any) -> list[str]:
    return [n.message for n in app._notifications]


# --- keys --------------------------------------------------------------------------------------


@pytest.mark.slow
async def test_enter_sends_and_ctrl_j_adds_a_newline(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press(*"two", "ctrl+j", *"lines")
        assert app.prompt.text == "two\nlines" and not app.conversation.turns
        await pilot.press("enter")
        await wait_until(pilot, lambda: len(app.conversation.turns) == 2 and not app.generating)
        assert app.conversation.turns[0].content == "two\nlines"
        assert app.prompt.text == ""
        await pilot.press("enter")  # an empty box sends nothing
        assert len(app.conversation.turns) == 2


@pytest.mark.slow
async def test_up_and_down_walk_the_prompt_history(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await reply(pilot, "first")
        await reply(pilot, "second\nline two")
        await pilot.press("up")
        assert app.prompt.text == "second\nline two"
        await pilot.press("up")  # cursor is on the last line: moves up inside the prompt
        assert app.prompt.text == "second\nline two"
        await pilot.press("up")
        assert app.prompt.text == "first"
        await pilot.press("down")
        assert app.prompt.text == "second\nline two"
        await pilot.press("down", "down")
        assert app.prompt.text == ""  # back to the (empty) draft
        await pilot.press(*"draft", "up")
        assert app.prompt.text == "draft"  # history only from an empty box


async def test_escape_stops_and_otherwise_focuses_the_prompt(tmp_path: Path) -> None:
    fake = FakeEngine(pause_after=3)
    app = make_app(tmp_path, fake)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await send(pilot, "go")
        await wait_until(pilot, fake.paused.is_set)
        await pilot.press("escape")
        fake.resume.set()
        await wait_until(pilot, lambda: not app.generating)
        turn = app.conversation.turns[-1]
        # the step under way when Esc was pressed finishes; no step after it runs
        assert turn.finish_reason == "cancelled" and turn.content == "Here is a quick"
        assert fake.yielded == 4
        app.panel.slider("top_k").focus()
        await pilot.press("escape")
        assert app.focused is app.prompt


async def test_ctrl_r_resets(tmp_path: Path) -> None:
    fake = FakeEngine()
    app = make_app(tmp_path, fake)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await reply(pilot, "hi")
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert app.conversation.turns == [] and model_messages(app) == [] and fake.resets == 1


async def test_ctrl_g_regenerates(tmp_path: Path) -> None:
    fake = FakeEngine(["first answer", "second answer"])
    app = make_app(tmp_path, fake)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("ctrl+g")
        await pilot.pause()
        assert "no reply to regenerate" in " ".join(notes(app))
        await reply(pilot, "q")
        await pilot.press("ctrl+g")
        await wait_until(pilot, lambda: not app.generating and len(fake.calls) == 2)
        await wait_until(pilot, lambda: app.conversation.turns[-1].content == "second answer")
        assert [t.content for t in app.conversation.turns] == ["q", "second answer"]
        assert app.chat_view.last_reply().source == "second answer"
        assert fake.calls[0]["prompt_tokens"] == fake.calls[1]["prompt_tokens"]


async def test_ctrl_g_while_generating_stops_then_regenerates(tmp_path: Path) -> None:
    fake = FakeEngine(pause_after=2)
    app = make_app(tmp_path, fake)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await send(pilot, "q")
        await wait_until(pilot, fake.paused.is_set)
        fake.pause_after = None
        fake.resume.set()
        await pilot.press("ctrl+g")
        await wait_until(pilot, lambda: not app.generating and len(fake.calls) == 2)
        assert [t.role for t in app.conversation.turns] == ["user", "assistant"]
        assert app.conversation.turns[-1].finish_reason == "eos"
        assert len(app.chat_view.query(ReplyTurn)) == 1


async def test_ctrl_l_edits_the_last_prompt(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await reply(pilot, "typo questoin")
        await pilot.press("ctrl+l")
        await pilot.pause()
        assert app.prompt.text == "typo questoin" and app.conversation.turns == []
        assert model_messages(app) == []


async def test_f5_copies_the_reply_and_f8_the_code_block(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("f5")
        await pilot.pause()
        assert "no reply to copy" in " ".join(notes(app))
        await reply(pilot, "pancakes?")
        await pilot.press("f5")
        assert app.clipboard == RECIPE
        await pilot.press("f8")
        assert app.clipboard == "for pan in range(4):\n    print('flip', pan)\n"
        await pilot.pause()
        assert any("python, 2 lines" in n for n in notes(app))


async def test_ctrl_s_exports_markdown(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await reply(pilot, "pancakes?")
        await pilot.press("ctrl+s")
        path = tmp_path / "transcripts" / "exports" / f"{app.conversation.id}.md"
        md = path.read_text()
        assert md.startswith("# pancakes?\n") and "- **Model:** fake-chef" in md
        assert (
            "## You\n\n````text\npancakes?\n````" in md and "```python\nfor pan in range(4):" in md
        )
        assert "temperature 0.70 · top-k 40 · top-p 0.90" in md
        assert "43 tokens · 40.0 tok/s · first token 0.12 s · finished" in md


@pytest.mark.slow
async def test_f1_help_lists_every_binding_and_command(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        text = app.screen._text
        for binding_id in binding_ids(app.BINDINGS):
            assert f"`{binding_id}`" in text
        for command in ("/temp", "/top_k", "/system", "/reset", "/save", "/help"):
            assert command in text
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_f2_toggles_the_panel_and_is_remembered(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        assert app.panel.display
        await pilot.press("f2")
        assert not app.panel.display and app.settings.side_panel is False
        await pilot.press("f2")
        assert app.panel.display and app.focused is app.panel.slider("temperature")


async def test_narrow_terminal_hides_the_panel_until_asked(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 30)) as pilot:
        await ready(pilot)
        assert not app.panel.display
        await pilot.press("f2")
        assert app.panel.display
        assert app.settings.side_panel is True  # a narrow-screen toggle is not a preference


async def test_f4_opens_the_theme_picker(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("f4")
        await pilot.pause()
        assert isinstance(app.screen, CommandPalette)


@pytest.mark.slow
async def test_ctrl_o_opens_transcripts_and_ctrl_q_quits_saving(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await reply(pilot, "keep me")
        await pilot.press("ctrl+o")
        await pilot.pause()
        assert isinstance(app.screen, TranscriptBrowser)
        await pilot.press("escape")
        await pilot.press("ctrl+q")
    assert app.return_code == 0
    saved = json.loads((tmp_path / "transcripts" / f"{app.conversation.id}.json").read_text())
    assert saved["turns"][0]["content"] == "keep me"


async def test_keymap_from_settings_remaps_keys(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    (config / "settings.json").write_text(
        json.dumps({"keymap": {"regenerate": "f9", "send": "ctrl+t", "nonsense": "f10"}})
    )
    fake = FakeEngine(["one", "two"])
    app = make_app(tmp_path, fake)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.pause()
        assert any("unknown binding id(s) nonsense" in n for n in notes(app))
        app.prompt.insert("remapped")
        await pilot.press("enter")  # now a newline... no: enter is no longer bound to send
        assert not app.conversation.turns
        app.prompt.clear()
        app.prompt.insert("remapped")
        await pilot.press("ctrl+t")
        await wait_until(pilot, lambda: len(app.conversation.turns) == 2 and not app.generating)
        await pilot.press("f9")
        await wait_until(pilot, lambda: app.conversation.turns[-1].content == "two")
        rows = {row[0]: row[1] for row in app.binding_rows()}
        assert rows["regenerate"] == "f9" and rows["stop"] == "escape"


# --- command palette ---------------------------------------------------------------------------


def palette_hits(app: Any) -> list[str]:
    """The commands the open command palette lists (it searches on a worker)."""
    from textual.command import CommandList

    lists = app.screen.query(CommandList)
    if not lists:
        return []
    options = lists.first()
    prompts = (str(options.get_option_at_index(i).prompt) for i in range(options.option_count))
    return [prompt.split("\n")[0] for prompt in prompts]  # the title, without the help line


@pytest.mark.slow
async def test_palette_lists_every_action_and_runs_them(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await reply(pilot, "pancakes?")
        titles = {c.title for c in app.get_system_commands(app.screen)}
        for title in (
            "Stop generating", "New conversation", "Regenerate", "Edit last prompt",
            "Copy last reply", "Copy code block 1", "Export to Markdown", "Transcripts",
            "Toggle sampling panel", "Reset sampling", "Help", "Theme", "Quit",
        ):  # fmt: skip
            assert title in titles, title
        await pilot.press("ctrl+p")
        await pilot.press(*"New conversation")
        await wait_until(pilot, lambda: palette_hits(app) == ["New conversation"], "the search")
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.conversation.turns == [], "the palette command")


async def test_palette_reset_sampling_restores_model_defaults(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press(*"/temp 1.5", "enter")
        assert app.sampling["temperature"] == 1.5
        app.reset_sampling()
        await pilot.pause()
        assert app.sampling["temperature"] == 0.7  # the fake model's default
        assert app.panel.slider("temperature").value == 0.7


# --- slash commands ----------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("command", "param", "value"),
    [
        ("/temp 0.3", "temperature", 0.3),
        ("/top_k 12", "top_k", 12),
        ("/top_p 0.5", "top_p", 0.5),
        ("/min_p 0.05", "min_p", 0.05),
        ("/rep 1.15", "repetition_penalty", 1.15),
        ("/max_tokens 7", "max_new_tokens", 7),
    ],
)
async def test_sampling_slash_commands_set_the_next_reply(
    tmp_path: Path, command: str, param: str, value: float
) -> None:
    fake = FakeEngine()
    app = make_app(tmp_path, fake)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press(*command, "enter")
        assert app.prompt.text == "" and not app.conversation.turns  # not sent as a message
        assert app.panel.slider(param).value == value
        await reply(pilot, "go")
        assert fake.calls[-1]["params"][param] == value
        await pilot.press(*command.split()[0], "enter")
        await pilot.pause()
        assert any("is " in n for n in notes(app))  # without a value: tells the current one


@pytest.mark.slow
async def test_slash_system_sets_shows_and_clears(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press(*"/system You are a [b]French[/b] chef.", "enter")
        assert app.history.system == app.conversation.system == "You are a [b]French[/b] chef."
        await pilot.press(*"/system", "enter")
        await pilot.pause()
        assert any(n == "System prompt: You are a [b]French[/b] chef." for n in notes(app))
        await reply(pilot, "hi")
        assert model_prompt(app).startswith("You are a [b]French[/b] chef.\n\nUser: hi\n")
        await pilot.press(*"/system -", "enter")
        assert app.history.system is None and app.conversation.system is None


@pytest.mark.slow
async def test_slash_reset_and_help_and_theme(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await reply(pilot, "hi")
        await pilot.press(*"/reset", "enter")
        await pilot.pause()
        assert app.conversation.turns == [] and model_messages(app) == []
        await pilot.press(*"/theme basil", "enter")
        assert app.theme == "basil"
        await pilot.press(*"/theme", "enter")
        await pilot.press(*"/theme nope", "enter")
        await pilot.pause()
        assert any("saffron" in n for n in notes(app)) and any("nope" in n for n in notes(app))
        await pilot.press(*"/help", "enter")
        assert isinstance(app.screen, HelpScreen)


@pytest.mark.slow
async def test_slash_save_writes_markdown_where_asked(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press(*"/save", "enter")
        await pilot.pause()
        assert any("Nothing to export" in n for n in notes(app))
        await reply(pilot, "pancakes?")
        target = tmp_path / "out" / "chat.md"
        await pilot.press(*f"/save {target}", "enter")
        await pilot.pause()
        assert not target.parent.exists()  # a missing folder is refused, never created
        target.parent.mkdir()
        await pilot.press(*f"/save {target}", "enter")
        assert target.read_text().startswith("# pancakes?")


@pytest.mark.slow
async def test_bad_slash_commands_explain_and_keep_the_app_going(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press(*"/temp 9", "enter")
        await pilot.press(*"/bogus", "enter")
        await pilot.pause()
        text = " ".join(notes(app))
        assert "between 0.00 and 2.00" in text and "unknown command /bogus" in text
        assert app.sampling["temperature"] == 0.7
        await pilot.press(*"//etc/hosts is a file", "enter")
        await wait_until(pilot, lambda: len(app.conversation.turns) == 2 and not app.generating)
        assert app.conversation.turns[0].content == "/etc/hosts is a file"


async def test_a_failed_regenerate_keeps_the_previous_reply(tmp_path: Path) -> None:
    from tui_gen.errors import TuiGenError

    fake = FakeEngine(["the first answer"])
    app = make_app(tmp_path, fake)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await reply(pilot, "q")
        fake.error = TuiGenError("out of memory")
        await pilot.press("ctrl+g")
        await wait_until(pilot, lambda: not app.generating and len(fake.calls) == 2)
        await pilot.pause()
        assert [t.content for t in app.conversation.turns] == ["q", "the first answer"]
        assert model_messages(app)[-1]["content"] == "the first answer"
        assert app.chat_view.last_reply().source == "the first answer"
        assert any("out of memory" in n for n in notes(app))
