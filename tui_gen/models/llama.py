"""Llama family (Llama, Mistral, Qwen2, SmolLM2, TinyLlama): RMSNorm, RoPE, GQA, SwiGLU.

Parameter names are Hugging Face's LlamaForCausalLM names, so checkpoints load without renaming.
Qwen2 differs only by a bias on q/k/v (`attention_bias`). Mistral's (and Qwen2's, with
`use_sliding_window`) sliding window is applied per layer (`ModelConfig.layer_window`).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tui_gen.errors import UnsupportedModelError
from tui_gen.models.common import GatedActivation, PromptAttention, attend, gated, build_window_mask
from tui_gen.models.config import ModelConfig, dtype_of, first, sliding_from_hf, token_ids
from tui_gen.models.family import (
    CausalLM,
    NativeLayer,
    NativeSpec,
    NativeUnsupported,
    Position,
    typed_modules,
    upto,
)
from tui_gen.models.kv_cache import KVCache
from tui_gen.models.linear import fuse_linears


def config_from_hf(raw: dict[str, Any], model_type: str) -> ModelConfig:
    """Llama, Mistral and Qwen2 config.json (transformers 4.x and 5.x spellings) -> ModelConfig."""
    hidden = int(raw["hidden_size"])
    heads = int(raw["num_attention_heads"])
    kv_heads = int(first(raw, "num_key_value_heads", default=heads))
    head_dim = first(raw, "head_dim")
    rope = raw.get("rope_parameters") or {}
    rope_theta = float(first(raw, "rope_theta", default=rope.get("rope_theta", 10000.0)))
    scaling = raw.get("rope_scaling") or None
    if scaling is None and rope.get("rope_type") not in (None, "default"):
        scaling = dict(rope)
    if scaling is not None:
        scaling = dict(scaling)
        kind = scaling.get("rope_type") or scaling.get("type")
        if kind in (None, "default"):
            scaling = None
        elif kind not in ("linear", "llama3"):
            raise UnsupportedModelError(
                f"config.json: rope scaling {kind!r} is not supported; supported: linear, llama3"
            )
        else:
            scaling["rope_type"] = kind
    return ModelConfig(
        model_type=model_type,
        arch="llama",
        vocab_size=int(raw["vocab_size"]),
        hidden_size=hidden,
        num_layers=int(raw["num_hidden_layers"]),
        num_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=int(head_dim) if head_dim else hidden // heads,
        intermediate_size=int(raw["intermediate_size"]),
        max_position_embeddings=int(first(raw, "max_position_embeddings", default=2048)),
        norm_eps=float(first(raw, "rms_norm_eps", default=1e-6)),
        tie_word_embeddings=bool(raw.get("tie_word_embeddings", False)),
        rope_theta=rope_theta,
        rope_scaling=scaling,
        attention_bias=bool(raw.get("attention_bias", model_type == "qwen2")),
        mlp_bias=bool(raw.get("mlp_bias", False)),
        dtype=dtype_of(raw),
        **token_ids(raw),
        **sliding_from_hf(raw, int(raw["num_hidden_layers"])),
    )


def o_proj_bias(cfg: ModelConfig) -> bool:
    """Llama puts `attention_bias` on o_proj too; Qwen2 biases only q/k/v."""
    return cfg.attention_bias and cfg.model_type != "qwen2"


def rope_inv_freq(cfg: ModelConfig) -> torch.Tensor:
    """Inverse frequencies (head_dim/2,), with `linear` or `llama3` scaling applied."""
    return scaled_inv_freq(cfg.head_dim, cfg.rope_theta, cfg.rope_scaling)


def scaled_inv_freq(d: int, theta: float, s: dict[str, Any] | None) -> torch.Tensor:
    """rope_inv_freq from its three inputs (GGUF reading recovers `s` from a frequency table)."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, d, 2, dtype=torch.int64).float() / d))
    if not s:
        return inv_freq
    factor = float(s["factor"])
    if s["rope_type"] == "linear":
        return inv_freq / factor
    # llama3: leave high frequencies alone, divide low ones by `factor`, blend in between.
    low, high = float(s.get("low_freq_factor", 1.0)), float(s.get("high_freq_factor", 4.0))
    old_ctx = float(s.get("original_max_position_embeddings", 8192))
    low_wavelen, high_wavelen = old_ctx / low, old_ctx / high
    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > low_wavelen, inv_freq / factor, inv_freq)
    smooth = (old_ctx / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = (wavelen >= high_wavelen) & (wavelen <= low_wavelen)
    return torch.where(medium, smoothed, scaled)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """(x1, x2) -> (x2, x1); the sign of x2 lives in the sin table (see Llama.rope_table)."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((x2, x1), dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin_signed: torch.Tensor) -> torch.Tensor:
    """x * cos + rotate_half(x) * sin with rotate_half's minus folded into sin (bitwise equal)."""
    return x * cos + rotate_half(x) * sin_signed


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.float32:
            return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)
        # Half precision: normalise in float32 like the reference implementation does.
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * xf.to(x.dtype)


class Attention(nn.Module):
    #: a faster attention for plain causal prompts, given by the engine (models/common.py)
    prompt_attention: PromptAttention | None = None

    def __init__(self, cfg: ModelConfig, layer: int) -> None:
        super().__init__()
        self.layer = layer
        self.window = cfg.layer_window(layer)  # None: attends to every position
        self.n_head, self.n_kv, self.head_dim = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
        h, qb = cfg.hidden_size, cfg.attention_bias
        self.q_proj = nn.Linear(h, self.n_head * self.head_dim, bias=qb)
        self.k_proj = nn.Linear(h, self.n_kv * self.head_dim, bias=qb)
        self.v_proj = nn.Linear(h, self.n_kv * self.head_dim, bias=qb)
        self.o_proj = nn.Linear(self.n_head * self.head_dim, h, bias=o_proj_bias(cfg))
        #: q, k and v in one matrix after fuse() (checkpoints hold them apart)
        self.qkv_proj: nn.Module | None = None

    def fuse(self, transposed: bool = False) -> None:
        """One (H+2KV)*D x C projection instead of three: one kernel call per step, not three."""
        if self.qkv_proj is None:
            self.qkv_proj = fuse_linears([self.q_proj, self.k_proj, self.v_proj], transposed)
            del self.q_proj, self.k_proj, self.v_proj

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        start: int,
        cache: KVCache | None,
        mask: torch.Tensor | None,
    ) -> torch.Tensor:
        """The one attention forward of every Llama-like family; a family changes what differs
        by overriding `rope_qk` (norms on q/k before RoPE) or `mix` (the scores' scale, caps)."""
        B, T, _ = x.shape
        H, KV, D = self.n_head, self.n_kv, self.head_dim
        if self.qkv_proj is not None:
            qkv = self.qkv_proj(x)  # (B, T, (H+2KV)*D)
        else:
            qkv = torch.cat((self.q_proj(x), self.k_proj(x), self.v_proj(x)), dim=-1)
        qkv = qkv.view(B, T, H + 2 * KV, D)
        q, k = self.rope_qk(qkv[:, :, :H], qkv[:, :, H : H + KV], cos, sin)
        q, k = q.transpose(1, 2), k.transpose(1, 2)  # (B, H, T, D), (B, KV, T, D)
        v = qkv[:, :, H + KV :].transpose(1, 2)  # (B, KV, T, D)
        if cache is not None:
            k, v = cache.update(self.layer, start, k, v)  # (B, KV, start+T, D)
        y = self.mix(q, k, v, mask)  # (B, H, T, D)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, H * D))

    def rope_qk(
        self, q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """RoPE on q (B, T, H, D) and k (B, T, KV, D); cos: (B|1, T, 1, D)."""
        return apply_rope(q, cos, sin), apply_rope(k, cos, sin)

    def mix(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None
    ) -> torch.Tensor:
        """Scaled dot-product attention (B, H, T, D) over the cached keys and values."""
        return attend(
            q, k, v, mask, causal=mask is None and q.shape[2] > 1, kernel=self.prompt_attention
        )


class MLP(nn.Module):
    #: act(gate) * up in one pass, given by the engine (models/common.py)
    gated_activation: GatedActivation | None = None

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        h, i, b = cfg.hidden_size, cfg.intermediate_size, cfg.mlp_bias
        self.gate_proj = nn.Linear(h, i, bias=b)
        self.up_proj = nn.Linear(h, i, bias=b)
        self.down_proj = nn.Linear(i, h, bias=b)
        #: gate and up in one (2I x C) matrix after fuse()
        self.gate_up_proj: nn.Module | None = None

    def fuse(self, transposed: bool = False) -> None:
        if self.gate_up_proj is None:
            self.gate_up_proj = fuse_linears([self.gate_proj, self.up_proj], transposed)
            del self.gate_proj, self.up_proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gate_up_proj is not None:  # (B, T, 2I) -> (B, T, I)
            return self.down_proj(gated(self.gate_up_proj(x), "silu", self.gated_activation))
        gate, up = self.gate_proj(x), self.up_proj(x)
        return self.down_proj(F.silu(gate).mul_(up))


class DecoderLayer(nn.Module):
    def __init__(self, cfg: ModelConfig, layer: int) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.norm_eps)
        self.self_attn = Attention(cfg, layer)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.norm_eps)
        self.mlp = MLP(cfg)

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        start: int,
        cache: KVCache | None,
        mask: torch.Tensor | None,
    ) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, start, cache, mask)
        return x + self.mlp(self.post_attention_layernorm(x))


class Body(nn.Module):
    """The decoder (HF's `model.*` names): embedding, layers, final norm."""

    def __init__(self, cfg: ModelConfig, layer_class: type[DecoderLayer] = DecoderLayer) -> None:
        super().__init__()
        #: token embedding; the decode layout may swap it for a TransposedEmbedding
        self.embed_tokens: nn.Module = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(layer_class(cfg, i) for i in range(cfg.num_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.norm_eps)

    def decoder_layers(self) -> list[DecoderLayer]:
        return typed_modules(self.layers, DecoderLayer)


class Llama(CausalLM):
    """Llama-family language model. forward(idx (B, T)) -> logits (B, T or 1, vocab)."""

    #: the block; Llama-like families (models/granite.py, ...) subclass it
    layer_class: type[DecoderLayer] = DecoderLayer

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.config = cfg
        self.model = Body(cfg, self.layer_class)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        if cfg.tie_word_embeddings:
            weight = self.model.embed_tokens.weight
            assert isinstance(weight, nn.Parameter)
            self.lm_head.weight = weight
        self._rope: tuple[torch.Tensor, torch.Tensor] | None = None

    def rope_table(
        self, upto: int, device: torch.device, dtype: torch.dtype
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """cos/sin (n >= upto, head_dim), sign-folded (see `apply_rope`), grown on demand so a
        128K-context model costs nothing."""
        if self._rope is None or self._rope[0].shape[0] < upto or self._rope[0].device != device:
            n = max(upto, 256)
            n = 1 << (n - 1).bit_length()
            inv_freq = rope_inv_freq(self.config).to(device)
            freqs = torch.outer(torch.arange(n, device=device, dtype=torch.float32), inv_freq)
            emb = torch.cat((freqs, freqs), dim=-1)  # (n, D)
            sin = emb.sin()
            sin[:, : sin.shape[1] // 2].neg_()  # rotate_half's minus, folded in once
            self._rope = (emb.cos(), sin)
        cos, sin = self._rope
        if cos.dtype != dtype:
            self._rope = cos, sin = cos.to(dtype), sin.to(dtype)
        return cos, sin

    def forward(
        self,
        idx: torch.Tensor,
        start: int = 0,
        cache: KVCache | None = None,
        positions: torch.Tensor | None = None,
        key_padding: torch.Tensor | None = None,
        last_only: bool = False,
    ) -> torch.Tensor:
        """idx (B, T) token ids at cache positions [start, start+T).

        `positions` (B, T) overrides the rotary positions (left-padded batches); `key_padding`
        (B, S) marks real keys; `last_only` computes the last position's logits only.
        """
        B, T = idx.shape
        if cache is not None:
            cache.check(start, T)
        x = self.embed(idx)  # (B, T, C)
        if positions is None:
            cos, sin = self.rope_table(start + T, idx.device, x.dtype)
            cos, sin = cos[start : start + T, None], sin[start : start + T, None]  # (T, 1, D)
        else:
            cos, sin = self.rope_table(int(positions.max()) + 1, idx.device, x.dtype)
            cos, sin = cos[positions][:, :, None], sin[positions][:, :, None]  # (B, T, 1, D)
        masks = {
            w: build_window_mask(start, T, idx.device, key_padding, w)
            for w in {layer.self_attn.window for layer in self.model.decoder_layers()}
        }
        for layer in self.model.decoder_layers():
            x = layer(x, cos, sin, start, cache, masks[layer.self_attn.window])
        if cache is not None:
            cache.advance(start, T)
        if last_only:
            x = x[:, -1:]
        return self.logits(x)  # (B, T|1, vocab)

    def embed(self, idx: torch.Tensor) -> torch.Tensor:
        """Layer 0's input for token ids (B, T) -> (B, T, C); Granite scales it."""
        return self.model.embed_tokens(idx)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The last layer's output (B, T, C) -> logits (B, T, vocab); Granite scales them."""
        return self.lm_head(self.model.norm(x))

    def fuse_projections(self, transposed: bool = False) -> None:
        """Fuse q/k/v and gate/up in every layer (see engine/layout.py); idempotent."""
        for layer in self.model.decoder_layers():
            layer.self_attn.fuse(transposed)
            layer.mlp.fuse(transposed)

    def get_input_embeddings(self) -> nn.Module:
        return self.model.embed_tokens

    def set_input_embeddings(self, module: nn.Module) -> None:
        self.model.embed_tokens = module

    def native_spec(self) -> NativeSpec:
        layers = [NativeLayer(**self._native_layer(layer)) for layer in self.model.decoder_layers()]

        def embed(idx: torch.Tensor, position: Position) -> torch.Tensor:
            return self.embed(idx).view(-1)

        def rope(position: Position, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
            cos, sin = self.rope_table(upto(position), torch.device("cpu"), dtype)  # (n, D)
            return cos[position].float(), sin[position].float()  # this position's row(s)

        return NativeSpec(
            norm="rms",
            activation="silu_gated",
            num_kv_heads=self.config.num_kv_heads,
            layers=layers,
            final_norm_weight=self.model.norm.weight,
            final_norm_bias=None,
            head=self.lm_head,
            embed=embed,
            rope=rope,
        )

    def _native_layer(self, layer: DecoderLayer) -> dict[str, Any]:
        """A layer's NativeLayer fields: its fused matrices and window, Llama's pre-norms, then
        what a subclass adds (`_native_extras`); OLMo-2 replaces the norms."""
        return self._native_matrices(layer) | self._native_norms(layer) | self._native_extras(layer)

    @staticmethod
    def _native_matrices(layer: DecoderLayer) -> dict[str, Any]:
        attn, mlp = layer.self_attn, layer.mlp
        if attn.qkv_proj is None or mlp.gate_up_proj is None:
            raise NativeUnsupported("q/k/v or gate/up are not fused")
        return {"qkv": attn.qkv_proj, "o": attn.o_proj, "up": mlp.gate_up_proj,
                "down": mlp.down_proj, "window": attn.window}  # fmt: skip

    @staticmethod
    def _native_norms(layer: DecoderLayer) -> dict[str, Any]:
        return {"norm1_weight": layer.input_layernorm.weight, "norm1_bias": None,
                "norm2_weight": layer.post_attention_layernorm.weight, "norm2_bias": None}  # fmt: skip

    def _native_extras(self, layer: DecoderLayer) -> dict[str, Any]:
        """More NativeLayer fields a subclass's layers need (Qwen3: q/k norms)."""
        return {}

    @staticmethod
    def convert_weight(
        name: str, tensor: torch.Tensor, cfg: ModelConfig
    ) -> tuple[str, torch.Tensor] | None:
        """Map a checkpoint tensor to (our name, tensor), or None to skip it."""
        if name.endswith("rotary_emb.inv_freq"):
            return None
        return name, tensor
