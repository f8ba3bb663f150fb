"""The token inspector: one step of a reply, its alternatives as bars, and what the sliders cut.

    token 12/87  " pan"  p 41.2%  (drawn with 58.3%)
    ▶● " pan"        ██████████████▌              41.2%  → 58.3%
       " wok"        ████████▋                    24.9%  → 35.1%
       " skillet"    ██▍                           7.1%  ✗ top-p

It owns the cursor over the reply's tokens (`index`) and over the alternatives (`choice`);
the app gives it the tokens and the current slider values and hears about moves (CursorMoved:
the heat map draws the cursor) and branch requests (Branch). Which alternatives the sliders
would remove comes from sampler_marks (pure Python, recomputed on every draw, so moving a
slider shows at once). Every token text is sanitized, quoted and cut to a width.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from rich.style import Style
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget

from tui_gen.app.sampler_marks import Marks, sampler_marks
from tui_gen.app.tokens import Alternative, ReplyToken
from tui_gen.sanitize import sanitize

BAR_WIDTH = 28
LABEL_WIDTH = 16
_EIGHTHS = " ▏▎▍▌▋▊▉"


def bar(fraction: float, width: int = BAR_WIDTH) -> str:
    """A horizontal bar `fraction` (0..1) of `width` cells, to an eighth of a cell."""
    eighths = round(max(0.0, min(1.0, fraction)) * width * 8)
    full, rest = divmod(eighths, 8)
    return ("█" * full + (_EIGHTHS[rest] if rest else "")).ljust(width)


def quoted(text: str, width: int = LABEL_WIDTH) -> str:
    """A token's text as a one-line label: sanitized, whitespace made visible, cut to width."""
    shown = sanitize(text).replace("\n", "⏎").replace("\t", "⇥")
    label = f'"{shown}"'
    return label if len(label) <= width else label[: width - 2] + '…"'


def percent(p: float | None) -> str:
    if p is None:
        return "  —  "
    return f"{100 * p:5.1f}%" if p >= 0.001 or p == 0 else " <0.1%"


class InspectorPanel(Widget, can_focus=True):
    """The inspector (the reply's tokens, the cursor, the alternatives and the marks)."""

    DEFAULT_CSS = """
    InspectorPanel {
        height: auto;
        max-height: 17;
        margin: 0 1;
        padding: 0 1;
        border: round $primary 50%;
        background: $panel;
        color: $foreground;
        display: none;
        &:focus { border: round $primary; }
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("left", "move(-1)", "Previous token", show=False, id="inspector.previous"),
        Binding("right", "move(1)", "Next token", show=False, id="inspector.next"),
        Binding("home", "move_to(0)", "First token", show=False, id="inspector.first"),
        Binding("end", "move_to(-1)", "Last token", show=False, id="inspector.last"),
        Binding("up", "choose(-1)", "Previous alternative", show=False, id="inspector.up"),
        Binding("down", "choose(1)", "Next alternative", show=False, id="inspector.down"),
        Binding("enter", "branch", "Branch here", id="inspector.branch"),
    ]

    index: reactive[int] = reactive(0)
    choice: reactive[int] = reactive(0)

    @dataclass
    class CursorMoved(Message):
        panel: InspectorPanel
        index: int

    @dataclass
    class Branch(Message):
        """Regenerate the reply from token `index`, with `alternative` in its place."""

        panel: InspectorPanel
        index: int
        alternative: Alternative

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id)
        self._tokens: Sequence[ReplyToken] = ()
        self._sampling: Mapping[str, Any] = {}

    # --- what the app gives it -----------------------------------------------------------------
    @property
    def tokens(self) -> Sequence[ReplyToken]:
        return self._tokens

    def set_tokens(self, tokens: Sequence[ReplyToken], index: int | None = None) -> None:
        """The reply to inspect (the same list object as it grows while streaming)."""
        self._tokens = tokens
        if index is not None:
            self.index = index
        self.index = self._clamp(self.index)
        self.refresh(layout=True)

    def set_sampling(self, values: Mapping[str, Any]) -> None:
        """The slider values the marks are computed for (drawn at once)."""
        self._sampling = dict(values)
        self.refresh()

    def _clamp(self, index: int) -> int:
        return max(0, min(index, len(self._tokens) - 1))

    # --- keys ----------------------------------------------------------------------------------
    def watch_index(self, old: int, new: int) -> None:
        if old != new:
            self.choice = 0
        self.post_message(self.CursorMoved(self, new))
        self.refresh(layout=True)

    def watch_choice(self) -> None:
        self.refresh()

    def action_move(self, delta: int) -> None:
        self.index = self._clamp(self.index + delta)

    def action_move_to(self, index: int) -> None:
        self.index = self._clamp(index if index >= 0 else len(self._tokens) - 1)

    def action_choose(self, delta: int) -> None:
        top = self.current.top if self.current is not None else ()
        if top:
            self.choice = max(0, min(self.choice + delta, len(top) - 1))

    def action_branch(self) -> None:
        token = self.current
        if token is None or not token.top:
            self.app.bell()
            return
        self.post_message(self.Branch(self, self.index, token.top[self.choice]))

    @property
    def current(self) -> ReplyToken | None:
        if not self._tokens:
            return None
        return self._tokens[self._clamp(self.index)]

    def marks(self, token: ReplyToken) -> Marks:
        s = self._sampling
        return sampler_marks(
            [a.logprob for a in token.top],
            temperature=float(s.get("temperature", 1.0)),
            top_k=int(s.get("top_k", 0)),
            top_p=float(s.get("top_p", 1.0)),
            min_p=float(s.get("min_p", 0.0)),
            do_sample=bool(s.get("do_sample", True)),
        )

    # --- drawing -------------------------------------------------------------------------------
    def render(self) -> Text:
        token = self.current
        out = Text(end="")
        if token is None:
            out.append("No token data for this reply ", "bold")
            out.append("(the model sent no probabilities, or the reply is from an older run).")
            return out
        i, n = self._clamp(self.index), len(self._tokens)
        out.append(f"token {i + 1}/{n}  ", "bold")
        out.append(quoted(token.label, 40), "bold")
        out.append(f"  p {percent(token.probability).strip()}")
        if token.sampled_logprob is not None:
            out.append(f"  (drawn with {percent(math.exp(token.sampled_logprob)).strip()})")
        out.append("\n")
        if not token.top:
            out.append("No alternatives were recorded for this token.", "italic")
            return out
        marks = self.marks(token)
        top_p = max(a.probability for a in token.top) or 1.0
        for k, (alt, removed) in enumerate(zip(token.top, marks.removed_by)):
            selected = k == self.choice
            line_style = Style(reverse=True) if selected and self.has_focus else Style()
            out.append("▶" if selected else " ", line_style + Style(bold=True))
            out.append("●" if alt.token_id == token.token_id else " ", line_style)
            label_style = line_style + (Style(dim=True, strike=True) if removed else Style())
            out.append(f" {quoted(alt.text):<{LABEL_WIDTH}} ", label_style)
            bar_style = line_style + Style(dim=bool(removed))
            out.append(bar(alt.probability / top_p), bar_style)
            out.append(f" {percent(alt.probability)}", line_style)
            if removed:
                out.append(f"  ✗ {removed}", line_style + Style(italic=True))
            elif marks.final is not None:
                out.append(f"  → {percent(marks.final[k]).strip()}", line_style)
            out.append("\n")
        rest = 1.0 - sum(a.probability for a in token.top)
        out.append(f"   {'rest of the vocabulary':<{LABEL_WIDTH + BAR_WIDTH + 1}} ", "dim")
        out.append(f"{percent(max(0.0, rest))}\n", "dim")
        out.append(
            "←/→ token · ↑/↓ pick · Enter regenerates from it · ● drawn · "
            "✗ cut by the sliders now · → chance now",
            "dim",
        )
        return out
