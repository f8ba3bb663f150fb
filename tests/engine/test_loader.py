"""Opening model directories: config spellings, special tokens, and every way a directory breaks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from tui_gen import Generator
from tui_gen.engine.loading.loader import load_model, resolve_device, resolve_dtype
from tui_gen.errors import ModelLoadError, TuiGenError, UnsupportedModelError
from tui_gen.models.registry import parse_config


@pytest.fixture
def broken(tmp_path: Path, tiny_llama: Path) -> Path:
    """A fresh copy of a good model directory, to break in one way per test."""
    out = tmp_path / "model"
    shutil.copytree(tiny_llama, out)
    return out


def _edit_config(d: Path, **changes) -> None:
    cfg = json.loads((d / "config.json").read_text())
    cfg.update(changes)
    (d / "config.json").write_text(json.dumps(cfg))


# --- config spellings ----------------------------------------------------------------------

LLAMA_BASE = {
    "model_type": "llama",
    "vocab_size": 100,
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 128,
}


def test_transformers_4_and_5_spellings_agree() -> None:
    v4 = parse_config({**LLAMA_BASE, "rope_theta": 5e5, "torch_dtype": "bfloat16"})
    v5 = parse_config(
        {
            **LLAMA_BASE,
            "rope_parameters": {"rope_theta": 5e5, "rope_type": "default"},
            "dtype": "bfloat16",
        }
    )
    assert (v4.rope_theta, v4.dtype) == (v5.rope_theta, v5.dtype) == (5e5, "bfloat16")
    assert v4.rope_scaling is None and v5.rope_scaling is None


def test_head_dim_present_or_derived_and_gqa_default() -> None:
    assert parse_config(LLAMA_BASE).head_dim == 16
    assert parse_config({**LLAMA_BASE, "head_dim": 32}).head_dim == 32
    assert parse_config(LLAMA_BASE).num_kv_heads == 4
    assert parse_config({**LLAMA_BASE, "num_key_value_heads": 2}).num_kv_heads == 2


def test_rope_scaling_kinds() -> None:
    l3 = parse_config(
        {**LLAMA_BASE, "rope_scaling": {"rope_type": "llama3", "factor": 8.0}, "rope_theta": 5e5}
    )
    assert l3.rope_scaling["rope_type"] == "llama3"
    v5 = parse_config(
        {**LLAMA_BASE, "rope_parameters": {"rope_type": "linear", "factor": 2.0, "rope_theta": 1e4}}
    )
    assert v5.rope_scaling["rope_type"] == "linear" and v5.rope_theta == 1e4
    with pytest.raises(UnsupportedModelError, match="yarn"):
        parse_config({**LLAMA_BASE, "rope_scaling": {"type": "yarn", "factor": 4.0}})


def test_nanogpt_keys() -> None:
    cfg = parse_config(
        {
            "n_layer": 3,
            "n_head": 4,
            "n_embd": 64,
            "block_size": 128,
            "vocab_size": 256,
            "bias": False,
        }
    )
    assert (cfg.arch, cfg.num_layers, cfg.max_position_embeddings) == ("gpt2", 3, 128)
    assert cfg.bias is False and cfg.activation == "gelu" and cfg.intermediate_size == 256


def test_qwen2_has_qkv_bias_by_default() -> None:
    cfg = parse_config({**LLAMA_BASE, "model_type": "qwen2"})
    assert cfg.attention_bias


def test_unknown_model_type_names_supported_ones(broken: Path) -> None:
    _edit_config(broken, model_type="mamba")
    with pytest.raises(UnsupportedModelError) as e:
        load_model(broken)
    msg = str(e.value)
    assert "mamba" in msg and "llama" in msg and "gpt2" in msg and "config.json" in msg


def test_dtype_and_device_resolution() -> None:
    cfg = parse_config({**LLAMA_BASE, "torch_dtype": "float16"})
    cpu = torch.device("cpu")
    assert resolve_dtype("auto", cfg, cpu) == torch.float32  # fp16 is slow on the CPU
    assert resolve_dtype("bfloat16", cfg, cpu) == torch.bfloat16
    with pytest.raises(TuiGenError, match="unknown dtype"):
        resolve_dtype("float8", cfg, cpu)
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    assert resolve_device("cpu") == cpu
    if not torch.cuda.is_available():
        with pytest.raises(TuiGenError, match="CUDA is not available"):
            resolve_device("cuda:0")
    with pytest.raises(TuiGenError, match=r"unknown device|unsupported device"):
        resolve_device("tpu")


# --- special tokens ------------------------------------------------------------------------


def test_special_tokens_order_of_trust(broken: Path) -> None:
    tok = json.loads((broken / "tokenizer.json").read_text())
    vocab = {t["content"]: t["id"] for t in tok["added_tokens"]}
    (broken / "generation_config.json").write_text(
        json.dumps({"eos_token_id": [vocab["<|end|>"], vocab["<|user|>"]], "bos_token_id": 0})
    )
    g = load_model(broken)
    # tokenizer_config.json wins for the single-valued bos; generation_config adds stop ids
    assert g.tokenizer.bos_token_id == vocab["<|endoftext|>"]
    assert g.tokenizer.eos_token_ids == [vocab["<|end|>"], vocab["<|user|>"]]
    # without tokenizer_config.json, generation_config.json is next
    (broken / "tokenizer_config.json").unlink()
    g = load_model(broken)
    assert g.tokenizer.bos_token_id == 0
    assert g.tokenizer.chat_template is None


def test_chat_template_from_jinja_file(broken: Path) -> None:
    (broken / "chat_template.jinja").write_text("{{ messages[0]['content'] }}")
    assert load_model(broken).tokenizer.chat_template == "{{ messages[0]['content'] }}"


def test_generation_config_defaults_and_info(broken: Path) -> None:
    (broken / "generation_info.json").write_text(json.dumps({"steps": 123}))
    g = Generator.load(broken)
    assert (g.defaults.temperature, g.defaults.top_k) == (0.7, 20)
    assert g.loaded.generation_info == {"steps": 123}


def test_weights_stay_a_single_copy(tiny_llama: Path) -> None:
    g = load_model(tiny_llama)
    emb = g.model.model.embed_tokens.weight
    assert g.model.lm_head.weight.data_ptr() != emb.data_ptr()  # untied model: separate
    assert all(p.device.type == "cpu" and not p.requires_grad for p in g.model.parameters())


def test_max_context_sizes_cache(tiny_llama: Path) -> None:
    g = Generator.load(tiny_llama, max_context=64)
    c = g.config
    assert g.kv_cache_bytes == 2 * c.num_layers * 64 * c.num_kv_heads * c.head_dim * 4
    g.generate("hi", max_new_tokens=1)
    assert g._cache is not None and g._cache.nbytes == g.kv_cache_bytes
    with pytest.raises(TuiGenError, match="max_context"):
        Generator.load(tiny_llama, max_context=1)


# --- broken directories: one error type, naming the file and the problem ----------------------


@pytest.mark.parametrize(
    ("breakage", "fragments"),
    [
        ("no-config", ["config.json", "not found"]),
        ("no-tokenizer", ["tokenizer.json", "not found"]),
        ("no-weights", ["model.safetensors", "not found"]),
        ("bad-json", ["config.json", "malformed JSON"]),
        ("config-not-object", ["config.json", "JSON object"]),
        ("config-missing-field", ["config.json", "hidden_size"]),
        ("truncated", ["model.safetensors", "truncated or corrupt"]),
        ("garbage", ["model.safetensors", "truncated or corrupt"]),
        ("wrong-shape", ["model.safetensors", "shape"]),
        ("missing-tensor", ["missing", "model.layers.1"]),
        ("bad-tokenizer", ["tokenizer.json", "cannot be read"]),
        ("only-bin", ["pytorch_model.bin", "safetensors"]),
        ("heads", ["num_key_value_heads"]),
        ("no-dir", ["no such file"]),
    ],
)
def test_broken_directory(broken: Path, breakage: str, fragments: list[str]) -> None:
    weights = broken / "model.safetensors"
    if breakage == "no-config":
        (broken / "config.json").unlink()
    elif breakage == "no-tokenizer":
        (broken / "tokenizer.json").unlink()
    elif breakage == "no-weights":
        weights.unlink()
    elif breakage == "bad-json":
        (broken / "config.json").write_text('{"model_type": "llama",')
    elif breakage == "config-not-object":
        (broken / "config.json").write_text("[1, 2]")
    elif breakage == "config-missing-field":
        cfg = json.loads((broken / "config.json").read_text())
        del cfg["hidden_size"]
        (broken / "config.json").write_text(json.dumps(cfg))
    elif breakage == "truncated":
        data = weights.read_bytes()
        weights.write_bytes(data[: len(data) // 2])
    elif breakage == "garbage":
        weights.write_bytes(b"\x00garbage" * 100)
    elif breakage in ("wrong-shape", "missing-tensor"):
        from safetensors.torch import load_file, save_file

        sd = load_file(weights)
        if breakage == "wrong-shape":
            sd["model.layers.0.mlp.up_proj.weight"] = torch.zeros(3, 3)
        else:
            sd = {k: v for k, v in sd.items() if not k.startswith("model.layers.1.")}
        save_file(sd, weights)
    elif breakage == "bad-tokenizer":
        (broken / "tokenizer.json").write_text('{"nonsense": true}')
    elif breakage == "only-bin":
        weights.rename(broken / "pytorch_model.bin")
    elif breakage == "heads":
        _edit_config(broken, num_key_value_heads=3)
    elif breakage == "no-dir":
        broken = broken / "nope"
    with pytest.raises(ModelLoadError) as e:
        Generator.load(broken)
    msg = str(e.value)
    assert "\n" not in msg
    for fragment in fragments:
        assert fragment in msg, msg


def test_sharded_index_with_missing_shard(tmp_path: Path, tiny_root: Path) -> None:
    from tiny_models import make_model

    d = make_model(tmp_path / "sharded", "llama", max_shard_size="60KB")
    index = json.loads((d / "model.safetensors.index.json").read_text())
    shard = sorted(set(index["weight_map"].values()))[-1]
    (d / shard).unlink()
    with pytest.raises(ModelLoadError, match=shard):
        Generator.load(d)


def test_tokenizer_larger_than_model(broken: Path) -> None:
    _edit_config(broken, vocab_size=50)
    with pytest.raises(ModelLoadError, match="tokenizer"):
        Generator.load(broken)
