"""server/app._Relay: scheduler-thread events reach each request's queue in order, waking the
event loop once per batch of events; server/app._Inbox: a reader takes what has arrived."""

from __future__ import annotations

import asyncio
import threading

import pytest

from tui_gen.engine.events import TokenEvent
from tui_gen.server.app import _Inbox, _relay


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
async def test_an_inbox_hands_over_everything_that_arrived_and_times_out_empty() -> None:
    inbox = _Inbox()
    async with asyncio.timeout(5):
        assert await inbox.take(0.01) == []  # nothing came: the timeout ends the wait
        loop = asyncio.get_running_loop()
        loop.call_later(0.01, inbox.put_nowait, TokenEvent(1, "a", 0))
        assert [ev.token_id for ev in await inbox.take()] == [1]  # a put wakes the reader
        for i in range(3):
            inbox.put_nowait(TokenEvent(i, "", 0))
        assert [ev.token_id for ev in await inbox.take(0.01)] == [0, 1, 2]
        reader = asyncio.ensure_future(inbox.take())
        await asyncio.sleep(0)
        reader.cancel()  # a client that leaves while its stream waits
        with pytest.raises(asyncio.CancelledError):
            await reader
        inbox.put_nowait(TokenEvent(9, "", 0))  # no waiter left behind to resolve
        assert [ev.token_id for ev in await inbox.take()] == [9]


@pytest.mark.asyncio
async def test_events_from_another_thread_all_arrive_in_order_in_their_inboxes() -> None:
    relay = _relay()
    inboxes = [_Inbox(), _Inbox()]
    n = 2000

    def scheduler() -> None:
        for i in range(n):
            relay.put(inboxes[i % 2], TokenEvent(i, "", i % 2))

    t = threading.Thread(target=scheduler)
    t.start()
    got: list[list[int]] = [[], []]
    async with asyncio.timeout(20):
        for k, box in enumerate(inboxes):
            while len(got[k]) < n // 2:
                got[k] += [ev.token_id for ev in await box.take()]
    t.join()
    assert got == [list(range(0, n, 2)), list(range(1, n, 2))]
