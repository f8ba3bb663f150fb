"""The decode step in one native call (decode.c), for Llama-family and GPT-2 models.

`NativeDecoder.build(model)` describes the model to the C code once (pointers to its weights,
norms and biases); `step()` then looks the token up in torch and runs every layer, the final
norm and the lm_head in C, writing the same KV cache tensors the torch path reads. It applies
where the C code does what the torch modules do: a float32 or bfloat16 CPU model in the decode
layout whose matrices are float (float32 in either layout, bfloat16 as (out, in) rows) or
natively quantized, batch 1, one token. The C code computes in float32 whatever the storage.
Anything else gets None from `build()` (with the reason) and keeps the torch forward.

The structures below mirror decode.c's `qmat_t`, `layer_t` and `model_t` field for field.
"""

from __future__ import annotations

import ctypes
import math
import weakref
from ctypes import POINTER, c_float, c_int32, c_int64, c_void_p
from typing import Any

import torch
from torch import nn

from tui_gen.engine.native import build
from tui_gen.engine.native.qlinear import NativeQuantLinear
from tui_gen.models.kv_cache import KVCache
from tui_gen.models.linear import TransposedLinear

NORM_RMS, NORM_LAYER = 0, 1
ACT_SILU_GATED, ACT_GELU_TANH, ACT_GELU, ACT_RELU, ACT_SILU = range(5)
_GPT2_ACTS = {
    "gelu_new": ACT_GELU_TANH,
    "gelu_pytorch_tanh": ACT_GELU_TANH,
    "gelu_fast": ACT_GELU_TANH,
    "gelu": ACT_GELU,
    "relu": ACT_RELU,
    "silu": ACT_SILU,
}
MAT_QUANT, MAT_F32_ROWS, MAT_F32_COLS, MAT_BF16_ROWS = range(4)


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
    ]


def _ptr(t: torch.Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def _f32(t: torch.Tensor | None, keep: list[torch.Tensor]) -> int | None:
    """The address of `t` as contiguous float32; a converted copy is kept alive in `keep`
    (norm weights and biases of a bfloat16 model: a few KB)."""
    if t is None:
        return None
    if t.dtype != torch.float32 or not t.is_contiguous():
        t = t.detach().float().contiguous()
        keep.append(t)
    return t.data_ptr()


def _qmat(mod: nn.Module, keep: list[torch.Tensor]) -> _QMat:
    """A layer as the C code reads it: native quantized, float32 in either layout, or bfloat16
    (out, in) rows."""
    n, k = mod.out_features, mod.in_features
    if isinstance(mod, NativeQuantLinear) and mod.padded_in == k:
        w, sm, kind, bits = mod.qweight, mod.scale_min, MAT_QUANT, mod.bits
    elif isinstance(mod, TransposedLinear) and mod.weight_t.dtype == torch.float32:
        w, sm, kind, bits = mod.weight_t, None, MAT_F32_COLS, 32  # (K, N)
    elif isinstance(mod, nn.Linear) and mod.weight.dtype in (torch.float32, torch.bfloat16):
        w, sm = mod.weight, None  # (N, K)
        kind, bits = (MAT_F32_ROWS, 32) if w.dtype == torch.float32 else (MAT_BF16_ROWS, 16)
    else:
        what = getattr(getattr(mod, "weight", None), "dtype", "")
        raise _Unsupported(f"no native kernel for a {what} {type(mod).__name__}")
    if not w.is_contiguous():
        raise _Unsupported("a weight that is not contiguous")
    bias = _f32(getattr(mod, "bias", None), keep)
    return _QMat(w=_ptr(w), sm=_ptr(sm), bias=bias, n=n, k=k, kind=kind, bits=bits)


class _Unsupported(Exception):
    pass


class NativeDecoder:
    """Runs `model(idx (1, 1), start, cache)` for a supported model; see the module docstring."""

    def __init__(
        self,
        model: nn.Module,
        dtype: torch.dtype,
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
        spec.kv_bf16 = int(self._dtype == torch.bfloat16)  # the cache is in the model's dtype
        self._spec = spec
        self._layers = (_Layer * len(layers))(*layers)
        self._spec.layers = ctypes.cast(self._layers, POINTER(_Layer))
        lib = build.load()
        assert lib is not None
        self._lib = lib
        # the cache the layers point at, weakly: a Generator's new cache frees the old one
        self._bound: weakref.ref[KVCache] | None = None
        self._x = torch.empty(spec.hidden)
        self._logits = torch.empty(spec.head.n)
        self._scratch = torch.empty(0)

    @classmethod
    def build(cls, model: nn.Module) -> tuple[NativeDecoder | None, str]:
        """(decoder, "") or (None, why not)."""
        if build.load() is None:
            return None, build.reason()
        arch = getattr(getattr(model, "config", None), "arch", None)
        keep: list[torch.Tensor] = []
        try:
            dtype = _param_dtype(model)
            cfg = model.config
            if cfg.head_dim > 512 or cfg.num_heads % cfg.num_kv_heads:
                raise _Unsupported(f"head_dim {cfg.head_dim} / {cfg.num_kv_heads} KV heads")
            if arch == "llama":
                spec, layers = _describe_llama(model, keep)
            elif arch == "gpt2":
                spec, layers = _describe_gpt2(model, keep)
            else:
                return None, f"no native decode step for architecture {arch!r}"
        except _Unsupported as e:
            return None, str(e)
        except AttributeError as e:  # not in the decode layout (projections not fused)
            return None, f"model is not in the decode layout: {e}"
        return cls(model, dtype, spec, layers, keep), ""

    def describes(self, model: nn.Module) -> bool:
        """Whether `model` still holds the tensors this decoder points at: quantizing it,
        loading other weights with assign=True or moving it afterwards makes it stale."""
        return model is self.model and _signature(_tensors(model)) == self._signature

    def supports(self, cache: KVCache) -> bool:
        k = cache.k[0]
        return (
            cache.batch_size == 1
            and k.dtype == self._dtype
            and k.device.type == "cpu"
            and k.shape[1] == self._spec.n_kv
            and k.shape[3] == self._spec.head_dim
        )

    def _bind(self, cache: KVCache) -> None:
        """Point the layers at `cache` (a KVCache allocates its tensors once, so its identity
        stands for their addresses: nothing is re-read per token)."""
        if self._bound is not None and self._bound() is cache:
            return
        for i, layer in enumerate(self._layers):
            layer.k_cache, layer.v_cache = cache.k[i].data_ptr(), cache.v[i].data_ptr()
        self._spec.max_seq = cache.max_seq_len
        n = self._lib.decode_scratch_floats(ctypes.byref(self._spec))
        if self._scratch.numel() < n:
            self._scratch = torch.empty(n)
        self._bound = weakref.ref(cache)

    def step(self, idx: torch.Tensor, start: int, cache: KVCache) -> torch.Tensor:
        """idx (1, 1) at cache position `start` -> logits (1, 1, vocab).

        The logits live in a buffer the next step overwrites (the decode loop samples from
        them before asking for the next): clone them to keep them.
        """
        cache.check(start, 1)
        self._bind(cache)
        model, x = self.model, self._x
        if self._spec.rope:
            cos, sin = model._rope_table(start + 1, idx.device, self._dtype)  # (n, D)
            cos, sin = cos[start].float(), sin[start].float()  # (D,): this position's row
            cos_p, sin_p = cos.data_ptr(), sin.data_ptr()
            x.copy_(model.model.embed_tokens(idx).view(-1))
        else:
            cos_p = sin_p = None
            t = model.transformer
            x.copy_((t.wte(idx).float() + t.wpe.weight[start].float()).view(-1))
        rc = self._lib.decode_step(
            ctypes.byref(self._spec), x.data_ptr(), start, cos_p, sin_p,
            self._scratch.data_ptr(), self._logits.data_ptr(), torch.get_num_threads(),
        )  # fmt: skip
        if rc != 0:
            raise RuntimeError("native decode step rejected its arguments")
        cache.advance(start, 1)
        return self._logits.view(1, 1, -1)  # (1, 1, vocab)


def _spec(
    cfg: Any, n_kv: int, norm: int, act: int, rope: int,
    normf_w: int | None, normf_b: int | None, head: _QMat,
) -> _Model:  # fmt: skip
    return _Model(
        n_layers=cfg.num_layers,
        hidden=cfg.hidden_size,
        n_head=cfg.num_heads,
        n_kv=n_kv,
        head_dim=cfg.head_dim,
        inter=cfg.intermediate_size,
        norm=norm,
        act=act,
        rope=rope,
        eps=cfg.norm_eps,
        attn_scale=1.0 / math.sqrt(cfg.head_dim),
        normf_w=normf_w,
        normf_b=normf_b,
        head=head,
    )


def _describe_llama(model: nn.Module, keep: list[torch.Tensor]) -> tuple[_Model, list[_Layer]]:
    cfg = model.config
    layers = []
    for layer in model.model.layers:
        attn, mlp = layer.self_attn, layer.mlp
        if attn.qkv_proj is None or mlp.gate_up_proj is None:
            raise _Unsupported("q/k/v or gate/up are not fused")
        layers.append(
            _Layer(
                norm1_w=_f32(layer.input_layernorm.weight, keep),
                norm2_w=_f32(layer.post_attention_layernorm.weight, keep),
                qkv=_qmat(attn.qkv_proj, keep),
                o=_qmat(attn.o_proj, keep),
                up=_qmat(mlp.gate_up_proj, keep),
                down=_qmat(mlp.down_proj, keep),
            )
        )
    spec = _spec(
        cfg, cfg.num_kv_heads, NORM_RMS, ACT_SILU_GATED, rope=1,
        normf_w=_f32(model.model.norm.weight, keep), normf_b=None,
        head=_qmat(model.lm_head, keep),
    )  # fmt: skip
    return spec, layers


def _describe_gpt2(model: nn.Module, keep: list[torch.Tensor]) -> tuple[_Model, list[_Layer]]:
    cfg = model.config
    if cfg.activation not in _GPT2_ACTS:
        raise _Unsupported(f"activation {cfg.activation!r}")
    layers = []
    for block in model.transformer.h:
        layers.append(
            _Layer(
                norm1_w=_f32(block.ln_1.weight, keep),
                norm1_b=_f32(block.ln_1.bias, keep),
                norm2_w=_f32(block.ln_2.weight, keep),
                norm2_b=_f32(block.ln_2.bias, keep),
                qkv=_qmat(block.attn.c_attn, keep),
                o=_qmat(block.attn.c_proj, keep),
                up=_qmat(block.mlp.c_fc, keep),
                down=_qmat(block.mlp.c_proj, keep),
            )
        )
    spec = _spec(
        cfg, cfg.num_heads, NORM_LAYER, _GPT2_ACTS[cfg.activation], rope=0,
        normf_w=_f32(model.transformer.ln_f.weight, keep),
        normf_b=_f32(model.transformer.ln_f.bias, keep),
        head=_qmat(model.lm_head, keep),
    )  # fmt: skip
    return spec, layers


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
