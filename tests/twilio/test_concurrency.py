"""The adaptive in-flight limit (workers.twilio.concurrency): its AIMD arithmetic, pure, and its queue
(FIFO, hand-off, cancellation) on a bare event loop. No Redis, no HTTP."""
from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workers.twilio.concurrency import AdaptiveLimit, Aimd

# --- the arithmetic ---------------------------------------------------------------------------

def test_starts_at_the_ceiling_with_floor_two_or_one() -> None:
    assert (Aimd(64).limit, Aimd(64).floor) == (64, 2)
    assert (Aimd(1).limit, Aimd(1).floor) == (1, 1)
    assert Aimd(2).floor == 2
    for bad in (dict(ceiling=0), dict(ceiling=4, floor=5), dict(ceiling=4, decrease=1.0)):
        with pytest.raises(ValueError):
            Aimd(**bad)


def test_additive_increase_is_one_per_limit_successes() -> None:
    a = Aimd(64, limit=10)
    assert [a.succeeded() for _ in range(10)] == [False] * 9 + [True]
    assert a.limit == 11
    assert [a.succeeded() for _ in range(11)] == [False] * 10 + [True]
    assert a.limit == 12


def test_increase_stops_at_the_ceiling() -> None:
    a = Aimd(4, limit=3)
    for _ in range(100):
        a.succeeded()
    assert a.limit == 4


def test_multiplicative_decrease_rounds_down_and_stops_at_the_floor() -> None:
    a = Aimd(64)
    seen = []
    while a.overloaded(a.epoch):
        seen.append(a.limit)
    assert seen == [48, 36, 27, 20, 15, 11, 8, 6, 4, 3, 2]
    assert a.limit == a.floor == 2 and a.decreases == len(seen)
    assert not a.overloaded(a.epoch) and a.limit == 2  # at the floor: nothing to lower


def test_one_decrease_per_window() -> None:
    """A 429 on a request that started before the last decrease is the same overload: ignored."""
    a = Aimd(64)
    started = a.epoch  # ten requests of one burst started in this epoch
    assert a.overloaded(started) is True and a.limit == 48
    assert [a.overloaded(started) for _ in range(9)] == [False] * 9
    assert a.limit == 48
    assert a.overloaded(a.epoch) is True and a.limit == 36  # a request started since: counts


def test_a_decrease_restarts_the_count_towards_the_next_increase() -> None:
    a = Aimd(64, limit=20)
    for _ in range(19):
        a.succeeded()
    a.overloaded(a.epoch)  # 20 → 15
    assert [a.succeeded() for _ in range(15)] == [False] * 14 + [True]
    assert a.limit == 16


@given(ceiling=st.integers(1, 500),
       events=st.lists(st.tuples(st.booleans(), st.integers(-2, 0)), max_size=400))
def test_limit_always_between_floor_and_ceiling(ceiling: int, events: list) -> None:
    a = Aimd(ceiling)
    for success, epoch_back in events:
        if success:
            a.succeeded()
        else:
            a.overloaded(a.epoch + epoch_back)
        assert a.floor <= a.limit <= ceiling


# --- the queue --------------------------------------------------------------------------------

def test_no_more_than_the_limit_at_once_and_waiters_served_fifo() -> None:
    async def main() -> tuple[list[int], int]:
        lim = AdaptiveLimit.with_ceiling(3)
        order: list[int] = []
        peak = 0
        gate = asyncio.Event()

        async def worker(i: int) -> None:
            nonlocal peak
            async with lim.slot() as slot:
                order.append(i)
                peak = max(peak, lim.inflight)
                if i < 3:
                    await gate.wait()
                slot.succeeded()

        tasks = []
        for i in range(10):
            tasks.append(asyncio.create_task(worker(i)))
            await asyncio.sleep(0)  # each task reaches acquire() in the order made
        assert lim.inflight == 3 and lim.waiting == 7
        gate.set()
        await asyncio.gather(*tasks)
        assert lim.inflight == 0
        return order, peak

    order, peak = asyncio.run(main())
    assert order == list(range(10))
    assert peak == 3


def test_a_freed_place_goes_to_the_oldest_waiter_not_a_newcomer() -> None:
    async def main() -> list[str]:
        lim = AdaptiveLimit.with_ceiling(1)
        got: list[str] = []
        first = await lim.acquire()

        async def take(name: str) -> None:
            slot = await lim.acquire()
            got.append(name)
            lim.release(slot)

        waiter = asyncio.create_task(take("waiter"))
        await asyncio.sleep(0)
        lim.release(first)            # handed to the waiter, which has not run yet…
        newcomer = asyncio.create_task(take("newcomer"))
        await asyncio.gather(waiter, newcomer)  # …so the newcomer queues behind it
        return got

    assert asyncio.run(main()) == ["waiter", "newcomer"]


def test_a_lowered_limit_admits_fewer_and_a_429_reports_the_decrease() -> None:
    async def main() -> None:
        lim = AdaptiveLimit.with_ceiling(8)
        slots = [await lim.acquire() for _ in range(8)]
        slots[0].overloaded()
        assert lim.release(slots[0]).decreased and lim.limit == 6
        slots[1].overloaded()  # same window: ignored
        assert not lim.release(slots[1]).decreased and lim.limit == 6
        for s in slots[2:4]:
            lim.release(s)  # neutral (neither success nor 429): no change
        assert lim.inflight == 4 and lim.limit == 6
        extra = [asyncio.create_task(lim.acquire()) for _ in range(4)]
        await asyncio.sleep(0)
        assert lim.inflight == 6 and lim.waiting == 2  # only up to the lowered limit
        for s in slots[4:]:
            lim.release(s)
        done = [await t for t in extra]
        assert lim.inflight == 4
        for s in done:
            lim.release(s)
        assert lim.inflight == 0

    asyncio.run(main())


def test_the_limit_grows_only_while_the_window_is_full() -> None:
    async def main() -> None:
        lim = AdaptiveLimit.with_ceiling(8)
        first = [await lim.acquire() for _ in range(8)]
        first[0].overloaded()
        lim.release(first[0])
        for s in first[1:]:
            lim.release(s)  # neutral
        assert lim.limit == 6
        # a quiet spell: one request at a time, each a success; no evidence of more room
        for _ in range(50):
            s = await lim.acquire()
            s.succeeded()
            lim.release(s)
        assert lim.limit == 6
        # a busy spell: five held and the sixth cycling, so every success ends at a full window
        held = [await lim.acquire() for _ in range(5)]
        for _ in range(6):
            s = await lim.acquire()
            s.succeeded()
            lim.release(s)
        for s in held:
            lim.release(s)
        assert lim.limit == 7

    asyncio.run(main())


def test_a_cancelled_waiter_gives_its_place_on() -> None:
    async def main() -> None:
        lim = AdaptiveLimit.with_ceiling(1)
        held = await lim.acquire()
        doomed = asyncio.create_task(lim.acquire())
        after = asyncio.create_task(lim.acquire())
        await asyncio.sleep(0)
        doomed.cancel()
        await asyncio.gather(doomed, return_exceptions=True)
        lim.release(held)
        slot = await asyncio.wait_for(after, 1)
        assert lim.inflight == 1
        lim.release(slot)
        # Granted, then cancelled before it ran: the place comes back.
        held = await lim.acquire()
        granted_then_cancelled = asyncio.create_task(lim.acquire())
        await asyncio.sleep(0)
        lim.release(held)
        granted_then_cancelled.cancel()
        await asyncio.gather(granted_then_cancelled, return_exceptions=True)
        assert lim.inflight == 0 and lim.waiting == 0

    asyncio.run(main())


def test_an_exception_inside_a_slot_frees_it_without_changing_the_limit() -> None:
    async def main() -> None:
        lim = AdaptiveLimit.with_ceiling(4)
        with pytest.raises(RuntimeError):
            async with lim.slot():
                raise RuntimeError("transport error")
        assert lim.inflight == 0 and lim.limit == 4

    asyncio.run(main())
