"""The GGUF container (llama.cpp, LM Studio, Ollama blobs): header, metadata, tensor table.

The header is parsed with `struct` (the `gguf` package's reader takes ~3 s on a 135M model
because it wraps every field in numpy views); sizes are validated against the file so a
truncated download is one clear error. What the tensors mean is gguf_reader.py's business.
"""

from __future__ import annotations

import math
import mmap
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tui_gen.errors import ModelLoadError
from tui_gen.models.config import check_regular

GGUF_MAGIC = b"GGUF"

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


def type_name(type_id: int) -> str:
    return GGML_TYPES[type_id][0] if type_id in GGML_TYPES else f"type {type_id}"


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
#: arrays of arrays deeper than this are refused (llama.cpp writes at most one level)
MAX_ARRAY_DEPTH = 8


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

    def value(self, vtype: int, depth: int = 0) -> Any:
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
            if depth >= MAX_ARRAY_DEPTH:  # recursion would overflow the stack
                raise ValueError(f"metadata arrays nested more than {MAX_ARRAY_DEPTH} deep")
            return [self.value(itype, depth + 1) for _ in range(count)]
        raise ValueError(f"unknown metadata value type {vtype}")

    def _strings(self, count: int) -> list[str]:
        buf, pos = self.buf, self.pos
        out: list[str] = []
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
    check_regular(path)  # a FIFO would block forever
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
    align = meta.get("general.alignment", 32)
    if isinstance(align, bool) or not isinstance(align, int):
        raise ValueError(f"general.alignment is {type(align).__name__}, not an integer")
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
