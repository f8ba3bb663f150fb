"""A preallocated key/value cache, written in place at a start position.

Allocating once and writing with slice assignment keeps the decode loop free of allocations and
makes the memory cost visible up front (`nbytes`), which the status bar and `info` report.
"""

from __future__ import annotations

from typing import Any

import torch

from tui_gen.errors import ContextOverflowError, TuiGenError

#: `--kv-cache-dtype` values besides "auto" (the model's own dtype). bfloat16 halves the
#: cache's memory and the bytes each decode step's attention reads; the native step reads
#: float32 and bfloat16 caches (float16 it does not, so it is not offered)
KV_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def kv_dtype(spec: str, model_dtype: torch.dtype, recurrent: bool = False) -> torch.dtype:
    """The dtype a cache is kept in: `spec` ("auto", "float32", "bfloat16") for a model
    computing in `model_dtype`. A recurrent state (BDH) always keeps the model's dtype."""
    if spec not in ("auto", *KV_DTYPES):
        raise TuiGenError(f"unknown --kv-cache-dtype {spec!r}; use auto, float32 or bfloat16")
    return model_dtype if spec == "auto" or recurrent else KV_DTYPES[spec]


class KVCache:
    """Per-layer key and value buffers of shape (batch, kv_heads, max_seq_len, head_dim)."""

    def __init__(
        self,
        num_layers: int,
        batch_size: int,
        num_kv_heads: int,
        max_seq_len: int,
        head_dim: int,
        dtype: torch.dtype,
        device: torch.device | str,
    ) -> None:
        shape = (batch_size, num_kv_heads, max_seq_len, head_dim)
        self.k = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(num_layers)]
        self.v = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(num_layers)]
        self.batch_size = batch_size
        self.max_seq_len = max_seq_len
        #: number of positions holding valid keys/values (the next write goes here)
        self.length = 0

    @property
    def nbytes(self) -> int:
        """2 x layers x batch x seq x kv_heads x head_dim x bytes per element."""
        return sum(t.numel() * t.element_size() for t in self.k + self.v)

    def check(self, start: int, num_tokens: int) -> None:
        """Refuse a write that would run past the end (or leave a hole) before any math runs."""
        if start < 0 or start > self.length:
            raise ContextOverflowError(
                f"KV cache write at position {start} but only {self.length} positions are "
                "filled; positions must be written in order"
            )
        if start + num_tokens > self.max_seq_len:
            raise ContextOverflowError(
                f"KV cache holds {self.max_seq_len} positions; writing {num_tokens} token(s) at "
                f"position {start} would pass its end (raise --max-context or shorten the prompt)"
            )

    def update(
        self, layer: int, start: int, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Write k/v (B, kv_heads, T, D) at [start, start+T); return views up to start+T."""
        end = start + k.shape[2]
        self.k[layer][:, :, start:end] = k
        self.v[layer][:, :, start:end] = v
        keys, values = self.k[layer][:, :, :end], self.v[layer][:, :, :end]
        if keys.dtype != k.dtype:  # a bfloat16 cache of a float32 model: attend in float32
            return keys.to(k.dtype), values.to(k.dtype)
        return keys, values

    def advance(self, start: int, num_tokens: int) -> None:
        """Mark [start, start+num_tokens) as filled once every layer has written it."""
        self.length = start + num_tokens

    def truncate(self, length: int) -> None:
        """Forget everything from `length` on (used to reuse a shared prefix)."""
        self.length = max(0, min(length, self.length))

    def reset(self) -> None:
        self.length = 0

    def select_rows(self, rows: torch.Tensor) -> KVCache:
        """Row i becomes row rows[i]: finished batch rows dropped, beams reordered or copied.
        The same number of rows is reordered in place (only the filled positions move)."""
        if rows.numel() == self.batch_size:
            n = self.length
            for layer in range(len(self.k)):
                self.k[layer][:, :, :n] = self.k[layer][rows, :, :n]
                self.v[layer][:, :, :n] = self.v[layer][rows, :, :n]
            return self
        out = KVCache.__new__(KVCache)
        out.k = [t.index_select(0, rows) for t in self.k]
        out.v = [t.index_select(0, rows) for t in self.v]
        out.batch_size = int(rows.numel())
        out.max_seq_len = self.max_seq_len
        out.length = self.length
        return out


def new_cache(
    model: Any,
    cfg: Any,
    batch_size: int,
    max_seq_len: int,
    dtype: torch.dtype,
    device: torch.device | str,
) -> Any:
    """The cache a model decodes with: its own when it defines `new_cache` (BDH's recurrent
    state, models/bdh.py), else a KVCache. Either has length, batch_size, nbytes, check,
    advance, truncate (then read `length`: a recurrent state may keep less), reset and
    select_rows."""
    make = getattr(model, "new_cache", None)
    if make is not None:
        return make(batch_size, max_seq_len, dtype, device)
    return KVCache(
        cfg.num_layers, batch_size, cfg.num_kv_heads, max_seq_len, cfg.head_dim, dtype, device
    )
