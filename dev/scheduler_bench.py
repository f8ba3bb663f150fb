"""Aggregate tok/s of the continuous-batching Scheduler in process: n jobs at once, no HTTP.

    python -m dev.scheduler_bench MODEL [--jobs 1 8] [--max-new-tokens 128] [--rounds 5]

Why: `tui-gen bench-serve` measures the server end to end, with its HTTP, SSE and client
costs sharing the two cores; `dev.batch_bench` times the native kernel alone. Between them
sits the scheduler's own Python per step (sampling, detokenizing, stop strings, events),
which is what decides how much of the kernel's batch speed-up reaches the clients. This
script submits `--jobs` greedy jobs together (EOS ignored, so every job runs its full
`--max-new-tokens`), waits for every FinishEvent, and reports tokens per second over all
jobs; the job counts take turns for `--rounds` rounds and the median round is reported
with the min..max spread (this VM's speed changes within a minute: compare ratios).
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time

from tui_gen.engine.events import Event, FinishEvent, TokenEvent
from tui_gen.engine.generator import Generator
from tui_gen.engine.scheduler import Job, Scheduler
from tui_gen.options import SamplingParams

PROMPT = "How do I make a tomato soup for four people?"


def one_round(sched: Scheduler, ids: list[int], jobs: int, max_new_tokens: int) -> float:
    """Tokens per second of `jobs` greedy jobs submitted together."""
    done = threading.Semaphore(0)
    tokens = [0]

    def sink(ev: Event) -> None:
        if isinstance(ev, TokenEvent):
            tokens[0] += 1
        elif isinstance(ev, FinishEvent):
            done.release()

    p = SamplingParams(temperature=0.0, max_new_tokens=max_new_tokens)
    t0 = time.perf_counter()
    for i in range(jobs):
        sched.submit(Job(list(ids), p, sink, ignore_eos=True, index=i))
    for _ in range(jobs):
        if not done.acquire(timeout=600):
            raise SystemExit("a job did not finish within 10 minutes")
    return tokens[0] / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--jobs", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--prompt", default=PROMPT)
    ap.add_argument("--kv-cache-dtype", default="auto", help="auto, float32 or bfloat16")
    args = ap.parse_args(argv)
    gen = Generator.load(args.model, device="cpu", kv_cache_dtype=args.kv_cache_dtype)
    ids = gen.tokenizer.encode(args.prompt)
    sched = Scheduler(gen, max_batch=max(args.jobs)).start()
    try:
        one_round(sched, ids, 1, 8)  # warm up: native binding, scratch, rotary tables
        rates: dict[int, list[float]] = {n: [] for n in args.jobs}
        for _ in range(args.rounds):
            for n in args.jobs:
                rates[n].append(one_round(sched, ids, n, args.max_new_tokens))
    finally:
        sched.close()
    base = statistics.median(rates[args.jobs[0]])
    print(f"{args.model}: {len(ids)}-token prompt, {args.max_new_tokens} new tokens per job")
    print(f"  {'jobs':>4} {'tok/s':>8} {'x first':>8}  spread tok/s")
    for n, rs in rates.items():
        med = statistics.median(rs)
        print(f"  {n:>4} {med:8.0f} {med / base:8.2f}  {min(rs):.0f}..{max(rs):.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
