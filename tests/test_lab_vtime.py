"""The virtual-time loop: asyncio's own scheduling, with a clock that jumps instead of waiting.

* a day of sleeping takes (almost) no real time, and every sleeper wakes at its exact time;
* timers wake in time order, and equal times in the order they were set (FIFO), however many
  share a time (asyncio's own heap does not promise that): the order of a simulation is the
  order of its calls;
* a cancelled timer never runs, and a queue mostly of cancelled timers is compacted;
* the nodes' clock is the loop's: ``monotonic`` is virtual seconds, ``time`` adds the epoch and
  the node's own offset;
* a wait nothing can end is an error that says so, not a hang;
* a callback from another thread still runs (the loop never blocks in real time);
* tasks left running when the body returns are cancelled, and the loop is closed.
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from node.lab.errors import SimulationStalled
from node.lab.vtime import VirtualClock, VirtualTimeLoop, run_virtual


def test_a_day_of_sleep_takes_no_real_time_and_ends_on_the_second() -> None:
    async def body() -> float:
        await asyncio.sleep(86_400)
        return asyncio.get_running_loop().time()

    started = time.perf_counter()
    assert run_virtual(VirtualTimeLoop(), body()) == 86_400
    assert time.perf_counter() - started < 1.0


def test_timers_wake_in_time_order_and_ties_in_the_order_they_were_set() -> None:
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await asyncio.sleep(seconds)
        woke.append((name, asyncio.get_running_loop().time()))

    async def body() -> None:
        await asyncio.gather(
            sleeper("c", 3.0),
            sleeper("a", 1.0),
            sleeper("b1", 2.0),
            sleeper("b2", 2.0),
            sleeper("d", 2.5e6),
        )

    run_virtual(VirtualTimeLoop(), body())
    assert woke == [("a", 1.0), ("b1", 2.0), ("b2", 2.0), ("c", 3.0), ("d", 2.5e6)]


def test_hundreds_of_timers_at_one_time_run_in_the_order_they_were_set() -> None:
    order: list[int] = []

    async def body() -> None:
        loop = asyncio.get_running_loop()
        # Interleaved with earlier and later timers, so the heap really reshuffles.
        for i in range(500):
            loop.call_later(10.0, order.append, i)
            loop.call_later(5.0 + i % 7, lambda: None)
            loop.call_later(20.0 - i % 3, lambda: None)
        await asyncio.sleep(30)

    run_virtual(VirtualTimeLoop(), body())
    assert order == list(range(500))


def test_cancelled_timers_never_run_and_are_dropped_from_the_queue() -> None:
    ran: list[int] = []

    async def body() -> int:
        loop = asyncio.get_running_loop()
        timers = [loop.call_later(1.0 + i, ran.append, i) for i in range(1000)]
        for timer in timers:
            if timer.when() % 10:
                timer.cancel()
        await asyncio.sleep(0)  # one iteration: the queue is compacted
        assert isinstance(loop, VirtualTimeLoop)
        queued = len(loop._timers)
        await asyncio.sleep(2000)
        return queued

    queued = run_virtual(VirtualTimeLoop(), body())
    assert ran == list(range(9, 1000, 10))
    assert queued <= 101  # the 100 left and the sleep's own timer


def test_wait_for_times_out_on_virtual_time() -> None:
    async def body() -> float:
        loop = asyncio.get_running_loop()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.Event().wait(), timeout=30)
        return loop.time()

    assert run_virtual(VirtualTimeLoop(), body()) == 30


def test_the_clock_is_the_loops_time_plus_epoch_and_offset() -> None:
    async def body() -> tuple[float, float, float]:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, VirtualTimeLoop)
        clock = VirtualClock(loop, epoch=1_700_000_000.0, offset=-90.0)
        await clock.sleep(600)
        return clock.monotonic(), clock.time(), loop.time()

    assert run_virtual(VirtualTimeLoop(), body()) == (600.0, 1_700_000_000.0 - 90.0 + 600.0, 600.0)


def test_a_wait_that_nothing_can_end_is_reported_as_a_stall() -> None:
    async def body() -> None:
        await asyncio.Event().wait()

    with pytest.raises(SimulationStalled, match="cannot move"):
        run_virtual(VirtualTimeLoop(), body())


def test_a_callback_from_another_thread_runs() -> None:
    async def body() -> str:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[str] = loop.create_future()
        thread = threading.Thread(
            target=lambda: loop.call_soon_threadsafe(future.set_result, "from a thread")
        )
        thread.start()
        # Virtual time runs on while the thread starts; a long timer keeps the loop alive.
        keepalive = asyncio.ensure_future(asyncio.sleep(1e9))
        result = await future
        keepalive.cancel()
        thread.join()
        return result

    assert run_virtual(VirtualTimeLoop(), body()) == "from a thread"


def test_tasks_left_running_are_cancelled_and_the_loop_closed() -> None:
    cancelled = []
    loop = VirtualTimeLoop()

    async def forever() -> None:
        try:
            await asyncio.sleep(1e9)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    async def body() -> None:
        left_running = asyncio.ensure_future(forever())
        await asyncio.sleep(1)
        assert not left_running.done()

    run_virtual(loop, body())
    assert cancelled == [True]
    assert loop.is_closed()
