"""The decode layout (engine/layout.py): fused, pre-transposed weights give the same numbers."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from tiny_models import make_model
from torch import nn

from tui_gen import Generator
from tui_gen.engine.layout import prepare_for_decode
from tui_gen.engine.loading.loader import load_model
from tui_gen.engine.quantize import quantized_layers
from tui_gen.models.kv_cache import KVCache
from tui_gen.models.linear import TransposedEmbedding, TransposedLinear, fuse_linears, release_pages

IDS = torch.tensor([[3, 17, 42, 9, 100, 5, 77, 31]])


@pytest.fixture(scope="module")
def tiny_tied_llama(tiny_root: Path) -> Path:
    return make_model(tiny_root / "llama-tied", "llama", tie=True, seed=3)


def _transposed(path: Path) -> Generator:
    """A float32 Generator in the layout torch decodes with (what the CPU uses when the native
    step is unavailable), whatever this machine has."""
    loaded = load_model(path, device="cpu", dtype="float32")
    prepare_for_decode(loaded.model, loaded.device, quantized=False, transpose=True)
    return Generator(loaded)


def _logits_and_decode(model: nn.Module, cfg) -> tuple[torch.Tensor, torch.Tensor]:
    """Full-prompt logits, then three cached decode steps' logits."""
    cache = KVCache(cfg.num_layers, 1, cfg.num_kv_heads, 32, cfg.head_dim, torch.float32, "cpu")
    with torch.inference_mode():
        full = model(IDS)
        model(IDS[:, :5], start=0, cache=cache)
        steps = [model(IDS[:, i : i + 1], start=i, cache=cache)[:, -1] for i in range(5, 8)]
    return full, torch.stack(steps, 1)


@pytest.mark.parametrize("fixture", ["tiny_llama", "tiny_tied_llama", "tiny_qwen2", "tiny_gpt2"])
def test_decode_layout_matches_checkpoint_layout(request, fixture: str) -> None:
    path = request.getfixturevalue(fixture)
    ref = load_model(path, device="cpu", dtype="float32")
    ref_full, ref_steps = _logits_and_decode(ref.model, ref.config)
    gen = _transposed(path)
    model = gen.model
    assert getattr(model, "_decode_layout", False)
    assert not any(
        isinstance(m, nn.Linear) and m.in_features <= m.out_features for m in model.modules()
    )
    full, steps = _logits_and_decode(model, gen.config)
    torch.testing.assert_close(full, ref_full, rtol=0, atol=1e-5)
    torch.testing.assert_close(steps, ref_steps, rtol=0, atol=1e-5)


def test_llama_projections_are_fused(tiny_qwen2: Path) -> None:
    model = _transposed(tiny_qwen2).model
    attn, mlp = model.model.layers[0].self_attn, model.model.layers[0].mlp
    assert not hasattr(attn, "q_proj") and not hasattr(mlp, "gate_proj")
    assert isinstance(attn.qkv_proj, TransposedLinear) and attn.qkv_proj.bias is not None
    cfg = model.config
    assert attn.qkv_proj.out_features == (cfg.num_heads + 2 * cfg.num_kv_heads) * cfg.head_dim
    assert mlp.gate_up_proj.out_features == 2 * cfg.intermediate_size
    assert isinstance(mlp.down_proj, nn.Linear)  # wider input: F.linear is as fast there


def test_tied_head_and_embedding_share_one_copy(tiny_tied_llama: Path) -> None:
    model = _transposed(tiny_tied_llama).model
    emb = model.get_input_embeddings()
    assert isinstance(emb, TransposedEmbedding) and isinstance(model.lm_head, TransposedLinear)
    assert emb.weight_t is model.lm_head.weight_t
    params = {id(p) for p in model.parameters()}
    assert len(params) == len(list(model.parameters()))  # listed once
    ref = load_model(tiny_tied_llama, device="cpu", dtype="float32").model
    idx = torch.tensor([[0, 5, 319, 5]])
    torch.testing.assert_close(emb(idx), ref.get_input_embeddings()(idx), rtol=0, atol=0)


@pytest.mark.parametrize("native", [True, False])
def test_float32_cpu_layout_follows_the_decode_path(
    tiny_tied_llama: Path, native: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The native step reads (out, in) rows and prompts run faster through F.linear, so a
    float32 model is only transposed where torch decodes it."""
    from tui_gen.engine.native import build

    if native and build._compiler() is None:
        pytest.skip("no C compiler on this machine")
    if not native:
        monkeypatch.setenv("TUI_GEN_NATIVE", "0")
    build.reset()
    try:
        gen = Generator.load(tiny_tied_llama, device="cpu", dtype="float32")
        model = gen.model
        assert gen.decode_backend == ("native" if native else "torch")
        assert model.model.layers[0].self_attn.qkv_proj is not None  # fused either way
        transposed = any(isinstance(m, TransposedLinear) for m in model.modules())
        assert transposed == (not native)
        full, steps = _logits_and_decode(model, gen.config)
        ref = load_model(tiny_tied_llama, device="cpu", dtype="float32")
        ref_full, ref_steps = _logits_and_decode(ref.model, ref.config)
        torch.testing.assert_close(full, ref_full, rtol=0, atol=1e-5)
        torch.testing.assert_close(steps, ref_steps, rtol=0, atol=1e-5)
    finally:
        build.reset()


def test_prepare_is_idempotent(tiny_llama: Path) -> None:
    loaded = load_model(tiny_llama, device="cpu", dtype="float32")
    prepare_for_decode(loaded.model, loaded.device, quantized=False)
    qkv = loaded.model.model.layers[0].self_attn.qkv_proj
    prepare_for_decode(loaded.model, loaded.device, quantized=False)
    assert loaded.model.model.layers[0].self_attn.qkv_proj is qkv
    # a second Generator on the same loaded model reuses the layout
    assert Generator(loaded).model.model.layers[0].self_attn.qkv_proj is qkv


def test_quantized_models_quantize_the_fused_matrices(tiny_llama: Path) -> None:
    model = Generator.load(tiny_llama, device="cpu", dtype="float32", quantize="int8").model
    attn = model.model.layers[0].self_attn
    assert attn.qkv_proj in quantized_layers(model) and attn.qkv_proj.bits == 8
    assert model.model.layers[0].mlp.gate_up_proj in quantized_layers(model)
    assert not any(isinstance(m, TransposedLinear) for m in model.modules())


def test_fuse_linears_both_layouts() -> None:
    torch.manual_seed(0)
    parts = [nn.Linear(6, n, bias=True) for n in (4, 2, 2)]
    x = torch.randn(3, 6)
    want = torch.cat([p(x) for p in parts], dim=-1)
    for transposed in (False, True):
        fused = fuse_linears(parts, transposed)
        assert isinstance(fused, TransposedLinear if transposed else nn.Linear)
        torch.testing.assert_close(fused(x), want)


def test_transposed_linear_shapes_and_bias() -> None:
    lin = nn.Linear(5, 7)
    t = TransposedLinear.from_linear(lin)
    assert t.weight_t.shape == (5, 7) and t.weight_t.is_contiguous()
    assert (t.in_features, t.out_features) == (5, 7)
    x = torch.randn(2, 3, 5)
    torch.testing.assert_close(t(x), lin(x))
    torch.testing.assert_close(t.weight, lin.weight)


def test_release_pages_never_touches_anonymous_memory() -> None:
    t = torch.arange(1 << 16, dtype=torch.float32)  # 256 KiB: whole pages inside
    before = t.clone()
    release_pages(t)
    assert torch.equal(t, before)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="madvise is used on Linux only")
def test_released_file_pages_still_read_back(tmp_path: Path) -> None:
    from safetensors import safe_open

    w = torch.randn(256, 1024)
    save_file({"w": w}, str(tmp_path / "w.safetensors"))
    with safe_open(str(tmp_path / "w.safetensors"), framework="pt") as f:
        mapped = f.get_tensor("w")
    release_pages(mapped)
    assert torch.equal(mapped, w)  # dropped pages fault back in from the file
