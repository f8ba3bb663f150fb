"""The sampling panel: one labelled Slider per tunable value (params.PARAMS by default).

It translates Slider.Changed into SamplingPanel.Changed carrying the parameter name, so the app
does not need to know widget ids. Values apply to the next reply; the panel says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from textual import on
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import Label, Static

from tui_gen.app.params import PARAMS, Number, ParamSpec
from tui_gen.app.widgets.slider import Slider


class SamplingPanel(VerticalScroll, can_focus=False):
    """Sliders for the sampling values, with their current values shown. The panel itself is
    no focus stop (nothing would show it has focus): Tab goes from slider to slider."""

    DEFAULT_CSS = """
    SamplingPanel {
        width: 34;
        height: 1fr;
        padding: 0 1;
        background: $panel;
        scrollbar-size-vertical: 1;
        & > .panel--title { text-style: bold; color: $primary; margin: 1 0 0 0; }
        & > .panel--label { margin: 1 0 0 0; color: $foreground; }
        & > .panel--hint { color: $foreground-muted; margin: 1 0 1 0; }
        & > Slider { margin: 0; }
    }
    """

    @dataclass
    class Changed(Message):
        """A value was changed (by its slider, or by set_value)."""

        panel: SamplingPanel
        name: str
        value: Number

        @property
        def control(self) -> SamplingPanel:
            return self.panel

    def __init__(
        self,
        values: dict[str, Number] | None = None,
        specs: Sequence[ParamSpec] = PARAMS,
        *,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.specs = list(specs)
        self._initial = dict(values or {})

    def compose(self) -> ComposeResult:
        yield Label("Sampling", classes="panel--title")
        for spec in self.specs:
            yield Label(spec.label, classes="panel--label")
            yield Slider(
                self._initial.get(spec.name, spec.default),
                spec.minimum,
                spec.maximum,
                spec.step,
                big_step=spec.big_step,
                integer=spec.integer,
                value_format=spec.format,
                id=f"param-{spec.name}",
                tooltip=f"{spec.label}: {spec.help}  (/{spec.slash})",
            )
        yield Static("Changes apply to the next reply.", classes="panel--hint")

    def slider(self, name: str) -> Slider:
        return self.query_one(f"#param-{name}", Slider)

    def values(self) -> dict[str, Number]:
        return {spec.name: self.slider(spec.name).value for spec in self.specs}

    def set_value(self, name: str, value: Number) -> None:
        self.slider(name).value = value

    def set_maximum(self, name: str, maximum: Number) -> None:
        slider = self.slider(name)
        slider.set_range(slider.minimum, maximum)

    @on(Slider.Changed)
    def _slider_changed(self, event: Slider.Changed) -> None:
        """Pass on a slider's change unless the slider has moved on since.

        A stale message must be dropped: when a value is set twice before the messages are
        handled (a drag, two slash commands, defaults then settings), relaying the older value
        would make the app set it back, whose echo would set the newer one back, and so on
        forever, a ping-pong that kept the UI thread busy and starved the decode thread."""
        event.stop()
        if event.value != event.slider.value:
            return  # a newer Changed for this slider is already queued
        name = (event.slider.id or "").removeprefix("param-")
        self.post_message(self.Changed(self, name, event.value))
