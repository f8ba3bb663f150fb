"""One model config for every architecture, read from the many spellings of `config.json`.

Checkpoints in the wild spell the same fact several ways: transformers 4.x writes `rope_theta`
and `torch_dtype` at the top level, 5.x moves them into `rope_parameters` and `dtype`; nanoGPT
writes `n_layer`/`n_embd`; GPT-2 writes `n_positions`. Each family's `config_from_hf` (in its
model module) normalises them into :class:`ModelConfig` once, so the model code reads one set of
names; `tui_gen.models.registry.parse_config` picks the family and runs the shared checks here.
"""

from __future__ import annotations

import json
import math
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


def check_regular(path: Path) -> None:
    """Refuse a path that exists but is no regular file: reading a FIFO or a device would block
    forever or never end."""
    if path.exists() and not path.is_file():
        kind = "a directory" if path.is_dir() else "not a regular file (a pipe, socket or device)"
        raise ModelLoadError(f"{path}: is {kind}; give a regular file")


def read_json(path: Path, *, required: bool = True) -> dict[str, Any]:
    """Read a JSON object, turning every failure into one line that names the file."""
    check_regular(path)
    if not path.exists():
        if required:
            raise ModelLoadError(
                f"{path}: file not found; a model directory needs config.json, "
                "model.safetensors and tokenizer.json"
            )
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise ModelLoadError(f"{path}: malformed JSON ({e}); fix or re-export the file") from None
    except OSError as e:
        raise ModelLoadError(
            f"{path}: cannot be read ({e.strerror or e}); check its permissions"
        ) from None
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


#: The largest value each size may take: far above any released model, low enough that a
#: corrupt or hostile config fails here instead of building millions of modules or asking the
#: allocator for terabytes. The weights are checked against the config afterwards as well.
CEILINGS = {
    "vocab_size": 1 << 22,
    "hidden_size": 1 << 16,
    "num_layers": 1024,
    "num_heads": 1024,
    "num_kv_heads": 1024,
    "head_dim": 4096,
    "intermediate_size": 1 << 18,
    "max_position_embeddings": 1 << 24,
}
_SPELLING = {"num_layers": "num_hidden_layers", "num_heads": "num_attention_heads",
             "num_kv_heads": "num_key_value_heads", "norm_eps": "rms_norm_eps"}  # fmt: skip


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
    """Checks every family's config must pass (sizes positive and sane, heads divide evenly,
    finite norm epsilon and rotary base)."""
    for name, ceiling in CEILINGS.items():
        value = getattr(cfg, name)
        if name == "max_position_embeddings" and cfg.recurrent:
            continue  # BDH: no positional table, the context is unbounded by design
        if value <= 0:
            raise ModelLoadError(f"{source}: {name} must be positive, got {value}")
        if value > ceiling:
            raise ModelLoadError(
                f"{source}: {_SPELLING.get(name, name)} {value} is implausibly large (at most "
                f"{ceiling}); the config is corrupt, re-export it"
            )
    if cfg.max_position_embeddings < 2:
        raise ModelLoadError(
            f"{source}: max_position_embeddings {cfg.max_position_embeddings} leaves no room to "
            "generate (at least 2); fix the config"
        )
    if cfg.num_heads % cfg.num_kv_heads:
        raise ModelLoadError(
            f"{source}: num_attention_heads ({cfg.num_heads}) must be a multiple of "
            f"num_key_value_heads ({cfg.num_kv_heads})"
        )
    if not (math.isfinite(cfg.norm_eps) and 0 <= cfg.norm_eps < 1):
        raise ModelLoadError(
            f"{source}: the norm epsilon ({cfg.norm_eps}) must be a finite number in [0, 1); "
            "fix rms_norm_eps / layer_norm_epsilon in the config"
        )
    if cfg.arch == "llama" and not (math.isfinite(cfg.rope_theta) and cfg.rope_theta > 0):
        raise ModelLoadError(
            f"{source}: rope_theta ({cfg.rope_theta}) must be a finite number > 0; fix the config"
        )
    factor: Any = cfg.rope_scaling.get("factor") if cfg.rope_scaling else 1.0
    try:
        ok = math.isfinite(float(factor)) and float(factor) > 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ModelLoadError(
            f"{source}: rope_scaling factor ({factor!r}) must be a finite number > 0; fix the config"
        )
