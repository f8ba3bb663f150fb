"""The reusable widgets on their own (Slider, StatusBar) and the sliders inside the app."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fake_engine import FakeEngine, isolated_dirs, make_app, ready, reply, send, wait_until
from textual.app import App, ComposeResult

from tui_gen.app.widgets.slider import Slider
from tui_gen.app.widgets.status import StatusBar, context_bar

__all__ = ["isolated_dirs"]


class SliderApp(App[None]):
    """One slider, 30 cells wide: for 0.00-1.00 a 25-cell track, a space and a 4-cell value."""

    CSS = "Slider { width: 30; }"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__()
        self.kwargs = kwargs
        self.changes: list[float] = []

    def compose(self) -> ComposeResult:
        yield Slider(**self.kwargs)

    def on_slider_changed(self, event: Slider.Changed) -> None:
        self.changes.append(event.value)


async def test_slider_keys_step_snap_and_clamp() -> None:
    app = SliderApp(value=0.8, minimum=0.0, maximum=2.0, step=0.05, big_step=0.25)
    async with app.run_test() as pilot:
        slider = app.query_one(Slider)
        slider.focus()
        await pilot.press("right", "right", "right")
        assert slider.value == 0.95  # not 0.9500000000000001
        await pilot.press("left")
        assert slider.value == 0.9
        await pilot.press("pageup")
        assert slider.value == 1.15
        await pilot.press("pagedown", "pagedown")
        assert slider.value == 0.65
        await pilot.press("end", "right")
        assert slider.value == 2.0
        await pilot.press("home", "left")
        assert slider.value == 0.0
        await pilot.pause()
        assert app.changes == [0.85, 0.9, 0.95, 0.9, 1.15, 0.9, 0.65, 2.0, 0.0]


async def test_integer_slider_stays_integer() -> None:
    app = SliderApp(value=40, minimum=0, maximum=200, step=1, big_step=10, integer=True)
    async with app.run_test() as pilot:
        slider = app.query_one(Slider)
        slider.focus()
        await pilot.press("right", "pageup")
        assert slider.value == 51 and isinstance(slider.value, int)
        slider.value = 12.6
        assert slider.value == 13 and isinstance(slider.value, int)


async def test_slider_shows_its_value() -> None:
    app = SliderApp(value=0.5, minimum=0.0, maximum=1.0, step=0.01)
    async with app.run_test() as pilot:
        await pilot.pause()
        line = str(app.query_one(Slider).render())
        assert line.endswith(" 0.50") and "●" in line and len(line) == 30


async def test_slider_click_and_drag() -> None:
    app = SliderApp(value=0.0, minimum=0.0, maximum=1.0, step=0.01)
    async with app.run_test() as pilot:
        slider = app.query_one(Slider)
        await pilot.click(Slider, offset=(24, 0))  # the right end of the 25-cell track
        assert slider.value == 1.0 and app.focused is slider
        await pilot.click(Slider, offset=(0, 0))
        assert slider.value == 0.0
        await pilot.mouse_down(Slider, offset=(0, 0))
        await pilot.hover(Slider, offset=(12, 0))  # dragging with the button held
        assert slider.value == 0.5
        await pilot.hover(Slider, offset=(40, 0))  # past the end while dragging: the maximum
        assert slider.value == 1.0
        await pilot.mouse_up(Slider, offset=(24, 0))
        await pilot.hover(Slider, offset=(6, 0))  # released: moving no longer drags
        assert slider.value == 1.0
        before = slider.value
        await pilot.click(Slider, offset=(27, 0))  # on the value text: no change
        assert slider.value == before


def test_slider_rejects_an_empty_range() -> None:
    with pytest.raises(ValueError, match="maximum"):
        Slider(0.5, 1.0, 1.0)


async def test_status_bar_shows_state_model_speed_and_context() -> None:
    class StatusApp(App[None]):
        def compose(self) -> ComposeResult:
            yield StatusBar()

    app = StatusApp()
    async with app.run_test(size=(100, 3)) as pilot:
        bar = app.query_one(StatusBar)
        bar.state, bar.model, bar.device = "generating", "cooking", "cpu · float32"
        bar.speed, bar.context_used, bar.context_max = "41.2 tok/s", 512, 2048
        await pilot.pause()
        line = str(bar.render())
        assert line.startswith("▶ generating  cooking  cpu · float32")
        assert line.endswith("41.2 tok/s  ctx ▰▰▱▱▱▱▱▱▱▱ 512/2048")


def test_context_bar() -> None:
    assert context_bar(0, 100) == "▱" * 10
    assert context_bar(1, 100) == "▰" + "▱" * 9  # anything used shows
    assert context_bar(100, 100) == "▰" * 10
    assert context_bar(500, 100) == "▰" * 10


@pytest.mark.slow
@pytest.mark.usefixtures("isolated_dirs")
async def test_app_sliders_apply_to_the_next_reply_and_persist(tmp_path: Path) -> None:
    fake = FakeEngine()
    app = make_app(tmp_path, fake)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        assert app.panel.slider("temperature").value == 0.7  # the model's default
        app.panel.slider("temperature").focus()
        await pilot.press("right", "right")
        await pilot.press("tab", "end")  # top-k to its maximum
        await pilot.click("#param-top_p", offset=(0, 0))  # top-p all the way down
        await pilot.pause()
        assert app.sampling["temperature"] == 0.8 and app.sampling["top_k"] == 200
        assert app.sampling["top_p"] == 0.0
        await reply(pilot, "go")
        params = fake.calls[-1]["params"]
        assert (params["temperature"], params["top_k"]) == (0.8, 200)
        assert 0 < params["top_p"] < 1e-3  # 0 means "only the most likely token"
        assert app.conversation.turns[-1].params["temperature"] == 0.8
        app.save_settings()
    again = make_app(tmp_path, FakeEngine())
    async with again.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await wait_until(pilot, lambda: again.panel.slider("top_k").value == 200)
        assert again.panel.slider("temperature").value == 0.8  # remembered, beats the model


@pytest.mark.usefixtures("isolated_dirs")
async def test_command_line_values_beat_remembered_ones(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    (config / "settings.json").write_text('{"sampling": {"temperature": 1.2, "top_k": 5}}')
    app = make_app(tmp_path, FakeEngine(), sampling={"temperature": 0.1})
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await pilot.pause()
        assert app.sampling["temperature"] == 0.1 and app.sampling["top_k"] == 5
        assert app.sampling["top_p"] == 0.9  # from the model


@pytest.mark.slow
@pytest.mark.usefixtures("isolated_dirs")
async def test_streaming_stays_pinned_to_the_bottom_unless_the_user_scrolls_up(
    tmp_path: Path,
) -> None:
    long = "\n\n".join(f"Step {i}: stir the soup." for i in range(80))
    fake = FakeEngine([long], pause_after=100)
    app = make_app(tmp_path, fake, flush_interval=0.0)
    async with app.run_test(size=(120, 30)) as pilot:
        await ready(pilot)
        await send(pilot, "soup?")
        await wait_until(pilot, fake.paused.is_set)
        view = app.chat_view
        await wait_until(pilot, lambda: "Step 19:" in view.last_reply().source)
        await pilot.wait_for_scheduled_animations()
        assert view.max_scroll_y > 0 and view.scroll_y == view.max_scroll_y  # pinned
        view.focus()
        await pilot.press("pageup")  # the user wants to read something further up
        await pilot.pause()
        held = view.scroll_y
        assert held < view.max_scroll_y
        fake.resume.set()
        await wait_until(pilot, lambda: not app.generating)
        await pilot.wait_for_scheduled_animations()
        assert view.scroll_y == held < view.max_scroll_y  # the text did not yank the view
        await pilot.press("end")  # back at the bottom: pinned again for the next reply
        await pilot.pause()
        assert view.scroll_y == view.max_scroll_y


@pytest.mark.usefixtures("isolated_dirs")
async def test_values_set_twice_in_a_row_settle_without_a_message_storm(tmp_path: Path) -> None:
    """Two code changes of one value before the messages are handled once made the stale echo
    and the new one set each other back forever (the UI thread at 100%)."""
    from tui_gen.app.widgets.side_panel import SamplingPanel

    app = make_app(tmp_path, FakeEngine())
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await pilot.pause()
        seen: list[Any] = []
        original = app.on_sampling_panel_changed

        def counting(message: SamplingPanel.Changed) -> None:
            seen.append((message.name, message.value))
            original(message)

        app.on_sampling_panel_changed = counting  # type: ignore[method-assign]
        app.set_param("temperature", 0.3, explicit=False)
        app.set_param("temperature", 1.1, explicit=False)
        for _ in range(20):
            await pilot.pause(0.01)
        assert len(seen) <= 2, f"{len(seen)} Changed messages for two changes"
        assert app.sampling["temperature"] == 1.1
        assert app.panel.slider("temperature").value == 1.1
        assert "temperature" not in app._explicit  # set in code: not the user's choice
