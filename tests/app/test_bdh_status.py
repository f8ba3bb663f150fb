"""The status bar's context for a recurrent model (BDH): no end, or the length trained on."""

from __future__ import annotations

from pathlib import Path

from textual.app import App, ComposeResult

from tui_gen.app.widgets.status import StatusBar
from tui_gen.app.worker import model_info


async def test_status_bar_says_recurrent_unbounded() -> None:
    class StatusApp(App[None]):
        def compose(self) -> ComposeResult:
            yield StatusBar()

    app = StatusApp()
    async with app.run_test(size=(100, 3)) as pilot:
        bar = app.query_one(StatusBar)
        bar.state, bar.model = "ready", "bdh"
        bar.context_used, bar.context_note = 5123, "recurrent, unbounded"
        await pilot.pause()
        assert str(bar.render()).endswith("ctx 5123 · recurrent, unbounded")
        bar.context_max = 512  # a config that says what it was trained on
        await pilot.pause()
        assert str(bar.render()).endswith("512 trained · recurrent, unbounded")


def test_model_info_of_a_bdh_engine(tiny_bdh: Path) -> None:
    from tui_gen import Generator

    info = model_info(Generator.load(tiny_bdh, device="cpu"))
    assert info.context_note == "recurrent, unbounded" and info.trained_context == 0
