"""The decode step in one native call (decode.c), for every model that declares a NativeSpec.

`NativeDecoder.build(model)` asks the model for its :class:`~tui_gen.models.family.NativeSpec`
(`model.native_spec()`: layers, norms, activation, embedding, rotary table, head) and describes
it to the C code once (pointers to its weights, norms and biases); `step()` then embeds the
token in torch (the spec's `embed`) and runs every layer, the final norm and the lm_head in C,
writing the same KV cache tensors the torch path reads. It applies where the C code does what
the torch modules do: a float32 or bfloat16 CPU model in the decode layout whose matrices are
float (float32 in either layout, bfloat16 as (out, in) rows), natively quantized or GGUF blocks
(gguf_linear.py), one token per row: batch 1 (`step`) or the b left-padded rows of a batch
(`step_rows`, each weight read once for all rows; GGUF blocks row by row for now). The C code
computes in float32 whatever the storage. Anything else gets None from `build()` (with the
reason) and keeps the torch forward.

The structures below mirror decode.c's `qmat_t`, `layer_t` and `model_t` field for field; the
library reports the C sizes and offsets (`decode_layout_*`) and a mismatch keeps torch's path.
"""

from __future__ import annotations

import ctypes
import math
import time
import weakref
from ctypes import POINTER, c_float, c_int32, c_int64, c_void_p

import torch
from torch import nn

from tui_gen.engine.native import build
from tui_gen.engine.native.gguf_linear import GGUFLinear
from tui_gen.engine.native.qlinear import NativeQuantLinear
from tui_gen.engine.threads import ThreadGovernor
from tui_gen.models.family import (
    Activation,
    CausalLM,
    NativeLayer,
    NativeSpec,
    NativeUnsupported,
    Norm,
)
from tui_gen.models.kv_cache import KVCache
from tui_gen.models.linear import TransposedLinear

#: decode.c's enums
NORMS: dict[Norm, int] = {"rms": 0, "layer": 1}
ACTIVATIONS: dict[Activation, int] = {
    "silu_gated": 0,
    "gelu_tanh": 1,
    "gelu": 2,
    "relu": 3,
    "silu": 4,
    "gelu_tanh_gated": 5,
}
MAT_QUANT, MAT_F32_ROWS, MAT_F32_COLS, MAT_BF16_ROWS, MAT_GGUF = range(5)


class _QMat(ctypes.Structure):
    _fields_ = [
        ("w", c_void_p),
        ("sm", c_void_p),
        ("bias", c_void_p),
        ("n", c_int64),
        ("k", c_int64),
        ("kind", c_int32),
        ("bits", c_int32),
    ]


class _Layer(ctypes.Structure):
    _fields_ = [
        ("norm1_w", c_void_p),
        ("norm1_b", c_void_p),
        ("norm2_w", c_void_p),
        ("norm2_b", c_void_p),
        ("qkv", _QMat),
        ("o", _QMat),
        ("up", _QMat),
        ("down", _QMat),
        ("k_cache", c_void_p),
        ("v_cache", c_void_p),
        ("q_norm_w", c_void_p),
        ("k_norm_w", c_void_p),
        ("post_attn_w", c_void_p),
        ("post_mlp_w", c_void_p),
        ("window", c_int64),
        ("local_rope", c_int32),
        ("no_rope", c_int32),
        ("qk_norm_whole", c_int32),
    ]


_MODEL_INTS = [
    "n_layers",
    "hidden",
    "n_head",
    "n_kv",
    "head_dim",
    "inter",
    "max_seq",
    "norm",
    "act",
    "rope",
    "kv_bf16",
]


class _Model(ctypes.Structure):
    _fields_ = [
        *[(name, c_int32) for name in _MODEL_INTS],
        ("eps", c_float),
        ("attn_scale", c_float),
        ("layers", POINTER(_Layer)),
        ("normf_w", c_void_p),
        ("normf_b", c_void_p),
        ("head", _QMat),
        ("attn_softcap", c_float),
        ("final_softcap", c_float),
        ("residual_scale", c_float),
        ("logits_div", c_float),
        ("rotary_dim", c_int32),
    ]


#: decode.c's struct names -> their ctypes mirrors
STRUCTS: dict[str, type[ctypes.Structure]] = {"qmat_t": _QMat, "layer_t": _Layer, "model_t": _Model}


def ctypes_layout(structs: dict[str, type[ctypes.Structure]] = STRUCTS) -> dict[str, int]:
    """{"qmat_t": size, "qmat_t.bits": offset, ...} of the ctypes mirrors."""
    out: dict[str, int] = {}
    for cname, struct in structs.items():
        out[cname] = ctypes.sizeof(struct)
        for field in struct._fields_:
            out[f"{cname}.{field[0]}"] = getattr(struct, field[0]).offset
    return out


def c_layout(lib: ctypes.CDLL) -> dict[str, int]:
    """The same, as the compiled library reports it."""
    out: dict[str, int] = {}
    for i in range(lib.decode_layout_count()):
        name = lib.decode_layout_name(i)
        out[name.decode() if isinstance(name, bytes) else str(name)] = lib.decode_layout_value(i)
    return out


def layout_mismatch(c: dict[str, int], py: dict[str, int]) -> str:
    """ "" when the C structs and the ctypes mirrors agree, else what differs (one line)."""
    diffs = []
    for key in sorted(c.keys() | py.keys()):
        if key not in py:
            diffs.append(f"{key} is missing in decode.py")
        elif key not in c:
            diffs.append(f"{key} is missing in decode.c")
        elif c[key] != py[key]:
            what = "size" if "." not in key else "offset"
            diffs.append(f"{key} {what} {c[key]} in C, {py[key]} in ctypes")
    if not diffs:
        return ""
    more = f" (and {len(diffs) - 3} more)" if len(diffs) > 3 else ""
    return "decode.c and decode.py disagree on the struct layout: " + "; ".join(diffs[:3]) + more


_layout_checked: dict[int, str] = {}


def _check_layout(lib: ctypes.CDLL) -> str:
    """layout_mismatch for the loaded library, computed once per library."""
    key = id(lib)
    if key not in _layout_checked:
        _layout_checked[key] = layout_mismatch(c_layout(lib), ctypes_layout())
    return _layout_checked[key]


def _ptr(t: torch.Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def _f32(t: torch.Tensor | None, keep: list[torch.Tensor]) -> int | None:
    """The address of `t` as contiguous float32, kept alive in `keep` (a converted copy for
    the norm weights and biases of a bfloat16 model: a few KB)."""
    if t is None:
        return None
    if t.dtype != torch.float32 or not t.is_contiguous():
        t = t.detach().float().contiguous()
    keep.append(t)  # a model's own parameter, or a tensor only the spec made (Gemma's 1 + w)
    return t.data_ptr()


def _qmat(mod: nn.Module, keep: list[torch.Tensor]) -> _QMat:
    """A layer as the C code reads it: native quantized, float32 in either layout, or bfloat16
    (out, in) rows."""
    w: torch.Tensor
    sm: torch.Tensor | None
    bias: torch.Tensor | None
    if isinstance(mod, GGUFLinear):  # GGUF blocks: `w` is the layer's gg_mat_t
        if why := mod.unreadable():
            raise _Unsupported(why)
        return _QMat(
            w=mod.mat_address, sm=None, bias=_f32(mod.bias, keep), n=mod.out_features,
            k=mod.in_features, kind=MAT_GGUF, bits=0,
        )  # fmt: skip
    if isinstance(mod, NativeQuantLinear) and mod.padded_in == mod.in_features:
        w, sm, kind, bits = mod.qweight, mod.scale_min, MAT_QUANT, mod.bits
        bias = mod.bias
    elif isinstance(mod, TransposedLinear) and mod.weight_t.dtype == torch.float32:
        w, sm, kind, bits = mod.weight_t, None, MAT_F32_COLS, 32  # (K, N)
        bias = mod.bias
    elif isinstance(mod, nn.Linear) and mod.weight.dtype in (torch.float32, torch.bfloat16):
        w, sm = mod.weight, None  # (N, K)
        kind, bits = (MAT_F32_ROWS, 32) if w.dtype == torch.float32 else (MAT_BF16_ROWS, 16)
        bias = mod.bias
    else:
        weight = getattr(mod, "weight", None)
        what = weight.dtype if isinstance(weight, torch.Tensor) else ""
        raise _Unsupported(f"no native kernel for a {what} {type(mod).__name__}")
    if not w.is_contiguous():
        raise _Unsupported("a weight that is not contiguous")
    return _QMat(
        w=_ptr(w), sm=_ptr(sm), bias=_f32(bias, keep), n=mod.out_features, k=mod.in_features,
        kind=kind, bits=bits,
    )  # fmt: skip


class _Unsupported(Exception):
    pass


#: the cache dtypes decode.c reads (`kv_bf16`), whatever the model's dtype
CACHE_DTYPES = (torch.float32, torch.bfloat16)


class NativeDecoder:
    """Runs `model(idx (1, 1), start, cache)` (`step`) and the batched one-token forward of
    Generator.batch_step (`step_rows`) for a supported model; see the module docstring.
    Not thread-safe (one step at a time, as the Generator)."""

    def __init__(
        self,
        model: nn.Module,
        dtype: torch.dtype,
        described: NativeSpec,
        spec: _Model,
        layers: list[_Layer],
        keep: list[torch.Tensor],
    ) -> None:
        self.model = model
        self._keep = keep  # float32 copies the layers point at
        # every tensor of the model, held so no address the C code reads can be freed under
        # it, and whose addresses say whether the model is still the one described
        self._tensors = _tensors(model)
        self._signature = _signature(self._tensors)
        self._dtype = dtype
        self._embed, self._rope = described.embed, described.rope
        self._rope_local = described.rope_local
        self._spec = spec
        self._layers = (_Layer * len(layers))(*layers)
        self._spec.layers = ctypes.cast(self._layers, POINTER(_Layer))
        lib = build.load()
        assert lib is not None
        self._lib = lib
        # the cache the layers point at, weakly: a Generator's new cache frees the old one
        self._bound: weakref.ref[KVCache] | None = None
        self._bound_key: tuple[int, int, int] = (0, 0, 0)
        self._x = torch.empty(spec.hidden)
        self._logits = torch.empty(spec.head.n)
        self._scratch = torch.empty(0)
        self._scratch_rows = 0  # rows the scratch is sized for at the bound cache's max_seq
        # threads per call, from measured step times (engine/threads.py): one governor for the
        # one-row step, one per batch size of step_rows (their step times differ)
        self.governor = ThreadGovernor(self._region_cost)
        self._row_governors: dict[int, ThreadGovernor] = {}
        self._last_governor = self.governor  # the one whose steps ran last

    def _region_cost(self, threads: int) -> float:
        """Seconds of one empty parallel region on `threads` threads (ThreadGovernor)."""
        t0 = time.perf_counter()
        self._lib.decode_region_probe(threads, 1)
        return time.perf_counter() - t0

    def chosen_threads(self) -> int:
        """Threads for torch's work around the steps: what the latest steps' governor chose."""
        return self._last_governor.chosen()

    @classmethod
    def build(cls, model: nn.Module) -> tuple[NativeDecoder | None, str]:
        """(decoder, "") or (None, why not)."""
        lib = build.load()
        if lib is None:
            return None, build.reason()
        if why := _check_layout(lib):
            return None, why
        if not isinstance(model, CausalLM):
            return None, f"{type(model).__name__} is not a tui_gen model"
        keep: list[torch.Tensor] = []
        try:
            dtype = _param_dtype(model)
            cfg = model.config
            if cfg.head_dim > 512 or cfg.num_heads % cfg.num_kv_heads:
                raise _Unsupported(f"head_dim {cfg.head_dim} / {cfg.num_kv_heads} KV heads")
            described = model.native_spec()
            spec, layers = _describe(model, described, keep)
        except (_Unsupported, NativeUnsupported) as e:
            return None, str(e)
        return cls(model, dtype, described, spec, layers, keep), ""

    def describes(self, model: nn.Module) -> bool:
        """Whether `model` still holds the tensors this decoder points at: quantizing it,
        loading other weights with assign=True or moving it afterwards makes it stale."""
        return model is self.model and _signature(_tensors(model)) == self._signature

    def supports(self, cache: KVCache) -> bool:
        """Whether `step` can run on `cache` (one row)."""
        return cache.batch_size == 1 and self.supports_rows(cache)

    def supports_rows(self, cache: object) -> bool:
        """Whether `step_rows` can run on `cache`: a float32 or bfloat16 KVCache (either, for
        a model of either dtype) on the CPU, with the model's KV heads and head_dim, any
        number of rows."""
        if not isinstance(cache, KVCache):
            return False  # e.g. a recurrent state
        k = cache.k[0]
        return (
            k.dtype in CACHE_DTYPES
            and k.device.type == "cpu"
            and k.dim() == 4
            and k.is_contiguous()
            and k.shape[1] == self._spec.n_kv
            and k.shape[3] == self._spec.head_dim
        )

    def _bind(self, cache: KVCache) -> None:
        """Point the layers at `cache`'s tensors. A KVCache allocates its tensors once, so the
        cache object plus its first tensor's address and shape stand for every address:
        nothing is re-read per token while the same cache decodes, and a new cache object (a
        batch whose finished rows were dropped, a row spliced in) is bound afresh."""
        k0 = cache.k[0]
        key = (k0.data_ptr(), cache.batch_size, cache.max_seq_len)
        if self._bound is not None and self._bound() is cache and self._bound_key == key:
            return
        for i, layer in enumerate(self._layers):
            k, v = cache.k[i], cache.v[i]
            if not (k.is_contiguous() and v.is_contiguous()):
                raise RuntimeError("the native decode step needs contiguous KV cache tensors")
            layer.k_cache, layer.v_cache = k.data_ptr(), v.data_ptr()
        self._spec.kv_bf16 = int(k0.dtype == torch.bfloat16)  # else float32 (CACHE_DTYPES)
        self._spec.max_seq = cache.max_seq_len
        self._scratch_rows = 0  # sized for the new max_seq on the next step
        self._bound, self._bound_key = weakref.ref(cache), key

    def _scratch_for(self, rows: int) -> torch.Tensor:
        if rows > self._scratch_rows:
            n = self._lib.decode_rows_scratch_floats(ctypes.byref(self._spec), rows)
            if self._scratch.numel() < n:
                self._scratch = torch.empty(n)
            self._scratch_rows = rows
        return self._scratch

    def step(self, idx: torch.Tensor, start: int, cache: KVCache) -> torch.Tensor:
        """idx (1, 1) at cache position `start` -> logits (1, 1, vocab).

        The logits live in a buffer the next step overwrites (the decode loop samples from
        them before asking for the next): clone them to keep them.
        """
        cache.check(start, 1)
        self._bind(cache)
        scratch = self._scratch_for(1)
        cos_p = sin_p = None
        if self._rope is not None:
            cos, sin = self._rope(start, self._dtype)  # (R,): this position's rows, float32
            cos_p, sin_p = cos.data_ptr(), sin.data_ptr()
        cos2_p, sin2_p = cos_p, sin_p
        if self._rope_local is not None:
            cos2, sin2 = self._rope_local(start, self._dtype)
            cos2_p, sin2_p = cos2.data_ptr(), sin2.data_ptr()
        self._x.copy_(self._embed(idx, start))
        threads = self.governor.threads()
        self._last_governor = self.governor
        t0 = time.perf_counter()
        rc = self._lib.decode_step(
            ctypes.byref(self._spec), self._x.data_ptr(), start, cos_p, sin_p, cos2_p, sin2_p,
            scratch.data_ptr(), self._logits.data_ptr(), threads,
        )  # fmt: skip
        self.governor.record(threads, time.perf_counter() - t0)
        if rc != 0:
            raise RuntimeError("native decode step rejected its arguments")
        cache.advance(start, 1)
        return self._logits.view(1, 1, -1)  # (1, 1, vocab)

    def step_rows(
        self,
        idx: torch.Tensor,
        start: int,
        cache: KVCache,
        positions: torch.Tensor | None = None,
        key_padding: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Generator.batch_step's contract in one native call: idx (b, 1), every row writing
        cache column `start`; positions (b, 1) each row's own position (None: `start`);
        key_padding (b, S) True for the columns a row attends to (None: all) -> new logits
        (b, 1, vocab). Every weight matrix is read once for all b rows."""
        b = idx.shape[0]
        if cache.batch_size != b:
            raise ValueError(f"{b} tokens for a cache of {cache.batch_size} rows")
        cache.check(start, 1)
        self._bind(cache)
        scratch = self._scratch_for(b)
        if positions is None:
            pos = torch.full((b,), start, dtype=torch.long)
        else:
            pos = positions.reshape(b).to(device="cpu", dtype=torch.long)
        held: list[torch.Tensor] = []  # alive until the call returns

        def rows(t: torch.Tensor) -> int:
            t = t.to(torch.float32).reshape(b, -1).contiguous()
            held.append(t)
            return t.data_ptr()

        cos_p = sin_p = None
        if self._rope is not None:
            cos, sin = self._rope(pos, self._dtype)  # (b, R): each row's own position
            cos_p, sin_p = rows(cos), rows(sin)
        cos2_p, sin2_p = cos_p, sin_p
        if self._rope_local is not None:
            cos2, sin2 = self._rope_local(pos, self._dtype)
            cos2_p, sin2_p = rows(cos2), rows(sin2)
        kp_p, kp_stride = None, 0
        if key_padding is not None:
            kp = key_padding.to(device="cpu", dtype=torch.bool).contiguous()
            if kp.dim() != 2 or kp.shape[0] != b or kp.shape[1] <= start:
                raise ValueError(f"key_padding {tuple(kp.shape)} for {b} rows at column {start}")
            held.append(kp)
            kp_p, kp_stride = kp.data_ptr(), kp.shape[1]
        x = torch.empty(b, self._spec.hidden)
        x.copy_(self._embed(idx, pos).reshape(b, -1))
        logits = torch.empty(b, self._spec.head.n)
        governor = self._row_governors.get(b)
        if governor is None:  # one per batch size, made once (not a default built every step)
            governor = self._row_governors[b] = ThreadGovernor(self._region_cost)
        threads = governor.threads()
        self._last_governor = governor
        t0 = time.perf_counter()
        rc = self._lib.decode_rows(
            ctypes.byref(self._spec), b, x.data_ptr(), start, cos_p, sin_p, cos2_p, sin2_p,
            kp_p, kp_stride, scratch.data_ptr(), logits.data_ptr(), threads,
        )  # fmt: skip
        governor.record(threads, time.perf_counter() - t0)
        if rc != 0:
            raise RuntimeError("native decode step rejected its arguments")
        cache.advance(start, 1)
        return logits.view(b, 1, -1)


def _describe(
    model: CausalLM, d: NativeSpec, keep: list[torch.Tensor]
) -> tuple[_Model, list[_Layer]]:
    """The C structs for a model's declared spec."""
    cfg = model.config
    layers = [
        _Layer(
            norm1_w=_f32(layer.norm1_weight, keep),
            norm1_b=_f32(layer.norm1_bias, keep),
            norm2_w=_f32(layer.norm2_weight, keep),
            norm2_b=_f32(layer.norm2_bias, keep),
            qkv=_qmat(layer.qkv, keep),
            o=_qmat(layer.o, keep),
            up=_qmat(layer.up, keep),
            down=_qmat(layer.down, keep),
            q_norm_w=_f32(layer.q_norm_weight, keep),
            k_norm_w=_f32(layer.k_norm_weight, keep),
            post_attn_w=_f32(layer.post_attn_norm_weight, keep),
            post_mlp_w=_f32(layer.post_mlp_norm_weight, keep),
            window=layer.window or 0,
            local_rope=int(layer.local_rope and d.rope_local is not None),
            no_rope=int(not layer.rope),
            qk_norm_whole=_qk_norm_whole(layer, cfg.num_heads, d.num_kv_heads, cfg.head_dim),
        )
        for layer in d.layers
    ]
    rotary_dim = d.rotary_dim or cfg.head_dim
    if rotary_dim > cfg.head_dim or rotary_dim % 2:
        raise _Unsupported(f"rotary_dim {rotary_dim} of head_dim {cfg.head_dim}")
    spec = _Model(
        n_layers=len(layers),
        hidden=cfg.hidden_size,
        n_head=cfg.num_heads,
        n_kv=d.num_kv_heads,
        head_dim=cfg.head_dim,
        inter=cfg.intermediate_size,
        norm=NORMS[d.norm],
        act=ACTIVATIONS[d.activation],
        rope=int(d.rope is not None),
        eps=cfg.norm_eps,
        attn_scale=d.attn_scale if d.attn_scale is not None else 1.0 / math.sqrt(cfg.head_dim),
        normf_w=_f32(d.final_norm_weight, keep),
        normf_b=_f32(d.final_norm_bias, keep),
        head=_qmat(d.head, keep),
        attn_softcap=d.attn_softcap or 0.0,
        final_softcap=d.final_softcap or 0.0,
        residual_scale=d.residual_scale,
        logits_div=d.logits_scaling,
        rotary_dim=rotary_dim,
    )
    return spec, layers


def _qk_norm_whole(layer: NativeLayer, heads: int, kv_heads: int, head_dim: int) -> int:
    """1 when the q/k norm weights span the whole projection (OLMo-2), 0 when one head."""
    q, k = layer.q_norm_weight, layer.k_norm_weight
    if q is None and k is None:
        return 0
    if q is None or k is None:
        raise _Unsupported("a q norm without a k norm (or the reverse)")
    if q.numel() == head_dim and k.numel() == head_dim:
        return 0
    if q.numel() == heads * head_dim and k.numel() == kv_heads * head_dim:
        return 1
    raise _Unsupported(f"q/k norm widths {q.numel()} / {k.numel()} (head_dim {head_dim})")


def _tensors(model: nn.Module) -> list[torch.Tensor]:
    return [*model.parameters(), *model.buffers()]


def _signature(tensors: list[torch.Tensor]) -> tuple[int, ...]:
    return tuple(t.data_ptr() for t in tensors)


def _param_dtype(model: nn.Module) -> torch.dtype:
    """The one dtype (float32 or bfloat16) of the parameters left after quantization (norms,
    embeddings, float matrices), all on the CPU."""
    dtypes = {p.dtype for p in model.parameters()}
    devices = {p.device.type for p in model.parameters()}
    if devices - {"cpu"}:
        raise _Unsupported(f"parameters on {', '.join(sorted(devices))}; the step runs on the CPU")
    if len(dtypes) != 1 or not dtypes <= {torch.float32, torch.bfloat16}:
        names = ", ".join(sorted(str(d).replace("torch.", "") for d in dtypes))
        raise _Unsupported(f"parameters in {names}; the native step reads float32 or bfloat16")
    return dtypes.pop()
