"""The decode step in one native call (decode.c), for Llama-family and GPT-2 models.

`NativeDecoder.build(model)` describes the model to the C code once (pointers to its weights,
norms and biases); `step()` then looks the token up in torch and runs every layer, the final
norm and the lm_head in C, writing the same KV cache tensors the torch path reads. It applies
where the C code does what the torch modules do: a float32 CPU model in the decode layout
whose matrices are float32 (either layout) or natively quantized, batch 1, one token. Anything
else gets None from `build()` (with the reason) and keeps the torch forward.
"""

from __future__ import annotations

import ctypes
import math
from ctypes import POINTER, c_float, c_int32, c_int64, c_void_p

import torch
from torch import nn

from tui_gen.engine.kv_cache import KVCache
from tui_gen.engine.layout import TransposedLinear
from tui_gen.engine.native import build
from tui_gen.engine.native.qlinear import NativeQuantLinear

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


MAT_QUANT, MAT_F32_ROWS, MAT_F32_COLS = range(3)


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


def _qmat(mod: nn.Module) -> _QMat:
    """A layer as the C code reads it: native quantized, or float32 in either layout."""
    n, k = mod.out_features, mod.in_features
    if isinstance(mod, NativeQuantLinear) and mod.padded_in == k:
        w, sm, kind, bits = mod.qweight, mod.scale_min, MAT_QUANT, mod.bits
    elif isinstance(mod, TransposedLinear):
        w, sm, kind, bits = mod.weight_t, None, MAT_F32_COLS, 32  # (K, N)
    elif isinstance(mod, nn.Linear):
        w, sm, kind, bits = mod.weight, None, MAT_F32_ROWS, 32  # (N, K)
    else:
        raise _Unsupported(f"no native kernel for {type(mod).__name__}")
    if kind != MAT_QUANT and (w.dtype != torch.float32 or not w.is_contiguous()):
        raise _Unsupported(f"a {w.dtype} weight; the native step reads contiguous float32")
    bias = getattr(mod, "bias", None)
    if bias is not None and (bias.dtype != torch.float32 or not bias.is_contiguous()):
        raise _Unsupported("a bias that is not contiguous float32")
    return _QMat(w=_ptr(w), sm=_ptr(sm), bias=_ptr(bias), n=n, k=k, kind=kind, bits=bits)


class _Unsupported(Exception):
    pass


class NativeDecoder:
    """Runs `model(idx (1, 1), start, cache)` for a supported model; see the module docstring."""

    def __init__(self, model: nn.Module, spec: _Model, layers: list[_Layer]) -> None:
        self.model = model
        self._spec = spec
        self._layers = (_Layer * len(layers))(*layers)
        self._spec.layers = ctypes.cast(self._layers, POINTER(_Layer))
        lib = build.load()
        assert lib is not None
        self._lib = lib
        self._bound: tuple[int, ...] = ()  # the cache tensors' addresses the layers point at
        self._x = torch.empty(spec.hidden)
        self._logits = torch.empty(spec.head.n)
        self._scratch = torch.empty(0)

    @classmethod
    def build(cls, model: nn.Module) -> tuple[NativeDecoder | None, str]:
        """(decoder, "") or (None, why not)."""
        if build.load() is None:
            return None, build.reason()
        arch = getattr(getattr(model, "config", None), "arch", None)
        try:
            if arch == "llama":
                spec, layers = _describe_llama(model)
            elif arch == "gpt2":
                spec, layers = _describe_gpt2(model)
            else:
                return None, f"no native decode step for architecture {arch!r}"
        except _Unsupported as e:
            return None, str(e)
        except AttributeError as e:  # not in the decode layout (projections not fused)
            return None, f"model is not in the decode layout: {e}"
        return cls(model, spec, layers), ""

    def supports(self, cache: KVCache) -> bool:
        k = cache.k[0]
        return (
            cache.batch_size == 1
            and k.dtype == torch.float32
            and k.device.type == "cpu"
            and k.shape[1] == self._spec.n_kv
            and k.shape[3] == self._spec.head_dim
        )

    def _bind(self, cache: KVCache) -> None:
        addrs = tuple(t.data_ptr() for t in cache.k + cache.v)
        if addrs == self._bound:
            return
        for i, layer in enumerate(self._layers):
            layer.k_cache, layer.v_cache = cache.k[i].data_ptr(), cache.v[i].data_ptr()
        self._spec.max_seq = cache.max_seq_len
        n = self._lib.decode_scratch_floats(ctypes.byref(self._spec))
        if self._scratch.numel() < n:
            self._scratch = torch.empty(n)
        self._bound = addrs

    def step(self, idx: torch.Tensor, start: int, cache: KVCache) -> torch.Tensor:
        """idx (1, 1) at cache position `start` -> logits (1, 1, vocab).

        The logits live in a buffer the next step overwrites (the decode loop samples from
        them before asking for the next): clone them to keep them.
        """
        cache.check(start, 1)
        self._bind(cache)
        model, x = self.model, self._x
        if self._spec.rope:
            cos, sin = model._rope_table(start + 1, idx.device, torch.float32)  # (n, D)
            cos_p, sin_p = cos[start].data_ptr(), sin[start].data_ptr()
            x.copy_(model.model.embed_tokens(idx).view(-1))
        else:
            cos_p = sin_p = None
            t = model.transformer
            x.copy_((t.wte(idx) + t.wpe.weight[start]).view(-1))
        rc = self._lib.decode_step(
            ctypes.byref(self._spec), x.data_ptr(), start, cos_p, sin_p,
            self._scratch.data_ptr(), self._logits.data_ptr(), torch.get_num_threads(),
        )  # fmt: skip
        if rc != 0:
            raise RuntimeError("native decode step rejected its arguments")
        cache.advance(start, 1)
        return self._logits.view(1, 1, -1)  # (1, 1, vocab)


def _describe_llama(model: nn.Module) -> tuple[_Model, list[_Layer]]:
    cfg = model.config
    layers = []
    for layer in model.model.layers:
        attn, mlp = layer.self_attn, layer.mlp
        if attn.qkv_proj is None or mlp.gate_up_proj is None:
            raise _Unsupported("q/k/v or gate/up are not fused")
        layers.append(
            _Layer(
                norm1_w=_ptr(layer.input_layernorm.weight),
                norm2_w=_ptr(layer.post_attention_layernorm.weight),
                qkv=_qmat(attn.qkv_proj),
                o=_qmat(attn.o_proj),
                up=_qmat(mlp.gate_up_proj),
                down=_qmat(mlp.down_proj),
            )
        )
    _check_float32(model)
    spec = _Model(
        n_layers=cfg.num_layers,
        hidden=cfg.hidden_size,
        n_head=cfg.num_heads,
        n_kv=cfg.num_kv_heads,
        head_dim=cfg.head_dim,
        inter=cfg.intermediate_size,
        norm=NORM_RMS,
        act=ACT_SILU_GATED,
        rope=1,
        eps=cfg.norm_eps,
        attn_scale=1.0 / math.sqrt(cfg.head_dim),
        normf_w=_ptr(model.model.norm.weight),
        head=_qmat(model.lm_head),
    )
    return spec, layers


def _describe_gpt2(model: nn.Module) -> tuple[_Model, list[_Layer]]:
    cfg = model.config
    if cfg.activation not in _GPT2_ACTS:
        raise _Unsupported(f"activation {cfg.activation!r}")
    layers = []
    for block in model.transformer.h:
        layers.append(
            _Layer(
                norm1_w=_ptr(block.ln_1.weight),
                norm1_b=_ptr(block.ln_1.bias),
                norm2_w=_ptr(block.ln_2.weight),
                norm2_b=_ptr(block.ln_2.bias),
                qkv=_qmat(block.attn.c_attn),
                o=_qmat(block.attn.c_proj),
                up=_qmat(block.mlp.c_fc),
                down=_qmat(block.mlp.c_proj),
            )
        )
    _check_float32(model)
    spec = _Model(
        n_layers=cfg.num_layers,
        hidden=cfg.hidden_size,
        n_head=cfg.num_heads,
        n_kv=cfg.num_heads,
        head_dim=cfg.head_dim,
        inter=cfg.intermediate_size,
        norm=NORM_LAYER,
        act=_GPT2_ACTS[cfg.activation],
        rope=0,
        eps=cfg.norm_eps,
        attn_scale=1.0 / math.sqrt(cfg.head_dim),
        normf_w=_ptr(model.transformer.ln_f.weight),
        normf_b=_ptr(model.transformer.ln_f.bias),
        head=_qmat(model.lm_head),
    )
    return spec, layers


def _check_float32(model: nn.Module) -> None:
    """Norms and embeddings (the parameters left after quantization) in float32 on the CPU."""
    for name, t in model.named_parameters():
        if t.dtype != torch.float32 or t.device.type != "cpu":
            raise _Unsupported(f"{name} is {t.dtype} on {t.device}; the step needs float32 CPU")
