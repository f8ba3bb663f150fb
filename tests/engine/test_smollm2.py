"""Opt-in: the real SmolLM2-135M-Instruct GGUF through our engine, against transformers' ids.

The reference ids come from tests/fixtures/smollm2_greedy.json (made once by
tests/fixtures/make_smollm2_greedy.py), so this needs no transformers run.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from smollm2 import require_gguf

from tui_gen import Generator
from tui_gen.engine.chat import ChatSession

pytestmark = pytest.mark.smollm2
FIXTURE = json.loads((Path(__file__).parents[1] / "fixtures" / "smollm2_greedy.json").read_text())


@pytest.fixture(scope="module")
def smol() -> Generator:
    return Generator.load(require_gguf(), device="cpu", dtype="float32")


@pytest.mark.parametrize("case", FIXTURE["cases"], ids=lambda c: c["messages"][-1]["content"][:20])
def test_chat_prompt_and_greedy_ids_match_transformers(smol: Generator, case: dict) -> None:
    msgs = case["messages"]
    system = msgs[0]["content"] if msgs[0]["role"] == "system" else None
    chat = ChatSession(smol, system=system, messages=[m for m in msgs if m["role"] != "system"])
    ids, dropped = chat.prompt_ids(FIXTURE["max_new_tokens"])
    assert dropped == 0
    assert ids == case["input_ids"]  # template + tokenizer agree with transformers
    smol.reset()
    result = smol.generate_result(ids, do_sample=False, max_new_tokens=FIXTURE["max_new_tokens"])
    expected = case["greedy_ids"]
    if expected and expected[-1] in smol.eos_token_ids:
        assert result.finish_reason == "eos"
        expected = expected[:-1]
    assert result.token_ids == expected


def test_kv_reuse_across_turns_gives_same_reply(smol: Generator) -> None:
    chat = ChatSession(smol)
    first = list(chat.send("Name a green vegetable.", do_sample=False, max_new_tokens=12))[-1]
    second = list(chat.send("And a red one?", do_sample=False, max_new_tokens=12))[-1]
    assert second.stats.prefill_tokens < second.stats.prompt_tokens  # the cache was reused
    smol.reset()  # the same conversation prefilled from scratch must give the same reply
    fresh = smol.generate_result(
        chat.prompt_ids(12)[0][: second.stats.prompt_tokens], do_sample=False, max_new_tokens=12
    )
    assert fresh.token_ids == second.token_ids
    assert first.text


def test_batched_replies_on_the_native_rows_equal_transformers_ids(smol: Generator) -> None:
    """The fixture's prompts decoded together (left-padded, rows finishing apart) through the
    native rows step: each reply is transformers' greedy reply."""
    from tui_gen.engine.batch import Request
    from tui_gen.engine.events import FinishEvent

    n = FIXTURE["max_new_tokens"]
    cases = FIXTURE["cases"]
    reqs = [Request(c["input_ids"], smol.params(do_sample=False, max_new_tokens=n), i)
            for i, c in enumerate(cases)]  # fmt: skip
    from tui_gen.models.kv_cache import KVCache

    assert smol.decode_backend == "native"
    c = smol.config
    probe = KVCache(c.num_layers, 2, c.num_kv_heads, 4, c.head_dim, smol.dtype, "cpu")
    assert smol.batch_backend(probe) == "native"
    got = {ev.index: ev for ev in smol.stream_batch(reqs) if isinstance(ev, FinishEvent)}
    assert len({len(c["input_ids"]) for c in cases}) > 1  # the rows were padded
    for i, case in enumerate(cases):
        expected = case["greedy_ids"]
        if expected and expected[-1] in smol.eos_token_ids:
            expected = expected[:-1]
        assert got[i].token_ids == expected, f"case {i}"
