"""The comparison harness (dev/bench_compare.py): every path in one table, and --hf."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dev import bench_compare
from dev.bench_compare import main
from tui_gen.errors import ModelLoadError


def test_compare_table_has_every_path(tiny_llama: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main([str(tiny_llama), "--repeats", "1", "--max-new-tokens", "8"])
    assert rc == 0
    out = capsys.readouterr().out
    rows = {line.split("|")[1].strip(): line for line in out.splitlines() if line.startswith("| ")}
    for name in ("tui-gen float32", "tui-gen bfloat16", "tui-gen int8", "tui-gen int4"):
        assert name in rows, name
    assert "transformers float32" in rows and "transformers bfloat16" in rows
    # the exact path: identical greedy ids to transformers float32 for all 8 tokens
    assert rows["tui-gen float32"].rstrip().endswith("| 8/8 |")
    assert "| 1.00x | 1.00x | 8/8 |" in rows["transformers float32"]


def test_compare_json_and_missing_llama_cpp(
    tiny_llama: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # as if not installed
    argv = [str(tiny_llama), "--repeats", "1", "--max-new-tokens", "4", "--json"]
    rc = main([*argv, "--gguf", "nowhere.gguf"])
    assert rc == 0
    data = json.loads(capsys.readouterr().out)
    names = [r["name"] for r in data]
    assert "llama.cpp (pip install llama-cpp-python)" in names
    ours = next(r for r in data if r["name"] == "tui-gen float32")
    assert len(ours["prefill_s"]) == 1 and len(ours["decode_tok_s"]) == 1 and len(ours["ids"]) == 4


def test_compare_missing_gguf_is_one_line(
    tiny_llama: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bench_compare, "_llama_cpp_installed", lambda: True)
    with pytest.raises(ModelLoadError) as e:
        main([str(tiny_llama), "--gguf", "/no/such.gguf"])
    assert "\n" not in str(e.value) and "/no/such.gguf" in str(e.value)


def test_hf_report_adds_transformers_rows(
    tiny_llama: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [str(tiny_llama), "--hf", "--repeats", "1", "--max-new-tokens", "8", "--recompute"]
    assert main([*argv, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["greedy_ids_equal"] == "8 of 8"
    assert data["hf_decode_tok_s"] > 0 and "decode_ratio_vs_hf" in data


def test_gguf_only_table_is_against_llama_cpp() -> None:
    """A GGUF-only model (Gemma 3): no transformers rows, so llama.cpp is the reference."""
    from dev.bench_compare import PathResult, format_table, quant_label

    assert quant_label("/x/gemma-3-270m-q4_k_m.gguf") == "Q4_K_M"
    assert quant_label("SmolLM2-135M-Instruct.Q4_1.gguf") == "Q4_1"
    ours = PathResult("tui-gen int4", 1.0, "float32", 512, [2.0], [60.0], [1, 2, 3, 9])
    theirs = PathResult("llama.cpp Q4_K_M", 0.2, "float32", 512, [1.0], [40.0], [1, 2, 3, 4])
    lines = format_table([ours, theirs], 4).splitlines()
    assert lines[0].startswith(
        "| path | load s | prefill tok/s (512) | decode tok/s | decode vs llama.cpp"
    )
    assert lines[0].endswith("| prefill vs llama.cpp | greedy ids = llama.cpp (prefix) |")
    assert lines[2] == "| tui-gen int4 | 1.00 | 256 | 60.0 | 1.50x | 0.50x | 3/4 |"
    assert lines[3].endswith("| 1.00x | 1.00x | 4/4 |")
