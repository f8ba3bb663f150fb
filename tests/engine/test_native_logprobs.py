"""engine/native/logprobs.c (`logprobs._native_top`): the top-N and log-sum-exp that
`read_logprobs` takes from C, checked against torch's log_softmax + topk on the same rows."""

from __future__ import annotations

import math
import platform
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tui_gen.engine import logprobs
from tui_gen.engine.logprobs import TokenTexts, read_logprobs
from tui_gen.engine.native import build
from tui_gen.engine.sampling import SamplingParams, choose, process_logits

pytestmark = pytest.mark.skipif(build._compiler() is None, reason="no C compiler on this machine")


class _Tok:
    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return f"<{ids[0]}>"


def _check_against_torch(x: torch.Tensor, n: int) -> None:
    got = logprobs._native_top(x, n)
    assert got is not None, build.reason()
    ids, vals, lse = got
    ref = x.float().log_softmax(-1)
    ref_lse = torch.logsumexp(x.float(), -1)
    k = min(n, x.shape[-1])
    for r in range(x.shape[0]):
        assert len(ids[r]) == len(vals[r]) == k
        assert math.isclose(lse[r], float(ref_lse[r]), rel_tol=1e-6, abs_tol=1e-5)
        # each id's value is its log-probability; the values are the k largest, sorted
        # (1e-5, or a float32 ulp or two where the log-probability is large: -130 is held
        # to 1.5e-5)
        for i, v in zip(ids[r], vals[r]):
            assert math.isclose(v, float(ref[r, i]), rel_tol=2.4e-7, abs_tol=1e-5)
        assert vals[r] == sorted(vals[r], reverse=True)
        top = ref[r].topk(k).values.tolist()
        assert all(math.isclose(a, b, rel_tol=2.4e-7, abs_tol=1e-5) for a, b in zip(vals[r], top))
        assert len(set(ids[r])) == k


@settings(max_examples=150, deadline=None)
@given(
    vocab=st.integers(min_value=1, max_value=300),
    rows=st.integers(min_value=1, max_value=4),
    n=st.integers(min_value=1, max_value=20),
    scale=st.sampled_from([0.01, 1.0, 30.0]),
    seed=st.integers(min_value=0, max_value=2**31),
)
def test_top_and_logsumexp_match_torch(vocab: int, rows: int, n: int, scale: float, seed: int):
    """Any vocabulary size (vector blocks of 8 and a tail), several rows, N above the
    vocabulary, flat and peaked rows."""
    x = torch.randn(rows, vocab, generator=torch.Generator().manual_seed(seed)) * scale
    _check_against_torch(x, n)


def test_a_real_vocabulary_and_strided_rows() -> None:
    """A 49k vocabulary (SmolLM2's) and last-position logits sliced out of (B, T, V): the rows
    are read at their stride, not as if they were contiguous."""
    g = torch.Generator().manual_seed(0)
    _check_against_torch(torch.randn(2, 49152, generator=g) * 4, 20)
    seq = torch.randn(3, 5, 777, generator=g)
    last = seq[:, -1]
    assert not last.is_contiguous()
    _check_against_torch(last, 7)


def test_ties_keep_the_lowest_id_first_as_argmax_does() -> None:
    x = torch.tensor([[1.0, 5.0, 2.0, 5.0, 5.0, 0.0, 2.0, 2.0, 2.0, 2.0]])
    ids, vals, _ = logprobs._native_top(x, 5) or ([], [], [])
    assert ids[0] == [1, 3, 4, 2, 6]
    assert int(x.argmax()) == ids[0][0]


def test_removed_tokens_and_non_finite_rows() -> None:
    """-inf entries (masked by the model) hold no mass; a NaN row gives NaN as torch does; an
    all -inf row a -inf log-sum-exp; a NaN is never listed as a top token."""
    x = torch.tensor(
        [
            [0.0, -math.inf, 1.0, -math.inf, 2.0],
            [0.0, math.nan, 1.0, 3.0, 2.0],
            [-math.inf] * 5,
        ]
    )
    ids, vals, lse = logprobs._native_top(x, 3) or ([], [], [])
    assert ids[0] == [4, 2, 0]
    assert math.isclose(lse[0], float(torch.logsumexp(x[0], -1)), rel_tol=1e-6)
    assert math.isnan(lse[1]) and 1 not in ids[1]
    assert lse[2] == -math.inf


def test_read_logprobs_is_the_same_with_and_without_c(monkeypatch: pytest.MonkeyPatch) -> None:
    """TUI_GEN_LOGPROBS_NATIVE=0 switches to torch: the same ids, values within float32
    rounding, greedy, with top-p alone and with top-k (whose sampled list is its first columns)."""
    logits = torch.randn(3, 500, generator=torch.Generator().manual_seed(1)) * 3
    texts = TokenTexts(_Tok())
    for p in (
        SamplingParams(do_sample=False),
        SamplingParams(top_k=0, top_p=0.9),
        SamplingParams(top_k=8, temperature=0.7),
    ):
        step = process_logits(logits, p)
        tok, col = choose(step, torch.Generator().manual_seed(0))
        with_c = read_logprobs(step, tok.tolist(), col.tolist(), [5, 1, 20], texts)
        monkeypatch.setenv("TUI_GEN_LOGPROBS_NATIVE", "0")
        assert logprobs._native_top(logits, 5) is None
        without = read_logprobs(step, tok.tolist(), col.tolist(), [5, 1, 20], texts)
        monkeypatch.delenv("TUI_GEN_LOGPROBS_NATIVE")
        for a, b in zip(with_c, without):
            assert a is not None and b is not None
            assert a.token_id == b.token_id and abs(a.logprob - b.logprob) <= 1e-5
            assert [t.token_id for t in a.top] == [t.token_id for t in b.top]
            assert all(abs(s.logprob - t.logprob) <= 1e-5 for s, t in zip(a.top, b.top))
            assert a.sampled_top == b.sampled_top


def test_a_token_outside_the_top_list_is_read_from_its_logit() -> None:
    """The chosen token is normally in the top-N; when it is not (sampling picked a rare
    token), its value is its logit minus the log-sum-exp."""
    logits = torch.arange(50, dtype=torch.float32)[None]
    step = process_logits(logits, SamplingParams(do_sample=False))
    [lp] = read_logprobs(step, [3], [3], [2], TokenTexts(_Tok()))
    assert lp is not None and [a.token_id for a in lp.top] == [49, 48]
    assert abs(lp.logprob - float(logits.log_softmax(-1)[0, 3])) <= 1e-5


@pytest.mark.slow
@pytest.mark.skipif(
    platform.machine().lower() not in ("x86_64", "amd64"), reason="x86 vector variants"
)
def test_the_portable_build_computes_the_same(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The vector types fall back to SSE halves or scalar code on a CPU without AVX2."""
    monkeypatch.setenv("TUI_GEN_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("TUI_GEN_NATIVE_CFLAGS", "-mno-avx512f -mno-avx2 -mno-fma -mno-avx")
    build.reset()
    try:
        assert build.load() is not None, build.reason()
        g = torch.Generator().manual_seed(2)
        for vocab in (1, 7, 8, 9, 1000):
            _check_against_torch(torch.randn(2, vocab, generator=g) * 5, 5)
    finally:
        build.reset()
