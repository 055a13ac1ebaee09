"""The inner loop: one unit of work searched through a backend, a bounded range at a time.

:func:`search_work` walks the work's headers (its *rolls*: coinbase extranonces for a
template) and, for each, the nonce space, in ranges of :func:`chunk_size` nonces, one
:meth:`~miner.backend.Backend.search` call per range. Between two calls it asks ``stop()``; the
caller turns that on when the work goes stale or the miner stops. Since a call lasts about
:attr:`~miner.backend.Backend.preferred_count` nonces (a quarter of a second) or less, a stop
takes effect within that time, whatever the nonce space still ahead.

It blocks, by design: the asynchronous loop (:mod:`miner.loop`) runs it on a worker thread and
keeps its event loop for the node; the devnet's paced miner calls it directly. It reads no
clock of its own: the caller says how many seconds have passed (``elapsed``) when a new header
is built, which is what rolls the header's time.

:class:`Meter` counts the nonces searched, from the worker thread, for the status line.
"""

from __future__ import annotations

import enum
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from miner.backend import NONCE_SPACE, Backend
from miner.work import Solution, Work

MIN_CHUNK = 1024
"""Fewest nonces per backend call: on regtest a block takes about two hashes, and a range
this small costs no more than the call itself."""
BLOCKS_PER_CHUNK = 4
"""Chunks cover about this many blocks' worth of expected hashes on an easy target, so a
search does not run far past its first hit."""
RATE_WINDOW = 10.0
"""Seconds of history a :class:`Meter`'s rate is measured over."""


def chunk_size(target: int, preferred: int) -> int:
    """Nonces per backend call: the backend's preferred range, or less on an easy target."""
    expected = (1 << 256) // (target + 1)
    return max(MIN_CHUNK, min(preferred, BLOCKS_PER_CHUNK * expected))


class Outcome(enum.Enum):
    FOUND = "found"
    STOPPED = "stopped"
    """``stop()`` said so between two backend calls."""
    EXHAUSTED = "exhausted"
    """Every header of the work was searched (only getwork's single header gets here)."""


@dataclass(frozen=True)
class SearchResult:
    outcome: Outcome
    solution: Solution | None
    hashes: int
    """Nonces searched by this call."""
    rolls: int
    """Headers started (1 + the rolls made after spending a nonce space)."""


class Meter:
    """Nonces searched so far and the recent rate; safe to update from a worker thread."""

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, window: float = RATE_WINDOW
    ) -> None:
        self._clock = clock
        self._window = window
        self._lock = threading.Lock()
        self.started = clock()
        self.total = 0
        self._samples: deque[tuple[float, int]] = deque([(self.started, 0)])

    def add(self, hashes: int) -> None:
        with self._lock:
            self.total += hashes
            self._samples.append((self._clock(), self.total))

    def rate(self) -> float:
        """Nonces per second over the last ``window`` seconds (since start, if more recent)."""
        with self._lock:
            now = self._clock()
            # Keep the newest sample older than the window as the base of the measurement.
            while len(self._samples) > 1 and self._samples[1][0] <= now - self._window:
                self._samples.popleft()
            base_time, base_total = self._samples[0]
            span = now - base_time
            return (self.total - base_total) / span if span > 0 else 0.0

    def average(self) -> float:
        """Nonces per second since the meter was made."""
        span = self._clock() - self.started
        return self.total / span if span > 0 else 0.0


def search_work(
    work: Work,
    backend: Backend,
    *,
    stop: Callable[[], bool] = lambda: False,
    first_roll: int = 0,
    nonce_space: int = NONCE_SPACE,
    elapsed: Callable[[], int] = lambda: 0,
    meter: Meter | None = None,
) -> SearchResult:
    """Search ``work`` from roll ``first_roll`` on until a nonce meets its target.

    Each header is searched over nonces ``[0, nonce_space)``; then the next roll is taken
    (wrapping around after the last). ``nonce_space`` is 2^32 in real mining; a smaller one
    makes the work roll sooner (tests). The first nonce found wins: a block's worth of work is
    done, and the caller decides what to do with the rest of the work.
    """
    if not 1 <= nonce_space <= NONCE_SPACE:
        raise ValueError(f"the nonce space is 1 to 2^32 nonces, got {nonce_space}")
    rolls = work.rolls
    if not 0 <= first_roll < rolls:
        raise ValueError(f"first roll {first_roll} is outside 0..{rolls - 1}")
    hashes = 0
    for started in range(rolls):
        job = work.job((first_roll + started) % rolls, elapsed())
        start = 0
        while start < nonce_space:
            if stop():
                return SearchResult(Outcome.STOPPED, None, hashes, started + 1)
            # Asked at every call: a backend that measures itself (the CPU's first call also
            # starts its workers) keeps its calls short from the second one on.
            size = min(chunk_size(job.target, backend.preferred_count), nonce_space - start)
            found = backend.search(job.header, job.target, start, size)
            start += size
            hashes += size
            if meter is not None:
                meter.add(size)
            if found:
                solution = work.solution(job, found[0].nonce)
                return SearchResult(Outcome.FOUND, solution, hashes, started + 1)
    return SearchResult(Outcome.EXHAUSTED, None, hashes, rolls)
