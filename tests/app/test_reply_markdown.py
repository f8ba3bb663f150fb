"""ReplyMarkdown: lighter lists that update in place must draw exactly what Textual's Markdown
draws, whether the text arrives at once or streamed in small fragments."""

from __future__ import annotations

from typing import Any

import pytest
from textual.app import App, ComposeResult
from textual.widgets import Markdown

from tui_gen.app.widgets.chat_view import markdown_parser
from tui_gen.app.widgets.reply_markdown import CompactItem, ReplyMarkdown

DOCUMENT = """A recipe for **smoky chickpea stew**, with an introduction long enough to wrap.

- 2 cans chickpeas, drained and rinsed well under cold running water until clear
- 1 onion with `inline code` inside
- *emphasis* and ~~struck~~ text

7. Chop the onion.
8. Fry it in oil for a long time until it is golden brown and smells sweet and nutty.
9. Add garlic.
10. Simmer.

- outer
  - inner one
  - inner two
- second outer

1. paragraph one

   paragraph two
2. ```
   code in an item
   ```

Done.
"""


class One(App[None]):
    def __init__(self, cls: type[Markdown], text: str = DOCUMENT) -> None:
        super().__init__()
        self.cls, self.text = cls, text

    def compose(self) -> ComposeResult:
        yield self.cls(self.text, parser_factory=markdown_parser)


def cells(app: App[Any]) -> list[list[tuple[str, Any]]]:
    """Every cell of the screen: its character and, for visible ones, its colours and style
    (a space's foreground colour cannot be seen)."""
    rows = []
    for strip in app.screen._compositor.render_strips():
        row = []
        for segment in strip:
            style = segment.style
            for ch in segment.text:
                look = (
                    None
                    if style is None
                    else (
                        None if ch == " " else str(style.color),
                        str(style.bgcolor),
                        style.bold,
                        style.italic,
                        style.strike,
                    )
                )
                row.append((ch, look))
        rows.append(row)
    return rows


async def screen_of(app: App[Any], size: tuple[int, int], theme: str) -> Any:
    async with app.run_test(size=size) as pilot:
        app.theme = theme
        await pilot.wait_for_scheduled_animations()
        widgets = sum(1 for _ in app.query_one(Markdown).walk_children())
        return cells(app), widgets


@pytest.mark.slow
@pytest.mark.parametrize("theme", ["textual-dark", "textual-light"])
@pytest.mark.parametrize("width", [44, 90])
async def test_lists_draw_exactly_like_textuals_with_fewer_widgets(theme: str, width: int) -> None:
    ours, ours_widgets = await screen_of(One(ReplyMarkdown), (width, 40), theme)
    theirs, their_widgets = await screen_of(One(Markdown), (width, 40), theme)
    assert [[c for c, _ in row] for row in ours] == [[c for c, _ in row] for row in theirs]
    assert ours == theirs
    assert ours_widgets < their_widgets * 0.6


class Streamed(App[None]):
    def compose(self) -> ComposeResult:
        yield ReplyMarkdown(parser_factory=markdown_parser)


@pytest.mark.parametrize("step", [1, 7, 40])
async def test_streamed_in_fragments_ends_like_the_whole_text(step: int) -> None:
    """Fragments of `step` characters: lists grow, items change shape (a nested list, a second
    paragraph, a code block appear inside them) and the end result is the same screen."""
    app = Streamed()
    async with app.run_test(size=(60, 45)) as pilot:
        md = app.query_one(ReplyMarkdown)
        stream = Markdown.get_stream(md)
        first_item: CompactItem | None = None
        for start in range(0, len(DOCUMENT), step):
            await stream.write(DOCUMENT[start : start + step])
            if first_item is None and md.query(CompactItem):
                await pilot.pause()
                first_item = md.query(CompactItem).first()
        await stream.stop()
        await pilot.wait_for_scheduled_animations()
        streamed = cells(app)
        assert md.source == DOCUMENT
        # the first item was updated in place, never rebuilt
        assert first_item is not None and first_item.is_attached
    whole, _ = await screen_of(One(Markdown), (60, 45), "textual-dark")
    assert streamed == whole


async def test_an_item_of_several_paragraphs_grows_in_place() -> None:
    """Items that are more than one paragraph keep Textual's rows; their text still updates in
    place as it grows, word by word."""
    text = (
        "1. first step\n\n"
        "   the second paragraph of the first step, long enough to wrap on this screen\n"
        "2. next\n\n"
        "   and its own second paragraph\n"
    )
    app = Streamed()
    async with app.run_test(size=(50, 20)) as pilot:
        md = app.query_one(ReplyMarkdown)
        words = text.split(" ")
        await md.append(words[0])
        row = None
        for word in words[1:]:
            await md.append(" " + word)
            rows = md.query("ReplyOrderedList > Horizontal")
            if row is None and rows:
                row = rows.first()
        await pilot.wait_for_scheduled_animations()
        grown = cells(app)
        assert row is not None and row.is_attached  # never rebuilt
    whole, _ = await screen_of(One(Markdown, text), (50, 20), "textual-dark")
    assert grown == whole
