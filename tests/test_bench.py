"""The benchmark script keeps working (its numbers are not checked: timings are noisy)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tui_gen.bench import main, recompute_seconds


def test_bench_json_report(tiny_llama: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(
        [str(tiny_llama), "--repeats", "1", "--max-new-tokens", "16", "--recompute", "16", "--json"]
    )
    assert rc == 0
    data = json.loads(capsys.readouterr().out)
    for key in (
        "load_s",
        "prefill_tok_s",
        "ttft_s",
        "decode_tok_s",
        "kv_cache_bytes",
        "kv_speedup_16",
        "sampling_share",
        "rss_peak_mib",
    ):
        assert key in data, key
    assert data["decode_tok_s"] > 0 and data["kv_speedup_16"] > 0
    assert data["new_tokens"] == 16
    assert data["decode_backend"] in ("native", "torch")


def test_recompute_interpolation_covers_every_step(tiny_llama: Path) -> None:
    from tui_gen import Generator

    gen = Generator.load(tiny_llama)
    ids = gen.encode("Hello there")
    exact = recompute_seconds(gen, ids, 6, samples=8)  # every length timed
    sampled = recompute_seconds(gen, ids, 40, samples=4)
    assert exact > 0 and sampled > exact  # more steps cost more


def test_bench_bad_flag_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["somewhere", "--repeats", "0"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--repeats" in err


def test_compare_table_has_every_path(tiny_llama: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main([str(tiny_llama), "--compare", "--repeats", "1", "--max-new-tokens", "8"])
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
    argv = [str(tiny_llama), "--compare", "--repeats", "1", "--max-new-tokens", "4", "--json"]
    rc = main([*argv, "--gguf", "nowhere.gguf"])
    assert rc == 0
    data = json.loads(capsys.readouterr().out)
    names = [r["name"] for r in data]
    assert "llama.cpp (pip install llama-cpp-python)" in names
    ours = next(r for r in data if r["name"] == "tui-gen float32")
    assert len(ours["prefill_s"]) == 1 and len(ours["decode_tok_s"]) == 1 and len(ours["ids"]) == 4


def test_compare_missing_gguf_is_one_line(
    tiny_llama: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tui_gen import bench_compare
    from tui_gen.cli import main as cli_main

    monkeypatch.setattr(bench_compare, "_llama_cpp_installed", lambda: True)
    rc = cli_main(["bench", str(tiny_llama), "--compare", "--gguf", "/no/such.gguf"])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "/no/such.gguf" in err and "Traceback" not in err
