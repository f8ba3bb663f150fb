"""Branching: a reply regenerated from one of its tokens' alternatives (prefix_ids), with the
KV cache reused up to the branch point and the FinishEvent covering the whole reply."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from fake_engine import FakeEngine
from hypothesis import given, settings
from hypothesis import strategies as st

from tui_gen.engine.chat import ChatSession
from tui_gen.engine.events import FinishEvent, TokenEvent
from tui_gen.engine.generator import Generator
from tui_gen.engine.protocol import BranchingUnavailable
from tui_gen.engine.stop import StopStringMatcher
from tui_gen.errors import TuiGenError

MESSAGES = [{"role": "user", "content": "How do I boil an egg?"}]


@pytest.fixture(scope="module")
def gen(tiny_llama: Path) -> Generator:
    return Generator.load(tiny_llama, device="cpu", dtype="float32")


def _run(events: object) -> tuple[list[TokenEvent], FinishEvent]:
    evs = list(events)  # type: ignore[call-overload]
    assert sum(isinstance(e, FinishEvent) for e in evs) == 1 and isinstance(evs[-1], FinishEvent)
    return [e for e in evs if isinstance(e, TokenEvent)], evs[-1]


def test_branch_from_an_alternative_reuses_the_cache(gen: Generator) -> None:
    chat = ChatSession(gen)
    kw = dict(do_sample=False, max_new_tokens=12, logprobs=3)
    toks, first = _run(chat.stream_reply(MESSAGES, **kw))
    assert len(first.token_ids) == 12
    k = 5  # keep 5 tokens, then take the 2nd most likely alternative of token 6
    lp = toks[k].logprobs
    assert lp is not None
    alt = next(a.token_id for a in lp.top if a.token_id != first.token_ids[k])
    prefix = [*first.token_ids[:k], alt]
    new_toks, fin = _run(chat.stream_reply(MESSAGES, prefix_ids=prefix, **kw))
    # the cache held the prompt and the kept tokens: only the alternative is prefilled
    assert fin.stats.prefill_tokens == 1
    # the finish covers the whole reply, the token events only the new tokens
    assert fin.token_ids[: k + 1] == prefix and len(fin.token_ids) == k + 1 + 12
    assert [e.token_id for e in new_toks if e.token_id >= 0] == fin.token_ids[k + 1 :]
    assert fin.stats.generated_tokens == 12
    assert fin.text == gen.tokenizer.decode(fin.token_ids)
    # the new text follows what the stream decoder made of the prefix (a character split by
    # the branch point comes out whole with the first new token)
    stream = gen.tokenizer.stream_decoder()
    head = "".join(stream.step(t) for t in prefix)
    assert fin.text == head + "".join(e.text for e in new_toks)
    # the same as generating from prompt + prefix from scratch
    ids, _ = chat.fit(MESSAGES, 0)
    gen.reset()
    again = gen.generate_result(ids + prefix, do_sample=False, max_new_tokens=12)
    assert again.token_ids == fin.token_ids[k + 1 :]


def test_a_prefix_ending_the_reply_runs_no_step(gen: Generator) -> None:
    eos = gen.eos_token_ids[0]
    some = gen.encode("Boil it", add_special_tokens=False)
    _, fin = _run(gen.stream_events(gen.encode("Hi"), prefix_ids=[*some, eos]))
    assert fin.reason == "eos" and fin.token_ids == some and fin.stats.prefill_tokens == 0
    assert fin.text == gen.tokenizer.decode(some)
    toks, fin = _run(gen.stream_events("Hi", prefix_ids=some, stop_strings=["it"]))
    assert fin.reason == "stop" and not toks and fin.text == "Boil "
    toks, fin = _run(gen.stream_events("Hi", prefix_ids=some, max_new_tokens=1))
    assert fin.token_ids[: len(some)] == some and len(toks) <= 1 + 1  # one new token (+ tail)


def test_bad_prefix_ids_are_refused(gen: Generator) -> None:
    with pytest.raises(TuiGenError, match="outside the vocabulary"):
        list(gen.stream_events("Hi", prefix_ids=[10**9]))


def test_the_fake_engine_branches_like_the_real_one() -> None:
    fake = FakeEngine(["one two three four five"])
    chat = ChatSession(fake)
    toks, fin = _run(chat.stream_reply(MESSAGES, prefix_ids=[0, 1]))
    assert [e.text for e in toks] == ["three ", "four ", "five"]
    assert fin.text == "one two three four five" and fin.token_ids == [0, 1, 2, 3, 4]
    assert fake.calls[-1]["prefix_ids"] == [0, 1]
    _, fin = _run(chat.stream_reply(MESSAGES))  # no prefix: the keyword is not even passed
    assert fake.calls[-1]["prefix_ids"] == [] and fin.token_ids == [0, 1, 2, 3, 4]


def test_branching_unavailable_is_one_clear_line() -> None:
    err = BranchingUnavailable()
    assert isinstance(err, TuiGenError) and str(err) == "branching needs a local model"


# --- the stop-string matcher with a prefix ----------------------------------------------------


def test_a_stop_string_may_span_the_prefix() -> None:
    m = StopStringMatcher(["\nUser:"], prefix="Sure.\nUs")
    assert m.hit is None and m.text == "Sure.\nUs"
    assert m.feed("er: more") == ("", True)
    assert m.text == "Sure."
    m = StopStringMatcher(["\nUser:"], prefix="Sure.\nUs")
    assert m.feed("ually") == ("ually", False)  # the held "\nUs" of the prefix stays unshown
    assert m.feed(" yes") == (" yes", False) and m.text == "Sure.\nUsually yes"
    assert StopStringMatcher(["end"], prefix="the end of it").hit == "end"


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(alphabet="ab\nU:sr", max_size=30),
    stops=st.lists(st.text(alphabet="ab\nU:sr", min_size=1, max_size=4), max_size=3),
    split=st.integers(min_value=0, max_value=30),
    cuts=st.lists(st.integers(min_value=0, max_value=30), max_size=6),
)
def test_a_prefix_changes_nothing_but_what_is_released(
    text: str, stops: list[str], split: int, cuts: list[int]
) -> None:
    """Whole text, stop and hit are those of feeding the prefix and then the same deltas from
    the start (the prefix is one delta: a stop string it completes ends the reply there, even
    if a longer one would have started earlier); what comes out is exactly the part after the
    prefix."""
    head, rest = text[:split], text[split:]
    bounds = sorted({0, len(rest), *(c for c in cuts if c <= len(rest))})
    ref = StopStringMatcher(stops)
    ref.feed(head)
    for a, b in itertools.pairwise(bounds):
        ref.feed(rest[a:b])
    ref.close()
    m = StopStringMatcher(stops, prefix=head)
    out = ""
    for a, b in itertools.pairwise(bounds):
        delta, _ = m.feed(rest[a:b])
        out += delta
    out += m.close()
    assert m.text == ref.text and m.hit == ref.hit
    assert out == ref.text[len(head) :]
