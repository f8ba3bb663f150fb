"""The native rows step (decode.c's decode_rows, NativeDecoder.step_rows) behind
Generator.batch_step: batched greedy decoding equals one-at-a-time decoding, padded rows see
their own positions and mask, and a new cache object is bound afresh."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from tiny_models import make_model

from tui_gen.engine.batch import Request
from tui_gen.engine.events import FinishEvent
from tui_gen.engine.generator import Generator
from tui_gen.engine.native import build
from tui_gen.engine.native.decode import NativeDecoder
from tui_gen.models.kv_cache import KVCache

pytestmark = pytest.mark.skipif(build._compiler() is None, reason="no C compiler on this machine")

# different lengths on purpose (left padding), every one at least two tokens
PROMPTS = [
    "The quick brown fox jumps",
    "Preheat the",
    "def add(a, b):\n    return a + b\n\nprint(add(2, 3))",
    "Numbers: 0 1 2 3",
    "Unicode: café",
]
#: per-row max_new_tokens: rows leave the batch at different steps (select_rows' new caches)
LENGTHS = [24, 5, 17, 1, 11]


class _Spy:
    """Counts the native rows steps and the torch one-token forwards of a generator."""

    def __init__(self, gen: Generator, monkeypatch: pytest.MonkeyPatch) -> None:
        self.rows_steps = 0
        self.torch_steps = 0
        real_rows = NativeDecoder.step_rows
        real_forward = gen.model.forward

        def rows(decoder: NativeDecoder, *args: Any, **kw: Any) -> torch.Tensor:
            self.rows_steps += 1
            return real_rows(decoder, *args, **kw)

        def forward(idx: torch.Tensor, *args: Any, **kw: Any) -> torch.Tensor:
            self.torch_steps += int(idx.shape[1] == 1)
            return real_forward(idx, *args, **kw)

        monkeypatch.setattr(NativeDecoder, "step_rows", rows)
        monkeypatch.setattr(gen.model, "forward", forward)


def _batch_ids(gen: Generator, prompts: list[str], lengths: list[int]) -> dict[int, list[int]]:
    reqs = [
        Request(gen.encode(p), gen.params(do_sample=False, max_new_tokens=n), i)
        for i, (p, n) in enumerate(zip(prompts, lengths))
    ]
    out = {}
    for ev in gen.stream_batch(reqs):
        if isinstance(ev, FinishEvent):
            out[ev.index] = ev.token_ids
    return out


def _check_batch_equals_alone(
    gen: Generator, monkeypatch: pytest.MonkeyPatch, prompts: list[str], lengths: list[int]
) -> None:
    alone = [
        gen.generate_result(p, do_sample=False, max_new_tokens=n).token_ids
        for p, n in zip(prompts, lengths)
    ]
    assert gen.decode_backend == "native", gen._native
    spy = _Spy(gen, monkeypatch)
    batched = _batch_ids(gen, prompts, lengths)
    assert spy.rows_steps > 0 and spy.torch_steps == 0  # every batch step was native
    assert [batched[i] for i in range(len(prompts))] == alone
    assert len({len(a) for a in alone}) > 2  # rows did finish at different steps


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gpt2"])
@pytest.mark.parametrize("mode", [None, "int8"])
def test_greedy_batch_on_the_native_rows_equals_one_at_a_time(
    arch: str, mode: str | None, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    path: Path = request.getfixturevalue(f"tiny_{arch}")
    gen = Generator.load(path, device="cpu", dtype="float32", quantize=mode)
    _check_batch_equals_alone(gen, monkeypatch, PROMPTS, LENGTHS)


def test_rows_without_padding(tiny_qwen2: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Prompts of one length: batch_step gets no positions and no mask."""
    gen = Generator.load(tiny_qwen2, device="cpu", dtype="float32")
    prompts = [[3, 4, 5, 6, 7], [8, 9, 10, 11, 12], [20, 21, 22, 23, 24]]
    alone = [gen.generate_result(p, do_sample=False, max_new_tokens=12).token_ids for p in prompts]
    seen: list[tuple[bool, bool]] = []
    real = NativeDecoder.step_rows

    def rows(decoder: NativeDecoder, idx, start, cache, positions=None, key_padding=None):
        seen.append((positions is None, key_padding is None))
        return real(decoder, idx, start, cache, positions, key_padding)

    monkeypatch.setattr(NativeDecoder, "step_rows", rows)
    reqs = [Request(p, gen.params(do_sample=False, max_new_tokens=12), i) for i, p in
            enumerate(prompts)]  # fmt: skip
    got = {ev.index: ev.token_ids for ev in gen.stream_batch(reqs) if isinstance(ev, FinishEvent)}
    assert [got[i] for i in range(3)] == alone
    assert seen and all(s == (True, True) for s in seen)


def test_more_rows_than_a_kernel_block(tiny_llama: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """11 rows: the float and quantized kernels take 8 rows at a time."""
    for mode in (None, "int4"):
        gen = Generator.load(tiny_llama, device="cpu", dtype="float32", quantize=mode)
        prompts = [f"{p} {i}" for i, p in enumerate(PROMPTS * 3)][:11]
        with monkeypatch.context() as mp:
            _check_batch_equals_alone(gen, mp, prompts, [6 + (i % 4) * 3 for i in range(11)])


FAMILIES: dict[str, dict[str, Any]] = {
    "gemma3_text": dict(num_hidden_layers=4, sliding_window=6, sliding_window_pattern=2,
                        rope_local_base_freq=100.0, rope_theta=10000.0),
    "gemma2": dict(num_hidden_layers=3, sliding_window=6, attn_logit_softcapping=2.0,
                   final_logit_softcapping=3.0),
    "qwen3": dict(num_hidden_layers=3, use_sliding_window=True, sliding_window=6,
                  max_window_layers=1, head_dim=16),
    "olmo2": {},
    "granite": dict(embedding_multiplier=6.0, attention_multiplier=0.09,
                    residual_multiplier=0.4, logits_scaling=3.0),
    "smollm3": dict(num_hidden_layers=4, no_rope_layer_interval=2, pad_token_id=None),
    "phi3": dict(partial_rotary_factor=0.5, pad_token_id=None),
}  # fmt: skip


@pytest.mark.parametrize("arch", list(FAMILIES))
def test_every_native_family_batches_natively(
    arch: str, tiny_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Windows (past them), two rotary tables, soft-caps, q/k norms, multipliers, NoPE and
    partial rotary in the rows step too."""
    path = make_model(tiny_root / f"rows-{arch}", arch, seed=31, **FAMILIES[arch])
    gen = Generator.load(path, device="cpu", dtype="float32")
    _check_batch_equals_alone(gen, monkeypatch, PROMPTS, [20, 9, 14, 3, 12])


def _padded_batch(gen: Generator, prompts: list[list[int]], columns: int) -> tuple[Any, ...]:
    c = gen.config
    b, P = len(prompts), max(len(p) for p in prompts)
    idx = torch.zeros(b, P, dtype=torch.long)
    positions = torch.zeros(b, P, dtype=torch.long)
    key_padding = torch.ones(b, columns, dtype=torch.bool)
    for i, p in enumerate(prompts):
        pad = P - len(p)
        idx[i, pad:] = torch.tensor(p)
        positions[i, pad:] = torch.arange(len(p))
        key_padding[i, :pad] = False
    cache = KVCache(c.num_layers, b, c.num_kv_heads, columns, c.head_dim, gen.dtype, "cpu")
    with torch.inference_mode():
        gen.model(idx, 0, cache, positions, key_padding, last_only=True)
    pads = torch.tensor([P - len(p) for p in prompts])
    return cache, key_padding, pads, P


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_rows_logits_and_cache_match_the_torch_batch_forward(tiny_llama: Path, dtype: str) -> None:
    gen = Generator.load(tiny_llama, device="cpu", dtype=dtype)
    decoder = gen._native_decoder()
    assert decoder is not None
    prompts = [list(range(3, 14)), [5, 6, 7], list(range(20, 27))]
    cache, key_padding, pads, P = _padded_batch(gen, prompts, 40)
    ref_cache = KVCache.__new__(KVCache)
    ref_cache.k, ref_cache.v = [t.clone() for t in cache.k], [t.clone() for t in cache.v]
    ref_cache.batch_size, ref_cache.max_seq_len, ref_cache.length = 3, 40, cache.length
    tok = torch.tensor([[9], [10], [11]])
    tol = 1e-4 if dtype == "float32" else 3e-2
    with torch.inference_mode():
        for col in range(P, P + 6):
            pos = (col - pads)[:, None]
            got = decoder.step_rows(tok, col, cache, pos, key_padding)
            ref = gen.model(tok, col, ref_cache, pos, key_padding).float()
            assert got.shape == ref.shape == (3, 1, gen.config.vocab_size)
            assert ((got - ref).abs().max() / ref.abs().max()).item() < tol
            if dtype == "float32":  # (bfloat16: torch rounds every op, the step computes in
                assert torch.equal(got.argmax(-1), ref.argmax(-1))  # float32)
            tok = ref.argmax(-1)
    for a, b in zip(cache.k + cache.v, ref_cache.k + ref_cache.v):
        torch.testing.assert_close(a.float(), b.float(), atol=tol, rtol=tol)
    assert cache.length == ref_cache.length == P + 6


def test_rows_bind_each_new_cache_object(tiny_gpt2: Path) -> None:
    """Alternating caches, then a select_rows copy and a cache spliced from two others (as a
    continuous-batching scheduler makes them): each call reads and writes its own cache."""
    gen = Generator.load(tiny_gpt2, device="cpu", dtype="float32")
    decoder = gen._native_decoder()
    assert decoder is not None
    a, kp_a, pads_a, P_a = _padded_batch(gen, [[3, 4, 5, 6], [7, 8]], 32)
    b, kp_b, pads_b, P_b = _padded_batch(gen, [[9, 10, 11]], 32)

    def alone(ids: list[int]) -> int:
        with torch.inference_mode():
            return int(gen.model(torch.tensor([ids]))[0, -1].argmax())

    seqs_a, seqs_b = [[3, 4, 5, 6], [7, 8]], [[9, 10, 11]]
    with torch.inference_mode():
        for step in range(3):
            for cache, kp, pads, P, seqs in ((a, kp_a, pads_a, P_a, seqs_a),
                                             (b, kp_b, pads_b, P_b, seqs_b)):  # fmt: skip
                col = P + step
                tok = torch.tensor([[alone(s)] for s in seqs])
                for s, t in zip(seqs, tok[:, 0].tolist()):
                    s.append(t)
                logits = decoder.step_rows(tok, col, cache, (col - pads)[:, None], kp)
                for row, s in enumerate(seqs):
                    assert int(logits[row, -1].argmax()) == alone(s)
        # drop row 0 of `a` (a new cache object), then splice `b`'s row in after it
        one = a.select_rows(torch.tensor([1]))
        spliced = KVCache.__new__(KVCache)
        spliced.k = [torch.cat((x, y)) for x, y in zip(one.k, b.k)]
        spliced.v = [torch.cat((x, y)) for x, y in zip(one.v, b.v)]
        spliced.batch_size, spliced.max_seq_len, spliced.length = 2, 32, a.length
        assert a.length == P_a + 3 and b.length == P_b + 3 and P_a == 4 and P_b == 3
        # b's row sits one column to the left of a's: shift it so both write column a.length
        for t in spliced.k + spliced.v:
            t[1, :, 1 : a.length] = t[1, :, : a.length - 1].clone()
        kp = torch.ones(2, 32, dtype=torch.bool)
        kp[0, : pads_a[1] + 0] = False
        kp[1, : pads_b[0] + 1] = False
        seqs = [seqs_a[1], seqs_b[0]]
        for col in range(a.length, a.length + 3):
            tok = torch.tensor([[alone(s)] for s in seqs])
            for s, t in zip(seqs, tok[:, 0].tolist()):
                s.append(t)
            pos = torch.tensor([[len(s) - 1] for s in seqs])
            logits = decoder.step_rows(tok, col, spliced, pos, kp)
            for row, s in enumerate(seqs):
                assert int(logits[row, -1].argmax()) == alone(s)


def test_phi3_longrope_rows_use_their_own_factors(tiny_root: Path) -> None:
    """A row past original_max_position_embeddings (32) rotates with the long factors and a
    row before it with the short ones, in the same step: each as it would alone."""
    factors = {"short_factor": [1.0, 1.1, 1.3, 1.7], "long_factor": [1.0, 2.0, 4.0, 9.0]}
    path = make_model(
        tiny_root / "rows-phi3l", "phi3", seed=32, initializer_range=0.3, pad_token_id=None,
        partial_rotary_factor=0.5, original_max_position_embeddings=32,
        rope_parameters={"rope_type": "longrope", **factors, "rope_theta": 10000.0,
                         "partial_rotary_factor": 0.5},
    )  # fmt: skip
    gen = Generator.load(path, device="cpu", dtype="float32")
    decoder = gen._native_decoder()
    assert decoder is not None
    long_ids, short_ids = [3 + i % 50 for i in range(36)], [4, 5, 6, 7, 8]
    c = gen.config
    P = len(long_ids)
    # each row's prompt prefilled alone (a batched torch prefill picks one factor set for
    # every row, by the longest), then placed left-padded in the batch cache
    cache = KVCache(c.num_layers, 2, c.num_kv_heads, 48, c.head_dim, torch.float32, "cpu")
    kp = torch.ones(2, 48, dtype=torch.bool)
    alone = []
    with torch.inference_mode():
        for row, ids in enumerate((long_ids, short_ids)):
            one = KVCache(c.num_layers, 1, c.num_kv_heads, 48, c.head_dim, torch.float32, "cpu")
            gen.model(torch.tensor([ids]), 0, one)
            pad = P - len(ids)
            for dst, src in zip(cache.k + cache.v, one.k + one.v):
                dst[row, :, pad:P] = src[0, :, : len(ids)]
            kp[row, :pad] = False
            alone.append(one)
        cache.length = P
        tok = torch.tensor([[9], [10]])
        pos = torch.tensor([[len(long_ids)], [len(short_ids)]])
        both = decoder.step_rows(tok, P, cache, pos, kp)[:, -1].clone()
        for row, ids in enumerate((long_ids, short_ids)):
            ref = decoder.step(tok[row : row + 1], len(ids), alone[row])[0, -1]
            assert ((both[row] - ref).abs().max() / ref.abs().max()).item() < 1e-4


def test_batch_step_falls_back_to_torch(tiny_bdh: Path, tiny_llama: Path) -> None:
    bdh = Generator.load(tiny_bdh, device="cpu", dtype="float32")
    assert bdh.batch_backend(bdh._ensure_cache()) == "torch"
    half = Generator.load(tiny_llama, device="cpu", dtype="float16")
    c = half.config
    cache = KVCache(c.num_layers, 2, c.num_kv_heads, 16, c.head_dim, torch.float16, "cpu")
    assert half.batch_backend(cache) == "torch"
    gen = Generator.load(tiny_llama, device="cpu", dtype="float32")
    assert gen.batch_backend(KVCache(c.num_layers, 2, c.num_kv_heads, 16, c.head_dim,
                                     torch.float32, "cpu")) == "native"  # fmt: skip
    half_cache = KVCache(c.num_layers, 2, c.num_kv_heads, 16, c.head_dim, torch.bfloat16, "cpu")
    assert gen.batch_backend(half_cache) == "native"  # --kv-cache-dtype bfloat16
    wrong = KVCache(c.num_layers, 2, c.num_kv_heads, 16, c.head_dim, torch.float16, "cpu")
    assert gen.batch_backend(wrong) == "torch"  # a cache dtype the native step does not read


def test_bad_rows_arguments_are_refused(tiny_llama: Path) -> None:
    gen = Generator.load(tiny_llama, device="cpu", dtype="float32")
    decoder = gen._native_decoder()
    assert decoder is not None
    cache, kp, pads, P = _padded_batch(gen, [[3, 4, 5], [6, 7]], 16)
    tok = torch.tensor([[8], [9]])
    with torch.inference_mode():
        with pytest.raises(ValueError, match="3 tokens for a cache of 2 rows"):
            decoder.step_rows(torch.tensor([[8], [9], [10]]), P, cache, None, None)
        with pytest.raises(ValueError, match="key_padding"):
            decoder.step_rows(tok, P, cache, (P - pads)[:, None], kp[:, :P])
        assert cache.length == P  # nothing was written
        out = decoder.step_rows(tok, P, cache, (P - pads)[:, None], kp)
    assert out.shape == (2, 1, gen.config.vocab_size) and cache.length == P + 1
