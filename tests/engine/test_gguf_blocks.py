"""GGUF blocks run as they are (engine/native/gguf_linear.py, ggml_matmul.c, gguf_keep.py).

The references are `gguf.quants.dequantize` (the gguf package's own reading of each block
type) times the activations: once with the activations exactly as the kernel quantizes them
(8-bit blocks of 32; the result must agree to float rounding, so a wrong nibble order, scale
or offset shows up far above it), and once with float activations (the error the 8-bit
activations cost, which must stay small).
"""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from gguf import GGMLQuantizationType as Q
from test_gguf import tiny_hf_model, train_byte_level_tokenizer, write_gguf
from torch import nn

from tui_gen.engine.generator import Generator
from tui_gen.engine.loading.gguf_file import GGML_TYPES
from tui_gen.engine.loading.gguf_reader import open_gguf
from tui_gen.engine.loading.loader import load_model
from tui_gen.engine.native import build, gguf_linear
from tui_gen.engine.native.gguf_linear import GGUFEmbedding, GGUFLinear
from tui_gen.errors import TuiGenError
from tui_gen.models.kv_cache import KVCache

pytestmark = pytest.mark.skipif(build._compiler() is None, reason="no C compiler on this machine")

TYPES = ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q4_K", "Q5_K", "Q6_K"]
K_TYPES = {"Q4_K", "Q5_K", "Q6_K"}


def blocks(qtype: str, rows: int, k: int, seed: int = 0) -> torch.Tensor:
    """(rows, row bytes) uint8 blocks: quantized by the gguf package where it can, random bytes
    with sane float16 scales for the K types (it has no K quantizer)."""
    rng = np.random.default_rng(seed)
    t = Q[qtype]
    if qtype not in K_TYPES:
        w = rng.standard_normal((rows, k)).astype(np.float32) * rng.uniform(0.1, 2, (rows, 1))
        raw = gguf.quants.quantize(w.astype(np.float32), t)
    else:
        n, size = rows * k // 256, GGML_TYPES[t.value][2]
        raw = rng.integers(0, 256, (n, size), dtype=np.uint8)
        for at in {"Q4_K": [0, 2], "Q5_K": [0, 2], "Q6_K": [208]}[qtype]:
            vals = rng.uniform(0.001, 0.02, n).astype(np.float16)
            raw[:, at : at + 2] = vals.view(np.uint8).reshape(n, 2)
    return torch.from_numpy(np.ascontiguousarray(raw).reshape(rows, -1).copy())


def reference_weight(raw: torch.Tensor, qtype: str, k: int) -> torch.Tensor:
    w = gguf.quants.dequantize(raw.numpy().reshape(-1), Q[qtype])
    return torch.from_numpy(np.ascontiguousarray(w)).reshape(raw.shape[0], k).double()


def quantized_activations(x: torch.Tensor) -> torch.Tensor:
    """x as the kernel sees it: per 32, q = round(x * 127 / max|x|) (half away from 0) * d."""
    xb = x.float().reshape(x.shape[0], -1, 32)
    amax = xb.abs().amax(-1, keepdim=True)
    inv = torch.where(amax > 0, 127.0 / amax, torch.zeros_like(amax))
    t = xb * inv
    q = torch.trunc(t + torch.where(t >= 0, 0.5, -0.5))
    return (q * (amax / 127.0)).reshape(x.shape).double()


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).abs().max() / b.double().abs().max()).item()


@pytest.fixture(autouse=True)
def _library_built() -> None:
    assert build.load() is not None, build.reason()
    assert not gguf_linear.keep_unavailable("cpu")


@pytest.mark.parametrize("qtype", TYPES)
def test_dequantize_rows_in_bfloat16_rounds_as_torch_does(qtype: str) -> None:
    raw = blocks(qtype, 7, 512, seed=4)
    f32 = gguf_linear.dequantize_rows(raw, Q[qtype].value, 512)
    bf = gguf_linear.dequantize_rows(raw, Q[qtype].value, 512, torch.bfloat16)
    assert bf.dtype == torch.bfloat16 and torch.equal(bf, f32.to(torch.bfloat16))


@pytest.mark.parametrize("qtype", TYPES)
def test_dequantize_rows_equals_gguf_bit_for_bit(qtype: str) -> None:
    raw = blocks(qtype, 7, 512, seed=3)
    got = gguf_linear.dequantize_rows(raw, Q[qtype].value, 512)
    assert torch.equal(got.double(), reference_weight(raw, qtype, 512))


@pytest.mark.parametrize("qtype", TYPES)
@pytest.mark.parametrize("rows", [1, 3, 8, 9, 21])
def test_kernel_matches_gguf_dequantize_times_activations(qtype: str, rows: int) -> None:
    k, n = 512, 37
    raw = blocks(qtype, n, k, seed=rows)
    layer = GGUFLinear([(raw, Q[qtype].value)], k)
    torch.manual_seed(rows)
    x = torch.randn(rows, k) * torch.rand(rows, 1) * 4
    with torch.inference_mode():
        y = layer(x)
    assert y.shape == (rows, n) and y.dtype == torch.float32
    w = reference_weight(raw, qtype, k)
    assert _rel(y, quantized_activations(x) @ w.t()) < 1e-5  # the same arithmetic
    assert _rel(y, x.double() @ w.t()) < 0.03  # what 8-bit activations cost


@pytest.mark.parametrize("qtype", TYPES)
def test_one_row_equals_its_row_of_a_batch_bit_for_bit(qtype: str) -> None:
    """A decode step's one-row product (four weight rows at a time, ggml_rows.h gg_rows_m1)
    does each row's arithmetic exactly as the batched kernel does, so greedy decoding of a
    GGUF model is the same alone or in a batch. 38 rows: groups of four and a tail of two;
    K = 544 is 17 blocks of 32, so the pass over block pairs has a last single block."""
    k, n = 544 if qtype not in K_TYPES else 512, 38
    raw = blocks(qtype, n, k, seed=11)
    layer = GGUFLinear([(raw, Q[qtype].value)], k)
    torch.manual_seed(5)
    x = torch.randn(8, k) * torch.rand(8, 1) * 3
    with torch.inference_mode():
        batched = layer(x)
        alone = torch.cat([layer(x[i : i + 1]) for i in range(8)])
    assert torch.equal(alone, batched)


def test_one_row_of_fused_parts_equals_the_batch() -> None:
    """Parts of different types side by side (a Q4_K_M file's q/k/v), one row at a time; a
    part of two rows has no group of four at all."""
    k = 512
    parts = [(blocks(t, n, k, seed=i), Q[t].value) for i, (t, n) in
             enumerate([("Q5_0", 9), ("Q8_0", 6), ("Q4_1", 2), ("Q4_K", 5)])]  # fmt: skip
    layer = GGUFLinear(parts, k)
    x = torch.randn(3, k)
    with torch.inference_mode():
        assert torch.equal(torch.cat([layer(x[i : i + 1]) for i in range(3)]), layer(x))


@pytest.mark.parametrize("qtype", ["Q4_1", "Q6_K"])
def test_a_long_prompt_takes_the_float_gemm(qtype: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Above the kernel's row limit the blocks are dequantized and, in float32, the result is
    the dequantized weight times x, to float rounding."""
    monkeypatch.setenv(gguf_linear.GEMM_ENV, "float32")
    raw = blocks(qtype, 24, 256, 9)
    layer = GGUFLinear([(raw, Q[qtype].value)], 256)
    x = torch.randn(gguf_linear._KERNEL_ROWS_LIMIT + 1, 256)
    with torch.inference_mode():
        y = layer(x)
    assert _rel(y, x.double() @ reference_weight(raw, qtype, 256).t()) < 1e-5


@pytest.mark.parametrize("qtype", ["Q4_1", "Q6_K"])
def test_a_long_prompt_in_bfloat16_is_the_bfloat16_gemm(
    qtype: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bfloat16 GEMM (CPUs with bfloat16 dot products): x and the dequantized weight
    rounded to bfloat16, float32 out; within bfloat16 rounding of the float32 product."""
    monkeypatch.setenv(gguf_linear.GEMM_ENV, "bfloat16")
    raw = blocks(qtype, 24, 256, 9)
    layer = GGUFLinear([(raw, Q[qtype].value)], 256)
    x = torch.randn(gguf_linear._KERNEL_ROWS_LIMIT + 1, 256)
    w = gguf_linear.dequantize_rows(raw, Q[qtype].value, 256)
    with torch.inference_mode():
        y = layer(x)
    assert y.dtype == torch.float32
    assert torch.equal(y, F.linear(x.bfloat16(), w.bfloat16()).float())
    exact = x.double() @ reference_weight(raw, qtype, 256).t()
    assert 1e-5 < _rel(y, exact) < 2e-2


def test_the_row_limit_follows_the_gemm_dtype(monkeypatch: pytest.MonkeyPatch) -> None:
    """100 prompt rows: the 8-bit kernel below float32's limit (128), the GEMM above
    bfloat16's (80)."""
    raw = blocks("Q4_1", 24, 256, 9)
    layer = GGUFLinear([(raw, Q.Q4_1.value)], 256)
    x = torch.randn(100, 256)
    w = gguf_linear.dequantize_rows(raw, Q.Q4_1.value, 256)
    with torch.inference_mode():
        monkeypatch.setenv(gguf_linear.GEMM_ENV, "float32")
        kernel = layer(x)
        monkeypatch.setenv(gguf_linear.GEMM_ENV, "bfloat16")
        gemm = layer(x)
    assert _rel(kernel, quantized_activations(x) @ reference_weight(raw, "Q4_1", 256).t()) < 1e-5
    assert torch.equal(gemm, F.linear(x.bfloat16(), w.bfloat16()).float())


def test_a_bad_gemm_override_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from tui_gen.errors import TuiGenError

    monkeypatch.setenv(gguf_linear.GEMM_ENV, "bf16")
    with pytest.raises(TuiGenError, match="use float32 or bfloat16"):
        gguf_linear.gemm_dtype("cpu")


def test_the_gemm_dtype_follows_the_cpu_and_the_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(gguf_linear.GEMM_ENV, raising=False)
    monkeypatch.setattr(gguf_linear, "_cpu_multiplies_bfloat16", lambda: True)
    assert gguf_linear.gemm_dtype("cpu") == torch.bfloat16
    assert gguf_linear.gemm_dtype("cuda") == torch.float32  # other devices keep float32
    monkeypatch.setattr(gguf_linear, "_cpu_multiplies_bfloat16", lambda: False)
    assert gguf_linear.gemm_dtype("cpu") == torch.float32  # emulated bfloat16 would be slower
    monkeypatch.setenv(gguf_linear.GEMM_ENV, "bfloat16")
    assert gguf_linear.gemm_dtype("cpu") == torch.bfloat16
    assert gguf_linear.gemm_dtype("cuda") == torch.float32
    # with the bfloat16 GEMM the kernel hands over sooner
    assert gguf_linear.rows_limit(False, torch.bfloat16) < gguf_linear.rows_limit(
        False, torch.float32
    )
    assert gguf_linear.rows_limit(True, torch.bfloat16) < gguf_linear.rows_limit(
        True, torch.float32
    )


def test_fused_parts_keep_their_types_and_bias() -> None:
    """q/k/v of a Q4_K_M file: three types side by side, one product, no copy."""
    k = 256
    parts = [(blocks("Q4_K", 16, k, 1), Q.Q4_K.value), (blocks("Q6_K", 8, k, 2), Q.Q6_K.value),
             (blocks("Q8_0", 8, k, 3), Q.Q8_0.value)]  # fmt: skip
    singles = [GGUFLinear([p], k, bias=torch.randn(p[0].shape[0])) for p in parts]
    fused = GGUFLinear.concatenate(singles)
    assert fused.out_features == 32 and fused.types == [t for _, t in parts]
    held = [s.block_parts()[0] for s in singles]  # the Q8_0 part may be in the x4 layout
    assert all(a.data_ptr() == b.data_ptr() for a, b in zip(fused.block_parts(), held))
    assert fused.layouts == [lay for s in singles for lay in s.layouts]
    x = torch.randn(2, 5, k)
    with torch.inference_mode():
        expected = torch.cat([s(x) for s in singles], dim=-1)
        got = fused(x)
    assert got.shape == (2, 5, 32)
    assert _rel(got, expected) < 1e-6


def test_embedding_dequantizes_only_the_rows_looked_up() -> None:
    raw = blocks("Q8_0", 50, 64, 4)
    emb = GGUFEmbedding(raw, Q.Q8_0.value, 64)
    idx = torch.tensor([[3, 0, 49], [7, 7, 1]])
    got = emb(idx)
    w = reference_weight(raw, "Q8_0", 64)
    assert got.shape == (2, 3, 64)
    assert torch.equal(got.double(), w[idx])


def test_without_the_library_layers_dequantize_with_torch(monkeypatch: pytest.MonkeyPatch):
    raw = blocks("Q4_K", 12, 256, 5)
    layer = GGUFLinear([(raw, Q.Q4_K.value)], 256, bias=torch.randn(12))
    monkeypatch.setattr(build, "load", lambda: None)
    x = torch.randn(3, 256)
    y = layer(x)  # float activations: the dequantized weight times x
    ref = x.double() @ reference_weight(raw, "Q4_K", 256).t() + layer.bias.double()
    assert _rel(y, ref) < 1e-5


def test_bad_blocks_are_refused() -> None:
    with pytest.raises(ValueError, match="no GGUF block kernel"):
        GGUFLinear([(torch.zeros(2, 8, dtype=torch.uint8), 0)], 2)
    with pytest.raises(ValueError, match="whole Q4_K blocks"):
        GGUFLinear([(torch.zeros(2, 72, dtype=torch.uint8), Q.Q4_K.value)], 128)
    with pytest.raises(ValueError, match="contiguous uint8"):
        GGUFLinear([(torch.zeros(2, 17, dtype=torch.uint8), Q.Q4_0.value)], 32)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("flags", "isa"),
    [
        ("-mno-avx512f -mno-avxvnni", "avx2"),  # -mno-avxvnni: CPUs with 256-bit AVX-VNNI
        ("-mno-avx512f -mno-avx2 -mno-fma", "portable"),
    ],
)
def test_avx2_and_portable_builds_compute_the_same(
    flags: str, isa: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The loops a CPU without VNNI (or without AVX2) compiles, built here on purpose."""
    monkeypatch.setenv("TUI_GEN_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("TUI_GEN_NATIVE_CFLAGS", flags)
    build.reset()
    try:
        assert gguf_linear.isa() == isa
        for qtype in TYPES:
            raw = blocks(qtype, 9, 512, 7)
            layer = GGUFLinear([(raw, Q[qtype].value)], 512)
            x = torch.randn(3, 512)
            ref = quantized_activations(x) @ reference_weight(raw, qtype, 512).t()
            assert _rel(layer(x), ref) < 1e-5, qtype
            one = layer(x[:1])  # a decode step's product: gg_rows_m1 where the build has SIMD
            assert _rel(one, ref[:1]) < 1e-5 and torch.equal(one, layer(x)[:1]), qtype
            got = gguf_linear.dequantize_rows(raw, Q[qtype].value, 512).double()
            assert torch.equal(got, reference_weight(raw, qtype, 512)), qtype
    finally:
        monkeypatch.delenv("TUI_GEN_NATIVE_CFLAGS")
        monkeypatch.delenv("TUI_GEN_CACHE_DIR")
        build.reset()


# --------------------------------------------------------------------------- loading


@pytest.fixture(scope="module")
def byte_tok():
    return train_byte_level_tokenizer()


@pytest.fixture(scope="module", params=["Q4_1", "Q4_K", "Q8_0"])
def quant_gguf(request, tmp_path_factory, byte_tok) -> Path:
    hf = tiny_hf_model(byte_tok.get_vocab_size(), tie=request.param == "Q8_0", seed=2)
    path = tmp_path_factory.mktemp("gguf") / f"tiny-{request.param}.gguf"
    return write_gguf(path, hf, byte_tok, qtype=request.param)


IDS = torch.tensor([[1, 72, 101, 108, 108, 111, 44, 32, 119, 111, 114, 108, 100, 33]])


def test_a_gguf_keeps_its_types_by_default(quant_gguf: Path) -> None:
    kept = load_model(quant_gguf, device="cpu")
    floats = load_model(quant_gguf, device="cpu", dtype="float32")
    layers = [m for m in kept.model.modules() if isinstance(m, GGUFLinear)]
    assert layers and not any(isinstance(m, nn.Linear) for m in kept.model.modules())
    assert not any(isinstance(m, GGUFLinear) for m in floats.model.modules())
    assert kept.quantization is not None and kept.quantization.startswith("gguf blocks kept")
    assert floats.quantization is None
    assert kept.num_parameters == floats.num_parameters
    # the blocks of an unpermuted tensor are views of the mapped file, not copies, or (the
    # 32-element types on an AVX-512 VNNI build) the same bytes repacked four rows a block
    size = quant_gguf.stat().st_size
    down = kept.model.model.layers[0].mlp.down_proj
    assert isinstance(down, GGUFLinear)
    lib = build.load()
    x4 = lib is not None and lib.gg_x4_available() and down.types[0] in gguf_linear.X4_TYPES
    assert down.layouts == [gguf_linear.LAYOUT_X4 if x4 else gguf_linear.LAYOUT_FILE]
    if x4:
        assert down.blocks0.untyped_storage().nbytes() == down.blocks0.numel()
    else:
        assert down.blocks0.untyped_storage().nbytes() == size
    with torch.inference_mode():
        a, b = kept.model(IDS)[0], floats.model(IDS)[0]
    # 8-bit activations on a random model with large weights (initializer_range 0.25)
    assert _rel(a, b) < 0.15
    assert (a.argmax(-1) == b.argmax(-1)).float().mean().item() >= 0.75


def test_quantize_none_or_int8_dequantizes_a_gguf(quant_gguf: Path) -> None:
    plain = load_model(quant_gguf, device="cpu", quantize="none")
    assert not any(isinstance(m, GGUFLinear) for m in plain.model.modules())
    q8 = load_model(quant_gguf, device="cpu", quantize="int8")
    assert q8.quantization is not None and "int8" in q8.quantization
    keep = load_model(quant_gguf, device="cpu", quantize="keep")
    assert any(isinstance(m, GGUFLinear) for m in keep.model.modules())


def test_the_native_step_reads_the_blocks(quant_gguf: Path) -> None:
    """The decode step through decode.c's MAT_GGUF computes what the torch forward on the
    same layers does (the same kernel, one row at a time)."""
    gen = Generator.load(quant_gguf, device="cpu")
    assert gen.decode_reason == ""
    ids = IDS[0].tolist()
    cache = gen._ensure_cache()
    with torch.inference_mode():
        gen.model(torch.tensor([ids[:6]]), start=0, cache=cache)
        step = gen._decode_step(cache)
        native = [step(torch.tensor([[t]]), 6 + i, cache)[0, -1].clone()
                  for i, t in enumerate(ids[6:])]  # fmt: skip
        gen.model(torch.tensor([ids[:6]]), start=0, cache=cache)
        torch_steps = [gen.model(torch.tensor([[t]]), start=6 + i, cache=cache)[0, -1]
                       for i, t in enumerate(ids[6:])]  # fmt: skip
    # the same kernel; the inputs differ by float rounding (C's norms vs torch's), which can
    # move an 8-bit activation by one step, so the logits agree to ~1%, not to 1e-6
    assert _rel(torch.stack(native), torch.stack(torch_steps)) < 0.03


def test_the_rows_step_reads_the_blocks_for_every_row(quant_gguf: Path) -> None:
    """A batched native step (the server's) over kept GGUF blocks gives each row what the
    one-row step gives it: every row's activations are quantized on their own and dotted with
    the same decoded blocks, so rows neither mix nor shift."""
    gen = Generator.load(quant_gguf, device="cpu")
    prompts = torch.stack([IDS[0, :6], IDS[0, 3:9], IDS[0, 7:13], IDS[0, 1:7], IDS[0, 2:8]])
    fed = torch.tensor([[33], [101], [44], [111], [72]])
    cfg = gen.config
    alone = []
    with torch.inference_mode():
        for p, t in zip(prompts, fed):
            cache = gen._ensure_cache()
            gen.model(p[None], start=0, cache=cache)
            alone.append(gen._decode_step(cache)(t[None], 6, cache)[0, -1].clone())
        rows = KVCache(cfg.num_layers, 5, cfg.num_kv_heads, 32, cfg.head_dim, gen.dtype, "cpu")
        gen.model(prompts, start=0, cache=rows)
        assert gen.batch_backend(rows) == "native"
        batched = gen.batch_step(rows)(fed, 6, rows, None, None)[:, -1]
    for r in range(5):
        assert _rel(batched[r], alone[r]) < 1e-5, r
    assert _rel(batched[0], batched[1]) > 1e-3  # the rows really differ


def test_held_bytes_count_a_tied_head_once(tmp_path: Path, byte_tok) -> None:
    hf = tiny_hf_model(byte_tok.get_vocab_size(), tie=True, seed=3)
    path = write_gguf(tmp_path / "tied.gguf", hf, byte_tok, qtype="Q8_0")
    loaded = load_model(path, device="cpu")
    model = loaded.model
    assert isinstance(model.lm_head, GGUFLinear)
    assert isinstance(model.model.embed_tokens, GGUFEmbedding)
    assert model.lm_head.blocks0.data_ptr() == model.model.embed_tokens.blocks.data_ptr()
    held = gguf_linear.held_bytes(model)
    ckpt_bytes = sum(i.nbytes for _, i in open_gguf(path).hf_tensor_infos() if i.type_id == 8)
    assert held == {"Q8_0": ckpt_bytes}


def test_info_shows_bytes_per_type_and_the_rss_estimate(quant_gguf: Path) -> None:
    from tui_gen.cli.info import describe, format_text

    kept = describe(str(quant_gguf), device="cpu")
    floats = describe(str(quant_gguf), device="cpu", dtype="float32")
    qtype = quant_gguf.stem.split("-")[1]
    assert kept["quantization"] == "keep" and floats["quantization"] is None
    assert set(kept["tensor_type_bytes"]) == {qtype, "F32"}
    assert sum(kept["tensor_type_bytes"].values()) < quant_gguf.stat().st_size
    assert kept["weight_bytes_in_memory"] < floats["weight_bytes_in_memory"] / 2
    kv = kept["kv_cache_bytes_at_max_context"]
    assert kept["rss_estimate_bytes"] == kept["weight_bytes_in_memory"] + kv
    text = format_text(kept)
    assert f"tensor bytes    {qtype} " in text and "RSS estimate    " in text
    assert "memory-mapped" in text
    dt = str(gguf_linear.gemm_dtype("cpu")).replace("torch.", "")
    assert f"prompt GEMM     {dt} on dequantized tiles above" in text
    assert floats["prompt_gemm"] is None and "prompt GEMM" not in format_text(floats)


# --- two activation planes (--activations precise) ------------------------------------------


def two_planes(x: torch.Tensor) -> torch.Tensor:
    """x as the two-plane kernel sees it: the 8-bit blocks plus their residual's 8-bit blocks."""
    first = quantized_activations(x).float()
    return first.double() + quantized_activations(x.float() - first)


@pytest.mark.parametrize("qtype", TYPES)
@pytest.mark.parametrize("rows", [1, 3, 8, 9])
def test_two_planes_compute_with_the_residual_too(qtype: str, rows: int) -> None:
    """--activations precise: each row's product uses x's 8-bit blocks and the blocks of what
    they left over, so it matches float activations ~100x closer than one plane does; each row
    of a batch equals that row alone, bit for bit (the one-row and batched kernels agree)."""
    k, n = 512, 37  # 37: four-row groups of the one-row kernel and a remainder
    raw = blocks(qtype, n, k, seed=rows)
    layer = GGUFLinear([(raw, Q[qtype].value)], k)
    torch.manual_seed(rows)
    x = torch.randn(rows, k) * torch.rand(rows, 1) * 4
    with torch.inference_mode():
        one = layer(x)
        assert gguf_linear.set_activations(nn.Sequential(layer), "precise") == 1
        y = layer(x)
        alone = torch.cat([layer(x[i : i + 1]) for i in range(rows)])
    w = reference_weight(raw, qtype, k)
    exact = x.double() @ w.t()
    assert _rel(y, two_planes(x) @ w.t()) < 1e-5  # the same arithmetic
    assert _rel(y, exact) < 3e-4 and _rel(y, exact) < _rel(one, exact) / 20
    assert torch.equal(y, alone)
    assert "x2 planes" in layer.backend


def test_activations_flag_reaches_the_decode_step(quant_gguf: Path) -> None:
    """Generator.load(activations="precise"): the native step's logits follow the float32
    dequantization far more closely than with 8-bit activations; a bad value is one error."""
    ids = IDS[0].tolist()
    ref = Generator.load(quant_gguf, device="cpu", dtype="float32")
    errs = {}
    for mode in ("fast", "precise"):
        gen = Generator.load(quant_gguf, device="cpu", activations=mode)
        assert gen.decode_reason == "" and gen.activations == mode
        cache = gen._ensure_cache()
        with torch.inference_mode():
            full = ref.model(torch.tensor([ids]))[0, 6:]
            gen.model(torch.tensor([ids[:6]]), start=0, cache=cache)
            step = gen._decode_step(cache)
            got = torch.stack([step(torch.tensor([[t]]), 6 + i, cache)[0, -1].clone()
                               for i, t in enumerate(ids[6:])])  # fmt: skip
        errs[mode] = _rel(got, full)
    assert "precise activations" in (gen.loaded.quantization or "")
    assert errs["precise"] < errs["fast"] / 5, errs
    with pytest.raises(TuiGenError, match="fast or precise"):
        Generator.load(quant_gguf, device="cpu", activations="exact")
