"""Batched decoding gives what one-at-a-time decoding gives, and rows finish independently."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch

from tui_gen.engine.batch import Request
from tui_gen.engine.events import FinishEvent, NoticeEvent, TokenEvent
from tui_gen.engine.generator import Generator

# different lengths on purpose: the batch is left-padded up to the longest
PROMPTS = [
    "The quick brown fox jumps",
    "Preheat",
    "def add(a, b):\n    return a + b\n\nprint(add(2, 3))",
    "",
    "Numbers: 0 1 2 3",
]


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def gen(request: pytest.FixtureRequest) -> Generator:
    path: Path = request.getfixturevalue(f"tiny_{request.param}")
    return Generator.load(path, device="cpu")


def _collect(events) -> tuple[dict[int, FinishEvent], dict[int, str]]:
    """FinishEvents by index and the streamed text by index; checks the event contract."""
    finishes: dict[int, FinishEvent] = {}
    streamed: dict[int, str] = {}
    for ev in events:
        if isinstance(ev, TokenEvent):
            assert ev.index not in finishes, "a finished row kept emitting"
            streamed[ev.index] = streamed.get(ev.index, "") + ev.text
        elif isinstance(ev, FinishEvent):
            assert ev.index not in finishes, "two FinishEvents for one row"
            finishes[ev.index] = ev
    for i, fin in finishes.items():
        assert streamed.get(i, "") == fin.text
    return finishes, streamed


def test_padded_forward_matches_unpadded_logits(gen: Generator) -> None:
    """The model-level design: left padding + positions + key_padding == the prompt alone."""
    from tui_gen.models.kv_cache import KVCache

    c = gen.config
    long, short = gen.encode(PROMPTS[0]), gen.encode(PROMPTS[1])
    pad = len(long) - len(short)
    idx = torch.tensor([long, [0] * pad + short])
    positions = torch.tensor([list(range(len(long))), [0] * pad + list(range(len(short)))])
    key_padding = torch.ones(2, 64, dtype=torch.bool)
    key_padding[1, :pad] = False
    cache = KVCache(c.num_layers, 2, c.num_kv_heads, 64, c.head_dim, gen.dtype, "cpu")
    with torch.inference_mode():
        both = gen.model(idx, 0, cache, positions, key_padding)[:, -1]
        step = torch.tensor([[5], [7]])
        pos = torch.tensor([[len(long)], [len(short)]])
        both2 = gen.model(step, len(long), cache, pos, key_padding)[:, -1]
        for row, ids, nxt in ((0, long, 5), (1, short, 7)):
            one = gen.model(torch.tensor([ids]))[:, -1]
            torch.testing.assert_close(both[row], one[0], atol=1e-5, rtol=1e-5)
            one2 = gen.model(torch.tensor([[*ids, nxt]]))[:, -1]
            torch.testing.assert_close(both2[row], one2[0], atol=1e-5, rtol=1e-5)


def test_greedy_batch_equals_one_at_a_time(gen: Generator) -> None:
    """Different prompt lengths, max_new_tokens and a stop string: rows end at different steps."""
    params = [gen.params(do_sample=False, max_new_tokens=n) for n in (30, 7, 30, 1, 18)]
    single = [gen.generate_result(p, params=params[i]) for i, p in enumerate(PROMPTS)]
    # a stop string taken from a row's own greedy reply, so that row must stop early
    windows = [
        (i, r.text[k : k + 2])
        for i, r in enumerate(single)
        for k in range(3, len(r.text) - 2)
        if "\ufffd" not in r.text[k : k + 2] and r.text[k : k + 2] not in r.text[:k]
    ]
    if windows:  # (the tiny Qwen2 only writes partial UTF-8: nothing to stop on)
        row, stop = windows[0]
        params[row] = params[row].replace(stop_strings=[stop])
        single[row] = gen.generate_result(PROMPTS[row], params=params[row])
        assert single[row].finish_reason == "stop"
    reqs = [
        Request(gen._prompt_ids(p) or gen._start_ids(), params[i], i) for i, p in enumerate(PROMPTS)
    ]
    finishes, _ = _collect(gen.stream_batch(reqs))
    assert sorted(finishes) == list(range(len(PROMPTS)))
    for i, s in enumerate(single):
        assert finishes[i].token_ids == s.token_ids, f"row {i}"
        assert finishes[i].text == s.text
        assert finishes[i].reason == s.finish_reason
        assert finishes[i].stats.generated_tokens == len(s.token_ids)
        assert finishes[i].stats.prompt_tokens == s.stats.prompt_tokens
    assert gen.generate_batch(PROMPTS, do_sample=False, max_new_tokens=12, batch_size=2) == [
        gen.generate(p, do_sample=False, max_new_tokens=12) for p in PROMPTS
    ]


def test_row_finishing_on_eos_stops_while_others_continue(gen: Generator) -> None:
    alone = gen.generate_result(PROMPTS[0], do_sample=False, max_new_tokens=20)
    eos_tok = alone.token_ids[4]  # make row 0's 5th token an EOS
    original = list(gen.tokenizer.eos_token_ids)
    gen.tokenizer.eos_token_ids = [*original, eos_tok]
    try:
        single = [gen.generate_result(p, do_sample=False, max_new_tokens=20) for p in PROMPTS]
        finishes, _ = _collect(gen.stream_batch(PROMPTS, do_sample=False, max_new_tokens=20))
    finally:
        gen.tokenizer.eos_token_ids = original
    assert finishes[0].reason == "eos"
    assert len(finishes[0].token_ids) == alone.token_ids.index(eos_tok)
    assert any(f.reason == "length" for f in finishes.values())
    for i, s in enumerate(single):
        assert finishes[i].token_ids == s.token_ids


def test_repetition_penalty_ignores_padding(gen: Generator) -> None:
    kw = dict(do_sample=False, max_new_tokens=15, repetition_penalty=1.5)
    assert gen.generate_batch(PROMPTS, **kw) == [gen.generate(p, **kw) for p in PROMPTS]


def test_seeded_sampling_is_the_same_alone_or_in_any_batch(gen: Generator) -> None:
    kw = dict(temperature=1.0, top_k=0, top_p=0.9, max_new_tokens=15)
    reqs = [
        Request(gen._prompt_ids(p) or gen._start_ids(), gen.params(seed=10 + i, **kw), i)
        for i, p in enumerate(PROMPTS)
    ]
    alone = [gen.generate(p, seed=10 + i, **kw) for i, p in enumerate(PROMPTS)]
    for bs in (2, 5):
        finishes, _ = _collect(gen.stream_batch(reqs, batch_size=bs))
        assert [finishes[i].text for i in range(len(PROMPTS))] == alone


def test_rows_sampled_together_get_what_each_gets_alone(gen: Generator) -> None:
    """batch._sample groups rows by sampler settings (one process_logits per group): on the
    same logits, every row's token and logprobs equal its own one-row _sample call."""
    from tui_gen.engine.batch import _Row, _sample
    from tui_gen.engine.sampling import make_generator
    from tui_gen.engine.stop import StopStringMatcher

    settings_ = [
        dict(temperature=0.8, top_k=5),
        dict(temperature=0.8, top_k=5, logprobs=3),
        dict(do_sample=False),
        dict(temperature=1.2, top_k=0, top_p=0.9, repetition_penalty=1.3),
        dict(temperature=0.8, top_k=5),
        dict(do_sample=False, logprobs=2),
    ]
    V = gen.config.vocab_size
    logits = torch.randn(len(settings_), V, generator=torch.Generator().manual_seed(3)) * 4
    seq = torch.randint(0, V, (len(settings_), 9), generator=torch.Generator().manual_seed(4))

    def rows() -> list[_Row]:
        out = []
        for i, kw in enumerate(settings_):
            p = gen.params(seed=100 + i, **kw)
            rng = None if p.greedy else make_generator(p.seed, "cpu")
            out.append(_Row(Request([1], p, i), [1], 0, rng, None, StopStringMatcher([]), None))
        return out  # type: ignore[arg-type]

    batch_rows, solo_rows = rows(), rows()
    for _ in range(3):
        toks, lps = _sample(logits, batch_rows, seq, gen.token_texts)
        for i, r in enumerate(solo_rows):
            [t], [lp] = _sample(logits[i : i + 1], [r], seq[i : i + 1], gen.token_texts)
            assert toks[i] == t
            assert lps[i] == lp
        assert lps[1] is not None and lps[5] is not None and lps[0] is None


def test_cancel_keeps_partial_text_and_skips_unstarted(gen: Generator) -> None:
    cancel = threading.Event()
    tokens = 0
    events = []
    for ev in gen.stream_batch(
        PROMPTS * 2, cancel=cancel, batch_size=5, do_sample=False, max_new_tokens=50
    ):
        events.append(ev)
        if isinstance(ev, TokenEvent):
            tokens += 1
            if tokens == 12:
                cancel.set()
    finishes, streamed = _collect(events)
    assert sorted(finishes) == [0, 1, 2, 3, 4]  # the second batch never started
    assert all(f.reason == "cancelled" for f in finishes.values())
    assert any(f.text for f in finishes.values())


def test_edge_rows_one_token_and_truncated_prompt(tiny_llama: Path) -> None:
    g = Generator.load(tiny_llama, device="cpu", max_context=16)
    long = PROMPTS[2] * 3  # far longer than 16 tokens
    reqs = [
        Request(g.encode(long), g.params(do_sample=False, max_new_tokens=6), 0),
        Request(g.encode("hi"), g.params(do_sample=False, max_new_tokens=1), 1),
        Request(g.encode("The quick"), g.params(do_sample=False, max_new_tokens=40), 2),
    ]
    events = list(g.stream_batch(reqs))
    assert any(isinstance(e, NoticeEvent) and e.kind == "prompt_truncated" for e in events)
    finishes, _ = _collect(events)
    assert len(finishes[1].token_ids) == 1
    assert finishes[0].stats.prompt_truncated
    alone = g.generate_result(long, do_sample=False, max_new_tokens=6)
    assert finishes[0].token_ids == alone.token_ids
    # row 2 runs into the 16-token context, exactly as it does alone
    alone2 = g.generate_result("The quick", do_sample=False, max_new_tokens=40)
    assert finishes[2].token_ids == alone2.token_ids
    assert finishes[2].stats.prompt_tokens + len(finishes[2].token_ids) == 16


def test_qwen2_attention_bias_batches_too(tiny_qwen2: Path) -> None:
    g = Generator.load(tiny_qwen2, device="cpu")
    kw = dict(do_sample=False, max_new_tokens=12)
    assert g.generate_batch(PROMPTS, **kw) == [g.generate(p, **kw) for p in PROMPTS]


def test_trained_cooking_model_batches_like_one_at_a_time(cooking_dir: Path) -> None:
    """A real model that ends its replies with EOS at different lengths, chat template on."""
    from tui_gen.engine.chat import ChatSession

    g = Generator.load(cooking_dir, device="cpu")
    prompts = []
    for q in ("How do I make pancakes?", "Soup?", "What goes well with salmon and rice tonight?"):
        session = ChatSession(g)
        session.messages.append({"role": "user", "content": q})
        prompts.append(session.prompt_ids(40)[0])
    kw = dict(do_sample=False, max_new_tokens=40)
    assert g.generate_batch(prompts, **kw) == [g.generate(p, **kw) for p in prompts]
