"""engine/native/prompt_kernels.py: a kept GGUF model's prompt kernels, the causal attention in
bfloat16 dot products (prompt_kernels.c) and the gated MLP's activation (decode.c).

The attention's reference is the same attention in float64 on the inputs rounded to bfloat16
(what the kernel multiplies): the kernel must agree with it to the rounding of the
probabilities (~1e-3), far below what a wrong key, head, mask or position would cost, and it
must differ from float32 attention by about bfloat16's rounding (so it is the kernel that ran).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from test_gguf import tiny_hf_model, train_byte_level_tokenizer, write_gguf

from tui_gen.engine.loading.loader import load_model
from tui_gen.engine.native import build, gguf_linear, prompt_kernels
from tui_gen.engine.native.prompt_kernels import MIN_QUERIES, gated_activation
from tui_gen.models.common import gated

needs_kernel = pytest.mark.skipif(
    build._compiler() is None or not prompt_kernels.available(),
    reason="the library has no bfloat16 attention here (no compiler or no AVX512-BF16)",
)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def reference(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, softcap: float, window: int
) -> torch.Tensor:
    """(1, H, T, D) in float64 from bfloat16-rounded inputs, queries at the last T of S."""
    q, k, v = (t.bfloat16().double() for t in (q, k, v))
    H, T, KV, S = q.shape[1], q.shape[2], k.shape[1], k.shape[2]
    k, v = k.repeat_interleave(H // KV, dim=1), v.repeat_interleave(H // KV, dim=1)
    s = (q @ k.transpose(-1, -2)) * scale
    if softcap:
        s = torch.tanh(s / softcap) * softcap
    qp, kp = torch.arange(S - T, S)[:, None], torch.arange(S)[None]
    ok = kp <= qp
    if window:
        ok &= qp - kp < window
    return torch.softmax(s.masked_fill(~ok, float("-inf")), -1) @ v


def kernel(q, k, v, scale: float, softcap: float = 0.0, window: int = 0) -> torch.Tensor:
    """The C function itself (window and softcap too, which the wrapper does not pass)."""
    lib = build.load()
    assert lib is not None
    _, H, T, D = q.shape
    out = torch.empty(T, H, D)
    rc = lib.prompt_attention_bf16(
        q.data_ptr(), q.stride(1), q.stride(2), k.data_ptr(), v.data_ptr(), k.stride(1),
        k.stride(2), out.data_ptr(), T, k.shape[2], H, k.shape[1], D, scale, softcap, window, 2,
    )  # fmt: skip
    assert rc == 0, rc
    return out.transpose(0, 1)[None]


def inputs(H: int, KV: int, T: int, S: int, D: int, seed: int = 0):
    """q as the transposed view of a fused projection's output, k and v as slices of a larger
    cache (the strides the models pass)."""
    g = torch.Generator().manual_seed(seed)
    qkv = torch.randn(1, T, H + 2 * KV, D, generator=g)
    q = qkv[:, :, :H].transpose(1, 2)
    cache = torch.zeros(2, 1, KV, S + 37, D)
    cache[:, :, :, :S] = torch.randn(2, 1, KV, S, D, generator=g)
    return q, cache[0, :, :, :S], cache[1, :, :, :S]


SHAPES = [  # H, KV, T, S, D, window, softcap
    (4, 1, 200, 200, 256, 0, 0.0),  # Gemma 3 270M's heads
    (9, 3, 100, 130, 64, 0, 0.0),  # SmolLM2's, continuing 30 cached positions
    (8, 8, 33, 50, 128, 0, 0.0),
    (4, 2, 77, 77, 64, 20, 0.0),  # a sliding window
    (2, 1, 40, 40, 64, 0, 50.0),  # Gemma 2's soft-capped scores
    (2, 1, 1, 5, 64, 0, 0.0),  # one query
    (3, 1, 17, 17, 192, 0, 0.0),  # rows and keys that fill no whole tile
]


@needs_kernel
@pytest.mark.parametrize("shape", SHAPES, ids=[str(s) for s in SHAPES])
def test_the_kernel_is_attention_on_bfloat16_inputs(shape: tuple) -> None:
    H, KV, T, S, D, window, cap = shape
    q, k, v = inputs(H, KV, T, S, D)
    scale = D**-0.5 if not cap else 0.9
    got = kernel(q, k, v, scale, cap, window)
    assert _rel(got, reference(q, k, v, scale, cap, window)) < 3e-3
    # against float32 attention on the unrounded inputs: bfloat16's rounding, no more
    exact = reference(q.double(), k.double(), v.double(), scale, cap, window)
    full = reference(q.float().double(), k.double(), v.double(), scale, cap, window)
    assert 1e-4 < _rel(got, exact) < 2e-2 and _rel(full, exact) < 1e-2


def test_a_wrong_mask_or_head_would_show() -> None:
    """The tolerance above is tight enough: attention that sees one more key, or reads the
    next key head, is far outside it."""
    q, k, v = inputs(4, 2, 64, 64, 64)
    good = reference(q, k, v, 0.125, 0.0, 0)
    one_more = reference(q, k, v, 0.125, 0.0, 0)
    one_more[:, :, :-1] = reference(q[:, :, :-1], k, v, 0.125, 0.0, 0)[:, :, :]
    swapped = reference(q, k.flip(1), v.flip(1), 0.125, 0.0, 0)
    assert _rel(one_more, good) > 3e-2 and _rel(swapped, good) > 0.3


@needs_kernel
def test_the_wrapper_attends_prompts_and_declines_the_rest() -> None:
    q, k, v = inputs(4, 2, MIN_QUERIES + 3, MIN_QUERIES + 10, 64)
    got = prompt_kernels.prompt_attention(q, k, v, 0.125, None)
    assert got is not None and got.shape == q.shape
    assert torch.equal(got, prompt_kernels.prompt_attention(q.contiguous(), k, v, 0.125, None))
    assert _rel(got, reference(q, k, v, 0.125, 0.0, 0)) < 3e-3
    short = inputs(4, 2, MIN_QUERIES - 1, MIN_QUERIES - 1, 64)
    assert prompt_kernels.prompt_attention(*short, 0.125, None) is None  # integer-dot prompts
    odd = inputs(4, 2, 100, 100, 32)  # a head size the kernel does not tile
    assert prompt_kernels.prompt_attention(*odd, 0.125, None) is None
    assert prompt_kernels.prompt_attention(q.double(), k.double(), v.double(), 1.0, None) is None
    two = [torch.cat([t, t]) for t in (q, k, v)]  # a batch
    assert prompt_kernels.prompt_attention(*two, 0.125, None) is None


@pytest.fixture(scope="module")
def kept_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tok = train_byte_level_tokenizer()
    hf = tiny_hf_model(tok.get_vocab_size(), seed=4)  # head size 64
    return write_gguf(tmp_path_factory.mktemp("pa") / "tiny-Q8_0.gguf", hf, tok, qtype="Q8_0")


def test_the_kernel_goes_where_the_prompt_gemms_are_bfloat16(
    kept_gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept = load_model(kept_gguf, device="cpu")
    bf16 = gguf_linear.gemm_dtype("cpu") == torch.bfloat16
    assert prompt_kernels.installed(kept.model) == (bf16 and prompt_kernels.available())
    floats = load_model(kept_gguf, device="cpu", dtype="float32")
    assert not prompt_kernels.installed(floats.model)
    monkeypatch.setenv(gguf_linear.GEMM_ENV, "float32")
    assert not prompt_kernels.installed(load_model(kept_gguf, device="cpu").model)


@pytest.fixture
def bf16_kept(kept_gguf: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The kept model with its prompt GEMMs (and so its attention) in bfloat16."""
    monkeypatch.setenv(gguf_linear.GEMM_ENV, "bfloat16")
    return load_model(kept_gguf, device="cpu")


@needs_kernel
def test_a_long_prompt_of_a_kept_model_attends_through_the_kernel(bf16_kept: Any) -> None:
    kept = bf16_kept
    calls: list[int] = []

    def counted(q, k, v, scale, softcap, window=0):
        y = prompt_kernels.prompt_attention(q, k, v, scale, softcap, window)
        calls.append(y is not None)
        return y

    mods = [m for m in kept.model.modules() if hasattr(m, "prompt_attention")]
    assert mods and all(m.prompt_attention is not None for m in mods)
    ids = torch.randint(3, 200, (1, 120), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        for m in mods:
            m.prompt_attention = counted
        fast = kept.model(ids)[0]
        for m in mods:
            m.prompt_attention = None
        slow = kept.model(ids)[0]
    assert calls == [True] * len(mods)  # every layer, once
    assert 1e-5 < _rel(fast, slow) < 3e-2
    assert (fast.argmax(-1) == slow.argmax(-1)).float().mean().item() > 0.9


def test_masks_built_from_positions_alone_say_so() -> None:
    """The kernel attends under a mask it can rebuild from positions (causal, a window) and
    never under a batch's key-padding mask, which only the tensor knows."""
    from tui_gen.models.common import WINDOW_MARK, build_attention_mask, build_window_mask

    assert getattr(build_attention_mask(30, 100, torch.device("cpu")), WINDOW_MARK) == 0
    assert getattr(build_window_mask(30, 100, torch.device("cpu"), None, 64), WINDOW_MARK) == 64
    pad = torch.ones(1, 130, dtype=torch.bool)
    pad[0, :3] = False
    assert not hasattr(build_attention_mask(30, 100, torch.device("cpu"), pad), WINDOW_MARK)
    assert not hasattr(build_window_mask(30, 100, torch.device("cpu"), pad, 64), WINDOW_MARK)
    seen: list[int] = []

    def spy(q, k, v, scale, softcap, window=0):
        seen.append(window)
        return None  # declined: torch attends

    q, k, v = inputs(4, 2, 100, 130, 64)
    mask = build_window_mask(30, 100, torch.device("cpu"), None, 64)
    from tui_gen.models.common import attend

    out = attend(q, k, v, mask, causal=False, kernel=spy)
    assert seen == [64] and _rel(out, reference(q, k, v, 0.125, 0.0, 64)) < 3e-3


@needs_kernel
def test_a_prompt_continuing_a_cache_attends_through_the_kernel(bf16_kept: Any) -> None:
    kept = bf16_kept
    from tui_gen.models.kv_cache import KVCache

    cfg = kept.config
    windows: list[int] = []

    def counted(q, k, v, scale, softcap, window=0):
        y = prompt_kernels.prompt_attention(q, k, v, scale, softcap, window)
        if y is not None:  # the 30-token prompt is declined (MIN_QUERIES)
            windows.append(window)
        return y

    mods = [m for m in kept.model.modules() if hasattr(m, "prompt_attention")]
    ids = torch.randint(3, 200, (1, 130), generator=torch.Generator().manual_seed(1))
    out = []
    for kernel in (counted, None):
        for m in mods:
            m.prompt_attention = kernel
        shape = (cfg.num_layers, 1, cfg.num_kv_heads, 160, cfg.head_dim)
        cache = KVCache(*shape, torch.float32, "cpu")
        with torch.inference_mode():
            kept.model(ids[:, :30], start=0, cache=cache)  # short: the integer-dot products
            out.append(kept.model(ids[:, 30:], start=30, cache=cache)[0])
    assert windows == [0] * len(mods)  # the 100 new tokens, every layer
    assert 1e-5 < _rel(out[0], out[1]) < 3e-2


def test_torch_attends_without_the_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    """The models' own attention is what runs where the kernel declines (None)."""
    from tui_gen.models.common import attend

    q, k, v = inputs(4, 2, 100, 100, 64)
    declined = attend(q, k, v, None, causal=True, kernel=lambda *a: None)
    k2, v2 = k.repeat_interleave(2, 1), v.repeat_interleave(2, 1)
    ref = F.scaled_dot_product_attention(q, k2, v2, is_causal=True)
    assert torch.allclose(declined, ref, atol=1e-5)
    sentinel = torch.zeros_like(q)
    assert attend(q, k, v, None, causal=True, kernel=lambda *a: sentinel) is sentinel
    mask = torch.ones(1, 1, 100, 100, dtype=torch.bool).tril()
    assert attend(q, k, v, mask, causal=False, kernel=lambda *a: sentinel) is not sentinel


needs_library = pytest.mark.skipif(build._compiler() is None, reason="no C compiler here")


def exact(u: torch.Tensor, act: str) -> torch.Tensor:
    gate, up = u.double().chunk(2, -1)
    if act == "silu":
        return gate * torch.sigmoid(gate) * up
    z = 0.7978845608028654 * (gate + 0.044715 * gate**3)
    return 0.5 * gate * (1 + torch.tanh(z)) * up


@needs_library
@pytest.mark.parametrize("act", ["silu", "gelu_tanh"])
def test_the_gated_activation_is_torchs(act: str) -> None:
    g = torch.Generator().manual_seed(1)
    u = torch.randn(2, 37, 2 * 203, generator=g) * 4  # tails beyond the eight lanes, both signs
    got = gated_activation(u, act)
    assert got is not None and got.shape == (2, 37, 203)
    # float64 truth: torch's float32 tanh GELU loses digits to 1 + tanh(z) for negative
    # inputs (2.1307e-03 where the truth is 2.1310e-03), which the kernel avoids
    assert torch.allclose(got.double(), exact(u, act), rtol=1e-5, atol=1e-6)
    assert torch.allclose(got, gated(u, act), rtol=1e-3, atol=1e-5)  # torch's, roughly
    other = gated(u, "gelu_tanh" if act == "silu" else "silu")
    assert not torch.allclose(got, other, rtol=1e-2, atol=1e-2)  # it computed `act`
    strided = torch.randn(2 * 203, 37, generator=g).t()  # not contiguous
    assert torch.allclose(gated_activation(strided, act).double(), exact(strided, act), atol=1e-6)
    assert gated_activation(u.double(), act) is None and gated_activation(u, "relu") is None


def test_torch_computes_the_activation_where_the_kernel_declines() -> None:
    u = torch.randn(4, 10)
    gate, up = u.chunk(2, -1)
    assert torch.equal(gated(u, "silu", lambda u, a: None), torch.nn.functional.silu(gate) * up)
    sentinel = torch.zeros(4, 5)
    assert gated(u, "silu", lambda u, a: sentinel) is sentinel
    with pytest.raises(ValueError, match="relu"):
        gated(u, "relu")


@needs_library
def test_a_kept_models_mlps_get_the_activation(kept_gguf: Path) -> None:
    kept = load_model(kept_gguf, device="cpu")
    mlps = [m for m in kept.model.modules() if hasattr(m, "gated_activation")]
    assert mlps and all(m.gated_activation is gated_activation for m in mlps)
    ids = torch.randint(3, 200, (1, 20), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        fast = kept.model(ids)[0]
        for m in mlps:
            m.gated_activation = None
        slow = kept.model(ids)[0]
    assert _rel(fast, slow) < 1e-5
    floats = load_model(kept_gguf, device="cpu", dtype="float32")
    assert not prompt_kernels.installed(floats.model, "gated_activation")
