"""The benchmark script keeps working (its numbers are not checked: timings are noisy)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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


def test_recompute_interpolation_covers_every_step(
    tiny_llama: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a forward whose cost is linear in the length (a fake clock: no timing in a pass/fail
    test), timing 4 of 40 lengths and interpolating gives exactly the sum over all 40, and a
    short run times every length."""
    from tui_gen import Generator
    from tui_gen.cli import bench

    timed: list[int] = []

    def fake_median_time(fn: Any, repeats: int) -> float:
        length = fn.args[0].shape[1]
        timed.append(length)
        return 0.001 * length + 0.01

    monkeypatch.setattr(bench, "median_time", fake_median_time)
    gen = Generator.load(tiny_llama)
    ids = gen.encode("Hello there")
    p = len(ids)
    assert recompute_seconds(gen, ids, 6, samples=8) == pytest.approx(
        sum(0.001 * L + 0.01 for L in range(p, p + 6))
    )
    assert timed == list(range(p, p + 6))  # every length timed
    timed.clear()
    assert recompute_seconds(gen, ids, 40, samples=4) == pytest.approx(
        sum(0.001 * L + 0.01 for L in range(p, p + 40))
    )
    assert timed == [p, p + 13, p + 26, p + 39]  # evenly spaced, both ends


def test_bench_bad_flag_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["somewhere", "--repeats", "0"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--repeats" in err


@pytest.mark.slow
def test_contention_times_one_all_and_auto_threads_and_cleans_up(
    tiny_llama: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--contention runs decode beside a busy process on 1 thread, all threads and the
    governor's choice; the busy process is gone afterwards and --threads' fix is undone."""
    import subprocess

    import torch

    from tui_gen.cli import bench
    from tui_gen.engine import threads

    started: list[subprocess.Popen[bytes]] = []
    real = subprocess.Popen

    def popen(*a, **kw):  # type: ignore[no-untyped-def]
        started.append(real(*a, **kw))
        return started[-1]

    monkeypatch.setattr(bench.subprocess, "Popen", popen)
    flags = ["--repeats", "2", "--max-new-tokens", "8", "--recompute", "--contention"]
    assert main([str(tiny_llama), *flags, "--threads", "2", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    rates = data["contention"]
    assert list(rates) == ["1", str(torch.get_num_threads()), "auto"]
    assert all(len(r) == 2 and min(r) > 0 for r in rates.values())
    busy = [p for p in started if "while True: pass" in " ".join(map(str, p.args))]
    assert len(busy) == 1 and busy[0].poll() is not None  # the busy process has ended
    assert threads.fixed() is None  # bench --threads fixed the count only while it ran
    assert main([str(tiny_llama), *flags[:-1], "--repeats", "1", "--contention"]) == 0
    assert "one busy process, threads 1 / " in capsys.readouterr().out
