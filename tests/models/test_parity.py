"""Our loader + model code against transformers on the same saved checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tiny_models import make_model

from tui_gen.engine.generator import Generator
from tui_gen.models.kv_cache import KVCache

PROMPTS = ["Hello", "The quick brown fox jumps", "def add(a, b):\n    return", "日本語 🍕"]


def _hf(path: Path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()


@pytest.fixture(scope="module")
def variants(tiny_root: Path) -> dict[str, Path]:
    return {
        "gpt2": make_model(tiny_root / "p-gpt2", "gpt2", seed=1),
        "gpt2-untied": make_model(tiny_root / "p-gpt2u", "gpt2", seed=2, tie=False),
        "llama": make_model(tiny_root / "p-llama", "llama", seed=3),
        "llama-tied": make_model(tiny_root / "p-llamat", "llama", seed=4, tie=True),
        "llama-sharded": make_model(tiny_root / "p-llamas", "llama", seed=5, max_shard_size="60KB"),
        "llama3-rope": make_model(
            tiny_root / "p-llama3",
            "llama",
            seed=6,
            rope_scaling={
                "rope_type": "llama3",
                "factor": 8.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 64,
            },
        ),
        "linear-rope": make_model(
            tiny_root / "p-linear",
            "llama",
            seed=7,
            rope_scaling={"rope_type": "linear", "factor": 2.0},
        ),
        "qwen2": make_model(tiny_root / "p-qwen2", "qwen2", seed=8),
        "mistral": make_model(tiny_root / "p-mistral", "mistral", seed=9),
    }


NAMES = [
    "gpt2",
    "gpt2-untied",
    "llama",
    "llama-tied",
    "llama-sharded",
    "llama3-rope",
    "linear-rope",
    "qwen2",
    "mistral",
]


@pytest.mark.parametrize("name", NAMES)
def test_logits_match_transformers(variants: dict[str, Path], name: str) -> None:
    path = variants[name]
    ours = Generator.load(path, device="cpu", dtype="float32")
    ref = _hf(path)
    if name == "llama-sharded":
        assert (path / "model.safetensors.index.json").exists()
    for prompt in PROMPTS:
        ids = torch.tensor([ours.encode(prompt)])
        with torch.no_grad():
            expected = ref(ids).logits
            got = ours.model(ids)
        assert got.shape == expected.shape
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", ["gpt2", "llama", "qwen2", "llama-tied"])
def test_greedy_ids_match_transformers(variants: dict[str, Path], name: str) -> None:
    path = variants[name]
    ours = Generator.load(path, device="cpu", dtype="float32")
    ref = _hf(path)
    for prompt in PROMPTS[:3]:
        ids = ours.encode(prompt)
        with torch.no_grad():
            out = ref.generate(
                torch.tensor([ids]),
                attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                max_new_tokens=32,
                do_sample=False,
                pad_token_id=0,
            )
        expected = out[0, len(ids) :].tolist()
        result = ours.generate_result(ids, do_sample=False, max_new_tokens=32)
        if expected[-1] in ours.eos_token_ids:  # transformers keeps the eos token, we do not
            assert result.finish_reason == "eos"
            expected = expected[:-1]
        else:
            assert result.finish_reason == "length"
        assert result.token_ids == expected


@pytest.mark.parametrize("name", ["gpt2", "llama", "qwen2"])
def test_cached_decode_equals_full_recompute(variants: dict[str, Path], name: str) -> None:
    gen = Generator.load(variants[name], device="cpu", dtype="float32")
    cfg = gen.config
    ids = torch.randint(0, cfg.vocab_size, (1, 23), generator=torch.Generator().manual_seed(0))
    T = ids.shape[1]
    with torch.no_grad():
        full = gen.model(ids)  # (1, T, V)
        cache = KVCache(cfg.num_layers, 1, cfg.num_kv_heads, 64, cfg.head_dim, torch.float32, "cpu")
        pieces = [gen.model(ids[:, :5], start=0, cache=cache)]
        pos = 5
        for chunk in (3, 1, 1, T - 10):  # uneven chunks exercise masks with start > 0
            pieces.append(gen.model(ids[:, pos : pos + chunk], start=pos, cache=cache))
            pos += chunk
    assert pos == T
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=1e-5, rtol=0)


def test_last_only_equals_last_row(variants: dict[str, Path]) -> None:
    gen = Generator.load(variants["llama"], device="cpu", dtype="float32")
    ids = torch.tensor([gen.encode("Numbers: 1 2 3")])
    with torch.no_grad():
        torch.testing.assert_close(gen.model(ids, last_only=True), gen.model(ids)[:, -1:])


def test_bfloat16_runs_and_is_close(variants: dict[str, Path]) -> None:
    f32 = Generator.load(variants["llama"], device="cpu", dtype="float32")
    bf16 = Generator.load(variants["llama"], device="cpu", dtype="bfloat16")
    assert bf16.dtype == torch.bfloat16
    assert next(bf16.model.parameters()).dtype == torch.bfloat16
    ids = torch.tensor([f32.encode("Hello world")])
    with torch.no_grad():
        a, b = f32.model(ids), bf16.model(ids).float()
    assert (a - b).abs().max() < 0.1 * a.abs().max()
