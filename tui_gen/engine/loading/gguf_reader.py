"""Open GGUF files (llama.cpp, LM Studio, Ollama blobs) natively: metadata, config, weights.

The header is parsed here with `struct` (the `gguf` package's reader takes ~3 s on a 135M model
because it wraps every field in numpy views). Weights are read tensor by tensor with plain file
reads and dequantized by the vectorised torch kernels below, which are bit-for-bit equal to
`gguf.quants.dequantize` (tests/test_gguf.py checks every type). Types without a kernel here fall
back to the `gguf` package when it is installed; a type nothing can read is an
:class:`UnsupportedModelError` naming it, raised when the file is opened.

llama.cpp's converter stores Llama's q/k projections with their rows permuted (it pairs rotary
halves for its own RoPE kernel); :meth:`GGUFCheckpoint.tensors` undoes that so the weights are
exactly the Hugging Face ones and load into :class:`tui_gen.models.llama.Llama` by name.
"""

from __future__ import annotations

import json
import math
import mmap
import os
import re
import struct
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from tui_gen.errors import ModelLoadError, UnsupportedModelError
from tui_gen.models.config import parse_config

if TYPE_CHECKING:
    import tokenizers

GGUF_MAGIC = b"GGUF"
SUPPORTED_ARCHITECTURES = ("llama", "qwen2")

# ggml type id -> (name, elements per block, bytes per block). Names as llama.cpp spells them.
GGML_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("F32", 1, 4),
    1: ("F16", 1, 2),
    2: ("Q4_0", 32, 18),
    3: ("Q4_1", 32, 20),
    6: ("Q5_0", 32, 22),
    7: ("Q5_1", 32, 24),
    8: ("Q8_0", 32, 34),
    9: ("Q8_1", 32, 40),
    10: ("Q2_K", 256, 84),
    11: ("Q3_K", 256, 110),
    12: ("Q4_K", 256, 144),
    13: ("Q5_K", 256, 176),
    14: ("Q6_K", 256, 210),
    15: ("Q8_K", 256, 292),
    16: ("IQ2_XXS", 256, 66),
    17: ("IQ2_XS", 256, 74),
    18: ("IQ3_XXS", 256, 98),
    19: ("IQ1_S", 256, 50),
    20: ("IQ4_NL", 32, 18),
    21: ("IQ3_S", 256, 110),
    22: ("IQ2_S", 256, 82),
    23: ("IQ4_XS", 256, 136),
    24: ("I8", 1, 1),
    25: ("I16", 1, 2),
    26: ("I32", 1, 4),
    27: ("I64", 1, 8),
    28: ("F64", 1, 8),
    29: ("IQ1_M", 256, 56),
    30: ("BF16", 1, 2),
    34: ("TQ1_0", 256, 54),
    35: ("TQ2_0", 256, 66),
    39: ("MXFP4", 32, 17),
}
TYPE_IDS = {name: i for i, (name, _, _) in GGML_TYPES.items()}


# --------------------------------------------------------------------------- dequantization
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


def _gguf_fallback(type_id: int) -> Callable[[torch.Tensor, torch.Tensor], None] | None:
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


def type_name(type_id: int) -> str:
    return GGML_TYPES[type_id][0] if type_id in GGML_TYPES else f"type {type_id}"


def dequantize(raw: torch.Tensor, type_id: int, shape: tuple[int, ...]) -> torch.Tensor:
    """Raw bytes (uint8) of one tensor of ggml type `type_id` -> new float32 tensor of `shape`."""
    kernel = KERNELS.get(type_id) or _gguf_fallback(type_id)
    if kernel is None or type_id not in GGML_TYPES:
        raise UnsupportedModelError(f"unsupported quant type {type_name(type_id)}")
    _, block, size = GGML_TYPES[type_id]
    out = torch.empty(shape, dtype=torch.float32)
    kernel(raw.reshape(-1, size), out.view(-1, block))
    return out


# --------------------------------------------------------------------------- file parsing

_SCALARS = {  # GGUF value type -> struct format
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_NUMPY = {0: "<u1", 1: "<i1", 2: "<u2", 3: "<i2", 4: "<u4", 5: "<i4", 6: "<f4", 7: "<u1",
          10: "<u8", 11: "<i8", 12: "<f8"}  # fmt: skip
_STRING, _ARRAY = 8, 9


class _HeaderReader:
    """Sequential little-endian reads over the file's mapped bytes."""

    def __init__(self, buf: mmap.mmap) -> None:
        self.buf = buf
        self.pos = 0

    def scalar(self, fmt: str) -> Any:
        (v,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += struct.calcsize(fmt)
        return v

    def string(self) -> str:
        n = self.scalar("<Q")
        if self.pos + n > len(self.buf):
            raise EOFError
        s = self.buf[self.pos : self.pos + n].decode("utf-8", errors="replace")
        self.pos += n
        return s

    def value(self, vtype: int) -> Any:
        if vtype in _SCALARS:
            return self.scalar(_SCALARS[vtype])
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            itype, count = self.scalar("<I"), self.scalar("<Q")
            if itype in _NUMPY:  # numbers in bulk: scores, token types
                dt = np.dtype(_NUMPY[itype])
                if self.pos + count * dt.itemsize > len(self.buf):
                    raise EOFError
                arr = np.frombuffer(self.buf, dt, count, self.pos).copy()
                self.pos += count * dt.itemsize
                return arr.astype(bool) if itype == 7 else arr
            if itype == _STRING:
                return self._strings(count)
            return [self.value(itype) for _ in range(count)]
        raise ValueError(f"unknown metadata value type {vtype}")

    def _strings(self, count: int) -> list[str]:
        buf, pos, out = self.buf, self.pos, []
        unpack = struct.Struct("<Q").unpack_from
        append = out.append
        for _ in range(count):
            (n,) = unpack(buf, pos)
            pos += 8
            append(buf[pos : pos + n].decode("utf-8", errors="replace"))
            pos += n
        if pos > len(buf):
            raise EOFError
        self.pos = pos
        return out


@dataclass
class TensorInfo:
    name: str  # GGUF name, e.g. blk.0.attn_q.weight
    shape: tuple[int, ...]  # torch order (GGUF stores ne[0] = fastest dim first)
    type_id: int
    offset: int  # absolute file offset of the data
    nbytes: int

    @property
    def type_name(self) -> str:
        return type_name(self.type_id)


def read_header(path: Path) -> tuple[dict[str, Any], list[TensorInfo]]:
    """Metadata key/values and tensor descriptions of a GGUF file; validates sizes."""
    if not path.exists():
        raise ModelLoadError(f"{path}: file not found; give the path of a .gguf file")
    if path.is_dir():
        raise ModelLoadError(f"{path}: is a directory; give the path of a .gguf file inside it")
    size = path.stat().st_size
    with path.open("rb") as f:
        magic = f.read(4)
        if magic != GGUF_MAGIC:
            raise ModelLoadError(
                f"{path}: not a GGUF file (starts with {magic!r}, expected b'GGUF'); give a "
                ".gguf file from llama.cpp, LM Studio or Ollama"
            )
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            try:
                return _parse(path, buf, size)
            except (struct.error, EOFError, IndexError, ValueError, UnicodeDecodeError) as e:
                detail = f" ({e})" if str(e) else ""
                raise ModelLoadError(
                    f"{path}: truncated or corrupt GGUF header{detail}; download the file again"
                ) from None


def _parse(path: Path, buf: mmap.mmap, size: int) -> tuple[dict[str, Any], list[TensorInfo]]:
    r = _HeaderReader(buf)
    r.pos = 4
    version = r.scalar("<I")
    if version not in (2, 3):
        hint = " (big-endian files are not supported)" if version > 0xFFFF else ""
        raise ModelLoadError(
            f"{path}: GGUF version {version}{hint} is not supported; re-convert it with a recent "
            "llama.cpp (versions 2 and 3 are read)"
        )
    n_tensors, n_kv = r.scalar("<Q"), r.scalar("<Q")
    if n_tensors > size or n_kv > size:
        raise EOFError("impossible counts")
    meta: dict[str, Any] = {}
    for _ in range(n_kv):
        key = r.string()
        meta[key] = r.value(r.scalar("<I"))
    raw: list[tuple[str, tuple[int, ...], int, int]] = []
    for _ in range(n_tensors):
        name = r.string()
        n_dims = r.scalar("<I")
        if n_dims > 8:
            raise ValueError(f"tensor {name!r} has {n_dims} dimensions")
        dims = struct.unpack_from(f"<{n_dims}Q", buf, r.pos)
        r.pos += 8 * n_dims
        type_id, offset = r.scalar("<I"), r.scalar("<Q")
        raw.append((name, tuple(reversed(dims)), type_id, offset))
    align = int(meta.get("general.alignment", 32))
    if align <= 0 or align & (align - 1):
        raise ValueError(f"general.alignment {align} is not a power of two")
    data_start = (r.pos + align - 1) // align * align
    infos, end = [], data_start
    for name, shape, type_id, offset in raw:
        n = math.prod(shape)
        if type_id in GGML_TYPES:
            _, block, bsize = GGML_TYPES[type_id]
            if shape and shape[-1] % block:
                raise ValueError(f"tensor {name!r} row of {shape[-1]} is not whole blocks")
            nbytes = n // block * bsize
        else:
            nbytes = 0  # unknown type: reported by open_gguf with its name
        info = TensorInfo(name, shape, type_id, data_start + offset, nbytes)
        infos.append(info)
        end = max(end, info.offset + nbytes)
    if end > size:
        raise ModelLoadError(
            f"{path}: truncated ({size} bytes, the tensors need {end}); download the file again"
        )
    return meta, infos


# --------------------------------------------------------------------------- names and config

_LAYER_NAMES = {
    "attn_norm.weight": "input_layernorm.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
    "attn_q.weight": "self_attn.q_proj.weight",
    "attn_k.weight": "self_attn.k_proj.weight",
    "attn_v.weight": "self_attn.v_proj.weight",
    "attn_output.weight": "self_attn.o_proj.weight",
    "attn_q.bias": "self_attn.q_proj.bias",
    "attn_k.bias": "self_attn.k_proj.bias",
    "attn_v.bias": "self_attn.v_proj.bias",
    "attn_output.bias": "self_attn.o_proj.bias",
    "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
}
_GLOBAL_NAMES = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}
_SKIP = {"rope_freqs.weight"}  # folded into config["rope_scaling"]
_BLOCK = re.compile(r"blk\.(\d+)\.(.+)")


def hf_name(name: str) -> str | None:
    """GGUF tensor name -> Hugging Face Llama/Qwen2 name (None if it has no counterpart)."""
    if name in _GLOBAL_NAMES:
        return _GLOBAL_NAMES[name]
    m = _BLOCK.fullmatch(name)
    if m and m.group(2) in _LAYER_NAMES:
        return f"model.layers.{m.group(1)}.{_LAYER_NAMES[m.group(2)]}"
    return None


def unpermute_rows(w: torch.Tensor, n_head: int) -> torch.Tensor:
    """Undo llama.cpp's q/k row order: per head it stores (pair, 2) where HF has (2, pair)."""
    rows = w.shape[0]
    return w.reshape(n_head, rows // n_head // 2, 2, *w.shape[1:]).transpose(1, 2).reshape(w.shape)


def _llama3_rope_scaling(freqs: torch.Tensor, theta: float, head_dim: int) -> dict[str, Any]:
    """Llama 3.1+ GGUFs carry `rope_freqs` (per-frequency divisors) instead of scaling metadata;
    recover the `llama3` parameters that produce exactly those divisors."""
    from tui_gen.models.llama import rope_inv_freq

    factor = float(freqs.max())
    for low, high, ctx in ((1.0, 4.0, 8192), (1.0, 4.0, 4096), (1.0, 2.0, 8192)):
        scaling = {"rope_type": "llama3", "factor": factor, "low_freq_factor": low,
                   "high_freq_factor": high, "original_max_position_embeddings": ctx}  # fmt: skip
        cfg = parse_config({"model_type": "llama", "hidden_size": head_dim,
                            "num_attention_heads": 1, "num_hidden_layers": 1,
                            "intermediate_size": 1, "vocab_size": 1, "rope_theta": theta,
                            "rope_scaling": scaling})  # fmt: skip
        base = 1.0 / (theta ** (torch.arange(0, head_dim, 2).float() / head_dim))
        if torch.allclose(base / rope_inv_freq(cfg), freqs.float(), rtol=1e-4):
            return scaling
    raise UnsupportedModelError(
        "rope_freqs does not match Llama 3 rope scaling with any known parameters"
    )


# --------------------------------------------------------------------------- the checkpoint


@dataclass
class GGUFCheckpoint:
    path: Path
    config: dict  # HF-style config.json
    tokenizer: tokenizers.Tokenizer
    tokenizer_config: dict  # bos/eos/pad/unk token strings, chat_template, add_bos_token
    generation_config: dict  # bos_token_id, eos_token_id
    file_type: str  # majority quant type, for display
    metadata: dict[str, Any] = field(default_factory=dict, repr=False)
    tensor_infos: list[TensorInfo] = field(default_factory=list, repr=False)

    def hf_tensor_infos(self) -> Iterator[tuple[str, TensorInfo]]:
        """(HF name, TensorInfo) for every tensor the model needs, in file order."""
        tied = self.config.get("tie_word_embeddings", False)
        for info in self.tensor_infos:
            name = hf_name(info.name)
            if name is None or (tied and name == "lm_head.weight"):
                continue
            yield name, info

    def tensors(self, dtype: torch.dtype = torch.float32) -> Iterator[tuple[str, torch.Tensor]]:
        """(HF name, tensor) pairs, read and dequantized one at a time.

        Until the iteration ends, torch runs on one thread: the kernels are memory-bound, OpenMP
        threads spin for seconds when another process holds the other core, and switching the
        thread count per tensor costs more than it saves. The count is restored at the end (or
        when the iterator is closed).
        """
        permute = self.config["model_type"] == "llama"
        heads = {"q_proj": self.config["num_attention_heads"],
                 "k_proj": self.config["num_key_value_heads"]}  # fmt: skip
        wanted = list(self.hf_tensor_infos())
        # One read buffer for all tensors: fresh memory is slow on VMs, reused memory is not.
        scratch = torch.empty(max((i.nbytes for _, i in wanted), default=0), dtype=torch.uint8)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with self.path.open("rb", buffering=0) as f:
                for name, info in wanted:
                    raw = scratch[: info.nbytes]
                    f.seek(info.offset)
                    if f.readinto(memoryview(raw.numpy())) != info.nbytes:
                        raise ModelLoadError(f"{self.path}: truncated; download the file again")
                    proj = name.split(".")[-2]
                    if permute and proj in heads:
                        # Permute whole rows of raw blocks: cheaper than permuting floats.
                        rows = info.shape[0]
                        raw = unpermute_rows(raw.reshape(rows, -1), heads[proj]).reshape(-1)
                    t = dequantize(raw, info.type_id, info.shape)
                    yield name, t if dtype == torch.float32 else t.to(dtype)
        finally:
            torch.set_num_threads(threads)

    def state_dict(self, dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
        return dict(self.tensors(dtype))


def _required(meta: dict[str, Any], key: str, path: Path) -> Any:
    if key not in meta:
        raise ModelLoadError(
            f"{path}: metadata key {key!r} is missing; re-convert the model with a recent llama.cpp"
        )
    return meta[key]


def _scalar(v: Any, key: str, path: Path) -> Any:
    """Some keys may be per-layer arrays; we support them only when all layers agree."""
    if isinstance(v, (np.ndarray, list)):
        values = set(np.asarray(v).tolist())
        if len(values) != 1:
            raise UnsupportedModelError(
                f"{path}: {key} differs between layers ({sorted(values)[:4]}...); such models "
                "are not supported, use a Llama/Qwen2 model with uniform layers"
            )
        return values.pop()
    return v


def _build_config(path: Path, meta: dict[str, Any], infos: list[TensorInfo]) -> dict[str, Any]:
    arch = _required(meta, "general.architecture", path)
    if arch not in SUPPORTED_ARCHITECTURES:
        raise UnsupportedModelError(
            f"{path}: unsupported architecture {arch!r}; supported: "
            f"{', '.join(SUPPORTED_ARCHITECTURES)} (SmolLM2, TinyLlama, Llama 2/3, Mistral, Qwen2)"
        )

    def get(key: str, default: Any = None, required: bool = False) -> Any:
        full = f"{arch}.{key}"
        v = _required(meta, full, path) if required else meta.get(full, default)
        return _scalar(v, full, path)

    by_name = {i.name: i for i in infos}
    embd = by_name.get("token_embd.weight")
    if embd is None:
        raise ModelLoadError(f"{path}: no token_embd.weight tensor; the file is incomplete")
    hidden = int(get("embedding_length", required=True))
    heads = int(get("attention.head_count", required=True))
    if heads <= 0 or hidden <= 0:
        raise ModelLoadError(
            f"{path}: head count {heads} / width {hidden} are invalid; corrupt file"
        )
    kv_heads = int(get("attention.head_count_kv", heads) or heads)
    head_dim = int(get("attention.key_length", 0) or hidden // heads)
    rot = get("rope.dimension_count")
    if rot is not None and int(rot) != head_dim:
        raise UnsupportedModelError(
            f"{path}: partial rotary embeddings ({rot} of {head_dim} dims) are not supported"
        )
    theta = float(get("rope.freq_base", 10000.0))
    scaling: dict[str, Any] | None = None
    kind = get("rope.scaling.type")
    factor = float(get("rope.scaling.factor") or get("rope.scale_linear") or 1.0)
    if kind not in (None, "none", "linear"):
        raise UnsupportedModelError(
            f"{path}: rope scaling {kind!r} is not supported; supported: linear, llama3"
        )
    if kind != "none" and factor != 1.0:
        scaling = {"rope_type": "linear", "factor": factor}
    if "rope_freqs.weight" in by_name:
        info = by_name["rope_freqs.weight"]
        with path.open("rb") as f:
            f.seek(info.offset)
            raw = torch.frombuffer(bytearray(f.read(info.nbytes)), dtype=torch.uint8)
        freqs = dequantize(raw, info.type_id, info.shape)
        if not torch.all(freqs == 1):
            try:
                scaling = _llama3_rope_scaling(freqs, theta, head_dim)
            except UnsupportedModelError as e:
                raise UnsupportedModelError(f"{path}: {e}") from None
    spm = meta.get("tokenizer.ggml.model") == "llama"  # llama.cpp's defaults: <s>=1, </s>=2
    tok_meta = {
        "bos_token_id": meta.get("tokenizer.ggml.bos_token_id", 1 if spm else None),
        "eos_token_id": meta.get("tokenizer.ggml.eos_token_id", 2 if spm else None),
        "pad_token_id": meta.get("tokenizer.ggml.padding_token_id"),
    }
    cfg: dict[str, Any] = {
        "architectures": ["LlamaForCausalLM" if arch == "llama" else "Qwen2ForCausalLM"],
        "model_type": arch,
        "hidden_size": hidden,
        "num_hidden_layers": int(get("block_count", required=True)),
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "head_dim": head_dim,
        "intermediate_size": int(get("feed_forward_length", required=True)),
        "max_position_embeddings": int(get("context_length", 2048)),
        "rms_norm_eps": float(get("attention.layer_norm_rms_epsilon", 1e-5)),
        "rope_theta": theta,
        "rope_scaling": scaling,
        "vocab_size": int(embd.shape[0]),
        "tie_word_embeddings": "output.weight" not in by_name,
        "attention_bias": "blk.0.attn_q.bias" in by_name,
        "mlp_bias": False,
        "hidden_act": "silu",
        **{k: (int(v) if v is not None else None) for k, v in tok_meta.items()},
        "torch_dtype": "float32",
    }
    if meta.get("general.name"):
        cfg["_name_or_path"] = str(meta["general.name"])
    return cfg


def _expected_shapes(cfg: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    h, inter, v = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    q = cfg["num_attention_heads"] * cfg["head_dim"]
    kv = cfg["num_key_value_heads"] * cfg["head_dim"]
    out = {"model.embed_tokens.weight": (v, h), "model.norm.weight": (h,)}
    if not cfg["tie_word_embeddings"]:
        out["lm_head.weight"] = (v, h)
    layer = {
        "input_layernorm.weight": (h,),
        "post_attention_layernorm.weight": (h,),
        "self_attn.q_proj.weight": (q, h),
        "self_attn.k_proj.weight": (kv, h),
        "self_attn.v_proj.weight": (kv, h),
        "self_attn.o_proj.weight": (h, q),
        "mlp.gate_proj.weight": (inter, h),
        "mlp.up_proj.weight": (inter, h),
        "mlp.down_proj.weight": (h, inter),
    }
    if cfg["attention_bias"]:
        layer |= {"self_attn.q_proj.bias": (q,), "self_attn.k_proj.bias": (kv,),
                  "self_attn.v_proj.bias": (kv,)}  # fmt: skip
        if cfg["model_type"] == "llama":  # Llama's attention_bias covers o_proj too; Qwen2's not
            layer["self_attn.o_proj.bias"] = (h,)
    for i in range(cfg["num_hidden_layers"]):
        out |= {f"model.layers.{i}.{k}": s for k, s in layer.items()}
    return out


def _check_tensors(path: Path, cfg: dict[str, Any], infos: list[TensorInfo]) -> str:
    """Every tensor named, shaped and typed as the config implies; returns the majority type."""
    expected = _expected_shapes(cfg)
    seen: set[str] = set()
    weights: Counter[str] = Counter()
    for info in infos:
        name = hf_name(info.name)
        if name is None:
            if info.name in _SKIP:
                continue
            raise UnsupportedModelError(
                f"{path}: unexpected tensor {info.name!r} for a {cfg['model_type']} model; "
                f"supported architectures: {', '.join(SUPPORTED_ARCHITECTURES)}"
            )
        if name == "lm_head.weight" and cfg["tie_word_embeddings"]:
            continue
        if name not in expected:
            raise UnsupportedModelError(
                f"{path}: unexpected tensor {info.name!r} for a {cfg['model_type']} model"
            )
        if info.shape != expected[name]:
            raise ModelLoadError(
                f"{path}: tensor {info.name!r} has shape {info.shape} but the metadata implies "
                f"{expected[name]}; the file is corrupt or from an unsupported converter"
            )
        if info.type_id not in KERNELS and _gguf_fallback(info.type_id) is None:
            hint = (
                "install the gguf package (pip install 'tui-gen[gguf]') or use"
                if info.type_id in GGML_TYPES and info.type_id not in (9, 15, 24, 25, 26, 27, 28)
                else "use"
            )
            raise UnsupportedModelError(
                f"{path}: unsupported quant type {info.type_name} (tensor {info.name}); {hint} "
                "a GGUF quantized as F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K "
                "or Q6_K"
            )
        seen.add(name)
        if len(info.shape) >= 2:
            weights[info.type_name] += math.prod(info.shape)
    missing = [k for k in expected if k not in seen]
    if missing:
        raise ModelLoadError(
            f"{path}: tensor(s) {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''} "
            "are missing; the file is incomplete, download it again"
        )
    return weights.most_common(1)[0][0] if weights else "F32"


def open_gguf(path: str | Path) -> GGUFCheckpoint:
    """Read a GGUF file's metadata, config and tokenizer; weights are read by `.tensors()`."""
    from tui_gen.engine.loading.gguf_tokenizer import build_tokenizer

    path = Path(path).expanduser()
    meta, infos = read_header(path)
    if int(meta.get("split.count", 1) or 1) > 1:
        raise UnsupportedModelError(
            f"{path}: is one part of a split GGUF ({meta['split.count']} parts); merge them "
            "first with `llama-gguf-split --merge FIRST-PART.gguf OUT.gguf`"
        )
    config = _build_config(path, meta, infos)
    parse_config(config, str(path))  # the engine's own checks (heads divide evenly, ...)
    file_type = _check_tensors(path, config, infos)
    tokenizer, tokenizer_config = build_tokenizer(meta, path)
    if tokenizer.get_vocab_size(with_added_tokens=True) > config["vocab_size"]:
        raise ModelLoadError(
            f"{path}: the tokenizer has {tokenizer.get_vocab_size()} tokens but the embedding "
            f"only {config['vocab_size']} rows; the file is corrupt"
        )
    eos_ids = [config["eos_token_id"]]
    for key in ("tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"):
        extra = meta.get(key)
        if extra is not None and int(extra) not in eos_ids and int(extra) < config["vocab_size"]:
            eos_ids.append(int(extra))
    eos_ids = [i for i in eos_ids if i is not None]
    generation_config = {
        "bos_token_id": config["bos_token_id"],
        "eos_token_id": eos_ids[0] if len(eos_ids) == 1 else (eos_ids or None),
    }
    if config.get("pad_token_id") is not None:
        generation_config["pad_token_id"] = config["pad_token_id"]
    tokenizer_config.setdefault("model_max_length", config["max_position_embeddings"])
    return GGUFCheckpoint(
        path=path,
        config=config,
        tokenizer=tokenizer,
        tokenizer_config=tokenizer_config,
        generation_config=generation_config,
        file_type=file_type,
        metadata=meta,
        tensor_infos=infos,
    )


# --------------------------------------------------------------------------- import


_ST_DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16"}


def _write_safetensors(out: Path, ckpt: GGUFCheckpoint, dtype: torch.dtype) -> None:
    """Stream tensors into a safetensors file, one in memory at a time (the header is known
    from the GGUF's tensor table before anything is dequantized)."""
    itemsize = torch.empty((), dtype=dtype).element_size()
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    start = 0
    for name, info in ckpt.hf_tensor_infos():
        n = math.prod(info.shape) * itemsize
        header[name] = {"dtype": _ST_DTYPES[dtype], "shape": list(info.shape),
                        "data_offsets": [start, start + n]}  # fmt: skip
        start += n
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    tmp = out.with_suffix(".safetensors.tmp")
    with tmp.open("wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for name, t in ckpt.tensors(dtype):
            assert header[name]["shape"] == list(t.shape)
            f.write(memoryview(t.contiguous().view(torch.uint8).numpy()))
    os.replace(tmp, out)


def import_gguf(path: str | Path, out_dir: str | Path, dtype: torch.dtype = torch.float32) -> Path:
    """Write a GGUF file as a Hugging Face-style model directory and return the directory.

    The directory holds config.json, model.safetensors, tokenizer.json, tokenizer_config.json
    (with the chat template) and generation_config.json; tui-gen and transformers both open it.
    """
    ckpt = open_gguf(path)
    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise ModelLoadError(f"{out}: exists and is not a directory; choose another output path")
    out.mkdir(parents=True, exist_ok=True)
    if dtype not in _ST_DTYPES:
        raise ValueError(f"dtype {dtype} not supported; use float32, float16 or bfloat16")
    config = dict(ckpt.config, torch_dtype=str(dtype).removeprefix("torch."))
    _write_safetensors(out / "model.safetensors", ckpt, dtype)
    ckpt.tokenizer.save(str(out / "tokenizer.json"))
    tok_cfg = {"tokenizer_class": "PreTrainedTokenizerFast", "clean_up_tokenization_spaces": False,
               **ckpt.tokenizer_config}  # fmt: skip
    files = {
        "config.json": config,
        "generation_config.json": ckpt.generation_config,
        "tokenizer_config.json": tok_cfg,
    }
    for name, data in files.items():
        (out / name).write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", "utf-8")
    return out
