"""Make the README's screenshots: SVGs of the real app talking to the demo model.

    python -m dev.screenshots                   # models/cooking -> screenshots/
    python -m dev.screenshots MODEL --out DIR

It drives the app headless (App.run_test) at a fixed size with greedy decoding, so the text is
the same on every run (the speed figures are real measurements and differ). Settings and
transcripts go to a temporary folder: your own are not touched.

Files written: chat-streaming.svg (a reply mid-stream), chat-dark.svg and chat-light.svg (the
same conversation in a dark and a light theme), sliders.svg (the sampling panel in use),
transcripts.svg (the transcript browser), help.svg (keys and commands), heatmap.svg (the last
reply shaded by token probability) and inspector.svg (the token inspector on that reply's least
likely token, with top-k and min-p cutting some alternatives). The last two need an engine that
sends token probabilities (SamplingParams.logprobs); without them they are skipped, with a note.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = REPO / "models" / "cooking"
SIZE = (120, 36)
PROMPTS = [
    "How do I make lasagne?",
    "What do I need for hummus?",
    "I want to cook pad thai tonight.",
]
# a short follow-up about the dish first (it is shown, not caught mid-stream), then a new dish
FOLLOW_UPS = [
    "Can I freeze it?",
    "How do I make shakshuka?",
    "Give me a recipe for a quick tomato soup.",
]
GATE_AFTER = 30


class _Gate:
    """Pauses the engine after `after` tokens of the next reply until released."""

    def __init__(self, engine: Any, after: int) -> None:
        from tui_gen.engine.events import TokenEvent

        self._token = TokenEvent
        self.engine, self.after = engine, after
        self.original = engine.stream_events
        self.paused, self.release = threading.Event(), threading.Event()
        engine.stream_events = self.stream

    def stream(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        n = 0
        for ev in self.original(*args, **kwargs):
            yield ev
            if isinstance(ev, self._token):
                n += 1
                if n == self.after:
                    self.paused.set()
                    self.release.wait(timeout=60)

    def remove(self) -> None:
        self.release.set()
        self.engine.stream_events = self.original


async def _until(pilot: Any, predicate: Any, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit("screenshots: timed out (is the model very slow?)")
        await pilot.pause(0.05)


async def _ask(pilot: Any, text: str) -> None:
    app = pilot.app
    n = len(app.conversation.turns)
    app.prompt.focus()
    app.prompt.insert(text)
    await pilot.press("enter")
    await _until(pilot, lambda: len(app.conversation.turns) >= n + 2 and not app.generating)


def _paused_or_done(gate: _Gate, app: Any) -> bool:
    return gate.paused.is_set() or not app.generating


async def _stream_until_gate(pilot: Any, prompts: list[str], after: int) -> _Gate:
    """Send follow-ups until one streams at least `after` tokens (a tiny model may answer a
    follow-up in a few words); return with the engine paused mid-reply."""
    app = pilot.app
    for text in prompts:
        gate = _Gate(app.engine, after=after)
        app.prompt.insert(text)
        await pilot.press("enter")
        await _until(pilot, partial(_paused_or_done, gate, app))
        if gate.paused.is_set():
            return gate
        gate.remove()
    raise SystemExit("screenshots: no reply was long enough to catch mid-stream")


def _save(app: Any, out: Path, name: str) -> Path:
    path = out / name
    app.save_screenshot(filename=name, path=str(out))
    print(f"wrote {path}")
    return path


async def make_screenshots(model: str, out: Path, device: str = "cpu") -> list[Path]:
    """Drive the app through its main states and save one SVG per state."""
    from tui_gen.app.app import AppConfig, TuiGenApp
    from tui_gen.app.settings import Settings

    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="tui-gen-shots-"))
    os.environ["TUI_GEN_CONFIG_DIR"] = str(tmp / "config")
    config = AppConfig(
        model=model,
        device=device,
        transcripts=str(tmp / "transcripts"),
        theme="tui-gen",
        sampling={"temperature": 0.0, "max_new_tokens": 320},
    )
    app = TuiGenApp(config, settings=Settings.load(tmp / "config" / "settings.json"))
    written: list[Path] = []
    async with app.run_test(size=SIZE) as pilot:
        await _until(pilot, lambda: app.engine is not None or app.load_error is not None)
        if app.load_error:
            raise SystemExit(f"screenshots: {app.load_error}")
        # two older conversations for the browser
        for prompt in PROMPTS[1:]:
            await _ask(pilot, prompt)
            await pilot.press("ctrl+r")
            await pilot.pause(0.3)
        app.clear_notifications()
        await _ask(pilot, PROMPTS[0])
        gate = await _stream_until_gate(pilot, FOLLOW_UPS, after=GATE_AFTER)
        await pilot.pause(1.0)  # let the stream draw what it has
        app.clear_notifications()
        written.append(_save(app, out, "chat-streaming.svg"))
        gate.remove()
        await _until(pilot, lambda: not app.generating)
        await pilot.pause(0.5)
        app.clear_notifications()
        written.append(_save(app, out, "chat-dark.svg"))
        app.theme = "tui-gen-light"
        await pilot.pause(0.5)
        written.append(_save(app, out, "chat-light.svg"))
        app.theme = "saffron"
        app.panel.slider("temperature").focus()
        for key in ("right",) * 14 + ("tab", "pagedown", "tab", "left", "left"):
            await pilot.press(key)
        await pilot.pause(0.5)
        app.clear_notifications()
        written.append(_save(app, out, "sliders.svg"))
        app.theme = "tui-gen"
        await pilot.press("ctrl+o")
        await pilot.pause(1.5)
        await pilot.press("down")
        await pilot.pause(0.5)
        app.clear_notifications()
        written.append(_save(app, out, "transcripts.svg"))
        await pilot.press("escape")
        await pilot.press("f1")
        await pilot.pause(0.5)
        written.append(_save(app, out, "help.svg"))
        await pilot.press("escape")
        written += await _token_views(pilot, out)
    return written


async def _token_views(pilot: Any, out: Path) -> list[Path]:
    """heatmap.svg and inspector.svg, of the last reply (skipped without token data)."""
    app = pilot.app
    turn = app.conversation.last("assistant")
    tokens = turn.tokens if turn is not None else None
    if not tokens or all(t.logprob is None for t in tokens):
        print("screenshots: the engine sent no token probabilities; heatmap.svg and "
              "inspector.svg skipped")  # fmt: skip
        return []
    app.prompt.focus()
    await pilot.press("f3")
    await pilot.pause(0.5)
    app.chat_view.scroll_end(animate=False)
    await pilot.pause(0.3)
    app.clear_notifications()
    written = [_save(app, out, "heatmap.svg")]
    await pilot.press("f3")
    app.set_param("temperature", 0.8, explicit=False)
    app.set_param("top_k", 5, explicit=False)
    app.set_param("min_p", 0.05, explicit=False)
    least = min(range(len(tokens)), key=lambda i: tokens[i].logprob or 0.0)
    await pilot.press("f9")
    app.inspector.index = least
    await pilot.press("down")
    await pilot.pause(0.5)
    app.clear_notifications()
    written.append(_save(app, out, "inspector.svg"))
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dev.screenshots", description=__doc__)
    p.add_argument("model", nargs="?", default=str(DEFAULT_MODEL))
    p.add_argument("--out", default=str(REPO / "screenshots"), help="folder for the SVGs")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    if not Path(args.model).exists():
        print(f"screenshots: {args.model} does not exist", file=sys.stderr)
        return 2
    asyncio.run(make_screenshots(args.model, Path(args.out), args.device))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
