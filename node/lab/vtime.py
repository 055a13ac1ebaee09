"""Virtual time: an asyncio event loop whose clock jumps instead of waiting.

The simulator runs real node code, which sleeps, times out and schedules through asyncio and the
injected :class:`~node.runtime.Clock`. Under :class:`VirtualTimeLoop` none of that waits: when
no callback is ready, the clock jumps to the next timer. An hour of network time with nothing
to compute takes no time at all; a busy second costs only the computing done in it.

The loop is asyncio's own (tasks, futures, exception handling, shutdown) with its scheduling
core replaced: ``call_soon``, ``call_at`` and one iteration (``_run_once``). That core is the
simulator's innermost loop (about 20 callbacks per node per block), so it is written for
speed, and its order is defined exactly:

- callbacks made ready run in the order they were made ready (FIFO), as in asyncio;
- timers run in time order, and timers due at the same time in the order they were set (FIFO,
  by a sequence number). asyncio's heap leaves the order of equal times to the heap's shape;
  here it is part of the contract, because a simulation's order is its result;
- a timer runs at exactly its time: the clock jumps to it, never past it.

The simulation has no sockets: the selector only keeps the registrations asyncio makes (its
self-pipe) and is never waited on. A call from another thread (``call_soon_threadsafe``)
still runs, since the loop never blocks in real time. When nothing is ready and no timer is
left the simulation can never move again; :class:`SimulationStalled` says so instead of hanging.

The core relies on three attributes of :class:`asyncio.BaseEventLoop` that have kept their
meaning since Python 3.7: ``_ready`` (the FIFO of handles), ``_stopping`` and ``_closed``; and
on handles' ``_cancelled`` and ``_run()``. ``tests/test_lab_vtime.py`` pins the behaviour.
In debug mode (``loop.set_debug(True)``) ``call_soon`` keeps asyncio's checks.

What this module does not do: know about nodes or networks, or run anything in threads.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import heapq
import itertools
import selectors
from collections import deque
from collections.abc import Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, TypeVarTuple, Unpack

from node.lab.errors import SimulationStalled

if TYPE_CHECKING:
    from _typeshed import FileDescriptorLike

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

_COMPACT_AFTER = 100
"""Cancelled timers (at least this many, and half the queue) that make the queue rebuilt."""


class _NoIOSelector(selectors.BaseSelector):
    """Holds the registrations asyncio makes and reports no I/O; never waited on."""

    def __init__(self) -> None:
        self._keys: dict[int, selectors.SelectorKey] = {}

    def register(
        self, fileobj: FileDescriptorLike, events: int, data: Any = None
    ) -> selectors.SelectorKey:
        fd = fileobj if isinstance(fileobj, int) else fileobj.fileno()
        if fd in self._keys:
            raise KeyError(f"{fileobj!r} is already registered")
        key = selectors.SelectorKey(fileobj, fd, events, data)
        self._keys[fd] = key
        return key

    def unregister(self, fileobj: FileDescriptorLike) -> selectors.SelectorKey:
        fd = fileobj if isinstance(fileobj, int) else fileobj.fileno()
        return self._keys.pop(fd)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        return []

    def get_map(self) -> Mapping[FileDescriptorLike, selectors.SelectorKey]:
        return {key.fileobj: key for key in self._keys.values()}

    def close(self) -> None:
        self._keys.clear()


class _Handle(asyncio.Handle):
    """asyncio's Handle, made without asking the loop whether it is in debug mode."""

    __slots__ = ()

    def __init__(
        self,
        callback: Callable[..., object],
        args: tuple[Any, ...],
        loop: asyncio.AbstractEventLoop,
        context: contextvars.Context | None,
    ) -> None:
        self._context = context if context is not None else contextvars.copy_context()
        self._loop = loop
        self._callback = callback
        self._args = args
        self._cancelled = False
        self._repr = None
        self._source_traceback = None


class _Timer(asyncio.TimerHandle):
    """asyncio's TimerHandle, made the same way (``cancel`` tells the loop, as asyncio's does)."""

    __slots__ = ()

    def __init__(
        self,
        when: float,
        callback: Callable[..., object],
        args: tuple[Any, ...],
        loop: asyncio.AbstractEventLoop,
        context: contextvars.Context | None,
    ) -> None:
        self._context = context if context is not None else contextvars.copy_context()
        self._loop = loop
        self._callback = callback
        self._args = args
        self._cancelled = False
        self._repr = None
        self._source_traceback = None
        self._when = when
        self._scheduled = False


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop on virtual time, starting at 0.0 seconds (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__(_NoIOSelector())
        self._now = 0.0
        self._timers: list[tuple[float, int, asyncio.TimerHandle]] = []
        """A heap of (when, sequence number, timer): equal times pop in the order set."""
        self._sequence = itertools.count()
        self._cancelled_timers = 0

    def time(self) -> float:
        return self._now

    def call_soon(
        self,
        callback: Callable[[Unpack[Ts]], object],
        *args: *Ts,
        context: contextvars.Context | None = None,
    ) -> asyncio.Handle:
        if self._debug:  # type: ignore[attr-defined]
            return super().call_soon(callback, *args, context=context)
        if self._closed:  # type: ignore[attr-defined]
            raise RuntimeError("Event loop is closed")
        handle = _Handle(callback, args, self, context)
        self._ready.append(handle)  # type: ignore[attr-defined]
        return handle

    def call_at(
        self,
        when: float,
        callback: Callable[[Unpack[Ts]], object],
        *args: *Ts,
        context: contextvars.Context | None = None,
    ) -> asyncio.TimerHandle:
        if self._closed:  # type: ignore[attr-defined]
            raise RuntimeError("Event loop is closed")
        timer = _Timer(float(when), callback, args, self, context)
        heapq.heappush(self._timers, (timer._when, next(self._sequence), timer))
        timer._scheduled = True
        return timer

    def _timer_handle_cancelled(self, handle: asyncio.TimerHandle) -> None:
        if handle._scheduled:  # type: ignore[attr-defined]
            self._cancelled_timers += 1

    def _run_once(self) -> None:
        """Run what is ready; if nothing is, first jump to the next timer and make it ready."""
        ready: deque[asyncio.Handle] = self._ready  # type: ignore[attr-defined]
        timers = self._timers
        if self._cancelled_timers > _COMPACT_AFTER and 2 * self._cancelled_timers > len(timers):
            self._compact_timers()
        while timers and timers[0][2]._cancelled:
            heapq.heappop(timers)[2]._scheduled = False  # type: ignore[attr-defined]
            self._cancelled_timers -= 1
        if not ready and not self._stopping:  # type: ignore[attr-defined]
            if not timers:
                raise SimulationStalled(
                    "the simulation cannot move: nothing is ready and no timer is scheduled"
                )
            self._now = max(self._now, timers[0][0])
        now = self._now
        while timers and timers[0][0] <= now:
            timer = heapq.heappop(timers)[2]
            timer._scheduled = False  # type: ignore[attr-defined]
            ready.append(timer)  # a cancelled one is skipped below
        # Callbacks these make ready wait for the next iteration, as in asyncio.
        for _ in range(len(ready)):
            handle = ready.popleft()
            if not handle._cancelled:
                handle._run()

    def _compact_timers(self) -> None:
        kept = []
        for entry in self._timers:
            if entry[2]._cancelled:
                entry[2]._scheduled = False  # type: ignore[attr-defined]
            else:
                kept.append(entry)
        heapq.heapify(kept)
        self._timers = kept
        self._cancelled_timers = 0

    def close(self) -> None:
        super().close()
        self._timers.clear()


class VirtualClock:
    """The node's :class:`~node.runtime.Clock` on a virtual-time loop.

    ``time()`` is ``epoch + offset`` plus the loop's time: every node shares one virtual
    "now", and ``offset`` lets a scenario give one node a wrong wall clock. ``monotonic()`` is
    the loop's time itself, so timeouts measured on it and timers scheduled by asyncio agree.
    """

    def __init__(self, loop: VirtualTimeLoop, epoch: float, offset: float = 0.0) -> None:
        self._loop = loop
        self.epoch = epoch
        self.offset = offset
        # Nodes read it millions of times a run: the loop's own method, one call instead of two.
        self.monotonic: Callable[[], float] = loop.time

    def time(self) -> float:
        return self.epoch + self.offset + self._loop.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


GC_THRESHOLDS = (20_000, 20, 10)
"""The cyclic garbage collector's thresholds while a virtual loop runs (Python's: 700, 10, 10).

A simulation makes millions of short-lived objects (handles, futures, frames, messages) over
a large long-lived heap (every node's chain); with Python's 700 the collector runs every few
hundred callbacks and traces survivors again and again. Refcounting frees almost all of them
anyway. Measured: 100 nodes spent about 9% of their time collecting; at 20,000 under 1%
(5.5 s of 12 minutes for 100 nodes and 1,000 blocks, ``bench/simulation.py``)."""


def run_virtual(loop: VirtualTimeLoop, main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` to completion on ``loop``, then cancel what is left and close the loop.

    Tasks still running when ``main`` returns (a node's peers, say) are cancelled and awaited,
    as :func:`asyncio.run` does, so nothing is left pending and no warning is printed. The
    garbage collector runs at :data:`GC_THRESHOLDS` meanwhile, and as before afterwards.
    """
    asyncio.set_event_loop(loop)
    thresholds = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        return loop.run_until_complete(main)
    finally:
        try:
            _cancel_all(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            gc.set_threshold(*thresholds)
            asyncio.set_event_loop(None)
            loop.close()


def _cancel_all(loop: VirtualTimeLoop) -> None:
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    if not tasks:
        return
    for task in tasks:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
