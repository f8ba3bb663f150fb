"""`tui-gen info`: the numbers agree with transformers and the files on disk."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from test_cli import ENV, TUI_GEN

from tui_gen.cli.info import describe, format_text
from tui_gen.errors import TuiGenError


def _hf_params(path: Path) -> int:
    import transformers

    return transformers.AutoModelForCausalLM.from_pretrained(path).num_parameters()


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_describe_matches_the_checkpoint(arch: str, request: pytest.FixtureRequest) -> None:
    path: Path = request.getfixturevalue(f"tiny_{arch}")
    d = describe(str(path), device="cpu")
    assert d["parameters"] == _hf_params(path)  # tied embeddings counted once
    cfg = json.loads((path / "config.json").read_text())
    assert d["vocab_size"] == cfg["vocab_size"]
    assert d["context_length"] == cfg.get("max_position_embeddings", cfg.get("n_positions"))
    per_token = 2 * d["layers"] * d["kv_heads"] * d["head_dim"] * 4  # k and v, float32
    assert d["kv_cache_bytes_per_1k_tokens"] == 1024 * per_token
    assert d["dtype"] == "float32" and d["stored_dtype"] == "float32"
    assert d["chat_template"] is True
    assert d["special_tokens"]["bos"] == "<|endoftext|>"
    assert d["special_tokens"]["eos"] == "<|end|>"
    sizes = {f["name"]: f["bytes"] for f in d["files"]}
    assert sizes["model.safetensors"] == (path / "model.safetensors").stat().st_size
    assert d["generation_config"]["top_k"] == 20
    assert d["generation_info"] is None
    text = format_text(d)
    assert f"{d['parameters']:,}" in text and "chat template   yes" in text


def test_sharded_bf16_and_generation_info(tmp_path: Path) -> None:
    from tiny_models import make_model  # (conftest puts tests/ on the path)

    path = make_model(tmp_path / "sharded", "llama", max_shard_size="100KB")
    assert (path / "model.safetensors.index.json").exists()
    (path / "generation_info.json").write_text(json.dumps({"steps": 600, "loss": 1.25}))
    d = describe(str(path), device="cpu", dtype="bfloat16", max_context=100)
    assert d["parameters"] == _hf_params(path)
    assert d["dtype"] == "bfloat16"
    assert d["kv_cache_bytes_per_1k_tokens"] == 1024 * 2 * 2 * 2 * 16 * 2
    assert d["max_context"] == 100
    assert d["generation_info"] == {"steps": 600, "loss": 1.25}
    assert '"loss": 1.25' in format_text(d)


def test_byte_model_without_tokenizer_or_template(tiny_byte: Path) -> None:
    d = describe(str(tiny_byte), device="cpu")
    assert d["vocab_size"] == 256 and d["chat_template"] is False
    assert d["special_tokens"]["eos_ids"] == []
    text = format_text(d)
    assert "chat template   no" in text and "eos -" in text


def test_missing_model_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(TuiGenError, match="no such file"):
        describe(str(tmp_path / "nope"))


@pytest.mark.slow
def test_console_script(tiny_llama: Path) -> None:
    r = subprocess.run(
        [TUI_GEN, "info", str(tiny_llama), "--json"], capture_output=True, text=True, env=ENV
    )
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["architecture"] == "llama" and d["parameters"] > 0


def test_broken_config_is_a_user_error(tiny_llama: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(tiny_llama, broken)
    (broken / "config.json").write_text("{not json")
    with pytest.raises(TuiGenError, match=r"config\.json"):
        describe(str(broken))


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
@pytest.mark.parametrize("mode", [None, "int8", "int4"])
def test_weight_bytes_match_the_loaded_model(
    arch: str, mode: str | None, request: pytest.FixtureRequest
) -> None:
    from tui_gen import Generator

    path: Path = request.getfixturevalue(f"tiny_{arch}")
    d = describe(str(path), device="cpu", dtype="float32", quantize=mode)
    assert d["quantization"] == mode
    model = Generator.load(path, device="cpu", dtype="float32", quantize=mode).model
    tensors = {id(t): t for t in [*model.parameters(), *model.buffers()]}
    real = sum(t.numel() * t.element_size() for t in tensors.values())
    assert abs(d["weight_bytes_in_memory"] - real) <= 0.05 * real
    text = format_text(d)
    assert (f"{mode} weight-only" in text) if mode else "--quantize int8|int4 for less" in text


def test_info_rejects_an_unknown_quantization(tiny_llama: Path) -> None:
    with pytest.raises(TuiGenError, match="unknown quantization 'int3'"):
        describe(str(tiny_llama), device="cpu", quantize="int3")


def test_info_says_what_decodes(tiny_llama: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tui_gen.engine.native import build

    if build._compiler() is not None:
        d = describe(str(tiny_llama), device="cpu", dtype="float32")
        assert d["decode_step"].startswith("native C kernels (")
        assert "decode step     native" in format_text(d)
    assert describe(str(tiny_llama), device="cpu", dtype="float16")["decode_step"].startswith(
        "torch (cpu, float16"
    )
    monkeypatch.setenv("TUI_GEN_NATIVE", "0")
    build.reset()
    try:
        d = describe(str(tiny_llama), device="cpu", dtype="float32", quantize="int8")
        assert d["decode_step"] == "torch (disabled by TUI_GEN_NATIVE=0)"
    finally:
        build.reset()


def test_info_shows_family_sliding_windows_and_soft_caps(tmp_path: Path) -> None:
    from tiny_models import make_model

    path = make_model(tmp_path / "g2", "gemma2", num_hidden_layers=3, sliding_window=6,
                      attn_logit_softcapping=50.0, final_logit_softcapping=30.0)  # fmt: skip
    d = describe(str(path), device="cpu")
    assert d["family"] == "gemma"
    assert d["sliding_window"] == "2 of 3 layers: window 6, others global"
    assert d["soft_caps"] == {"attention": 50.0, "logits": 30.0}
    text = format_text(d)
    assert "family          gemma" in text
    assert "soft-caps       attention 50, logits 30" in text
    plain = describe(str(make_model(tmp_path / "l", "llama")), device="cpu")
    assert plain["sliding_window"].startswith("none") and "soft-caps       none" in format_text(
        plain
    )
