"""Decode-friendly weight layout: fused projections and pre-transposed matrices.

A decode step multiplies one token's vector by every weight matrix, so its speed is how fast the
matmul kernel streams the weights. On the CPU, `F.linear` over an (out, in) weight runs well
below the memory bandwidth for a single row, while `x @ W_t` over a contiguous (in, out) copy is
faster on every SmolLM2 shape except the tall-input down projection (`python -m
tui_gen.kernels_bench`). Fusing q/k/v and gate/up halves the kernel calls per layer, and lets
RoPE run once over q and k together.

The transformation is numerically exact up to float summation order (greedy ids are compared
with transformers' in the tests) and is applied once, by the Generator, after loading: the
loader's model keeps Hugging Face's layout and names, so checkpoint tests see what the file
holds.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import mmap
import sys

import torch
from torch import nn


class TransposedLinear(nn.Module):
    """A linear layer holding its weight as a contiguous (in, out) matrix: y = x @ W_t + b."""

    def __init__(self, weight_t: torch.Tensor, bias: torch.Tensor | None) -> None:
        super().__init__()
        self.weight_t = nn.Parameter(weight_t, requires_grad=False)  # (in, out)
        self.bias = None if bias is None else nn.Parameter(bias, requires_grad=False)
        self.in_features, self.out_features = weight_t.shape

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> TransposedLinear:
        w_t = linear.weight.detach().t().contiguous()
        b = None if linear.bias is None else linear.bias.detach()
        return cls(w_t, b)

    @property
    def weight(self) -> torch.Tensor:
        """The (out, in) view nn.Linear users expect (quantization reads it)."""
        return self.weight_t.t()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bias is None:
            return x @ self.weight_t  # (..., out)
        y = torch.addmm(self.bias, x.reshape(-1, self.in_features), self.weight_t)
        return y.view(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, bias={self.bias is not None}"


class TransposedEmbedding(nn.Module):
    """Token lookup from a tied lm_head's (dim, vocab) weight, so a tied model keeps one copy."""

    def __init__(self, weight_t: nn.Parameter) -> None:
        super().__init__()
        self.weight_t = weight_t  # (C, V), the same Parameter as the head's

    @property
    def weight(self) -> torch.Tensor:
        return self.weight_t.t()

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        rows = self.weight_t.index_select(1, idx.reshape(-1))  # (C, B*T)
        return rows.t().reshape(*idx.shape, self.weight_t.shape[0])  # (B, T, C)


def fuse_linears(parts: list[nn.Linear], transposed: bool) -> nn.Module:
    """One layer computing every part's output side by side (..., sum of out_features).

    With `transposed`, the fused (in, out) matrix is built in one pass from the parts, so no
    intermediate (out, in) copy is made.
    """
    has_bias = parts[0].bias is not None
    bias = torch.cat([p.bias.detach() for p in parts]) if has_bias else None
    if transposed:
        fused: nn.Module = TransposedLinear(
            torch.cat([p.weight.detach().t() for p in parts], 1), bias
        )
    else:
        w = torch.cat([p.weight.detach() for p in parts])
        fused = nn.Linear(w.shape[1], w.shape[0], bias=has_bias, device="meta")
        fused.weight = nn.Parameter(w, requires_grad=False)
        if bias is not None:
            fused.bias = nn.Parameter(bias, requires_grad=False)
    for p in parts:
        release_pages(p.weight)
    return fused


_libc = None


def release_pages(t: torch.Tensor) -> None:
    """Tell Linux the pages of a replaced, memory-mapped weight are no longer needed.

    A weight copied into the decode layout leaves its source pages resident for as long as the
    file mapping lives (any other tensor of the file keeps it alive), so RSS would count both
    copies. MADV_DONTNEED drops them; the mapping is read-only, so a later read would simply
    fault the bytes back in from the file. Only whole pages inside the tensor are touched.
    A no-op off Linux and for ordinary (anonymous) tensors, which free themselves.
    """
    global _libc
    if not sys.platform.startswith("linux") or t.device.type != "cpu" or t.numel() == 0:
        return
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    page = mmap.PAGESIZE
    start, nbytes = t.data_ptr(), t.numel() * t.element_size()
    lo = -(-start // page) * page
    hi = (start + nbytes) // page * page
    if hi > lo and _is_file_mapping(start, start + nbytes):
        _libc.madvise(ctypes.c_void_p(lo), ctypes.c_size_t(hi - lo), mmap.MADV_DONTNEED)


def _is_file_mapping(start: int, end: int) -> bool:
    # Only pages of a file mapping (safetensors' mmap) may be dropped: on anonymous
    # memory MADV_DONTNEED would zero data that something else might still read.
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                fields = line.split()
                if len(fields) < 6 or not fields[5].startswith("/"):
                    continue  # anonymous, [heap], [stack] ...
                lo, hi = (int(x, 16) for x in fields[0].split("-"))
                if lo <= start and end <= hi:
                    # torch maps safetensors files copy-on-write ("rw-p"); nothing writes to
                    # weights, so dropping a page only ever reverts it to the file's bytes
                    return True
    except OSError:
        pass
    return False


def _wants_transpose(linear: nn.Linear) -> bool:
    # x @ W_t wins for every shape but a projection whose input is wider than its output
    # (Llama's down_proj, GPT-2's MLP c_proj), where F.linear's kernel is as fast or faster.
    return linear.in_features <= linear.out_features


def transpose_linears(model: nn.Module) -> int:
    """Swap nn.Linear layers for TransposedLinear where it is faster; returns how many.

    A head tied to the input embedding keeps a single (C, V) copy shared by both.
    """
    embed = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
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
    if head_t is not None and hasattr(model, "set_input_embeddings"):
        model.set_input_embeddings(TransposedEmbedding(head_t))
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
    model._decode_layout = True


def _native_decodes(model: nn.Module) -> bool:
    """Whether the native decode step will serve this (CPU) model."""
    first = next(model.parameters(), None)
    if first is None:
        return False
    from tui_gen.engine.native.qlinear import decode_unavailable

    return not decode_unavailable("cpu", first.dtype)
