"""Weight-only quantization: each path against float32 matmul, kernel vs fallback, tiny models."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tui_gen import Generator
from tui_gen.engine.native.gguf_linear import GGUFLinear
from tui_gen.engine.quantize import (
    Int4Linear,
    Int8Linear,
    _dequant_int4,
    check_mode,
    describe,
    int4_kernel_available,
    int8_kernel_available,
    pack_nibbles,
    quantize_int4,
    quantize_int8,
    quantize_model,
    quantized_layers,
    unpack_nibbles,
)
from tui_gen.errors import TuiGenError
from tui_gen.models.linear import TransposedLinear

CPU = torch.device("cpu")


def _linear(k: int, n: int, bias: bool, seed: int = 0, dtype=torch.float32) -> nn.Linear:
    g = torch.Generator().manual_seed(seed)
    lin = nn.Linear(k, n, bias=bias)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(n, k, generator=g) * 0.05)
        if bias:
            lin.bias.copy_(torch.randn(n, generator=g))
    return lin.to(dtype)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


# --- the quantizers --------------------------------------------------------------------------


def test_int8_quantizer_round_trip_error_is_half_a_step() -> None:
    w = torch.randn(64, 96)
    q, s = quantize_int8(w)
    assert q.dtype == torch.int8 and s.shape == (64,)
    assert int(q.abs().max()) <= 127
    err = (q.float() * s[:, None] - w).abs()
    assert bool((err <= s[:, None] / 2 + 1e-6).all())


@pytest.mark.parametrize("group", [16, 32, 64, 128])
def test_int4_quantizer_round_trip_error_is_half_a_step(group: int) -> None:
    w = torch.randn(48, 256)
    q, sm = quantize_int4(w, group)
    assert q.dtype == torch.uint8 and int(q.max()) <= 15
    assert sm.shape == (48, 256 // group, 2)
    deq = _dequant_int4(q, sm, group, torch.float32)
    step = sm[..., 0].repeat_interleave(group, dim=1)  # (N, K)
    assert bool(((deq - w).abs() <= step / 2 + 1e-5).all())


def test_nibble_packing_round_trips() -> None:
    q = torch.randint(0, 16, (8, 34), dtype=torch.uint8)
    assert torch.equal(unpack_nibbles(pack_nibbles(q)), q)


# --- modules vs float32 matmul ---------------------------------------------------------------

SHAPES = [(64, 48), (576, 192), (128, 320), (96, 16)]


#: (use_kernel, act_dtype): the default choice, the kernel fed float32 (exact to rounding),
#: and the portable dequantize+matmul fallback
PATHS = [(None, None), (True, torch.float32), (False, None)]


def _close(y: torch.Tensor, ref: torch.Tensor, mod: torch.nn.Module) -> None:
    """Exact to float32 rounding, or to bfloat16's when the kernel gets bfloat16 activations."""
    if mod.use_kernel and mod.act_dtype == torch.bfloat16:
        assert _rel(y, ref) < 1e-2
    else:
        torch.testing.assert_close(y, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("k,n", SHAPES)
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("use_kernel,act_dtype", PATHS)
def test_int8_linear_matches_float32(k: int, n: int, bias: bool, use_kernel, act_dtype) -> None:
    lin = _linear(k, n, bias)
    if use_kernel and k % 16:
        pytest.skip("the int8 kernel is never used for K % 16 != 0")
    mod = Int8Linear(lin, use_kernel, act_dtype)
    x = torch.randn(2, 3, k)
    y = mod(x)
    assert y.shape == (2, 3, n) and y.dtype == torch.float32
    # exact to rounding against the dequantized weight ...
    q, s = quantize_int8(lin.weight)
    _close(y, F.linear(x, q.float() * s[:, None], lin.bias), mod)
    # ... and within int8's step of the float weight
    assert _rel(y, lin(x)) < 0.015


@pytest.mark.parametrize("k,n", SHAPES)
@pytest.mark.parametrize("group", [32, 64, 128])
@pytest.mark.parametrize("use_kernel,act_dtype", PATHS)
def test_int4_linear_matches_float32(k: int, n: int, group: int, use_kernel, act_dtype) -> None:
    lin = _linear(k, n, bias=True)
    if use_kernel and n % 16:
        pytest.skip("the int4 kernel is never used for N % 16 != 0")
    mod = Int4Linear(lin, group, use_kernel, act_dtype)
    x = torch.randn(5, k)
    y = mod(x)
    assert y.shape == (5, n)
    kp = -(-k // group) * group
    q, sm = quantize_int4(F.pad(lin.weight.detach(), (0, kp - k)), group)
    deq = _dequant_int4(q, sm, group, torch.float32)[:, :k]
    _close(y, F.linear(x, deq, lin.bias), mod)
    assert _rel(y, lin(x)) < 0.12  # 4 bits: ~6% relative error on Gaussian weights


@pytest.mark.parametrize("cls,kw", [(Int8Linear, {}), (Int4Linear, {"group_size": 32})])
def test_kernel_path_equals_fallback_path(cls, kw) -> None:
    lin = _linear(576, 192, bias=False)
    slow = cls(lin, use_kernel=False, **kw)
    assert not slow.use_kernel
    for fast in (cls(lin, **kw), cls(lin, use_kernel=True, act_dtype=torch.float32, **kw)):
        assert fast.use_kernel
        for m in (1, 44):
            x = torch.randn(m, 576)
            _close(fast(x), slow(x), fast)
        # a prefill's last row is a view at an offset: the kernels need aligned rows
        x = torch.randn(45, 576)
        torch.testing.assert_close(fast(x[-1:]), fast(x[-1:].clone()))


def test_cpu_kernels_are_used_here() -> None:
    """torch >= 2.6 on x86/ARM CPUs has both kernels; the modules must pick them up."""
    for dt in (torch.float32, torch.bfloat16):
        assert int8_kernel_available(CPU, dt)
        assert int4_kernel_available(CPU, dt)
    lin = _linear(576, 192, bias=False)
    assert Int8Linear(lin).use_kernel and Int4Linear(lin).use_kernel


def test_shapes_the_kernels_refuse_fall_back() -> None:
    # int8: bf16 kernel crashes for K % 16 != 0; int4: N % 16 != 0 and odd group sizes
    assert not Int8Linear(_linear(40, 32, False)).use_kernel
    assert not Int4Linear(_linear(64, 24, False), 32).use_kernel
    assert not Int4Linear(_linear(64, 32, False), 16).use_kernel
    with pytest.raises(ValueError):
        Int4Linear(_linear(64, 24, False), 32, use_kernel=True)


@pytest.mark.parametrize("cls", [Int8Linear, Int4Linear])
def test_bfloat16_paths(cls) -> None:
    lin = _linear(576, 192, bias=True, dtype=torch.bfloat16)
    fast, slow = cls(lin), cls(lin, use_kernel=False)
    x = torch.randn(3, 576).to(torch.bfloat16)
    y = fast(x)
    assert y.dtype == torch.bfloat16
    ref = F.linear(x.float(), lin.weight.float(), lin.bias.float())
    assert _rel(y, ref) < (0.02 if cls is Int8Linear else 0.12)
    assert _rel(y, slow(x)) < 0.02  # bf16 rounding differs between the paths


# --- whole models ------------------------------------------------------------------------------


def _load(path: Path, mode: str | None) -> Generator:
    return Generator.load(path, device="cpu", dtype="float32", quantize=mode)


@pytest.mark.parametrize("fixture", ["tiny_llama", "tiny_gpt2"])
@pytest.mark.parametrize("mode", ["int8", "int4"])
def test_quantized_tiny_models_generate(request, fixture: str, mode: str) -> None:
    path = request.getfixturevalue(fixture)
    ref, gen = _load(path, None), _load(path, mode)
    model = gen.model
    assert not any(isinstance(m, nn.Linear) for m in model.modules())
    # both are in the decode layout (q/k/v and gate/up fused); ref keeps float matrices
    n_linear = sum(isinstance(m, nn.Linear | TransposedLinear) for m in ref.model.modules())
    assert len(quantized_layers(model)) == n_linear
    # the (tied) embedding stays float; the head is its own quantized copy
    emb = model.transformer.wte if fixture == "tiny_gpt2" else model.model.embed_tokens
    assert isinstance(emb, nn.Embedding) and emb.weight.dtype == torch.float32
    assert model.lm_head in quantized_layers(model)
    ids = list(range(3, 20))
    with torch.inference_mode():
        a = ref.model(torch.tensor([ids]))
        b = model(torch.tensor([ids]))
    assert _rel(b, a) < (0.02 if mode == "int8" else 0.2)
    out = gen.generate_result(ids, do_sample=False, max_new_tokens=12)
    assert len(out.token_ids) > 0
    again = gen.generate_result(ids, do_sample=False, max_new_tokens=12)
    assert again.token_ids == out.token_ids  # deterministic
    assert gen.loaded.quantization is not None and mode in gen.loaded.quantization
    assert gen.loaded.num_parameters == ref.loaded.num_parameters


def test_int8_greedy_mostly_matches_float32(tiny_llama: Path) -> None:
    ref, gen = _load(tiny_llama, None), _load(tiny_llama, "int8")
    ids = list(range(3, 30))
    with torch.inference_mode():
        a = ref.model(torch.tensor([ids])).argmax(-1)
        b = gen.model(torch.tensor([ids])).argmax(-1)
    assert (a == b).float().mean().item() >= 0.9


def test_generator_quantizes_an_already_loaded_model(tiny_llama: Path) -> None:
    from tui_gen.engine.loading.loader import load_model

    gen = Generator(load_model(tiny_llama, device="cpu", dtype="float32"), quantize="int4")
    assert describe(gen.model).startswith("int4 g32")
    assert gen.generate_result([3, 4, 5], do_sample=False, max_new_tokens=4).token_ids


def test_quantize_model_none_is_a_no_op() -> None:
    model = nn.Sequential(nn.Linear(32, 16))
    assert quantize_model(model, "none") is model
    assert isinstance(model[0], nn.Linear)
    assert describe(model) == "none"


@pytest.mark.parametrize("bad", ["int3", "fp8", "q4_1"])
def test_unknown_mode_is_a_user_error(bad: str, tiny_llama: Path) -> None:
    with pytest.raises(TuiGenError, match="int8, int4"):
        quantize_model(nn.Linear(4, 4), bad)
    with pytest.raises(TuiGenError, match="int8, int4"):
        Generator.load(tiny_llama, device="cpu", quantize=bad)


def test_mode_spellings() -> None:
    assert check_mode("INT8") == "int8"
    assert check_mode(" int4 ") == "int4"
    assert check_mode(None) is None and check_mode("none") is None


def test_int4_search_never_worse_than_min_max() -> None:
    w = torch.randn(64, 128) * torch.rand(64, 1)
    w[0, 5] = 8.0  # an outlier the plain min/max range is spent on
    errs = []
    for search in (False, True):
        q, sm = quantize_int4(w, 32, search)
        errs.append((_dequant_int4(q, sm, 32, torch.float32) - w).pow(2).sum().item())
    assert errs[1] <= errs[0]


def _head_bits(model: nn.Module) -> int:
    """8 or 4: a NativeQuantLinear's width, or a GGUF-block head's type (Q8_0 / Q4_1)."""
    head = model.lm_head
    if isinstance(head, GGUFLinear):
        return {8: 8, 3: 4}[head.types[0]]
    return head.bits


def test_int4_head_is_int8_by_default(tiny_llama: Path) -> None:
    gen = _load(tiny_llama, "int4")
    assert _head_bits(gen.model) == 8
    want = "Q8_0 lm_head" if isinstance(gen.model.lm_head, GGUFLinear) else "int8 lm_head"
    assert want in describe(gen.model)
    model = _load(tiny_llama, None).model
    quantize_model(model, "int4", head="int4")
    assert _head_bits(model) == 4
    model = _load(tiny_llama, None).model
    quantize_model(model, "int4", head=None)
    assert isinstance(model.lm_head, nn.Linear | TransposedLinear)  # left float


@pytest.mark.parametrize("mode", ["int8", "int4"])
def test_quantizing_a_decode_layout_model(tiny_llama: Path, mode: str) -> None:
    """quant_quality quantizes a Generator's model, which holds pre-transposed matrices."""
    gen = _load(tiny_llama, None)
    ids = torch.tensor([list(range(3, 20))])
    with torch.inference_mode():
        ref = gen.model(ids)
        quantize_model(gen.model, mode)
        out = gen.model(ids)
    assert not any(isinstance(m, TransposedLinear) for m in gen.model.modules())
    assert _rel(out, ref) < (0.02 if mode == "int8" else 0.2)
