"""The status bar: state, model, device and dtype, reply speed, and how full the context is.

    ● ready  cooking  cpu · float32          41.2 tok/s · first token 0.12 s  ctx ▰▰▱▱▱▱ 312/2048

One widget and one render: it changes on every streamed batch, so it must be cheap. It shows
no clock-derived text that is not a measurement of the last reply (snapshots stay stable).
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

STATES = {
    "loading": ("◌", "loading model"),
    "ready": ("●", "ready"),
    "generating": ("▶", "generating"),
    "stopping": ("■", "stopping"),
    "stopped": ("■", "stopped"),
    "error": ("✖", "error"),
}


def context_bar(used: int, total: int, width: int = 10) -> str:
    """A text gauge: ▰ for the used share of the context, ▱ for the rest."""
    if total <= 0:
        return "▱" * width
    filled = min(width, round(width * used / total))
    if used > 0 and filled == 0:
        filled = 1
    return "▰" * filled + "▱" * (width - filled)


class StatusBar(Widget):
    """One line of facts about the model and the last reply."""

    DEFAULT_CSS = """
    StatusBar {
        height: 1;
        background: $panel;
        color: $foreground-muted;
        padding: 0 1;
        & > .status--state { color: $success; text-style: bold; }
        & > .status--busy { color: $accent; text-style: bold; }
        & > .status--warn { color: $warning; text-style: bold; }
        & > .status--error { color: $error; text-style: bold; }
        & > .status--model { color: $foreground; text-style: bold; }
        & > .status--bar { color: $primary; }
        & > .status--bar-full { color: $warning; }
    }
    """

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "status--state", "status--busy", "status--warn", "status--error",
        "status--model", "status--bar", "status--bar-full",
    }  # fmt: skip

    state: reactive[str] = reactive("loading")
    model: reactive[str] = reactive("")
    device: reactive[str] = reactive("")
    speed: reactive[str] = reactive("")
    context_used: reactive[int] = reactive(0)
    context_max: reactive[int] = reactive(0)
    #: "recurrent, unbounded" for BDH: the context has no end, context_max is the trained length
    context_note: reactive[str] = reactive("")

    def render(self) -> Text:
        """The first layout that fits the width: full, then shorter labels (speed without the
        first-token time, a shorter gauge, no device, the state as its icon, no gauge), and
        only then the model name cut short, so a narrow terminal never shows "· h" or "…"."""
        width = self.content_region.width
        for level in range(len(_LEVELS)):
            left, right = self._parts(level)
            if left.cell_len + 1 + right.cell_len <= width:
                break
        gap = width - left.cell_len - right.cell_len
        if gap < 1:
            left.truncate(max(0, width - right.cell_len - 1), overflow="ellipsis")
            gap = max(1, width - left.cell_len - right.cell_len)
        return Text.assemble(left, " " * gap, right, no_wrap=True, end="")

    def _parts(self, level: int) -> tuple[Text, Text]:
        short_speed, bar_width, device, state_label, bar = _LEVELS[level]
        style = self.get_component_rich_style
        icon, label = STATES.get(self.state, ("?", self.state))
        state_class = {
            "loading": "status--busy",
            "generating": "status--busy",
            "stopping": "status--warn",
            "stopped": "status--warn",
            "error": "status--error",
        }.get(self.state, "status--state")
        left = Text(no_wrap=True, overflow="ellipsis", end="")
        left.append(f"{icon} {label}" if state_label else icon, style(state_class))
        if self.model:
            left.append("  ")
            left.append(self.model, style("status--model"))
        if self.device and device:
            left.append(f"  {self.device}")
        right = Text(no_wrap=True, end="")
        if self.speed:
            speed = self.speed.split(" · ")[0] if short_speed else self.speed
            right.append(f"{speed}  ")
        if self.context_note and not self.context_max:
            right.append(f"ctx {self.context_used} · {self.context_note}", style("status--bar"))
        elif self.context_note:
            if bar:
                right.append("ctx ")
                right.append(
                    context_bar(self.context_used, self.context_max, bar_width),
                    style("status--bar"),
                )
                right.append(" ")
            right.append(f"{self.context_used}/{self.context_max} trained · {self.context_note}")
        elif self.context_max:
            full = self.context_used >= 0.9 * self.context_max
            if bar:
                right.append("ctx ")
                right.append(
                    context_bar(self.context_used, self.context_max, bar_width),
                    style("status--bar-full" if full else "status--bar"),
                )
                right.append(" ")
            right.append(f"{self.context_used}/{self.context_max}")
        return left, right


#: (short speed, gauge width, show device, state label, show gauge), widest first
_LEVELS: tuple[tuple[bool, int, bool, bool, bool], ...] = (
    (False, 10, True, True, True),
    (True, 10, True, True, True),
    (True, 5, True, True, True),
    (True, 5, False, True, True),
    (True, 5, False, False, True),
    (True, 5, False, False, False),
)
