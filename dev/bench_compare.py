"""Every decode path side by side, in one process, interleaved (run from a checkout).

    python -m dev.bench_compare DIR [--gguf FILE.gguf] [--repeats 5]   # the table
    python -m dev.bench_compare DIR --hf              # tui-gen bench + transformers


One table: our float32, bfloat16, int8 and int4 paths, transformers `generate()` on the same
float32 (and bfloat16) weights, and llama.cpp (llama-cpp-python) on the GGUF given with
`--gguf`, each when installed. The paths take turns round after round and the medians are
compared, so a burst of load from another process hits every path alike: on a shared machine
only ratios from one run mean anything.

Columns: load seconds; prefill tok/s over a 512-token prompt (half the context for models with
less than 1,024); decode tok/s (greedy, from the second new token on); decode and prefill as
ratios to transformers at float32 (prefill: at the same dtype); for how many tokens the greedy
ids equal transformers' float32 ids before they first differ.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tui_gen.cli.bench import DEFAULT_PROMPT, greedy_run, prompt_ids
from tui_gen.errors import ModelLoadError

PREFILL_TOKENS = 512


@dataclass
class PathResult:
    name: str
    load_s: float
    dtype: str  # what the activations run in, to pair prefill ratios
    prefill_tokens: int = PREFILL_TOKENS
    prefill_s: list[float] = field(default_factory=list)
    decode_tok_s: list[float] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)

    @property
    def prefill_tok_s(self) -> float:
        return self.prefill_tokens / statistics.median(self.prefill_s) if self.prefill_s else 0.0

    @property
    def decode(self) -> float:
        return statistics.median(self.decode_tok_s) if self.decode_tok_s else 0.0


class Ours:
    """One of our paths: a Generator with its own dtype / quantization."""

    def __init__(
        self, path: str, dtype: str, quantize: str | None, head: str | None = None
    ) -> None:
        from tui_gen.engine.generator import Generator
        from tui_gen.engine.quantize import quantize_model

        self.name = f"tui-gen {quantize or dtype}" + (f" ({head} lm_head)" if head else "")
        if path.lower().endswith(".gguf") and dtype == "auto" and quantize is None:
            self.name = "tui-gen gguf blocks"  # the file's own types (gguf_linear.py)
        self.dtype = "bfloat16" if dtype == "bfloat16" else "float32"
        t = time.perf_counter()
        if head and quantize:  # the lm_head quantized otherwise than int4's default (int8)
            self.gen = Generator.load(path, device="cpu", dtype=dtype)
            quantize_model(self.gen.model, quantize, head=head)
        else:
            self.gen = Generator.load(path, device="cpu", dtype=dtype, quantize=quantize)
        self.load_s = time.perf_counter() - t

    def prefill(self, ids: list[int]) -> float:
        return greedy_run(self.gen, ids, 1).stats.prefill_seconds

    def decode(self, ids: list[int], n: int) -> tuple[float, list[int]]:
        r = greedy_run(self.gen, ids, n)
        return r.stats.decode_tokens_per_second, list(r.token_ids)


class _TimedRunner:
    """A peer engine timed from outside: `_run(ids, k)` returns (seconds to the first token,
    seconds for the other k-1, the ids); prefill and decode are read off it."""

    def _run(self, ids: list[int], k: int) -> tuple[float, float, list[int]]:
        raise NotImplementedError

    def prefill(self, ids: list[int]) -> float:
        return self._run(ids, 1)[0]

    def decode(self, ids: list[int], n: int) -> tuple[float, list[int]]:
        _, rest, out = self._run(ids, n)
        return (n - 1) / max(rest, 1e-9), out


class Transformers(_TimedRunner):
    """transformers generate() (greedy, eos ignored) on the same directory."""

    def __init__(self, path: str, dtype: str) -> None:
        import torch
        from transformers import AutoModelForCausalLM

        self.name = f"transformers {dtype}"
        self.dtype = dtype
        t = time.perf_counter()
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype))
        self.model.eval()
        self.load_s = time.perf_counter() - t

    def _run(self, ids: list[int], k: int) -> tuple[float, float, list[int]]:
        """Seconds to the first token, seconds for the rest, the ids (a streamer times it)."""
        import torch
        from transformers.generation.streamers import BaseStreamer

        marks: list[float] = []

        class Clock(BaseStreamer):
            def put(self, value: Any) -> None:
                marks.append(time.perf_counter())

            def end(self) -> None:
                pass

        x = torch.tensor([ids])
        t = time.perf_counter()
        with torch.inference_mode():
            out = self.model.generate(
                x,
                attention_mask=torch.ones_like(x),  # else prompt tokens == pad id get masked
                max_new_tokens=k,
                min_new_tokens=k,
                do_sample=False,
                pad_token_id=0,
                eos_token_id=None,
                streamer=Clock(),
            )
        # put() is called once with the prompt, then once per new token
        first = marks[1] if len(marks) > 1 else time.perf_counter()
        return first - t, marks[-1] - first, out[0, len(ids) :].tolist()


class LlamaCpp(_TimedRunner):
    """llama.cpp through llama-cpp-python, on a GGUF file, with our thread count."""

    def __init__(self, gguf: str, threads: int, n_ctx: int) -> None:
        from llama_cpp import Llama

        t = time.perf_counter()
        try:
            self.llm = Llama(model_path=gguf, n_threads=threads, n_ctx=n_ctx, verbose=False)
        except ValueError as e:  # llama.cpp could not read it
            raise ModelLoadError(f"{gguf}: llama.cpp cannot open it ({e})") from None
        self.load_s = time.perf_counter() - t
        self.name = f"llama.cpp {quant_label(gguf)}"
        self.dtype = "float32"

    def _run(self, ids: list[int], k: int) -> tuple[float, float, list[int]]:
        self.llm.reset()
        out: list[int] = []
        t = time.perf_counter()
        first = t
        for tok in self.llm.generate(ids, temp=0.0, top_k=1, reset=True):
            out.append(tok)
            if len(out) == 1:
                first = time.perf_counter()
            if len(out) >= k:
                break
        return first - t, time.perf_counter() - first, out


def quant_label(gguf: str) -> str:
    """The quantization a GGUF's file name states ("gemma-3-270m-q4_k_m.gguf" -> "Q4_K_M",
    "SmolLM2-135M-Instruct.Q4_1.gguf" -> "Q4_1"), else "gguf"."""
    import re

    m = re.findall(r"(?i)(?<![a-z0-9])(i?q\d(?:_k)?(?:_[a-z0-9]+)?|bf16|f16|f32)(?![a-z0-9])",
                   Path(gguf).name.removesuffix(".gguf"))  # fmt: skip
    return m[-1].upper() if m else "gguf"


def _llama_cpp_installed() -> bool:
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        return False
    return True


def _long_prompt(gen: Any, n: int) -> list[int]:
    """Exactly n token ids of ordinary text (a recipe-ish paragraph, repeated)."""
    ids: list[int] = []
    while len(ids) < n:
        ids += gen.encode(" " + DEFAULT_PROMPT + " Then explain why each step matters.", False)
    return ids[:n]


def run_compare(args: Any) -> list[PathResult]:
    """Load every available path, then run rounds of (prefill, decode) per path in turn."""
    import torch

    if args.gguf and _llama_cpp_installed() and not Path(args.gguf).is_file():
        # said before minutes of loading the other paths
        raise ModelLoadError(f"--gguf {args.gguf}: no such file; give the .gguf for llama.cpp")
    threads = torch.get_num_threads()
    paths: list[Any] = []
    gguf_model = str(args.model).lower().endswith(".gguf")
    if gguf_model:  # the file's blocks as they are, their float32 dequantization, our int4
        others: tuple[tuple[str, str | None], ...] = (("float32", None), ("float32", "int4"))
        paths.append(Ours(args.model, "auto", None))
    else:
        others = (("bfloat16", None), ("float32", "int8"), ("float32", "int4"))
        paths.append(Ours(args.model, "float32", None))
    base = paths[0].gen
    if gguf_model and args.blocks_only:
        others = ()
    for dtype, quantize in others:
        paths.append(Ours(args.model, dtype, quantize))
    if args.int4_head:  # a 262k-row head (Gemma) is most of a step: the 4-bit one too
        paths.append(Ours(args.model, "float32", "int4", head="int4"))
    skipped: list[str] = []
    if base.loaded.source_format == "safetensors":
        for dtype in ("float32", "bfloat16"):
            try:
                paths.append(Transformers(str(base.loaded.path), dtype))
            except ImportError:
                skipped.append("transformers (not installed)")
                break
    if args.gguf:
        try:
            paths.append(LlamaCpp(args.gguf, threads, max(1024, PREFILL_TOKENS + 256)))
        except ImportError:
            skipped.append("llama.cpp (pip install llama-cpp-python)")
    ids = prompt_ids(base, args.prompt, chat=not args.raw)
    n = args.max_new_tokens
    n_long = min(PREFILL_TOKENS, base.config.max_position_embeddings // 2)
    long_ids = _long_prompt(base, n_long)
    results = [PathResult(p.name, p.load_s, p.dtype, n_long) for p in paths]
    for p in paths:  # warm-up: first-call allocations, kernel selection
        p.prefill(ids)
        p.decode(ids, 4)
    for _ in range(args.repeats):
        for p, r in zip(paths, results, strict=True):
            r.prefill_s.append(p.prefill(long_ids))
            tok_s, out = p.decode(ids, n)
            r.decode_tok_s.append(tok_s)
            r.ids = out
    for name in skipped:
        results.append(PathResult(name, 0.0, ""))
    return results


def _common_prefix(a: list[int], b: list[int]) -> int:
    k = 0
    while k < min(len(a), len(b)) and a[k] == b[k]:
        k += 1
    return k


def format_table(results: list[PathResult], n: int) -> str:
    """A Markdown table (it goes into the README as is). Ratios and the greedy-prefix column are
    against transformers float32 when it ran (prefill: at the same dtype), else against
    llama.cpp (a GGUF-only model: nothing for transformers to open)."""
    by_name = {r.name: r for r in results}
    hf32 = by_name.get("transformers float32")
    llama = next((r for r in results if r.name.startswith("llama.cpp ") and r.decode_tok_s), None)
    ref, ref_label = (hf32, "HF f32") if hf32 else (llama, "llama.cpp") if llama else (None, "")
    n_long = results[0].prefill_tokens if results else PREFILL_TOKENS
    label = ref_label or "HF f32"
    prefill_vs = "HF same dtype" if hf32 or not ref else ref_label
    header = (
        f"| path | load s | prefill tok/s ({n_long}) | decode tok/s | decode vs {label} "
        f"| prefill vs {prefill_vs} | greedy ids = {label} (prefix) |"
    )
    lines = [header, "|" + "---|" * 7]
    for r in results:
        if not r.decode_tok_s:
            lines.append(f"| {r.name} | skipped | | | | | |")
            continue
        pre_ref = by_name.get(f"transformers {r.dtype}") if hf32 else ref
        dec_ratio = f"{r.decode / ref.decode:.2f}x" if ref else "-"
        pre_ratio = f"{r.prefill_tok_s / pre_ref.prefill_tok_s:.2f}x" if pre_ref else "-"
        same = f"{_common_prefix(r.ids, ref.ids)}/{n}" if ref and ref.ids else "-"
        lines.append(
            f"| {r.name} | {r.load_s:.2f} | {r.prefill_tok_s:,.0f} | {r.decode:.1f} "
            f"| {dec_ratio} | {pre_ratio} | {same} |"
        )
    return "\n".join(lines)


def hf_rows(report: Any, gen: Any, ids: list[int], runs: list[Any], repeats: int) -> None:
    """transformers generate() on the same weights (greedy, float32, same prompt) as rows of a
    `tui-gen bench` report."""
    try:
        hf = Transformers(str(gen.loaded.path), "float32")
    except ImportError:
        report.add("hf", "transformers", None)
        return
    n = len(runs[0].token_ids)
    hf.decode(ids, 4)  # warm-up
    ttft = statistics.median(hf.prefill(ids) for _ in range(repeats))
    hf_runs = [hf.decode(ids, n) for _ in range(repeats)]
    decode_hf = statistics.median(tok_s for tok_s, _ in hf_runs)
    decode_ours = report.data["decode_tok_s"]
    same = sum(a == b for a, b in zip(hf_runs[-1][1], runs[0].token_ids))
    report.add("hf_load_s", "transformers load seconds", hf.load_s, "{:.2f}")
    report.add("hf_ttft_s", "transformers time to first token (s)", ttft, "{:.3f}")
    report.add("hf_decode_tok_s", "transformers decode tok/s", decode_hf, "{:.1f}")
    report.add(
        "decode_ratio_vs_hf", "decode speed ours / transformers", decode_ours / decode_hf, "{:.2f}x"
    )
    report.add("greedy_ids_equal", "greedy ids equal to transformers", f"{same} of {n}")


def build_parser() -> argparse.ArgumentParser:
    from tui_gen.cli.bench import build_parser as bench_parser

    p = bench_parser()
    p.prog = "python -m dev.bench_compare"
    p.description = __doc__
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument(
        "--hf",
        action="store_true",
        help="tui-gen bench's report plus transformers generate() on the same weights",
    )
    p.add_argument("--gguf", metavar="FILE", help="also run llama-cpp-python on this GGUF")
    p.add_argument(
        "--int4-head",
        action="store_true",
        help="also int4 with a 4-bit lm_head (int4's default keeps the head at 8 bits)",
    )
    p.add_argument(
        "--blocks-only",
        action="store_true",
        help="for a .gguf model: only its kept blocks (and llama.cpp), not float32 and int4",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    import torch

    from tui_gen.cli.bench import run_bench

    args = build_parser().parse_args(argv)
    if args.hf:
        report = run_bench(args, after=lambda r, g, i, runs: hf_rows(r, g, i, runs, args.repeats))
        report.print(args.json)
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    results = run_compare(args)
    if args.json:
        print(json.dumps([r.__dict__ | {"prefill_tok_s": r.prefill_tok_s} for r in results]))
        return 0
    print(
        f"{args.model}: greedy, {args.max_new_tokens} new tokens, {args.repeats} interleaved "
        f"rounds (medians), {torch.get_num_threads()} threads, torch {torch.__version__}, "
        f"{platform.processor() or platform.machine()}, {time.strftime('%Y-%m-%d')}"
    )
    print(format_table(results, args.max_new_tokens))
    return 0


if __name__ == "__main__":
    from tui_gen.errors import TuiGenError

    try:
        raise SystemExit(main(sys.argv[1:]))
    except TuiGenError as e:
        print(f"bench_compare: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
