"""Qwen3, Gemma 3, Gemma 2 and sliding windows (Mistral, Qwen3, Gemma) against transformers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tiny_models import make_model

from tui_gen.engine.generator import Generator
from tui_gen.models.kv_cache import KVCache

LONG = "The quick brown fox jumps over the lazy dog. Preheat the oven to 200 degrees."
PROMPTS = ["Hello", "def add(a, b):\n    return a + b", LONG]


def _hf(path: Path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(
        path, dtype=torch.float32, attn_implementation="eager"
    ).eval()


@pytest.fixture(scope="module")
def fams(tiny_root: Path) -> dict[str, Path]:
    return {
        "qwen3": make_model(tiny_root / "f-qwen3", "qwen3", seed=11, head_dim=32),
        "qwen3-sliding": make_model(
            tiny_root / "f-qwen3s",
            "qwen3",
            seed=12,
            num_hidden_layers=3,
            use_sliding_window=True,
            sliding_window=6,
            max_window_layers=1,
            head_dim=16,
        ),
        "gemma3": make_model(
            tiny_root / "f-gemma3",
            "gemma3_text",
            seed=13,
            num_hidden_layers=4,
            sliding_window=6,
            sliding_window_pattern=2,
            rope_local_base_freq=100.0,
            rope_theta=10000.0,
        ),
        "gemma2": make_model(
            tiny_root / "f-gemma2",
            "gemma2",
            seed=14,
            num_hidden_layers=3,
            sliding_window=6,
            attn_logit_softcapping=2.0,
            final_logit_softcapping=3.0,
        ),
        "mistral-sliding": make_model(
            tiny_root / "f-mistral", "mistral", seed=15, sliding_window=5
        ),
    }


NAMES = ["qwen3", "qwen3-sliding", "gemma3", "gemma2", "mistral-sliding"]


@pytest.mark.parametrize("name", NAMES)
def test_logits_match_transformers(fams: dict[str, Path], name: str) -> None:
    ours = Generator.load(fams[name], device="cpu", dtype="float32")
    ref = _hf(fams[name])
    for prompt in PROMPTS:
        ids = torch.tensor([ours.encode(prompt)])
        with torch.no_grad():
            expected = ref(ids).logits
            got = ours.model(ids)
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", NAMES)
def test_greedy_ids_match_transformers(fams: dict[str, Path], name: str) -> None:
    ours = Generator.load(fams[name], device="cpu", dtype="float32")
    ref = _hf(fams[name])
    for prompt in PROMPTS[1:]:
        ids = ours.encode(prompt)
        with torch.no_grad():
            out = ref.generate(
                torch.tensor([ids]),
                attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                max_new_tokens=40,
                do_sample=False,
                pad_token_id=0,
                eos_token_id=None,
            )
        expected = out[0, len(ids) :].tolist()
        for i, t in enumerate(
            expected
        ):  # we stop at eos (and drop it), transformers was told not to
            if t in ours.eos_token_ids:
                expected = expected[:i]
                break
        result = ours.generate_result(ids, do_sample=False, max_new_tokens=40)
        assert result.token_ids == expected
        assert len(ids) + len(expected) > 12  # past every window


@pytest.mark.parametrize("name", NAMES)
def test_cached_decode_equals_full_recompute(fams: dict[str, Path], name: str) -> None:
    gen = Generator.load(fams[name], device="cpu", dtype="float32")
    cfg = gen.config
    ids = torch.randint(0, cfg.vocab_size, (1, 23), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        full = gen.model(ids)
        cache = KVCache(cfg.num_layers, 1, cfg.num_kv_heads, 64, cfg.head_dim, torch.float32, "cpu")
        pieces = [gen.model(ids[:, :5], start=0, cache=cache)]
        pos = 5
        for chunk in (3, 1, 1, 23 - 10):
            pieces.append(gen.model(ids[:, pos : pos + chunk], start=pos, cache=cache))
            pos += chunk
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=1e-5, rtol=0)


def test_configs_read_the_layout(fams: dict[str, Path]) -> None:
    q = Generator.load(fams["qwen3-sliding"], device="cpu", dtype="float32").config
    assert (q.arch, q.qk_norm, q.head_dim) == ("qwen3", True, 16)
    assert [q.layer_window(i) for i in range(3)] == [None, 6, 6]
    g3 = Generator.load(fams["gemma3"], device="cpu", dtype="float32").config
    assert [g3.layer_window(i) for i in range(4)] == [6, None, 6, None]
    assert (g3.rope_local_theta, g3.rope_theta, g3.query_pre_attn_scalar) == (100.0, 10000.0, 16)
    g2 = Generator.load(fams["gemma2"], device="cpu", dtype="float32").config
    assert (g2.attn_logit_softcapping, g2.final_logit_softcapping) == (2.0, 3.0)
    assert [g2.layer_window(i) for i in range(3)] == [6, None, 6]
    m = Generator.load(fams["mistral-sliding"], device="cpu", dtype="float32").config
    assert [m.layer_window(i) for i in range(2)] == [5, 5]


@pytest.mark.parametrize("mode", [None, "int8"])
@pytest.mark.parametrize("name", NAMES)
def test_native_step_matches_the_torch_forward(
    fams: dict[str, Path], name: str, mode: str | None
) -> None:
    """q/k norms, sandwich norms, GeGLU, two rotary tables, soft-caps and windows in decode.c."""
    from tui_gen.engine.native import build

    if build._compiler() is None:
        pytest.skip("no C compiler on this machine")
    gen = Generator.load(fams[name], device="cpu", dtype="float32", quantize=mode)
    assert gen.decode_backend == "native", gen._native
    decoder = gen._native[0]
    assert decoder is not None
    ids = list(range(3, 30))  # 27 positions: past every window (5 or 6)
    cache = gen._ensure_cache()
    with torch.inference_mode():
        full = gen.model(torch.tensor([ids]))[0]
        gen.model(torch.tensor([ids[:3]]), start=0, cache=cache)
        steps = [decoder.step(torch.tensor([[t]]), 3 + i, cache)[0, -1].clone() for i, t in
                 enumerate(ids[3:])]  # fmt: skip
    got, ref = torch.stack(steps), full[3:]
    assert ((got - ref).abs().max() / ref.abs().max()).item() < 1e-4
    assert torch.equal(got.argmax(-1), ref.argmax(-1))


@pytest.mark.parametrize("name", ["qwen3-sliding", "gemma3", "gemma2", "mistral-sliding"])
def test_batch_and_beam_respect_windows(fams: dict[str, Path], name: str) -> None:
    """Left-padded batches and beams see the same windows as one sequence alone."""
    gen = Generator.load(fams[name], device="cpu", dtype="float32")
    prompts = ["Hello", LONG, "def add(a, b):"]
    alone = [gen.generate_result(p, do_sample=False, max_new_tokens=16).text for p in prompts]
    assert gen.generate_batch(prompts, do_sample=False, max_new_tokens=16) == alone
    ref = _hf(fams[name])
    ids = gen.encode(LONG)
    with torch.no_grad():
        out = ref.generate(
            torch.tensor([ids]),
            attention_mask=torch.ones(1, len(ids), dtype=torch.long),
            num_beams=3,
            do_sample=False,
            max_new_tokens=12,
            eos_token_id=gen.eos_token_ids[0],
            pad_token_id=gen.eos_token_ids[0],
        )
    expected = out[0, len(ids) :].tolist()
    if gen.eos_token_ids[0] in expected:
        expected = expected[: expected.index(gen.eos_token_ids[0])]
    assert gen.beam_search(ids, 3, max_new_tokens=12).hypotheses[0].token_ids == expected
