"""`info` on the new families: the family, its decode step, GGUF tensor types."""

from __future__ import annotations

from pathlib import Path

import pytest
from family_gguf import write_gguf
from tiny_models import make_model

from tui_gen.cli.info import describe, format_text, tensor_groups, tensor_types


def test_tensor_types_group_a_q4_k_m_style_file() -> None:
    names = []
    for i in range(2):
        names += [(f"blk.{i}.attn_q.weight", "Q4_K"), (f"blk.{i}.ffn_up.weight", "Q4_K"),
                  (f"blk.{i}.attn_v.weight", "Q6_K"), (f"blk.{i}.attn_norm.weight", "F32"),
                  (f"blk.{i}.ffn_down.weight", "Q4_K")]  # fmt: skip
    names += [("token_embd.weight", "Q6_K"), ("output_norm.weight", "F32")]
    types = tensor_types(names)
    assert types == [
        {"type": "Q4_K", "tensors": 6, "groups": ["attn_q", "ffn_up", "ffn_down"]},
        {"type": "Q6_K", "tensors": 3, "groups": ["attn_v", "token_embd"]},
        {"type": "F32", "tensors": 3, "groups": ["attn_norm", "output_norm"]},
    ]


def test_tensor_groups_show_each_groups_types_in_file_order() -> None:
    names = [("token_embd.weight", "Q8_0")]
    for i in range(4):
        names += [(f"blk.{i}.attn_q.weight", "Q5_0"), (f"blk.{i}.attn_norm.weight", "F32"),
                  (f"blk.{i}.ffn_up.weight", "Q5_0"),
                  (f"blk.{i}.ffn_down.weight", "Q6_K" if i % 2 else "Q4_K")]  # fmt: skip
    groups = tensor_groups(names)
    assert groups == [
        {"group": "token_embd", "types": {"Q8_0": 1}},
        {"group": "attn_q", "types": {"Q5_0": 4}},
        {"group": "attn_norm", "types": {"F32": 4}},
        {"group": "ffn_up", "types": {"Q5_0": 4}},
        {"group": "ffn_down", "types": {"Q4_K": 2, "Q6_K": 2}},
    ]
    d = {"tensor_groups": groups}
    from tui_gen.cli.info import _format_tensor_groups

    assert _format_tensor_groups(d["tensor_groups"]) == [
        "  token_embd  Q8_0", "  attn_q, ffn_up  Q5_0", "  attn_norm  F32",
        "  ffn_down  Q4_K x2, Q6_K x2",
    ]  # fmt: skip


def test_info_names_the_family_and_its_native_decode_step(tiny_root: Path) -> None:
    from tui_gen.engine.native import build

    path = make_model(tiny_root / "i-olmo2", "olmo2", seed=41)
    d = describe(str(path), device="cpu", dtype="float32")
    assert d["family"] == "olmo2" and d["tensor_types"] == []
    text = format_text(d)
    assert "architecture    olmo2 (Olmo2ForCausalLM), family olmo2" in text
    if build._compiler() is not None:
        assert d["decode_step"] == f"native C kernels ({build.isa()})"
        assert "decode step     native C kernels" in text


def test_info_lists_gguf_tensor_types(tiny_root: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    src = make_model(tiny_root / "i-granite", "granite", seed=42)
    hf = AutoModelForCausalLM.from_pretrained(src).eval()
    path = write_gguf(tmp_path / "granite-q8.gguf", src, hf, "granite", "Q8_0")
    d = describe(str(path), device="cpu", dtype="float32")
    assert d["family"] == "granite"
    assert [(t["type"], t["tensors"]) for t in d["tensor_types"]] == [("Q8_0", 16), ("F32", 5)]
    assert d["format"] == "gguf:Q8_0"  # the writer labels it F32 (0): the tensors decide
    line = next(ln for ln in format_text(d).splitlines() if ln.startswith("tensor types"))
    assert line == ("tensor types    Q8_0: 16 tensors (token_embd, attn_q, attn_k, attn_v, ...), "
                    "F32: 5 (attn_norm, ffn_norm, output_norm)")  # fmt: skip


@pytest.mark.parametrize("fam", ["granite", "smollm3", "phi3"])
def test_the_families_decode_natively(tiny_root: Path, fam: str) -> None:
    from tui_gen.engine.generator import Generator
    from tui_gen.engine.native import build

    if build._compiler() is None:
        pytest.skip("no C compiler on this machine")
    kw: dict[str, object] = {
        "smollm3": {"pad_token_id": None, "num_hidden_layers": 4},
        "phi3": {"pad_token_id": None, "partial_rotary_factor": 0.5},
    }.get(fam, {})
    gen = Generator.load(make_model(tiny_root / f"i-{fam}", fam, seed=43, **kw), device="cpu",
                         dtype="float32")  # fmt: skip
    assert gen.decode_backend == "native" and gen.decode_reason == ""
