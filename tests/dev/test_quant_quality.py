"""dev/quant_quality.py: agreement of the quantized paths with float32."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from dev.quant_quality import main, run
from tui_gen.errors import TuiGenError


def test_quant_quality_fits_the_passages_to_the_context(tiny_gpt2: Path) -> None:
    """The passages are longer than a 256-position model; they are cut to fit, not crashed on."""
    out = run(str(tiny_gpt2), ["int8"], 32)
    res = out["results"]["int8"]
    assert all(p["positions"] <= 256 for p in res["per_passage"].values())
    assert max(p["positions"] for p in res["per_passage"].values()) == 256
    assert 0.5 <= res["top1_agreement"] <= 1.0 and res["mean_kl"] >= 0.0


def test_llama_cpp_mode_without_the_package_is_one_clear_error(
    tiny_gpt2: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without llama-cpp-python the peer mode names the package to install, no ImportError."""
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # `import llama_cpp` raises
    with pytest.raises(TuiGenError, match="pip install llama-cpp-python"):
        run(str(tiny_gpt2), ["llama.cpp"], 32)


def test_llama_cpp_mode_on_a_model_directory_is_one_line_and_exit_2(
    tiny_gpt2: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """llama.cpp reads GGUF files only; said before the float32 reference is computed."""
    monkeypatch.setitem(sys.modules, "llama_cpp", types.ModuleType("llama_cpp"))
    assert main([str(tiny_gpt2), "--quantize", "llama.cpp"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "reads a .gguf file" in err and "Traceback" not in err


@pytest.mark.gemma3
def test_llama_cpp_mode_scores_the_peer_on_the_same_positions() -> None:
    """llama.cpp's logits, fed our ids, agree with the float32 dequantization nearly everywhere
    (96.5% top-1 measured); misaligned rows (an off-by-one) would agree on few positions."""
    from gemma3 import llama_cpp_installed, require_gguf

    gguf = require_gguf()
    if not llama_cpp_installed():
        pytest.skip("llama-cpp-python is not installed")
    res = run(str(gguf), ["llama.cpp"], 32, max_len=128, threads=2)["results"]["llama.cpp"]
    assert res["top1_agreement"] >= 0.9 and res["mean_kl"] < 0.05
