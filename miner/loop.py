"""The mining loop: work from a node, searched by a backend, solutions back to the node.

::

            fetch / next_change                 search_work (worker thread)
    source ─────────────────────▶  Miner  ───────────────────────────────────▶  backend
           ◀───────────────────── submit  ◀─────────────────────────── Solution

One unit of work at a time. Its search (:func:`miner.search.search_work`) runs on a worker
thread, so the event loop stays free for the node, and meanwhile the loop waits for the first
of three things:

* the search ends: a solution (submitted at once, its verdict reported, then fresh work), or
  every header of a getwork unit spent (a fresh unit);
* the source says the work is out of date (:meth:`WorkSource.next_change`: a long poll
  returning, a new-tip event): the search is told to stop, and stops at the end of the backend
  call under way, a fraction of a second; the time it took is reported as ``abandoned_after``;
* a stop (:meth:`Miner.stop`, the command's SIGINT/SIGTERM): the search stops the same way.

A node that cannot be reached, or is restarting, pauses the mining: the loop asks again every
``retry_seconds``, reports the outage once and its end once, and resumes on fresh work.

Each new unit of work starts at a random roll (extranonce), so two miners paying the same
address from the same node never search the same headers. The loop owns neither the source
nor the backend: whoever made them closes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from miner.backend import NONCE_SPACE, Backend
from miner.search import Meter, SearchResult, search_work
from miner.source import NodeUnavailableError, SourceInfo, Submission, WorkSource
from miner.status import (
    BlockFound,
    MinerEvent,
    NewWork,
    NodeState,
    Reporter,
    Started,
    Status,
    Stopped,
    WorkReason,
)
from miner.work import Solution, Work
from node.core.errors import ForklabError

DEFAULT_STATUS_INTERVAL = 10.0
RETRY_SECONDS = 1.0


class Miner:
    """Mines blocks from ``source`` with ``backend`` until :meth:`stop` (or ``blocks`` blocks).

    ``nonce_space`` (default 2^32) is how many nonces of each header are searched before the
    work rolls; ``roll_time=False`` keeps each template's time (repeatable searches); ``rng``
    chooses the first roll of each unit; ``status_interval`` is the period of status reports
    (None: none).
    """

    def __init__(
        self,
        source: WorkSource,
        backend: Backend,
        *,
        reporter: Reporter | None = None,
        nonce_space: int = NONCE_SPACE,
        roll_time: bool = True,
        rng: random.Random | None = None,
        status_interval: float | None = DEFAULT_STATUS_INTERVAL,
        retry_seconds: float = RETRY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 1 <= nonce_space <= NONCE_SPACE:
            raise ValueError(f"the nonce space is 1 to 2^32 nonces, got {nonce_space}")
        self.source = source
        self.backend = backend
        self.reporter = reporter
        self.nonce_space = nonce_space
        self.roll_time = roll_time
        self.rng = rng if rng is not None else random.Random()
        self.status_interval = status_interval
        self.retry_seconds = retry_seconds
        self.clock = clock
        self.meter = Meter(clock)
        self.accepted = 0
        self.rejected = 0
        self.work: Work | None = None
        """The work being searched, if any."""
        self.info: SourceInfo | None = None
        self._stop = asyncio.Event()
        self._outage: str | None = None

    def stop(self) -> None:
        """Stop soon: the search ends within one backend call. Call on the loop's thread
        (from another thread: ``loop.call_soon_threadsafe(miner.stop)``)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    async def run(self, *, blocks: int | None = None) -> Stopped:
        """Mine until stopped, or until ``blocks`` blocks were accepted; the summary. A miner
        runs once.

        ForklabError from the source's start (a wrong address, refused credentials) ends the
        run before any mining; an unreachable node is waited for.
        """
        started = self.clock()
        why = "stop"
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="forklab-miner")
        status = asyncio.create_task(self._report_status())
        try:
            self.info = await self._start()
            if self.info is not None:
                self._report(
                    Started(
                        self.info.protocol,
                        self.info.node,
                        self.info.network,
                        self.info.payout,
                        self.backend.name,
                        self.backend.device,
                    )
                )
                step = await self._fetch(WorkReason.START)
                while step is not None:
                    work, reason, abandoned = step
                    first_roll = self._take(work, reason, abandoned)
                    step = await self._mine(pool, work, first_roll, blocks)
                if blocks is not None and self.accepted >= blocks:
                    why = "blocks"
        finally:
            self._stop.set()
            status.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await status
            # The search has been told to stop; this waits for its last backend call.
            await asyncio.get_running_loop().run_in_executor(None, pool.shutdown)
        seconds = self.clock() - started
        summary = Stopped(
            round(seconds, 3),
            self.meter.total,
            self.meter.average(),
            self.accepted,
            self.rejected,
            why,
        )
        self._report(summary)
        return summary

    # -- one unit of work

    def _take(self, work: Work, reason: WorkReason, abandoned: float | None) -> int:
        """Make ``work`` the current work and report it; the roll its search starts from."""
        self.work = work
        first_roll = self.rng.randrange(work.rolls)
        event = NewWork(
            work.height,
            work.prev_hex,
            f"{work.bits:08x}",
            f"{work.target:064x}",
            reason,
            first_roll,
            None if abandoned is None else round(abandoned, 4),
        )
        self._report(event)
        return first_roll

    async def _mine(
        self, pool: ThreadPoolExecutor, work: Work, first_roll: int, blocks: int | None
    ) -> tuple[Work, WorkReason, float | None] | None:
        """Search ``work`` until something happens; the next work and why, or None to stop."""
        loop = asyncio.get_running_loop()
        stale = threading.Event()
        arrived = self.clock()

        def elapsed() -> int:
            return int(self.clock() - arrived) if self.roll_time else 0

        search = loop.run_in_executor(
            pool,
            functools.partial(
                search_work,
                work,
                self.backend,
                stop=stale.is_set,
                first_roll=first_roll,
                nonce_space=self.nonce_space,
                elapsed=elapsed,
                meter=self.meter,
            ),
        )
        change = asyncio.ensure_future(self.source.next_change(work))
        stopping = asyncio.ensure_future(self._stop.wait())
        abandoned: float | None = None
        try:
            waits: set[asyncio.Future[Any]] = {search, change, stopping}
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            if not search.done():
                stale.set()
                noticed = self.clock()
                await asyncio.wait({search})
                abandoned = self.clock() - noticed
            result: SearchResult = search.result()
        finally:
            stale.set()
            stopping.cancel()
            if not change.done():
                change.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await change
            with contextlib.suppress(asyncio.CancelledError):
                await stopping

        if result.solution is not None:
            await self.submit(work, result.solution)
            if self.stopping or (blocks is not None and self.accepted >= blocks):
                return None
            return await self._fetch(WorkReason.AFTER_BLOCK)
        if self.stopping:
            return None
        if change.done() and not change.cancelled():
            error = change.exception()
            if error is None:
                new = change.result()
                same_tip = new.prev_hash == work.prev_hash
                reason = WorkReason.NEW_TEMPLATE if same_tip else WorkReason.NEW_TIP
                return new, reason, abandoned
            if not isinstance(error, ForklabError):
                raise error
            self._lost(error)
            return await self._fetch(WorkReason.RECONNECTED)
        return await self._fetch(WorkReason.EXHAUSTED)

    async def submit(self, work: Work, solution: Solution) -> Submission:
        """Hand ``solution`` (of ``work``) to the node; count and report its verdict."""
        try:
            verdict = await self.source.submit(solution)
        except ForklabError as exc:
            verdict = Submission(False, f"not delivered: {exc}")
            self._lost(exc)
        if verdict.accepted:
            self.accepted += 1
        else:
            self.rejected += 1
        self._report(
            BlockFound(
                work.height,
                solution.hash_hex,
                verdict.accepted,
                verdict.reason,
                solution.roll,
                solution.header.nonce,
            )
        )
        return verdict

    # -- the node coming and going

    async def _start(self) -> SourceInfo | None:
        while True:
            try:
                info = await self.source.start()
            except NodeUnavailableError as exc:
                self._lost(exc)
                if await self._wait(self.retry_seconds):
                    return None
                continue
            self._back()
            return info

    async def _fetch(self, reason: WorkReason) -> tuple[Work, WorkReason, float | None] | None:
        """Fresh work, asked for until the node gives it; None if stopped meanwhile."""
        while not self.stopping:
            try:
                work = await self.source.fetch()
            except ForklabError as exc:
                self._lost(exc)
                reason = WorkReason.RECONNECTED
                if await self._wait(self.retry_seconds):
                    return None
                continue
            self._back()
            return work, reason, None
        return None

    def _lost(self, error: Exception) -> None:
        # Reported once per outage: the retries' own failures only repeat it in other words.
        if self._outage is None:
            self._outage = str(error)
            self._report(NodeState(False, self._outage))

    def _back(self) -> None:
        if self._outage is not None:
            self._outage = None
            self._report(NodeState(True, "mining again"))

    async def _wait(self, seconds: float) -> bool:
        """Sleep ``seconds``; True if a stop came first."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)
        return self.stopping

    # -- reports

    def _report(self, event: MinerEvent) -> None:
        if self.reporter is not None:
            self.reporter.report(event)

    def status(self) -> Status:
        work = self.work
        return Status(
            round(self.meter.rate(), 1),
            self.meter.total,
            self.accepted,
            self.rejected,
            work.height if work is not None else None,
            f"{work.bits:08x}" if work is not None else None,
            f"{work.target:064x}" if work is not None else None,
            round(self.clock() - self.meter.started, 3),
        )

    async def _report_status(self) -> None:
        interval = self.status_interval
        if interval is None or interval <= 0:
            return
        while not await self._wait(interval):
            self._report(self.status())
