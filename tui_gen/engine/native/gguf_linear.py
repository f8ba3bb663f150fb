"""Linear layers and embeddings that hold a GGUF file's quantized blocks as they are.

A Q4_K_M file dequantized to float32 takes ~7x its size (Gemma 3 270M: 253 MB -> ~1.1 GB, most
of it the 262144-row embedding). These modules keep the blocks (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0,
Q4_K, Q5_K, Q6_K) as uint8 views of the memory-mapped file: nothing is copied, the operating
system pages the weights in as they are used, and the model runs with the exact weights its
authors published (no second rounding into our own format).

Products run on ggml_matmul.c: the activations are quantized once per product to 8-bit blocks
of 32 and multiplied with integer dot products (see ggml_rows.h). The decode step reads the
same `gg_mat_t` through decode.c's MAT_GGUF kind. A prompt longer than `rows_limit` rows
dequantizes a block of weight rows at a time (C) and uses torch's GEMM, which is faster
there: in bfloat16 on a CPU with bfloat16 dot products (`gemm_dtype`), else float32.

Without the native library (no compiler, another device) the layers dequantize with the torch
kernels of loading/gguf_quants.py on every call: correct, slow; the loader therefore only
keeps a file's types when the library is there (`keep_unavailable`).
"""

from __future__ import annotations

import ctypes
import os
from collections import Counter
from collections.abc import Callable
from ctypes import c_int32, c_int64, c_void_p
from functools import cache

import torch
import torch.nn.functional as F
from torch import nn

from tui_gen.engine.loading.gguf_file import GGML_TYPES, type_name
from tui_gen.engine.loading.gguf_quants import dequantize as torch_dequantize
from tui_gen.engine.native import build
from tui_gen.errors import TuiGenError
from tui_gen.models.linear import release_pages

#: the block types the kernels read (ggml type ids); F32/F16/BF16 are loaded as float tensors
KERNEL_TYPES = {2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 12: "Q4_K", 13: "Q5_K",
                14: "Q6_K"}  # fmt: skip
MAX_PARTS = 4  # GG_MAX_PARTS in ggml_matmul.c
#: up to this many activation rows the integer kernel beats dequantize + float32 GEMM; above,
#: the GEMM's register tiling wins (CPU time, one thread, `python -m dev.gguf_bench`: at 64 rows
#: the GEMM takes 1.30x the kernel's time on Q4_1 and 0.82x on Q4_K; at 512, 0.69x and 0.51x)
_KERNEL_ROWS_LIMIT = 128
_KERNEL_ROWS_LIMIT_K = 48  # the 256-blocks (Q4_K, Q5_K, Q6_K): more scale work per weight
#: the same against the bfloat16 GEMM (`gemm_dtype`), which overtakes the kernel sooner (two
#: threads, dev.gguf_bench: at 64 rows it takes 1.21x the kernel's time on Q4_1, 1.08x on Q5_0,
#: 1.08x on Q4_K, 0.77x on Q6_K; at 128 rows 0.79x, 0.64x, 0.56x, 0.45x)
_KERNEL_ROWS_LIMIT_BF16 = 80
_KERNEL_ROWS_LIMIT_K_BF16 = 40


def rows_limit(k_types: bool, dtype: torch.dtype) -> int:
    """Activation rows up to which a product takes the integer kernel, not the GEMM."""
    if dtype == torch.bfloat16:
        return _KERNEL_ROWS_LIMIT_K_BF16 if k_types else _KERNEL_ROWS_LIMIT_BF16
    return _KERNEL_ROWS_LIMIT_K if k_types else _KERNEL_ROWS_LIMIT


_DEQUANT_BLOCK_BYTES = 16 << 20  # bytes of weight rows dequantized at a time for a prompt
#: TUI_GEN_GGUF_GEMM=float32|bfloat16 overrides `gemm_dtype`'s choice (tests, comparisons)
GEMM_ENV = "TUI_GEN_GGUF_GEMM"


def gemm_dtype(device: torch.device | str) -> torch.dtype:
    """The dtype a long prompt's dequantized GEMM multiplies in: bfloat16 on a CPU that has
    bfloat16 dot products (AVX512-BF16 or AMX), float32 elsewhere.

    Why: on such a CPU torch's bfloat16 GEMM (oneDNN, float32 accumulation) runs ~3x its
    float32 one (512 x 640 x 4096 on two Zen 4 cores: 414 against 136 GFLOP/s), and a
    prompt's products are most of its prefill. The inputs and the product are rounded to
    bfloat16 (8 significant bits, ~0.2-0.4% of each value), the same order as the 8-bit
    activation blocks the decode step and llama.cpp's prefill use; the residual stream and
    norms stay float32, and the attention of such a prompt multiplies in bfloat16 too
    (prompt_kernels.py). Without those instructions bfloat16 is emulated and slower."""
    if torch.device(device).type != "cpu":  # the kernels and this choice are the CPU's
        return torch.float32
    forced = os.environ.get(GEMM_ENV, "").strip().lower()
    if forced:
        if forced not in ("float32", "bfloat16"):
            raise TuiGenError(f"{GEMM_ENV}={forced!r}: use float32 or bfloat16, or unset it")
        return getattr(torch, forced)
    return torch.bfloat16 if _cpu_multiplies_bfloat16() else torch.float32


@cache
def _cpu_multiplies_bfloat16() -> bool:
    """AVX512-BF16 or AMX, as torch reports them (private helpers: False when absent)."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    try:
        return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)
    except Exception:  # a private helper that changed or broke: the float32 GEMM is always right
        return False


#: how a part's blocks are laid out (ggml_x4.h): as the file stores them, or repacked four
#: rows to a block for the AVX-512 kernels (the same bytes, reordered)
LAYOUT_FILE, LAYOUT_X4 = 0, 1
X4_TYPES = frozenset({2, 3, 6, 7, 8})  # Q4_0, Q4_1, Q5_0, Q5_1, Q8_0: the 32-element types


class _Part(ctypes.Structure):
    _fields_ = [("w", c_void_p), ("rows", c_int64), ("type", c_int32), ("layout", c_int32)]


class _Mat(ctypes.Structure):
    _fields_ = [("k", c_int64), ("n_parts", c_int32), ("planes", c_int32),
                ("parts", _Part * MAX_PARTS)]  # fmt: skip


def _ctypes_layout() -> dict[str, int]:
    out: dict[str, int] = {}
    for cname, struct in (("gg_part_t", _Part), ("gg_mat_t", _Mat)):
        out[cname] = ctypes.sizeof(struct)
        for field in struct._fields_:
            out[f"{cname}.{field[0]}"] = getattr(struct, field[0]).offset
    return out


def _c_layout(lib: ctypes.CDLL) -> dict[str, int]:
    out: dict[str, int] = {}
    for i in range(lib.gg_layout_count()):
        name = lib.gg_layout_name(i)
        out[name.decode() if isinstance(name, bytes) else str(name)] = lib.gg_layout_value(i)
    return out


_checked: dict[int, str] = {}


def keep_unavailable(device: torch.device | str = "cpu") -> str:
    """Why GGUF blocks cannot be run as they are on `device` ("" when they can): the one rule
    the loader and `info` share. Builds the kernels on first call."""
    device = torch.device(device)
    if device.type != "cpu":
        return f"{device.type}: the GGUF block kernels run on the CPU"
    lib = build.load()
    if lib is None:
        return build.reason()
    key = id(lib)
    if key not in _checked:
        c, py = _c_layout(lib), _ctypes_layout()
        bad = sorted(k for k in c.keys() | py.keys() if c.get(k) != py.get(k))
        _checked[key] = (
            f"ggml_matmul.c and gguf_linear.py disagree on {', '.join(bad[:3])}" if bad else ""
        )
    return _checked[key]


def isa() -> str:
    """The integer dot product of the loaded library: "vnni", "avx2" or "portable"."""
    lib = build.load()
    if lib is None:
        return ""
    return {3: "vnni", 2: "avx2"}.get(lib.gg_isa(), "portable")


def row_bytes(type_id: int, k: int) -> int:
    _, block, size = GGML_TYPES[type_id]
    return k // block * size


def check_blocks(raw: torch.Tensor, type_id: int, rows: int, k: int) -> None:
    if type_id not in KERNEL_TYPES:
        raise ValueError(f"no GGUF block kernel for {type_name(type_id)}")
    if k % GGML_TYPES[type_id][1]:
        raise ValueError(f"a row of {k} is not whole {type_name(type_id)} blocks")
    want = (rows, row_bytes(type_id, k))
    if raw.dtype != torch.uint8 or tuple(raw.shape) != want or not raw.is_contiguous():
        raise ValueError(f"blocks must be contiguous uint8 {want}, got {tuple(raw.shape)}")


_X4_CHUNK_ROWS = 4096  # rows repacked before their source pages are given back


def x4_pack(raw: torch.Tensor, type_id: int, k: int) -> torch.Tensor | None:
    """Q4_0, Q4_1, Q5_0, Q5_1 or Q8_0 blocks (rows, row_bytes) repacked into the x4 layout (a
    new tensor of the same shape and bytes), or None where it does not apply: another type,
    rows not in fours, or a library without the AVX-512 kernels (other CPUs keep the file's
    layout and kernels).

    A memory-mapped source's pages are given back chunk by chunk as they are copied
    (release_pages), so loading never holds both copies of a large matrix (Gemma 3's 178 MB
    embedding): peak RSS stays near the file's size."""
    lib = build.load()
    rows = raw.shape[0]
    if type_id not in X4_TYPES or rows % 4 or raw.device.type != "cpu" or lib is None:
        return None
    if not lib.gg_x4_available() or not raw.is_contiguous():
        return None
    out = torch.empty_like(raw)
    for lo in range(0, rows, _X4_CHUNK_ROWS):
        src, dst = raw[lo : lo + _X4_CHUNK_ROWS], out[lo : lo + _X4_CHUNK_ROWS]
        if lib.gg_x4_pack(type_id, src.data_ptr(), src.shape[0], k, dst.data_ptr()):
            return None
        release_pages(src)
    return out


def x4_unpack(raw: torch.Tensor, type_id: int, k: int) -> torch.Tensor:
    """x4 blocks back into the file's layout (torch; the kernels never need it)."""
    rows, nb, size = raw.shape[0], k // 32, GGML_TYPES[type_id][2]  # bytes per 32
    g = raw.reshape(rows // 4, nb, 4 * size)

    def four(at: int, width: int) -> torch.Tensor:  # the four rows' field: (groups, nb, 4, w)
        return g[:, :, at : at + 4 * width].reshape(rows // 4, nb, 4, width)

    name = KERNEL_TYPES[type_id]
    one, five = name in ("Q4_1", "Q5_1"), name in ("Q5_0", "Q5_1")
    nvalues = 32 if name == "Q8_0" else 16
    fields = [four(0, 2)]  # d
    if one:
        fields.append(four(8, 2))  # m
    if five:  # the fifth bits of elements 0-15, then 16-31: the file's uint32, little-endian
        at = 16 if one else 8
        fields += [four(at, 2), four(at + 8, 2)]
    fields.append(four(4 * size - 4 * nvalues, nvalues))  # the values come last
    blocks = torch.cat(fields, dim=3)  # (groups, nb, 4 rows, size)
    return blocks.permute(0, 2, 1, 3).reshape(rows, nb * size).contiguous()


def dequantize_rows(
    raw: torch.Tensor,
    type_id: int,
    k: int,
    dtype: torch.dtype = torch.float32,
    layout: int = LAYOUT_FILE,
) -> torch.Tensor:
    """(rows, k) weights from blocks (rows, row_bytes) in float32, or rounded to bfloat16 (as
    .to(torch.bfloat16) would, in the same pass): the C loop, else gguf_quants' torch. An x4
    part is dequantized in whole groups of four rows."""
    rows = raw.shape[0]
    lib = build.load()
    if lib is None or raw.device.type != "cpu" or dtype not in (torch.float32, torch.bfloat16):
        if layout == LAYOUT_X4:
            raw = x4_unpack(raw, type_id, k)
        return torch_dequantize(raw.reshape(-1), type_id, (rows, k)).to(dtype)
    out = torch.empty(rows, k, dtype=dtype)
    raw = raw.contiguous()
    fn = lib.gg_dequantize if dtype == torch.float32 else lib.gg_dequantize_bf16
    if fn(raw.data_ptr(), type_id, layout, rows, k, out.data_ptr(), torch.get_num_threads()):
        raise RuntimeError("native GGUF dequantize rejected its arguments")
    return out


class GGUFLinear(nn.Module):
    """y = x @ W^T + b with W one or more GGUF block matrices stacked by rows: x (..., K) ->
    (..., N). Parts are (blocks (rows, row_bytes) uint8, ggml type id); a fused q/k/v keeps
    each projection's own type and memory.

    `repack` (the default) moves the 32-element types' parts into the x4 layout where the
    library has its kernels (x4_pack), giving a memory-mapped source's pages back
    (release_pages), so memory stays the file's size; a head tied to an embedding passes False
    to keep sharing its blocks.
    `layouts` says the parts already are in those layouts (concatenate's shared blocks)."""

    bias: torch.Tensor | None

    def __init__(
        self,
        parts: list[tuple[torch.Tensor, int]],
        in_features: int,
        bias: torch.Tensor | None = None,
        *,
        repack: bool = True,
        layouts: list[int] | None = None,
    ) -> None:
        super().__init__()
        if not 1 <= len(parts) <= MAX_PARTS:
            raise ValueError(f"1 to {MAX_PARTS} parts, got {len(parts)}")
        if layouts is not None and len(layouts) != len(parts):
            raise ValueError(f"{len(parts)} parts but {len(layouts)} layouts")
        self.in_features = in_features
        self.types = [t for _, t in parts]
        self.rows = [raw.shape[0] for raw, _ in parts]
        self.out_features = sum(self.rows)
        self.layouts = list(layouts) if layouts is not None else [LAYOUT_FILE] * len(parts)
        for i, (raw, type_id) in enumerate(parts):
            check_blocks(raw, type_id, raw.shape[0], in_features)
            if layouts is None and repack:
                packed = x4_pack(raw, type_id, in_features)
                if packed is not None:
                    raw, self.layouts[i] = packed, LAYOUT_X4
            self.register_buffer(f"blocks{i}", raw, persistent=False)
        b = None if bias is None else bias.detach().float().contiguous()
        self.register_buffer("bias", b)
        self.planes = 1  # activation planes per product (set_activations)
        self._mat = _Mat()
        self._describe()
        self._k_types = any(GGML_TYPES[t][1] == 256 for t in self.types)

    def block_parts(self) -> list[torch.Tensor]:
        return [getattr(self, f"blocks{i}") for i in range(len(self.types))]

    def unreadable(self) -> str:
        """Why the loaded library cannot multiply these parts ("" when it can): x4 parts need
        a build with the x4 kernels (one built after them with other flags has none)."""
        if LAYOUT_X4 not in self.layouts:
            return ""
        lib = build.load()
        if lib is None or not lib.gg_x4_available():
            return "its blocks are in the x4 layout, which this build of the kernels cannot read"
        return ""

    def _describe(self) -> None:
        """The gg_mat_t the kernels read; rebuilt whenever the buffers move."""
        self._mat.k, self._mat.n_parts = self.in_features, len(self.types)
        self._mat.planes = self.planes
        for i, (raw, type_id) in enumerate(zip(self.block_parts(), self.types, strict=True)):
            self._mat.parts[i] = _Part(raw.data_ptr(), raw.shape[0], type_id, self.layouts[i])

    def _apply(
        self, fn: Callable[[torch.Tensor], torch.Tensor], recurse: bool = True
    ) -> GGUFLinear:
        out = super()._apply(fn, recurse)
        self._describe()
        return out

    @property
    def mat_address(self) -> int:
        """The address of this layer's gg_mat_t (decode.c's MAT_GGUF reads it)."""
        return ctypes.addressof(self._mat)

    @classmethod
    def concatenate(cls, parts: list[nn.Module]) -> GGUFLinear:
        """One layer computing every part's output side by side (models/linear.fuse_linears):
        the blocks are shared, never copied."""
        layers = [p for p in parts if isinstance(p, GGUFLinear)]
        if len(layers) != len(parts) or len({p.in_features for p in layers}) != 1:
            raise ValueError("only GGUFLinear layers of one input width fuse")
        blocks = [(raw, t) for p in layers for raw, t in zip(p.block_parts(), p.types, strict=True)]
        layouts = [lay for p in layers for lay in p.layouts]
        biases = [p.bias for p in layers]
        bias = None
        if any(b is not None for b in biases):
            bias = torch.cat([b if b is not None else torch.zeros(p.out_features)
                              for b, p in zip(biases, layers, strict=True)])  # fmt: skip
        return cls(blocks, layers[0].in_features, bias, layouts=layouts)

    @property
    def backend(self) -> str:
        kinds = "+".join(dict.fromkeys(type_name(t) for t in self.types))
        dots = isa()
        if not dots:
            return f"{kinds} via torch dequantize"
        x4 = " x4 rows" if LAYOUT_X4 in self.layouts else ""
        return f"native {kinds} int8-dot {dots}{x4}" + (" x2 planes" if self.planes == 2 else "")

    def dequantized(self) -> torch.Tensor:
        """The float32 (N, K) weight the blocks stand for."""
        parts = zip(self.block_parts(), self.types, self.layouts, strict=True)
        return torch.cat([dequantize_rows(raw, t, self.in_features, layout=lay)
                          for raw, t, lay in parts])  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        K, N = self.in_features, self.out_features
        lead = x.shape[:-1]
        x2 = x.reshape(-1, K).to(torch.float32).contiguous()  # (M, K)
        rows = x2.shape[0]
        lib = build.load() if x2.device.type == "cpu" else None
        # without the library every product dequantizes: float32, the reference arithmetic
        dt = gemm_dtype(x2.device) if lib is not None else torch.float32
        if lib is not None and rows <= rows_limit(self._k_types, dt):
            y = torch.empty(rows, N)
            rc = lib.gg_matmul(
                ctypes.addressof(self._mat), x2.data_ptr(), rows, y.data_ptr(), N,
                torch.get_num_threads(),
            )  # fmt: skip
            if rc:
                why = self.unreadable() or "it rejected its arguments"
                raise RuntimeError(f"native GGUF matmul: {why}")
        else:  # a long prompt, or no kernels: a GEMM on dequantized blocks of rows
            y = torch.empty(rows, N, device=x2.device)
            xg = x2.to(dt)
            off = 0
            for raw, t, lay in zip(self.block_parts(), self.types, self.layouts, strict=True):
                step = max(4, _DEQUANT_BLOCK_BYTES // (xg.element_size() * K) // 4 * 4)
                for i in range(0, raw.shape[0], step):  # whole groups of four for x4 parts
                    w = dequantize_rows(raw[i : i + step], t, K, dt, lay).to(x2.device)
                    y[:, off + i : off + i + w.shape[0]] = F.linear(xg, w)
                off += raw.shape[0]
        if self.bias is not None:
            y = y + self.bias
        return y.to(x.dtype).view(*lead, N)

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, {self.backend}"


#: --activations: how a product's activations are quantized for the integer dots. "fast": one
#: 8-bit plane per block of 32, as llama.cpp does (~96-97% top-1 agreement with the float32
#: model); "precise": two (x ~= dx q + dx2 q2, what the first rounding left quantized again,
#: ggml_matmul.c), which gives float32's next tokens for 10-30% more decode time
ACTIVATIONS = {"fast": 1, "precise": 2}


def check_activations(value: str) -> str:
    v = str(value).strip().lower()
    if v not in ACTIVATIONS:
        raise TuiGenError(f"unknown activations {value!r}; use fast or precise")
    return v


def set_activations(model: nn.Module, activations: str) -> int:
    """Quantize every GGUF-block layer's activations as `activations` says; returns how many
    layers that concerns (0: the model has none, so its activations are float already)."""
    planes = ACTIVATIONS[check_activations(activations)]
    layers = [m for m in model.modules() if isinstance(m, GGUFLinear)]
    for m in layers:
        m.planes = planes
        m._describe()  # the decode step reads the same gg_mat_t, updated in place
    return len(layers)


class GGUFEmbedding(nn.Module):
    """Token lookup from GGUF blocks (vocab, row_bytes): only the looked-up rows are
    dequantized. A tied lm_head is a GGUFLinear over the same blocks, in the file's layout:
    the x4 layout measured no faster for a head (its rows are short, so four of them are one
    stream already: Gemma 3's 178 MB Q8_0 head 5.3-5.8 ms either way), and repacking would
    read the whole embedding at load."""

    blocks: torch.Tensor  # (vocab, row bytes) uint8

    def __init__(self, raw: torch.Tensor, type_id: int, dim: int) -> None:
        super().__init__()
        check_blocks(raw, type_id, raw.shape[0], dim)
        self.type_id, self.dim = type_id, dim
        self.num_embeddings = raw.shape[0]
        self.register_buffer("blocks", raw, persistent=False)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        rows = self.blocks.index_select(0, idx.reshape(-1).to(self.blocks.device))
        return dequantize_rows(rows, self.type_id, self.dim).view(*idx.shape, self.dim)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.dim}, {type_name(self.type_id)}"


def gguf_layers(model: nn.Module) -> list[GGUFLinear | GGUFEmbedding]:
    return [m for m in model.modules() if isinstance(m, (GGUFLinear, GGUFEmbedding))]


def held_bytes(model: nn.Module) -> dict[str, int]:
    """Bytes of GGUF blocks held per type name (a tied head's blocks counted once)."""
    seen: set[int] = set()
    out: Counter[str] = Counter()
    for mod in gguf_layers(model):
        pairs = (
            zip(mod.block_parts(), mod.types, strict=True)
            if isinstance(mod, GGUFLinear)
            else [(mod.blocks, mod.type_id)]
        )
        for raw, t in pairs:
            if raw.data_ptr() not in seen:  # x4 parts hold the same bytes as the file's
                seen.add(raw.data_ptr())
                out[type_name(t)] += raw.numel()
    return dict(out.most_common())


def describe(model: nn.Module) -> str:
    """One line for `info`, `bench` and the status bar: "gguf blocks kept (Q4_1 77.0 MiB, Q8_0
    27.0 MiB), 211 layers, int8-dot vnni"."""
    layers = gguf_layers(model)
    if not layers:
        return "none"
    held = ", ".join(f"{k} {v / 2**20:.1f} MiB" for k, v in held_bytes(model).items())
    return f"gguf blocks kept ({held}), {len(layers)} layers, int8-dot {isa() or 'torch'}"


def elements(model: nn.Module) -> int:
    """Weights the GGUF layers stand for (a tied head counted once)."""
    seen: set[int] = set()
    total = 0
    for mod in gguf_layers(model):
        raws = mod.block_parts() if isinstance(mod, GGUFLinear) else [mod.blocks]
        k = mod.in_features if isinstance(mod, GGUFLinear) else mod.dim
        for raw in raws:
            if raw.data_ptr() not in seen:
                seen.add(raw.data_ptr())
                total += raw.shape[0] * k
    return total
