"""GGUF files of OLMo-2, Granite, SmolLM3, Phi-3 and GPT-2, written the way llama.cpp's
converter writes them, open and match transformers on the same (tiny random) weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from family_gguf import ARCH, LONGROPE, quantize_hf_weights, write_gguf
from tiny_models import make_model

from tui_gen.engine.generator import Generator
from tui_gen.engine.loading.gguf_reader import open_gguf

#: large enough weights that attention is far from uniform: a wrong q/k order or RoPE shows
INIT = 0.3


@pytest.fixture(scope="module")
def dirs(tiny_root: Path) -> dict[str, Path]:
    return {
        "olmo2": make_model(tiny_root / "g-olmo2", "olmo2", seed=31, initializer_range=INIT),
        "granite": make_model(
            tiny_root / "g-granite", "granite", seed=32, initializer_range=INIT, embedding_multiplier=6.0,
            attention_multiplier=0.09, residual_multiplier=0.4, logits_scaling=3.0,
        ),
        "smollm3": make_model(tiny_root / "g-smollm3", "smollm3", seed=33, initializer_range=INIT, num_hidden_layers=4,
                              pad_token_id=None),
        "phi3": make_model(
            tiny_root / "g-phi3", "phi3", seed=34, initializer_range=INIT, pad_token_id=None,
            original_max_position_embeddings=32,
            rope_parameters={**LONGROPE, "partial_rotary_factor": 1.0},
        ),
        "gpt2": make_model(tiny_root / "g-gpt2", "gpt2", seed=35, initializer_range=INIT),
    }  # fmt: skip


def _hf(path: Path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()


IDS = [[5, 17, 99, 3, 250, 41, 8, 77], list(range(10, 50))]  # the second passes 32 positions


def _load_pair(tmp_path: Path, dirs: dict[str, Path], fam: str, qtype: str):
    """transformers' model (weights Q8_0-rounded for Q8_0) and ours from its GGUF file."""
    hf = _hf(dirs[fam])
    if qtype == "Q8_0":
        quantize_hf_weights(hf, fam)
    path = write_gguf(tmp_path / f"{fam}-{qtype}.gguf", dirs[fam], hf, fam, qtype)
    ours = Generator.load(path, device="cpu", dtype="float32")
    assert ours.config.arch == fam and ours.config.model_type == fam
    assert ours.loaded.source_format == f"gguf:{qtype}"
    return hf, ours


@pytest.mark.parametrize("qtype", ["F32", "Q8_0"])
@pytest.mark.parametrize("fam", list(ARCH))
def test_gguf_logits_match_transformers(
    tmp_path: Path, dirs: dict[str, Path], fam: str, qtype: str
) -> None:
    hf, ours = _load_pair(tmp_path, dirs, fam, qtype)
    for ids in IDS:
        with torch.no_grad():
            expected = hf(torch.tensor([ids])).logits
            got = ours.model(torch.tensor([ids]))
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)


@pytest.mark.slow
@pytest.mark.parametrize("qtype", ["F32", "Q8_0"])
@pytest.mark.parametrize("fam", list(ARCH))
def test_gguf_greedy_matches_transformers(
    tmp_path: Path, dirs: dict[str, Path], fam: str, qtype: str
) -> None:
    hf, ours = _load_pair(tmp_path, dirs, fam, qtype)
    prompt = IDS[0]
    # (Phi-3: transformers recomputes its whole cache with the long factors when generation
    # crosses original_max_position_embeddings; we keep the cached keys, so stay below it)
    new = 24 if fam == "phi3" else 40
    with torch.no_grad():
        out = hf.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt),
                          dtype=torch.long), max_new_tokens=new, do_sample=False, pad_token_id=0)  # fmt: skip
    expected_ids = out[0, len(prompt) :].tolist()
    result = ours.generate_result(prompt, do_sample=False, max_new_tokens=new)
    if expected_ids[-1] in ours.eos_token_ids:
        expected_ids = expected_ids[:-1]
    assert result.token_ids == expected_ids


def test_gguf_configs_carry_the_family_parameters(tmp_path: Path, dirs: dict[str, Path]) -> None:
    g = open_gguf(write_gguf(tmp_path / "g.gguf", dirs["granite"], _hf(dirs["granite"]), "granite"))
    assert (g.config["attention_multiplier"], g.config["logits_scaling"]) == (
        pytest.approx(0.09), 3.0)  # fmt: skip
    p = open_gguf(write_gguf(tmp_path / "p.gguf", dirs["phi3"], _hf(dirs["phi3"]), "phi3"))
    scaling = p.config["rope_scaling"]
    assert scaling["type"] == "longrope" and len(scaling["long_factor"]) == 8
    assert p.config["original_max_position_embeddings"] == 32
    s = open_gguf(write_gguf(tmp_path / "s.gguf", dirs["smollm3"], _hf(dirs["smollm3"]), "smollm3"))
    assert s.config["no_rope_layer_interval"] == 4


def test_phi4_mini_style_partial_rotary_gguf(tiny_root: Path, tmp_path: Path) -> None:
    """Phi-4-mini: rotary over 3/4 of each head (rope.dimension_count 12 of 16), tied head."""
    src = make_model(tiny_root / "g-phi4", "phi3", seed=36, initializer_range=INIT,
                     pad_token_id=None, partial_rotary_factor=0.75, tie=True)  # fmt: skip
    hf = _hf(src)
    ours = Generator.load(write_gguf(tmp_path / "phi4.gguf", src, hf, "phi3"), dtype="float32")
    assert ours.config.family_params["rotary_dim"] == 12 and ours.config.tie_word_embeddings
    for ids in IDS:
        with torch.no_grad():
            expected = hf(torch.tensor([ids])).logits
            torch.testing.assert_close(ours.model(torch.tensor([ids])), expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize("fam", ["gpt2", "phi3"])
def test_tui_gen_import_writes_a_directory_transformers_opens(
    tmp_path: Path, dirs: dict[str, Path], fam: str
) -> None:
    """`tui-gen import`: GPT-2's Conv1D weights go back to HF's (in, out) layout on disk."""
    from tui_gen.engine.loading.gguf_reader import import_gguf

    hf = _hf(dirs[fam])
    out = import_gguf(write_gguf(tmp_path / f"{fam}.gguf", dirs[fam], hf, fam), tmp_path / "out")
    ids = torch.tensor([IDS[1]])
    with torch.no_grad():
        torch.testing.assert_close(_hf(out)(ids).logits, hf(ids).logits, atol=1e-5, rtol=0)
