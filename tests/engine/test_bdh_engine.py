"""BDH through the engine: greedy equals the equations, chat turns reuse the recurrent state,
reset, batches and beams keep one state per row."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from bdh_models import SIZES, reference_logits, upstream_state_dict

from tui_gen import Generator
from tui_gen.engine.chat import ChatSession
from tui_gen.engine.events import FinishEvent


@pytest.fixture(scope="module")
def bdh(tiny_bdh: Path) -> Generator:
    return Generator.load(tiny_bdh, device="cpu")


def _ref(ids: list[int]) -> torch.Tensor:
    return reference_logits(upstream_state_dict(0), torch.tensor([ids]), SIZES["n_layer"])[0]


def test_unbounded_context_and_torch_decode(bdh: Generator) -> None:
    assert bdh.max_context == 2**31 - 1
    assert bdh.decode_backend == "torch"
    assert bdh.kv_cache_bytes == 2 * 2 * 128 * 32 * 4  # the state, at any length


@pytest.mark.slow
def test_greedy_1500_bytes_equal_the_reference(bdh: Generator) -> None:
    bdh.reset()
    prompt = list(b"To be, or not to be")
    out = bdh.generate_result(prompt, max_new_tokens=1500, temperature=0)
    assert len(out.token_ids) == 1500
    seq = prompt + out.token_ids
    # the reference is causal: our tokens are its greedy run iff each is its argmax
    ref = _ref(seq[:-1])[len(prompt) - 1 :]
    assert ref.argmax(-1).tolist() == out.token_ids


def _fresh(tiny_bdh: Path, ids: list[int], n: int) -> list[int]:
    g = Generator.load(tiny_bdh, device="cpu")
    return g.generate_result(ids, max_new_tokens=n, temperature=0).token_ids


def test_chat_turns_reuse_the_state_and_reset(bdh: Generator, tiny_bdh: Path) -> None:
    bdh.reset()
    chat = ChatSession(bdh)
    finishes = []
    for text in ("Hello there", "And how are you?"):
        evs = list(chat.send(text, max_new_tokens=12, temperature=0))
        finishes.append(next(e for e in evs if isinstance(e, FinishEvent)))
    second = finishes[1].stats
    # the reply is stored stripped, so the prompt differs from what was generated: the state
    # goes back to its snapshot (the first prompt minus one byte), not to zero
    assert 0 < second.prefill_tokens < second.prompt_tokens
    ids, _ = chat.prompt_ids(12)
    assert finishes[1].token_ids == _fresh(tiny_bdh, ids[: second.prompt_tokens], 12)
    # a prompt that extends the conversation prefills only the new bytes
    held = bdh.cached_tokens
    more = bdh._cached_ids + list(b" more")
    res = bdh.generate_result(more, max_new_tokens=5, temperature=0)
    assert res.stats.prefill_tokens == len(more) - held
    assert res.token_ids == _fresh(tiny_bdh, more, 5)
    chat.reset()
    bdh.reset()
    assert bdh.cached_tokens == 0
    res = bdh.generate_result(more, max_new_tokens=5, temperature=0)
    assert res.stats.prefill_tokens == len(more)
    assert res.token_ids == _fresh(tiny_bdh, more, 5)


def test_regenerate_goes_back_to_the_snapshot(bdh: Generator) -> None:
    bdh.reset()
    ids = list(b"Once upon a time")
    a = bdh.generate_result(ids, max_new_tokens=20, temperature=0)
    b = bdh.generate_result(ids, max_new_tokens=20, temperature=0)
    assert b.stats.prefill_tokens == 1  # from the snapshot before the prompt's last byte
    assert a.token_ids == b.token_ids


def test_batch_rows_match_single_runs(bdh: Generator) -> None:
    from tui_gen.engine.batch import Request
    from tui_gen.options import SamplingParams

    prompts = [list(b"Hi"), list(b"A longer prompt, padded less"), list(b"Mid length")]
    singles = []
    for p in prompts:
        bdh.reset()
        singles.append(bdh.generate_result(p, max_new_tokens=15, temperature=0).token_ids)
    # left padding adds nothing to a row's state; rows finishing early are dropped from it
    limits = (3, 15, 8)
    reqs = [
        Request(p, SamplingParams(temperature=0, max_new_tokens=n), i)
        for i, (p, n) in enumerate(zip(prompts, limits))
    ]
    got: list[list[int]] = [[] for _ in prompts]
    for ev in bdh.stream_batch(reqs):
        if isinstance(ev, FinishEvent):
            got[ev.index] = ev.token_ids
    assert got == [s[:n] for s, n in zip(singles, limits)]
    # sampled rows: a seed gives the same reply alone or in a batch
    bdh.reset()
    alone = bdh.generate_result(prompts[1], max_new_tokens=10, temperature=1.0, seed=7)
    batch = bdh.generate_batch(prompts, max_new_tokens=10, temperature=1.0, seed=7)
    assert batch[1] == alone.text


def test_beam_scores_follow_the_reference(bdh: Generator) -> None:
    prompt = list(b"The sea")
    out = bdh.beam_search(prompt, num_beams=3, max_new_tokens=8, num_return_sequences=3)
    assert len(out.hypotheses) == 3
    for h in out.hypotheses:
        logp = torch.log_softmax(_ref(prompt + h.token_ids), dim=-1)
        total = sum(float(logp[len(prompt) - 1 + i, t]) for i, t in enumerate(h.token_ids))
        assert math.isclose(h.score, total / len(h.token_ids), abs_tol=1e-3)
