"""OLMo-2, Granite, SmolLM3 and Phi-3 against transformers on tiny random checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tiny_models import make_model

from tui_gen.engine.generator import Generator
from tui_gen.models import registry
from tui_gen.models.kv_cache import KVCache

PROMPTS = ["Hello", "The quick brown fox jumps", "def add(a, b):\n    return"]
#: longer than the LongRoPE variant's original_max_position_embeddings (32 tokens)
LONG_PROMPT = "Preheat the oven to 200 degrees. Mix the flour, sugar and butter; bake. " * 3

LONGROPE = {
    "rope_type": "longrope",
    "short_factor": [1.0, 1.1, 1.3, 1.7],
    "long_factor": [1.0, 2.0, 4.0, 9.0],
    "original_max_position_embeddings": 32,
}


def _hf(path: Path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()


#: large enough weights that attention is far from uniform: a wrong q/k order or RoPE shows
INIT = 0.3


@pytest.fixture(scope="module")
def fams(tiny_root: Path) -> dict[str, Path]:
    return {
        "olmo2": make_model(tiny_root / "f-olmo2", "olmo2", seed=21, initializer_range=INIT),
        "granite": make_model(
            tiny_root / "f-granite", "granite", seed=22, initializer_range=INIT, embedding_multiplier=6.0,
            attention_multiplier=0.09, residual_multiplier=0.4, logits_scaling=3.0,
        ),
        "smollm3": make_model(
            tiny_root / "f-smollm3", "smollm3", seed=23, initializer_range=INIT, num_hidden_layers=4,
            no_rope_layer_interval=2, pad_token_id=None,
        ),
        "phi3": make_model(tiny_root / "f-phi3", "phi3", seed=24, initializer_range=INIT, partial_rotary_factor=0.5,
                           pad_token_id=None),
        "phi3-longrope": make_model(
            tiny_root / "f-phi3l", "phi3", seed=25, initializer_range=INIT, partial_rotary_factor=0.5, pad_token_id=None,
            original_max_position_embeddings=32, rope_parameters={**LONGROPE, "rope_theta": 10000.0,
                                                                  "partial_rotary_factor": 0.5},
        ),
    }  # fmt: skip


NAMES = ["olmo2", "granite", "smollm3", "phi3", "phi3-longrope"]


@pytest.mark.parametrize("name", NAMES)
def test_logits_match_transformers(fams: dict[str, Path], name: str) -> None:
    path = fams[name]
    ours = Generator.load(path, device="cpu", dtype="float32")
    assert ours.config.arch == name.split("-")[0]
    ref = _hf(path)
    for prompt in [*PROMPTS, LONG_PROMPT]:
        ids = torch.tensor([ours.encode(prompt)])
        with torch.no_grad():
            expected = ref(ids).logits
            got = ours.model(ids)
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)
    if name == "phi3-longrope":
        assert len(ours.encode(LONG_PROMPT)) > 32  # the long factors were exercised


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES[:4])
def test_greedy_ids_match_transformers(fams: dict[str, Path], name: str) -> None:
    path = fams[name]
    ours = Generator.load(path, device="cpu", dtype="float32")
    ref = _hf(path)
    for prompt in PROMPTS[1:]:
        ids = ours.encode(prompt)
        with torch.no_grad():
            out = ref.generate(
                torch.tensor([ids]),
                attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                max_new_tokens=40,
                do_sample=False,
                pad_token_id=0,
            )
        expected = out[0, len(ids) :].tolist()
        result = ours.generate_result(ids, do_sample=False, max_new_tokens=40)
        if expected[-1] in ours.eos_token_ids:
            expected = expected[:-1]
        assert result.token_ids == expected


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
        for chunk in (3, 1, 1, 13):
            pieces.append(gen.model(ids[:, pos : pos + chunk], start=pos, cache=cache))
            pos += chunk
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=1e-4, rtol=0)


def test_family_parameters_are_read(fams: dict[str, Path]) -> None:
    g = registry.load_config(fams["granite"]).family_params
    assert g == {"embedding_multiplier": 6.0, "attention_multiplier": 0.09,
                 "residual_multiplier": 0.4, "logits_scaling": 3.0}  # fmt: skip
    s = registry.load_config(fams["smollm3"]).family_params
    assert s["rope_layers"] == [True, False, True, False]
    p = registry.load_config(fams["phi3-longrope"]).family_params
    assert p["rotary_dim"] == 8 and p["original_max_position_embeddings"] == 32
    assert p["attention_factor"] == pytest.approx(1.2649, abs=1e-3)  # sqrt(1 + ln 8 / ln 32)


def _decode_natively(path: Path, mode: str | None = None) -> Generator:
    from tui_gen.engine.native import build

    if build._compiler() is None:
        pytest.skip("no C compiler on this machine")
    gen = Generator.load(path, device="cpu", dtype="float32", quantize=mode)
    assert gen.decode_backend == "native", gen._native
    assert gen.decode_reason == ""
    return gen


@pytest.mark.parametrize("mode", [None, "int8"])
@pytest.mark.parametrize("name", NAMES)
def test_native_step_matches_the_torch_forward(
    fams: dict[str, Path], name: str, mode: str | None
) -> None:
    """Post-norms and whole-projection q/k norms (OLMo-2), the four multipliers (Granite), NoPE
    layers (SmolLM3) and partial rotary (Phi-3, with LongRoPE's long factors) in decode.c."""
    gen = _decode_natively(fams[name], mode)
    assert registry.model_class(gen.config).native_unsupported(gen.config) is None
    decoder = gen._native[0]
    assert decoder is not None
    # the LongRoPE model prefills past original_max_position_embeddings (32), so the full
    # forward and every step use the long factors
    prefill = 34 if name == "phi3-longrope" else 3
    ids = [3 + (i * 7) % 90 for i in range(prefill + 24)]
    cache = gen._ensure_cache()
    with torch.inference_mode():
        full = gen.model(torch.tensor([ids]))[0]
        gen.model(torch.tensor([ids[:prefill]]), start=0, cache=cache)
        steps = [decoder.step(torch.tensor([[t]]), prefill + i, cache)[0, -1].clone()
                 for i, t in enumerate(ids[prefill:])]  # fmt: skip
    got, ref = torch.stack(steps), full[prefill:]
    assert ((got - ref).abs().max() / ref.abs().max()).item() < 1e-4
    assert torch.equal(got.argmax(-1), ref.argmax(-1))


@pytest.mark.parametrize("name", NAMES)
def test_native_greedy_ids_equal_the_torch_path(fams: dict[str, Path], name: str) -> None:
    native = _decode_natively(fams[name])
    torch_only = Generator.load(fams[name], device="cpu", dtype="float32")
    torch_only._native = (None, "forced off by the test")
    prompt = LONG_PROMPT if name == "phi3-longrope" else PROMPTS[1]
    a = native.generate_result(prompt, do_sample=False, max_new_tokens=30)
    b = torch_only.generate_result(prompt, do_sample=False, max_new_tokens=30)
    assert a.token_ids == b.token_ids and len(a.token_ids) > 5


def test_bad_family_fields_are_one_line(tmp_path: Path) -> None:
    from tui_gen.errors import ModelLoadError

    base = {"hidden_size": 64, "num_attention_heads": 4, "num_hidden_layers": 2,
            "intermediate_size": 128, "vocab_size": 100}  # fmt: skip
    with pytest.raises(ModelLoadError, match="no_rope_layers"):
        registry.parse_config({**base, "model_type": "smollm3", "no_rope_layers": [1]})
    with pytest.raises(ModelLoadError, match="short_factor"):
        bad = {"type": "longrope", "short_factor": [1.0]}
        registry.parse_config({**base, "model_type": "phi3", "rope_scaling": bad})
    with pytest.raises(ModelLoadError, match="logits_scaling"):
        registry.parse_config({**base, "model_type": "granite", "logits_scaling": 0})


def test_phi3_with_full_rotary_decodes_natively(tiny_root: Path) -> None:
    """Phi-3-mini (rotary over the whole head, LongRoPE): the native step computes it, and
    generation past original_max_position_embeddings equals the torch path's."""
    from tui_gen.engine.native import build

    if build._compiler() is None:
        pytest.skip("no C compiler on this machine")
    factors = {"short_factor": [1.0, 1.1, 1.3, 1.7, 1.9, 2.0, 2.1, 2.3],
               "long_factor": [1.0, 2.0, 4.0, 9.0, 11.0, 12.0, 14.0, 16.0]}  # fmt: skip
    path = make_model(
        tiny_root / "f-phi3n", "phi3", seed=26, initializer_range=INIT, pad_token_id=None,
        original_max_position_embeddings=32,
        rope_parameters={"rope_type": "longrope", **factors, "rope_theta": 10000.0},
    )  # fmt: skip
    native = Generator.load(path, device="cpu", dtype="float32")
    torch_only = Generator.load(path, device="cpu", dtype="float32")
    torch_only._native = (None, "forced off by the test")
    assert native.decode_backend == "native", native._native
    prompt = [3, 4, 5, 6, 7]
    a = native.generate_result(prompt, do_sample=False, max_new_tokens=40)
    b = torch_only.generate_result(prompt, do_sample=False, max_new_tokens=40)
    assert a.token_ids == b.token_ids and len(a.token_ids) == 40


def _hf_greedy(ref, ids: list[int], n: int, use_cache: bool = True) -> list[int]:
    with torch.no_grad():
        out = ref.generate(
            torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
            max_new_tokens=n, do_sample=False, pad_token_id=0, eos_token_id=None,
            use_cache=use_cache,
        )  # fmt: skip
    return out[0, len(ids) :].tolist()


def test_longrope_generation_crosses_the_switch_as_transformers_does(
    fams: dict[str, Path],
) -> None:
    """transformers' Phi-3 generate() drops its cache when the sequence first passes
    original_max_position_embeddings (32 here) and recomputes it with the long factors; so do we
    (keys kept from the short factors give other tokens past that point)."""
    path = fams["phi3-longrope"]
    ours = Generator.load(path, device="cpu", dtype="float32")
    assert ours.model.rope_switch == 32
    ref = _hf(path)
    for prompt in PROMPTS[1:]:
        ids = ours.encode(prompt)
        assert len(ids) < 32
        expected = _hf_greedy(ref, ids, 40)  # crosses position 32 while decoding
        saved, ours.tokenizer.eos_token_ids = ours.tokenizer.eos_token_ids, []
        try:
            got = ours.generate_result(ids, do_sample=False, max_new_tokens=40).token_ids
            # a reused prefix rotated by the short factors is recomputed, not kept
            longer = ids + expected[:30]
            again = ours.generate_result(longer, do_sample=False, max_new_tokens=4).token_ids
        finally:
            ours.tokenizer.eos_token_ids = saved
        assert got == expected
        assert again == _hf_greedy(ref, longer, 4)


@pytest.fixture(scope="module")
def windowed(tiny_root: Path) -> dict[str, Path]:
    """Sliding windows of 5 positions, as each family's config.json declares them."""
    return {
        "phi3": make_model(tiny_root / "w-phi3", "phi3", seed=31, initializer_range=INIT,
                           partial_rotary_factor=0.5, pad_token_id=None, sliding_window=5),
        "smollm3": make_model(tiny_root / "w-smollm3", "smollm3", seed=32, initializer_range=INIT,
                              num_hidden_layers=4, no_rope_layer_interval=2, pad_token_id=None,
                              use_sliding_window=True, sliding_window=5),
        # transformers' SmolLM3 ignores the window without use_sliding_window (its default)
        "smollm3-off": make_model(tiny_root / "w-smollm3o", "smollm3", seed=33,
                                  initializer_range=INIT, num_hidden_layers=4,
                                  no_rope_layer_interval=2, pad_token_id=None, sliding_window=5),
        # and its OLMo-2 has no window at all, whatever the config says
        "olmo2": make_model(tiny_root / "w-olmo2", "olmo2", seed=34, initializer_range=INIT,
                            sliding_window=5),
    }  # fmt: skip


def test_sliding_windows_are_read_as_transformers_applies_them(windowed: dict[str, Path]) -> None:
    def windows(name: str) -> list[int | None]:
        c = registry.load_config(windowed[name])
        return [c.layer_window(i) for i in range(c.num_layers)]

    assert windows("phi3") == [5, 5]  # every layer
    assert windows("smollm3") == [None, 5, None, 5]  # the layers without RoPE
    assert windows("smollm3-off") == [None] * 4
    assert windows("olmo2") == [None, None]


@pytest.mark.parametrize("name", ["phi3", "smollm3", "smollm3-off", "olmo2"])
def test_windowed_logits_and_greedy_match_transformers(
    windowed: dict[str, Path], name: str
) -> None:
    path = windowed[name]
    ours = Generator.load(path, device="cpu", dtype="float32")
    ref = _hf(path)
    ids = ours.encode(LONG_PROMPT)[:40]  # far past the window of 5
    with torch.no_grad():
        expected = ref(torch.tensor([ids])).logits
        got = ours.model(torch.tensor([ids]))
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)
    short = ids[:8]
    # without its cache: transformers' DynamicCache keeps only `sliding_window` positions
    # whenever the config has one, even for OLMo-2, whose forward attends to everything
    want = _hf_greedy(ref, short, 16, use_cache=False)
    saved, ours.tokenizer.eos_token_ids = ours.tokenizer.eos_token_ids, []
    try:
        assert ours.generate_result(short, do_sample=False, max_new_tokens=16).token_ids == want
    finally:
        ours.tokenizer.eos_token_ids = saved
