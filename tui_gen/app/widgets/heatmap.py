"""A reply drawn token by token, each shaded by how likely the model thought it was.

Shading blends the theme's `error` colour into its background, more for less likely tokens, in
five steps (so a reply has at most five background styles); the text on a shade keeps a WCAG-AA
contrast (4.5:1) with it (see AA), so it reads in every theme. For
monochrome terminals (and colour-blind readers) the least likely tokens are also underlined
(p < LOW) and bold-underlined (p < VERY_LOW); the inspector's cursor is drawn reversed.

Each token's text is sanitized on its own (no control sequence can reach the terminal, even one
split across tokens: its pieces are shown as visible control pictures or removed), and a line
break shows as "⏎" before it, so a newline token has something to shade. A click on a token
posts `TokenHeatmap.Clicked` with its index (the token index rides in the style's meta).
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

from rich.style import Style
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.color import Color
from textual.containers import Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.timer import Timer
from textual.widget import Widget

from tui_gen.app.tokens import ReplyToken
from tui_gen.sanitize import sanitize

#: probability below which a token is underlined, and below which it is also bold
LOW = 0.1
VERY_LOW = 0.01
#: the shade steps: (probability at least, how much of the heat colour is blended in)
STEPS: tuple[tuple[float, float], ...] = ((0.9, 0.0), (0.6, 0.18), (0.3, 0.34), (0.1, 0.5))
STRONGEST = 0.68
_FAINT = Style(dim=True)


WHITE, BLACK = Color(255, 255, 255), Color(0, 0, 0)
#: the contrast a shade's text keeps (WCAG AA for normal text): the theme's own text colour if
#: it reaches it, else whichever of white and black contrasts more (one of them always does)
AA = 4.5


def _luminance(c: Color) -> float:
    def channel(v: int) -> float:
        x = v / 255
        return x / 12.92 if x <= 0.03928 else ((x + 0.055) / 1.055) ** 2.4

    return 0.2126 * channel(c.r) + 0.7152 * channel(c.g) + 0.0722 * channel(c.b)


def contrast(a: Color, b: Color) -> float:
    """The WCAG contrast ratio of two colours (1 to 21)."""
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def shade(probability: float | None) -> float:
    """How much heat colour a token of this probability gets (0 = none)."""
    if probability is None:
        return 0.0
    for at_least, amount in STEPS:
        if probability >= at_least:
            return amount
    return STRONGEST


def token_display(text: str) -> str:
    """A token's text as the heat map shows it: sanitized, line breaks marked."""
    return sanitize(text).replace("\n", "⏎\n")


@dataclass(frozen=True)
class Palette:
    """The theme's colours the heat map needs (strings Textual can parse)."""

    background: str
    heat: str
    foreground: str


class HeatBlock(Widget):
    """Tokens start..end of a heat map (a run of lines): a streaming reply redraws only its
    last block, so a long reply costs no more per frame than a short one."""

    DEFAULT_CSS = """
    HeatBlock { height: auto; width: 1fr; }
    """

    def __init__(self, owner: TokenHeatmap, start: int, end: int) -> None:
        super().__init__()
        self.owner, self.start, self.end = owner, start, end

    def render(self) -> Text:
        return self.owner.render_range(self.start, self.end)

    def on_click(self, event: events.Click) -> None:
        index = event.style.meta.get("token") if event.style else None
        if isinstance(index, int):
            event.stop()
            self.owner.post_message(TokenHeatmap.Clicked(self.owner, index))


#: a block ends after a line break once it holds this many tokens (blocks never split a line)
BLOCK_TOKENS = 48
#: how often a streaming heat map is drawn (as the reply's Markdown: chat_view.STREAM_INTERVAL)
DRAW_INTERVAL = 1 / 15
MAX_DRAW_INTERVAL = 0.5


class TokenHeatmap(Vertical):
    """The tokens of one reply, shaded by probability, with an optional cursor."""

    DEFAULT_CSS = """
    TokenHeatmap {
        height: auto;
        width: 1fr;
        display: none;
    }
    """

    cursor: reactive[int | None] = reactive(None, layout=False)

    @dataclass
    class Clicked(Message):
        heatmap: TokenHeatmap
        index: int

        @property
        def control(self) -> TokenHeatmap:
            return self.heatmap

    def __init__(self, tokens: Sequence[ReplyToken] = ()) -> None:
        super().__init__()
        self._tokens: list[ReplyToken] = []
        self._pieces: list[str] = []
        self._starts: list[int] = [0]  #: where each block starts (the last one is open)
        self._styles_for: tuple[str, dict[float, Style]] | None = None  # (theme, its styles)
        self._draw_timer: Timer | None = None
        self._draw_due = 0.0
        self._interval = DRAW_INTERVAL
        self._add(tokens)

    def compose(self) -> ComposeResult:
        yield from self._make_blocks(0)

    def _make_blocks(self, first: int) -> list[HeatBlock]:
        ends = [*self._starts[1:], len(self._tokens)]
        return [HeatBlock(self, s, e) for s, e in zip(self._starts[first:], ends[first:])]

    def _add(self, tokens: Sequence[ReplyToken]) -> None:
        for t in tokens:
            piece = token_display(t.text)
            self._tokens.append(t)
            self._pieces.append(piece)
            if "\n" in piece and len(self._tokens) - self._starts[-1] >= BLOCK_TOKENS:
                self._starts.append(len(self._tokens))

    @property
    def tokens(self) -> Sequence[ReplyToken]:
        return self._tokens

    def set_tokens(self, tokens: Sequence[ReplyToken]) -> None:
        self._tokens, self._pieces, self._starts = [], [], [0]
        self._add(tokens)
        if self._draw_timer is not None:
            self._draw_timer.stop()
            self._draw_timer = None
        if self.is_mounted:
            self.remove_children()
            self.mount_all(self._make_blocks(0))

    def extend(self, tokens: Sequence[ReplyToken]) -> None:
        """More tokens of a streaming reply. `tokens` has them at once; the screen gets them
        at most every DRAW_INTERVAL seconds (slower while the event loop is late): each draw
        re-lays out the pane, and one per batch of tokens was more layouts than frames."""
        if not tokens:
            return
        self._add(tokens)
        if self.is_mounted and self._draw_timer is None:
            self._draw_due = time.monotonic() + self._interval
            self._draw_timer = self.set_timer(self._interval, self._draw_new)

    def _draw_new(self) -> None:
        """Grow the open block to the tokens added since, and mount any new blocks."""
        self._draw_timer = None
        late = time.monotonic() - self._draw_due
        if late > 0.02:
            self._interval = min(MAX_DRAW_INTERVAL, self._interval * 1.5 + late)
        else:
            self._interval = max(DRAW_INTERVAL, self._interval * 0.8)
        children = list(self.query_children(HeatBlock))
        drawn = len(children)
        if children:  # the open block grows (to where a new one starts, if one does)
            last = children[-1]
            end = self._starts[drawn] if len(self._starts) > drawn else len(self._tokens)
            if end != last.end:
                last.end = end
                last.refresh(layout=True)
        if len(self._starts) > drawn:
            self.mount_all(self._make_blocks(drawn))

    def watch_cursor(self, old: int | None, new: int | None) -> None:
        for block in self.query_children(HeatBlock):
            if any(i is not None and block.start <= i < block.end for i in (old, new)):
                block.refresh()
            if new is not None and block.start <= new < block.end and self.display:
                block.scroll_visible(animate=False)  # the cursor's lines come into view

    def _palette(self) -> Palette:
        v = self.app.get_css_variables()
        return Palette(
            v.get("background", "#000000"), v.get("error", "#ff0000"), v.get("foreground", "#fff")
        )

    def _styles(self, palette: Palette) -> dict[float, Style]:
        base = Color.parse(palette.background)
        heat = Color.parse(palette.heat)
        text = Color.parse(palette.foreground)
        out = {}
        for amount in {a for _, a in STEPS} | {STRONGEST}:
            if amount == 0:
                out[amount] = Style()
                continue
            bg = base.blend(heat, amount)
            fg = max((text, WHITE, BLACK), key=lambda c: (contrast(bg, c) >= AA, contrast(bg, c)))
            out[amount] = Style(bgcolor=bg.rich_color, color=fg.rich_color)
        return out

    def render_range(self, start: int, end: int) -> Text:
        """Tokens start..end as shaded text (one trailing line break left out: the next block
        starts on its own line anyway)."""
        theme = self.app.theme
        if self._styles_for is None or self._styles_for[0] != theme:
            self._styles_for = (theme, self._styles(self._palette()))
        styles = self._styles_for[1]
        text = Text(end="")
        cursor = self.cursor
        for i in range(start, min(end, len(self._tokens))):
            token, piece = self._tokens[i], self._pieces[i]
            p = token.probability
            style = styles[shade(p)]
            if p is not None and p < LOW:
                style += Style(underline=True, bold=p < VERY_LOW)
            if i == cursor:
                style += Style(reverse=True, bold=True)
            if not piece:  # the first bytes of a character: nothing to show, keep it clickable
                piece = "·" if i == cursor else ""
            if i == end - 1 and piece.endswith("\n"):
                piece = piece[:-1]
            style += Style(meta={"token": i})
            if "⏎" in piece:  # the line-break marker is drawn faint
                for part in re.split("(⏎)", piece):
                    text.append(part, style + _FAINT if part == "⏎" else style)
            else:
                text.append(piece, style)
        return text
