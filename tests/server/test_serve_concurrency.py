"""Many clients at once: streams decode together (continuous batching) with the same greedy
text as alone, and a client that goes away stops its row and frees its slot."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from conftest import MODEL, start

from tui_gen.engine.events import Event, FinishEvent
from tui_gen.engine.generator import Generator
from tui_gen.engine.scheduler import Job
from tui_gen.server.run import Server

PROMPTS = [
    "Hello there",
    "The quick brown fox",
    "A",
    "What is the lazy dog doing today, and why?",
    "jumps",
    "Tell me a story",
    "over the",
    "dog",
]
BOUND = 30.0  # seconds any wait in this file may take


def stream_text(client: openai.OpenAI, prompt: str, max_tokens: int = 16) -> str:
    parts = []
    for c in client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": prompt}],
        max_tokens=max_tokens,
        temperature=0,
        stream=True,
    ):
        if c.choices and c.choices[0].delta.content:
            parts.append(c.choices[0].delta.content)
    return "".join(parts)


def test_eight_concurrent_streams_equal_their_solo_runs(server: Server) -> None:
    c = openai.OpenAI(base_url=server.url, api_key="x", max_retries=0, timeout=120)
    solo = [stream_text(c, p) for p in PROMPTS]
    sched = server.state.scheduler
    before = len(sched.step_rows)
    got: list[str | None] = [None] * len(PROMPTS)
    barrier = threading.Barrier(len(PROMPTS))

    def one(i: int) -> None:
        client = openai.OpenAI(base_url=server.url, api_key="x", max_retries=0, timeout=120)
        barrier.wait(BOUND)
        got[i] = stream_text(client, PROMPTS[i])

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(PROMPTS))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert got == solo
    assert max(sched.step_rows[before:]) > 1  # they shared steps: continuous batching


class Recorder:
    """Every Job the server's scheduler gets, with the FinishEvent it ended with."""

    def __init__(self, server: Server) -> None:
        self.jobs: list[Job] = []
        self.finished: dict[int, FinishEvent] = {}
        sched = server.state.scheduler
        submit = sched.submit

        def recording_submit(job: Job) -> None:
            n = len(self.jobs)
            self.jobs.append(job)
            sink = job.sink

            def recording_sink(ev: Event) -> None:
                if isinstance(ev, FinishEvent):
                    self.finished[n] = ev
                sink(ev)

            job.sink = recording_sink
            submit(job)

        sched.submit = recording_submit  # type: ignore[method-assign]

    def wait_finished(self, n: int) -> FinishEvent:
        deadline = time.monotonic() + BOUND
        while n not in self.finished and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.finished[n]


@pytest.fixture
def slow_server(tiny_gen: Generator, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    """One slot, and 20 ms per decode step, so a reply of the whole context takes seconds."""
    real = tiny_gen.batch_step

    def slow_batch_step(cache: Any):
        step = real(cache)

        def slow(*args: Any) -> Any:
            time.sleep(0.02)
            return step(*args)

        return slow

    monkeypatch.setattr(tiny_gen, "batch_step", slow_batch_step)
    s = start(tiny_gen, max_batch=1)
    try:
        yield s
    finally:
        s.stop()


LONG = {"max_tokens": 10_000, "temperature": 0, "ignore_eos": True}


def test_a_stream_cut_mid_way_stops_its_row_and_frees_the_slot(slow_server: Server) -> None:
    rec = Recorder(slow_server)
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "stream": True}
    with (
        httpx.Client(timeout=BOUND) as c,
        c.stream("POST", f"{slow_server.url}/chat/completions", json={**body, **LONG}) as r,
    ):
        lines = r.iter_lines()
        for _ in range(6):  # the role chunk, then a few tokens
            next(lines)
    # the connection is closed: the row must stop long before the context (~250 tokens)
    fin = rec.wait_finished(0)
    assert fin.reason == "cancelled" and len(fin.token_ids) < 60
    # and the only slot is free again: the next request runs
    client = openai.OpenAI(base_url=slow_server.url, api_key="x", max_retries=0, timeout=BOUND)
    assert stream_text(client, "Hi", max_tokens=3)
    sched = slow_server.state.scheduler
    deadline = time.monotonic() + BOUND  # the row leaves right after its last event
    while sched.running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sched.running == 0


def test_a_non_streaming_client_that_leaves_stops_its_row(slow_server: Server) -> None:
    rec = Recorder(slow_server)
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], **LONG}
    with pytest.raises(httpx.TimeoutException):
        httpx.post(f"{slow_server.url}/chat/completions", json=body, timeout=0.5)
    fin = rec.wait_finished(0)
    assert fin.reason == "cancelled" and len(fin.token_ids) < 100


def test_requests_past_max_batch_wait_in_the_queue(slow_server: Server) -> None:
    """With one slot, three concurrent requests all complete, one after another."""
    results: list[str] = []
    lock = threading.Lock()

    def one() -> None:
        c = openai.OpenAI(base_url=slow_server.url, api_key="x", max_retries=0, timeout=BOUND)
        text = stream_text(c, "Hi", max_tokens=4)
        with lock:
            results.append(text)

    threads = [threading.Thread(target=one) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(BOUND)
    assert len(results) == 3 and len(set(results)) == 1
    assert max(slow_server.state.scheduler.step_rows) == 1


def test_a_broken_model_is_a_server_error_not_a_hang(
    tiny_gen: Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(cache: Any):
        def step(*args: Any) -> Any:
            raise RuntimeError("kernel exploded")

        return step

    monkeypatch.setattr(tiny_gen, "batch_step", broken)
    s = start(tiny_gen)
    try:
        body = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], **LONG}
        r = httpx.post(f"{s.url}/chat/completions", json=body, timeout=BOUND)
        assert r.status_code == 500 and r.json()["error"]["type"] == "server_error"
        assert "kernel exploded" in r.json()["error"]["message"]
        with (
            httpx.Client(timeout=BOUND) as c,
            c.stream("POST", f"{s.url}/chat/completions", json={**body, "stream": True}) as resp,
        ):
            payloads = [ln[6:] for ln in resp.iter_lines() if ln.startswith("data: ")]
        assert payloads[-1] == "[DONE]"
        assert any('"server_error"' in p for p in payloads)
    finally:
        s.stop()
