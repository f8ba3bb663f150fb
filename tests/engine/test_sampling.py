"""Each sampling step alone, with property tests, and the parameter checks."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tui_gen.engine.sampling import (
    apply_min_p,
    apply_repetition_penalty,
    apply_temperature,
    apply_top_k,
    apply_top_p,
    choose,
    choose_rows,
    make_generator,
    next_token,
    process_logits,
)
from tui_gen.errors import TuiGenError
from tui_gen.options import InvalidParameterError, SamplingParams

finite = st.floats(min_value=-30, max_value=30, allow_nan=False, allow_infinity=False)
logit_rows = st.lists(finite, min_size=2, max_size=40).map(lambda xs: torch.tensor([xs]))


@settings(max_examples=200, deadline=None)
@given(logits=logit_rows, p=st.floats(min_value=1e-6, max_value=1.0))
def test_top_p_keeps_smallest_set_reaching_p(logits: torch.Tensor, p: float) -> None:
    out = apply_top_p(logits, p)
    kept = torch.isfinite(out[0])
    probs = logits[0].softmax(-1)
    assert kept.any()
    # every kept token is at least as likely as every removed one
    if (~kept).any():
        assert probs[kept].min() >= probs[~kept].max() - 1e-7
    # the kept mass reaches p (up to float error) ...
    assert probs[kept].sum() >= min(p, 1.0) - 1e-5
    # ... and without its least likely member it would not (smallest such set)
    if kept.sum() > 1:
        assert probs[kept].sum() - probs[kept].min() < p + 1e-5
    # kept logits are unchanged
    assert torch.equal(out[0][kept], logits[0][kept])


def test_top_p_tiny_keeps_one_and_one_is_off() -> None:
    logits = torch.tensor([[1.0, 3.0, 2.0]])
    assert torch.isfinite(apply_top_p(logits, 1e-9)).tolist() == [[False, True, False]]
    assert torch.equal(apply_top_p(logits, 1.0), logits)


@settings(max_examples=200, deadline=None)
@given(logits=logit_rows, k=st.integers(min_value=0, max_value=60))
def test_top_k(logits: torch.Tensor, k: int) -> None:
    out = apply_top_k(logits, k)
    kept = torch.isfinite(out[0])
    V = logits.shape[1]
    if k == 0 or k >= V:
        assert kept.all()
    else:
        assert kept.sum() >= k  # ties at the k-th value are kept
        kth = torch.topk(logits[0], k).values[-1]
        assert (logits[0][kept] >= kth).all() and (logits[0][~kept] < kth).all()


@settings(max_examples=200, deadline=None)
@given(logits=logit_rows, min_p=st.floats(min_value=0.0, max_value=1.0))
def test_min_p(logits: torch.Tensor, min_p: float) -> None:
    out = apply_min_p(logits, min_p)
    probs = logits[0].softmax(-1)
    kept = torch.isfinite(out[0])
    assert kept[probs.argmax()]
    if min_p > 0:
        threshold = probs.max() * min_p
        assert (probs[kept] >= threshold - 1e-7).all()
        assert (probs[~kept] < threshold + 1e-7).all()
    else:
        assert kept.all()


@settings(max_examples=200, deadline=None)
@given(
    logits=logit_rows,
    penalty=st.floats(min_value=1.01, max_value=3.0),
    data=st.data(),
)
def test_repetition_penalty_signs(logits: torch.Tensor, penalty: float, data) -> None:
    V = logits.shape[1]
    seen_ids = data.draw(st.lists(st.integers(0, V - 1), min_size=1, max_size=10))
    seen = torch.tensor([seen_ids])
    out = apply_repetition_penalty(logits, seen, penalty)
    for i in range(V):
        before, after = logits[0, i].item(), out[0, i].item()
        if i in seen_ids:
            assert after <= before  # always less likely, whatever the sign
            expected = before * penalty if before < 0 else before / penalty
            assert math.isclose(after, expected, rel_tol=1e-6, abs_tol=1e-6)
        else:
            assert after == before


def test_repetition_penalty_counts_each_token_once() -> None:
    logits = torch.tensor([[2.0, -2.0, 1.0]])
    once = apply_repetition_penalty(logits, torch.tensor([[0, 1]]), 2.0)
    thrice = apply_repetition_penalty(logits, torch.tensor([[0, 0, 0, 1, 1]]), 2.0)
    assert torch.equal(once, thrice)
    assert once.tolist() == [[1.0, -4.0, 1.0]]


def test_temperature_scales() -> None:
    logits = torch.tensor([[1.0, 2.0]])
    assert apply_temperature(logits, 0.5).tolist() == [[2.0, 4.0]]
    assert torch.equal(apply_temperature(logits, 1.0), logits)


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**31), logits=logit_rows)
def test_seed_makes_draws_reproducible(seed: int, logits: torch.Tensor) -> None:
    p = SamplingParams(temperature=1.0, top_k=0, top_p=1.0)

    def draws() -> list[int]:
        g = make_generator(seed, "cpu")
        return [int(next_token(logits, p, None, g)) for _ in range(10)]

    assert draws() == draws()


def test_different_seeds_differ() -> None:
    logits = torch.zeros(1, 1000)
    p = SamplingParams(temperature=1.0, top_k=0, top_p=1.0)
    a = [int(next_token(logits, p, None, make_generator(1, "cpu"))) for _ in range(5)]
    b = [int(next_token(logits, p, None, make_generator(2, "cpu"))) for _ in range(5)]
    assert a != b


def test_greedy_when_temperature_zero_or_do_sample_false() -> None:
    logits = torch.tensor([[0.1, 5.0, 0.2], [3.0, 0.0, 1.0]])
    for p in (SamplingParams(temperature=0), SamplingParams(do_sample=False)):
        assert next_token(logits, p).tolist() == [1, 0]


def test_top_k_fast_path_draws_only_from_top_k() -> None:
    logits = torch.arange(100, dtype=torch.float32)[None]
    p = SamplingParams(temperature=5.0, top_k=3, top_p=1.0)
    g = make_generator(0, "cpu")
    drawn = {int(next_token(logits, p, None, g)) for _ in range(200)}
    assert drawn == {97, 98, 99}


def test_sampling_matches_distribution_after_top_p_and_temperature() -> None:
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    p = SamplingParams(temperature=1.0, top_k=0, top_p=0.8)
    g = make_generator(0, "cpu")
    counts = torch.bincount(
        torch.stack([next_token(logits, p, None, g) for _ in range(4000)]).flatten(), minlength=4
    )
    assert counts[2] == 0 and counts[3] == 0  # outside the 0.8 nucleus
    assert abs(counts[0].item() / 4000 - 0.625) < 0.04  # 0.5 / 0.8


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("temperature", -0.1, "temperature must be a number >= 0 (0 = greedy); got -0.1"),
        ("temperature", float("nan"), "temperature must be"),
        ("top_p", 0.0, "0 < top_p <= 1"),
        ("top_p", 1.5, "top_p must be a number with 0 < top_p <= 1 (1 = off); got 1.5"),
        ("min_p", -0.1, "0 <= min_p <= 1"),
        ("repetition_penalty", 0.0, "repetition_penalty must be a number > 0 (1 = off); got 0.0"),
        ("repetition_penalty", -1.0, "> 0"),
        ("max_new_tokens", 0, "max_new_tokens must be an integer >= 1; got 0"),
        ("top_k", -5, "top_k must be an integer >= 0 (0 = off); got -5"),
        ("top_k", 2.5, "got 2.5"),
        ("seed", -1, "seed must be an integer with 0 <= seed < 2**63; got -1"),
        ("seed", True, "seed must be"),
    ],
)
def test_impossible_values_raise_value_error(field: str, value, fragment: str) -> None:
    with pytest.raises(ValueError, match="must be") as info:
        SamplingParams(**{field: value})
    assert fragment in str(info.value)
    assert isinstance(info.value, (InvalidParameterError, TuiGenError))


def test_replace_rejects_unknown_names() -> None:
    with pytest.raises(ValueError, match="unknown sampling parameter"):
        SamplingParams().replace(temprature=1.0)


def test_top_k_above_vocab_is_clamped() -> None:
    logits = torch.randn(1, 10)
    assert torch.equal(apply_top_k(logits, 1000), logits)
    p = SamplingParams(temperature=1.0, top_k=1000, top_p=1.0)
    assert 0 <= int(next_token(logits, p, None, make_generator(0, "cpu"))) < 10


def test_from_generation_config() -> None:
    p = SamplingParams.from_generation_config(
        {"temperature": 0.3, "top_k": 7, "do_sample": False, "eos_token_id": 5}
    )
    assert (p.temperature, p.top_k, p.greedy) == (0.3, 7, True)
    # a broken generation_config.json must not stop a model from opening
    assert SamplingParams.from_generation_config({"top_p": 7}) == SamplingParams()


@settings(max_examples=100, deadline=None)
@given(
    rows=st.integers(min_value=1, max_value=6),
    vocab=st.integers(min_value=2, max_value=60),
    top_k=st.integers(min_value=0, max_value=10),
    top_p=st.sampled_from([1.0, 0.9, 0.5]),
    min_p=st.sampled_from([0.0, 0.1]),
    temperature=st.sampled_from([0.5, 1.0, 1.7]),
    seed=st.integers(min_value=0, max_value=2**31),
)
def test_choose_rows_draws_what_each_row_draws_alone(
    rows: int, vocab: int, top_k: int, top_p: float, min_p: float, temperature: float, seed: int
) -> None:
    """Row i of a batch, processed as one tensor and drawn from its own generator, gets the
    token its row alone gets from a generator in the same state."""
    p = SamplingParams(temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p)
    logits = torch.randn(rows, vocab, generator=torch.Generator().manual_seed(seed)) * 3
    gens = [make_generator(seed + i, "cpu") for i in range(rows)]
    solo_gens = [make_generator(seed + i, "cpu") for i in range(rows)]
    for _ in range(3):  # several draws: each generator advances as it would alone
        tok, col = choose_rows(process_logits(logits, p), gens)
        for i in range(rows):
            t, c = choose(process_logits(logits[i : i + 1], p), solo_gens[i])
            assert int(tok[i]) == int(t) and int(col[i]) == int(c)


def test_choose_rows_falls_back_to_the_argmax_per_row() -> None:
    """A temperature so small that one row's softmax overflows: that row becomes greedy, the
    other still samples."""
    logits = torch.tensor([[1.0, 3.0, 2.0], [0.0, 0.0, 0.0]])
    step = process_logits(logits, SamplingParams(temperature=1e-40, top_k=0))
    gens = [make_generator(0, "cpu"), make_generator(1, "cpu")]
    tok, _ = choose_rows(step, gens)
    assert int(tok[0]) == 1


_SPECIALS = st.sampled_from([float("nan"), float("inf"), float("-inf"), 0.0, -0.0, 1.0])


@settings(max_examples=300, deadline=None)
@given(
    rows=st.integers(1, 3),
    vocab=st.integers(1, 70),
    values=st.lists(st.floats(-4, 4, width=32) | _SPECIALS, min_size=1, max_size=210),
    ties=st.integers(0, 3),
)
def test_greedy_tokens_answer_as_torch_argmax(rows: int, vocab: int, values, ties: int) -> None:
    """Ties (the first wins), NaN (the first NaN wins), infinities, rows shorter and longer
    than the kernel's 16 lanes, a strided view: the kernels' argmax is torch's."""
    from tui_gen.engine.sampling import greedy_tokens

    flat = (values * (rows * vocab // len(values) + 1))[: rows * vocab]
    x = torch.tensor(flat, dtype=torch.float32).view(rows, vocab)
    if ties and vocab > 1:  # copy each row's maximum further along the row
        for r in range(rows):
            x[r, (r * 7 + ties) % vocab] = x[r].max()
    assert torch.equal(greedy_tokens(x), x.argmax(dim=-1))
    wide = torch.cat([x, x], dim=1)[:, :vocab]  # rows a stride apart
    assert torch.equal(greedy_tokens(wide), wide.argmax(dim=-1))


def test_greedy_tokens_on_a_large_vocabulary_and_off_the_kernels(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tui_gen.engine import sampling

    x = torch.randn(2, 262_144, generator=torch.Generator().manual_seed(0))
    x[0, 200_000] = 9.0
    x[1, 3] = x[1, 262_143] = 9.5
    assert sampling.greedy_tokens(x).tolist() == [200_000, 3]
    assert sampling.greedy_tokens(x.double()).tolist() == [200_000, 3]  # torch's own
    monkeypatch.setattr(sampling.build, "load", lambda: None)  # no compiler: torch's argmax
    assert sampling.greedy_tokens(x).tolist() == [200_000, 3]
