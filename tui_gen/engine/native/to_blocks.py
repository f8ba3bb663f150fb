"""Float weights quantized into GGUF blocks: `--quantize int4` on a float model, on the CPU.

Why: the integer-dot kernels of ggml_matmul.c (activations quantized once per product to 8-bit
blocks, `maddubs`/VNNI dot products) are what let a GGUF file's Q4 layers decode faster than
our float-activation int4 kernel, which is bound by widening 4-bit values to float. Our int4
scheme (groups of 32, float16 scale and min, w ~= q * scale + min, q in 0..15) *is* ggml's
Q4_1, so a float model's layers quantized that way can be written as Q4_1 blocks with the same
numbers and run on those kernels; the lm_head, which shows its error most in the next-token
distribution, becomes Q8_0 (symmetric, 8 bits per weight, a float16 scale per 32), as in
llama.cpp's own Q4_1 files.

Block layouts (ggml-common.h):
- Q4_1, 20 bytes per 32 weights: d float16, m float16, qs[16] with qs[j] = q[j] | q[j+16] << 4;
- Q8_0, 34 bytes per 32 weights: d float16, qs[32] int8; w = d * q.
"""

from __future__ import annotations

import torch

from tui_gen.engine.native.qlinear import GROUP, pack_halves, quantize_groups

Q4_1, Q8_0 = 3, 8  # ggml type ids
_ROWS = 4096  # rows quantized at a time: bounded temporaries for a big lm_head


def q4_1_blocks(weight: torch.Tensor) -> torch.Tensor:
    """weight (N, K) float, K % 32 == 0 -> Q4_1 blocks (N, K // 32 * 20) uint8.

    The values are quantize_groups(weight, 4)'s (rounded against the float16 scale and min
    the kernel reads), so a layer holds exactly what NativeQuantLinear's int4 would."""
    N, K = weight.shape
    q, sm = quantize_groups(weight, 4)  # (N, K) uint8, (N, G, 2) float16
    G = K // GROUP
    qs = pack_halves(q).view(N, G, GROUP // 2)  # byte j: element j low, element j + 16 high
    dm = sm.contiguous().view(torch.uint8).view(N, G, 4)  # d then m, little-endian float16
    return torch.cat([dm, qs], dim=2).reshape(N, G * 20).contiguous()


def q8_0_blocks(weight: torch.Tensor) -> torch.Tensor:
    """weight (N, K) float, K % 32 == 0 -> Q8_0 blocks (N, K // 32 * 34) uint8.

    d = max|w| / 127 per group of 32, stored as float16; q = round(w / d) against that stored
    d (so the kernel's d * q is the nearest it can represent), in [-127, 127]."""
    N, K = weight.shape
    if K % GROUP:
        raise ValueError(f"in_features {K} is not a multiple of {GROUP}")
    G = K // GROUP
    out = []
    for rows in weight.detach().float().split(_ROWS):
        w = rows.reshape(rows.shape[0], G, GROUP)  # (n, G, 32)
        d = (w.abs().amax(dim=2, keepdim=True) / 127).to(torch.float16)  # (n, G, 1)
        if not torch.isfinite(d).all():
            raise ValueError("weights outside float16's range cannot use the native kernels")
        df = d.float()
        q = torch.where(df > 0, w / df.clamp_min(2.0**-24), 0).round_().clamp_(-127, 127)
        qb = q.to(torch.int8).view(torch.uint8)  # (n, G, 32)
        out.append(torch.cat([d.view(torch.uint8), qb], dim=2).reshape(rows.shape[0], G * 34))
    return torch.cat(out).contiguous()


def blocks(weight: torch.Tensor, type_id: int) -> torch.Tensor:
    """`weight` (N, K) as blocks of ggml type `type_id` (Q4_1 or Q8_0)."""
    if type_id == Q4_1:
        return q4_1_blocks(weight)
    if type_id == Q8_0:
        return q8_0_blocks(weight)
    raise ValueError(f"no float-to-blocks quantizer for ggml type {type_id}")
