"""server/app._Relay: scheduler-thread events reach each request's queue in order, waking the
event loop once per batch of events."""

from __future__ import annotations

import asyncio
import threading

import pytest

from tui_gen.engine.events import TokenEvent
from tui_gen.server.app import _relay


@pytest.mark.asyncio
async def test_events_put_together_wake_the_loop_once(monkeypatch: pytest.MonkeyPatch) -> None:
    relay = _relay()
    assert _relay() is relay  # one per event loop
    loop = asyncio.get_running_loop()
    wakes = []
    real = loop.call_soon_threadsafe

    def counting(cb, *a):  # type: ignore[no-untyped-def]
        wakes.append(cb)
        return real(cb, *a)

    monkeypatch.setattr(loop, "call_soon_threadsafe", counting)
    queues: list[asyncio.Queue] = [asyncio.Queue() for _ in range(3)]
    for i in range(30):  # a decode step's worth for three clients, before the loop runs
        relay.put(queues[i % 3], TokenEvent(i, str(i), i % 3))
    await asyncio.sleep(0)
    assert len(wakes) == 1
    for q, want in zip(queues, ([0, 3, 6], [1, 4, 7], [2, 5, 8])):
        got = [q.get_nowait().token_id for _ in range(10)]
        assert got[:3] == want and q.empty()


@pytest.mark.asyncio
async def test_events_from_another_thread_all_arrive_in_order() -> None:
    relay = _relay()
    queues: list[asyncio.Queue] = [asyncio.Queue() for _ in range(4)]
    n = 2000

    def scheduler() -> None:
        for i in range(n):
            relay.put(queues[i % 4], TokenEvent(i, "", i % 4))

    t = threading.Thread(target=scheduler)
    t.start()
    got: list[list[int]] = [[] for _ in queues]
    async with asyncio.timeout(20):
        for k, q in enumerate(queues):
            while len(got[k]) < n // 4:
                got[k].append((await q.get()).token_id)
    t.join()
    for k in range(4):
        assert got[k] == list(range(k, n, 4))
