"""Gemma 2 and Gemma 3 (text): the Llama block reshaped the Gemma way.

What differs from models/llama.py, all as transformers' reference computes it:

* RMSNorm multiplies by ``(1 + w)`` and runs in float32 (weights are stored as offsets from 1);
* the embedding output is scaled by ``sqrt(hidden)`` in the weights' dtype;
* four norms per layer: before and after attention, before and after the MLP;
* attention scale ``query_pre_attn_scalar ** -0.5`` instead of ``head_dim ** -0.5``;
* GeGLU MLP with the tanh GELU; tied embeddings;
* interleaved sliding-window and global layers (`layer_types`, or Gemma 3's
  `sliding_window_pattern`: every sixth layer global; Gemma 2: every second);
* Gemma 3: q/k RMSNorm per head before RoPE, and a separate RoPE base for sliding layers
  (`rope_local_base_freq`, 5.x: `rope_parameters["sliding_attention"]`);
* Gemma 2: tanh soft-capping of the attention scores and of the final logits.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tui_gen.errors import ModelLoadError, UnsupportedModelError
from tui_gen.models import llama
from tui_gen.models.common import GatedActivation, attend_capped, build_window_mask, gated
from tui_gen.models.config import ModelConfig, dtype_of, first, sliding_from_hf, token_ids
from tui_gen.models.family import (
    CausalLM,
    GGUFFormat,
    GGUFMetadata,
    NativeLayer,
    NativeSpec,
    NativeUnsupported,
    Position,
    typed_modules,
    upto,
)
from tui_gen.models.kv_cache import KVCache
from tui_gen.models.linear import fuse_linears

GEMMA3_TYPES = ("gemma3_text", "gemma3")


def _rope_of(spec: Any, where: str) -> tuple[float | None, dict[str, Any] | None]:
    """(theta, scaling) of one rope_parameters entry; scaling None for the default type."""
    if not isinstance(spec, dict):
        return None, None
    theta = spec.get("rope_theta")
    kind = spec.get("rope_type") or spec.get("type")
    if kind in (None, "default"):
        return (float(theta) if theta is not None else None), None
    if kind != "linear":
        raise UnsupportedModelError(
            f"config.json: {where} rope scaling {kind!r} is not supported; supported: linear"
        )
    return (float(theta) if theta is not None else None), {
        "rope_type": "linear",
        "factor": float(spec["factor"]),
    }


def config_from_hf(raw: dict[str, Any], model_type: str) -> ModelConfig:
    """Gemma 2 / Gemma 3 text config.json (4.x and 5.x spellings; a `gemma3` multimodal
    checkpoint's `text_config`) -> ModelConfig."""
    if model_type == "gemma3" and isinstance(raw.get("text_config"), dict):
        raw = {**raw["text_config"], **{k: raw[k] for k in ("dtype", "torch_dtype") if k in raw}}
    gemma3 = model_type in GEMMA3_TYPES
    hidden = int(raw["hidden_size"])
    heads = int(raw["num_attention_heads"])
    layers = int(raw["num_hidden_layers"])
    head_dim = int(first(raw, "head_dim", default=hidden // heads))
    rope = raw.get("rope_parameters") or {}
    if gemma3:
        global_theta, scaling = _rope_of(rope.get("full_attention"), "global")
        local_theta, _ = _rope_of(rope.get("sliding_attention"), "local")
        if raw.get("rope_scaling"):
            _, scaling = _rope_of(raw["rope_scaling"], "global")
        theta = float(first(raw, "rope_theta", default=global_theta or 1_000_000.0))
        local = float(first(raw, "rope_local_base_freq", default=local_theta or 10_000.0))
        pattern = int(first(raw, "sliding_window_pattern", default=6))
        default_types = [
            "sliding_attention" if (i + 1) % pattern else "full_attention" for i in range(layers)
        ]
    else:
        theta = float(first(raw, "rope_theta", default=rope.get("rope_theta", 10000.0)))
        _, scaling = _rope_of(raw.get("rope_scaling") or rope, "")
        local = None
        default_types = [
            "sliding_attention" if (i + 1) % 2 else "full_attention" for i in range(layers)
        ]
    eos = raw.get("eos_token_id")
    return ModelConfig(
        model_type=model_type,
        arch="gemma",
        vocab_size=int(raw["vocab_size"]),
        hidden_size=hidden,
        num_layers=layers,
        num_heads=heads,
        num_kv_heads=int(first(raw, "num_key_value_heads", default=heads)),
        head_dim=head_dim,
        intermediate_size=int(raw["intermediate_size"]),
        max_position_embeddings=int(first(raw, "max_position_embeddings", default=8192)),
        norm_eps=float(first(raw, "rms_norm_eps", default=1e-6)),
        tie_word_embeddings=bool(raw.get("tie_word_embeddings", True)),
        rope_theta=theta,
        rope_scaling=scaling,
        attention_bias=bool(raw.get("attention_bias", False)),
        dtype=dtype_of(raw),
        qk_norm=gemma3,
        query_pre_attn_scalar=float(first(raw, "query_pre_attn_scalar", default=head_dim)),
        attn_logit_softcapping=_cap(raw.get("attn_logit_softcapping", None if gemma3 else 50.0)),
        final_logit_softcapping=_cap(
            raw.get("final_logit_softcapping", None if gemma3 else 30.0)
        ),
        rope_local_theta=local,
        **{**token_ids(raw), "eos_token_id": eos},
        **sliding_from_hf(
            {"sliding_window": 4096, **raw}, layers, default_types=default_types
        ),
    )


def _cap(v: Any) -> float | None:
    return float(v) if v else None


def _plus_one(norm: RMSNorm) -> torch.Tensor:
    """The float32 (1 + w) a Gemma norm multiplies by: the plain RMSNorm weight of the C step."""
    return 1.0 + norm.weight.detach().float()


class RMSNorm(nn.Module):
    """Gemma's RMSNorm: x / rms(x) * (1 + w), in float32, cast back at the end."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return (xf * (1.0 + self.weight.float())).to(x.dtype)


class Attention(llama.Attention):
    def __init__(self, cfg: ModelConfig, layer: int) -> None:
        nn.Module.__init__(self)  # its own projections and norms; llama.Attention's forward
        self.layer = layer
        self.window = cfg.layer_window(layer)
        self.n_head, self.n_kv, self.head_dim = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
        self.scale = float(cfg.query_pre_attn_scalar or cfg.head_dim) ** -0.5
        self.softcap = cfg.attn_logit_softcapping
        h, b, D = cfg.hidden_size, cfg.attention_bias, cfg.head_dim
        self.q_proj = nn.Linear(h, self.n_head * D, bias=b)
        self.k_proj = nn.Linear(h, self.n_kv * D, bias=b)
        self.v_proj = nn.Linear(h, self.n_kv * D, bias=b)
        self.o_proj = nn.Linear(self.n_head * D, h, bias=b)
        self.q_norm: RMSNorm | None = RMSNorm(D, cfg.norm_eps) if cfg.qk_norm else None
        self.k_norm: RMSNorm | None = RMSNorm(D, cfg.norm_eps) if cfg.qk_norm else None
        self.qkv_proj: nn.Module | None = None

    def rope_qk(
        self, q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Gemma 3's per-head q/k RMSNorm (none in Gemma 2), then RoPE."""
        if self.q_norm is not None and self.k_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        return super().rope_qk(q, k, cos, sin)

    def mix(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None
    ) -> torch.Tensor:
        """query_pre_attn_scalar ** -0.5 scale, and Gemma 2's tanh cap on the scores."""
        return attend_capped(q, k, v, mask, self.scale, self.softcap, self.prompt_attention)


class MLP(nn.Module):
    """GeGLU: down(gelu_tanh(gate) * up)."""

    #: act(gate) * up in one pass, given by the engine (models/common.py)
    gated_activation: GatedActivation | None = None

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        h, i = cfg.hidden_size, cfg.intermediate_size
        self.gate_proj = nn.Linear(h, i, bias=False)
        self.up_proj = nn.Linear(h, i, bias=False)
        self.down_proj = nn.Linear(i, h, bias=False)
        self.gate_up_proj: nn.Module | None = None

    def fuse(self, transposed: bool = False) -> None:
        if self.gate_up_proj is None:
            self.gate_up_proj = fuse_linears([self.gate_proj, self.up_proj], transposed)
            del self.gate_proj, self.up_proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gate_up_proj is not None:  # (B, T, 2I) -> (B, T, I)
            return self.down_proj(gated(self.gate_up_proj(x), "gelu_tanh", self.gated_activation))
        gate, up = self.gate_proj(x), self.up_proj(x)
        return self.down_proj(F.gelu(gate, approximate="tanh") * up)


class DecoderLayer(nn.Module):
    def __init__(self, cfg: ModelConfig, layer: int) -> None:
        super().__init__()
        c, eps = cfg.hidden_size, cfg.norm_eps
        self.input_layernorm = RMSNorm(c, eps)
        self.self_attn = Attention(cfg, layer)
        self.post_attention_layernorm = RMSNorm(c, eps)
        self.pre_feedforward_layernorm = RMSNorm(c, eps)
        self.mlp = MLP(cfg)
        self.post_feedforward_layernorm = RMSNorm(c, eps)

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        start: int,
        cache: KVCache | None,
        mask: torch.Tensor | None,
    ) -> torch.Tensor:
        cos, sin = rope
        h = self.self_attn(self.input_layernorm(x), cos, sin, start, cache, mask)
        x = x + self.post_attention_layernorm(h)
        h = self.mlp(self.pre_feedforward_layernorm(x))
        return x + self.post_feedforward_layernorm(h)


class Body(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.embed_tokens: nn.Module = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(cfg, i) for i in range(cfg.num_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.norm_eps)

    def decoder_layers(self) -> list[DecoderLayer]:
        return typed_modules(self.layers, DecoderLayer)


class RopeTable:
    """Llama's grown-on-demand, sign-folded cos/sin table for one (theta, scaling)."""

    def __init__(self, head_dim: int, theta: float, scaling: dict[str, Any] | None) -> None:
        self.head_dim, self.theta, self.scaling = head_dim, theta, scaling
        self._t: tuple[torch.Tensor, torch.Tensor] | None = None

    def get(
        self, upto: int, device: torch.device, dtype: torch.dtype
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self._t is None or self._t[0].shape[0] < upto or self._t[0].device != device:
            n = 1 << (max(upto, 256) - 1).bit_length()
            inv = llama.scaled_inv_freq(self.head_dim, self.theta, self.scaling).to(device)
            freqs = torch.outer(torch.arange(n, device=device, dtype=torch.float32), inv)
            emb = torch.cat((freqs, freqs), dim=-1)
            sin = emb.sin()
            sin[:, : sin.shape[1] // 2].neg_()
            self._t = (emb.cos(), sin)
        cos, sin = self._t
        if cos.dtype != dtype:
            self._t = cos, sin = cos.to(dtype), sin.to(dtype)
        return cos, sin


class Gemma(CausalLM):
    """Gemma 2 / Gemma 3 text model. forward(idx (B, T)) -> logits (B, T or 1, vocab)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.config = cfg
        self.model = Body(cfg)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        if cfg.tie_word_embeddings:
            weight = self.model.embed_tokens.weight
            assert isinstance(weight, nn.Parameter)
            self.lm_head.weight = weight
        self.embed_scale = math.sqrt(cfg.hidden_size)
        self._global = RopeTable(cfg.head_dim, cfg.rope_theta, cfg.rope_scaling)
        local = cfg.rope_local_theta
        self._local = self._global if local is None else RopeTable(cfg.head_dim, local, None)

    def _table(self, window: int | None) -> RopeTable:
        return self._local if window is not None else self._global

    def embed(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.model.embed_tokens(idx)
        return x * torch.tensor(self.embed_scale, dtype=x.dtype)

    def forward(
        self,
        idx: torch.Tensor,
        start: int = 0,
        cache: KVCache | None = None,
        positions: torch.Tensor | None = None,
        key_padding: torch.Tensor | None = None,
        last_only: bool = False,
    ) -> torch.Tensor:
        B, T = idx.shape
        if cache is not None:
            cache.check(start, T)
        x = self.embed(idx)
        layers = self.model.decoder_layers()
        windows = {layer.self_attn.window for layer in layers}
        ropes: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        masks = {w: build_window_mask(start, T, idx.device, key_padding, w) for w in windows}
        for w in windows:
            table = self._table(w)
            if id(table) in ropes:
                continue
            if positions is None:
                cos, sin = table.get(start + T, idx.device, x.dtype)
                ropes[id(table)] = cos[start : start + T, None], sin[start : start + T, None]
            else:
                cos, sin = table.get(int(positions.max()) + 1, idx.device, x.dtype)
                ropes[id(table)] = cos[positions][:, :, None], sin[positions][:, :, None]
        for layer in layers:
            w = layer.self_attn.window
            x = layer(x, ropes[id(self._table(w))], start, cache, masks[w])
        if cache is not None:
            cache.advance(start, T)
        if last_only:
            x = x[:, -1:]
        logits = self.lm_head(self.model.norm(x))
        cap = self.config.final_logit_softcapping
        if cap is not None:
            logits = torch.tanh(logits / cap) * cap
        return logits

    def fuse_projections(self, transposed: bool = False) -> None:
        for layer in self.model.decoder_layers():
            layer.self_attn.fuse(transposed)
            layer.mlp.fuse(transposed)

    def get_input_embeddings(self) -> nn.Module:
        return self.model.embed_tokens

    def set_input_embeddings(self, module: nn.Module) -> None:
        self.model.embed_tokens = module

    def native_spec(self) -> NativeSpec:
        layers = []
        for layer in self.model.decoder_layers():
            attn, mlp = layer.self_attn, layer.mlp
            if attn.qkv_proj is None or mlp.gate_up_proj is None:
                raise NativeUnsupported("q/k/v or gate/up are not fused")
            layers.append(
                NativeLayer(
                    norm1_weight=_plus_one(layer.input_layernorm),
                    norm1_bias=None,
                    norm2_weight=_plus_one(layer.pre_feedforward_layernorm),
                    norm2_bias=None,
                    qkv=attn.qkv_proj,
                    o=attn.o_proj,
                    up=mlp.gate_up_proj,
                    down=mlp.down_proj,
                    q_norm_weight=_plus_one(attn.q_norm) if attn.q_norm else None,
                    k_norm_weight=_plus_one(attn.k_norm) if attn.k_norm else None,
                    post_attn_norm_weight=_plus_one(layer.post_attention_layernorm),
                    post_mlp_norm_weight=_plus_one(layer.post_feedforward_layernorm),
                    window=attn.window,
                    local_rope=attn.window is not None,
                )
            )

        def embed(idx: torch.Tensor, position: Position) -> torch.Tensor:
            return self.embed(idx).view(-1)

        def rope_of(table: RopeTable) -> Any:
            def rope(position: Position, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
                cos, sin = table.get(upto(position), torch.device("cpu"), dtype)
                return cos[position].float(), sin[position].float()

            return rope

        cfg = self.config
        return NativeSpec(
            norm="rms",
            activation="gelu_tanh_gated",
            num_kv_heads=cfg.num_kv_heads,
            layers=layers,
            final_norm_weight=_plus_one(self.model.norm),
            final_norm_bias=None,
            head=self.lm_head,
            embed=embed,
            rope=rope_of(self._global),
            rope_local=rope_of(self._local) if self._local is not self._global else None,
            attn_scale=float(cfg.query_pre_attn_scalar or cfg.head_dim) ** -0.5,
            attn_softcap=cfg.attn_logit_softcapping,
            final_softcap=cfg.final_logit_softcapping,
        )

    @staticmethod
    def convert_weight(
        name: str, tensor: torch.Tensor, cfg: ModelConfig
    ) -> tuple[str, torch.Tensor] | None:
        """HF names are ours; a multimodal `gemma3` checkpoint's text weights live under
        `language_model.` (4.x: `language_model.model.`); its vision tower is skipped."""
        if name.endswith("rotary_emb.inv_freq"):
            return None
        for prefix in ("model.language_model.", "language_model.model."):
            if name.startswith(prefix):
                return "model." + name[len(prefix) :], tensor
        if name.startswith("language_model.lm_head."):
            return name[len("language_model.") :], tensor
        if name.startswith(("model.vision_tower.", "vision_tower.", "model.multi_modal_projector.",
                            "multi_modal_projector.")):  # fmt: skip
            return None
        return name, tensor


# --------------------------------------------------------------------------- GGUF

#: general.architecture -> HF model_type
_GGUF_TYPES = {"gemma2": "gemma2", "gemma3": "gemma3_text"}
_GGUF_LAYER = {
    "attn_norm.weight": "input_layernorm.weight",
    "post_attention_norm.weight": "post_attention_layernorm.weight",
    "ffn_norm.weight": "pre_feedforward_layernorm.weight",
    "post_ffw_norm.weight": "post_feedforward_layernorm.weight",
    "attn_q_norm.weight": "self_attn.q_norm.weight",
    "attn_k_norm.weight": "self_attn.k_norm.weight",
    "attn_q.weight": "self_attn.q_proj.weight",
    "attn_k.weight": "self_attn.k_proj.weight",
    "attn_v.weight": "self_attn.v_proj.weight",
    "attn_output.weight": "self_attn.o_proj.weight",
    "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
}
_GGUF_TOP = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}


def gguf_tensor_name(name: str) -> str | None:
    """llama.cpp's Gemma 2/3 tensor names -> HF names (llama.cpp keeps HF's q/k row order)."""
    if name in _GGUF_TOP:
        return _GGUF_TOP[name]
    parts = name.split(".", 2)
    if len(parts) == 3 and parts[0] == "blk" and parts[2] in _GGUF_LAYER:
        return f"model.layers.{parts[1]}.{_GGUF_LAYER[parts[2]]}"
    return None


def gguf_adjust(hf_name: str, t: torch.Tensor) -> torch.Tensor:
    """llama.cpp's converter stores every Gemma norm weight as 1 + w (ggml's RMSNorm multiplies
    by the weight); our RMSNorm adds the 1 itself."""
    return t - 1.0 if hf_name.endswith("norm.weight") else t


def gguf_config(meta: GGUFMetadata) -> dict[str, Any]:
    """A `gemma2` / `gemma3` GGUF's config.json (llama.cpp's metadata and its built-in facts:
    Gemma 3's local RoPE base 10000 and 5:1 local/global pattern, Gemma 2's 1:1; the 27B
    models scale attention by hidden / heads instead of head_dim)."""
    path = meta.path
    embd = meta.tensor_shape("token_embd.weight")
    if embd is None:
        raise ModelLoadError(f"{path}: no token_embd.weight tensor; the file is incomplete")
    gemma3 = meta.architecture == "gemma3"
    hidden = int(meta.require("embedding_length"))
    heads = int(meta.require("attention.head_count"))
    layers = int(meta.require("block_count"))
    if heads <= 0 or hidden <= 0 or layers <= 0:
        raise ModelLoadError(f"{path}: head count {heads} / width {hidden} are invalid")
    head_dim = int(meta.get("attention.key_length", 0) or hidden // heads)
    big = layers == (62 if gemma3 else 46)  # the 27B models
    cfg: dict[str, Any] = {
        "model_type": _GGUF_TYPES[meta.architecture],
        "architectures": ["Gemma3ForCausalLM" if gemma3 else "Gemma2ForCausalLM"],
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": int(meta.get("attention.head_count_kv", heads) or heads),
        "head_dim": head_dim,
        "intermediate_size": int(meta.require("feed_forward_length")),
        "max_position_embeddings": int(meta.get("context_length", 8192)),
        "rms_norm_eps": float(meta.get("attention.layer_norm_rms_epsilon", 1e-6)),
        "rope_theta": float(meta.get("rope.freq_base", 1_000_000.0 if gemma3 else 10000.0)),
        "vocab_size": int(embd[0]),
        "tie_word_embeddings": meta.tensor_shape("output.weight") is None,
        "query_pre_attn_scalar": hidden // heads if big else head_dim,
        "sliding_window": meta.get("attention.sliding_window"),
        "attn_logit_softcapping": meta.get("attn_logit_softcapping"),
        "final_logit_softcapping": meta.get("final_logit_softcapping"),
    }
    if gemma3:
        cfg["rope_local_base_freq"] = 10000.0
        kind = meta.get("rope.scaling.type")
        factor = float(meta.get("rope.scaling.factor") or 1.0)
        if kind == "linear" and factor != 1.0:
            cfg["rope_scaling"] = {"rope_type": "linear", "factor": factor}
        elif kind not in (None, "none", "linear"):
            raise UnsupportedModelError(
                f"{path}: rope scaling {kind!r} is not supported; supported: linear"
            )
    pattern = meta.raw(f"{meta.architecture}.attention.sliding_window_pattern")
    if pattern is not None and not isinstance(pattern, (int, float)):
        flags = [bool(x) for x in pattern]  # per layer: True = sliding
        cfg["layer_types"] = ["sliding_attention" if f else "full_attention" for f in flags]
    elif pattern is not None:
        cfg["sliding_window_pattern"] = int(pattern)
    return cfg


def gguf_expected_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    h, inter, v, D = cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size, cfg.head_dim
    q, kv = cfg.num_heads * D, cfg.num_kv_heads * D
    out: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (v, h), "model.norm.weight": (h,)}
    if not cfg.tie_word_embeddings:
        out["lm_head.weight"] = (v, h)
    layer: dict[str, tuple[int, ...]] = {
        "input_layernorm.weight": (h,),
        "post_attention_layernorm.weight": (h,),
        "pre_feedforward_layernorm.weight": (h,),
        "post_feedforward_layernorm.weight": (h,),
        "self_attn.q_proj.weight": (q, h),
        "self_attn.k_proj.weight": (kv, h),
        "self_attn.v_proj.weight": (kv, h),
        "self_attn.o_proj.weight": (h, q),
        "mlp.gate_proj.weight": (inter, h),
        "mlp.up_proj.weight": (inter, h),
        "mlp.down_proj.weight": (h, inter),
    }
    if cfg.qk_norm:
        layer |= {"self_attn.q_norm.weight": (D,), "self_attn.k_norm.weight": (D,)}
    for i in range(cfg.num_layers):
        out |= {f"model.layers.{i}.{k}": s for k, s in layer.items()}
    return out


GGUF = GGUFFormat(
    model_types=_GGUF_TYPES,
    config=gguf_config,
    tensor_name=gguf_tensor_name,
    expected_shapes=gguf_expected_shapes,
    adjust=gguf_adjust,
    extra_eos=("<end_of_turn>",),
)
