"""A prompt's causal attention with bfloat16 dot products (prompt_attention.c), for models whose
prompt GEMMs already multiply in bfloat16.

Why: with the GGUF blocks kept, a long prompt's products run as bfloat16 GEMMs
(`gguf_linear.gemm_dtype`), and torch's float32 flash attention became a quarter of the
prefill (Gemma 3 270M, 512 tokens: ~120 of ~480 ms). The C kernel's `vdpbf16ps` products
take 2.4 ms a layer where SDPA takes 6.3 (4 heads of 256 over one key head, two Zen 4
cores), rounding the queries, keys, values and probabilities to bfloat16 as the GEMMs
around it round their inputs; scaling, mask and softmax stay float32, and so does the cache.

One rule decides where it runs, the GEMM's: `install` gives the kernel to a model's attention
modules only when its prompt products are bfloat16 on this CPU (so a float32 model, and
`TUI_GEN_GGUF_GEMM=float32`, attend exactly as before), and it attends only prompts long
enough that those products are GEMMs (MIN_QUERIES). Each call falls back to torch (returns
None) for what the kernel does not cover: other devices or dtypes, batches, a prompt
continuing a cache or under a sliding window shorter than it (those carry a mask), head
sizes that are not a multiple of 64.
"""

from __future__ import annotations

import torch
from torch import nn

from tui_gen.engine.native import build, gguf_linear

#: queries (prompt tokens) above which the kernel attends: the rows above which every GGUF
#: product runs as a bfloat16 GEMM too (shorter prompts take the integer-dot kernels, whose
#: greedy tokens match llama.cpp's, and their attention costs little)
MIN_QUERIES = gguf_linear.rows_limit(False, torch.bfloat16) + 1


def available() -> bool:
    """Whether the loaded library has the kernel (built for a CPU with AVX512-BF16)."""
    lib = build.load()
    return lib is not None and lib.prompt_attention_available() == 1


def prompt_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, softcap: float | None
) -> torch.Tensor | None:
    """softmax(scale * q k^T, causal) v for q (1, H, T, D) and k, v (1, KV, S, D), the queries
    at the last T of S positions; (1, H, T, D), or None when the kernel does not apply."""
    if q.dim() != 4 or q.shape[0] != 1 or k.shape[0] != 1 or q.shape[2] < MIN_QUERIES:
        return None
    if any(t.device.type != "cpu" or t.dtype != torch.float32 for t in (q, k, v)):
        return None
    _, H, T, D = q.shape
    KV, S = k.shape[1], k.shape[2]
    if v.shape != k.shape or H % KV or S < T or D % 64:
        return None
    if q.stride(-1) != 1:
        q = q.contiguous()
    if k.stride(-1) != 1 or v.stride(-1) != 1 or k.stride()[1:] != v.stride()[1:]:
        k, v = k.contiguous(), v.contiguous()
    lib = build.load()
    if lib is None:
        return None
    out = torch.empty(T, H, D)  # (T, H, D): what the output projection reads
    rc = lib.prompt_attention_bf16(
        q.data_ptr(), q.stride(1), q.stride(2), k.data_ptr(), v.data_ptr(), k.stride(1),
        k.stride(2), out.data_ptr(), T, S, H, KV, D, float(scale), float(softcap or 0.0), 0,
        torch.get_num_threads(),
    )  # fmt: skip
    if rc != 0:
        return None
    return out.transpose(0, 1).unsqueeze(0)


def install(model: nn.Module, gemm_dtype: torch.dtype) -> int:
    """Give the kernel to every attention module of `model` (those with a `prompt_attention`
    attribute) when its prompt GEMMs multiply in bfloat16 and the library has the kernel;
    returns how many modules got it."""
    if gemm_dtype != torch.bfloat16 or not available():
        return 0
    n = 0
    for m in model.modules():
        if hasattr(m, "prompt_attention"):
            setattr(m, "prompt_attention", prompt_attention)  # noqa: B010 (nn.Module typing)
            n += 1
    return n


def installed(model: nn.Module) -> bool:
    return any(getattr(m, "prompt_attention", None) is not None for m in model.modules())
