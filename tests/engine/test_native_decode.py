"""The native decode step (engine/native/decode.c) against the torch forward it replaces."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tui_gen.engine.generator import Generator
from tui_gen.engine.native import build

pytestmark = pytest.mark.skipif(build._compiler() is None, reason="no C compiler on this machine")

FIXTURES = ["tiny_llama", "tiny_qwen2", "tiny_gpt2"]


def _pair(path: Path, mode: str | None) -> tuple[Generator, Generator]:
    """Two generators on the same weights: one with the native step, one forced onto torch."""
    native = Generator.load(path, device="cpu", dtype="float32", quantize=mode)
    torch_only = Generator.load(path, device="cpu", dtype="float32", quantize=mode)
    torch_only._native = (None, "forced off by the test")
    assert native.decode_backend == "native", native._native
    assert torch_only.decode_backend == "torch"
    return native, torch_only


@pytest.mark.parametrize("mode", [None, "int8", "int4"])
@pytest.mark.parametrize("fixture", FIXTURES)
def test_step_logits_match_the_torch_forward(request, fixture: str, mode: str | None) -> None:
    gen = Generator.load(request.getfixturevalue(fixture), device="cpu", quantize=mode)
    assert gen.decode_backend == "native"
    decoder = gen._native[0]
    ids = list(range(3, 40))
    cache = gen._ensure_cache()
    with torch.inference_mode():
        full = gen.model(torch.tensor([ids]))[0]  # (T, V), the torch path, no cache
        gen.model(torch.tensor([ids[:5]]), start=0, cache=cache)  # torch prefill
        # (each step's logits are copied out: the next step reuses the buffer)
        steps = [decoder.step(torch.tensor([[t]]), 5 + i, cache)[0, -1].clone() for i, t in
                 enumerate(ids[5:])]  # fmt: skip
    assert cache.length == len(ids)
    got, ref = torch.stack(steps), full[5:]
    rel = ((got - ref).abs().max() / ref.abs().max()).item()
    if _eight_bit_activations(gen):
        # int4 runs on the integer-dot kernels: C's norms and torch's differ by float rounding,
        # which can move an 8-bit activation one step, so the logits agree to ~1%, not 1e-4
        assert rel < 0.03
        assert (got.argmax(-1) == ref.argmax(-1)).float().mean().item() >= 0.9
    else:
        assert rel < 1e-4
        assert torch.equal(got.argmax(-1), ref.argmax(-1))


def _eight_bit_activations(gen: Generator) -> bool:
    """Whether the model's layers quantize their activations to 8 bits (GGUF blocks)."""
    from tui_gen.engine.native.gguf_linear import GGUFLinear

    return any(isinstance(m, GGUFLinear) for m in gen.model.modules())


@pytest.mark.parametrize("mode", [None, "int8", "int4"])
@pytest.mark.parametrize("fixture", FIXTURES)
def test_generation_is_the_same_with_and_without_the_native_step(
    request, fixture: str, mode: str | None
) -> None:
    native, torch_only = _pair(request.getfixturevalue(fixture), mode)
    if _eight_bit_activations(native):  # see test_step_logits_match_the_torch_forward
        pytest.skip("8-bit activations: near-ties may differ; the step is checked to ~1% above")
    prompt = [3, 4, 5, 6, 7]
    for kw in ({"do_sample": False}, {"do_sample": True, "seed": 7, "temperature": 0.9}):
        a = native.generate_result(prompt, max_new_tokens=40, **kw)
        b = torch_only.generate_result(prompt, max_new_tokens=40, **kw)
        assert a.token_ids == b.token_ids and len(a.token_ids) > 0
    # a second turn reuses the cached prefix (torch prefill of the new part, native decode)
    longer = prompt + a.token_ids[:10] + [8, 9]
    a2 = native.generate_result(longer, do_sample=False, max_new_tokens=20)
    b2 = torch_only.generate_result(longer, do_sample=False, max_new_tokens=20)
    assert a2.token_ids == b2.token_ids


def test_cooking_model_uses_the_native_step(cooking_dir: Path) -> None:
    native, torch_only = _pair(cooking_dir, "int8")
    q = "How do I make pancakes?"
    a = native.generate_result(q, do_sample=False, max_new_tokens=60)
    b = torch_only.generate_result(q, do_sample=False, max_new_tokens=60)
    assert a.token_ids == b.token_ids


@pytest.mark.parametrize("mode", [None, "int8", "int4"])
@pytest.mark.parametrize("fixture", FIXTURES)
def test_bfloat16_models_decode_natively_and_closer_to_float32(
    request, fixture: str, mode: str | None
) -> None:
    """A bfloat16 model keeps bfloat16 weights and KV cache but the C step computes in
    float32, so its logits are nearer float32's than torch's bfloat16 forward is."""
    path = request.getfixturevalue(fixture)
    ref = Generator.load(path, device="cpu", dtype="float32", quantize=mode)
    gen = Generator.load(path, device="cpu", dtype="bfloat16", quantize=mode)
    assert gen.decode_backend == "native", gen._native
    ids = list(range(3, 40))
    cache = gen._ensure_cache()
    assert cache.k[0].dtype == torch.bfloat16
    with torch.inference_mode():
        f32 = ref.model(torch.tensor([ids]))[0, 5:]
        bf16 = gen.model(torch.tensor([ids]))[0, 5:].float()
        gen.model(torch.tensor([ids[:5]]), start=0, cache=cache)
        steps = torch.stack([gen._native[0].step(torch.tensor([[t]]), 5 + i, cache)[0, -1].clone()
                             for i, t in enumerate(ids[5:])])  # fmt: skip

    def rel(a: torch.Tensor, b: torch.Tensor) -> float:
        return ((a - b).abs().max() / b.abs().max()).item()

    assert rel(steps, f32) < 0.05
    assert rel(steps, f32) <= 1.25 * rel(bf16, f32)
    out = gen.generate_result([3, 4, 5], do_sample=False, max_new_tokens=5)
    assert len(out.token_ids) == 5


def test_float16_stays_on_torch(tiny_llama: Path) -> None:
    f16 = Generator.load(tiny_llama, device="cpu", dtype="float16")
    assert f16.decode_backend == "torch"
    assert "float16" in f16._native[1]
    assert len(f16.generate_result([3, 4, 5], do_sample=False, max_new_tokens=5).token_ids) == 5


def test_a_batch_cache_stays_on_torch(tiny_llama: Path) -> None:
    from tui_gen.models.kv_cache import KVCache

    gen = Generator.load(tiny_llama, device="cpu", dtype="float32")
    decoder = gen._native[0] if gen.decode_backend == "native" else None
    assert decoder is not None
    c = gen.config
    two = KVCache(c.num_layers, 2, c.num_kv_heads, 32, c.head_dim, torch.float32, "cpu")
    assert not decoder.supports(two)
    assert decoder.supports(gen._ensure_cache())


def test_disabled_native_kernels_keep_torch(
    tiny_llama: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TUI_GEN_NATIVE", "0")
    build.reset()
    try:
        gen = Generator.load(tiny_llama, device="cpu", quantize="int4")
        assert gen.decode_backend == "torch"
        assert "TUI_GEN_NATIVE" in gen._native[1]
        assert gen.generate_result([3, 4, 5], do_sample=False, max_new_tokens=5).token_ids
    finally:
        build.reset()


@pytest.mark.parametrize("fixture", ["tiny_llama", "tiny_gpt2"])
def test_step_reads_the_transposed_layout_too(request, fixture: str) -> None:
    """Float matrices stored (in, out) (the torch-decode layout) go through the column kernel."""
    from tui_gen.engine.layout import prepare_for_decode
    from tui_gen.engine.loading.loader import load_model
    from tui_gen.models.linear import TransposedLinear

    loaded = load_model(request.getfixturevalue(fixture), device="cpu", dtype="float32")
    prepare_for_decode(loaded.model, loaded.device, quantized=False, transpose=True)
    gen = Generator(loaded)
    assert any(isinstance(m, TransposedLinear) for m in gen.model.modules())
    assert gen.decode_backend == "native"
    ids = list(range(3, 30))
    cache = gen._ensure_cache()
    with torch.inference_mode():
        full = gen.model(torch.tensor([ids]))[0]
        gen.model(torch.tensor([ids[:4]]), start=0, cache=cache)
        steps = [gen._native[0].step(torch.tensor([[t]]), 4 + i, cache)[0, -1].clone()
                 for i, t in enumerate(ids[4:])]  # fmt: skip
    got, ref = torch.stack(steps), full[4:]
    assert ((got - ref).abs().max() / ref.abs().max()).item() < 1e-5


def test_changing_the_model_after_a_generation_rebuilds_the_step(tiny_llama: Path) -> None:
    """Quantizing a Generator's model after it has decoded must not leave the C code reading
    the float weights it replaced (a crash or a silently stale model)."""
    from tui_gen.engine.quantize import quantize_model

    gen = Generator.load(tiny_llama, device="cpu", dtype="float32")
    assert gen.decode_backend == "native"
    first = gen._native
    gen.generate_result([3, 4, 5], do_sample=False, max_new_tokens=4)
    assert gen._native is first and first[0].describes(gen.model)
    quantize_model(gen.model, "int8")
    assert not first[0].describes(gen.model)
    ref = Generator.load(tiny_llama, device="cpu", dtype="float32", quantize="int8")
    a = gen.generate_result([3, 4, 5], do_sample=False, max_new_tokens=12)
    assert gen._native is not first and gen.decode_backend == "native"
    b = ref.generate_result([3, 4, 5], do_sample=False, max_new_tokens=12)
    assert a.token_ids == b.token_ids
