"""Per-token probabilities: values against transformers' logits, greedy ids unchanged, the
batched and beam paths, and properties of the pure reading functions."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tui_gen.engine.beam import beam_search
from tui_gen.engine.events import FinishEvent, TokenEvent, TokenLogprobs
from tui_gen.engine.generator import Generator
from tui_gen.engine.logprobs import TokenTexts, read_logprobs
from tui_gen.engine.sampling import (
    apply_min_p,
    apply_repetition_penalty,
    apply_temperature,
    apply_top_k,
    apply_top_p,
    choose,
    process_logits,
)
from tui_gen.options import BeamParams, InvalidParameterError, SamplingParams

PROMPT = "The quick brown fox"


def _events(gen: Generator, prompt: object, **kw: object) -> tuple[list[TokenEvent], FinishEvent]:
    evs = list(gen.stream_events(prompt, **kw))  # type: ignore[arg-type]
    toks = [e for e in evs if isinstance(e, TokenEvent) and e.token_id >= 0]
    fin = evs[-1]
    assert isinstance(fin, FinishEvent)
    return toks, fin


def _hf_logits(path: Path, ids: list[int]) -> torch.Tensor:
    """transformers' float32 logits (L, V) of the whole sequence."""
    from transformers import AutoModelForCausalLM

    ref = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    with torch.no_grad():
        return ref(torch.tensor([ids])).logits[0]


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-4


@pytest.mark.parametrize("arch", ["llama", "gpt2", "qwen2"])
def test_greedy_logprobs_match_transformers(arch: str, request: pytest.FixtureRequest) -> None:
    path: Path = request.getfixturevalue(f"tiny_{arch}")
    gen = Generator.load(path, device="cpu", dtype="float32")
    ids = gen.encode(PROMPT)
    toks, fin = _events(gen, ids, do_sample=False, max_new_tokens=12, logprobs=5)
    # greedy ids are the same with logprobs on
    plain = gen.generate_result(ids, do_sample=False, max_new_tokens=12)
    assert fin.token_ids == plain.token_ids and len(toks) == len(fin.token_ids) > 0
    ref = _hf_logits(path, ids + fin.token_ids).log_softmax(-1)  # (L, V)
    for t, ev in enumerate(toks):
        lp = ev.logprobs
        assert isinstance(lp, TokenLogprobs) and lp.token_id == ev.token_id
        row = ref[len(ids) + t - 1]  # the logits that predicted this token
        assert _close(lp.logprob, float(row[ev.token_id]))
        expect_v, expect_i = row.topk(5)
        assert len(lp.top) == 5
        for alt, v, i in zip(lp.top, expect_v.tolist(), expect_i.tolist()):
            assert _close(alt.logprob, v)
            assert alt.token_id == i or _close(float(row[alt.token_id]), v)  # ties may swap
        assert [a.logprob for a in lp.top] == sorted((a.logprob for a in lp.top), reverse=True)
        # greedy: the chosen token is the most likely and the sampled mass is all on it
        assert _close(lp.logprob, lp.top[0].logprob)
        assert lp.sampled_logprob == 0.0
        assert [(a.token_id, a.logprob) for a in lp.sampled_top] == [(ev.token_id, 0.0)]
        assert lp.text == gen.tokenizer.decode([ev.token_id], skip_special_tokens=False)


def test_sampled_logprobs_match_the_samplers_on_transformers_logits(tiny_llama: Path) -> None:
    gen = Generator.load(tiny_llama, device="cpu", dtype="float32")
    ids = gen.encode(PROMPT)
    kw = dict(temperature=0.7, top_k=12, top_p=0.9, min_p=0.02, repetition_penalty=1.3)
    toks, fin = _events(gen, ids, max_new_tokens=10, seed=3, logprobs=4, **kw)
    # the same seed without logprobs draws the same tokens
    assert gen.generate_result(ids, max_new_tokens=10, seed=3, **kw).token_ids == fin.token_ids
    seq = ids + fin.token_ids
    logits = _hf_logits(tiny_llama, seq)
    for t, ev in enumerate(toks):
        pos = len(ids) + t
        row = logits[pos - 1 : pos]  # (1, V)
        raw = apply_repetition_penalty(row, torch.tensor([seq[:pos]]), 1.3)
        final = apply_temperature(
            apply_min_p(apply_top_p(apply_top_k(raw, 12), 0.9), 0.02), 0.7
        ).log_softmax(-1)[0]
        lp = ev.logprobs
        assert lp is not None
        assert _close(lp.logprob, float(raw.log_softmax(-1)[0, ev.token_id]))
        assert _close(lp.sampled_logprob, float(final[ev.token_id]))
        kept = torch.isfinite(final)
        assert 1 <= len(lp.sampled_top) <= min(4, int(kept.sum()))
        for alt in lp.sampled_top:
            assert kept[alt.token_id] and _close(alt.logprob, float(final[alt.token_id]))
        assert _close(lp.sampled_top[0].logprob, float(final.max()))


def test_off_by_default_and_the_range_is_checked(tiny_llama: Path) -> None:
    gen = Generator.load(tiny_llama, device="cpu", dtype="float32")
    toks, _ = _events(gen, PROMPT, do_sample=False, max_new_tokens=4)
    assert toks and all(e.logprobs is None for e in toks)
    for bad in (-1, 21, 2.5, True):
        with pytest.raises(InvalidParameterError, match="logprobs"):
            gen.params(logprobs=bad)
    # the released tail (token id -1) never carries logprobs
    evs = list(gen.stream_events(PROMPT, do_sample=False, max_new_tokens=6, logprobs=2))
    assert all(e.logprobs is None for e in evs if isinstance(e, TokenEvent) and e.token_id < 0)


def test_batched_logprobs_equal_one_at_a_time(tiny_gpt2: Path) -> None:
    gen = Generator.load(tiny_gpt2, device="cpu", dtype="float32")
    prompts = ["Hello", "The quick brown fox jumps over", "def add(a, b):"]
    alone = [_events(gen, p, do_sample=False, max_new_tokens=6, logprobs=3)[0] for p in prompts]
    batched: dict[int, list[TokenEvent]] = {0: [], 1: [], 2: []}
    finish: dict[int, FinishEvent] = {}
    for ev in gen.stream_batch(prompts, do_sample=False, max_new_tokens=6, logprobs=3):
        if isinstance(ev, TokenEvent) and ev.token_id >= 0:
            batched[ev.index].append(ev)
        elif isinstance(ev, FinishEvent):
            finish[ev.index] = ev
    for i in range(3):
        assert [e.token_id for e in batched[i]] == [e.token_id for e in alone[i]]
        assert finish[i].token_ids == [e.token_id for e in alone[i]]
        for b, a in zip(batched[i], alone[i]):
            assert b.logprobs is not None and a.logprobs is not None
            assert _close(b.logprobs.logprob, a.logprobs.logprob)
            got = [(x.token_id, x.logprob) for x in b.logprobs.top]
            want = [(x.token_id, x.logprob) for x in a.logprobs.top]
            assert len(got) == len(want) == 3
            assert all(_close(g[1], w[1]) for g, w in zip(got, want))


def test_batch_rows_with_their_own_n_and_sampling(tiny_gpt2: Path) -> None:
    from tui_gen.engine.batch import Request

    gen = Generator.load(tiny_gpt2, device="cpu", dtype="float32")
    ids = gen.encode("Hello there")
    reqs = [
        Request(ids, SamplingParams(do_sample=False, max_new_tokens=4, logprobs=2), 0),
        Request(ids, SamplingParams(seed=1, top_k=5, max_new_tokens=4, logprobs=5), 1),
        Request(ids, SamplingParams(seed=2, max_new_tokens=4), 2),
    ]
    seen: dict[int, list[TokenLogprobs | None]] = {0: [], 1: [], 2: []}
    for ev in gen.stream_batch(reqs):
        if isinstance(ev, TokenEvent) and ev.token_id >= 0:
            seen[ev.index].append(ev.logprobs)
    assert seen[0] and all(lp is not None and len(lp.top) == 2 for lp in seen[0])
    assert seen[1] and all(lp is not None and len(lp.top) == 5 for lp in seen[1])
    assert all(lp is not None and len(lp.sampled_top) <= 5 for lp in seen[1])
    assert seen[2] and all(lp is None for lp in seen[2])


def test_beam_hypotheses_carry_their_tokens_logprobs(tiny_llama: Path) -> None:
    gen = Generator.load(tiny_llama, device="cpu", dtype="float32")
    ids = gen.encode(PROMPT)
    bp = BeamParams(3, 1.0, False, 3)
    out = beam_search(gen, ids, 6, bp, eos_token_ids=[], logprobs=3)
    plain = beam_search(gen, ids, 6, bp, eos_token_ids=[])
    assert [h.token_ids for h in out.hypotheses] == [h.token_ids for h in plain.hypotheses]
    for h in out.hypotheses:
        assert h.logprobs is not None and len(h.logprobs) == len(h.token_ids) == 6
        assert [lp.token_id for lp in h.logprobs] == h.token_ids
        # the beam's score is the sum of its tokens' log-probabilities over its length
        assert _close(math.fsum(lp.logprob for lp in h.logprobs) / 6, h.score)
        ref = _hf_logits(tiny_llama, ids + h.token_ids).log_softmax(-1)
        for t, lp in enumerate(h.logprobs):
            assert _close(lp.logprob, float(ref[len(ids) + t - 1, lp.token_id]))
            assert len(lp.top) == 3 and lp.sampled_logprob == 0.0
    assert all(h.logprobs is None for h in plain.hypotheses)


# --- the pure functions ---------------------------------------------------------------------


class _Tok:
    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return f"<{ids[0]}>"


finite = st.floats(min_value=-20, max_value=20, allow_nan=False, allow_infinity=False)
rows = st.lists(finite, min_size=2, max_size=30, unique=True).map(lambda xs: torch.tensor([xs]))
params = st.builds(
    SamplingParams,
    temperature=st.sampled_from([0.0, 0.3, 0.7, 1.0, 1.5]),
    top_k=st.integers(min_value=0, max_value=12),
    top_p=st.floats(min_value=0.05, max_value=1.0),
    min_p=st.floats(min_value=0.0, max_value=0.5),
    repetition_penalty=st.sampled_from([1.0, 1.3]),
    logprobs=st.integers(min_value=1, max_value=20),
)


@settings(max_examples=200, deadline=None)
@given(logits=rows, p=params, seed=st.integers(min_value=0, max_value=2**31))
def test_read_logprobs_properties(logits: torch.Tensor, p: SamplingParams, seed: int) -> None:
    seen = torch.tensor([[0, 1]])
    step = process_logits(logits, p, seen)
    g = torch.Generator().manual_seed(seed)
    tok, col = choose(step, g)
    [lp] = read_logprobs(step, tok.tolist(), col.tolist(), [p.logprobs], TokenTexts(_Tok()))
    assert lp is not None and lp.token_id == int(tok) and lp.text == f"<{int(tok)}>"
    raw = apply_repetition_penalty(logits, seen, p.repetition_penalty).log_softmax(-1)[0]
    assert abs(lp.logprob - float(raw[int(tok)])) <= 1e-5
    V = logits.shape[-1]
    assert len(lp.top) == min(p.logprobs, V)
    for alts in (lp.top, lp.sampled_top):
        values = [a.logprob for a in alts]
        assert values == sorted(values, reverse=True)
        assert math.fsum(math.exp(v) for v in values) <= 1 + 1e-5
        assert all(v <= 1e-6 for v in values)
    if p.greedy:
        # the argmax of the logits (log_softmax may round near-ties together)
        pen = apply_repetition_penalty(logits, seen, p.repetition_penalty)
        assert int(tok) == int(pen.argmax())
        assert lp.sampled_logprob == 0.0 and lp.sampled_top[0].token_id == int(tok)
        assert abs(lp.top[0].logprob - lp.logprob) <= 1e-6
        return
    # the tokens the samplers keep, from the pure steps (which keep every token tied at the
    # k-th value, where the sampler's top-k keeps exactly k: no ties here)
    pen = apply_repetition_penalty(logits, seen, p.repetition_penalty)
    assume(len(set(pen[0].tolist())) == V)
    kept_logits = apply_min_p(apply_top_p(apply_top_k(pen, p.top_k), p.top_p), p.min_p)
    kept = set(torch.isfinite(kept_logits[0]).nonzero()[:, 0].tolist())
    assert {a.token_id for a in lp.sampled_top} <= kept
    assert int(tok) in kept and math.isfinite(lp.sampled_logprob)
    assert len(lp.sampled_top) == min(p.logprobs, len(kept))
    final = apply_temperature(kept_logits, p.temperature).log_softmax(-1)[0]
    assert abs(lp.sampled_logprob - float(final[int(tok)])) <= 1e-4


def test_a_row_without_logprobs_is_none_and_n_is_per_row() -> None:
    logits = torch.randn(3, 50, generator=torch.Generator().manual_seed(0))
    p = SamplingParams(do_sample=False)
    step = process_logits(logits, p)
    tok, col = choose(step)
    out = read_logprobs(step, tok.tolist(), col.tolist(), [0, 3, 7], TokenTexts(_Tok()))
    assert out[0] is None
    assert out[1] is not None and len(out[1].top) == 3
    assert out[2] is not None and len(out[2].top) == 7
    none = read_logprobs(step, tok.tolist(), col.tolist(), [0, 0, 0], TokenTexts(_Tok()))
    assert none == [None, None, None]


def test_a_temperature_that_overflows_reports_greedy() -> None:
    logits = torch.tensor([[1.0, 3.0, 2.0]])
    p = SamplingParams(temperature=1e-40, top_k=0, top_p=1.0, logprobs=3)
    step = process_logits(logits, p)
    tok, col = choose(step, torch.Generator().manual_seed(0))
    [lp] = read_logprobs(step, tok.tolist(), col.tolist(), [3], TokenTexts(_Tok()))
    assert int(tok) == 1 and lp is not None
    assert lp.sampled_logprob == 0.0 and [a.token_id for a in lp.sampled_top] == [1]


def test_token_texts_decode_each_id_once() -> None:
    calls: list[int] = []

    class Counting(_Tok):
        def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
            calls.append(ids[0])
            assert skip_special_tokens is False  # an EOS alternative shows as its text
            return super().decode(ids)

    texts = TokenTexts(Counting())
    assert [texts(5), texts(5), texts(7)] == ["<5>", "<5>", "<7>"]
    assert calls == [5, 7]
