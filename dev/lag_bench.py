"""Responsiveness benchmark: stream replies as fast as the model can go and measure how late the
event loop gets (the lag a user would feel as sluggish typing), and check no token is lost.

    python -m dev.lag_bench                      # the demo model, models/cooking
    python -m dev.lag_bench MODEL --tokens 2000
    python -m dev.lag_bench --synthetic          # no model: 1000 tokens a second
    python -m dev.lag_bench --synthetic --inspector   # with the heat map and inspector open

A probe task sleeps PROBE seconds in a loop on the app's event loop; how much later than asked
it wakes up is the loop's lag. The app runs headless (Textual's test driver) at a fixed size,
doing all of its real work (Markdown streaming, layout, rendering) except writing to a
terminal. Target: p99 under 50 ms. Not a test: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

PROBE = 0.005  # seconds between probes
DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "models" / "cooking"
PROMPTS = [
    "How do I make a simple tomato sauce?",
    "Give me a recipe for pancakes.",
    "What can I cook with rice, eggs and spinach?",
    "How long should I roast a chicken?",
    "Write a shopping list for a vegetable soup.",
]


class _Counter:
    """Wraps an engine's stream_events to count what it really produced."""

    def __init__(self, engine: Any) -> None:
        from tui_gen.engine.events import FinishEvent, TokenEvent

        self._token, self._finish = TokenEvent, FinishEvent
        self.original = engine.stream_events
        self.tokens = 0
        self.finals: list[str] = []
        engine.stream_events = self.stream

    def stream(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        for ev in self.original(*args, **kwargs):
            if isinstance(ev, self._token):
                self.tokens += 1
            elif isinstance(ev, self._finish):
                self.finals.append(ev.text)
            yield ev


class SyntheticEngine:
    """An engine with no model: Markdown-ish tokens every `step` seconds (default 1 ms, far
    faster than any model on a CPU; a model step releases the GIL like this sleep does)."""

    name = "synthetic"
    device = "cpu"
    dtype = "none"
    chat_template = "synthetic"

    def __init__(
        self, tokens_per_reply: int = 2000, max_context: int = 1 << 20, step: float = 0.001
    ) -> None:
        from tui_gen.options import SamplingParams

        self.max_context = max_context
        self.step = step
        self.defaults = SamplingParams(max_new_tokens=tokens_per_reply)
        self.tokenizer = type("Tok", (), {"bos_token": "", "eos_token": ""})()
        self.cached_tokens = 0

    def params(self, params: Any = None, **overrides: Any) -> Any:
        return (params or self.defaults).replace(**overrides)

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return [0] * len(text.split())

    def reset(self) -> None:
        self.cached_tokens = 0

    def stream_events(self, ids: list[int], params: Any, *, cancel: Any = None) -> Iterator[Any]:
        from tui_gen.engine.events import (
            FinishEvent,
            GenerationStats,
            TokenAlternative,
            TokenEvent,
            TokenLogprobs,
        )

        words = ["Stir", "the", "**sauce**", "gently,", "then", "`simmer`", "for", "ten"]
        n_top = params.logprobs
        top = tuple(
            TokenAlternative(100 + k, f" alt{k}", math.log(0.5 ** (k + 1))) for k in range(n_top)
        )
        text, n, t0 = "", 0, time.perf_counter()
        for i in range(params.max_new_tokens):
            if cancel is not None and cancel.is_set():
                break
            piece = words[i % len(words)] + ("\n\n" if i % 97 == 96 else " ")
            if i % 400 == 200:
                piece = "\n\n```python\nprint('taste')\n```\n\n"
            text += piece
            n += 1
            self.cached_tokens = len(ids) + n
            lp = None
            if n_top:  # what a model's step would attach (the numbers do not matter here)
                p = math.log((1 + i % 9) / 10)
                lp = TokenLogprobs(i, piece, p, top, p, top)
            yield TokenEvent(i, piece, logprobs=lp)
            time.sleep(self.step)
        dt = time.perf_counter() - t0
        yield FinishEvent(
            "length", text, list(range(n)), GenerationStats(generated_tokens=n, decode_seconds=dt)
        )


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run_bench(
    model: str | None,
    tokens: int,
    size: tuple[int, int],
    device: str = "auto",
    inspector: bool = False,
) -> dict[str, Any]:
    """Run the app headless, stream about `tokens` tokens, return the measurements;
    `inspector`: with the token inspector (and so the heat map) open on the streaming reply."""
    from tui_gen.app.app import AppConfig, TuiGenApp
    from tui_gen.app.messages import ReplyChunk
    from tui_gen.app.settings import Settings
    from tui_gen.app.transcripts.store import TranscriptStore
    from tui_gen.sanitize import sanitize

    tmp = Path(tempfile.mkdtemp(prefix="tui-gen-lag-"))
    if model is None:
        synthetic = SyntheticEngine(tokens)

        def factory() -> Any:
            return synthetic
    else:
        from tui_gen.app.worker import load_generator

        def factory() -> Any:
            return load_generator(model, device=device)

    app = TuiGenApp(
        AppConfig(model=model or "synthetic", transcripts=str(tmp)),
        engine_factory=factory,
        settings=Settings.load(tmp / "settings.json"),
        store=TranscriptStore(tmp),
    )
    chunks: list[ReplyChunk] = []
    original_post = app.post_message

    def post(message: Any) -> bool:
        if isinstance(message, ReplyChunk):
            chunks.append(message)
        return original_post(message)

    app.post_message = post  # type: ignore[method-assign]
    lags: list[float] = []
    streaming = False

    async def probe() -> None:
        while True:
            t0 = time.perf_counter()
            await asyncio.sleep(PROBE)
            if streaming:
                lags.append(time.perf_counter() - t0 - PROBE)

    async with app.run_test(size=size) as pilot:
        while app.engine is None and app.load_error is None:
            await pilot.pause(0.05)
        if app.load_error:
            raise SystemExit(f"lag_bench: {app.load_error}")
        counter = _Counter(app.engine)
        app.set_param("max_new_tokens", min(tokens, app.info.max_context // 2), explicit=False)
        app.set_param("temperature", 0.7, explicit=False)
        if inspector:
            app.open_inspector()
        task = asyncio.create_task(probe())
        t_start = time.perf_counter()
        shown: list[str] = []
        replies = 0
        while counter.tokens < tokens and replies < 50:
            if replies and replies % 4 == 0:
                await app.action_reset()  # keep the conversation inside the context
            streaming = True
            app.prompt.focus()  # the inspector, when open, keeps following the last reply
            app.prompt.insert(PROMPTS[replies % len(PROMPTS)])
            await pilot.press("enter")
            while app.generating:
                await asyncio.sleep(0.02)
            streaming = False
            replies += 1
            last = app.chat_view.last_reply()
            shown.append(last.source if last is not None else "")
        elapsed = time.perf_counter() - t_start
        inspected = len(app.inspector.tokens)
        task.cancel()
        await app.action_reset()
    finals = [sanitize(t) for t in counter.finals]
    received = sum(c.tokens for c in chunks)
    return {
        "model": app.info.name if app.info else model,
        "device": app.info.device if app.info else "",
        "replies": replies,
        "tokens": counter.tokens,
        "tokens_received": received,
        "tokens_lost": counter.tokens - received,
        "text_mismatches": sum(a != b for a, b in zip(shown, finals)),
        "messages": len(chunks),
        "tokens_per_second": counter.tokens / elapsed if elapsed else 0.0,
        "lag_p50_ms": 1000 * _percentile(lags, 0.50),
        "lag_p99_ms": 1000 * _percentile(lags, 0.99),
        "lag_max_ms": 1000 * max(lags, default=0.0),
        "lag_mean_ms": 1000 * (statistics.fmean(lags) if lags else 0.0),
        "probes": len(lags),
        "inspector": inspector,
        "inspected_tokens": inspected,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dev.lag_bench", description=__doc__)
    p.add_argument("model", nargs="?", default=None, help=f"default: {DEFAULT_MODEL}")
    p.add_argument("--synthetic", action="store_true", help="no model: a token every millisecond")
    p.add_argument("--tokens", type=int, default=1500, help="tokens to stream in total")
    p.add_argument("--size", default="120x40", help="terminal size, COLSxROWS")
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--inspector", action="store_true", help="with the heat map and token inspector open"
    )
    args = p.parse_args(argv)
    model = None if args.synthetic else (args.model or str(DEFAULT_MODEL))
    if model is not None and not Path(model).exists():
        print(f"lag_bench: {model} does not exist (try --synthetic)", file=sys.stderr)
        return 2
    cols, rows = (int(x) for x in args.size.lower().split("x"))
    r = asyncio.run(run_bench(model, args.tokens, (cols, rows), args.device, args.inspector))
    print(
        f"model {r['model']} on {r['device'] or 'n/a'}: {r['tokens']} tokens in {r['replies']} "
        f"replies, {r['tokens_per_second']:.0f} tok/s, {r['messages']} UI messages\n"
        f"event-loop lag over {r['probes']} probes: p50 {r['lag_p50_ms']:.1f} ms, "
        f"p99 {r['lag_p99_ms']:.1f} ms, max {r['lag_max_ms']:.1f} ms "
        f"(target p99 < 50 ms)\n"
        f"tokens lost: {r['tokens_lost']} (received {r['tokens_received']}), "
        f"replies whose screen text differs from the engine's: {r['text_mismatches']}"
    )
    if r["inspector"]:
        print(f"inspector open: it showed the last reply's {r['inspected_tokens']} tokens")
    return 0 if r["tokens_lost"] == 0 and r["text_mismatches"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
