"""One model config for every architecture, read from the many spellings of `config.json`.

Checkpoints in the wild spell the same fact several ways: transformers 4.x writes `rope_theta`
and `torch_dtype` at the top level, 5.x moves them into `rope_parameters` and `dtype`; nanoGPT
writes `n_layer`/`n_embd`; GPT-2 writes `n_positions`. Each family's `config_from_hf` (in its
model module) normalises them into :class:`ModelConfig` once, so the model code reads one set of
names; `tui_gen.models.registry.parse_config` picks the family and runs the shared checks here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tui_gen.errors import ModelLoadError


@dataclass
class ModelConfig:
    """Architecture hyper-parameters, normalised across checkpoint formats."""

    model_type: str
    arch: str  # the family's name in models/registry.py ("gpt2", "llama", ...)
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    max_position_embeddings: int
    norm_eps: float = 1e-5
    tie_word_embeddings: bool = False
    # llama family
    rope_theta: float = 10000.0
    rope_scaling: dict[str, Any] | None = None
    attention_bias: bool = False  # q/k/v bias (Qwen2)
    mlp_bias: bool = False
    # gpt2 family
    bias: bool = True
    activation: str = "gelu_new"
    dtype: str | None = None  # dtype the checkpoint was saved in, if it says
    bos_token_id: int | list[int] | None = None
    eos_token_id: int | list[int] | None = None
    pad_token_id: int | None = None
    # sliding windows (Mistral, Qwen2/3, Gemma): a sliding layer attends to the last
    # `sliding_window` positions only; `layer_types` says which layers ("sliding_attention" or
    # "full_attention"), None = every layer sliding when a window is set
    sliding_window: int | None = None
    layer_types: list[str] | None = None
    # Qwen3 / Gemma
    qk_norm: bool = False  # RMSNorm over each head of q and k before RoPE
    query_pre_attn_scalar: float | None = None  # attention scale scalar ** -0.5 (Gemma)
    attn_logit_softcapping: float | None = None  # tanh cap on attention scores (Gemma 2)
    final_logit_softcapping: float | None = None  # tanh cap on the logits (Gemma 2)
    rope_local_theta: float | None = None  # RoPE base of sliding layers (Gemma 3)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    def layer_window(self, layer: int) -> int | None:
        """The sliding window of `layer`, None for a layer attending to every position."""
        if self.sliding_window is None:
            return None
        if self.layer_types is None or self.layer_types[layer] == "sliding_attention":
            return self.sliding_window
        return None

    def sliding_layout(self) -> str:
        """`info`'s one-line description of the sliding-window layout."""
        windows = [self.layer_window(i) for i in range(self.num_layers)]
        n = sum(w is not None for w in windows)
        if not n:
            return "none (every layer attends to the whole context)"
        if n == self.num_layers:
            return f"every layer: window {self.sliding_window}"
        return f"{n} of {self.num_layers} layers: window {self.sliding_window}, others global"

    def kv_cache_bytes(self, seq_len: int, bytes_per_element: int, batch: int = 1) -> int:
        """2 (k and v) x layers x seq x kv_heads x head_dim x bytes."""
        return (
            2
            * self.num_layers
            * seq_len
            * self.num_kv_heads
            * self.head_dim
            * bytes_per_element
            * batch
        )


def read_json(path: Path, *, required: bool = True) -> dict[str, Any]:
    """Read a JSON object, turning every failure into one line that names the file."""
    if not path.exists():
        if required:
            raise ModelLoadError(
                f"{path}: file not found; a model directory needs config.json, "
                "model.safetensors and tokenizer.json"
            )
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelLoadError(f"{path}: malformed JSON ({e}); fix or re-export the file") from None
    if not isinstance(data, dict):
        raise ModelLoadError(f"{path}: expected a JSON object at the top level")
    return data


def first(d: dict[str, Any], *keys: str, default: Any = None) -> Any:
    """The value of the first of `keys` that `d` holds (and is not None), else `default`."""
    for k in keys:
        if k in d and d[k] is not None:
            return d[k]
    return default


def dtype_of(raw: dict[str, Any]) -> str | None:
    """The dtype a config.json says its weights were saved in (4.x `torch_dtype`, 5.x `dtype`)."""
    dt = first(raw, "dtype", "torch_dtype")
    return str(dt).replace("torch.", "") if dt else None


def token_ids(raw: dict[str, Any]) -> dict[str, Any]:
    """bos/eos/pad token ids as config.json gives them (ModelConfig keyword arguments)."""
    return {k: raw.get(k) for k in ("bos_token_id", "eos_token_id", "pad_token_id")}


def sliding_from_hf(
    raw: dict[str, Any], num_layers: int, default_types: list[str] | None = None
) -> dict[str, Any]:
    """sliding_window/layer_types (ModelConfig keyword arguments) as config.json declares them.

    Qwen2/Qwen3 apply the window only with `use_sliding_window` (to the layers from
    `max_window_layers` on, unless `layer_types` lists them); Mistral to every layer; Gemma to
    the layers `layer_types` (or `sliding_window_pattern`, given as `default_types`) names.
    """
    window = raw.get("sliding_window")
    if "use_sliding_window" in raw and not raw["use_sliding_window"]:
        window = None
    if window is None:
        return {"sliding_window": None, "layer_types": None}
    types = raw.get("layer_types")
    if types is None and "max_window_layers" in raw:
        start = int(raw["max_window_layers"])
        types = ["sliding_attention" if i >= start else "full_attention" for i in range(num_layers)]
    if types is None:
        types = default_types
    if types is not None:
        types = [str(t) for t in types]
        if len(types) != num_layers:
            raise ValueError(f"layer_types ({len(types)} entries for {num_layers} layers)")
    return {"sliding_window": int(window), "layer_types": types}


def validate(cfg: ModelConfig, source: str) -> None:
    """Checks every family's config must pass (sizes positive, heads divide evenly)."""
    for name in (
        "vocab_size",
        "hidden_size",
        "num_layers",
        "num_heads",
        "num_kv_heads",
        "head_dim",
        "intermediate_size",
        "max_position_embeddings",
    ):
        if getattr(cfg, name) <= 0:
            raise ModelLoadError(f"{source}: {name} must be positive, got {getattr(cfg, name)}")
    if cfg.num_heads % cfg.num_kv_heads:
        raise ModelLoadError(
            f"{source}: num_attention_heads ({cfg.num_heads}) must be a multiple of "
            f"num_key_value_heads ({cfg.num_kv_heads})"
        )
