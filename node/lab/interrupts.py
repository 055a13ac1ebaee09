"""Stopping a simulation from another thread: a watcher thread and interruptible parts.

The virtual-time loop never blocks, so it cannot wait for a :class:`threading.Event` set by
another thread (the dashboard's stop button, Ctrl-C). :class:`StopWatch` runs a small thread
while the simulation runs that looks at the event every :data:`STOP_POLL` real seconds and, once
it is set, hands the loop a call (``call_soon_threadsafe``). That call is
:meth:`Interrupter.interrupt`: it cancels the task inside the interruptible part under way (the
set-up or a step), and :meth:`Interrupter.part` absorbs exactly that cancellation, so a run
ends with its steps marked stopped instead of an exception. Nothing is added to the simulation
before the event is set, so a run's trace digest is the same with or without a ``stop``.

What this module does not do: decide what a stopped run reports (:mod:`node.lab.runner_sim`
and :mod:`node.lab.outcome` do).
"""

from __future__ import annotations

import asyncio
import threading
import types
from collections.abc import Callable

STOP_POLL = 0.05
"""Real seconds between two looks at the ``stop`` event by the thread that watches it."""


class StopWatch:
    """While the simulation runs, a thread that hands ``interrupt`` to its loop once ``stop``
    is set (the loop cannot wait for a thread's event itself; it never blocks)."""

    def __init__(self, stop: threading.Event | None, interrupt: Callable[[], None]) -> None:
        self._stop = stop
        self._interrupt = interrupt
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    async def __aenter__(self) -> None:
        if self._stop is not None:
            loop = asyncio.get_running_loop()
            self._thread = threading.Thread(
                target=self._watch, args=(self._stop, loop), name="forklab-sim-stop", daemon=True
            )
            self._thread.start()

    async def __aexit__(self, *_exc: object) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()

    def _watch(self, stop: threading.Event, loop: asyncio.AbstractEventLoop) -> None:
        # Waits on the run's end, looking at ``stop`` between: the end wakes it at once.
        while not self._done.wait(STOP_POLL):
            if stop.is_set():
                loop.call_soon_threadsafe(self._interrupt)
                return


class Interrupter:
    """Whether a run was stopped, and the task of the interruptible part under way."""

    def __init__(self) -> None:
        self.stopped = False
        self._task: asyncio.Task[object] | None = None

    def interrupt(self) -> None:
        """On the loop: the run is stopped; cancel the part under way, if any."""
        self.stopped = True
        if self._task is not None:
            self._task.cancel("the run was stopped")

    def part(self) -> Part:
        """A context for the set-up or a step: :meth:`interrupt` cancels it, and the
        cancellation ends there (``happened`` says so); any other cancellation goes on."""
        return Part(self)


class Part:
    """One interruptible part of a run (see :meth:`Interrupter.part`)."""

    def __init__(self, owner: Interrupter) -> None:
        self.owner = owner
        self.happened = False

    def __enter__(self) -> Part:
        self.owner._task = asyncio.current_task()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> bool:
        task, self.owner._task = self.owner._task, None
        self.happened = self.owner.stopped
        if not self.happened or task is None:
            return False
        if task.cancelling():
            task.uncancel()  # the interrupt's cancellation, delivered (or swallowed on the way)
        return exc_type is asyncio.CancelledError
