"""Float weights into GGUF blocks (engine/native/to_blocks.py), checked against the `gguf`
package's own block decoder, and `--quantize int4` on a float model running on those blocks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from tui_gen import Generator
from tui_gen.engine.native import build, to_blocks
from tui_gen.engine.native.gguf_linear import GGUFLinear, keep_unavailable
from tui_gen.engine.native.qlinear import (
    NativeQuantLinear,
    dequantize,
    pack_halves,
    quantize_groups,
)
from tui_gen.engine.quantize import describe, quantize_model

gguf = pytest.importorskip("gguf")

needs_kernels = pytest.mark.skipif(
    build._compiler() is None or bool(keep_unavailable("cpu")), reason="no native GGUF kernels"
)


def _weight(n: int = 48, k: int = 128, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(n, k, generator=g) * torch.rand(n, 1, generator=g)
    w[0, :32] = 0.0  # an all-zero group: scale 0 must not divide by zero
    w[1, 40] = 9.0  # an outlier
    return w


def _gguf_decode(raw: torch.Tensor, qtype: gguf.GGMLQuantizationType) -> np.ndarray:
    return gguf.quants.dequantize(raw.numpy(), qtype)


def test_q4_1_blocks_hold_exactly_the_int4_values() -> None:
    """Our int4 scheme is ggml's Q4_1: the blocks, read by an independent decoder, give
    the same weights NativeQuantLinear's 4-bit layout stands for (no second rounding)."""
    w = _weight()
    raw = to_blocks.q4_1_blocks(w)
    assert raw.dtype == torch.uint8 and raw.shape == (48, 128 // 32 * 20)
    q, sm = quantize_groups(w, 4)
    ours = dequantize(pack_halves(q), sm, 4, 128)
    np.testing.assert_array_equal(_gguf_decode(raw, gguf.GGMLQuantizationType.Q4_1), ours)
    assert (ours - w).abs().max() <= sm[..., 0].float().max() / 2 + 1e-6


def test_q8_0_blocks_round_to_the_nearest_step_of_the_stored_scale() -> None:
    w = _weight(seed=1)
    raw = to_blocks.q8_0_blocks(w)
    assert raw.shape == (48, 128 // 32 * 34)
    got = torch.from_numpy(_gguf_decode(raw, gguf.GGMLQuantizationType.Q8_0))
    d = raw.view(48, 4, 34)[..., :2].contiguous().view(torch.float16).float()  # (48, 4, 1)
    err = (got - w).reshape(48, 4, 32).abs()
    assert (err <= d / 2 + 1e-6).all()
    assert torch.equal(got[0, :32], torch.zeros(32))
    # against gguf's own quantizer: the same blocks but where a value sits on a rounding tie
    # of the float32 scale and the stored float16 one, so nearly every byte agrees
    ref = gguf.quants.quantize(w.numpy(), gguf.GGMLQuantizationType.Q8_0)
    assert (ref == raw.numpy()).mean() > 0.97


def test_widths_that_are_not_whole_blocks_are_refused() -> None:
    with pytest.raises(ValueError, match="multiple of 32"):
        to_blocks.q8_0_blocks(torch.randn(4, 40))
    with pytest.raises(ValueError, match="multiple of 32"):
        to_blocks.q4_1_blocks(torch.randn(4, 40))
    with pytest.raises(ValueError, match="ggml type 12"):
        to_blocks.blocks(torch.randn(4, 32), 12)


@needs_kernels
def test_int4_runs_on_q4_1_blocks_with_a_q8_0_head(tiny_llama: Path) -> None:
    ref = Generator.load(tiny_llama, device="cpu", dtype="float32")
    gen = Generator.load(tiny_llama, device="cpu", dtype="float32", quantize="int4")
    layers = [m for m in gen.model.modules() if isinstance(m, GGUFLinear)]
    assert layers and all(m.types == [3] for m in layers if m is not gen.model.lm_head)
    assert gen.model.lm_head.types == [8]
    assert not any(isinstance(m, NativeQuantLinear) for m in gen.model.modules())
    text = describe(gen.model)
    assert text.startswith("int4 g32 (Q4_1 blocks, Q8_0 lm_head)") and "int8-dot" in text
    ids = torch.tensor([list(range(3, 30))])
    with torch.inference_mode():
        a, b = gen.model(ids), ref.model(ids)
    assert ((a - b).norm() / b.norm()).item() < 0.2
    assert gen.decode_backend == "native"
    out = gen.generate_result([3, 4, 5], do_sample=False, max_new_tokens=8)
    assert len(out.token_ids) == 8


@needs_kernels
def test_int4_head_choices_and_odd_widths(tiny_llama: Path) -> None:
    """head="int4" is a Q4_1 head, head=None leaves it float; a width that is not whole groups
    of 32 keeps the padded float-activation layer."""
    model = Generator.load(tiny_llama, device="cpu", dtype="float32").model
    quantize_model(model, "int4", head="int4")
    assert model.lm_head.types == [3] and "Q4_1 lm_head" in describe(model)
    model = Generator.load(tiny_llama, device="cpu", dtype="float32").model
    quantize_model(model, "int4", head=None)
    assert not isinstance(model.lm_head, GGUFLinear) and "float lm_head" in describe(model)

    odd = nn.Sequential(nn.Linear(40, 64), nn.Linear(64, 32))
    quantize_model(odd, "int4")
    assert isinstance(odd[0], NativeQuantLinear) and isinstance(odd[1], GGUFLinear)
    x = torch.randn(3, 40)
    with torch.inference_mode():
        y = odd(x)
    assert y.shape == (3, 32) and torch.isfinite(y).all()


def test_int8_keeps_float_activations(tiny_llama: Path) -> None:
    """int8 is the near-lossless mode: no 8-bit activation blocks."""
    gen = Generator.load(tiny_llama, device="cpu", dtype="float32", quantize="int8")
    assert not any(isinstance(m, GGUFLinear) for m in gen.model.modules())


def test_without_native_kernels_int4_uses_torch(
    tiny_llama: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TUI_GEN_NATIVE", "0")
    build.reset()
    try:
        gen = Generator.load(tiny_llama, device="cpu", dtype="float32", quantize="int4")
        assert not any(isinstance(m, GGUFLinear) for m in gen.model.modules())
        assert "blocks" not in describe(gen.model)
    finally:
        build.reset()
