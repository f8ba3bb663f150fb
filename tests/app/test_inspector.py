"""The heat map, the token inspector and branching, under the Pilot (fake engine with scripted
token probabilities: tests/fake_engine.py's fake_logprobs and BranchingChat)."""

from __future__ import annotations

import inspect
import math
import re
from pathlib import Path
from typing import Any

import pytest
from fake_engine import (
    ALT_BASE,
    CHOSEN_P,
    RECIPE,
    BranchingChat,
    FakeEngine,
    branching,
    isolated_dirs,
    make_app,
    ready,
    reply,
    wait_until,
)

from tui_gen.app.tokens import Alternative, ReplyToken
from tui_gen.app.transcripts.store import Conversation, TranscriptStore, Turn, to_markdown
from tui_gen.app.widgets.chat_view import ReplyTurn
from tui_gen.app.widgets.heatmap import LOW, TokenHeatmap, shade, token_display
from tui_gen.app.widgets.inspector import InspectorPanel, bar, quoted
from tui_gen.errors import TuiGenError

pytestmark = pytest.mark.usefixtures("isolated_dirs")
__all__ = ["isolated_dirs"]
SIZE = (120, 40)
PIECES = re.findall(r"\S+\s*|\s+", RECIPE)


def panel_text(app: Any) -> str:
    return app.inspector.render().plain


def last(app: Any) -> ReplyTurn:
    r = app.chat_view.last_reply()
    assert r is not None
    return r


async def test_heatmap_inspector_marks_and_keys(tmp_path: Path) -> None:
    """The fast-tier walk through: token data kept, heat map toggled, inspector cursor by keys
    and mouse, bars drawn, marks following a slider, and a fast typist's message."""
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await reply(pilot, "Pancakes?")
        assert app.fake.calls[-1]["params"]["logprobs"] == 10  # asked for every reply
        turn = app.conversation.turns[-1]
        assert turn.tokens is not None and [t.text for t in turn.tokens] == PIECES
        assert math.isclose(turn.tokens[3].probability or 0, CHOSEN_P[3])

        # heat map: F3 shows the shaded tokens instead of the Markdown, F3 again goes back
        await pilot.press("f3")
        assert last(app).has_class("-heatmap") and last(app).heatmap.display
        assert not last(app).body.display
        await pilot.press("f3")
        assert not last(app).has_class("-heatmap")

        # inspector: F9 opens it on the last token, focused; the heat map shows the cursor
        await pilot.press("f9")
        panel = app.inspector
        assert panel.display and app.focused is panel and app.inspector_on
        assert panel.index == len(PIECES) - 1 and last(app).has_class("-heatmap")
        await pilot.press("home", "right", "right")
        assert panel.index == 2 and last(app).heatmap.cursor == 2
        await pilot.press("left")
        assert panel.index == 1 and last(app).heatmap.cursor == 1
        text = panel_text(app)
        assert f"token 2/{len(PIECES)}" in text and quoted(PIECES[1]) in text
        assert "█" in text and quoted(" alt1") in text and "✗ top-k" not in text

        # mouse: a click on a token moves the cursor there
        heat = last(app).heatmap
        await pilot.click(TokenHeatmap, offset=(len(token_display(PIECES[0])) + 1, 0))
        await pilot.pause()
        assert panel.index == 1 and heat.cursor == 1
        await pilot.click(TokenHeatmap, offset=(0, 0))
        await pilot.pause()
        assert panel.index == 0 and heat.cursor == 0

        # a slider moves: top-k 1 removes every alternative but the most likely, at once
        app.panel.slider("top_k").focus()
        await pilot.press("home", "right")
        assert app.sampling["top_k"] == 1
        text = panel_text(app)
        assert text.count("✗ top-k") == len(app.inspector.current.top) - 1
        app.panel.slider("top_k").focus()
        await pilot.press("pageup")
        assert "✗ top-k" not in panel_text(app)

        # a fast typist: text and Enter arrive together while the inspector has the focus
        panel.focus()
        await pilot.press(*"more?", "enter")
        await wait_until(pilot, lambda: len(app.conversation.turns) == 4 and not app.generating)
        assert app.conversation.turns[2].content == "more?"
        assert app.inspector.tokens is last(app).heatmap.tokens  # it follows the new reply

        await pilot.press("f9")
        assert not panel.display and not last(app).has_class("-heatmap")


@pytest.mark.slow
async def test_branch_regenerates_from_the_chosen_token_and_ctrl_z_goes_back(
    tmp_path: Path,
) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        chat: BranchingChat = branching(app, "then flip them")
        await reply(pilot, "Pancakes?")
        original = app.conversation.turns[-1]
        await pilot.press("f9", "home", "right", "right", "right")  # token 3: p 0.04
        panel = app.inspector
        alternatives = panel.current.top
        assert alternatives[0].token_id == ALT_BASE + 1  # " alt1" beat the drawn token there
        await pilot.press("down", "enter")
        await wait_until(pilot, lambda: not app.generating and chat.branches, "the branch")
        messages, prefix = chat.branches[-1]
        assert prefix == (0, 1, 2, alternatives[1].token_id)  # kept ids, then the choice
        assert messages[-1] == {"role": "user", "content": "Pancakes?"}
        turn = app.conversation.turns[-1]
        kept = "".join(PIECES[:3])
        assert turn.content == kept + alternatives[1].text + " then flip them"
        assert last(app).source == turn.content
        assert turn.branch is not None and turn.branch.index == 3
        assert turn.branch.replaced == (3, PIECES[3]) and turn.branch.original is original
        assert [t.token_id for t in turn.tokens or ()][:4] == list(prefix)
        assert len(app.conversation.turns) == 2
        assert panel.index == 3  # the inspector stays at the branch point

        await pilot.press("ctrl+z")
        await wait_until(pilot, lambda: app.conversation.turns[-1] is original)
        assert last(app).source == RECIPE and app.conversation.turns[-1].tokens == original.tokens
        await pilot.press("ctrl+z")  # nothing more to undo: says so, changes nothing
        assert app.conversation.turns[-1] is original


class NoBranching(BranchingChat):
    """A backend that cannot branch (a remote one): it says so, as the contract asks."""

    def stream_reply(self, messages: Any, params: Any = None, **kwargs: Any) -> Any:
        if kwargs.get("prefix_ids"):
            raise TuiGenError("branching needs a local model")
        return self._chat.stream_reply(messages, params, **kwargs)


@pytest.mark.slow
async def test_branch_on_a_backend_without_branching_rolls_back(tmp_path: Path) -> None:
    """A backend that cannot branch: the error is shown and the original reply stays."""
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        app.chat = NoBranching(app.chat)
        await reply(pilot, "Pancakes?")
        original = app.conversation.turns[-1]
        await app.branch_from(2, original.tokens[2].top[1])  # type: ignore[index]
        await wait_until(pilot, lambda: not app.generating)
        assert app.conversation.turns[-1] is original
        assert last(app).source == RECIPE
        assert "branching needs a local model" in [n.message for n in app._notifications]


def _r(lp: float | None) -> float | None:
    return None if lp is None else round(lp, 4)


def _rounded(t: ReplyToken) -> ReplyToken:
    """What the transcript keeps of a token: log-probabilities to 4 decimals."""
    top = tuple(Alternative(a.token_id, a.text, round(a.logprob, 4)) for a in t.top)
    return ReplyToken(t.token_id, t.text, _r(t.logprob), top, _r(t.sampled_logprob), t.own_text)


@pytest.mark.slow
async def test_token_data_round_trips_through_the_transcript(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        branching(app)
        await reply(pilot, "Pancakes?")
        await app.branch_from(1, app.conversation.turns[-1].tokens[1].top[2])  # type: ignore[index]
        await wait_until(pilot, lambda: not app.generating)
        conv_id = app.conversation.id
        saved = app.conversation.turns[-1]
        path = app.store.path_for(conv_id)  # autosave writes on a thread: wait for the branch
        await wait_until(pilot, lambda: path.exists() and '"branch"' in path.read_text())
    loaded = TranscriptStore(tmp_path / "transcripts").load(conv_id).turns[-1]
    assert saved.tokens is not None
    assert loaded.tokens == tuple(_rounded(t) for t in saved.tokens)
    assert loaded.branch is not None and loaded.branch.index == 1
    assert loaded.branch.original.content == RECIPE and loaded.branch.original.tokens
    # a transcript from before token data still loads; without the setting none is written
    old = Conversation.from_dict({"id": "x1", "turns": [{"role": "assistant", "content": "hi"}]})
    assert old.turns[0].tokens is None and old.turns[0].branch is None
    plain = TranscriptStore(tmp_path / "plain", save_tokens=False).dumps(
        Conversation("x2", "m", "", "", turns=[saved])
    )
    assert '"tokens"' not in plain and '"branch"' in plain


def test_export_table_and_its_escaping() -> None:
    tokens = (
        ReplyToken(1, "Whisk", math.log(0.7), (Alternative(1, "Whisk", math.log(0.7)),
                   Alternative(9, "a|b`c", math.log(0.2)))),
        ReplyToken(2, " \x1b[31m**", math.log(0.05), ()),
    )  # fmt: skip
    conv = Conversation(
        "x3", "m", "", "", turns=[Turn("user", "q"), Turn("assistant", "..", tokens=tokens)]
    )
    assert "Token probabilities" not in to_markdown(conv)
    md = to_markdown(conv, tokens=True)
    assert "| # | token | p | most likely instead |" in md
    assert "| 1 | `Whisk` | 70.0% | `Whisk` 70.0% · ``a\\|b`c`` 20.0% |" in md
    assert "| 2 | `␣**` | 5.0% |  |" in md and "\x1b" not in md


def test_heatmap_shading_and_bars() -> None:
    assert shade(0.95) == 0 and shade(None) == 0
    assert 0 < shade(0.7) < shade(0.4) < shade(0.2) < shade(LOW / 2)
    assert bar(1.0, 8) == "█" * 8 and bar(0.0, 8) == " " * 8 and bar(0.5 + 1 / 16, 4) == "██▎ "
    assert token_display("a\x1b]52;c;x\x07\nb") == "a⏎\nb"
    assert quoted("x" * 40, 10) == '"xxxxxxx…"' and len(quoted("x" * 40, 10)) == 10


@pytest.mark.slow
async def test_export_command_writes_the_table(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await reply(pilot, "Pancakes?")
        target = tmp_path / "out.md"
        app.action_export(str(target), tokens=True)
        assert "| 1 | `Here␣` | 92.0% |" in target.read_text()
        app.action_export(str(target))
        assert "Token probabilities" not in target.read_text()  # the setting is off


@pytest.mark.slow
async def test_settings_turn_token_data_off(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "settings.json").write_text('{"logprobs_always": false}')
    fake = FakeEngine()
    app = make_app(tmp_path, fake)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await reply(pilot, "Pancakes?")
        assert fake.calls[-1]["params"]["logprobs"] == 0  # not asked: nothing is open
        assert app.conversation.turns[-1].tokens is None
        await pilot.press("f3")
        await reply(pilot, "More?")
        assert fake.calls[-1]["params"]["logprobs"] == 10  # the heat map is on: asked
        assert isinstance(app.query(InspectorPanel).first(), InspectorPanel)


def _session_branches() -> bool:
    from tui_gen.engine.chat import ChatSession

    return "prefix_ids" in inspect.signature(ChatSession.stream_reply).parameters


@pytest.mark.slow
@pytest.mark.skipif(not _session_branches(), reason="ChatSession has no prefix_ids yet")
async def test_branch_through_the_real_chat_session(tmp_path: Path) -> None:
    """The same branch, with no stand-in backend: ChatSession passes prefix_ids on to the
    (fake) engine, which continues the scripted reply after them."""
    fake = FakeEngine()
    app = make_app(tmp_path, fake)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await reply(pilot, "Pancakes?")
        original = app.conversation.turns[-1]
        assert original.tokens is not None
        alternative = original.tokens[2].top[1]
        assert await app.branch_from(2, alternative)
        await wait_until(pilot, lambda: not app.generating, "the branch")
        assert fake.calls[-1]["prefix_ids"] == [0, 1, alternative.token_id]
        turn = app.conversation.turns[-1]
        assert turn.branch is not None and turn.branch.original is original
        assert last(app).source == turn.content
        assert [t.token_id for t in turn.tokens or ()][:3] == [0, 1, alternative.token_id]


def _luminance(c: Any) -> float:
    def channel(v: int) -> float:
        x = v / 255
        return x / 12.92 if x <= 0.03928 else ((x + 0.055) / 1.055) ** 2.4

    return 0.2126 * channel(c.r) + 0.7152 * channel(c.g) + 0.0722 * channel(c.b)


def _contrast(a: Any, b: Any) -> float:
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


@pytest.mark.slow
async def test_heatmap_reads_in_every_theme_and_in_monochrome(tmp_path: Path) -> None:
    """Each shade's text has WCAG-AA contrast (4.5:1) in every theme, shades get stronger as
    the probability falls, and the least likely tokens are underlined (no colour needed)."""
    from textual.color import Color

    app = make_app(tmp_path)
    tokens = [
        ReplyToken(i, f"t{i} ", math.log(p), ()) for i, p in enumerate((0.95, 0.7, 0.4, 0.2, 0.05))
    ]
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        heat = TokenHeatmap(tokens)
        await app.chat_view.mount(heat)
        for theme in sorted(app.available_themes):
            app.theme = theme
            await pilot.pause()
            text = heat.render_range(0, len(tokens))
            at = [text.plain.index(f"t{i}") for i in range(5)]
            spans = [text.get_style_at_offset(app.console, offset) for offset in at]
            assert spans[0].bgcolor is None  # a near-certain token is not shaded
            assert [bool(s.underline) for s in spans] == [False, False, False, False, True]
            background = Color.parse(app.get_css_variables()["background"])
            if background.ansi is not None:
                continue  # textual-ansi: the terminal's own colours (the underline remains)
            distances = []
            for style in spans[1:]:
                assert style.bgcolor is not None and style.color is not None
                bg, fg = Color.from_rich_color(style.bgcolor), Color.from_rich_color(style.color)
                assert _contrast(bg, fg) >= 4.5, theme
                distances.append(sum(abs(x - y) for x, y in zip(bg.rgb, background.rgb)))
            assert distances == sorted(distances), theme


async def test_heatmap_blocks_stream_and_click(tmp_path: Path) -> None:
    """A long reply is drawn in blocks split at line breaks; streaming grows the last block
    and mounts new ones; a click in a later block still names the right token."""
    from tui_gen.app.widgets.heatmap import BLOCK_TOKENS, HeatBlock

    app = make_app(tmp_path)
    line = [ReplyToken(0, "w ", math.log(0.5), ())] * (BLOCK_TOKENS - 1)
    para = [*line, ReplyToken(0, "end\n", math.log(0.5), ())]
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        heat = TokenHeatmap(para)
        heat.display = True
        await app.chat_view.mount(heat)
        await pilot.pause()
        # a line break after BLOCK_TOKENS tokens closes a block; the next (empty) one is open
        assert [(b.start, b.end) for b in heat.query(HeatBlock)] == [(0, 48), (48, 48)]
        heat.extend(para[:10])
        heat.extend(para[10:])
        assert len(heat.tokens) == 2 * BLOCK_TOKENS  # at once; the screen at the next draw

        def spans() -> list[tuple[int, int]]:
            return [(b.start, b.end) for b in heat.query(HeatBlock)]

        await wait_until(pilot, lambda: spans() == [(0, 48), (48, 96), (96, 96)], "a draw")
        heat.extend(para[:3])
        await wait_until(pilot, lambda: spans() == [(0, 48), (48, 96), (96, 99)], "a draw")
        blocks = list(heat.query(HeatBlock))
        assert "".join(b.render().plain for b in blocks[:1]) == "w " * 47 + "end⏎"
        clicked: list[int] = []
        post = heat.post_message

        def spy(message: Any) -> bool:
            if isinstance(message, TokenHeatmap.Clicked):
                clicked.append(message.index)
            return post(message)

        heat.post_message = spy  # type: ignore[method-assign]
        await pilot.click(HeatBlock, offset=(0, 0))
        app.chat_view.scroll_end(animate=False)
        await pilot.pause()
        last_block = heat.query(HeatBlock).last()
        await pilot.click(last_block, offset=(2, 0))
        await pilot.pause()
        assert clicked[-1] == 97


def test_settings_for_token_data(tmp_path: Path) -> None:
    from tui_gen.app.settings import Settings

    path = tmp_path / "settings.json"
    path.write_text('{"logprobs": 99, "save_tokens": "yes", "export_tokens": true}')
    s = Settings.load(path)
    assert s.logprobs == 20 and s.save_tokens is True and s.export_tokens is True
    assert any("save_tokens" in p for p in s.problems)
    path.write_text('{"logprobs": "many"}')
    assert any("logprobs" in p for p in Settings.load(path).problems)
    s.save()
    assert Settings.load(path).to_dict()["logprobs"] == 20


@pytest.mark.slow
async def test_heatmap_mid_stream_then_markdown_again(tmp_path: Path) -> None:
    """With the heat map on, the streaming reply's Markdown waits (hidden); turned off mid-reply
    it catches up, and the final text is the reply's either way."""
    fake = FakeEngine(pause_after=12)
    app = make_app(tmp_path, fake, flush_interval=0.0)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("f3")
        app.prompt.insert("Pancakes?")
        await pilot.press("enter")
        await wait_until(pilot, fake.paused.is_set)
        await wait_until(pilot, lambda: len(last(app).heatmap.tokens) == 12, "12 tokens")
        assert last(app).has_class("-heatmap") and last(app).source == ""
        await pilot.press("f3")
        shown = "".join(PIECES[:12])
        await wait_until(pilot, lambda: last(app).source == shown, "the Markdown to catch up")
        fake.resume.set()
        await wait_until(pilot, lambda: not app.generating)
        assert last(app).source == RECIPE


@pytest.mark.slow
async def test_inspector_follows_the_conversation(tmp_path: Path) -> None:
    """A new chat empties the inspector; the next reply fills it; regenerate re-points it."""
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await reply(pilot, "Pancakes?")
        await pilot.press("f9")
        first = app.inspector.tokens
        assert len(first) == len(PIECES)
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: not app.inspector.tokens, "the inspector to empty")
        assert "No token data" in panel_text(app)
        await reply(pilot, "Pancakes again?")
        assert app.inspector.tokens is last(app).heatmap.tokens and app.inspector.tokens
        before = app.inspector.tokens
        await pilot.press("ctrl+g")
        await wait_until(pilot, lambda: not app.generating and app.inspector.tokens is not before)
        assert app.inspector.tokens is last(app).heatmap.tokens
