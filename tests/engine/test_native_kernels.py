"""The C kernels (tui_gen/engine/native): built on this machine, checked against torch.

The reference for every kernel result is `qlinear.dequantize` (plain torch) followed by a
float64 matmul, so a wrong group order, nibble order, scale/min swap or row offset shows up
as an error far above float32 rounding.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from torch import nn

from tui_gen.engine.generator import Generator
from tui_gen.engine.native import build, qlinear
from tui_gen.engine.quantize import Int4Linear, Int8Linear, describe, quantize_model

pytestmark = pytest.mark.skipif(build._compiler() is None, reason="no C compiler on this machine")


@pytest.fixture(autouse=True)
def _library_built() -> None:
    # with a compiler present the library must build: a broken qmatmul.c fails here instead
    # of silently falling back to torch's kernels
    assert build.load() is not None, build.reason()


def _reference(layer: qlinear.NativeQuantLinear, x: torch.Tensor) -> torch.Tensor:
    w = qlinear.dequantize(layer.qweight, layer.scale_min, layer.bits, layer.padded_in)
    w = w[:, : layer.in_features].double()
    y = x.double() @ w.t()
    return y if layer.bias is None else y + layer.bias.double()


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).abs().max() / b.double().abs().max()).item()


@pytest.mark.parametrize("bits", [8, 4])
@pytest.mark.parametrize("rows", [1, 2, 3, 5, 8, 9, 17, 32, 33, 40])
@pytest.mark.parametrize(("k", "n", "bias"), [(64, 48, False), (96, 33, True), (40, 16, True)])
def test_kernel_matches_the_dequantized_matmul(bits: int, rows: int, k: int, n: int, bias: bool):
    torch.manual_seed(rows * 1000 + k + n)
    layer = qlinear.NativeQuantLinear(nn.Linear(k, n, bias=bias), bits)
    x = torch.randn(rows, k)
    with torch.inference_mode():
        y = layer(x)
    assert y.shape == (rows, n) and y.dtype == torch.float32
    assert _rel(y, _reference(layer, x)) < 1e-5


@pytest.mark.parametrize("bits", [8, 4])
@pytest.mark.parametrize(("k", "n"), [(96, 38), (544, 9), (64, 3)])
def test_one_row_equals_its_row_of_a_batch_bit_for_bit(bits: int, k: int, n: int) -> None:
    """One activation row (a decode step's product) takes four weight rows at a time
    (qrows.h's q_rows4_m1) with each row's arithmetic exactly q_row's, so a row's result is the
    same bits alone or in a batch. 38 rows: groups and a tail; 544: an odd number of groups;
    3 rows: no group of four."""
    torch.manual_seed(k + n)
    layer = qlinear.NativeQuantLinear(nn.Linear(k, n), bits)
    x = torch.randn(5, k)
    with torch.inference_mode():
        batched = layer(x)
        alone = torch.cat([layer(x[i : i + 1]) for i in range(5)])
    assert torch.equal(alone, batched)


@settings(max_examples=25, deadline=None)
@given(
    bits=st.sampled_from([4, 8]),
    rows=st.integers(1, 8),
    groups=st.integers(1, 6),
    n=st.integers(1, 70),
    seed=st.integers(0, 2**16),
)
def test_kernel_any_shape(bits: int, rows: int, groups: int, n: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    lin = nn.Linear(32 * groups, n, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(lin.weight.shape, generator=g) * torch.rand(n, 1, generator=g))
    layer = qlinear.NativeQuantLinear(lin, bits)
    x = torch.randn(2, rows, 32 * groups, generator=g)  # leading dims are kept
    with torch.inference_mode():
        y = layer(x)
    assert y.shape == (2, rows, n)
    assert _rel(y.reshape(-1, n), _reference(layer, x.reshape(-1, 32 * groups))) < 1e-5


@pytest.mark.parametrize("bits", [8, 4])
def test_quantized_values_are_the_nearest_levels(bits: int) -> None:
    w = torch.randn(16, 128) * torch.rand(16, 1) * 3
    q, sm = qlinear.quantize_groups(w, bits)
    assert q.dtype == torch.uint8 and int(q.max()) <= (1 << bits) - 1
    assert sm.dtype == torch.float16 and sm.shape == (16, 4, 2)
    back = qlinear.dequantize(
        qlinear.pack_halves(q) if bits == 4 else q, sm, bits, 128
    )  # also checks that pack_halves and dequantize agree on the nibble order
    step = sm[..., 0].float().repeat_interleave(32, dim=1)
    assert ((back - w).abs() <= step * 0.5 + 1e-3 * step + 1e-6).all()


def test_nibble_order_is_j_and_j_plus_16() -> None:
    q = torch.arange(32, dtype=torch.uint8).remainder(16).reshape(1, 32)
    packed = qlinear.pack_halves(q)
    assert packed.shape == (1, 16)
    assert [int(b) & 0xF for b in packed[0]] == list(range(16))
    assert [int(b) >> 4 for b in packed[0]] == list(range(16))


def test_input_dtype_and_threads_do_not_change_the_result() -> None:
    torch.manual_seed(0)
    layer = qlinear.NativeQuantLinear(nn.Linear(128, 64), 8)
    x = torch.randn(3, 128)
    threads = torch.get_num_threads()
    with torch.inference_mode():
        a = layer(x)
        torch.set_num_threads(1)
        try:
            b = layer(x)
        finally:
            torch.set_num_threads(threads)
        c = layer(x.bfloat16())
    assert torch.equal(a, b)  # rows are split across threads, each sum stays in one thread
    assert c.dtype == torch.bfloat16
    assert _rel(c, a) < 0.02


@pytest.mark.parametrize("mode", ["int8", "int4"])
def test_decode_steps_match_the_full_forward(tiny_llama: Path, mode: str) -> None:
    """The cached decode step (kernel, one row) and the prompt path (dequantize + GEMM) of the
    same quantized model give the same logits."""
    gen = Generator.load(tiny_llama, device="cpu", dtype="float32", quantize=mode)
    assert "native" in describe(gen.model)
    ids = list(range(3, 23))
    cache = gen._ensure_cache()
    with torch.inference_mode():
        full = gen.model(torch.tensor([ids]))[0]  # (T, V)
        gen.model(torch.tensor([ids[:12]]), start=0, cache=cache)
        steps = [gen.model(torch.tensor([[t]]), start=12 + i, cache=cache)[0, -1]
                 for i, t in enumerate(ids[12:])]  # fmt: skip
    assert _rel(torch.stack(steps), full[12:]) < 1e-4


def test_int8_is_grouped_and_closer_than_per_channel() -> None:
    torch.manual_seed(1)
    lin = nn.Linear(256, 128)
    with torch.no_grad():
        lin.weight[:, :32] *= 20  # one group of large weights per row spoils a per-row scale
    x = torch.randn(4, 256)
    with torch.inference_mode():
        ref = lin(x)
        grouped = qlinear.NativeQuantLinear(lin, 8)(x)
        per_channel = Int8Linear(lin, use_kernel=False)(x)
    assert _rel(grouped, ref) < _rel(per_channel, ref) / 2


def test_no_compiler_falls_back_to_torch_kernels(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TUI_GEN_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("CC", "/bin/false")  # a "compiler" that always fails
    monkeypatch.setattr(build.shutil, "which", lambda name: name if name == "/bin/false" else None)
    build.reset()
    try:
        assert build.load() is None
        assert "could not build" in build.reason()
        assert not list(tmp_path.rglob("*.so"))  # nothing half-written left behind
        model = quantize_model(nn.Sequential(nn.Linear(64, 32)), "int8")
        assert isinstance(model[0], Int8Linear)
        model = quantize_model(nn.Sequential(nn.Linear(64, 32)), "int4")
        assert isinstance(model[0], Int4Linear)
    finally:
        build.reset()


def test_disabled_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUI_GEN_NATIVE", "0")
    build.reset()
    try:
        assert build.load() is None and "TUI_GEN_NATIVE" in build.reason()
        assert not qlinear.available("cpu")
    finally:
        build.reset()


def test_library_is_cached_per_source_and_cpu(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TUI_GEN_CACHE_DIR", str(tmp_path))
    cc = build._compiler()
    assert cc is not None
    path = build.library_path(cc)
    assert path.parent == tmp_path / "kernels"
    monkeypatch.setattr(build, "_cpu_id", lambda: "another cpu")
    assert build.library_path(cc) != path  # a shared home never hands one CPU another's build


@pytest.mark.slow
def test_a_fresh_process_builds_into_an_empty_cache(tmp_path: Path) -> None:
    env = {**os.environ, "TUI_GEN_CACHE_DIR": str(tmp_path)}
    code = (
        "import torch; from tui_gen.engine.native import build; "
        "lib = build.load(); print(lib is not None, build.reason())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.startswith("True")
    assert len(list((tmp_path / "kernels").glob("qmatmul-*.so"))) == 1


@pytest.mark.slow
def _f_matmul(x: torch.Tensor, w: torch.Tensor, threads: int = 1) -> torch.Tensor:
    """frows.h's batched float kernel (the decode step's) on x (M, K) and w (N, K)."""
    lib = build.load()
    assert lib is not None
    x, w = x.contiguous(), w.contiguous()
    y = torch.full((x.shape[0], w.shape[0]), float("nan"))
    bf = int(w.dtype == torch.bfloat16)
    rc = lib.f_matmul(
        x.data_ptr(), w.data_ptr(), y.data_ptr(), x.shape[0], w.shape[0], x.shape[1], bf, threads
    )
    assert rc == 0
    return y


@settings(max_examples=60, deadline=None)
@given(
    rows=st.integers(1, 19),
    n=st.integers(1, 70),
    k=st.integers(1, 80),
    bf=st.booleans(),
    threads=st.sampled_from([1, 2]),
    seed=st.integers(0, 2**16),
)
@example(rows=1, n=1, k=28, bf=False, threads=1, seed=28)  # cancels to -0.05: see the bound
def test_float_rows_kernel_any_shape(
    rows: int, n: int, k: int, bf: bool, threads: int, seed: int
) -> None:
    """Every block of the float kernel (8, 4, 2 and 1 activation rows against 16 weight rows,
    the rows past a multiple of 16, a K that is not a multiple of the vector width) gives
    x @ w.T: a wrong lane order in the transposed reduction or a skipped tail shows up far above
    float32 rounding, and NaN marks an output never written."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, k, generator=g)
    w = torch.randn(n, k, generator=g).to(torch.bfloat16 if bf else torch.float32)
    y = _f_matmul(x, w, threads)
    ref = x.double() @ w.double().t()
    assert not torch.isnan(y).any()
    # float32 rounding scales with the sum of |products|, not with the result: one output that
    # cancels to -0.05 out of 28 unit-sized products (rows=n=1, k=28, seed=28) is 1.4e-5 off
    # relative to itself, yet 3e-8 of its terms
    scale = (x.double().abs() @ w.double().abs().t()).max()
    assert ((y.double() - ref).abs().max() / scale).item() < 1e-6


def test_float_rows_kernel_keeps_each_rows_result_apart() -> None:
    """One-hot activations pick single weights: output (m, n) must be w[n, m], so any mix-up
    between rows, columns or lanes is an exact mismatch."""
    n, k = 48, 32
    w = torch.arange(n * k, dtype=torch.float32).reshape(n, k)
    for rows in (1, 2, 4, 8, 11):
        x = torch.eye(rows, k)
        assert torch.equal(_f_matmul(x, w), w[:, :rows].t().contiguous())


@pytest.mark.slow
@pytest.mark.skipif(
    platform.machine().lower() not in ("x86_64", "amd64"), reason="x86 vector variants"
)
@pytest.mark.parametrize(
    ("flags", "isa"), [("-mno-avx512f", "avx2"), ("-mno-avx512f -mno-avx2 -mno-fma", "portable")]
)
def test_avx2_and_portable_loops_compute_the_same(
    flags: str, isa: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_llama: Path
) -> None:
    """The loops a CPU without AVX-512 (or without AVX2) would compile, built here on purpose."""
    monkeypatch.setenv("TUI_GEN_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("TUI_GEN_NATIVE_CFLAGS", flags)
    build.reset()
    try:
        assert build.load() is not None, build.reason()
        assert build.isa() == isa
        torch.manual_seed(0)
        for bits in (8, 4):
            layer = qlinear.NativeQuantLinear(nn.Linear(96, 40, bias=True), bits)
            assert isa in layer.backend
            for rows in (1, 3, 9):
                x = torch.randn(rows, 96)
                with torch.inference_mode():
                    assert _rel(layer(x), _reference(layer, x)) < 1e-5
        w = torch.randn(40, 96)
        for rows in (1, 3, 9):
            x = torch.randn(rows, 96)
            assert _rel(_f_matmul(x, w), x.double() @ w.double().t()) < 1e-5
        gen = Generator.load(tiny_llama, device="cpu", dtype="float32", quantize="int4")
        assert gen.decode_backend == "native"
        ids = list(range(3, 20))
        cache = gen._ensure_cache()
        with torch.inference_mode():
            full = gen.model(torch.tensor([ids]))[0]
            gen.model(torch.tensor([ids[:6]]), start=0, cache=cache)
            steps = [gen._native[0].step(torch.tensor([[t]]), 6 + i, cache)[0, -1].clone()
                     for i, t in enumerate(ids[6:])]  # fmt: skip
        assert _rel(torch.stack(steps), full[6:]) < 1e-4
    finally:
        build.reset()
