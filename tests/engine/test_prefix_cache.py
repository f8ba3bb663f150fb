"""engine/prefix_cache.py and the scheduler's use of it: a prompt that starts like a recent
one is prefilled only from where it differs, with the same tokens as a full prefill."""

from __future__ import annotations

import queue
import threading
from pathlib import Path

import pytest
import torch

from tui_gen.engine.events import Event, FinishEvent, TokenEvent
from tui_gen.engine.generator import Generator
from tui_gen.engine.prefix_cache import MIN_PREFIX, PrefixCache, common_prefix, snapshot
from tui_gen.engine.scheduler import Job, Scheduler
from tui_gen.models.kv_cache import KVCache
from tui_gen.options import SamplingParams

GREEDY = SamplingParams(do_sample=False, max_new_tokens=10)


def _cache(n: int, fill: float = 1.0) -> KVCache:
    c = KVCache(2, 1, 2, n, 4, torch.float32, "cpu")
    for t in c.k + c.v:
        t.fill_(fill)
    c.length = n
    return c


def test_longest_prefix_leaves_a_token_to_prefill_and_ignores_short_ones() -> None:
    pc = PrefixCache()
    a = list(range(100, 120))
    pc.add(a, _cache(20))
    n, hit = pc.longest(a)  # the same prompt: all but its last token
    assert n == 19 and hit is not None
    n, _ = pc.longest([*a, 1, 2, 3])
    assert n == 20
    n, hit = pc.longest(a[: MIN_PREFIX - 1] + [0] * 10)  # too short a common part
    assert (n, hit) == (0, None)
    assert common_prefix([1, 2, 3], [1, 2, 4]) == 2 and pc.hits == 2


def test_a_prefix_entry_is_replaced_by_its_extension_and_the_budget_holds() -> None:
    one = _cache(16).nbytes
    pc = PrefixCache(budget=3 * one)
    turn1 = list(range(200, 210))
    pc.add(turn1, _cache(16))
    pc.add([*turn1, 5, 6], _cache(16))  # the next turn covers the first
    assert len(pc) == 1
    for i in range(5):  # unrelated prompts: the oldest go first
        pc.add([i] * 12, _cache(16))
    assert len(pc) == 3 and pc.nbytes <= 3 * one
    assert pc.longest([*turn1, 5, 6, 7])[1] is None  # evicted
    assert pc.longest([4] * 12 + [1])[0] == 12


def test_snapshot_copies_the_first_positions_of_row_zero() -> None:
    c = _cache(30)
    c.k[1][0, 1, 3, 2] = 7.0
    s = snapshot(c, 5)
    assert s.length == s.max_seq_len == 5 and s.k[1].shape == (1, 2, 5, 4)
    assert s.k[1][0, 1, 3, 2] == 7.0
    c.k[1][0, 1, 3, 2] = 0.0
    assert s.k[1][0, 1, 3, 2] == 7.0  # a copy, not a view


TIMEOUT = 60.0


class Collector:
    """One job's events, from the scheduler thread."""

    def __init__(self) -> None:
        self.events: queue.Queue[Event] = queue.Queue()
        self.first = threading.Event()

    def __call__(self, ev: Event) -> None:
        if isinstance(ev, TokenEvent):
            self.first.set()
        self.events.put(ev)

    def finish(self) -> FinishEvent:
        while True:
            ev = self.events.get(timeout=TIMEOUT)
            if isinstance(ev, FinishEvent):
                return ev


@pytest.fixture(scope="module")
def gen(tiny_llama: Path) -> Generator:
    return Generator.load(tiny_llama, device="cpu")


def _run(sched: Scheduler, ids: list[int]) -> FinishEvent:
    c = Collector()
    sched.submit(Job(ids, GREEDY, c))
    return c.finish()


def test_a_follow_up_prompt_prefills_only_its_new_tokens(gen: Generator) -> None:
    """Turn 2 re-sends turn 1 and adds to it (an OpenAI chat client): the scheduler prefills
    only the new tokens, alone and while another row is decoding, and the reply is what a full
    prefill gives."""
    turn1 = list(range(3, 40))
    turn2 = [*turn1, 50, 51, 52, 53]
    want = [gen.generate_result(p, params=GREEDY).token_ids for p in (turn1, turn2, turn1)]
    sched = Scheduler(gen, max_batch=4).start()
    try:
        first = _run(sched, turn1)
        assert first.stats.prefill_tokens == len(turn1) and first.token_ids == want[0]
        second = _run(sched, turn2)
        assert second.stats.prefill_tokens == 4
        assert second.token_ids == want[1]
        # the same prompt again, joining a running row: one token to prefill
        busy, again = Collector(), Collector()
        long = SamplingParams(do_sample=False, max_new_tokens=30)
        sched.submit(Job(list(range(60, 70)), long, busy))
        assert busy.first.wait(TIMEOUT)
        sched.submit(Job(turn1, GREEDY, again))
        third = again.finish()
        busy.finish()
        assert third.stats.prefill_tokens == 1 and third.token_ids == want[2]
        assert sched.prefixes is not None and sched.prefixes.hits == 2
    finally:
        sched.close()
