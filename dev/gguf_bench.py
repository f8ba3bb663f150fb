"""GGUF block products, timed: the integer kernel against dequantize + float GEMM (run from a
checkout; one process, interleaved, medians).

    python -m dev.gguf_bench [--threads 2] [--types Q4_1,Q4_K] [--rows 1,8,64,512]

For each block type and activation row count M it times `GGUFLinear` on the integer kernel
(ggml_matmul.c, activations quantized to 8 bits) and the paths a long prompt could take
instead (dequantize the blocks, then F.linear in float32 or bfloat16), on SmolLM2-135M's
matrix shapes (Gemma 3's for the K types),
and prints billions of weights per second per M (weights x rows for the GEMM-like cases).
`gguf_linear.rows_limit` is chosen from it. On a shared machine only the ratios
within one run mean anything.
"""

from __future__ import annotations

import argparse
import statistics
import time

import gguf
import numpy as np
import torch
import torch.nn.functional as F

from tui_gen.engine.native import build, gguf_linear
from tui_gen.engine.native.gguf_linear import GGUFLinear

SHAPES = [(3072, 576), (576, 1536), (960, 576)]  # SmolLM2: gate+up, down, q+k+v
K_SHAPES = [(2048, 1024), (640, 2048)]  # Gemma 3 270M: rows of whole 256-blocks


def _blocks(qtype: str, n: int, k: int) -> torch.Tensor:
    t = gguf.GGMLQuantizationType[qtype]
    rng = np.random.default_rng(0)
    if qtype in ("Q4_K", "Q5_K", "Q6_K"):  # no K quantizer in gguf: random bytes, sane scales
        _, size = gguf.GGML_QUANT_SIZES[t]
        raw = rng.integers(0, 256, (n * k // 256, size), dtype=np.uint8)
        for at in {"Q4_K": [0, 2], "Q5_K": [0, 2], "Q6_K": [208]}[qtype]:
            raw[:, at : at + 2] = (
                rng.uniform(0.001, 0.02, raw.shape[0]).astype(np.float16).view(np.uint8)
            ).reshape(-1, 2)
    else:
        raw = gguf.quants.quantize(rng.standard_normal((n, k)).astype(np.float32), t)
    return torch.from_numpy(np.ascontiguousarray(raw).reshape(n, -1).copy())


def _time(fn, repeats: int) -> float:
    fn()
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dev.gguf_bench", description=__doc__)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--types", default="Q4_1,Q4_K,Q8_0")
    p.add_argument("--rows", default="1,8,32,128,512")
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    lib = build.load()
    if lib is None:
        raise SystemExit(f"the native kernels are not available: {build.reason()}")
    print(f"integer kernel ({gguf_linear.isa()}) vs dequantize + GEMM, {args.threads} threads,")
    print("billions of weights x rows per second (median of the shapes' sums)")
    for qtype in args.types.split(","):
        shapes = K_SHAPES if qtype.endswith("_K") else SHAPES
        type_id = gguf.GGMLQuantizationType[qtype].value
        layers = [GGUFLinear([(_blocks(qtype, n, k), type_id)], k) for n, k in shapes]
        weights = sum(n * k for n, k in shapes)
        for m in (int(r) for r in args.rows.split(",")):
            pairs = list(zip(layers, [torch.randn(m, k) for _, k in shapes], strict=True))

            def kernel(pairs: list = pairs) -> None:
                for layer, x in pairs:
                    y = torch.empty(x.shape[0], layer.out_features)
                    if lib.gg_matmul(layer.mat_address, x.data_ptr(), x.shape[0], y.data_ptr(),
                                     layer.out_features, args.threads):  # fmt: skip
                        raise SystemExit("gg_matmul rejected its arguments")

            def gemm(pairs: list = pairs, dt: torch.dtype = torch.float32) -> None:
                for layer, x in pairs:  # what a long prompt's forward does, in one tile
                    (raw,), (t,) = layer.block_parts(), layer.types
                    F.linear(x.to(dt), gguf_linear.dequantize_rows(raw, t, layer.in_features, dt))

            tk, tg = _time(kernel, args.repeats), _time(gemm, args.repeats)
            tb = _time(lambda: gemm(dt=torch.bfloat16), args.repeats)
            print(
                f"{qtype:5} M={m:4}  kernel {weights * m / tk / 1e9:7.1f}  "
                f"dequant+GEMM {weights * m / tg / 1e9:7.1f} ({tg / tk:5.2f}x)  "
                f"bfloat16 {weights * m / tb / 1e9:7.1f} ({tb / tk:5.2f}x)"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
