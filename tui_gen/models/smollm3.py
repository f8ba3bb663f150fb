"""SmolLM3: the Llama block where some layers use no rotary embedding (NoPE).

``no_rope_layers[i]`` is 1 when layer i applies RoPE and 0 when it does not; without the list,
every ``no_rope_layer_interval``-th layer (4th, 8th, ...) has none. Parameter names are Llama's.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from tui_gen.models import llama, llama_like_gguf
from tui_gen.models.common import attend
from tui_gen.models.config import ModelConfig
from tui_gen.models.family import GGUFMetadata
from tui_gen.models.kv_cache import KVCache


def rope_layers(raw: dict[str, Any], num_layers: int) -> list[bool]:
    """Which layers apply RoPE, from `no_rope_layers` or `no_rope_layer_interval`."""
    flags = raw.get("no_rope_layers")
    if flags is None:
        interval = int(raw.get("no_rope_layer_interval") or 4)
        if interval <= 0:
            raise ValueError(f"'no_rope_layer_interval' ({interval})")
        return [(i + 1) % interval != 0 for i in range(num_layers)]
    if not isinstance(flags, list) or len(flags) != num_layers:
        raise ValueError(f"'no_rope_layers' (needs one 0/1 per layer, {num_layers})")
    return [bool(int(f)) for f in flags]


def config_from_hf(raw: dict[str, Any], model_type: str) -> ModelConfig:
    """SmolLM3's config.json. A sliding window applies only with `use_sliding_window` (false
    by default, as in transformers' SmolLM3Config), to the layers `layer_types` names, or
    without it to the layers without RoPE, as transformers derives them."""
    layers = int(raw.get("num_hidden_layers") or 0)  # missing: llama.config_from_hf says so
    ropes = rope_layers(raw, layers)
    raw = {**raw, "use_sliding_window": bool(raw.get("use_sliding_window", False))}
    if raw.get("layer_types") is None and raw["use_sliding_window"] and raw.get("sliding_window"):
        raw["layer_types"] = ["full_attention" if r else "sliding_attention" for r in ropes]
    raw.pop("max_window_layers", None)  # not a SmolLM3 key: layer_types decides
    cfg = llama.config_from_hf(raw, model_type)
    params = {"rope_layers": ropes}
    return dataclasses.replace(cfg, arch="smollm3", family_params=params)


class Attention(llama.Attention):
    def __init__(self, cfg: ModelConfig, layer: int) -> None:
        super().__init__(cfg, layer)
        self.use_rope = bool(cfg.family_params["rope_layers"][layer])

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        start: int,
        cache: KVCache | None,
        mask: torch.Tensor | None,
    ) -> torch.Tensor:
        if self.use_rope:
            return super().forward(x, cos, sin, start, cache, mask)
        B, T, _ = x.shape
        H, KV, D = self.n_head, self.n_kv, self.head_dim
        if self.qkv_proj is not None:
            qkv = self.qkv_proj(x)
        else:
            qkv = torch.cat((self.q_proj(x), self.k_proj(x), self.v_proj(x)), dim=-1)
        q, k, v = qkv.view(B, T, H + 2 * KV, D).transpose(1, 2).split((H, KV, KV), dim=1)
        if cache is not None:
            k, v = cache.update(self.layer, start, k, v)
        y = attend(q, k, v, mask, causal=mask is None and T > 1, kernel=self.prompt_attention)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, H * D))


class DecoderLayer(llama.DecoderLayer):
    def __init__(self, cfg: ModelConfig, layer: int) -> None:
        super().__init__(cfg, layer)
        self.self_attn = Attention(cfg, layer)


class SmolLM3(llama.Llama):
    layer_class = DecoderLayer

    def _native_extras(self, layer: llama.DecoderLayer) -> dict[str, Any]:
        attn = layer.self_attn
        assert isinstance(attn, Attention)
        return {"rope": attn.use_rope}  # NoPE layers skip RoPE in decode.c


def _gguf_config(meta: GGUFMetadata, cfg: dict[str, Any]) -> None:
    """llama.cpp writes no NoPE metadata: it fixes every 4th layer as NoPE for SmolLM3."""
    cfg["no_rope_layer_interval"] = 4


#: llama.cpp's "smollm3" GGUF files: Llama's tensors, q/k permuted
GGUF = llama_like_gguf.llama_like_format(
    "smollm3", "SmolLM3ForCausalLM", permuted=True, config=_gguf_config
)
