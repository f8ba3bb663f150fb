"""A GGUF file's kept blocks against llama.cpp on the same file: greedy ids, memory, load.

    python -m dev.gguf_vs_llamacpp FILE.gguf [--tokens 32] [--threads 2]

(run from a checkout with llama-cpp-python installed). For a few prompts (raw text, no chat
template) it prints how many of the first `--tokens` greedy ids tui-gen (the file's own types,
`--quantize keep`) and llama.cpp share, then our warm load time and the RSS the load added,
against the file's size.
"""

from __future__ import annotations

import argparse
import gc
import time
from pathlib import Path

PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):\n",
    "Once upon a time, in a small village by the sea,",
    "To make a good cup of tea, you",
    "The three primary colours are",
]


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dev.gguf_vs_llamacpp", description=__doc__)
    p.add_argument("gguf")
    p.add_argument("--tokens", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    import torch

    from tui_gen.cli.bench import greedy_run
    from tui_gen.engine.generator import Generator

    torch.set_num_threads(args.threads)
    Generator.load(args.gguf, device="cpu")  # warm: the kernels built, the file in page cache
    gc.collect()
    before = _rss_mib()
    t = time.perf_counter()
    gen = Generator.load(args.gguf, device="cpu")
    load_s = time.perf_counter() - t
    size = Path(args.gguf).stat().st_size / 2**20
    print(f"{args.gguf}: {gen.loaded.quantization}")
    print(f"warm load {load_s:.2f} s; RSS +{_rss_mib() - before:.0f} MiB after load, file "
          f"{size:.0f} MiB")  # fmt: skip
    from llama_cpp import Llama

    llm = Llama(model_path=args.gguf, n_threads=args.threads, n_ctx=512, verbose=False)
    same_total = 0
    for prompt in PROMPTS:
        ids = gen.encode(prompt, True)
        ours = list(greedy_run(gen, ids, args.tokens).token_ids)
        theirs: list[int] = []
        llm.reset()
        for tok in llm.generate(ids, temp=0.0, top_k=1, reset=True):
            theirs.append(tok)
            if len(theirs) >= args.tokens:
                break
        same = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), len(ours))
        same_total += same == args.tokens
        print(f"  {prompt!r}: greedy ids equal for {same}/{args.tokens}")
    print(f"{same_total} of {len(PROMPTS)} prompts equal for all {args.tokens} tokens")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
