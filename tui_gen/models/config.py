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
    #: a family's own hyper-parameters (Granite's multipliers, SmolLM3's no-rope layers, ...)
    family_params: dict[str, Any] = field(default_factory=dict)
    dtype: str | None = None  # dtype the checkpoint was saved in, if it says
    bos_token_id: int | list[int] | None = None
    eos_token_id: int | list[int] | None = None
    pad_token_id: int | None = None
    # recurrent models (BDH): a state instead of a KV cache, no positional limit
    recurrent: bool = False
    trained_context: int | None = None  # the length it was trained on, if the config says
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    def kv_cache_bytes(self, seq_len: int, bytes_per_element: int, batch: int = 1) -> int:
        """2 (k and v) x layers x seq x kv_heads x head_dim x bytes."""
        if self.recurrent:  # BDH: one (nh, N, D) float32 state per layer, at any length
            return self.num_layers * batch * self.num_heads * self.head_dim * self.hidden_size * 4
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
