"""Per-token probabilities on the real SmolLM2 GGUF (opt-in, slow): greedy ids unchanged with
logprobs on, and the decode loop's values equal to scoring the same text in one prefill."""

from __future__ import annotations

import pytest
from smollm2 import require_gguf

from tui_gen.engine.chat import ChatSession
from tui_gen.engine.events import FinishEvent, TokenEvent
from tui_gen.engine.generator import Generator

pytestmark = pytest.mark.smollm2


@pytest.fixture(scope="module")
def gen() -> Generator:
    # float32: kept GGUF blocks decode and prefill on different kernels, so values differ
    return Generator.load(require_gguf(), device="cpu", dtype="float32")


def _prompt(gen: Generator) -> list[int]:
    return ChatSession(gen).fit([{"role": "user", "content": "How do I boil an egg?"}], 32)[0]


def test_greedy_ids_unchanged_and_values_equal_scoring(gen: Generator) -> None:
    ids = _prompt(gen)
    plain = gen.generate_result(ids, do_sample=False, max_new_tokens=24)
    evs = list(gen.stream_events(ids, do_sample=False, max_new_tokens=24, logprobs=5))
    fin = evs[-1]
    assert isinstance(fin, FinishEvent) and fin.token_ids == plain.token_ids
    lps = [e.logprobs for e in evs if isinstance(e, TokenEvent) and e.logprobs is not None]
    assert len(lps) == len(fin.token_ids) > 0
    scored = gen.score(ids + fin.token_ids, add_special_tokens=False)
    for lp, tok in zip(lps, scored.tokens[len(ids) :]):
        assert lp.token_id == tok.token_id and tok.logprob is not None
        # the decode step and the prefill are different kernels: close, not equal
        assert abs(lp.logprob - tok.logprob) <= 2e-3
        assert abs(lp.top[0].logprob - lp.logprob) <= 1e-6  # greedy takes the most likely
        assert lp.sampled_logprob == 0.0


def test_sampled_values_respect_the_samplers(gen: Generator) -> None:
    ids = _prompt(gen)
    kw = dict(temperature=0.8, top_k=20, top_p=0.9, seed=5, max_new_tokens=16)
    plain = gen.generate_result(ids, **kw)
    evs = list(gen.stream_events(ids, logprobs=20, **kw))
    fin = evs[-1]
    assert isinstance(fin, FinishEvent) and fin.token_ids == plain.token_ids
    for ev in evs:
        if isinstance(ev, TokenEvent) and ev.logprobs is not None:
            lp = ev.logprobs
            assert len(lp.top) == 20 and 1 <= len(lp.sampled_top) <= 20
            assert {a.token_id for a in lp.sampled_top} <= {a.token_id for a in lp.top}
            assert ev.token_id in {a.token_id for a in lp.sampled_top}
