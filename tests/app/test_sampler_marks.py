"""The inspector's "which alternatives would the sliders remove" replay, against the engine's
own samplers (torch, in the test only) and with properties of its own."""

from __future__ import annotations

import itertools
import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tui_gen.app.sampler_marks import sampler_marks
from tui_gen.engine.sampling import apply_min_p, apply_top_k, apply_top_p

logits_lists = st.lists(
    st.floats(min_value=-12, max_value=12, allow_nan=False), min_size=1, max_size=30
)
top_ps = st.floats(min_value=0.01, max_value=1.0)
min_ps = st.floats(min_value=0.0, max_value=1.0)


def _sorted_logprobs(logits: list[float]) -> list[float]:
    t = torch.tensor(sorted(logits, reverse=True), dtype=torch.float64)
    return torch.log_softmax(t, dim=-1).tolist()


def _engine_kept(logprobs: list[float], top_k: int, top_p: float, min_p: float) -> list[bool]:
    """What engine/sampling.py keeps of the whole (sorted) vocabulary, in its order."""
    x = torch.tensor([logprobs], dtype=torch.float64)
    if 0 < top_k < x.shape[-1]:
        x = apply_top_k(x, top_k)
    x = apply_top_p(x, top_p)
    x = apply_min_p(x, min_p)
    return (x[0] > -math.inf).tolist()


def _distinct(logprobs: list[float]) -> bool:
    """Ties at a cut are ordered differently by torch.topk and by rank; leave them out."""
    return all(a - b > 1e-6 for a, b in itertools.pairwise(logprobs))


@settings(max_examples=300, deadline=None)
@given(logits_lists, st.integers(0, 35), top_ps, min_ps)
def test_matches_the_engine_when_the_whole_vocabulary_is_known(logits, top_k, top_p, min_p):
    lps = _sorted_logprobs(logits)
    if not _distinct(lps):
        return
    marks = sampler_marks(lps, temperature=0.8, top_k=top_k, top_p=top_p, min_p=min_p)
    assert list(marks.kept) == _engine_kept(lps, top_k, top_p, min_p)


@settings(max_examples=300, deadline=None)
@given(logits_lists, st.integers(1, 20), st.integers(0, 35), top_ps, min_ps)
def test_with_only_the_top_n_known_a_removal_is_never_wrong(logits, n, top_k, top_p, min_p):
    lps = _sorted_logprobs(logits)
    if not _distinct(lps):
        return
    marks = sampler_marks(lps[:n], temperature=1.0, top_k=top_k, top_p=top_p, min_p=min_p)
    engine = _engine_kept(lps, top_k, top_p, min_p)[:n]
    for kept, truly_kept in zip(marks.kept, engine):
        if not kept:
            assert not truly_kept
    if top_k == 0 or top_k <= n:  # the docstring's exact cases
        assert list(marks.kept) == engine


@given(logits_lists, st.integers(1, 20))
def test_temperature_zero_keeps_exactly_the_argmax(logits, n):
    lps = _sorted_logprobs(logits)[:n]
    marks = sampler_marks(lps, temperature=0.0, top_k=3, top_p=0.5)
    assert marks.kept == (True,) + (False,) * (len(lps) - 1)
    assert marks.final == (1.0,) + (0.0,) * (len(lps) - 1)
    assert sampler_marks(lps, do_sample=False).kept == marks.kept


@given(logits_lists, st.integers(0, 30), top_ps, min_ps)
def test_removed_sets_grow_as_top_k_shrinks(logits, top_k, top_p, min_p):
    lps = _sorted_logprobs(logits)
    wider = sampler_marks(lps, top_k=top_k + 1 if top_k else 0, top_p=top_p, min_p=min_p)
    narrower = sampler_marks(lps, top_k=max(1, top_k), top_p=top_p, min_p=min_p)
    assert {i for i, k in enumerate(narrower.kept) if not k} >= {
        i for i, k in enumerate(wider.kept) if not k
    }


@given(logits_lists, top_ps, top_ps, min_ps, min_ps)
def test_removed_sets_grow_as_top_p_shrinks_and_min_p_grows(logits, p1, p2, m1, m2):
    lps = _sorted_logprobs(logits)
    loose = sampler_marks(lps, top_p=max(p1, p2), min_p=min(m1, m2))
    tight = sampler_marks(lps, top_p=min(p1, p2), min_p=max(m1, m2))
    assert all(k_loose or not k_tight for k_loose, k_tight in zip(loose.kept, tight.kept))


@given(logits_lists, st.integers(0, 30), top_ps, min_ps, st.floats(0.05, 2.0))
def test_the_most_likely_token_is_always_kept_and_final_sums_to_one(logits, k, p, m, t):
    lps = _sorted_logprobs(logits)
    marks = sampler_marks(lps, temperature=t, top_k=k, top_p=p, min_p=m)
    assert marks.kept[0]
    if marks.final is not None:
        assert math.isclose(sum(marks.final), 1.0, rel_tol=1e-9)
        assert all(f == 0 for f, kept in zip(marks.final, marks.kept) if not kept)


def test_final_needs_the_cut_inside_the_known_tokens() -> None:
    lps = [math.log(0.5), math.log(0.3), math.log(0.1)]  # 0.1 of the mass is unknown
    assert sampler_marks(lps).final is None  # nothing cut: the tail is drawn from too
    marks = sampler_marks(lps, top_k=2, temperature=1.0)
    assert marks.removed_by == (None, None, "top-k")
    assert marks.final is not None and math.isclose(marks.final[0], 0.5 / 0.8)
    hot = sampler_marks(lps, top_k=2, temperature=2.0).final
    assert hot is not None and hot[0] < marks.final[0]  # temperature flattens what is kept
    assert sampler_marks(lps, min_p=0.5).removed_by == (None, None, "min-p")
    assert sampler_marks(lps, top_p=0.6).removed_by == (None, None, "top-p")
    assert sampler_marks([]).kept == ()
