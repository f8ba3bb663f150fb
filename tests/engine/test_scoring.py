"""Generator.score: every token's log-probability in one (chunked) prefill."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from tui_gen.engine.events import FinishEvent
from tui_gen.engine.generator import Generator
from tui_gen.engine.scoring import ScoredToken, ScoreResult, score_ids
from tui_gen.errors import TuiGenError

TEXT = "The quick brown fox jumps over the lazy dog. def add(a, b): return a + b"


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_scores_match_transformers(arch: str, request: pytest.FixtureRequest) -> None:
    from transformers import AutoModelForCausalLM

    path: Path = request.getfixturevalue(f"tiny_{arch}")
    gen = Generator.load(path, device="cpu", dtype="float32")
    res = gen.score(TEXT, top=3)
    ids = gen.encode(TEXT)
    assert res.token_ids == ids and len(ids) > 10
    ref = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    with torch.no_grad():
        lp = ref(torch.tensor([ids])).logits[0].log_softmax(-1)  # (L, V)
    first, *rest = res.tokens
    assert first.logprob is None and first.surprisal is None  # nothing predicts it
    for t, tok in enumerate(rest, 1):
        assert tok.logprob is not None
        assert abs(tok.logprob - float(lp[t - 1, ids[t]])) <= 1e-4
        assert tok.surprisal is not None
        assert abs(tok.surprisal - (-tok.logprob / math.log(2))) <= 1e-9
        v, i = lp[t - 1].topk(3)
        assert [a.token_id for a in tok.top] == i.tolist() or all(
            abs(a.logprob - w) <= 1e-4 for a, w in zip(tok.top, v.tolist())
        )
        assert tok.text == gen.tokenizer.decode([ids[t]], skip_special_tokens=False)
    nll = -float(lp[:-1].gather(-1, torch.tensor(ids[1:])[:, None]).mean())
    assert res.perplexity is not None and abs(math.log(res.perplexity) - nll) <= 1e-4
    assert res.predicted == len(ids) - 1


def test_chunks_give_the_same_scores_as_one_forward(tiny_llama: Path) -> None:
    gen = Generator.load(tiny_llama, device="cpu", dtype="float32")
    ids = gen.encode(TEXT)
    whole = gen.score(ids)
    cache = gen._ensure_cache()
    chunked = score_ids(gen.model, cache, ids, 0, gen.token_texts, gen.max_context, chunk=3)
    assert chunked.token_ids == whole.token_ids
    for a, b in zip(chunked.tokens[1:], whole.tokens[1:]):
        assert a.logprob is not None and b.logprob is not None
        assert abs(a.logprob - b.logprob) <= 1e-5


def test_a_following_prompt_reuses_the_scored_text(tiny_llama: Path) -> None:
    gen = Generator.load(tiny_llama, device="cpu", dtype="float32")
    ids = gen.encode(TEXT)
    gen.score(ids)
    more = gen.encode(" and more", add_special_tokens=False)
    fin = list(gen.stream_events(ids + more, do_sample=False, max_new_tokens=2))[-1]
    assert isinstance(fin, FinishEvent)
    assert fin.stats.prefill_tokens == len(more) + 1  # the text's last token, then the new ones


def test_limits_are_one_clear_error(tiny_llama: Path) -> None:
    gen = Generator.load(tiny_llama, device="cpu", dtype="float32", max_context=16)
    with pytest.raises(TuiGenError, match=r"more than the context holds \(16\).*--max-context"):
        gen.score(list(range(5, 30)))
    with pytest.raises(TuiGenError, match="nothing to score"):
        gen.score([])
    with pytest.raises(TuiGenError, match="outside the vocabulary"):
        gen.score([10**9])
    with pytest.raises(ValueError, match="logprobs must be an integer from 0 to 20"):
        gen.score([5, 6], top=21)
    one = gen.score([5])
    assert one.perplexity is None and one.mean_logprob is None and one.predicted == 0


def test_perplexity_is_exp_of_the_mean_negative_logprob() -> None:
    toks = [ScoredToken(1, "a", None), ScoredToken(2, "b", -1.0), ScoredToken(3, "c", -3.0)]
    res = ScoreResult(toks)
    assert res.perplexity == pytest.approx(math.exp(2.0))
    assert res.token_ids == [1, 2, 3]
    assert ScoreResult([ScoredToken(1, "a", None), ScoredToken(2, "b", -1e6)]).perplexity == (
        math.inf
    )


def test_a_recurrent_model_scores_in_chunks_too(tiny_bdh: Path) -> None:
    gen = Generator.load(tiny_bdh, device="cpu")
    ids = gen.encode("hello world, this is a test of scoring")
    whole = gen.score(ids, top=2)
    chunked = score_ids(gen.model, gen._ensure_cache(), ids, 0, gen.token_texts, gen.max_context, 4)
    assert whole.perplexity is not None and chunked.perplexity is not None
    assert abs(math.log(whole.perplexity) - math.log(chunked.perplexity)) <= 1e-5
    assert all(len(t.top) == 2 for t in whole.tokens[1:])
