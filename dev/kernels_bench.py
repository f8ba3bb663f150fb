"""Microbenchmarks of the kernels a decode step is made of, on SmolLM2-135M's shapes.

    python -m dev.kernels_bench [--rows 1 44 512] [--rounds 7] [--compile] [--model DIR]

Why: a single-token decode step is a chain of matrix-vector products, each of which reads its
whole weight once, plus a few dozen tiny element-wise ops per layer. Which kernel, layout and
dtype reads weights fastest, and how much time the small ops cost, decide how fast the engine
can decode; this script measures both so the choice rests on numbers from this machine.

Method: every variant keeps a pool of distinct weight copies larger than the last-level cache
and cycles through it, so each call streams its weight from memory as in a real decode step
(the same small matrix called in a loop would sit in L2 and flatter the kernel). Variants are
timed round-robin in the same rounds and the median per-call time is reported, so load from
other processes hits all of them alike; compare ratios within one run, not absolute numbers
across runs. "GB/s" is weight bytes (packed, with scales) over the best round's time per call: on a
shared machine the best round is the one the scheduler did not interrupt.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from tui_gen.engine.quantize import int4_kernel_operands, quantize_int4, quantize_int8

#: (in, out, what) of SmolLM2-135M's projections, plus the fused ones an engine could use
SHAPES: list[tuple[int, int, str]] = [
    (576, 576, "q_proj / o_proj"),
    (576, 192, "k_proj / v_proj"),
    (576, 960, "q+k+v fused"),
    (576, 1536, "gate / up"),
    (576, 3072, "gate+up fused"),
    (1536, 576, "down_proj"),
    (576, 49152, "lm_head"),
]
POOL_BYTES = 96 * 2**20  # 3x the 32 MiB L3 of the machine this was written on
MAX_COPIES = 1024


def _nbytes(state: Any) -> int:
    if isinstance(state, torch.Tensor):
        if state.layout != torch.strided:  # mkldnn tensors: dense size
            return state.numel() * state.element_size()
        return state.untyped_storage().nbytes()
    if isinstance(state, tuple | list):
        return sum(_nbytes(s) for s in state)
    if isinstance(state, torch.nn.Module):
        return sum(_nbytes(b) for b in state.buffers())
    return 0


@dataclass
class Variant:
    """How to prepare a weight (N, K) float32 once, and how to call the kernel on x (M, K)."""

    name: str
    dtype: torch.dtype  # of the activations
    prepare: Callable[[torch.Tensor, int], Any]  # (W, rows) -> state
    call: Callable[[torch.Tensor, Any], torch.Tensor]  # (x, state) -> (M, N)
    rows_specific: bool = False  # the packing depends on the number of rows
    size: Callable[[Any], int] | None = None  # bytes one call reads, when not all of the state


def _int4(group: int, dtype: torch.dtype) -> Variant:
    def prep(w: torch.Tensor, rows: int):
        q, sm = quantize_int4(w, group)
        return int4_kernel_operands(q, sm, dtype)

    def call(x: torch.Tensor, s: Any) -> torch.Tensor:
        return torch.ops.aten._weight_int4pack_mm_for_cpu(x, s[0], group, s[1])

    tag = "fp32" if dtype == torch.float32 else "bf16"
    return Variant(f"int4pack g{group} ({tag} act)", dtype, prep, call)


def _int8(dtype: torch.dtype) -> Variant:
    def prep(w: torch.Tensor, rows: int):
        q, s = quantize_int8(w)
        return q, s.to(dtype)

    def call(x: torch.Tensor, s: Any) -> torch.Tensor:
        return torch.ops.aten._weight_int8pack_mm(x, s[0], s[1])

    tag = "fp32" if dtype == torch.float32 else "bf16"
    return Variant(f"int8pack ({tag} act)", dtype, prep, call)


def _int8_dequant() -> Variant:
    """The portable fallback of quantize.Int8Linear: int8 -> float, matmul, scale."""

    def prep(w: torch.Tensor, rows: int):
        return quantize_int8(w)

    def call(x: torch.Tensor, s: Any) -> torch.Tensor:
        return F.linear(x, s[0].to(x.dtype)) * s[1]

    return Variant("int8 dequantize+F.linear (fallback)", torch.float32, prep, call)


def _mkldnn(dtype: torch.dtype) -> Variant:
    def prep(w: torch.Tensor, rows: int):
        return torch.ops.mkldnn._reorder_linear_weight(w.to(dtype), rows)

    def call(x: torch.Tensor, s: Any) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(x, s, None, "none", [], "")

    tag = "fp32" if dtype == torch.float32 else "bf16"
    return Variant(f"oneDNN prepacked linear {tag}", dtype, prep, call, rows_specific=True)


def _mkl_packed() -> Variant:
    def prep(w: torch.Tensor, rows: int):
        w = w.contiguous()
        return torch.ops.mkl._mkl_reorder_linear_weight(w, rows), w

    def call(x: torch.Tensor, s: Any) -> torch.Tensor:
        return torch.ops.mkl._mkl_linear(x, s[0], s[1], None, x.shape[0])

    # the packed buffer is ~3x the weight for one row (padding); the call reads the packed one
    return Variant(
        "MKL packed sgemm fp32", torch.float32, prep, call, True, lambda s: _nbytes(s[0])
    )


def _module(kind: str, group: int = 32) -> Variant:
    """The engine's own quantized modules, float32 in and out (what `--quantize` runs)."""
    from torch import nn

    from tui_gen.engine.quantize import Int4Linear, Int8Linear

    def prep(w: torch.Tensor, rows: int):
        lin = nn.Linear(w.shape[1], w.shape[0], bias=False)
        lin.weight = nn.Parameter(w, requires_grad=False)
        return Int8Linear(lin) if kind == "int8" else Int4Linear(lin, group)

    name = "Int8Linear" if kind == "int8" else f"Int4Linear g{group}"
    return Variant(f"{name} module, fp32 in/out", torch.float32, prep, lambda x, m: m(x))


def variants(compile_: bool = False) -> list[Variant]:
    f32, bf16 = torch.float32, torch.bfloat16
    out = [
        Variant("F.linear fp32 (W: out x in)", f32, lambda w, r: w.clone(), F.linear),
        Variant(
            "x @ W_t fp32 (W_t: in x out)",
            f32,
            lambda w, r: w.t().contiguous(),
            torch.matmul,
        ),
        Variant(
            "torch.mv fp32 (1 row only)",
            f32,
            lambda w, r: w.clone(),
            lambda x, w: torch.mv(w, x[0])[None] if x.shape[0] == 1 else F.linear(x, w),
        ),
        _mkl_packed(),
        _mkldnn(f32),
        Variant("F.linear bf16", bf16, lambda w, r: w.to(bf16), F.linear),
        Variant("x @ W_t bf16", bf16, lambda w, r: w.t().contiguous().to(bf16), torch.matmul),
        _mkldnn(bf16),
        _int8(f32),
        _int8(bf16),
        _int8_dequant(),
    ]
    out += [_int4(g, f32) for g in (32, 64, 128)]
    out += [_int4(g, bf16) for g in (32, 64, 128)]
    out += [_module("int8"), _module("int4", 32)]
    if compile_:
        fn = torch.compile(lambda x, w: x @ w.t(), dynamic=False)
        out.append(Variant("torch.compile(x @ W.t()) fp32", f32, lambda w, r: w.clone(), fn))
    return out


def _time_batch(fn: Callable[[], Any], calls: int) -> float:
    t = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t) / calls


def bench_shape(
    k: int, n: int, rows: list[int], vs: list[Variant], rounds: int, target_s: float = 0.01
) -> list[dict[str, Any]]:
    """Time every variant on W (n, k) for each row count; return one record per (variant, M)."""
    g = torch.Generator().manual_seed(0)
    w = torch.randn(n, k, generator=g) * 0.02  # (N, K), a trained weight's scale
    records: list[dict[str, Any]] = []
    for m in rows:
        x32 = torch.randn(m, k, generator=g)  # (M, K)
        ref = F.linear(x32, w)  # (M, N)
        live: list[tuple[Variant, list[Any], torch.Tensor, int]] = []
        for v in vs:
            try:
                first = v.prepare(w, m)
                x = x32.to(v.dtype)
                y = v.call(x, first).float()
            except (RuntimeError, NotImplementedError, ValueError) as e:  # not in this build
                records.append({"variant": v.name, "M": m, "error": str(e).splitlines()[0]})
                continue
            size = v.size(first) if v.size else _nbytes(first)
            copies = max(1, min(MAX_COPIES, POOL_BYTES // max(size, 1)))
            pool = [first] + [v.prepare(w, m) for _ in range(copies - 1)]
            err = ((y - ref).norm() / ref.norm()).item()
            exact = (y - ref).abs().max().item() if v.dtype == torch.float32 else None
            live.append((v, pool, x, size))
            records.append({"variant": v.name, "M": m, "bytes": size, "rel_err": err})
            records[-1]["max_abs_diff_vs_F.linear"] = exact
        idx = {r["variant"]: r for r in records if r["M"] == m and "error" not in r}
        samples: dict[str, list[float]] = {v.name: [] for v, *_ in live}
        counters = {v.name: 0 for v, *_ in live}
        calls: dict[str, int] = {}
        for v, pool, x, _ in live:  # warm up and size the batches
            state = iter(pool * 2)
            t = _time_batch(lambda v=v, state=state, x=x: v.call(x, next(state)), 2)
            calls[v.name] = max(3, min(2000, int(target_s / max(t, 1e-7))))
        for _ in range(rounds):
            for v, pool, x, _ in live:
                c = counters[v.name]

                def step(v=v, pool=pool, x=x) -> None:
                    nonlocal c
                    v.call(x, pool[c % len(pool)])
                    c += 1

                samples[v.name].append(_time_batch(step, calls[v.name]))
                counters[v.name] = c
        for v, _, _, size in live:
            s, best = statistics.median(samples[v.name]), min(samples[v.name])
            idx[v.name].update(us=s * 1e6, best_us=best * 1e6, gb_s=size / best / 1e9)
        del live
    return records


# --- the small ops of one decode step ------------------------------------------------------------


def _timeit(fn: Callable[[], Any], rounds: int, calls: int = 200) -> float:
    """Best batch mean in µs: on a shared machine the best round is the one not preempted."""
    fn()
    return min(_time_batch(fn, calls) for _ in range(rounds)) * 1e6


def small_ops(dtype: torch.dtype, rounds: int, seq: int = 128) -> list[tuple[str, int, float]]:
    """(op, times per decode step of SmolLM2, µs per call) for the non-matmul work of a step.

    Shapes: hidden 576, 9 query heads, 3 KV heads, head_dim 64, intermediate 1536, `seq` cached
    positions, vocab 49152, 30 layers.
    """
    from tui_gen.models.kv_cache import KVCache
    from tui_gen.models.llama import apply_rope

    L, H, KV, D, C, I, V = 30, 9, 3, 64, 576, 1536, 49152
    g = torch.Generator().manual_seed(0)

    def r(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g).to(dtype)

    x = r(1, 1, C)
    w_norm = r(C)
    emb = torch.nn.Embedding(V, C).to(dtype)
    tok = torch.tensor([[5]])
    q, k, v = r(1, H, 1, D), r(1, KV, 1, D), r(1, KV, 1, D)
    cos, sin_signed = r(1, 1, 1, D), r(1, 1, 1, D)  # random tables: only the time matters
    cache = KVCache(1, 1, KV, 4096, D, dtype, "cpu")
    cache.update(0, 0, r(1, KV, seq, D), r(1, KV, seq, D))
    kc, vc = cache.k[0][:, :, : seq + 1], cache.v[0][:, :, : seq + 1]  # (1, KV, S, D)
    gate, up = r(1, 1, I), r(1, 1, I)
    logits = r(1, V)
    y = r(1, H, 1, D)

    def rms() -> torch.Tensor:
        if dtype == torch.float32:
            return F.rms_norm(x, (C,), w_norm, 1e-5)
        xf = x.float()
        return w_norm * (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + 1e-5)).to(dtype)

    def rope() -> tuple[torch.Tensor, torch.Tensor]:
        return apply_rope(q, cos, sin_signed), apply_rope(k, cos, sin_signed)  # the model's op

    def sdpa_repeat() -> torch.Tensor:  # what models/common.attend does today
        return F.scaled_dot_product_attention(
            q, kc.repeat_interleave(H // KV, dim=1), vc.repeat_interleave(H // KV, dim=1)
        )

    def sdpa_gqa() -> torch.Tensor:
        return F.scaled_dot_product_attention(q, kc, vc, enable_gqa=True)

    def manual() -> torch.Tensor:  # one query: group the heads that share a KV head
        qg = q.view(1, KV, H // KV, D)  # (1, KV, rep, D)
        s = torch.matmul(qg, kc.transpose(-1, -2)) * (D**-0.5)  # (1, KV, rep, S)
        return torch.matmul(s.softmax(-1), vc).view(1, H, 1, D)

    module = torch.nn.Identity()
    ops: list[tuple[str, int, Callable[[], Any]]] = [
        ("embedding lookup (1 token)", 1, lambda: emb(tok)),
        ("RMSNorm (1, 1, 576)", 2 * L + 1, rms),
        ("RoPE on q (1,9,1,64) and k (1,3,1,64)", L, rope),
        ("KV cache write (1 position, k and v)", L, lambda: cache.update(0, seq, k, v)),
        (f"SDPA, repeat_interleave GQA, S={seq + 1}", L, sdpa_repeat),
        (f"SDPA enable_gqa=True, S={seq + 1}", 0, sdpa_gqa),
        (f"matmul-softmax-matmul, grouped heads, S={seq + 1}", 0, manual),
        ("attention output transpose+reshape", L, lambda: y.transpose(1, 2).reshape(1, 1, C)),
        ("SiLU(gate) * up (1, 1, 1536)", L, lambda: F.silu(gate) * up),
        ("residual add (1, 1, 576)", 2 * L, lambda: x + x),
        ("view/transpose of q, k, v (3 per layer)", 3 * L, lambda: x.view(1, 1, H, D // 1)),
        ("greedy argmax over 49152 logits", 1, lambda: logits.argmax(-1)),
        ("empty nn.Module call (Python overhead)", 12 * L, lambda: module(x)),
    ]
    with torch.inference_mode():
        return [(name, n, _timeit(fn, rounds)) for name, n, fn in ops]


def profile_model(path: str, dtype: str, steps: int = 32) -> list[tuple[str, float]]:
    """Self CPU time per op over `steps` real decode steps, as a share of the total."""
    from torch.profiler import ProfilerActivity, profile

    from tui_gen.engine.generator import Generator

    gen = Generator.load(path, device="cpu", dtype=dtype, max_context=512)
    cache = gen._ensure_cache()
    ids = torch.tensor([[1] * 44])
    with torch.inference_mode():
        gen.model(ids, start=0, cache=cache, last_only=True)
        tok = torch.tensor([[2]])
        for i in range(8):
            gen.model(tok, start=44 + i, cache=cache)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for i in range(steps):
                logits = gen.model(tok, start=52 + i, cache=cache)
                logits.argmax(-1)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    return sorted(((e.key, e.self_cpu_time_total / total) for e in events), key=lambda t: -t[1])


# --- output ------------------------------------------------------------------------------------


def print_table(records: list[dict[str, Any]], shape: tuple[int, int, str]) -> None:
    k, n, what = shape
    print(f"\n### {what}: {k} -> {n}\n")
    rows = sorted({r["M"] for r in records})
    head = "| variant | " + " | ".join(f"M={m} µs best (median) | GB/s" for m in rows)
    head += " | rel err |"
    print(head)
    print("|" + "---|" * (2 * len(rows) + 2))
    names = list(dict.fromkeys(r["variant"] for r in records))
    for name in names:
        cells = []
        err = ""
        for m in rows:
            r = next((r for r in records if r["variant"] == name and r["M"] == m), None)
            if r is None or "error" in r:
                cells += ["n/a", "n/a"]
                continue
            cells += [f"{r['best_us']:.1f} ({r['us']:.0f})", f"{r['gb_s']:.1f}"]
            diff = r.get("max_abs_diff_vs_F.linear")
            err = f"{r['rel_err']:.1e}" + (" (bitwise = F.linear)" if diff == 0.0 else "")
        print(f"| {name} | " + " | ".join(cells) + f" | {err} |")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dev.kernels_bench", description=__doc__)
    p.add_argument("--rows", type=int, nargs="+", default=[1, 44, 512])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--shapes", type=int, nargs="*", help="indices into SHAPES (default: all)")
    p.add_argument("--compile", action="store_true", help="also time torch.compile'd matmuls")
    p.add_argument("--no-matmul", action="store_true", help="skip the matmul tables")
    p.add_argument("--model", help="also profile real decode steps of this model directory")
    p.add_argument("--json", metavar="FILE", help="write the raw records here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, ", end="")
    print(f"CPU capability {torch.backends.cpu.get_cpu_capability()}")
    out: dict[str, Any] = {"matmul": {}, "small_ops": {}}
    if not args.no_matmul:
        vs = variants(args.compile)
        picked = [SHAPES[i] for i in args.shapes] if args.shapes else SHAPES
        for shape in picked:
            recs = bench_shape(shape[0], shape[1], args.rows, vs, args.rounds)
            out["matmul"][f"{shape[0]}x{shape[1]}"] = recs
            print_table(recs, shape)
    for dt in (torch.float32, torch.bfloat16):
        ops = small_ops(dt, args.rounds)
        out["small_ops"][str(dt)] = ops
        tag = str(dt).replace("torch.", "")
        print(f"\n### non-matmul ops of one decode step, {tag}\n")
        print("| op | µs per call | calls per step | µs per step |")
        print("|---|---|---|---|")
        total = 0.0
        for name, n, us in ops:
            total += n * us
            print(f"| {name} | {us:.1f} | {n or '-'} | {n * us:.0f} |")
        print(f"| **total (counted rows)** | | | **{total:.0f}** |")
    if args.model:
        for dt in ("float32", "bfloat16"):
            rows = profile_model(args.model, dt)
            out.setdefault("profile", {})[dt] = rows
            print(f"\n### profile of 32 real decode steps, {dt} (self CPU time share)\n")
            for name, share in rows[:14]:
                print(f"- {name}: {share:.1%}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
