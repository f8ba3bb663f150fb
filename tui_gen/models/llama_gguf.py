"""The Llama family in llama.cpp's GGUF files: metadata keys, tensor names, q/k row order.

llama.cpp's converter stores Llama's q/k projections with their rows permuted (it pairs rotary
halves for its own RoPE kernel); `permuted_heads` tells the reader which tensors to undo that
for, so the weights are exactly the Hugging Face ones and load into
:class:`tui_gen.models.llama.Llama` by name. Qwen2's converter keeps HF's order.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from tui_gen.errors import ModelLoadError, UnsupportedModelError
from tui_gen.models.config import ModelConfig
from tui_gen.models.family import GGUFFormat, GGUFMetadata
from tui_gen.models.llama import o_proj_bias, scaled_inv_freq

#: general.architecture -> (HF model_type, HF architectures entry)
_ARCHITECTURES = {"llama": ("llama", "LlamaForCausalLM"), "qwen2": ("qwen2", "Qwen2ForCausalLM")}
#: model_types whose q/k rows llama.cpp permuted
_PERMUTED = {"llama"}

_LAYER_NAMES = {
    "attn_norm.weight": "input_layernorm.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
    "attn_q.weight": "self_attn.q_proj.weight",
    "attn_k.weight": "self_attn.k_proj.weight",
    "attn_v.weight": "self_attn.v_proj.weight",
    "attn_output.weight": "self_attn.o_proj.weight",
    "attn_q.bias": "self_attn.q_proj.bias",
    "attn_k.bias": "self_attn.k_proj.bias",
    "attn_v.bias": "self_attn.v_proj.bias",
    "attn_output.bias": "self_attn.o_proj.bias",
    "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
}
_GLOBAL_NAMES = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}
_BLOCK = re.compile(r"blk\.(\d+)\.(.+)")


def tensor_name(name: str) -> str | None:
    """GGUF tensor name -> Hugging Face Llama/Qwen2 name (None if it has no counterpart)."""
    if name in _GLOBAL_NAMES:
        return _GLOBAL_NAMES[name]
    m = _BLOCK.fullmatch(name)
    if m and m.group(2) in _LAYER_NAMES:
        return f"model.layers.{m.group(1)}.{_LAYER_NAMES[m.group(2)]}"
    return None


def permuted_heads(hf_name: str, cfg: ModelConfig) -> int | None:
    """The heads whose rows llama.cpp interleaved in this tensor (q and k of Llama only)."""
    if cfg.model_type not in _PERMUTED:
        return None
    proj = hf_name.split(".")[-2]
    return {"q_proj": cfg.num_heads, "k_proj": cfg.num_kv_heads}.get(proj)


def config_from_gguf(meta: GGUFMetadata) -> dict[str, Any]:
    """The HF-style config.json of a Llama-family GGUF file (token ids are added by the reader)."""
    path = meta.path
    embd = meta.tensor_shape("token_embd.weight")
    if embd is None:
        raise ModelLoadError(f"{path}: no token_embd.weight tensor; the file is incomplete")
    hidden = int(meta.require("embedding_length"))
    heads = int(meta.require("attention.head_count"))
    if heads <= 0 or hidden <= 0:
        raise ModelLoadError(
            f"{path}: head count {heads} / width {hidden} are invalid; corrupt file"
        )
    kv_heads = int(meta.get("attention.head_count_kv", heads) or heads)
    head_dim = int(meta.get("attention.key_length", 0) or hidden // heads)
    rot = meta.get("rope.dimension_count")
    if rot is not None and int(rot) != head_dim:
        raise UnsupportedModelError(
            f"{path}: partial rotary embeddings ({rot} of {head_dim} dims) are not supported"
        )
    theta = float(meta.get("rope.freq_base", 10000.0))
    scaling: dict[str, Any] | None = None
    kind = meta.get("rope.scaling.type")
    factor = float(meta.get("rope.scaling.factor") or meta.get("rope.scale_linear") or 1.0)
    if kind not in (None, "none", "linear"):
        raise UnsupportedModelError(
            f"{path}: rope scaling {kind!r} is not supported; supported: linear, llama3"
        )
    if kind != "none" and factor != 1.0:
        scaling = {"rope_type": "linear", "factor": factor}
    if meta.tensor_shape("rope_freqs.weight") is not None:
        freqs = meta.read_tensor("rope_freqs.weight")
        if not torch.all(freqs == 1):
            try:
                scaling = _llama3_rope_scaling(freqs, theta, head_dim)
            except UnsupportedModelError as e:
                raise UnsupportedModelError(f"{path}: {e}") from None
    # (another family reusing this reading, e.g. Qwen3, sets its own names afterwards)
    model_type, hf_class = _ARCHITECTURES.get(meta.architecture, (meta.architecture, ""))
    return {
        "architectures": [hf_class],
        "model_type": model_type,
        "hidden_size": hidden,
        "num_hidden_layers": int(meta.require("block_count")),
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "head_dim": head_dim,
        "intermediate_size": int(meta.require("feed_forward_length")),
        "max_position_embeddings": int(meta.get("context_length", 2048)),
        "rms_norm_eps": float(meta.get("attention.layer_norm_rms_epsilon", 1e-5)),
        "rope_theta": theta,
        "rope_scaling": scaling,
        "vocab_size": int(embd[0]),
        "tie_word_embeddings": meta.tensor_shape("output.weight") is None,
        "attention_bias": meta.tensor_shape("blk.0.attn_q.bias") is not None,
        "mlp_bias": False,
        "hidden_act": "silu",
    }


def _llama3_rope_scaling(freqs: torch.Tensor, theta: float, head_dim: int) -> dict[str, Any]:
    """Llama 3.1+ GGUFs carry `rope_freqs` (per-frequency divisors) instead of scaling metadata;
    recover the `llama3` parameters that produce exactly those divisors."""
    factor = float(freqs.max())
    for low, high, ctx in ((1.0, 4.0, 8192), (1.0, 4.0, 4096), (1.0, 2.0, 8192)):
        scaling = {"rope_type": "llama3", "factor": factor, "low_freq_factor": low,
                   "high_freq_factor": high, "original_max_position_embeddings": ctx}  # fmt: skip
        base = 1.0 / (theta ** (torch.arange(0, head_dim, 2).float() / head_dim))
        if torch.allclose(
            base / scaled_inv_freq(head_dim, theta, scaling), freqs.float(), rtol=1e-4
        ):
            return scaling
    raise UnsupportedModelError(
        "rope_freqs does not match Llama 3 rope scaling with any known parameters"
    )


def expected_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Every HF weight of a Llama-family model with its shape (the tied head excluded)."""
    h, inter, v = cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size
    q = cfg.num_heads * cfg.head_dim
    kv = cfg.num_kv_heads * cfg.head_dim
    out: dict[str, tuple[int, ...]] = {
        "model.embed_tokens.weight": (v, h),
        "model.norm.weight": (h,),
    }
    if not cfg.tie_word_embeddings:
        out["lm_head.weight"] = (v, h)
    layer: dict[str, tuple[int, ...]] = {
        "input_layernorm.weight": (h,),
        "post_attention_layernorm.weight": (h,),
        "self_attn.q_proj.weight": (q, h),
        "self_attn.k_proj.weight": (kv, h),
        "self_attn.v_proj.weight": (kv, h),
        "self_attn.o_proj.weight": (h, q),
        "mlp.gate_proj.weight": (inter, h),
        "mlp.up_proj.weight": (inter, h),
        "mlp.down_proj.weight": (h, inter),
    }
    if cfg.attention_bias:
        layer |= {"self_attn.q_proj.bias": (q,), "self_attn.k_proj.bias": (kv,),
                  "self_attn.v_proj.bias": (kv,)}  # fmt: skip
        if o_proj_bias(cfg):
            layer["self_attn.o_proj.bias"] = (h,)
    for i in range(cfg.num_layers):
        out |= {f"model.layers.{i}.{k}": s for k, s in layer.items()}
    return out


FORMAT = GGUFFormat(
    model_types={arch: mt for arch, (mt, _) in _ARCHITECTURES.items()},
    config=config_from_gguf,
    tensor_name=tensor_name,
    expected_shapes=expected_shapes,
    permuted_heads=permuted_heads,
    skip=frozenset({"rope_freqs.weight"}),  # folded into config["rope_scaling"]
)
