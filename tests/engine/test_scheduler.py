"""Continuous batching (engine/scheduler.py): rows join and leave at step boundaries, and a
request's greedy or seeded output is the same alone or in any batch."""

from __future__ import annotations

import queue
import threading
import time
from pathlib import Path

import pytest

from tui_gen.engine.events import Event, FinishEvent, TokenEvent
from tui_gen.engine.generator import Generator
from tui_gen.engine.scheduler import Job, Scheduler
from tui_gen.errors import TuiGenError
from tui_gen.options import SamplingParams

GREEDY = SamplingParams(do_sample=False, max_new_tokens=12)
TIMEOUT = 60.0


@pytest.fixture(scope="module")
def gen(tiny_llama: Path) -> Generator:
    return Generator.load(tiny_llama, device="cpu")


class Collector:
    """The events of one job, gathered from the scheduler thread."""

    def __init__(self) -> None:
        self.events: queue.Queue[Event] = queue.Queue()
        self.seen: list[Event] = []
        self.first = threading.Event()

    def __call__(self, ev: Event) -> None:
        if isinstance(ev, TokenEvent):
            self.first.set()
        self.seen.append(ev)
        self.events.put(ev)

    def finish(self) -> FinishEvent:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            ev = self.events.get(timeout=TIMEOUT)
            if isinstance(ev, FinishEvent):
                return ev
        raise AssertionError("no FinishEvent in time")


def _job(ids: list[int], params: SamplingParams, **kw) -> tuple[Job, Collector]:
    c = Collector()
    return Job(ids, params, c, **kw), c


PROMPTS = [[5, 6, 7], [9, 10, 11, 12, 13, 14, 15], [20], [30, 31, 32, 33]]


def _solo(gen: Generator, ids: list[int], p: SamplingParams) -> list[int]:
    return gen.generate_result(ids, params=p).token_ids


def test_greedy_batch_equals_solo_with_late_joiners(gen: Generator) -> None:
    expected = [_solo(gen, ids, GREEDY) for ids in PROMPTS]
    sched = Scheduler(gen, max_batch=8).start()
    try:
        jobs = [_job(ids, GREEDY) for ids in PROMPTS]
        sched.submit(jobs[0][0])
        assert jobs[0][1].first.wait(TIMEOUT)  # the first row is decoding when the rest join
        for job, _ in jobs[1:]:
            sched.submit(job)
        got = [c.finish().token_ids for _, c in jobs]
    finally:
        sched.close()
    assert got == expected
    assert max(sched.step_rows) > 1  # they really shared steps


def test_a_longer_newcomer_shifts_the_batch(gen: Generator) -> None:
    """A joiner whose prompt is longer than the batch's columns moves the running rows right."""
    long_ids = list(range(40, 80))
    p = GREEDY.replace(max_new_tokens=20)
    expected = [_solo(gen, [3], p), _solo(gen, long_ids, p)]
    sched = Scheduler(gen).start()
    try:
        a, ca = _job([3], p)
        b, cb = _job(long_ids, p)
        sched.submit(a)
        assert ca.first.wait(TIMEOUT)
        sched.submit(b)
        got = [ca.finish().token_ids, cb.finish().token_ids]
    finally:
        sched.close()
    assert got == expected


def test_seeded_sampling_is_the_same_alone_and_batched(gen: Generator) -> None:
    p = SamplingParams(temperature=1.0, top_k=0, top_p=1.0, seed=7, max_new_tokens=10)
    expected = _solo(gen, PROMPTS[1], p)
    sched = Scheduler(gen).start()
    try:
        jobs = [_job(ids, p.replace(seed=7 + i)) for i, ids in enumerate(PROMPTS)]
        jobs[1] = _job(PROMPTS[1], p)
        for job, _ in jobs:
            sched.submit(job)
        got = [c.finish().token_ids for _, c in jobs]
    finally:
        sched.close()
    assert got[1] == expected


def test_max_batch_bounds_the_rows_and_queues_the_rest(gen: Generator) -> None:
    sched = Scheduler(gen, max_batch=2).start()
    try:
        jobs = [_job(ids, GREEDY) for ids in PROMPTS]
        for job, _ in jobs:
            sched.submit(job)
        reasons = [c.finish().reason for _, c in jobs]
    finally:
        sched.close()
    assert all(r in ("length", "eos") for r in reasons)
    assert max(sched.step_rows) == 2


def test_cancel_stops_the_row_within_a_step_and_frees_the_slot(gen: Generator) -> None:
    p = GREEDY.replace(max_new_tokens=200)
    sched = Scheduler(gen, max_batch=1).start()
    try:
        a, ca = _job([5, 6], p)
        b, cb = _job([7, 8], GREEDY)
        sched.submit(a)
        assert ca.first.wait(TIMEOUT)
        sched.submit(b)  # queued: the only slot is taken
        a.cancel.set()
        fa = ca.finish()
        fb = cb.finish()  # got the freed slot
    finally:
        sched.close()
    assert fa.reason == "cancelled" and len(fa.token_ids) < 200
    assert fb.token_ids == _solo(gen, [7, 8], GREEDY)
    assert sched.running == 0


def test_close_cancels_queued_and_running_jobs(gen: Generator) -> None:
    sched = Scheduler(gen, max_batch=1).start()
    a, ca = _job([5], GREEDY.replace(max_new_tokens=10_000))
    b, cb = _job([6], GREEDY)
    sched.submit(a)
    assert ca.first.wait(TIMEOUT)
    sched.submit(b)
    sched.close()
    assert ca.finish().reason == "cancelled"
    assert cb.finish().reason in ("cancelled", "length", "eos")
    with pytest.raises(TuiGenError, match="shutting down"):
        sched.submit(_job([1], GREEDY)[0])


def test_a_prompt_past_the_context_fails_only_its_own_job(gen: Generator) -> None:
    sched = Scheduler(gen).start()
    try:
        bad, cbad = _job([1] * gen.max_context, GREEDY)
        good, cgood = _job([5, 6, 7], GREEDY)
        sched.submit(bad)
        sched.submit(good)
        fbad, fgood = cbad.finish(), cgood.finish()
    finally:
        sched.close()
    assert fbad.reason == "cancelled" and isinstance(bad.error, TuiGenError)
    assert fgood.token_ids == _solo(gen, [5, 6, 7], GREEDY)


def test_ignore_eos_keeps_going_past_the_eos_token(gen: Generator) -> None:
    """With the EOS id set to the token greedy decoding picks first, a job ends at once
    unless ignore_eos is set."""
    first = _solo(gen, [5, 6, 7], GREEDY)[0]
    sched = Scheduler(gen).start()
    sched._eos = {first}
    try:
        stop, cstop = _job([5, 6, 7], GREEDY)
        go, cgo = _job([5, 6, 7], GREEDY, ignore_eos=True)
        sched.submit(stop)
        sched.submit(go)
        fstop, fgo = cstop.finish(), cgo.finish()
    finally:
        sched.close()
    assert fstop.reason == "eos" and fstop.token_ids == []
    assert fgo.reason == "length" and len(fgo.token_ids) == GREEDY.max_new_tokens


def test_logprobs_reach_the_token_events(gen: Generator) -> None:
    sched = Scheduler(gen).start()
    try:
        job, c = _job([5, 6, 7], GREEDY.replace(logprobs=3, max_new_tokens=3))
        sched.submit(job)
        fin = c.finish()
    finally:
        sched.close()
    toks = [ev for ev in c.seen if isinstance(ev, TokenEvent) and ev.token_id >= 0]
    assert [t.token_id for t in toks] == fin.token_ids
    assert all(t.logprobs is not None and len(t.logprobs.top) == 3 for t in toks)
    assert all(t.logprobs.top[0].token_id == t.token_id for t in toks)  # greedy: the argmax


def test_a_failing_step_fails_the_running_jobs_and_the_scheduler_goes_on(
    gen: Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = gen.batch_step
    broken = threading.Event()
    broken.set()

    def batch_step(cache):
        step = real(cache)

        def maybe_broken(*args):
            if broken.is_set():
                raise RuntimeError("kernel exploded")
            return step(*args)

        return maybe_broken

    monkeypatch.setattr(gen, "batch_step", batch_step)
    sched = Scheduler(gen).start()
    try:
        job, c = _job([5, 6, 7], GREEDY)
        sched.submit(job)
        fin = c.finish()
        assert fin.reason == "cancelled" and isinstance(job.error, RuntimeError)
        broken.clear()
        again, c2 = _job([5, 6, 7], GREEDY)
        sched.submit(again)
        assert c2.finish().token_ids == _solo(gen, [5, 6, 7], GREEDY)
    finally:
        sched.close()


def test_a_recurrent_model_runs_one_request_at_a_time(tiny_bdh: Path) -> None:
    """BDH's state cannot be spliced: requests queue, each decoded alone, as solo runs."""
    bdh = Generator.load(tiny_bdh, device="cpu")
    prompts = [bdh.encode("ab"), bdh.encode("hello")]
    expected = [_solo(bdh, ids, GREEDY) for ids in prompts]
    sched = Scheduler(bdh).start()
    try:
        jobs = [_job(ids, GREEDY) for ids in prompts]
        for job, _ in jobs:
            sched.submit(job)
        got = [c.finish().token_ids for _, c in jobs]
    finally:
        sched.close()
    assert got == expected
    assert set(sched.step_rows) == {1}


def test_learned_positions_join_the_batch_too(tiny_gpt2: Path) -> None:
    """GPT-2 reads each row's own positions from its embedding table: late joiners of every
    length still decode as they do alone."""
    g2 = Generator.load(tiny_gpt2, device="cpu")
    expected = [_solo(g2, ids, GREEDY) for ids in PROMPTS]
    sched = Scheduler(g2).start()
    try:
        jobs = [_job(ids, GREEDY) for ids in PROMPTS]
        sched.submit(jobs[2][0])  # the shortest first: every later one shifts the batch
        assert jobs[2][1].first.wait(TIMEOUT)
        for i in (0, 1, 3):
            sched.submit(jobs[i][0])
        got = [c.finish().token_ids for _, c in jobs]
    finally:
        sched.close()
    assert got == expected


def test_logit_bias_bans_and_forces_tokens_per_job(gen: Generator) -> None:
    """Each job's logit_bias applies to its own row only, also when batched with others."""
    p = GREEDY.replace(max_new_tokens=6)
    ids = PROMPTS[1]
    plain = _solo(gen, ids, p)
    forced_tok = (plain[0] + 1) % gen.config.vocab_size
    sched = Scheduler(gen, max_batch=8).start()
    try:
        banned, bc = _job(ids, p, logit_bias={plain[0]: -100.0}, ignore_eos=True)
        forced, fc = _job(ids, p, logit_bias={forced_tok: 100.0}, ignore_eos=True)
        untouched, uc = _job(ids, p)
        for job in (banned, forced, untouched):
            sched.submit(job)
        got_banned, got_forced, got_plain = (c.finish().token_ids for c in (bc, fc, uc))
    finally:
        sched.close()
    assert got_banned[0] != plain[0] and plain[0] not in got_banned
    assert got_forced == [forced_tok] * 6
    assert got_plain == plain
