"""Virtual time: an asyncio event loop whose clock jumps instead of waiting.

The simulator runs real node code, which sleeps, times out and schedules through asyncio and the
injected :class:`~node.runtime.Clock`. Under :class:`VirtualTimeLoop` none of that waits: when
no callback is ready, the loop's selector is asked to wait ``timeout`` seconds for I/O (exactly
until the next timer is due), and instead of waiting it moves the clock forward by ``timeout``
and reports that nothing happened. An hour of network time with nothing to compute takes no
time at all; a busy second costs only the computing done in it.

Why a selector and not a rewritten ``_run_once``: the selector is the one place an asyncio loop
blocks, and :class:`asyncio.SelectorEventLoop` takes one as an argument, so the loop's own
scheduling (FIFO ready queue, timer heap) stays untouched and its order, which is deterministic
given the same sequence of calls, is the order of the simulation.

The simulation has no sockets: the selector only keeps the registrations asyncio makes (its
self-pipe) and never reports an event. A call from another thread or a signal handler
(``call_soon_threadsafe``) still runs, since the loop never blocks in real time. When nothing
is ready and no timer is left the simulation can never move again; :class:`SimulationStalled`
says so instead of hanging.

What this module does not do: know about nodes or networks, or run anything in threads.
"""

from __future__ import annotations

import asyncio
import math
import selectors
from collections.abc import Coroutine, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from node.lab.errors import SimulationStalled

if TYPE_CHECKING:
    from _typeshed import FileDescriptorLike

T = TypeVar("T")


class _VirtualSelector(selectors.BaseSelector):
    """Holds registrations, reports no I/O, and turns a wait into a jump of the clock."""

    def __init__(self) -> None:
        self.now = 0.0
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
        if timeout is None:
            raise SimulationStalled(
                "the simulation cannot move: nothing is ready and no timer is scheduled"
            )
        if timeout > 0:
            later = self.now + timeout
            # Far from zero a tiny timeout may not change a float: step to the next one, so
            # the timer asyncio waits for is always reached.
            self.now = later if later > self.now else math.nextafter(self.now, math.inf)
        return []

    def get_map(self) -> Mapping[FileDescriptorLike, selectors.SelectorKey]:
        return {key.fileobj: key for key in self._keys.values()}

    def close(self) -> None:
        self._keys.clear()


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop on virtual time, starting at 0.0 seconds."""

    def __init__(self) -> None:
        self._virtual = _VirtualSelector()
        super().__init__(self._virtual)

    def time(self) -> float:
        return self._virtual.now


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

    def time(self) -> float:
        return self.epoch + self.offset + self._loop.time()

    def monotonic(self) -> float:
        return self._loop.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def run_virtual(loop: VirtualTimeLoop, main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` to completion on ``loop``, then cancel what is left and close the loop.

    Tasks still running when ``main`` returns (a node's peers, say) are cancelled and awaited,
    as :func:`asyncio.run` does, so nothing is left pending and no warning is printed.
    """
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(main)
    finally:
        try:
            _cancel_all(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


def _cancel_all(loop: VirtualTimeLoop) -> None:
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    if not tasks:
        return
    for task in tasks:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
