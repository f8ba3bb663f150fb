"""The model registry: lookups by HF model_type and GGUF architecture, and its error lines."""

from __future__ import annotations

import pytest

from tui_gen.errors import UnsupportedModelError
from tui_gen.models import registry
from tui_gen.models.family import CausalLM
from tui_gen.models.gemma import Gemma
from tui_gen.models.gpt2 import GPT2
from tui_gen.models.granite import Granite
from tui_gen.models.llama import Llama
from tui_gen.models.olmo2 import Olmo2
from tui_gen.models.phi3 import Phi3
from tui_gen.models.smollm3 import SmolLM3
from tui_gen.models.qwen3 import Qwen3

LLAMA = {"hidden_size": 64, "num_attention_heads": 4, "num_hidden_layers": 2,
         "intermediate_size": 128, "vocab_size": 100}  # fmt: skip


@pytest.mark.parametrize(
    ("model_type", "family", "cls"),
    [("gpt2", "gpt2", GPT2), ("nanogpt", "gpt2", GPT2), ("llama", "llama", Llama),
     ("mistral", "llama", Llama), ("qwen2", "llama", Llama), ("olmo2", "olmo2", Olmo2),
     ("granite", "granite", Granite), ("smollm3", "smollm3", SmolLM3), ("phi3", "phi3", Phi3),
     ("qwen3", "qwen3", Qwen3),
     ("gemma2", "gemma", Gemma), ("gemma3_text", "gemma", Gemma), ("gemma3", "gemma", Gemma)],
)  # fmt: skip
def test_lookup_by_hf_model_type(model_type: str, family: str, cls: type[CausalLM]) -> None:
    fam = registry.for_model_type(model_type)
    assert fam.name == family
    assert fam.model_class() is cls
    assert model_type in registry.hf_model_types()


@pytest.mark.parametrize(
    ("arch", "model_type", "family"),
    [("llama", "llama", "llama"), ("qwen2", "qwen2", "llama"), ("gpt2", "gpt2", "gpt2"),
     ("olmo2", "olmo2", "olmo2"), ("granite", "granite", "granite"),
     ("smollm3", "smollm3", "smollm3"), ("phi3", "phi3", "phi3")],
)  # fmt: skip
def test_lookup_by_gguf_architecture(arch: str, model_type: str, family: str) -> None:
    fam = registry.for_gguf(arch, "x.gguf")
    assert fam.name == family
    assert fam.gguf is not None and fam.gguf.model_types[arch] == model_type


def test_unknown_architectures_are_one_line_naming_the_supported_ones() -> None:
    with pytest.raises(UnsupportedModelError) as e:
        registry.for_model_type("falcon", "m/config.json")
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("m/config.json: unknown model_type 'falcon'")
    assert "gemma2, gemma3, gemma3_text, gpt2, granite, llama, mistral, nanogpt, olmo2" in msg
    with pytest.raises(UnsupportedModelError) as e:
        registry.for_gguf("falcon", "m.gguf")
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith("m.gguf: unsupported architecture 'falcon'; supported: gemma2, gemma3, ")
    assert "olmo2, phi3, qwen2, qwen3, smollm3 (" in msg
    with pytest.raises(UnsupportedModelError, match="unknown model_type 'falcon'"):
        registry.parse_config({**LLAMA, "model_type": "falcon"})


def test_parse_config_picks_the_family_and_infers_model_types() -> None:
    cfg = registry.parse_config({**LLAMA, "architectures": ["Qwen2ForCausalLM"]})
    assert (cfg.model_type, cfg.arch, cfg.attention_bias) == ("qwen2", "llama", True)
    nano = registry.parse_config({"n_layer": 2, "n_head": 2, "n_embd": 32, "vocab_size": 50,
                                  "block_size": 64})  # fmt: skip
    assert (nano.model_type, nano.arch, nano.activation) == ("nanogpt", "gpt2", "gelu")
    assert isinstance(registry.build_model(nano), GPT2)


def test_family_errors_name_the_file() -> None:
    from tui_gen.errors import ModelLoadError

    with pytest.raises(ModelLoadError, match=r"^c\.json: n_embd \(30\) must be divisible"):
        registry.parse_config({"model_type": "gpt2", "n_layer": 1, "n_head": 4, "n_embd": 30,
                               "vocab_size": 5, "n_positions": 8}, "c.json")  # fmt: skip
    with pytest.raises(ModelLoadError, match="missing or invalid field 'hidden_size'"):
        registry.parse_config({"model_type": "llama"})


def test_every_family_is_complete() -> None:
    """What the registry's docstring asks of a family, checked for every entry."""
    for fam in registry.FAMILIES:
        assert registry.family(fam.name) is fam
        assert fam.hf_model_types and fam.describes and fam.mlp_matrices in (2, 3)
        cls = fam.model_class()
        assert issubclass(cls, CausalLM)
        for name in ("forward", "convert_weight", "get_input_embeddings", "native_spec"):
            assert getattr(cls, name) is not getattr(CausalLM, name), (fam.name, name)
