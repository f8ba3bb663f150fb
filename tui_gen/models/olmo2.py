"""OLMo-2: the Llama block with q/k RMSNorm over the whole projection and norms after attention
and MLP instead of before (no pre-norm).

HF names: ``self_attn.q_norm``/``k_norm`` (width H*D and KV*D), ``post_attention_layernorm``
and ``post_feedforward_layernorm``; everything else is Llama's, so the rest is reused.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from tui_gen.models import llama, llama_like_gguf
from tui_gen.models.config import ModelConfig
from tui_gen.models.kv_cache import KVCache


def config_from_hf(raw: dict[str, Any], model_type: str) -> ModelConfig:
    """OLMo-2's config.json: Llama's keys (q/k norms and post-norms are implied by the type).

    OLMo-2 has no sliding window: transformers' Olmo2 attends to every position whatever
    `sliding_window` a config.json carries, so that key is ignored here too."""
    dense = {k: v for k, v in raw.items() if k not in ("sliding_window", "layer_types")}
    return dataclasses.replace(llama.config_from_hf(dense, model_type), arch="olmo2")


class Attention(llama.Attention):
    """Llama attention with RMSNorm over the full q and k projections before RoPE."""

    def __init__(self, cfg: ModelConfig, layer: int) -> None:
        super().__init__(cfg, layer)
        self.q_norm = llama.RMSNorm(cfg.num_heads * cfg.head_dim, cfg.norm_eps)
        self.k_norm = llama.RMSNorm(cfg.num_kv_heads * cfg.head_dim, cfg.norm_eps)

    def rope_qk(
        self, q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """RMSNorm over the whole q and k projections (all heads at once), then RoPE."""
        B, T, H, D = q.shape
        q = self.q_norm(q.reshape(B, T, H * D)).view(B, T, H, D)
        k = self.k_norm(k.reshape(B, T, -1)).view(B, T, -1, D)
        return super().rope_qk(q, k, cos, sin)


class DecoderLayer(llama.DecoderLayer):
    """x + norm(attn(x)), then x + norm(mlp(x)): the norms come after, none before."""

    def __init__(self, cfg: ModelConfig, layer: int) -> None:
        super().__init__(cfg, layer)
        del self.input_layernorm
        self.self_attn = Attention(cfg, layer)
        self.post_feedforward_layernorm = llama.RMSNorm(cfg.hidden_size, cfg.norm_eps)

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        start: int,
        cache: KVCache | None,
        mask: torch.Tensor | None,
    ) -> torch.Tensor:
        x = x + self.post_attention_layernorm(self.self_attn(x, cos, sin, start, cache, mask))
        return x + self.post_feedforward_layernorm(self.mlp(x))


class Olmo2(llama.Llama):
    layer_class = DecoderLayer

    @staticmethod
    def _native_norms(layer: llama.DecoderLayer) -> dict[str, Any]:
        """No pre-norms; the post-norms and the whole-projection q/k norms (decode.c tells the
        two q/k norm kinds apart by their width)."""
        attn = layer.self_attn
        assert isinstance(layer, DecoderLayer) and isinstance(attn, Attention)
        return {"norm1_weight": None, "norm1_bias": None, "norm2_weight": None,
                "norm2_bias": None, "q_norm_weight": attn.q_norm.weight,
                "k_norm_weight": attn.k_norm.weight,
                "post_attn_norm_weight": layer.post_attention_layernorm.weight,
                "post_mlp_norm_weight": layer.post_feedforward_layernorm.weight}  # fmt: skip


def _gguf_shapes(cfg: ModelConfig, out: dict[str, tuple[int, ...]]) -> None:
    h, q, kv = cfg.hidden_size, cfg.num_heads * cfg.head_dim, cfg.num_kv_heads * cfg.head_dim
    for i in range(cfg.num_layers):
        p = f"model.layers.{i}."
        del out[p + "input_layernorm.weight"]
        out |= {p + "self_attn.q_norm.weight": (q,), p + "self_attn.k_norm.weight": (kv,),
                p + "post_feedforward_layernorm.weight": (h,)}  # fmt: skip


#: llama.cpp's "olmo2" GGUF files: Llama's names plus the q/k norms and post-norms
GGUF = llama_like_gguf.llama_like_format(
    "olmo2",
    "Olmo2ForCausalLM",
    permuted=False,
    layer_names={
        "attn_q_norm.weight": "self_attn.q_norm.weight",
        "attn_k_norm.weight": "self_attn.k_norm.weight",
        "post_attention_norm.weight": "post_attention_layernorm.weight",
        "post_ffw_norm.weight": "post_feedforward_layernorm.weight",
    },
    shapes=_gguf_shapes,
)
