"""Grouped int8/int4 linear layers on the native kernels, with float32 activations.

`--quantize int8` runs here. `--quantize int4` runs its layers as Q4_1 blocks on the integer-dot
kernels instead (to_blocks.py; faster, 8-bit activations); this module's 4-bit layer serves a
width that is not whole groups of 32 and direct callers.

The scheme, for both widths: groups of 32 inputs of each output row, an asymmetric range per
group stored as float16 (scale, min), w ~= q * scale + min, q in [0, 2**bits - 1]. Against
torch's int8 path (one symmetric scale per row, bfloat16 activations) it is finer on both
counts: per-channel int8 moves SmolLM2's greedy choice on ~4% of teacher-forced positions,
bfloat16 activations alone on ~3%; this scheme on <1%, while reading 1.125 bytes per weight
(int8) or 0.625 (int4) instead of float32's 4.

A decode step (up to `MAX_ROWS` rows: one token, a small batch or beam) runs the C kernel, and
so does a short chat turn (up to 32 rows, in passes of MAX_ROWS); a longer prompt dequantizes
the weight a block of rows at a time into float32 and uses the float GEMM, which is faster than
re-reading the quantized weight once per pass.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from tui_gen.engine.native import build
from tui_gen.models.linear import TransposedLinear

GROUP = 32  # fixed in qmatmul.c
MAX_ROWS = 8  # MAX_M in qmatmul.c
_DEQUANT_BLOCK_BYTES = 16 << 20  # float32 weight rows dequantized at a time for a prompt
#: up to this many rows, MAX_ROWS-row kernel passes are faster than dequantize + GEMM (SmolLM2's
#: 576x3072 here: 0.6-0.8 ms vs 1.1 ms at 16 rows, 1.3 vs 1.5 at 32, 2.6 vs 2.1 at 64)
_KERNEL_ROWS_LIMIT = 32


def available(device: torch.device | str = "cpu") -> bool:
    """Whether the native kernels can serve layers on `device` (built on first call)."""
    return torch.device(device).type == "cpu" and build.load() is not None


def decode_unavailable(device: torch.device | str, dtype: torch.dtype) -> str:
    """Why the native decode step cannot serve a model on `device` in `dtype` ("" when it
    can; builds the kernels on first call). The one rule the Generator, the decode layout and
    `info` share; engine/native/decode.py then checks the model's own shape."""
    device = torch.device(device)
    if device.type != "cpu" or dtype not in (torch.float32, torch.bfloat16):
        name = str(dtype).replace("torch.", "")
        return f"{device.type}, {name}: the native step runs float32 or bfloat16 on the CPU"
    return "" if build.load() is not None else build.reason()


def quantize_groups(weight: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """weight (N, K) float, K % 32 == 0 -> q (N, K) uint8 in [0, 2**bits - 1] and
    sm (N, K // 32, 2) float16 (scale, min), w ~= q * scale + min.

    q is rounded against the float16 scale and min the kernel will read, so the stored values
    are the nearest the kernel can represent, not the nearest before float16 rounding.
    """
    N, K = weight.shape
    if K % GROUP:
        raise ValueError(f"in_features {K} is not a multiple of {GROUP}")
    levels = (1 << bits) - 1
    qs, sms = [], []
    for rows in weight.detach().float().split(4096):  # bounded temporaries for a big lm_head
        w = rows.reshape(rows.shape[0], K // GROUP, GROUP)  # (n, G, 32)
        lo, hi = w.amin(dim=2), w.amax(dim=2)  # (n, G)
        sm = torch.stack([(hi - lo) / levels, lo], dim=-1).to(torch.float16)  # (n, G, 2)
        if not torch.isfinite(sm).all():
            raise ValueError("weights outside float16's range cannot use the native kernels")
        scale = sm[..., 0].float().clamp_min(2.0**-24)  # the smallest float16 step
        sm[..., 0] = scale.to(torch.float16)
        q = torch.round((w - sm[..., 1:2].float()) / scale[..., None]).clamp_(0, levels)
        qs.append(q.to(torch.uint8).reshape(rows.shape[0], K))
        sms.append(sm)
    return torch.cat(qs), torch.cat(sms)


def pack_halves(q: torch.Tensor) -> torch.Tensor:
    """(N, K) uint8 in [0, 15] -> (N, K // 2): in each group's 16 bytes, byte j holds element j
    (low nibble) and element j + 16 (high nibble), the order the kernel unpacks into vectors."""
    N, K = q.shape
    g = q.reshape(N, K // GROUP, 2, GROUP // 2)
    return (g[:, :, 0] | (g[:, :, 1] << 4)).reshape(N, K // 2).contiguous()


def dequantize(q: torch.Tensor, sm: torch.Tensor, bits: int, in_features: int) -> torch.Tensor:
    """The float32 (N, K) weight a layer's stored values stand for, computed in plain torch:
    the reference the C kernels are tested against."""
    N = q.shape[0]
    if bits == 4:
        g = q.reshape(N, -1, GROUP // 2)
        q = torch.cat([g & 0x0F, g >> 4], dim=-1).reshape(N, in_features)
    qf = q.float().reshape(N, -1, GROUP)
    smf = sm.float()
    return (qf * smf[..., 0:1] + smf[..., 1:2]).reshape(N, in_features)


class NativeQuantLinear(nn.Module):
    """nn.Linear with grouped 8- or 4-bit weights on the native kernels: x (..., K) -> (..., N).

    K is padded with zero weights to a multiple of 32 when needed (the activations are padded
    to match), so every layer can be quantized.
    """

    qweight: torch.Tensor  # (N, Kp) uint8, or (N, Kp // 2) for 4 bits
    scale_min: torch.Tensor  # (N, Kp // 32, 2) float16
    bias: torch.Tensor | None  # (N,) float32

    def __init__(self, linear: nn.Linear | TransposedLinear, bits: int) -> None:
        super().__init__()
        if bits not in (4, 8):
            raise ValueError(f"bits must be 4 or 8, got {bits}")
        w = linear.weight.detach()  # (out, in); a TransposedLinear hands out a view
        self.in_features: int = linear.in_features
        self.out_features: int = linear.out_features
        self.bits = bits
        self.padded_in = -(-self.in_features // GROUP) * GROUP
        wf = w.float()
        if self.padded_in != self.in_features:
            wf = F.pad(wf, (0, self.padded_in - self.in_features))
        q, sm = quantize_groups(wf, bits)
        self.register_buffer("qweight", pack_halves(q) if bits == 4 else q)  # uint8
        self.register_buffer("scale_min", sm)  # (N, Kp // 32, 2) float16
        bias = linear.bias.detach().float().clone() if linear.bias is not None else None
        self.register_buffer("bias", bias)
        lib = build.load()
        if lib is None:
            raise RuntimeError(f"native kernels unavailable: {build.reason()}")
        self._matmul, self._dequant = lib.q_matmul, lib.q_dequantize
        self._cache_pointers()

    def _cache_pointers(self) -> None:
        """The buffers' addresses, read once: a decode step calls ~100 layers, and each
        Python attribute lookup and data_ptr() call in forward costs more than the kernel's
        work on a small matrix."""
        self._ptrs = (self.qweight.data_ptr(), self.scale_min.data_ptr())

    def _apply(
        self, fn: Callable[[torch.Tensor], torch.Tensor], recurse: bool = True
    ) -> NativeQuantLinear:
        out = super()._apply(fn, recurse)
        self._cache_pointers()  # .to()/.share_memory() may have moved the buffers
        return out

    @property
    def backend(self) -> str:
        return f"native q{self.bits} g{GROUP} {build.isa()}, float32 act"

    def dequantized(self, rows: slice | None = None) -> torch.Tensor:
        """float32 (n, Kp) weight rows, through the C loop."""
        q, sm = self.qweight, self.scale_min
        if rows is not None:
            q, sm = q[rows], sm[rows]
        w = torch.empty(q.shape[0], self.padded_in)
        rc = self._dequant(
            q.data_ptr(), sm.data_ptr(), w.data_ptr(), q.shape[0], self.padded_in, self.bits,
            torch.get_num_threads(),
        )  # fmt: skip
        if rc != 0:
            raise RuntimeError("native dequantize rejected its arguments")
        return w

    def _rows(self, x: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        """The kernel on x (M <= MAX_ROWS rows of Kp contiguous float32) -> y `shape`, float32."""
        y = torch.empty(shape)
        qp, sp = self._ptrs
        n, k = self.out_features, self.padded_in
        if self._matmul(
            x.data_ptr(), qp, sp, y.data_ptr(), x.numel() // k, n, k, self.bits,
            torch.get_num_threads(),
        ):  # fmt: skip
            raise RuntimeError("native matmul rejected its arguments")
        return y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        K, N = self.in_features, self.out_features
        if (
            x.dtype is torch.float32
            and self.padded_in == K
            and x.numel() <= MAX_ROWS * K
            and x.is_contiguous()
        ):  # the decode step: straight to the kernel, nothing copied
            y = self._rows(x, (*x.shape[:-1], N))
            return y if self.bias is None else y.add_(self.bias)
        lead = x.shape[:-1]
        x2 = x.reshape(-1, K).to(torch.float32)  # (M, K)
        if self.padded_in != K:
            x2 = F.pad(x2, (0, self.padded_in - K))  # (M, Kp)
        x2 = x2.contiguous()
        M = x2.shape[0]
        if M <= MAX_ROWS:
            y = self._rows(x2, (M, N))
        elif M <= _KERNEL_ROWS_LIMIT:  # a short turn: a few kernel passes beat dequantizing
            y = torch.cat([self._rows(c, (c.shape[0], N)) for c in x2.split(MAX_ROWS)])
        else:  # a prompt: float GEMM on weight rows dequantized a block at a time
            block = max(1, _DEQUANT_BLOCK_BYTES // (4 * self.padded_in))
            parts = [
                F.linear(x2, self.dequantized(slice(i, i + block))) for i in range(0, N, block)
            ]
            y = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)  # (M, N)
        if self.bias is not None:
            y = y + self.bias
        return y.to(x.dtype).view(*lead, N)  # (..., N)

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, {self.backend}"
