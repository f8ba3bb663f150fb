"""Hardening (#19), the app's part: no lost input, files that cannot be read or written,
quitting while the engine is stuck, and the rough edges (ranges, help, export, narrow screens)."""

from __future__ import annotations

from typing import Any

import pytest
from fake_engine import FakeEngine, isolated_dirs, make_app, ready, wait_until
from textual import events

pytestmark = pytest.mark.usefixtures("isolated_dirs")
__all__ = ["isolated_dirs"]

QUESTION = "How do I make pancakes?"


def burst(app: Any, *keys: str) -> None:
    """Queue key events all at once, the way tmux send-keys or a fast typist delivers them."""
    for key in keys:
        char = key if len(key) == 1 else ("\r" if key == "enter" else None)
        name = {" ": "space", "?": "question_mark"}.get(key, key)
        event = events.Key(name, char)
        event.set_sender(app)
        app._driver.send_message(event)


def user_texts(app: Any) -> list[str]:
    return [t.content for t in app.conversation.turns if t.role == "user"]


async def sent(pilot: Any) -> list[str]:
    """The messages sent, once the reply to them has finished."""
    app = pilot.app
    await wait_until(
        pilot,
        lambda: (
            app.conversation.turns
            and app.conversation.turns[-1].role == "assistant"
            and not app.generating
        ),
        "the reply",
    )
    return user_texts(app)


async def test_fast_typing_then_enter_sends_everything(tmp_path: Any) -> None:
    app = make_app(tmp_path)
    async with app.run_test() as pilot:
        await ready(pilot)
        burst(app, *QUESTION, "enter")
        assert await sent(pilot) == [QUESTION]


async def test_pilot_press_then_enter_sends_everything(tmp_path: Any) -> None:
    app = make_app(tmp_path)
    async with app.run_test() as pilot:
        await ready(pilot)
        await pilot.press(*QUESTION, "enter")
        assert await sent(pilot) == [QUESTION]


async def test_paste_then_enter_sends_exactly_the_paste(tmp_path: Any) -> None:
    app = make_app(tmp_path)
    pasted = "Cajun Cod Traybake\nServes 4 · Prep 15 min"
    async with app.run_test() as pilot:
        await ready(pilot)
        paste = events.Paste(pasted)
        paste.set_sender(app)
        app.prompt.post_message(paste)
        burst(app, "enter")
        assert await sent(pilot) == [pasted]


async def test_pasted_escape_sequences_are_sanitized(tmp_path: Any) -> None:
    app = make_app(tmp_path)
    async with app.run_test() as pilot:
        await ready(pilot)
        app.prompt.focus()
        app.prompt.post_message(events.Paste("red \x1b[31mhot\x1b[0m\x1b]0;pwned\x07 pan\x07"))
        await pilot.pause()
        assert app.prompt.text == "red hot pan\u2407"


async def test_text_typed_while_loading_is_sent_once_ready(tmp_path: Any) -> None:
    import threading

    gate = threading.Event()
    engine = FakeEngine()

    def slow_factory() -> Any:
        gate.wait(timeout=20)
        return engine

    app = make_app(tmp_path, factory=slow_factory)
    async with app.run_test() as pilot:
        await pilot.pause()
        burst(app, *QUESTION, "enter")
        await wait_until(pilot, lambda: user_texts(app), "the queued message")
        assert user_texts(app) == [QUESTION]
        gate.set()
        assert await sent(pilot) == [QUESTION]
        assert QUESTION in engine.calls[0]["prompt"]


@pytest.mark.slow
async def test_every_focus_stop_is_visible_and_typing_lands_in_the_prompt(tmp_path: Any) -> None:
    from textual.widgets import TextArea

    from tui_gen.app.widgets.chat_view import ChatView
    from tui_gen.app.widgets.slider import Slider

    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        chain = app.screen.focus_chain
        # only widgets that show their focus: the prompt, the sliders, the chat pane
        assert all(isinstance(w, (TextArea, Slider, ChatView)) for w in chain), chain
        chat = app.chat_view
        plain = chat.styles.background_tint
        chat.focus()
        await pilot.pause()
        assert chat.styles.background_tint != plain  # the chat pane shows it has focus
        for widget in chain:
            if widget is app.prompt:
                continue
            widget.focus()
            await pilot.pause()
            await pilot.press("o", "k")
            assert app.focused is app.prompt
        assert app.prompt.text == "ok" * (len(chain) - 1)


# --- files the app reads and writes -----------------------------------------------------------

ODD_FIELDS = [
    {"title": 5},
    {"model": ["x"]},
    {"created": 7},
    {"updated": {"a": 1}},
    {"system": 3},
    {"turns": [{"role": "assistant", "content": "hi", "stats": 5}]},
    {"turns": [{"role": "assistant", "content": "hi", "params": "hot"}]},
    {"turns": [{"role": "assistant", "content": "hi", "model": 9}]},
    {"turns": [{"role": "user", "content": "hi", "created": 1.5}]},
    {"turns": [{"role": "assistant", "content": "hi", "finish_reason": 2}]},
]


def write_transcript(folder: Any, conv_id: str, **fields: Any) -> None:
    import json

    folder.mkdir(parents=True, exist_ok=True)
    data = {
        "id": conv_id,
        "model": "m",
        "created": "2025-01-01T10:00:00+00:00",
        "updated": "2025-01-01T10:00:00+00:00",
        "turns": [{"role": "user", "content": "pancakes?"}],
        **fields,
    }
    (folder / f"{conv_id}.json").write_text(json.dumps(data))


@pytest.mark.parametrize("fields", ODD_FIELDS, ids=lambda f: next(iter(f)))
def test_a_transcript_with_odd_field_types_is_rejected_by_name(tmp_path: Any, fields: Any) -> None:
    from tui_gen.app.transcripts.store import TranscriptError, TranscriptStore

    write_transcript(tmp_path, "2025-01-01T10-00-00-bad", **fields)
    store = TranscriptStore(tmp_path)
    with pytest.raises(TranscriptError, match="not a tui-gen transcript"):
        store.load("2025-01-01T10-00-00-bad")
    summaries, problems = store.scan()
    assert summaries == [] and len(problems) == 1


async def test_browser_survives_odd_transcripts_with_a_notice(tmp_path: Any) -> None:
    folder = tmp_path / "transcripts"
    for i, fields in enumerate(ODD_FIELDS):
        write_transcript(folder, f"2025-01-01T10-00-00-bad{i}", **fields)
    write_transcript(folder, "2025-01-02T10-00-00-good", title="Good one")
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await pilot.press("ctrl+o")
        await wait_until(pilot, lambda: getattr(app.screen, "summaries", None), "the listing")
        assert [s.id for s in app.screen.summaries] == ["2025-01-02T10-00-00-good"]
        assert any("Skipped 10" in str(n.message) for n in app._notifications)
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.conversation.id.endswith("good"), "the reopen")
        assert app.is_running


def notices(app: Any) -> list[str]:
    return [str(n.message) for n in app._notifications]


def assert_plain(lines: list[str]) -> None:
    """One clear line each: no errno numbers, no temporary file names, no traceback."""
    for line in lines:
        assert "Errno" not in line and ".tmp" not in line and "Traceback" not in line, line
        assert "\n" not in line, line


async def test_unwritable_folders_leave_the_app_working_with_notices(tmp_path: Any) -> None:
    (tmp_path / "config").write_text("a file where the config folder should be")
    (tmp_path / "transcripts").write_text("a file where the transcripts folder should be")
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await pilot.press(*"hello", "enter")
        assert await sent(pilot) == ["hello"]
        app.set_param("temperature", 0.5, explicit=True)
        app.save_settings()
        await pilot.press("ctrl+s")
        await pilot.press(*"again", "enter")
        assert await sent(pilot) == ["hello", "again"]  # the chat goes on
        lines = notices(app)
        assert any("a file is in the way" in n and "settings" in n for n in lines), lines
        assert any("cannot save" in n and "a file is in the way" in n for n in lines), lines
        assert any("cannot write" in n and "a file is in the way" in n for n in lines), lines
        assert_plain(lines)
        await pilot.press("ctrl+q")
    assert app.return_code == 0


async def test_read_only_folders_are_reported_in_plain_words(tmp_path: Any, monkeypatch) -> None:
    import errno
    import tempfile

    def read_only(*args: Any, dir: Any = None, **kw: Any) -> Any:
        raise PermissionError(errno.EACCES, "Permission denied", f"{dir}/.x.json.abc.tmp")

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await pilot.press(*"hello", "enter")
        assert await sent(pilot) == ["hello"]
        await pilot.press("ctrl+s")
        app.save_settings()
        await pilot.pause()
        lines = notices(app)
        assert sum("permission denied" in n for n in lines) >= 3, lines
        assert_plain(lines)
        await pilot.press("ctrl+q")
    assert app.return_code == 0


async def test_a_corrupt_settings_file_is_kept_as_bad(tmp_path: Any) -> None:
    config = tmp_path / "config"
    config.mkdir()
    (config / "settings.json").write_bytes(b'{"theme": "\xff\xfe broken')
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        assert any("not valid JSON" in n for n in notices(app))
        app.save_settings()
    assert (config / "settings.json.bad").read_bytes() == b'{"theme": "\xff\xfe broken'
    assert (config / "settings.json").is_file()


async def test_save_refuses_a_missing_folder(tmp_path: Any) -> None:
    app = make_app(tmp_path)
    missing = tmp_path / "nonexistent-dir"
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await pilot.press(*"hello", "enter")
        await sent(pilot)
        app.prompt.insert(f"/save {missing}/x.md")
        await pilot.press("enter")
        await pilot.pause()
        assert not missing.exists()
        assert any(f"the folder {missing} does not exist" in n for n in notices(app))
        app.prompt.insert(f"/save {tmp_path}/x.md")
        await pilot.press("enter")
        await pilot.pause()
        assert (tmp_path / "x.md").is_file()


# --- quitting while the engine is stuck ---------------------------------------------------------


class StuckEngine(FakeEngine):
    """An engine whose step never returns and ignores the cancel event (a hung template)."""

    def __init__(self) -> None:
        super().__init__(["Cajun Cod Traybake serves four people"])
        import threading

        self.unstick = threading.Event()
        self.released = threading.Event()  # set once the stuck step returns

    def _run(self, ids: Any, p: Any, cancel: Any) -> Any:
        for i, ev in enumerate(super()._run(ids, p, None)):
            if i == 2:
                self.paused.set()
                self.unstick.wait(timeout=60)
                self.released.set()
            yield ev


async def test_ctrl_q_quits_promptly_while_the_engine_is_stuck(tmp_path: Any, monkeypatch) -> None:
    import json

    import tui_gen.app.app

    monkeypatch.setattr(tui_gen.app.app, "QUIT_WAIT", 0.3, raising=False)
    engine = StuckEngine()
    app = make_app(tmp_path, engine, flush_interval=0)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await ready(pilot)
            await pilot.press(*"hello", "enter")
            await wait_until(pilot, engine.paused.is_set, "the stuck step")
            await wait_until(pilot, lambda: "Cajun" in app.chat_view.last_reply().source)
            await pilot.press("ctrl+q")
            await wait_until(pilot, lambda: not app.is_running, "the app to quit", timeout=10)
        # it quit without waiting for the engine: the stuck step has not returned yet
        assert not engine.released.is_set()
        assert app.engine_stuck
        saved = [json.loads(p.read_text()) for p in (tmp_path / "transcripts").glob("*.json")]
        assert saved[0]["turns"][0]["content"] == "hello"
        assert saved[0]["turns"][1]["content"].startswith("Cajun")
        assert saved[0]["turns"][1]["finish_reason"] == "interrupted"
    finally:
        engine.unstick.set()


# --- rough edges ----------------------------------------------------------------------------------


async def test_max_tokens_reports_what_it_set_and_the_models_range(tmp_path: Any) -> None:
    from tui_gen.app.screens.help import HelpScreen

    app = make_app(tmp_path, FakeEngine(max_context=384))
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        app.prompt.insert("/max_tokens 512")
        await pilot.press("enter")
        await pilot.pause()
        assert app.sampling["max_new_tokens"] != 512
        assert not any("= 512" in n for n in notices(app))
        assert any("between 1 and 384 (this model's context), got 512" in n for n in notices(app))
        app.prompt.insert("/max_tokens 300")
        await pilot.press("enter")
        await pilot.pause()
        assert app.sampling["max_new_tokens"] == 300
        assert any("Max new tokens = 300" in n for n in notices(app))
        await pilot.press("f1")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        assert "/max_tokens [1-384]" in app.screen._text


def test_help_escapes_the_pipe_in_the_system_row() -> None:
    from markdown_it import MarkdownIt

    from tui_gen.app.screens.help import help_markdown

    html = MarkdownIt("commonmark").enable("table").render(help_markdown([]))
    row = next(line for line in html.splitlines() if "/system" in line)
    assert "<code>/system [TEXT | -]</code>" in row


async def test_f4_opens_the_theme_picker_as_the_readme_says(tmp_path: Any) -> None:
    from pathlib import Path

    from textual.command import CommandPalette

    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    row = next(line for line in readme.splitlines() if line.startswith("| F4 |"))
    assert "pick a theme" in row
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        before = app.theme
        await pilot.press("f4")
        await wait_until(pilot, lambda: isinstance(app.screen, CommandPalette), "the picker")
        assert app.theme == before  # it picks, it does not step to the next theme


def test_markdown_export_nests_replies_and_round_trips(tmp_path: Any) -> None:
    from markdown_it import MarkdownIt

    from tui_gen.app.transcripts.store import (
        Conversation,
        Turn,
        export_markdown,
        turns_from_markdown,
    )

    conv = Conversation.new("fake-chef")
    recipe = (
        "## Cajun Cod Traybake\nServes 4 · Prep 15 min\n\n# Method\n"
        "1. Heat the oven.\n\n````\nfour backticks\n````\n```python\nprint('cod')\n```"
    )
    conv.turns += [
        Turn("user", "A traybake?\n## You\nplease"),
        Turn("assistant", recipe, model="fake-chef", finish_reason="eos"),
        Turn("user", "Thanks"),
        Turn("assistant", "", model="fake-chef"),
    ]
    md = export_markdown(conv, tmp_path / "chat.md").read_text()
    assert turns_from_markdown(md) == [(t.role, t.content) for t in conv.turns]
    # the only headings are the title and one per turn: a reply's own sit inside it
    tokens = MarkdownIt("commonmark").parse(md)
    headings = [tokens[i + 1].content for i, t in enumerate(tokens) if t.type == "heading_open"]
    assert headings == [conv.display_title(), "You", "fake-chef", "You", "fake-chef"]
    assert "Cajun Cod Traybake\nServes 4 · Prep 15 min" in md


async def test_status_bar_is_refreshed_after_ctrl_l(tmp_path: Any) -> None:
    from fake_engine import reply

    app = make_app(tmp_path, FakeEngine(["one two three", "four five"]))
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await reply(pilot, "first")
        first = (app.status.speed, app.status.context_used)
        await reply(pilot, "second question")
        assert app.status.context_used != first[1]
        await pilot.press("escape")  # nothing running: focuses the prompt
        await pilot.press("ctrl+l")
        await pilot.pause()
        assert app.prompt.text == "second question"
        assert (app.status.speed, app.status.context_used) == first
        assert app.status.state == "ready"
        await pilot.press("ctrl+a", "ctrl+k", "ctrl+l")  # and back to no reply at all
        await pilot.pause()
        assert (app.status.speed, app.status.context_used) == ("", 0)


@pytest.mark.parametrize("name", ["nope", "folder", "notes.txt"])
def test_a_typod_model_path_fails_before_the_screen_opens(
    tmp_path: Any, monkeypatch, capsys, name: str
) -> None:
    import tui_gen.app
    from tui_gen.cli.dispatch import main

    (tmp_path / "folder").mkdir()
    (tmp_path / "notes.txt").write_text("not a model")
    opened: list[Any] = []
    monkeypatch.setattr(tui_gen.app, "run_app", lambda config: opened.append(config) or 0)
    monkeypatch.setattr("sys.stdin.isatty", lambda: True, raising=False)
    monkeypatch.setattr("sys.stdout.isatty", lambda: True, raising=False)
    assert main([str(tmp_path / name)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("tui-gen: error: ") and name in err
    assert "no such file" in err or "not a model" in err
    assert opened == []


@pytest.mark.parametrize("kind", ["dir", "config", "gguf"])
def test_a_model_path_opens_the_app(tmp_path: Any, monkeypatch, kind: str) -> None:
    import tui_gen.app
    from tui_gen.cli.dispatch import main

    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text("{}")
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    model = {"dir": "m", "config": "m/config.json", "gguf": "m.gguf"}[kind]
    opened: list[Any] = []
    monkeypatch.setattr(tui_gen.app, "run_app", lambda config: opened.append(config) or 0)
    monkeypatch.setattr("sys.stdin.isatty", lambda: True, raising=False)
    monkeypatch.setattr("sys.stdout.isatty", lambda: True, raising=False)
    assert main([str(tmp_path / model)]) == 0
    assert [c.model for c in opened] == [str(tmp_path / model)]


@pytest.mark.slow
async def test_a_60_column_terminal_shortens_and_wraps_instead_of_cutting(tmp_path: Any) -> None:
    from tui_gen.app.widgets.chat_view import ReplyTurn

    engine = FakeEngine(name="SmolLM2-135M-Instruct")
    app = make_app(tmp_path, engine)
    async with app.run_test(size=(60, 30)) as pilot:
        await ready(pilot)
        await pilot.press(*"pancakes?", "enter")
        await sent(pilot)
        await pilot.pause()
        bar = app.status.render().plain
        assert "…" not in bar and "SmolLM2-135M-Instruct" in bar, bar
        assert f"{app.status.context_used}/{app.status.context_max}" in bar, bar
        assert len(bar) <= app.status.content_region.width
        reply: ReplyTurn = app.chat_view.last_reply()
        meta = "1234 tokens · 41.2 tok/s · first token 0.12 s · hit the token limit"
        reply.set_meta(meta)
        await pilot.pause()
        label = reply.query_one(".reply--meta")
        lines = ["".join(seg.text for seg in label.render_line(y)).rstrip() for y in range(3)]
        assert " ".join(line for line in lines if line) == meta, lines
    # and at full width the status bar says everything
    app = make_app(tmp_path, FakeEngine(name="SmolLM2-135M-Instruct"))
    async with app.run_test(size=(140, 30)) as pilot:
        await ready(pilot)
        await pilot.press(*"pancakes?", "enter")
        await sent(pilot)
        bar = app.status.render().plain
        assert "first token" in bar and "ctx ▰" in bar and "ready" in bar and "cpu" in bar


async def test_actions_do_not_freeze_the_app_while_the_engine_is_stuck(
    tmp_path: Any, monkeypatch
) -> None:
    import tui_gen.app.app
    import tui_gen.app.generation

    monkeypatch.setattr(tui_gen.app.generation, "STOP_WAIT", 0.3, raising=False)
    monkeypatch.setattr(tui_gen.app.app, "QUIT_WAIT", 0.3)
    engine = StuckEngine()
    app = make_app(tmp_path, engine, flush_interval=0)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await ready(pilot)
            await pilot.press(*"hello", "enter")
            await wait_until(pilot, engine.paused.is_set, "the stuck step")
            await pilot.press("ctrl+r")
            await wait_until(
                pilot, lambda: any("does not stop" in n for n in notices(app)), "the notice"
            )
            assert user_texts(app) == ["hello"]  # nothing was thrown away
            await pilot.press("ctrl+q")
            await wait_until(pilot, lambda: not app.is_running, "the app to quit", timeout=10)
    finally:
        engine.unstick.set()
