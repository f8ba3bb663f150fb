"""Weight-only quantization chosen by the user (`--quantize int8|int4`).

A decode step on the CPU is bound by how many weight bytes it reads: every weight is read once
per token. Storing the weights in 8 or 4 bits and multiplying them by float activations (the
activations stay float, so nothing is calibrated) cuts those bytes by 4x or ~6x against float32.

- int8: symmetric, one scale per output channel: w ~= q * scale, q in [-127, 127].
- int4: asymmetric, one (scale, min) pair per group of `group_size` inputs of each output row:
  w ~= q * scale + min, q in [0, 15]. The same scheme as llama.cpp's Q4_1.

Where PyTorch has a fused CPU kernel (`aten._weight_int8pack_mm`,
`aten._weight_int4pack_mm_for_cpu`), the module calls it on weights packed once at load. Anywhere
else (another device, an older torch, a shape the kernel refuses) the same quantized values are
dequantized and multiplied with the plain matmul: slower, but correct on every device, and
numerically the same scheme, so the two paths agree to float rounding.

On the CPU both modes normally run on our own kernels instead (engine/native: built once per
machine with the system's C compiler):
- int8: groups of 32 with a float16 (scale, min) pair and float32 activations, which is what
  makes it near-lossless (SmolLM2: 99% top-1 agreement with float32, ~96% per-channel);
- int4: the same int4 values written as ggml Q4_1 blocks, with a Q8_0 lm_head, on the GGUF
  integer-dot kernels (engine/native/to_blocks.py): activations quantized to 8 bits per
  product, as llama.cpp does. ~20% faster decode than float activations (no widening of 4-bit
  values to float), at llama.cpp's Q4_1 accuracy (SmolLM2: ~97% top-1 instead of 99%).
This module's layers are the fallback when those kernels cannot be built, on other devices, or
with `TUI_GEN_NATIVE=0`.

Every `nn.Linear` is replaced, the lm_head included. A head tied to the embedding becomes its
own quantized copy; the embedding table itself stays float (a lookup reads one row per token).
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from tui_gen.errors import TuiGenError

if TYPE_CHECKING:
    from tui_gen.engine.native.gguf_linear import GGUFLinear
    from tui_gen.engine.native.qlinear import NativeQuantLinear
    from tui_gen.models.linear import TransposedLinear

#: modes the user can choose; "none" leaves the model as it is
MODES = ("int8", "int4")
#: a GGUF file's own quantized types, run as they are (the default for GGUF files; a float
#: checkpoint's "own types" are float, so it means "none" there)
KEEP = "keep"
#: group sizes the int4 CPU kernel accepts; the fallback accepts any
INT4_KERNEL_GROUP_SIZES = (32, 64, 128, 256)
DEFAULT_GROUP_SIZE = 32


def check_mode(mode: str | None) -> str | None:
    """Normalise a user's mode ("INT8" -> "int8", "none"/"" -> None, "keep") or raise naming the
    choices."""
    if mode is None:
        return None
    m = str(mode).strip().lower()
    if m in ("", "none", "off", "no"):
        return None
    if m not in (*MODES, KEEP):
        raise TuiGenError(
            f"unknown quantization {mode!r}; use one of: {', '.join(MODES)}, keep or none"
        )
    return m


# --- quantizers (pure functions of a float weight; shared with the benchmarks) ---------------


def quantize_int8(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """weight (N, K) float -> q (N, K) int8, scales (N,) float32, w ~= q * scales[:, None]."""
    w = weight.detach().float()
    scales = w.abs().amax(dim=1).clamp_min(1e-12) / 127.0  # (N,)
    q = torch.round(w / scales[:, None]).clamp_(-127, 127).to(torch.int8)
    return q, scales


def quantize_int4(
    weight: torch.Tensor, group_size: int, search: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """weight (N, K) float, K a multiple of group_size -> q (N, K) uint8 in [0, 15], and
    scale_min (N, K // group_size, 2) float32 with w ~= q * scale + min per group.

    Plain min/max rounding spends the 16 levels on the group's extremes. With `search`, each
    group also tries ranges clipped inward, refits scale and min to its rounded values by
    least squares, and keeps whichever has the smallest squared error (the idea of llama.cpp's
    k-quant search; data-free, but ~10x slower to load, so off by default).
    """
    N, K = weight.shape
    if K % group_size:
        raise ValueError(f"in_features {K} is not a multiple of group_size {group_size}")
    qs, sms = [], []
    for rows in weight.detach().float().split(4096):  # bounded temporaries for a big lm_head
        q, sm = _quantize_int4_rows(rows.reshape(rows.shape[0], -1, group_size), search)
        qs.append(q.reshape(rows.shape[0], K))
        sms.append(sm)
    return torch.cat(qs), torch.cat(sms)


def _quantize_int4_rows(w: torch.Tensor, search: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """w (n, G, group) -> q (n, G, group) uint8, scale_min (n, G, 2)."""
    lo0, hi0 = w.amin(dim=2), w.amax(dim=2)  # (n, G)

    def fit(lo: torch.Tensor, hi: torch.Tensor):
        scale = ((hi - lo) / 15.0).clamp_min(1e-12)
        q = torch.round((w - lo[..., None]) / scale[..., None]).clamp_(0, 15)
        return q, scale, lo

    q, scale, lo = fit(lo0, hi0)
    if search:
        err = ((q * scale[..., None] + lo[..., None] - w) ** 2).sum(-1)  # (n, G)
        for r in (0.95, 0.9, 0.85, 0.8, 0.75):
            mid = (lo0 + hi0) / 2
            cq, _, _ = fit(mid + (lo0 - mid) * r, mid + (hi0 - mid) * r)
            # least-squares scale and min for these levels: w ~= cq * s + m
            n = cq.shape[-1]
            sq, sw = cq.sum(-1), w.sum(-1)
            sqq, sqw = (cq * cq).sum(-1), (cq * w).sum(-1)
            det = n * sqq - sq * sq
            ok = det > 0
            cs = torch.where(ok, (n * sqw - sq * sw) / det.clamp_min(1e-12), scale)
            cm = torch.where(ok, (sw - cs * sq) / n, lo)
            cs = cs.clamp_min(1e-12)
            cq = torch.round((w - cm[..., None]) / cs[..., None]).clamp_(0, 15)
            cerr = ((cq * cs[..., None] + cm[..., None] - w) ** 2).sum(-1)
            better = cerr < err
            q = torch.where(better[..., None], cq, q)
            scale, lo = torch.where(better, cs, scale), torch.where(better, cm, lo)
            err = torch.minimum(err, cerr)
    return q.to(torch.uint8), torch.stack([scale, lo], dim=-1)


def pack_nibbles(q: torch.Tensor) -> torch.Tensor:
    """(N, K) values in [0, 15] -> (N, K // 2) uint8, element 2i in the low nibble."""
    q = q.to(torch.uint8)
    return q[:, 0::2] | (q[:, 1::2] << 4)


def unpack_nibbles(packed: torch.Tensor) -> torch.Tensor:
    """(N, K // 2) uint8 -> (N, K) uint8 in [0, 15]; the inverse of pack_nibbles."""
    return torch.stack([packed & 0xF, packed >> 4], dim=-1).reshape(packed.shape[0], -1)


def int4_kernel_operands(
    q: torch.Tensor, scale_min: torch.Tensor, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """The CPU kernel's operands: packed weight and qScaleAndZeros (K // group, N, 2) in `dtype`.

    The kernel dequantizes as (q - 8) * scale + zero, so zero = min + 8 * scale.
    """
    packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(q.to(torch.int32).contiguous(), 1)
    scale, lo = scale_min[..., 0], scale_min[..., 1]  # (N, G)
    sz = torch.stack([scale, lo + 8.0 * scale], dim=-1).transpose(0, 1)  # (G, N, 2)
    return packed, sz.to(dtype).contiguous()


# --- kernel availability -----------------------------------------------------------------------

_PROBED: dict[tuple[str, str, torch.dtype], bool] = {}


def _probe(kind: str, device: torch.device, dtype: torch.dtype, fn: Callable[[], bool]) -> bool:
    """Whether a fused kernel runs and is right on (device, dtype); asked once per process."""
    key = (kind, str(device), dtype)
    if key not in _PROBED:
        try:
            _PROBED[key] = bool(fn())
        except (RuntimeError, NotImplementedError, AttributeError, TypeError):
            _PROBED[key] = False
    return _PROBED[key]


def int8_kernel_available(device: torch.device, dtype: torch.dtype) -> bool:
    def check() -> bool:
        g = torch.Generator().manual_seed(0)
        w = torch.randn(32, 64, generator=g)
        x = torch.randn(2, 64, generator=g)
        q, s = quantize_int8(w)
        ref = x @ (q.float() * s[:, None]).t()
        op = torch.ops.aten._weight_int8pack_mm
        y = op(x.to(device, dtype), q.to(device), s.to(device, dtype)).float().cpu()
        return torch.allclose(y, ref, rtol=0.05, atol=0.05 * ref.abs().max().item())

    return _probe("int8", device, dtype, check)


def int4_kernel_available(device: torch.device, dtype: torch.dtype) -> bool:
    if device.type != "cpu":  # the CUDA/MPS/XPU int4 ops take other packings
        return False

    def check() -> bool:
        g = torch.Generator().manual_seed(0)
        w = torch.randn(32, 64, generator=g)
        x = torch.randn(2, 64, generator=g)
        q, sm = quantize_int4(w, 32)
        ref = x @ _dequant_int4(q, sm, 32, torch.float32).t()
        packed, sz = int4_kernel_operands(q, sm, dtype)
        y = torch.ops.aten._weight_int4pack_mm_for_cpu(x.to(dtype), packed, 32, sz).float()
        return torch.allclose(y, ref, rtol=0.05, atol=0.05 * ref.abs().max().item())

    return _probe("int4", device, dtype, check)


def _dequant_int4(
    q: torch.Tensor, scale_min: torch.Tensor, group_size: int, dtype: torch.dtype
) -> torch.Tensor:
    """q (N, K) in [0, 15], scale_min (N, K // group, 2) -> weight (N, K) in `dtype`."""
    N, K = q.shape
    qf = q.to(dtype).reshape(N, K // group_size, group_size)
    sm = scale_min.to(dtype)
    return (qf * sm[..., 0:1] + sm[..., 1:2]).reshape(N, K)


# --- modules -----------------------------------------------------------------------------------


def kernel_dtype(device: torch.device, dtype: torch.dtype) -> torch.dtype:
    """The activation dtype to feed the fused kernels for a model computing in `dtype`.

    On x86 CPUs torch's int8/int4 kernels are vectorized (AVX-512/AVX2) for bfloat16
    activations only; float32 takes a scalar loop that is slower than the float32 matmul it
    replaces. So a float32 model hands the kernels bfloat16 activations (they accumulate in
    float32) and gets float32 back. On ARM every dtype is vectorized and stays as it is.
    """
    if device.type == "cpu" and platform.machine().lower() in ("x86_64", "amd64", "i686"):
        return torch.bfloat16
    return dtype


def _aligned(x: torch.Tensor) -> torch.Tensor:
    """A contiguous (M, K) copy whose rows the kernels may read with aligned vector loads.

    The bfloat16 int8 kernel uses aligned 32-byte loads; a view at an odd offset (such as the
    last row of a prefill) would crash it.
    """
    x = x.contiguous()
    return x if x.data_ptr() % 64 == 0 else x.clone()


class Int8Linear(nn.Module):
    """nn.Linear with int8 weights and per-output-channel scales: x (..., K) -> (..., N)."""

    bits = 8
    qweight: torch.Tensor  # (N, K) int8
    scales: torch.Tensor  # (N,)
    bias: torch.Tensor | None

    def __init__(
        self,
        linear: nn.Linear | TransposedLinear,
        use_kernel: bool | None = None,
        act_dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        w = linear.weight.detach().contiguous()  # a TransposedLinear hands out a (out, in) view
        self.in_features, self.out_features = linear.in_features, linear.out_features
        dtype = w.dtype if w.is_floating_point() else torch.float32
        q, scales = quantize_int8(w)
        # torch 2.13's bfloat16 kernel crashes (SIGSEGV) unless K % 16 == 0: never offer it one
        kernel_ok = self.in_features % 16 == 0
        self.act_dtype = act_dtype or kernel_dtype(w.device, dtype)
        if use_kernel is None:
            use_kernel = kernel_ok and int8_kernel_available(w.device, self.act_dtype)
        elif use_kernel and not kernel_ok:
            raise ValueError(f"the int8 kernel needs in_features % 16 == 0; got {self.in_features}")
        self.use_kernel = use_kernel
        scale_dtype = self.act_dtype if use_kernel else dtype
        self.register_buffer("qweight", q.to(w.device))  # (N, K) int8
        self.register_buffer("scales", scales.to(w.device, scale_dtype))  # (N,)
        bias = linear.bias.detach().clone() if linear.bias is not None else None
        self.register_buffer("bias", bias)

    @property
    def backend(self) -> str:
        if not self.use_kernel:
            return "dequantize+matmul"
        return f"aten._weight_int8pack_mm, {str(self.act_dtype).replace('torch.', '')} act"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        x2 = x.reshape(-1, self.in_features)  # (M, K)
        if self.use_kernel:
            xk = _aligned(x2.to(self.act_dtype))
            y = torch.ops.aten._weight_int8pack_mm(xk, self.qweight, self.scales).to(x.dtype)
        else:
            # the per-row scale factors out of the dot product: (x @ q^T) * s
            y = F.linear(x2, self.qweight.to(x.dtype)) * self.scales.to(x.dtype)
        if self.bias is not None:
            y = y + self.bias
        return y.view(*lead, self.out_features)  # (..., N)

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, {self.backend}"


class Int4Linear(nn.Module):
    """nn.Linear with 4-bit weights in groups of `group_size` inputs: x (..., K) -> (..., N).

    K is padded with zero weights to a multiple of the group size when needed (the activations
    are padded to match), so every layer can be quantized.
    """

    qweight: torch.Tensor  # uint8, the kernel's layout or (N, Kp // 2)
    scale_min: torch.Tensor
    bias: torch.Tensor | None

    def __init__(
        self,
        linear: nn.Linear | TransposedLinear,
        group_size: int = DEFAULT_GROUP_SIZE,
        use_kernel: bool | None = None,
        act_dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        w = linear.weight.detach().contiguous()  # a TransposedLinear hands out a (out, in) view
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.group_size = group_size
        self.padded_in = -(-self.in_features // group_size) * group_size
        dtype = w.dtype if w.is_floating_point() else torch.float32
        wf = w.detach().float()
        if self.padded_in != self.in_features:
            wf = F.pad(wf, (0, self.padded_in - self.in_features))
        q, scale_min = quantize_int4(wf, group_size)  # (N, Kp) uint8, (N, G, 2)
        kernel_ok = group_size in INT4_KERNEL_GROUP_SIZES and self.out_features % 16 == 0
        self.act_dtype = act_dtype or kernel_dtype(w.device, dtype)
        if use_kernel is None:
            use_kernel = kernel_ok and int4_kernel_available(w.device, self.act_dtype)
        elif use_kernel and not kernel_ok:
            raise ValueError(
                f"the int4 kernel needs out_features % 16 == 0 and group_size in "
                f"{INT4_KERNEL_GROUP_SIZES}; got {self.out_features} and {group_size}"
            )
        self.use_kernel = use_kernel
        if use_kernel:
            packed, sz = int4_kernel_operands(q, scale_min, self.act_dtype)
            self.register_buffer("qweight", packed.to(w.device))  # kernel layout, uint8
            self.register_buffer("scale_min", sz.to(w.device))  # (G, N, 2): scale, zero
        else:
            self.register_buffer("qweight", pack_nibbles(q).to(w.device))  # (N, Kp // 2) uint8
            self.register_buffer("scale_min", scale_min.to(w.device, dtype))  # (N, G, 2)
        bias = linear.bias.detach().clone() if linear.bias is not None else None
        self.register_buffer("bias", bias)

    @property
    def backend(self) -> str:
        if not self.use_kernel:
            return "dequantize+matmul"
        return f"aten._weight_int4pack_mm_for_cpu, {str(self.act_dtype).replace('torch.', '')} act"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        x2 = x.reshape(-1, self.in_features)  # (M, K)
        if self.padded_in != self.in_features:
            x2 = F.pad(x2, (0, self.padded_in - self.in_features))  # (M, Kp)
        if self.use_kernel:
            xk = _aligned(x2.to(self.act_dtype))
            y = torch.ops.aten._weight_int4pack_mm_for_cpu(
                xk, self.qweight, self.group_size, self.scale_min
            ).to(x.dtype)
        else:
            q = unpack_nibbles(self.qweight)
            y = F.linear(x2, _dequant_int4(q, self.scale_min, self.group_size, x.dtype))
        if self.bias is not None:
            y = y + self.bias
        return y.view(*lead, self.out_features)  # (..., N)

    def extra_repr(self) -> str:
        return (
            f"in={self.in_features}, out={self.out_features}, group={self.group_size}, "
            f"{self.backend}"
        )


if TYPE_CHECKING:
    QuantLinear = Int8Linear | Int4Linear | NativeQuantLinear | GGUFLinear


def quantize_model(
    model: nn.Module,
    mode: str,
    group_size: int = DEFAULT_GROUP_SIZE,
    *,
    use_kernel: bool | None = None,
    act_dtype: torch.dtype | None = None,
    head: str | None = "int8",
    native: bool | None = None,
) -> nn.Module:
    """Replace every nn.Linear of `model` (in place) by its weight-only quantized version.

    mode: "int8" (per-channel) or "int4" (groups of `group_size`); "none" returns the model
    unchanged. `use_kernel` forces (True) or forbids (False) the fused CPU kernels; by default
    each layer uses them when they run on its device and dtype. `act_dtype` is the activation
    dtype handed to the kernels (default: kernel_dtype()). In int4 mode the lm_head gets `head`
    ("int8" by default: the head is the layer whose error shows most in the next-token
    distribution, as llama.cpp keeps output.weight at 6-8 bits; "int4" for all-4-bit; None
    leaves it float). Returns the model.

    On the CPU, when the native kernels build (`native=None`, the default) or `native=True`,
    layers use them instead (tui_gen.engine.native.qlinear: groups of 32, float32
    activations); int8 is then grouped rather than per-channel, which is what makes it
    near-lossless. `native=False`, `use_kernel=False` or a group size other than 32 keep
    torch's kernels and the fallback.
    """
    m = check_mode(mode)
    if m is None or m == KEEP:
        return model
    if m == "int4" and group_size < 2:
        raise TuiGenError(f"int4 group size {group_size} is too small; use 32, 64, 128 or 256")
    from tui_gen.engine.native import qlinear
    from tui_gen.engine.native.gguf_linear import GGUFLinear
    from tui_gen.models.linear import TransposedLinear

    linear_types = (nn.Linear, TransposedLinear)  # a Generator's model may be pre-transposed
    if native is None:
        native = use_kernel is not False and group_size == qlinear.GROUP
    targets = [(name, mod) for name, mod in model.named_modules() if isinstance(mod, linear_types)]
    made_blocks = False
    for name, linear in targets:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        kind = m
        if name == "lm_head" and m == "int4":
            if head is None:
                continue
            kind = check_mode(head) or m
        new: nn.Module | None = None
        if native and qlinear.available(linear.weight.device):
            try:
                new = _native_layer(linear, kind, blocks=m == "int4")
            except ValueError:  # weights beyond float16's range: torch's kernels take them
                new = None
        if new is None and kind == "int8":
            new = Int8Linear(linear, use_kernel, act_dtype)
        elif new is None:
            new = Int4Linear(linear, group_size, use_kernel, act_dtype)
        made_blocks = made_blocks or isinstance(new, GGUFLinear)
        setattr(parent, child, new)  # a tied head's Parameter stays with the embedding
    grouped = m == "int4" or any(isinstance(x, qlinear.NativeQuantLinear) for x in model.modules())
    info: dict[str, str | int | None] = {"mode": m, "group_size": group_size if grouped else None}
    if made_blocks:
        info["blocks"] = "Q4_1"  # the int4 layers are ggml Q4_1 blocks on the integer-dot kernels
    if m == "int4" and head != "int4":
        info["head"] = head or "float"
    object.__setattr__(model, "quantization", info)  # a plain attribute, read by describe()
    return model


def _native_layer(linear: nn.Linear | TransposedLinear, kind: str, blocks: bool) -> nn.Module:
    """A layer on the native kernels. `blocks` (int4 mode): GGUF blocks on the integer-dot
    kernels, Q4_1 (the int4 scheme itself) or Q8_0 for an 8-bit head; otherwise, and for a
    width that is not whole groups of 32, NativeQuantLinear's float-activation kernel."""
    from tui_gen.engine.native import qlinear, to_blocks
    from tui_gen.engine.native.gguf_linear import GGUFLinear, keep_unavailable

    if blocks and linear.in_features % qlinear.GROUP == 0 and not keep_unavailable("cpu"):
        type_id = to_blocks.Q8_0 if kind == "int8" else to_blocks.Q4_1
        w = linear.weight.detach()  # (out, in); a TransposedLinear hands out a view
        bias = linear.bias.detach() if linear.bias is not None else None
        return GGUFLinear([(to_blocks.blocks(w, type_id), type_id)], linear.in_features, bias)
    return qlinear.NativeQuantLinear(linear, 8 if kind == "int8" else 4)


def quantized_layers(model: nn.Module) -> list[QuantLinear]:
    """The layers `quantize_model` made (GGUF blocks only when it made them, not a GGUF
    file's own, which gguf_linear.describe reports)."""
    from tui_gen.engine.native.gguf_linear import GGUFLinear
    from tui_gen.engine.native.qlinear import NativeQuantLinear

    blocks = bool((getattr(model, "quantization", None) or {}).get("blocks"))
    return [
        mod
        for mod in model.modules()
        if isinstance(mod, (Int8Linear, Int4Linear, NativeQuantLinear))
        or (blocks and isinstance(mod, GGUFLinear))
    ]


def describe(model: nn.Module) -> str:
    """One line for `info`, `bench` and the status bar, e.g.
    "int4 g32, 211 layers (aten._weight_int4pack_mm_for_cpu), 64.3 MiB of weights"."""
    layers = quantized_layers(model)
    if not layers:
        return "none"
    info = getattr(model, "quantization", {}) or {}
    mode = info.get("mode") or f"int{getattr(layers[0], 'bits', '?')}"
    label = f"{mode} g{info['group_size']}" if info.get("group_size") else mode
    if info.get("blocks"):
        heads = {"int8": "Q8_0", "int4": "Q4_1", "float": "float"}
        label += f" ({info['blocks']} blocks, {heads.get(str(info.get('head')), 'Q4_1')} lm_head)"
    elif info.get("head"):
        label += f" ({info['head']} lm_head)"
    backends = sorted({layer.backend for layer in layers})
    nbytes = sum(b.numel() * b.element_size() for layer in layers for b in layer.buffers())
    return f"{label}, {len(layers)} layers ({', '.join(backends)}), {nbytes / 2**20:.1f} MiB"
