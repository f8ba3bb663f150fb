"""Linear layers in the layouts decoding wants: pre-transposed (in, out) matrices, a tied
embedding that shares the head's copy, fused projections, and dropping replaced mmap pages.

The engine decides when to use them (engine/layout.py); the models build fused projections
with them (`fuse_projections`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import mmap
import sys
from typing import cast

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


def fuse_linears(parts: list[nn.Module], transposed: bool) -> nn.Module:
    """One layer computing every part's output side by side (..., sum of out_features).

    With `transposed`, the fused (in, out) matrix is built in one pass from the parts, so no
    intermediate (out, in) copy is made. A layer class with a `concatenate(parts)` classmethod
    (engine/native/gguf_linear.py's GGUFLinear) fuses itself.
    """
    concatenate = getattr(type(parts[0]), "concatenate", None)
    if concatenate is not None:  # layers over quantized blocks fuse by reference, not by copy
        fused_parts: nn.Module = concatenate(parts)
        return fused_parts
    linears = cast(list[nn.Linear], parts)
    has_bias = linears[0].bias is not None
    bias = torch.cat([p.bias.detach() for p in linears]) if has_bias else None
    if transposed:
        fused: nn.Module = TransposedLinear(
            torch.cat([p.weight.detach().t() for p in linears], 1), bias
        )
    else:
        w = torch.cat([p.weight.detach() for p in linears])
        fused = nn.Linear(w.shape[1], w.shape[0], bias=has_bias, device="meta")
        fused.weight = nn.Parameter(w, requires_grad=False)
        if bias is not None:
            fused.bias = nn.Parameter(bias, requires_grad=False)
    for p in linears:
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
