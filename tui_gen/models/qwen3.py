"""Qwen3 (dense): the Llama block plus an RMSNorm over every head of q and k before RoPE.

Qwen3 checkpoints give `head_dim` explicitly (it need not be hidden / heads), have no q/k/v
bias, and may declare sliding-window layers (`use_sliding_window` + `max_window_layers` or
`layer_types`), which the shared per-layer window masks apply.
"""

from __future__ import annotations

from typing import Any

import torch
from tui_gen.models import llama, llama_gguf
from tui_gen.models.common import attend
from tui_gen.models.config import ModelConfig
from tui_gen.models.family import GGUFFormat, GGUFMetadata
from tui_gen.models.kv_cache import KVCache


def config_from_hf(raw: dict[str, Any], model_type: str) -> ModelConfig:
    """Qwen3 config.json -> ModelConfig (the Llama reading, plus q/k norm, no bias default)."""
    raw = {"attention_bias": False, **raw}
    cfg = llama.config_from_hf(raw, model_type)
    cfg.arch = "qwen3"
    cfg.qk_norm = True
    return cfg


class Attention(llama.Attention):
    """Llama attention with q_norm/k_norm (HF names) over each head's head_dim features."""

    def __init__(self, cfg: ModelConfig, layer: int) -> None:
        super().__init__(cfg, layer)
        self.q_norm = llama.RMSNorm(cfg.head_dim, cfg.norm_eps)
        self.k_norm = llama.RMSNorm(cfg.head_dim, cfg.norm_eps)

    def rope_qk(
        self, q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """RMSNorm over each head of q and k, then RoPE."""
        return super().rope_qk(self.q_norm(q), self.k_norm(k), cos, sin)


class Qwen3(llama.Llama):
    """Qwen3 language model: Llama's body with Qwen3 attention in every layer."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__(cfg)
        for i, layer in enumerate(self.model.decoder_layers()):
            layer.self_attn = Attention(cfg, i)

    def _native_extras(self, layer: llama.DecoderLayer) -> dict[str, Any]:
        attn = layer.self_attn
        assert isinstance(attn, Attention)
        return {"q_norm_weight": attn.q_norm.weight, "k_norm_weight": attn.k_norm.weight}


# --------------------------------------------------------------------------- GGUF

_QK_NORMS = {"attn_q_norm.weight": "self_attn.q_norm.weight",
             "attn_k_norm.weight": "self_attn.k_norm.weight"}  # fmt: skip


def gguf_tensor_name(name: str) -> str | None:
    """llama.cpp's Qwen3 names: Llama's plus attn_q_norm/attn_k_norm (no q/k row permutation)."""
    parts = name.split(".", 2)
    if len(parts) == 3 and parts[0] == "blk" and parts[2] in _QK_NORMS:
        return f"model.layers.{parts[1]}.{_QK_NORMS[parts[2]]}"
    return llama_gguf.tensor_name(name)


def gguf_config(meta: GGUFMetadata) -> dict[str, Any]:
    """A `qwen3` GGUF's config.json: the Llama reading under Qwen3's names."""
    return llama_gguf.config_from_gguf(meta) | {
        "model_type": "qwen3",
        "architectures": ["Qwen3ForCausalLM"],
        "attention_bias": meta.tensor_shape("blk.0.attn_q.bias") is not None,
    }


def gguf_expected_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    out = llama_gguf.expected_shapes(cfg)
    for i in range(cfg.num_layers):
        for hf in _QK_NORMS.values():
            out[f"model.layers.{i}.{hf}"] = (cfg.head_dim,)
    return out


GGUF = GGUFFormat(
    model_types={"qwen3": "qwen3"},
    config=gguf_config,
    tensor_name=gguf_tensor_name,
    expected_shapes=gguf_expected_shapes,
)
