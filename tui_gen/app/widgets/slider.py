"""A slider for a number in a range: keyboard (arrows, Home/End, PageUp/PageDown) and mouse
(click, drag). Textual has none built in.

    ━━━━━━━━━●──────────  0.80

Floats are first-class: values snap to `step` and are rounded to the step's decimals, so 0.1
steps never drift to 0.30000000000000004; `integer=True` makes the value an int. The value is
drawn next to the track. A change posts Slider.Changed (also for changes made in code, like
Input.Changed does).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget

Number = int | float


def _decimals(step: float) -> int:
    text = f"{step:.10f}".rstrip("0")
    return len(text.split(".")[1]) if "." in text else 0


class Slider(Widget, can_focus=True):
    """A horizontal slider for a number between `minimum` and `maximum`."""

    DEFAULT_CSS = """
    Slider {
        width: 1fr;
        height: 1;
        min-width: 12;
        & > .slider--track { color: $foreground 30%; }
        & > .slider--fill { color: $primary 70%; }
        & > .slider--handle { color: $foreground; text-style: bold; }
        & > .slider--value { color: $foreground-muted; }
        &:focus > .slider--fill { color: $primary; }
        &:focus > .slider--handle { color: $accent; }
        &:focus > .slider--value { color: $foreground; text-style: bold; }
        &:disabled { opacity: 0.5; }
    }
    """

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "slider--track",
        "slider--fill",
        "slider--handle",
        "slider--value",
    }

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("right", "step(1)", "Increase", show=False, id="slider.increase"),
        Binding("left", "step(-1)", "Decrease", show=False, id="slider.decrease"),
        Binding("pageup", "big_step(1)", "Increase more", show=False, id="slider.page_up"),
        Binding("pagedown", "big_step(-1)", "Decrease more", show=False, id="slider.page_down"),
        Binding("home", "to_minimum", "Minimum", show=False, id="slider.minimum"),
        Binding("end", "to_maximum", "Maximum", show=False, id="slider.maximum"),
    ]

    value: reactive[Number] = reactive(0.0, init=False)

    @dataclass
    class Changed(Message):
        """The value changed (by the user or in code)."""

        slider: Slider
        value: Number

        @property
        def control(self) -> Slider:
            return self.slider

    def __init__(
        self,
        value: Number = 0.0,
        minimum: Number = 0.0,
        maximum: Number = 1.0,
        step: Number = 0.01,
        *,
        big_step: Number | None = None,
        integer: bool = False,
        value_format: str | Callable[[Number], str] | None = None,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
        disabled: bool = False,
        tooltip: str | None = None,
    ) -> None:
        if not maximum > minimum:
            raise ValueError(f"Slider: maximum ({maximum}) must be above minimum ({minimum})")
        if not step > 0:
            raise ValueError(f"Slider: step must be positive, got {step}")
        super().__init__(name=name, id=id, classes=classes, disabled=disabled)
        self.minimum = minimum
        self.maximum = maximum
        self.step = step
        self.big_step = big_step if big_step is not None else max(step, (maximum - minimum) / 10)
        self.integer = integer
        if value_format is None:
            value_format = "{:d}" if integer else f"{{:.{max(1, _decimals(step))}f}}"
        self._format = value_format
        self._dragging = False
        if tooltip:
            self.tooltip = tooltip
        self.set_reactive(Slider.value, self.snap(value))

    # --- value ---------------------------------------------------------------------------
    def snap(self, value: Number) -> Number:
        """`value` clamped to the range and rounded to the step grid."""
        value = min(max(value, self.minimum), self.maximum)
        steps = round((value - self.minimum) / self.step)
        value = min(max(self.minimum + steps * self.step, self.minimum), self.maximum)
        if self.integer:
            return round(value)
        return round(value, _decimals(self.step))

    def validate_value(self, value: Number) -> Number:
        return self.snap(value)

    def watch_value(self, value: Number) -> None:
        self.post_message(self.Changed(self, value))

    def set_range(self, minimum: Number, maximum: Number) -> None:
        """Change the range (e.g. once the model's context size is known); re-snaps the value."""
        self.minimum, self.maximum = minimum, maximum
        self.value = self.snap(self.value)
        self.refresh()

    def format_value(self, value: Number) -> str:
        if callable(self._format):
            return self._format(value)
        return self._format.format(int(value) if self.integer else value)

    @property
    def fraction(self) -> float:
        """Where the value sits in the range, 0..1."""
        return (self.value - self.minimum) / (self.maximum - self.minimum)

    # --- drawing -------------------------------------------------------------------------
    def _value_width(self) -> int:
        return max(len(self.format_value(v)) for v in (self.minimum, self.maximum, self.value))

    def _track_width(self) -> int:
        return max(3, self.content_region.width - self._value_width() - 1)

    def render(self) -> Text:
        track = self._track_width()
        pos = round(self.fraction * (track - 1))
        style = self.get_component_rich_style
        text = Text(no_wrap=True, overflow="crop", end="")
        text.append("━" * pos, style("slider--fill"))
        text.append("●", style("slider--handle"))
        text.append("─" * (track - 1 - pos), style("slider--track"))
        text.append(" " + self.format_value(self.value).rjust(self._value_width()))
        text.stylize(style("slider--value"), track, len(text))
        return text

    # --- keyboard --------------------------------------------------------------------------
    def action_step(self, direction: int) -> None:
        self.value = self.value + direction * self.step

    def action_big_step(self, direction: int) -> None:
        self.value = self.value + direction * self.big_step

    def action_to_minimum(self) -> None:
        self.value = self.minimum

    def action_to_maximum(self) -> None:
        self.value = self.maximum

    # --- mouse -----------------------------------------------------------------------------
    def _value_at(self, x: int) -> Number:
        track = self._track_width()
        x = min(max(x, 0), track - 1)
        return self.minimum + (self.maximum - self.minimum) * x / (track - 1)

    def on_mouse_down(self, event: events.MouseDown) -> None:
        offset = event.get_content_offset(self)
        if offset is None or offset.x >= self._track_width():
            return
        event.stop()
        self.focus()
        self._dragging = True
        self.capture_mouse()
        self.value = self._value_at(offset.x)

    def on_mouse_move(self, event: events.MouseMove) -> None:
        if self._dragging:
            event.stop()
            self.value = self._value_at(event.get_content_offset_capture(self).x)

    def on_mouse_up(self, event: events.MouseUp) -> None:
        if self._dragging:
            event.stop()
            self._dragging = False
            self.capture_mouse(False)
