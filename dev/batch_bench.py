"""Per-token cost of a batched decode step: native single step, native rows, torch batch.

    python -m dev.batch_bench MODEL [MODEL ...] [--batch 1 4 8] [--steps 32] [--rounds 5]
                              [--context 64] [--quantize int8|int4] [--dtype float32]

Why: Generator.batch_step (engine/batch.py, the server's scheduler) decodes b rows at once.
It used to be the torch forward, ~6x slower per token than the native one-row step; the
native rows step (decode.c's decode_rows) reads every weight once for all b rows. This
script measures, for each batch size, the time of one step of b rows (left-padded rows with
per-row positions and a key mask, as decode_batch gives them) and reports ms per step,
ms per token (step / b) and aggregate tokens per second, next to the native one-row step.

Method: the batch cache is prefilled with `--context` positions (the rows' prompts of
different lengths), then `--steps` decode steps are timed; the variants run round-robin in
the same rounds and the median round is reported (the spread is min..max over rounds), so
load from other processes hits them alike. Compare ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from tui_gen.engine.generator import Generator
from tui_gen.models.kv_cache import KVCache

#: the clock steps are timed with (--clock cpu: this process's CPU time, which a loaded
#: machine's other processes do not inflate; meaningful with one thread)
CLOCK: Callable[[], float] = time.perf_counter


def _batch_inputs(gen: Generator, b: int, context: int) -> tuple[KVCache, Any, Any, Any]:
    """A prefilled b-row cache: row i's prompt is shorter by 3*i tokens (left padding)."""
    cfg = gen.config
    columns = context + 512
    cache = KVCache(
        cfg.num_layers, b, cfg.num_kv_heads, columns, cfg.head_dim, gen.kv_dtype, gen.device
    )
    g = torch.Generator().manual_seed(0)
    idx = torch.randint(1, cfg.vocab_size, (b, context), generator=g)
    pads = [min(3 * i, context - 1) for i in range(b)]
    positions = torch.zeros(b, context, dtype=torch.long)
    key_padding = torch.ones(b, columns, dtype=torch.bool)
    for i, p in enumerate(pads):
        positions[i, p:] = torch.arange(context - p)
        key_padding[i, :p] = False
    with torch.inference_mode():
        gen.model(idx, 0, cache, positions, key_padding, last_only=True)
    return cache, torch.tensor(pads), key_padding, idx[:, -1:]


def _rows_runner(gen: Generator, b: int, context: int, native: bool) -> Callable[[int], float]:
    cache, pads, key_padding, tok = _batch_inputs(gen, b, context)
    step = gen.batch_step(cache)
    if not native:
        saved = gen._native
        gen._native = (None, "torch forced by the benchmark")
        step = gen.batch_step(cache)
        gen._native = saved
    elif gen.batch_backend(cache) != "native":
        raise SystemExit(f"the native rows step does not run here: {gen.decode_reason}")

    def run(steps: int) -> float:
        cache.truncate(context)
        t0 = CLOCK()
        with torch.inference_mode():
            for s in range(steps):
                col = context + s
                pos = (col - pads)[:, None]
                step(tok, col, cache, pos, key_padding)
        return CLOCK() - t0

    return run


def _single_runner(gen: Generator, context: int) -> Callable[[int], float]:
    cache = gen._ensure_cache()
    step = gen._decode_step(cache)
    ids = torch.randint(1, gen.config.vocab_size, (1, context))
    with torch.inference_mode():
        gen.model(ids, 0, cache, last_only=True)
    tok = ids[:, -1:]

    def run(steps: int) -> float:
        cache.truncate(context)
        t0 = CLOCK()
        with torch.inference_mode():
            for s in range(steps):
                step(tok, context + s, cache)
        return CLOCK() - t0

    return run


def bench(gen: Generator, batches: list[int], steps: int, rounds: int, context: int) -> list[dict]:
    runners: dict[tuple[str, int], Callable[[int], float]] = {
        ("native single", 1): _single_runner(gen, context)
    }
    for b in batches:
        runners[("native rows", b)] = _rows_runner(gen, b, context, native=True)
        runners[("torch batch", b)] = _rows_runner(gen, b, context, native=False)
    for run in runners.values():
        run(2)  # warm up: binding, scratch, rotary tables
    times: dict[tuple[str, int], list[float]] = {k: [] for k in runners}
    for _ in range(rounds):
        for key, run in runners.items():
            times[key].append(run(steps) / steps)
    out = []
    for (what, b), ts in times.items():
        med = statistics.median(ts)
        out.append({"step": what, "batch": b, "ms_per_step": med * 1e3,
                    "ms_per_token": med * 1e3 / b, "tok_per_s": b / med,
                    "spread_ms": [min(ts) * 1e3, max(ts) * 1e3]})  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="+")
    p.add_argument("--batch", type=int, nargs="+", default=[1, 4, 8])
    p.add_argument("--steps", type=int, default=32)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--context", type=int, default=64)
    p.add_argument("--dtype", default="auto")
    p.add_argument("--quantize", default=None)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    if args.threads:
        torch.set_num_threads(args.threads)
    results = {}
    for model in args.models:
        gen = Generator.load(model, device="cpu", dtype=args.dtype, quantize=args.quantize)
        rows = bench(gen, args.batch, args.steps, args.rounds, args.context)
        results[model] = rows
        if not args.json:
            single = rows[0]["ms_per_token"]
            print(f"{model} ({gen.dtype}, quantize={args.quantize}, "
                  f"threads={torch.get_num_threads()}, context {args.context}, "
                  f"{args.clock} clock)")  # fmt: skip
            print(f"  {'step':14} {'batch':>5} {'ms/step':>9} {'ms/token':>9} {'x single':>8} "
                  f"{'tok/s':>8}  spread ms/step")  # fmt: skip
            for r in rows:
                lo, hi = r["spread_ms"]
                print(f"  {r['step']:14} {r['batch']:>5} {r['ms_per_step']:9.3f} "
                      f"{r['ms_per_token']:9.3f} {r['ms_per_token'] / single:8.2f} "
                      f"{r['tok_per_s']:8.0f}  {lo:.3f}..{hi:.3f}")  # fmt: skip
    if args.json:
        print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
