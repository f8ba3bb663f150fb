"""Phi-3 and Phi-4-mini: the Llama block with q/k/v and gate/up stored fused, partial rotary
embeddings (`partial_rotary_factor`) and LongRoPE ("longrope", formerly "su") scaling.

Checkpoints hold ``self_attn.qkv_proj`` (q, k, v rows) and ``mlp.gate_up_proj`` (gate, up rows),
which are exactly the fused layout models/llama.py decodes with, so they load as they are.

LongRoPE divides each rotary frequency by ``short_factor[i]`` while the sequence fits in
``original_max_position_embeddings`` and by ``long_factor[i]`` past it (chosen per forward pass
by the largest position, as transformers does), and scales cos/sin by ``attention_factor``
(default sqrt(1 + ln(max/original) / ln(original))). Keys already cached were rotated by the
factors of their own forward pass, so when a generation crosses original_max_position_embeddings
transformers' Phi-3 generate() drops its cache and recomputes the whole sequence with the long
factors; `Phi3.rope_switch` tells our Generator to do the same at the same token (and to
recompute a reused prefix rotated by the other factors). Batches and beams (engine/batch.py,
engine/beam.py) do not: there each forward picks the factors by its own largest position.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tui_gen.errors import ModelLoadError, UnsupportedModelError
from tui_gen.models import llama
from tui_gen.models.common import attend, gated
from tui_gen.models.config import ModelConfig, first
from tui_gen.models.family import GGUFFormat, GGUFMetadata, NativeSpec, Position
from tui_gen.models.kv_cache import KVCache


def config_from_hf(raw: dict[str, Any], model_type: str) -> ModelConfig:
    """Phi-3's config.json (4.x `rope_scaling` + top-level keys, or 5.x `rope_parameters`)."""
    rope = dict(raw.get("rope_parameters") or {})
    scaling = dict(raw.get("rope_scaling") or {}) or {
        k: v for k, v in rope.items() if k not in ("rope_theta", "partial_rotary_factor")
    }
    kind = scaling.get("rope_type") or scaling.get("type") or "default"
    stripped = {k: v for k, v in raw.items() if k not in ("rope_scaling", "rope_parameters")}
    stripped["rope_theta"] = first(raw, "rope_theta", default=rope.get("rope_theta", 10000.0))
    cfg = llama.config_from_hf(stripped, model_type)
    head_dim = cfg.head_dim
    factor = float(
        first(raw, "partial_rotary_factor", default=rope.get("partial_rotary_factor", 1.0))
    )
    rot = int(head_dim * factor)
    if rot <= 0 or rot > head_dim or rot % 2:
        raise ValueError(f"'partial_rotary_factor' ({factor} of head_dim {head_dim})")
    params: dict[str, Any] = {"rotary_dim": rot}
    if kind in ("longrope", "su"):
        original = int(
            first(scaling, "original_max_position_embeddings",
                  default=first(raw, "original_max_position_embeddings",
                                default=cfg.max_position_embeddings))
        )  # fmt: skip
        short, long = scaling.get("short_factor"), scaling.get("long_factor")
        if not isinstance(short, list) or not isinstance(long, list):
            raise ValueError("'rope_scaling' (longrope needs short_factor and long_factor lists)")
        if len(short) != rot // 2 or len(long) != rot // 2:
            raise ValueError(f"'rope_scaling' (short/long factors need {rot // 2} values each)")
        attn = scaling.get("attention_factor")
        if attn is None:
            ratio = scaling.get("factor") or cfg.max_position_embeddings / original
            attn = 1.0 if ratio <= 1.0 else math.sqrt(1 + math.log(ratio) / math.log(original))
        params |= {"short_factor": [float(f) for f in short],
                   "long_factor": [float(f) for f in long],
                   "original_max_position_embeddings": original,
                   "attention_factor": float(attn)}  # fmt: skip
    elif kind != "default":
        raise UnsupportedModelError(
            f"config.json: rope scaling {kind!r} is not supported for Phi-3; supported: longrope"
        )
    return dataclasses.replace(cfg, arch="phi3", family_params=params)


def inv_freq(cfg: ModelConfig, long: bool) -> torch.Tensor:
    """Inverse frequencies (rotary_dim/2,), divided by LongRoPE's short or long factors."""
    p = cfg.family_params
    rot = p["rotary_dim"]
    base = cfg.rope_theta ** (torch.arange(0, rot, 2, dtype=torch.int64).float() / rot)
    if "short_factor" in p:
        base = torch.tensor(p["long_factor" if long else "short_factor"]) * base
    return 1.0 / base


class Attention(llama.Attention):
    """q, k, v in one `qkv_proj` (as checkpoints store it); RoPE on the first rotary_dim dims."""

    def __init__(self, cfg: ModelConfig, layer: int) -> None:
        nn.Module.__init__(self)
        self.layer = layer
        self.window = cfg.layer_window(layer)  # None: attends to every position
        self.n_head, self.n_kv, self.head_dim = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
        self.rot = cfg.family_params["rotary_dim"]
        h, out = cfg.hidden_size, (cfg.num_heads + 2 * cfg.num_kv_heads) * cfg.head_dim
        self.qkv_proj: nn.Module | None = nn.Linear(h, out, bias=False)
        self.o_proj = nn.Linear(cfg.num_heads * cfg.head_dim, h, bias=False)

    def fuse(self, transposed: bool = False) -> None:
        """Already fused in the checkpoint."""

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        start: int,
        cache: KVCache | None,
        mask: torch.Tensor | None,
    ) -> torch.Tensor:
        B, T, _ = x.shape
        H, KV, D, R = self.n_head, self.n_kv, self.head_dim, self.rot
        assert self.qkv_proj is not None
        qkv = self.qkv_proj(x).view(B, T, H + 2 * KV, D)
        qk = qkv[:, :, : H + KV]
        if R < D:
            qk = torch.cat((llama.apply_rope(qk[..., :R], cos, sin), qk[..., R:]), dim=-1)
        else:
            qk = llama.apply_rope(qk, cos, sin)
        q, k = qk[:, :, :H].transpose(1, 2), qk[:, :, H:].transpose(1, 2)
        v = qkv[:, :, H + KV :].transpose(1, 2)
        if cache is not None:
            k, v = cache.update(self.layer, start, k, v)
        y = attend(q, k, v, mask, causal=mask is None and T > 1, kernel=self.prompt_attention)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, H * D))


class MLP(llama.MLP):
    """gate and up in one `gate_up_proj` (gate rows first), as checkpoints store it."""

    def __init__(self, cfg: ModelConfig) -> None:
        nn.Module.__init__(self)
        h, i = cfg.hidden_size, cfg.intermediate_size
        self.gate_up_proj: nn.Module | None = nn.Linear(h, 2 * i, bias=False)
        self.down_proj = nn.Linear(i, h, bias=False)

    def fuse(self, transposed: bool = False) -> None:
        """Already fused in the checkpoint."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert self.gate_up_proj is not None
        return self.down_proj(gated(self.gate_up_proj(x), "silu", self.gated_activation))


class DecoderLayer(llama.DecoderLayer):
    def __init__(self, cfg: ModelConfig, layer: int) -> None:
        nn.Module.__init__(self)
        self.input_layernorm = llama.RMSNorm(cfg.hidden_size, cfg.norm_eps)
        self.self_attn = Attention(cfg, layer)
        self.post_attention_layernorm = llama.RMSNorm(cfg.hidden_size, cfg.norm_eps)
        self.mlp = MLP(cfg)


class Phi3(llama.Llama):
    layer_class = DecoderLayer

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__(cfg)
        self._tables: dict[tuple[bool, torch.device], tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def rope_switch(self) -> int | None:
        """With LongRoPE, the length past which the long factors apply (and the cache must be
        recomputed, see the module docstring); None without."""
        p = self.config.family_params
        return int(p["original_max_position_embeddings"]) if "long_factor" in p else None

    def rope_table(
        self, upto: int, device: torch.device, dtype: torch.dtype
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """cos/sin (n >= upto, rotary_dim), sign-folded and scaled by LongRoPE's attention
        factor; the long factors when `upto` passes original_max_position_embeddings."""
        p = self.config.family_params
        long = "long_factor" in p and upto > p["original_max_position_embeddings"]
        key = (long, device)
        table = self._tables.get(key)
        if table is None or table[0].shape[0] < upto:
            n = 1 << (max(upto, 256) - 1).bit_length()
            freqs = torch.outer(
                torch.arange(n, device=device, dtype=torch.float32),
                inv_freq(self.config, long).to(device),
            )
            emb = torch.cat((freqs, freqs), dim=-1)
            scale = float(p.get("attention_factor", 1.0))
            cos, sin = emb.cos() * scale, emb.sin() * scale
            sin[:, : sin.shape[1] // 2].neg_()
            table = self._tables[key] = (cos, sin)
        cos, sin = table
        if cos.dtype != dtype:
            table = self._tables[key] = (cos.to(dtype), sin.to(dtype))
        return table

    def native_spec(self) -> NativeSpec:
        """Llama's, rotating the first rotary_dim dims. The rotary rows come from rope_table,
        so LongRoPE's short or long factors (chosen by the position, as in the torch step) and
        its attention factor are already in them; the rows of a batch each get the factors of
        their own position, as they would alone."""
        spec = super().native_spec()
        p = self.config.family_params
        base = spec.rope
        assert base is not None
        original = p.get("original_max_position_embeddings")

        def rope(position: Position, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
            if original is None or isinstance(position, int):
                return base(position, dtype)
            long = position + 1 > original
            if bool(long.all()) or not bool(long.any()):
                return base(position, dtype)
            cos = torch.empty(position.shape[0], p["rotary_dim"])
            sin = torch.empty_like(cos)
            for rows in (long, ~long):
                cos[rows], sin[rows] = base(position[rows], dtype)
            return cos, sin

        return dataclasses.replace(spec, rotary_dim=p["rotary_dim"], rope=rope)


# --- llama.cpp's "phi3" GGUF files -------------------------------------------------------
# q/k/v and gate/up stay fused (attn_qkv, ffn_up) in HF row order; LongRoPE's factors are the
# rope_factors_long/short tensors and its attention factor `rope.scaling.attn_factor`.

_LAYER_NAMES = {
    "attn_norm.weight": "input_layernorm.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
    "attn_qkv.weight": "self_attn.qkv_proj.weight",
    "attn_output.weight": "self_attn.o_proj.weight",
    "ffn_up.weight": "mlp.gate_up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
}
_GLOBAL_NAMES = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}
_BLOCK = re.compile(r"blk\.(\d+)\.(.+)")


def gguf_tensor_name(name: str) -> str | None:
    if name in _GLOBAL_NAMES:
        return _GLOBAL_NAMES[name]
    m = _BLOCK.fullmatch(name)
    if m and m.group(2) in _LAYER_NAMES:
        return f"model.layers.{m.group(1)}.{_LAYER_NAMES[m.group(2)]}"
    return None


def config_from_gguf(meta: GGUFMetadata) -> dict[str, Any]:
    path = meta.path
    embd = meta.tensor_shape("token_embd.weight")
    if embd is None:
        raise ModelLoadError(f"{path}: no token_embd.weight tensor; the file is incomplete")
    hidden = int(meta.require("embedding_length"))
    heads = int(meta.require("attention.head_count"))
    if heads <= 0 or hidden <= 0 or hidden % heads:
        raise ModelLoadError(f"{path}: head count {heads} / width {hidden} are invalid")
    head_dim = hidden // heads
    rot = int(meta.get("rope.dimension_count", head_dim) or head_dim)
    ctx = int(meta.get("context_length", 4096))
    cfg: dict[str, Any] = {
        "architectures": ["Phi3ForCausalLM"],
        "model_type": "phi3",
        "hidden_size": hidden,
        "num_hidden_layers": int(meta.require("block_count")),
        "num_attention_heads": heads,
        "num_key_value_heads": int(meta.get("attention.head_count_kv", heads) or heads),
        "head_dim": head_dim,
        "intermediate_size": int(meta.require("feed_forward_length")),
        "max_position_embeddings": ctx,
        "original_max_position_embeddings": int(
            meta.get("rope.scaling.original_context_length", ctx) or ctx
        ),
        "rms_norm_eps": float(meta.get("attention.layer_norm_rms_epsilon", 1e-5)),
        "rope_theta": float(meta.get("rope.freq_base", 10000.0)),
        "partial_rotary_factor": rot / head_dim,
        "vocab_size": int(embd[0]),
        "tie_word_embeddings": meta.tensor_shape("output.weight") is None,
        "hidden_act": "silu",
    }
    if meta.tensor_shape("rope_factors_long.weight") is not None:
        if meta.tensor_shape("rope_factors_short.weight") is None:
            raise ModelLoadError(f"{path}: rope_factors_long without rope_factors_short")
        cfg["rope_scaling"] = {
            "type": "longrope",
            "long_factor": meta.read_tensor("rope_factors_long.weight").tolist(),
            "short_factor": meta.read_tensor("rope_factors_short.weight").tolist(),
            "attention_factor": float(meta.get("rope.scaling.attn_factor", 1.0) or 1.0),
        }
    return cfg


def gguf_expected_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    h, inter, v = cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size
    q, kv = cfg.num_heads * cfg.head_dim, cfg.num_kv_heads * cfg.head_dim
    out: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (v, h), "model.norm.weight": (h,)}
    if not cfg.tie_word_embeddings:
        out["lm_head.weight"] = (v, h)
    layer = {
        "input_layernorm.weight": (h,),
        "post_attention_layernorm.weight": (h,),
        "self_attn.qkv_proj.weight": (q + 2 * kv, h),
        "self_attn.o_proj.weight": (h, q),
        "mlp.gate_up_proj.weight": (2 * inter, h),
        "mlp.down_proj.weight": (h, inter),
    }
    for i in range(cfg.num_layers):
        out |= {f"model.layers.{i}.{k}": s for k, s in layer.items()}
    return out


GGUF = GGUFFormat(
    model_types={"phi3": "phi3"},
    config=config_from_gguf,
    tensor_name=gguf_tensor_name,
    expected_shapes=gguf_expected_shapes,
    skip=frozenset({"rope_factors_long.weight", "rope_factors_short.weight"}),
)
