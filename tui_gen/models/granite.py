"""Granite (IBM Granite 3.x): the Llama block with four multipliers.

``embedding_multiplier`` scales the token embeddings, ``attention_multiplier`` replaces
1/sqrt(head_dim) as the attention scale, ``residual_multiplier`` scales each block's attention
and MLP output before it joins the residual stream, and the logits are divided by
``logits_scaling``. Parameter names are Llama's.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from tui_gen.models import llama, llama_like_gguf
from tui_gen.models.common import attend
from tui_gen.models.config import ModelConfig
from tui_gen.models.family import GGUFMetadata, NativeSpec
from tui_gen.models.kv_cache import KVCache

#: config.json key -> default
MULTIPLIERS = {
    "embedding_multiplier": 1.0,
    "attention_multiplier": 1.0,
    "residual_multiplier": 1.0,
    "logits_scaling": 1.0,
}


def config_from_hf(raw: dict[str, Any], model_type: str) -> ModelConfig:
    cfg = llama.config_from_hf(raw, model_type)
    params = {
        k: float(raw.get(k, d) if raw.get(k) is not None else d) for k, d in MULTIPLIERS.items()
    }
    if params["logits_scaling"] == 0:
        raise ValueError("'logits_scaling' (0)")
    return dataclasses.replace(cfg, arch="granite", family_params=params)


class Attention(llama.Attention):
    def __init__(self, cfg: ModelConfig, layer: int) -> None:
        super().__init__(cfg, layer)
        self.scale = cfg.family_params["attention_multiplier"]

    def mix(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None
    ) -> torch.Tensor:
        """Scores scaled by the attention multiplier instead of 1/sqrt(head_dim)."""
        causal = mask is None and q.shape[2] > 1
        return attend(q, k, v, mask, causal, scale=self.scale, kernel=self.prompt_attention)


class DecoderLayer(llama.DecoderLayer):
    def __init__(self, cfg: ModelConfig, layer: int) -> None:
        super().__init__(cfg, layer)
        self.self_attn = Attention(cfg, layer)
        self.residual_multiplier = cfg.family_params["residual_multiplier"]

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        start: int,
        cache: KVCache | None,
        mask: torch.Tensor | None,
    ) -> torch.Tensor:
        r = self.residual_multiplier
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, start, cache, mask) * r
        return x + self.mlp(self.post_attention_layernorm(x)) * r


class Granite(llama.Llama):
    layer_class = DecoderLayer

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__(cfg)
        self.embedding_multiplier = cfg.family_params["embedding_multiplier"]
        self.logits_scaling = cfg.family_params["logits_scaling"]

    def embed(self, idx: torch.Tensor) -> torch.Tensor:
        return self.model.embed_tokens(idx) * self.embedding_multiplier

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return super().logits(x) / self.logits_scaling

    def native_spec(self) -> NativeSpec:
        """Llama's, with the multipliers: the embedding's in `embed` (torch, as `embed` above),
        the other three in decode.c."""
        p = self.config.family_params
        return dataclasses.replace(
            super().native_spec(),
            attn_scale=p["attention_multiplier"],
            residual_scale=p["residual_multiplier"],
            logits_scaling=p["logits_scaling"],
        )


def _gguf_config(meta: GGUFMetadata, cfg: dict[str, Any]) -> None:
    """llama.cpp's converter renames the multipliers to *_scale and writes only non-zero ones;
    llama.cpp reads a missing attention scale as 1/sqrt(head_dim) and the others as 1."""
    cfg.pop("head_dim", None)  # Granite has none (the converter drops it)
    head_dim = cfg["hidden_size"] // cfg["num_attention_heads"]
    cfg["attention_multiplier"] = float(meta.get("attention.scale") or head_dim**-0.5)
    cfg["embedding_multiplier"] = float(meta.get("embedding_scale") or 1.0)
    cfg["residual_multiplier"] = float(meta.get("residual_scale") or 1.0)
    cfg["logits_scaling"] = float(meta.get("logit_scale") or 1.0)


#: llama.cpp's "granite" GGUF files: Llama's tensors (q/k permuted) and four scale keys
GGUF = llama_like_gguf.llama_like_format(
    "granite", "GraniteForCausalLM", permuted=True, config=_gguf_config
)
