"""`tui-gen bench MODEL`: how fast the engine is, measured side by side in one process.

Timings belong here, never in tests: the machines are shared and noisy, so the numbers that mean
something are ratios measured in the same run (ours vs transformers, cache vs recompute).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

AfterHook = Callable[["Report", Any, list[int], list[Any]], None]

DEFAULT_PROMPT = (
    "Give me a simple recipe for a weeknight tomato pasta, with the ingredients and the steps, "
    "and one tip to make the sauce taste richer."
)


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB, macOS bytes)."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / (1024 * 1024) if sys.platform == "darwin" else r / 1024


def median_time(fn: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


@dataclass
class Report:
    rows: list[tuple[str, str]] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    def add(self, key: str, label: str, value: Any, fmt: str = "{}") -> None:
        self.data[key] = value
        self.rows.append((label, fmt.format(value) if value is not None else "n/a"))

    def print(self, as_json: bool) -> None:
        if as_json:
            print(json.dumps(self.data, indent=2))
            return
        width = max(len(label) for label, _ in self.rows)
        for label, value in self.rows:
            print(f"{label:<{width}}  {value}")


def prompt_ids(gen: Any, text: str, chat: bool) -> list[int]:
    if chat and gen.chat_template:
        from tui_gen.engine.chat import ChatSession

        session = ChatSession(gen)
        session.messages.append({"role": "user", "content": text})
        return session.prompt_ids(0)[0]
    return gen.encode(text)


def greedy_run(gen: Any, ids: list[int], n: int, **params: Any):
    """Exactly n greedy tokens (eos ignored), from an empty cache; `params` override (e.g.
    do_sample=True, logprobs=5)."""
    gen.reset()
    saved = gen.tokenizer.eos_token_ids
    gen.tokenizer.eos_token_ids = []
    try:
        return gen.generate_result(ids, **{"do_sample": False, "max_new_tokens": n, **params})
    finally:
        gen.tokenizer.eos_token_ids = saved


def logprobs_overhead(
    gen: Any, ids: list[int], n: int, top: int, repeats: int
) -> dict[str, dict[str, Any]]:
    """Decode tok/s without and with logprobs=top, greedy and sampled (the model's defaults,
    seeded: both runs draw the same tokens). Runs alternate off/on/on/off so that a machine
    getting busier or quieter weighs on both sides alike; medians, best runs, CPU time and
    each run's numbers."""
    out: dict[str, dict[str, Any]] = {}
    modes: list[tuple[str, dict[str, Any]]] = [("greedy", {}), ("sampled", {"do_sample": True})]
    for mode, kw in modes:
        kw = {**kw, "seed": 0}
        if mode == "sampled" and gen.defaults.greedy:
            kw["temperature"] = 0.8  # a model whose defaults are greedy: sample anyway
        rates: dict[int, list[float]] = {0: [], top: []}
        cpu: dict[int, list[float]] = {0: [], top: []}  # CPU seconds of this thread per run
        greedy_run(gen, ids, 8, logprobs=top, **kw)  # warm-up of this path
        for r in range(repeats):
            for k in (0, top) if r % 2 == 0 else (top, 0):
                c0 = time.thread_time()
                stats = greedy_run(gen, ids, n, logprobs=k, **kw).stats
                cpu[k].append(time.thread_time() - c0)
                rates[k].append(stats.decode_tokens_per_second)
        off, on = statistics.median(rates[0]), statistics.median(rates[top])
        c_off, c_on = statistics.median(cpu[0]), statistics.median(cpu[top])
        out[mode] = {
            "off_tok_s": off,
            "on_tok_s": on,
            "overhead": off / on - 1 if on else None,
            # fastest run against fastest run: a run can only be slowed by the machine, never
            # sped up, so the best of N is the least noisy estimate of each side's own cost
            "best_overhead": max(rates[0]) / max(rates[top]) - 1 if max(rates[top]) else None,
            # the same runs in CPU time (prefill included, the same on both sides): on a
            # shared, busy machine this moves far less than the wall clock
            "cpu_overhead": c_on / c_off - 1 if c_off else None,
            "runs_off": rates[0],
            "runs_on": rates[top],
        }
    return out


def recompute_seconds(gen: Any, ids: list[int], n: int, samples: int = 8) -> float:
    """Time n decode steps done without a cache (each step re-runs the whole sequence).

    Running all n steps would take minutes on a real model, so the full forward is timed at
    `samples` evenly spaced lengths and the total integrated (linear interpolation); for small
    n every length is timed.
    """
    import torch

    lengths = list(range(len(ids), len(ids) + n))
    if n > samples:
        step = (n - 1) / (samples - 1)
        picked = sorted({lengths[round(i * step)] for i in range(samples)})
    else:
        picked = lengths
    base = torch.tensor([ids + [ids[-1]] * n], device=gen.device)
    timed: dict[int, float] = {}
    with torch.inference_mode():
        gen.model(base[:, :8], last_only=True)  # warm-up
        for L in picked:
            timed[L] = median_time(partial(gen.model, base[:, :L], last_only=True), 2)
    xs = sorted(timed)
    total = 0.0
    for L in lengths:
        j = next((k for k, x in enumerate(xs) if x >= L), len(xs) - 1)
        if xs[j] == L or j == 0:
            total += timed[xs[j]]
        else:
            a, b = xs[j - 1], xs[j]
            total += timed[a] + (timed[b] - timed[a]) * (L - a) / (b - a)
    return total


def sampling_share(gen: Any, decode_step_s: float) -> float:
    """Seconds of one sampling call (top-k, top-p, temperature) over one decode step."""
    import torch

    from tui_gen.engine.sampling import make_generator, next_token
    from tui_gen.options import SamplingParams

    logits = torch.randn(1, gen.config.vocab_size, device=gen.device)
    seen = torch.randint(0, gen.config.vocab_size, (1, 256), device=gen.device)
    p = SamplingParams(temperature=0.8, top_k=40, top_p=0.95, min_p=0.05, repetition_penalty=1.1)
    rng = make_generator(0, gen.device)
    for _ in range(5):
        next_token(logits, p, seen, rng)
    reps = 200
    t = time.perf_counter()
    for _ in range(reps):
        int(next_token(logits, p, seen, rng))
    return (time.perf_counter() - t) / reps / decode_step_s


def logprobs_step_cost(gen: Any, top: int) -> dict[str, float]:
    """Seconds that reading `top` logprobs adds to one step, greedy and sampled (the model's
    defaults, or T=0.8 when they are greedy): `read_logprobs` on logits of this vocabulary,
    the best of several timed rounds. A decode run's tok/s moves by more than this cost
    between two runs on a shared machine; the work itself, timed alone, does not."""
    import torch

    from tui_gen.engine.logprobs import read_logprobs
    from tui_gen.engine.sampling import choose, make_generator, process_logits

    logits = torch.randn(1, gen.config.vocab_size, device=gen.device) * 3
    sampled = gen.defaults if not gen.defaults.greedy else gen.params(temperature=0.8)
    out: dict[str, float] = {}
    for mode, p in (("greedy", gen.params(do_sample=False)), ("sampled", sampled)):
        step = process_logits(logits, p)
        tok, col = choose(step, make_generator(0, gen.device))
        toks, cols = tok.tolist(), col.tolist()
        reps, best = 300, float("inf")
        for _ in range(7):
            t = time.perf_counter()
            for _ in range(reps):
                read_logprobs(step, toks, cols, [top], gen.token_texts)
            best = min(best, (time.perf_counter() - t) / reps)
        out[mode] = best
    return out


CHAT_SCRIPT = [
    "What can I cook with rice, eggs and spring onions?",
    "How long should the rice cook?",
    "Can I use brown rice instead?",
    "What about adding vegetables?",
    "Which sauce goes well with it?",
    "Is it fine to make it the day before?",
    "How do I reheat it safely?",
    "Could I make it spicy?",
    "What drink would you serve with it?",
    "Give me a dessert to follow.",
    "And a starter?",
    "Thanks! Summarise the menu.",
]


def chat_ttft(gen: Any, turns: int, reuse: bool, max_new_tokens: int = 48) -> list[float]:
    """Time to first token at each turn of a scripted conversation.

    Without reuse the KV cache is emptied before every turn, so the whole conversation is
    prefilled again each time: the cost that reuse avoids.
    """
    from tui_gen.engine.chat import ChatSession
    from tui_gen.engine.events import FinishEvent

    warm = ChatSession(gen)
    for _ in warm.send(CHAT_SCRIPT[-1], do_sample=False, max_new_tokens=4):
        pass
    gen.reset()
    chat = ChatSession(gen)
    out = []
    for i in range(turns):
        if not reuse:
            gen.reset()
        for ev in chat.send(
            CHAT_SCRIPT[i % len(CHAT_SCRIPT)], do_sample=False, max_new_tokens=max_new_tokens
        ):
            if isinstance(ev, FinishEvent):
                out.append(ev.stats.time_to_first_token)
    return out


def contention(gen: Any, ids: list[int], n: int, repeats: int) -> dict[str, list[float]]:
    """Decode tok/s while one CPU-bound process competes for the cores: on 1 thread, on all
    of torch's threads, and with the thread governor choosing (engine/threads.py), in
    interleaved rounds so a change of load weighs on all three alike."""
    import torch

    from tui_gen.engine import threads

    most = torch.get_num_threads()
    prior = threads.fixed()
    rates: dict[str, list[float]] = {"1": [], str(most): [], "auto": []}
    busy = subprocess.Popen(
        [sys.executable, "-c", "while True: pass"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.3)  # let it reach the CPU
        for _ in range(repeats):
            for label, fixed in (("1", 1), (str(most), most), ("auto", None)):
                threads.fix(fixed)
                stats = greedy_run(gen, ids, n).stats
                rates[label].append(stats.decode_tokens_per_second)
    finally:
        threads.fix(prior)
        busy.kill()
        busy.wait()
    return rates


def run_bench(args: argparse.Namespace, after: AfterHook | None = None) -> Report:
    """Measure one model; `after(report, generator, prompt_ids, runs)` may add rows (the
    comparison harness in dev/ adds transformers' figures this way)."""
    from tui_gen.engine import threads

    prior = threads.fixed()
    if args.threads:
        threads.fix(args.threads)  # the number asked for, on every step
    try:
        return _run_bench(args, after)
    finally:
        threads.fix(prior)


def _run_bench(args: argparse.Namespace, after: AfterHook | None) -> Report:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from tui_gen.engine.generator import Generator
    from tui_gen.models.bdh import BDH

    rep = Report()
    rss0 = peak_rss_mib()
    t = time.perf_counter()
    gen = Generator.load(
        args.model,
        device=args.device,
        dtype=args.dtype,
        max_context=args.max_context,
        quantize=args.quantize,
        kv_cache_dtype=getattr(args, "kv_cache_dtype", "auto"),
        activations=getattr(args, "activations", "fast"),
    )
    load_s = time.perf_counter() - t
    c = gen.config
    rep.add("model", "model", f"{gen.name} ({c.model_type}, {gen.loaded.num_parameters:,} params)")
    rep.add(
        "device",
        "device / dtype / threads",
        f"{gen.device} / {str(gen.dtype).replace('torch.', '')} / {torch.get_num_threads()}",
    )
    rep.add("quantization", "quantization", gen.loaded.quantization or "none")
    backend = gen.decode_backend
    if backend == "torch" and gen.decode_reason:
        backend += f" ({gen.decode_reason})"  # "torch (olmo2: post-norm blocks ...)"
    rep.add("decode_backend", "decode step", backend)
    rep.add("load_s", "load seconds", load_s, "{:.2f}")
    rep.add("rss_after_load_mib", "peak RSS after load (MiB)", peak_rss_mib(), "{:.0f}")
    rep.add("rss_load_delta_mib", "  of which loading added (MiB)", peak_rss_mib() - rss0, "{:.0f}")
    weights = sum(
        f.stat().st_size for f in gen.loaded.files if f.suffix in (".safetensors", ".gguf")
    )
    rep.add("weights_mib", "weight files (MiB)", weights / 2**20, "{:.0f}")

    ids = prompt_ids(gen, args.prompt, chat=not args.raw)
    n = args.max_new_tokens
    greedy_run(gen, ids, 8)  # warm-up: first-call allocations and kernel selection
    runs = [greedy_run(gen, ids, n) for _ in range(args.repeats)]
    stats = [r.stats for r in runs]
    ttft = statistics.median(s.time_to_first_token for s in stats)
    prefill = statistics.median(s.prefill_tokens_per_second for s in stats)
    decode = statistics.median(s.decode_tokens_per_second for s in stats)
    rep.add("prompt_tokens", "prompt tokens", len(ids))
    rep.add("new_tokens", "new tokens (greedy)", n)
    rep.add("prefill_tok_s", "prefill tok/s", prefill, "{:.1f}")
    rep.add("ttft_s", "time to first token (s)", ttft, "{:.3f}")
    rep.add("decode_tok_s", "decode tok/s", decode, "{:.1f}")
    if isinstance(gen.model, BDH) and decode:  # a parallel-form token = a re-run of the sequence
        seq = torch.tensor([ids + [32] * n], device=gen.device)
        with torch.inference_mode():
            t = time.perf_counter()
            gen.model.parallel_forward(seq)
            par_s = time.perf_counter() - t
        rep.add(
            "parallel_speedup",
            f"speed-up vs parallel form re-run @{seq.shape[1]}",
            par_s * decode,
            "{:.0f}x",
        )
    rep.add("kv_cache_bytes", "KV cache bytes (allocated)", gen.kv_cache_bytes, "{:,}")
    rep.add(
        "kv_bytes_per_1k",
        "KV cache bytes per 1K tokens",
        c.kv_cache_bytes(1024, torch.empty((), dtype=gen.kv_dtype).element_size()),
        "{:,}",
    )
    rep.add("rss_peak_mib", "peak RSS after generating (MiB)", peak_rss_mib(), "{:.0f}")
    step = 1.0 / decode if decode else 0.0
    if step:
        rep.add("sampling_share", "sampling / decode step", sampling_share(gen, step), "{:.1%}")
    for k in args.recompute:
        if len(ids) + k > gen.max_context:
            rep.add(f"kv_speedup_{k}", f"KV cache speed-up vs recompute @{k}", None)
            continue
        cached = greedy_run(gen, ids, k).stats
        cached_s = cached.prefill_seconds + cached.decode_seconds
        full_s = recompute_seconds(gen, ids, k)
        rep.add(
            f"kv_speedup_{k}", f"KV cache speed-up vs recompute @{k}", full_s / cached_s, "{:.1f}x"
        )
    if args.logprobs:
        k = args.logprobs
        cost = logprobs_step_cost(gen, k)
        for mode, r in logprobs_overhead(gen, ids, n, k, max(args.repeats, 5)).items():
            best_step = 1.0 / max(r["runs_off"]) if max(r["runs_off"]) else 0.0
            r["read_seconds"] = cost[mode]
            r["read_share"] = cost[mode] / best_step if best_step else None
            rep.data[f"logprobs_{mode}"] = r
            spread = (
                f"runs {min(r['runs_off']):.0f}-{max(r['runs_off']):.0f} / "
                f"{min(r['runs_on']):.0f}-{max(r['runs_on']):.0f}"
            )
            rep.rows.append(
                (
                    f"decode tok/s {mode}, logprobs 0 / {k}",
                    f"{r['off_tok_s']:.1f} / {r['on_tok_s']:.1f}  "
                    f"({r['overhead']:+.1%} per step, best runs {r['best_overhead']:+.1%}, "
                    f"CPU time {r['cpu_overhead']:+.1%}; "
                    f"{spread})",
                )
            )
            if r["read_share"] is not None:
                rep.rows.append(
                    (
                        f"  reading them, timed alone ({mode})",
                        f"{r['read_seconds'] * 1e6:.0f} us = {r['read_share']:.1%} of the "
                        "fastest step",
                    )
                )
    if args.chat_turns:
        n_turns = args.chat_turns
        for reuse in (True, False):
            ttfts = chat_ttft(gen, n_turns, reuse)
            tag = "reuse" if reuse else "no_reuse"
            label = tag.replace("_", " ")
            marks = list(dict.fromkeys(k for k in (1, 5, 10, n_turns) if k <= n_turns))
            rep.data[f"chat_ttft_{tag}"] = ttfts
            rep.rows.append(
                (
                    f"chat TTFT s at turns {'/'.join(map(str, marks))} ({label})",
                    " / ".join(f"{ttfts[k - 1]:.3f}" for k in marks),
                )
            )
            rep.add(
                f"chat_ttft_ratio_{tag}",
                f"  last turn / turn 1 ({label})",
                ttfts[-1] / ttfts[0],
                "{:.2f}x",
            )
    if args.contention:
        rates = contention(gen, ids, n, args.repeats)
        rep.data["contention"] = rates
        labels = list(rates)
        rep.rows.append(
            (
                f"decode tok/s, one busy process, threads {' / '.join(labels)}",
                " / ".join(f"{statistics.median(rates[k]):.1f}" for k in labels)
                + "  (runs "
                + ", ".join(f"{min(rates[k]):.0f}-{max(rates[k]):.0f}" for k in labels)
                + ")",
            )
        )
    if after is not None:
        after(rep, gen, ids, runs)
    return rep


def build_parser() -> argparse.ArgumentParser:
    from tui_gen.cli.parser import Parser, add_model_options, positive_int

    p = Parser(prog="tui-gen bench", description="Measure load, prefill and decode speed.")
    p.add_argument("model")
    add_model_options(p)
    p.add_argument("--prompt", default=DEFAULT_PROMPT)
    p.add_argument("--raw", action="store_true", help="do not apply the chat template")
    p.add_argument("--max-new-tokens", type=positive_int("--max-new-tokens"), default=128)
    p.add_argument("--repeats", type=positive_int("--repeats"), default=3)
    p.add_argument("--threads", type=positive_int("--threads"), default=None)
    p.add_argument(
        "--recompute",
        type=int,
        nargs="*",
        default=[128, 512],
        help="lengths at which to compare the KV cache with full recompute",
    )
    p.add_argument(
        "--chat-turns",
        type=int,
        default=0,
        help="also time the first token at each turn of a scripted chat (e.g. 10)",
    )
    p.add_argument(
        "--logprobs",
        type=_logprobs_flag,
        default=0,
        metavar="N",
        help="also time decoding with per-token logprobs (N alternatives) against without, "
        "greedy and sampled, in alternating runs",
    )
    p.add_argument(
        "--contention",
        action="store_true",
        help="also time decoding while one CPU-bound process competes for the cores: on 1 "
        "thread, on all threads, and with the thread count chosen from measured steps",
    )
    p.add_argument("--json", action="store_true")
    return p


def _logprobs_flag(s: str) -> int:
    from tui_gen.options import MAX_LOGPROBS

    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--logprobs must be an integer, got {s!r}") from None
    if not 1 <= v <= MAX_LOGPROBS:
        raise argparse.ArgumentTypeError(f"--logprobs must be from 1 to {MAX_LOGPROBS}, got {v}")
    return v


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    run_bench(args).print(args.json)
    return 0
