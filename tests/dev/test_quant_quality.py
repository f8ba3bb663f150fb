"""dev/quant_quality.py: agreement of the quantized paths with float32."""

from __future__ import annotations

from pathlib import Path

from dev.quant_quality import run


def test_quant_quality_fits_the_passages_to_the_context(tiny_gpt2: Path) -> None:
    """The passages are longer than a 256-position model; they are cut to fit, not crashed on."""
    out = run(str(tiny_gpt2), ["int8"], 32)
    res = out["results"]["int8"]
    assert all(p["positions"] <= 256 for p in res["per_passage"].values())
    assert max(p["positions"] for p in res["per_passage"].values()) == 256
    assert 0.5 <= res["top1_agreement"] <= 1.0 and res["mean_kl"] >= 0.0
