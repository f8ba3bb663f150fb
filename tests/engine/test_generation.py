"""The decode loop's behaviour: streaming text, stops, cancellation, context limits."""

from __future__ import annotations

import itertools
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tiny_models import build_tokenizer

from tui_gen import Generator
from tui_gen.engine.events import FinishEvent, NoticeEvent, TokenEvent
from tui_gen.engine.loading.tokenizer import ByteTokenizer, _HFStream
from tui_gen.engine.stop import StopStringMatcher
from tui_gen.errors import TuiGenError


@pytest.fixture(scope="module")
def gen(tiny_llama: Path) -> Generator:
    return Generator.load(tiny_llama, device="cpu", dtype="float32")


def run(gen: Generator, prompt, **kw):
    events = list(gen.stream_events(prompt, **kw))
    assert isinstance(events[-1], FinishEvent)
    assert sum(isinstance(e, FinishEvent) for e in events) == 1
    return events, events[-1]


# --- detokenizing --------------------------------------------------------------------------

unicode_text = st.lists(
    st.one_of(
        st.characters(codec="utf-8", exclude_categories=("Cs",)),
        st.sampled_from(["🍕", "👩‍🍳", "日本", "中文", "e\u0301", "한국어", "\u0300", " ", "\n"]),
    ),
    max_size=40,
).map("".join)
_TOK = build_tokenizer()


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(text=unicode_text)
def test_stream_decode_concatenates_to_full_decode(text: str) -> None:
    ids = _TOK.encode(text, add_special_tokens=False).ids
    stream = _HFStream(_TOK)
    deltas = [stream.step(i) for i in ids]
    rest = stream.flush()
    # whole characters only: nothing left over, except U+FFFDs the text itself ends with
    # (DecodeStream cannot tell it from a half character, so it waits for the end)
    assert rest == "" or (set(rest) == {"\ufffd"} and text.endswith(rest))
    deltas.append(rest)
    assert "".join(deltas) == _TOK.decode(ids)
    assert "".join(deltas) == text  # byte-level BPE is lossless
    if "\ufffd" not in text:
        assert all("\ufffd" not in d for d in deltas)  # no half characters shown


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=80))
def test_byte_stream_decode(data: bytes) -> None:
    tok = ByteTokenizer()
    stream = tok.stream_decoder()
    shown = "".join(stream.step(b) for b in data) + stream.flush()
    assert shown == data.decode("utf-8", errors="replace")


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(alphabet="abc\n", max_size=40),
    stops=st.lists(st.text("abc\n", min_size=1, max_size=4), max_size=3),
    cuts=st.lists(st.integers(0, 40), max_size=10),
)
def test_stop_matcher_any_split(text: str, stops: list[str], cuts: list[int]) -> None:
    bounds = sorted({0, len(text), *(c for c in cuts if c <= len(text))})
    pieces = [text[a:b] for a, b in itertools.pairwise(bounds)]
    m = StopStringMatcher(stops)
    shown, hit = "", False
    for piece in pieces:
        out, hit = m.feed(piece)
        shown += out
        if hit:
            break
    if not hit:
        shown += m.flush()
    # Generation stops at the first piece after which some stop string is complete; the reply
    # is cut where the earliest stop string present at that point begins.
    expected = text
    for b in bounds[1:]:
        starts = [text[:b].find(s) for s in stops if s in text[:b]]
        if starts:
            expected = text[: min(starts)]
            break
    assert hit == (expected != text or any(s in text for s in stops))
    assert shown == expected
    assert m.text == shown


# --- the generator -------------------------------------------------------------------------


def test_deltas_concatenate_to_final_text(gen: Generator) -> None:
    events, fin = run(gen, "Hello", max_new_tokens=40, seed=3, temperature=1.0)
    tokens = [e for e in events if isinstance(e, TokenEvent)]
    assert "".join(e.text for e in tokens) == fin.text
    assert [e.token_id for e in tokens if e.token_id >= 0] == fin.token_ids
    assert fin.text == gen.tokenizer.decode(fin.token_ids)
    assert fin.reason in ("length", "eos")
    assert fin.stats.generated_tokens == len(fin.token_ids)


def test_seed_reproducible_and_greedy_deterministic(gen: Generator) -> None:
    a = gen.generate("Hi", max_new_tokens=20, seed=11, temperature=1.0)
    b = gen.generate("Hi", max_new_tokens=20, seed=11, temperature=1.0)
    c = gen.generate("Hi", max_new_tokens=20, seed=12, temperature=1.0)
    assert a == b and a != c
    assert gen.generate("Hi", max_new_tokens=20, do_sample=False) == gen.generate(
        "Hi", max_new_tokens=20, temperature=0
    )


def test_stop_string_across_token_boundary(gen: Generator) -> None:
    _, fin = run(gen, "Hello", max_new_tokens=40, do_sample=False)
    ids = fin.token_ids
    text = fin.text
    # character offsets where one token's text ends and the next begins
    bounds = sorted({len(gen.tokenizer.decode(ids[: i + 1])) for i in range(len(ids))})
    candidates = [
        text[b - 1 : b + 1]
        for b in bounds
        if 0 < b < len(text) and text.find(text[b - 1 : b + 1]) == b - 1
    ]
    assert candidates, "no two-character string spans a token boundary"
    stop = candidates[len(candidates) // 2]
    events, fin2 = run(gen, "Hello", max_new_tokens=40, do_sample=False, stop_strings=[stop])
    assert fin2.reason == "stop"
    assert fin2.text == fin.text[: fin.text.find(stop)]
    shown = "".join(e.text for e in events if isinstance(e, TokenEvent))
    assert shown == fin2.text and stop not in shown


def test_several_eos_ids(gen: Generator) -> None:
    _, fin = run(gen, "Hello", max_new_tokens=30, do_sample=False)
    target = fin.token_ids[5]
    first = fin.token_ids.index(target)
    saved = gen.tokenizer.eos_token_ids
    try:
        gen.tokenizer.eos_token_ids = [saved[0], target]
        _, fin2 = run(gen, "Hello", max_new_tokens=30, do_sample=False)
    finally:
        gen.tokenizer.eos_token_ids = saved
    assert fin2.reason == "eos"
    assert fin2.token_ids == fin.token_ids[:first]


def test_max_new_tokens_zero_is_refused_and_length(gen: Generator) -> None:
    with pytest.raises(ValueError, match="max_new_tokens must be an integer >= 1"):
        run(gen, "Hello", max_new_tokens=0)  # one rule (options.py), as the app's minimum of 1
    gen.tokenizer.eos_token_ids, saved = [], gen.tokenizer.eos_token_ids
    try:
        _, fin = run(gen, "Hello", max_new_tokens=7, temperature=1.0, seed=0)
    finally:
        gen.tokenizer.eos_token_ids = saved
    assert fin.reason == "length" and len(fin.token_ids) == 7


def test_cancel_stops_within_one_step(gen: Generator) -> None:
    cancel = threading.Event()
    stream = gen.stream_events("Hello", cancel=cancel, max_new_tokens=200, temperature=1.0, seed=1)
    seen = 0
    fin = None
    for ev in stream:
        if isinstance(ev, TokenEvent):
            seen += 1
            if seen == 3:
                cancel.set()
        elif isinstance(ev, FinishEvent):
            fin = ev
    assert fin is not None and fin.reason == "cancelled"
    assert len(fin.token_ids) == 3  # no token after the one during which stop was pressed
    # the partial text is kept
    assert fin.text == gen.tokenizer.decode(fin.token_ids)


def test_cancel_before_start(gen: Generator) -> None:
    cancel = threading.Event()
    cancel.set()
    _, fin = run(gen, "Hello", cancel=cancel)
    assert fin.reason == "cancelled" and fin.token_ids == []


def test_empty_prompt_starts_from_bos(gen: Generator) -> None:
    _, fin = run(gen, "", max_new_tokens=5, seed=0, temperature=1.0)
    assert fin.stats.prompt_tokens == 1
    assert len(fin.token_ids) >= 1 or fin.reason == "eos"


def test_long_prompt_is_truncated_and_context_end_is_length(tiny_llama: Path) -> None:
    g = Generator.load(tiny_llama, device="cpu", max_context=32)
    assert g.max_context == 32
    g.tokenizer.eos_token_ids = []
    prompt = list(range(10, 110))  # 100 tokens into a 32-token context
    events, fin = run(g, prompt, max_new_tokens=100, temperature=1.0, seed=0)
    notices = [e for e in events if isinstance(e, NoticeEvent)]
    assert notices and notices[0].kind == "prompt_truncated"
    assert fin.stats.prompt_truncated and fin.stats.prompt_tokens < 32
    assert fin.reason == "length"
    assert fin.stats.prompt_tokens + len(fin.token_ids) == 32  # filled the context exactly
    # and it keeps working afterwards
    _, fin2 = run(g, [5, 6, 7], max_new_tokens=3, temperature=1.0, seed=0)
    assert len(fin2.token_ids) == 3


def test_kv_reuse_prefills_only_new_tokens(gen: Generator) -> None:
    gen.reset()
    _, fin = run(gen, [7, 8, 9, 10, 11, 12], max_new_tokens=4, do_sample=False)
    extended = [7, 8, 9, 10, 11, 12, *fin.token_ids, 13, 14]
    _, fin2 = run(gen, extended, max_new_tokens=4, do_sample=False)
    assert fin2.stats.prefill_tokens == 3  # the last generated id (never fed) + 13, 14
    gen.reset()
    _, fresh = run(gen, extended, max_new_tokens=4, do_sample=False)
    assert fresh.stats.prefill_tokens == len(extended)
    assert fresh.token_ids == fin2.token_ids  # reuse changes nothing but the work done


def test_byte_level_model(tiny_byte: Path) -> None:
    g = Generator.load(tiny_byte, device="cpu")
    assert g.tokenizer.byte_level and g.tokenizer.vocab_size == 256
    assert g.encode("héllo") == list("héllo".encode())
    events, fin = run(g, "Recipe:", max_new_tokens=30, temperature=1.0, seed=0)
    shown = "".join(e.text for e in events if isinstance(e, TokenEvent))
    assert shown == fin.text == bytes(fin.token_ids).decode("utf-8", errors="replace")
    _, empty = run(g, "", max_new_tokens=3, seed=0)
    assert empty.stats.prompt_tokens == 1  # starts from a newline


def test_bad_values_and_ids(gen: Generator) -> None:
    with pytest.raises(ValueError, match="temperature"):
        gen.generate("x", temperature=-1)
    with pytest.raises(ValueError, match="top_p"):
        gen.generate("x", top_p=0)
    with pytest.raises(ValueError, match="max_new_tokens"):
        gen.generate("x", max_new_tokens=-3)
    with pytest.raises(ValueError, match="repetition_penalty"):
        gen.generate("x", repetition_penalty=0)
    with pytest.raises(TuiGenError, match="outside the vocabulary"):
        gen.generate([10**6])


def test_one_generation_at_a_time(gen: Generator) -> None:
    first = gen.stream_events("Hello", max_new_tokens=5, seed=0)
    next(first)
    with pytest.raises(TuiGenError, match="already running"):
        gen.generate("Hi")
    list(first)  # finishing the first releases the model
    assert isinstance(gen.generate("Hi", max_new_tokens=2, seed=0), str)


def test_api_exports(gen: Generator) -> None:
    import tui_gen

    assert tui_gen.Generator is Generator
    deltas = list(gen.generate_stream("Hi", max_new_tokens=8, seed=0))
    assert "".join(deltas) == gen.generate("Hi", max_new_tokens=8, seed=0)
    assert gen.generate_batch(["a", "b"], max_new_tokens=3, seed=0) == [
        gen.generate("a", max_new_tokens=3, seed=0),
        gen.generate("b", max_new_tokens=3, seed=0),
    ]
