"""Decode-friendly weight layout: fused projections and pre-transposed matrices.

A decode step multiplies one token's vector by every weight matrix, so its speed is how fast the
matmul kernel streams the weights. On the CPU, `F.linear` over an (out, in) weight runs well
below the memory bandwidth for a single row, while `x @ W_t` over a contiguous (in, out) copy is
faster on every SmolLM2 shape except the tall-input down projection (`python -m
dev.kernels_bench`). Fusing q/k/v and gate/up halves the kernel calls per layer, and lets
RoPE run once over q and k together.

The transformation is numerically exact up to float summation order (greedy ids are compared
with transformers' in the tests) and is applied once, by the Generator, after loading: the
loader's model keeps Hugging Face's layout and names, so checkpoint tests see what the file
holds.
"""

from __future__ import annotations

import torch
from torch import nn

from tui_gen.models.linear import TransposedEmbedding, TransposedLinear, release_pages


def _wants_transpose(linear: nn.Linear) -> bool:
    # x @ W_t wins for every shape but a projection whose input is wider than its output
    # (Llama's down_proj, GPT-2's MLP c_proj), where F.linear's kernel is as fast or faster.
    return linear.in_features <= linear.out_features


def transpose_linears(model: nn.Module) -> int:
    """Swap nn.Linear layers for TransposedLinear where it is faster; returns how many.

    A head tied to the input embedding keeps a single (C, V) copy shared by both.
    """
    get_embeddings = getattr(model, "get_input_embeddings", None)
    embed = get_embeddings() if callable(get_embeddings) else None
    tied_ptr = None
    if isinstance(embed, nn.Embedding):
        tied_ptr = embed.weight.data_ptr()
    count = 0
    head_t: nn.Parameter | None = None
    for name, mod in list(model.named_modules()):
        if not isinstance(mod, nn.Linear) or not _wants_transpose(mod):
            continue
        tied = tied_ptr is not None and mod.weight.data_ptr() == tied_ptr
        new = TransposedLinear.from_linear(mod)
        release_pages(mod.weight)
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, new)
        if tied:
            head_t = new.weight_t
        count += 1
    set_embeddings = getattr(model, "set_input_embeddings", None)
    if head_t is not None and callable(set_embeddings):
        set_embeddings(TransposedEmbedding(head_t))
    return count


def prepare_for_decode(
    model: nn.Module, device: torch.device, quantized: bool, transpose: bool | None = None
) -> None:
    """Fuse projections (always), then pre-transpose float matrices where torch decodes
    (idempotent).

    The transposed layout only helps torch's matrix-vector kernel. A float32 or bfloat16 CPU
    model decodes on the native step (engine/native/decode.py), which reads (out, in) rows
    faster, and its prompts run through F.linear's (out, in) GEMM at least as fast, so by
    default (`transpose=None`) it keeps nn.Linear. Quantized layers keep their own layout;
    other devices keep F.linear, whose GPU kernels already want (out, in).
    """
    if getattr(model, "_decode_layout", False):
        return
    if transpose is None:
        transpose = device.type == "cpu" and not quantized and not _native_decodes(model)
    fuse = getattr(model, "fuse_projections", None)
    if fuse is not None:
        fuse(transposed=transpose)
    if transpose:
        transpose_linears(model)
    object.__setattr__(model, "_decode_layout", True)  # a plain attribute: done once


def _native_decodes(model: nn.Module) -> bool:
    """Whether the native decode step will serve this (CPU) model."""
    first = next(model.parameters(), None)
    if first is None:
        return False
    from tui_gen.engine.native.qlinear import decode_unavailable

    return not decode_unavailable("cpu", first.dtype)
