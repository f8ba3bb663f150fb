"""One model config for every architecture, read from the many spellings of `config.json`.

Checkpoints in the wild spell the same fact several ways: transformers 4.x writes `rope_theta`
and `torch_dtype` at the top level, 5.x moves them into `rope_parameters` and `dtype`; nanoGPT
writes `n_layer`/`n_embd`; GPT-2 writes `n_positions`. We normalise all of them into
:class:`ModelConfig` once, so the model code reads one set of names.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tui_gen.errors import ModelLoadError, UnsupportedModelError

#: model_type -> architecture family implemented in tui_gen.models
ARCHITECTURES: dict[str, str] = {
    "gpt2": "gpt2",
    "nanogpt": "gpt2",
    "llama": "llama",
    "mistral": "llama",
    "qwen2": "llama",
    "bdh": "bdh",  # tui_gen/models/bdh.py (config: bdh_config.py)
}


@dataclass
class ModelConfig:
    """Architecture hyper-parameters, normalised across checkpoint formats."""

    model_type: str
    arch: str  # "gpt2" | "llama"
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
    # recurrent models (BDH): a state instead of a KV cache, no positional limit
    recurrent: bool = False
    trained_context: int | None = None  # the length it was trained on, if the config says
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def num_params_hint(self) -> int:
        """Rough parameter count from the shapes alone (for `info` before loading)."""
        if self.arch == "bdh":
            from tui_gen.models.bdh_config import num_params

            return num_params(self)
        h, i, layers = self.hidden_size, self.intermediate_size, self.num_layers
        kv = self.num_kv_heads * self.head_dim
        attn = h * self.num_heads * self.head_dim * 2 + h * kv * 2
        mlp = h * i * (3 if self.arch == "llama" else 2)
        emb = self.vocab_size * h * (1 if self.tie_word_embeddings else 2)
        return layers * (attn + mlp) + emb

    def kv_cache_bytes(self, seq_len: int, bytes_per_element: int, batch: int = 1) -> int:
        """2 (k and v) x layers x seq x kv_heads x head_dim x bytes."""
        if self.recurrent:  # one state per layer, the same at any length (bdh_config.py)
            from tui_gen.models.bdh_config import state_bytes

            return state_bytes(self, batch)
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


def _first(d: dict[str, Any], *keys: str, default: Any = None) -> Any:
    for k in keys:
        if k in d and d[k] is not None:
            return d[k]
    return default


def _infer_model_type(raw: dict[str, Any]) -> str | None:
    mt = raw.get("model_type")
    if mt:
        return str(mt)
    archs = raw.get("architectures") or []
    for a in archs:
        a = str(a).lower()
        for key in ("gpt2", "llama", "mistral", "qwen2"):
            if a.startswith(key):
                return key
    if "mlp_internal_dim_multiplier" in raw:  # pathwaycom/bdh's BDHConfig
        return "bdh"
    if "n_layer" in raw and "n_embd" in raw:
        return "nanogpt"
    return None


def parse_config(raw: dict[str, Any], source: str = "config.json") -> ModelConfig:
    """Normalise a config.json dict (HF 4.x/5.x, nanoGPT) into a ModelConfig."""
    model_type = _infer_model_type(raw)
    if model_type is None or model_type not in ARCHITECTURES:
        supported = ", ".join(sorted(set(ARCHITECTURES) - {"nanogpt"}))
        raise UnsupportedModelError(
            f"{source}: unknown model_type {model_type!r}; supported: {supported} "
            "(and nanoGPT-style n_layer/n_head/n_embd configs)"
        )
    arch = ARCHITECTURES[model_type]
    if arch == "bdh":
        from tui_gen.models.bdh_config import parse_bdh

        try:
            cfg = ModelConfig(**parse_bdh(raw, source))
        except (KeyError, TypeError, ValueError) as e:
            raise ModelLoadError(
                f"{source}: missing or invalid field {e} for a bdh model; it needs n_layer, "
                "n_embd, n_head and mlp_internal_dim_multiplier"
            ) from None
        cfg.raw = raw
        _validate(cfg, source)
        return cfg
    try:
        if arch == "gpt2":
            cfg = _parse_gpt2(raw, model_type)
        else:
            cfg = _parse_llama(raw, model_type)
    except (KeyError, TypeError, ValueError) as e:
        raise ModelLoadError(
            f"{source}: missing or invalid field {e} for a {model_type} model; "
            "re-export config.json from the training code"
        ) from None
    cfg.raw = raw
    _validate(cfg, source)
    return cfg


def _dtype_of(raw: dict[str, Any]) -> str | None:
    dt = _first(raw, "dtype", "torch_dtype")
    return str(dt).replace("torch.", "") if dt else None


def _parse_gpt2(raw: dict[str, Any], model_type: str) -> ModelConfig:
    hidden = int(_first(raw, "n_embd", "hidden_size"))
    heads = int(_first(raw, "n_head", "num_attention_heads"))
    inner = _first(raw, "n_inner", "intermediate_size")
    return ModelConfig(
        model_type=model_type,
        arch="gpt2",
        vocab_size=int(raw["vocab_size"]),
        hidden_size=hidden,
        num_layers=int(_first(raw, "n_layer", "num_hidden_layers")),
        num_heads=heads,
        num_kv_heads=heads,
        head_dim=hidden // heads,
        intermediate_size=int(inner) if inner else 4 * hidden,
        max_position_embeddings=int(
            _first(raw, "n_positions", "block_size", "n_ctx", "max_position_embeddings")
        ),
        norm_eps=float(_first(raw, "layer_norm_epsilon", "layer_norm_eps", default=1e-5)),
        tie_word_embeddings=bool(raw.get("tie_word_embeddings", True)),
        bias=bool(raw.get("bias", True)),
        # nanoGPT uses exact GELU; HF GPT-2 the tanh approximation ("gelu_new").
        activation=str(
            raw.get("activation_function", "gelu" if model_type == "nanogpt" else "gelu_new")
        ),
        dtype=_dtype_of(raw),
        bos_token_id=raw.get("bos_token_id"),
        eos_token_id=raw.get("eos_token_id"),
        pad_token_id=raw.get("pad_token_id"),
    )


def _parse_llama(raw: dict[str, Any], model_type: str) -> ModelConfig:
    hidden = int(raw["hidden_size"])
    heads = int(raw["num_attention_heads"])
    kv_heads = int(_first(raw, "num_key_value_heads", default=heads))
    head_dim = _first(raw, "head_dim")
    rope = raw.get("rope_parameters") or {}
    rope_theta = float(_first(raw, "rope_theta", default=rope.get("rope_theta", 10000.0)))
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
        max_position_embeddings=int(_first(raw, "max_position_embeddings", default=2048)),
        norm_eps=float(_first(raw, "rms_norm_eps", default=1e-6)),
        tie_word_embeddings=bool(raw.get("tie_word_embeddings", False)),
        rope_theta=rope_theta,
        rope_scaling=scaling,
        attention_bias=bool(raw.get("attention_bias", model_type == "qwen2")),
        mlp_bias=bool(raw.get("mlp_bias", False)),
        dtype=_dtype_of(raw),
        bos_token_id=raw.get("bos_token_id"),
        eos_token_id=raw.get("eos_token_id"),
        pad_token_id=raw.get("pad_token_id"),
    )


def _validate(cfg: ModelConfig, source: str) -> None:
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
    if cfg.arch == "gpt2" and cfg.hidden_size % cfg.num_heads:
        raise ModelLoadError(
            f"{source}: n_embd ({cfg.hidden_size}) must be divisible by n_head ({cfg.num_heads})"
        )


def load_config(model_dir: Path) -> ModelConfig:
    path = model_dir / "config.json"
    return parse_config(read_json(path), str(path))
