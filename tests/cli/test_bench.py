"""The benchmark script keeps working (its numbers are not checked: timings are noisy)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tui_gen.cli.bench import main, recompute_seconds


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
    assert data["decode_backend"].split(" (")[0] in ("native", "torch")


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
