"""Native kernels for the torch forward of a kept GGUF model's prompt: its causal attention in
bfloat16 dot products (prompt_attention.c) and its gated MLP's activation (decode.c).

Why the attention: with the GGUF blocks kept, a long prompt's products run as bfloat16 GEMMs
(`gguf_linear.gemm_dtype`), and torch's float32 flash attention became a quarter of the
prefill (Gemma 3 270M, 512 tokens: ~120 of ~480 ms). The C kernel's `vdpbf16ps` products
take 2.4 ms a layer where SDPA takes 6.3 (4 heads of 256 over one key head, two Zen 4
cores), rounding the queries, keys, values and probabilities to bfloat16 as the GEMMs
around it round their inputs; scaling, mask and softmax stay float32, and so does the cache.

One rule decides where it runs, the GEMM's: `install` gives the kernel to a model's attention
modules only when its prompt products are bfloat16 on this CPU (so a float32 model, and
`TUI_GEN_GGUF_GEMM=float32`, attend exactly as before), and it attends only prompts long
enough that those products are GEMMs (MIN_QUERIES), masked by positions alone (from 0 or
continuing a cache, under a sliding window or not: models/common.py marks such masks). Each
call falls back to torch (returns None) for what the kernel does not cover: other devices or
dtypes, batches (their masks hide padding), head sizes that are not a multiple of 64.

Why the activation: torch computes a gated MLP's act(gate) * up in three passes over
(T, I) floats (the activation, its temporary, the product), and its tanh GELU runs at ~1 G
elements a second; decode.c's eight-lane version (vmath.h, within a few float32 ulps of
torch's) reads the fused gate|up product once.
"""

from __future__ import annotations

from collections.abc import Callable

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
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    scale: float,
    softcap: float | None,
    window: int = 0,
) -> torch.Tensor | None:
    """softmax(scale * q k^T, causal) v for q (1, H, T, D) and k, v (1, KV, S, D), the queries
    at the last T of S positions, each seeing keys after its position - `window` too when
    window > 0; (1, H, T, D), or None when the kernel does not apply."""
    if q.dim() != 4 or q.shape[0] != 1 or k.shape[0] != 1 or q.shape[2] < MIN_QUERIES:
        return None
    if any(t.device.type != "cpu" or t.dtype != torch.float32 for t in (q, k, v)):
        return None
    _, H, T, D = q.shape
    KV, S = k.shape[1], k.shape[2]
    if v.shape != k.shape or H % KV or S < T or D % 64 or window < 0:
        return None
    if q.stride(-1) != 1:
        q = q.contiguous()
    if k.stride(-1) != 1 or v.stride(-1) != 1 or k.stride()[1:] != v.stride()[1:]:
        k, v = k.contiguous(), v.contiguous()
    lib = build.load()
    if lib is None:
        return None
    out = torch.empty(T, H, D, dtype=torch.float32)  # (T, H, D): what the output projection reads
    rc = lib.prompt_attention_bf16(
        q.data_ptr(), q.stride(1), q.stride(2), k.data_ptr(), v.data_ptr(), k.stride(1),
        k.stride(2), out.data_ptr(), T, S, H, KV, D, float(scale), float(softcap or 0.0), window,
        torch.get_num_threads(),
    )  # fmt: skip
    if rc != 0:
        return None
    return out.transpose(0, 1).unsqueeze(0)


#: the gated activations decode.c computes (its ACT_* codes)
GATED = {"silu": 0, "gelu_tanh": 5}


def gated_activation(u: torch.Tensor, act: str) -> torch.Tensor | None:
    """act(gate) * up for a fused gate|up product u (..., 2I), gate first: (..., I), or None
    when the kernel does not apply (another device or dtype, an activation it lacks)."""
    code = GATED.get(act)
    if code is None or u.device.type != "cpu" or u.dtype != torch.float32 or u.shape[-1] % 2:
        return None
    lib = build.load()
    if lib is None:
        return None
    u2 = u.reshape(-1, u.shape[-1])
    if not u2.is_contiguous():
        u2 = u2.contiguous()
    rows, inner = u2.shape[0], u2.shape[1] // 2
    out = torch.empty(*u.shape[:-1], inner, dtype=torch.float32)
    rc = lib.gated_activation_rows(
        code, u2.data_ptr(), rows, inner, out.data_ptr(), torch.get_num_threads()
    )
    return out if rc == 0 else None


def install(model: nn.Module, gemm_dtype: torch.dtype) -> dict[str, int]:
    """Give the kernels to `model`'s modules: the gated activation to every MLP with a
    `gated_activation` attribute (where the library is built), the attention to every module
    with a `prompt_attention` attribute when the prompt GEMMs multiply in bfloat16 and the
    library has it. Returns how many modules got each."""
    got = {"gated_activation": 0, "prompt_attention": 0}
    if build.load() is None:
        return got
    kernels: dict[str, Callable[..., torch.Tensor | None]] = {"gated_activation": gated_activation}
    if gemm_dtype == torch.bfloat16 and available():
        kernels["prompt_attention"] = prompt_attention
    for m in model.modules():
        for name, fn in kernels.items():
            if hasattr(m, name):
                setattr(m, name, fn)
                got[name] += 1
    return got


def installed(model: nn.Module, name: str = "prompt_attention") -> bool:
    """Whether some module of `model` got the kernel `name`."""
    return any(getattr(m, name, None) is not None for m in model.modules())
