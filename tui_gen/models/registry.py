"""The model registry: every architecture family tui-gen runs, and how to recognise its files.

The loader, the GGUF reader, the decode layout, the native step and `info` ask this module (by
HF `model_type` or GGUF `general.architecture`) instead of testing architecture names.

Adding a family (say Qwen3) takes one model module and one entry in `FAMILIES`:

1. ``tui_gen/models/qwen3.py`` with

   * a model class subclassing :class:`tui_gen.models.family.CausalLM`: ``__init__(cfg)``,
     ``forward`` (the signature in CausalLM), parameter names equal to the Hugging Face
     checkpoint's, ``convert_weight`` (checkpoint name/tensor -> ours, or None to skip),
     ``get_input_embeddings``/``set_input_embeddings``, optionally ``fuse_projections``;
   * ``config_from_hf(raw, model_type) -> ModelConfig``: read config.json's spellings (use
     ``config.first``, ``dtype_of``, ``token_ids``); raise KeyError/ValueError on a missing or bad
     field, ModelLoadError/UnsupportedModelError for a clearer message (the caller adds the
     file name). Set ``arch`` to the family's name;
   * optionally ``native_spec() -> NativeSpec`` on the model class, when decode.c computes what
     the model does (pre-norm blocks, RMS or Layer norm, fused q/k/v, one of the activations,
     optional rotary table). Without it the model decodes in torch; nothing else changes.

2. A :class:`tui_gen.models.family.Family` entry below: its name, the HF model_types it reads,
   the model class (lazily imported), ``config_from_hf``, ``describes`` (model names for error
   messages) and ``mlp_matrices`` (weight matrices per MLP, for `info`'s memory estimate).

3. For GGUF files, a :class:`tui_gen.models.family.GGUFFormat` as the entry's ``gguf`` (see
   models/llama_gguf.py): the ``general.architecture`` values it reads and the HF model_type
   each becomes, ``config`` (metadata -> config.json dict), ``tensor_name`` (GGUF -> HF names),
   ``expected_shapes`` and ``permuted_heads`` (llama.cpp's q/k row permutation, if any).

Then add the family to tests/models/test_registry.py's parity and lookup tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tui_gen.errors import ModelLoadError, UnsupportedModelError
from tui_gen.models import (
    bdh_config,
    gemma,
    gpt2,
    gpt2_gguf,
    granite,
    llama,
    llama_gguf,
    olmo2,
    phi3,
    qwen3,
    smollm3,
)
from tui_gen.models.config import ModelConfig, read_json, validate
from tui_gen.models.family import CausalLM, Family


def _gpt2_class() -> type[CausalLM]:
    return gpt2.GPT2


def _llama_class() -> type[CausalLM]:
    return llama.Llama


def _qwen3_class() -> type[CausalLM]:
    return qwen3.Qwen3


def _gemma_class() -> type[CausalLM]:
    return gemma.Gemma


def _olmo2_class() -> type[CausalLM]:
    return olmo2.Olmo2


def _granite_class() -> type[CausalLM]:
    return granite.Granite


def _smollm3_class() -> type[CausalLM]:
    return smollm3.SmolLM3


def _phi3_class() -> type[CausalLM]:
    return phi3.Phi3


def _bdh_class() -> type[CausalLM]:
    from tui_gen.models.bdh import BDH

    return BDH


#: in the order `infer_model_type` tries them: a config.json without model_type is BDH's when it
#: has BDH's multiplier key, before nanoGPT's n_layer/n_embd match it
FAMILIES: tuple[Family, ...] = (
    Family(
        name="bdh",
        hf_model_types=("bdh",),
        model_class=_bdh_class,
        config_from_hf=bdh_config.config_from_hf,
        describes="BDH (pathwaycom/bdh, byte-level, recurrent state)",
        mlp_matrices=3,  # encoder, encoder_v, decoder (shared by every layer)
        infer_model_type=bdh_config.infer_model_type,
        num_parameters=bdh_config.num_params,
    ),
    Family(
        name="gpt2",
        hf_model_types=("gpt2", "nanogpt"),
        model_class=_gpt2_class,
        config_from_hf=gpt2.config_from_hf,
        describes="GPT-2, nanoGPT",
        mlp_matrices=2,
        infer_model_type=gpt2.infer_model_type,
        gguf=gpt2_gguf.FORMAT,
    ),
    Family(
        name="llama",
        hf_model_types=("llama", "mistral", "qwen2"),
        model_class=_llama_class,
        config_from_hf=llama.config_from_hf,
        describes="SmolLM2, TinyLlama, Llama 2/3, Mistral, Qwen2",
        mlp_matrices=3,
        gguf=llama_gguf.FORMAT,
    ),
    Family(
        name="olmo2",
        hf_model_types=("olmo2",),
        model_class=_olmo2_class,
        config_from_hf=olmo2.config_from_hf,
        gguf=olmo2.GGUF,
        describes="OLMo-2",
        mlp_matrices=3,
    ),
    Family(
        name="granite",
        hf_model_types=("granite",),
        model_class=_granite_class,
        config_from_hf=granite.config_from_hf,
        gguf=granite.GGUF,
        describes="Granite 3",
        mlp_matrices=3,
    ),
    Family(
        name="smollm3",
        hf_model_types=("smollm3",),
        model_class=_smollm3_class,
        config_from_hf=smollm3.config_from_hf,
        gguf=smollm3.GGUF,
        describes="SmolLM3",
        mlp_matrices=3,
    ),
    Family(
        name="phi3",
        hf_model_types=("phi3",),
        model_class=_phi3_class,
        config_from_hf=phi3.config_from_hf,
        gguf=phi3.GGUF,
        describes="Phi-3, Phi-4-mini",
        mlp_matrices=3,
    ),
    Family(
        name="qwen3",
        hf_model_types=("qwen3",),
        model_class=_qwen3_class,
        config_from_hf=qwen3.config_from_hf,
        describes="Qwen3",
        mlp_matrices=3,
        gguf=qwen3.GGUF,
    ),
    Family(
        name="gemma",
        hf_model_types=("gemma2", "gemma3_text", "gemma3"),
        model_class=_gemma_class,
        config_from_hf=gemma.config_from_hf,
        describes="Gemma 2, Gemma 3 (text)",
        mlp_matrices=3,
        gguf=gemma.GGUF,
    ),
)

_BY_NAME = {f.name: f for f in FAMILIES}
_BY_MODEL_TYPE = {mt: f for f in FAMILIES for mt in f.hf_model_types}
_BY_GGUF = {a: f for f in FAMILIES if f.gguf for a in f.gguf.model_types}


def family(name: str) -> Family:
    """A family by its own name (ModelConfig.arch)."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise UnsupportedModelError(
            f"unknown architecture family {name!r}; supported: {', '.join(_BY_NAME)}"
        ) from None


def hf_model_types() -> list[str]:
    return sorted(_BY_MODEL_TYPE)


def gguf_architectures() -> list[str]:
    return sorted(_BY_GGUF)


def for_model_type(model_type: str | None, source: str = "config.json") -> Family:
    """The family reading HF `model_type`; one error line naming the supported ones if none."""
    if model_type in _BY_MODEL_TYPE:
        return _BY_MODEL_TYPE[model_type]
    supported = ", ".join(hf_model_types())
    raise UnsupportedModelError(
        f"{source}: unknown model_type {model_type!r}; supported: {supported} "
        "(and nanoGPT-style n_layer/n_head/n_embd configs)"
    )


def for_gguf(architecture: str, source: str) -> Family:
    """The family reading GGUF `general.architecture`; one error line if none does."""
    if architecture in _BY_GGUF:
        return _BY_GGUF[architecture]
    models = "; ".join(f.describes for f in FAMILIES if f.gguf)
    raise UnsupportedModelError(
        f"{source}: unsupported architecture {architecture!r}; supported: "
        f"{', '.join(gguf_architectures())} ({models})"
    )


def model_class(cfg: ModelConfig) -> type[CausalLM]:
    return family(cfg.arch).model_class()


def build_model(cfg: ModelConfig) -> CausalLM:
    return model_class(cfg)(cfg)


def infer_model_type(raw: dict[str, Any]) -> str | None:
    """config.json's model_type, else one guessed from `architectures` or the keys."""
    mt = raw.get("model_type")
    if mt:
        return str(mt)
    for a in raw.get("architectures") or []:
        a = str(a).lower()
        for key in sorted(_BY_MODEL_TYPE, key=len, reverse=True):
            if a.startswith(key):
                return key
    for f in FAMILIES:
        if guess := f.infer_model_type(raw):
            return guess
    return None


def parse_config(raw: dict[str, Any], source: str = "config.json") -> ModelConfig:
    """Normalise a config.json dict (HF 4.x/5.x, nanoGPT) into a ModelConfig."""
    model_type = infer_model_type(raw)
    fam = for_model_type(model_type, source)
    assert model_type is not None
    try:
        cfg = fam.config_from_hf(raw, model_type)
    except (KeyError, TypeError, ValueError, OverflowError) as e:
        raise ModelLoadError(
            f"{source}: missing or invalid field {e} for a {model_type} model; "
            "re-export config.json from the training code"
        ) from None
    except UnsupportedModelError:
        raise
    except ModelLoadError as e:
        raise ModelLoadError(f"{source}: {e}") from None
    cfg.raw = raw
    validate(cfg, source)
    return cfg


def min_parameters(cfg: ModelConfig) -> int:
    """A lower bound of the parameters a config implies: attention and MLP matrices of every
    layer plus one embedding (what every family has; biases, norms, a separate head excluded),
    or the family's own count."""
    count = family(cfg.arch).num_parameters
    if count is not None:
        return count(cfg)
    h, q, kv = cfg.hidden_size, cfg.num_heads * cfg.head_dim, cfg.num_kv_heads * cfg.head_dim
    mlp = family(cfg.arch).mlp_matrices * h * cfg.intermediate_size
    return cfg.num_layers * (2 * h * q + 2 * h * kv + mlp) + cfg.vocab_size * h


def check_weights(cfg: ModelConfig, elements: int, source: str) -> None:
    """Refuse a config that implies more parameters than the weight files hold, before the
    model is built (a hostile config would otherwise allocate for a model that is not there).
    Only a config far larger than its weights fails here: a few missing tensors are named by
    the loader's tensor-by-tensor check instead."""
    need = min_parameters(cfg)
    if need > 2 * elements:
        raise ModelLoadError(
            f"{source}: describes a model of at least {need:,} parameters but the weights hold "
            f"{elements:,} numbers; the config and the weights do not belong together"
        )


def load_config(model_dir: Path) -> ModelConfig:
    path = model_dir / "config.json"
    return parse_config(read_json(path), str(path))
