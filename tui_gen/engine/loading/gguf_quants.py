"""ggml quant types -> float32: vectorised torch kernels, bit-for-bit equal to `gguf.quants`.

tests/engine/test_gguf.py checks every type against `gguf.quants.dequantize`. Types without a
kernel here fall back to the `gguf` package when it is installed; a type nothing can read is an
:class:`UnsupportedModelError` naming it (gguf_reader.py checks every tensor when a file opens).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from tui_gen.engine.loading.gguf_file import GGML_TYPES, type_name
from tui_gen.errors import UnsupportedModelError

# Each kernel takes the raw bytes as a (n_blocks, bytes_per_block) uint8 tensor and writes the
# values into `out`, a (n_blocks, block_size) float32 tensor, doing the same float32 operations in
# the same order as gguf.quants so the results are identical, not merely close. They work in place
# in `out` with only byte-sized temporaries: on a VM, fresh memory is slower than arithmetic.


def _f16(b: torch.Tensor, at: int) -> torch.Tensor:
    """The float16 stored at byte `at` of every block, as a (n_blocks, 1) float32 column."""
    return b[:, at : at + 2].contiguous().view(torch.float16).float()


def _nibbles_into(out: torch.Tensor, qs: torch.Tensor) -> None:
    """Packed bytes (..., k) -> out (..., 2k): the k low nibbles, then the k high nibbles."""
    k = qs.shape[-1]
    out[..., :k] = qs & 0x0F
    out[..., k:] = qs >> 4


def _deq_f32(b: torch.Tensor, out: torch.Tensor) -> None:
    out.copy_(b.view(torch.float32))


def _deq_f16(b: torch.Tensor, out: torch.Tensor) -> None:
    out.copy_(b.view(torch.float16))


def _deq_bf16(b: torch.Tensor, out: torch.Tensor) -> None:
    out.copy_(b.view(torch.bfloat16))  # widening bfloat16 is exact: the bits move up 16 places


def _deq_q8_0(b: torch.Tensor, out: torch.Tensor) -> None:
    out.copy_(b[:, 2:].view(torch.int8)).mul_(_f16(b, 0))


def _deq_q4_0(b: torch.Tensor, out: torch.Tensor) -> None:
    _nibbles_into(out, b[:, 2:])
    out.sub_(8).mul_(_f16(b, 0))  # small integers: subtracting in float is exact


def _deq_q4_1(b: torch.Tensor, out: torch.Tensor) -> None:
    _nibbles_into(out, b[:, 4:])
    out.mul_(_f16(b, 0)).add_(_f16(b, 2))


def _q5_into(out: torch.Tensor, b: torch.Tensor, qh_at: int) -> None:
    qs, qh = b[:, qh_at + 4 :], b[:, qh_at : qh_at + 4]
    # bit j of the little-endian uint32 qh is the fifth bit of element j
    high = ((qh.unsqueeze(-1) >> torch.arange(8, dtype=torch.uint8)) & 1).reshape(-1, 32) << 4
    out[:, :16] = (qs & 0x0F) | high[:, :16]
    out[:, 16:] = (qs >> 4) | high[:, 16:]


def _deq_q5_0(b: torch.Tensor, out: torch.Tensor) -> None:
    _q5_into(out, b, 2)
    out.sub_(16).mul_(_f16(b, 0))


def _deq_q5_1(b: torch.Tensor, out: torch.Tensor) -> None:
    _q5_into(out, b, 4)
    out.mul_(_f16(b, 0)).add_(_f16(b, 2))


def _k_scales(b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Q4_K/Q5_K: (n, 8, 1) scales d*sc and offsets dmin*m from the 12 packed scale bytes."""
    s = b[:, 4:16].reshape(-1, 3, 4)
    d, m, md = s[:, 0], s[:, 1], s[:, 2]
    sc = torch.cat((d & 0x3F, (md & 0x0F) | ((d >> 2) & 0x30)), dim=1)
    mn = torch.cat((m & 0x3F, (md >> 4) | ((m >> 2) & 0x30)), dim=1)
    n = b.shape[0]
    return (_f16(b, 0) * sc.float()).reshape(n, 8, 1), (_f16(b, 2) * mn.float()).reshape(n, 8, 1)


def _k_nibbles_into(out: torch.Tensor, qs: torch.Tensor) -> None:
    """(n, 128) -> out (n, 8, 32): chunk c of 32 bytes is sub-block 2c (low) and 2c+1 (high)."""
    pairs = out.view(-1, 4, 2, 32)
    qs = qs.reshape(-1, 4, 32)
    pairs[:, :, 0] = qs & 0x0F
    pairs[:, :, 1] = qs >> 4


def _deq_q4_k(b: torch.Tensor, out: torch.Tensor) -> None:
    d, dm = _k_scales(b)
    q = out.view(-1, 8, 32)
    _k_nibbles_into(q, b[:, 16:])
    q.mul_(d).sub_(dm)


def _deq_q5_k(b: torch.Tensor, out: torch.Tensor) -> None:
    d, dm = _k_scales(b)
    n = b.shape[0]
    high = b[:, 16:48].reshape(n, 1, 32) >> torch.arange(8, dtype=torch.uint8).reshape(1, 8, 1)
    high = (high & 1) << 4  # (n, 8, 32): bit i of qh[j] is the fifth bit of sub-block i
    lo = b[:, 48:].reshape(n, 4, 32)
    q = out.view(n, 4, 2, 32)
    q[:, :, 0] = (lo & 0x0F) | high[:, 0::2]
    q[:, :, 1] = (lo >> 4) | high[:, 1::2]
    q = out.view(n, 8, 32)
    q.mul_(d).sub_(dm)


def _deq_q6_k(b: torch.Tensor, out: torch.Tensor) -> None:
    n = b.shape[0]
    d = (_f16(b, 208) * b[:, 192:208].view(torch.int8).float()).reshape(n, 16, 1)
    ql = b[:, :128].reshape(n, 2, 1, 64) >> torch.tensor([0, 4], dtype=torch.uint8).reshape(
        1, 1, 2, 1
    )
    ql = (ql & 0x0F).reshape(n, 8, 32)
    qh = b[:, 128:192].reshape(n, 2, 1, 32) >> torch.tensor(
        [0, 2, 4, 6], dtype=torch.uint8
    ).reshape(1, 1, 4, 1)
    ql |= (qh & 0x03).reshape(n, 8, 32) << 4
    q = out.view(n, 16, 16)
    q.copy_(ql.view(n, 16, 16)).sub_(32).mul_(d)


KERNELS: dict[int, Callable[[torch.Tensor, torch.Tensor], None]] = {
    0: _deq_f32,
    1: _deq_f16,
    30: _deq_bf16,
    2: _deq_q4_0,
    3: _deq_q4_1,
    6: _deq_q5_0,
    7: _deq_q5_1,
    8: _deq_q8_0,
    12: _deq_q4_k,
    13: _deq_q5_k,
    14: _deq_q6_k,
}


def gguf_fallback(type_id: int) -> Callable[[torch.Tensor, torch.Tensor], None] | None:
    """A dequantizer from the `gguf` package for types without a kernel here, if it has one."""
    try:
        from gguf import GGMLQuantizationType
        from gguf.quants import _type_traits
    except ImportError:
        return None
    try:
        qtype = GGMLQuantizationType(type_id)
    except ValueError:
        return None
    if qtype not in _type_traits:
        return None
    quant = _type_traits[qtype]

    def deq(b: torch.Tensor, out: torch.Tensor) -> None:
        out.copy_(torch.from_numpy(quant.dequantize(b.numpy())).reshape(out.shape))

    return deq


def dequantize(raw: torch.Tensor, type_id: int, shape: tuple[int, ...]) -> torch.Tensor:
    """Raw bytes (uint8) of one tensor of ggml type `type_id` -> new float32 tensor of `shape`."""
    kernel = KERNELS.get(type_id) or gguf_fallback(type_id)
    if kernel is None or type_id not in GGML_TYPES:
        raise UnsupportedModelError(f"unsupported quant type {type_name(type_id)}")
    _, block, size = GGML_TYPES[type_id]
    out = torch.empty(shape, dtype=torch.float32)
    kernel(raw.reshape(-1, size), out.view(-1, block))
    return out
