"""What a node gets from the outside world: a clock, a random source, a transport, an executor.

Nothing in the node reads time or randomness, opens a socket or starts a thread except through a
:class:`Runtime`. The real runtime is the wall clock, ``random.SystemRandom`` (or a seeded
``random.Random``), aiohttp WebSockets and one worker thread; the fork lab's simulator passes a
virtual clock, a seeded random source, an in-memory transport and inline execution, and runs the
very same node code deterministically.

Transport contract (what :mod:`node.p2p` relies on):

- ``listen(address, accept)`` starts accepting connections at ``address`` ("host:port" for the
  real transport, any unique name in a simulation) and calls ``accept(conn)`` for each one; the
  returned :class:`Listener` stops accepting when closed.
- ``connect(address)`` opens a connection or raises :class:`TransportError`.
- A :class:`Connection` moves whole frames (bytes) in order; ``recv`` raises
  :class:`ConnectionClosed` once the peer or we closed it. Frames larger than the transport's
  ``max_frame`` are refused by the transport itself before they are buffered.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol, TypeVar

T = TypeVar("T")


class TransportError(Exception):
    """A connection could not be made or broke (not a protocol fault of the peer)."""


class ConnectionClosed(TransportError):  # noqa: N818 (the name websockets and aiohttp users know)
    """The connection is closed; no more frames will arrive."""


class Clock(Protocol):
    def time(self) -> float:
        """Seconds since the Unix epoch: block timestamps and ``now`` for the rules."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back: timeouts, rates, uptime."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class Connection(Protocol):
    @property
    def remote(self) -> str:
        """The peer's address as the transport knows it (for logs, bans and getpeerinfo)."""
        ...

    async def send(self, frame: bytes) -> None: ...

    async def recv(self) -> bytes: ...

    async def close(self) -> None: ...

    @property
    def closed(self) -> bool: ...


class Listener(Protocol):
    @property
    def address(self) -> str:
        """Where it listens, with the port resolved if 0 was asked for."""
        ...

    async def close(self) -> None: ...


AcceptCallback = Callable[[Connection], Awaitable[None]]


class Transport(Protocol):
    async def listen(self, address: str, accept: AcceptCallback) -> Listener: ...

    async def connect(self, address: str) -> Connection: ...

    async def close(self) -> None: ...


class Executor(Protocol):
    """Runs blocking work (SQLite, signature checks) off the event loop.

    The real one is a single worker thread, which also makes it the single owner of the chain
    state: every chain operation is serialised through it, so the chain needs no locks.
    """

    async def run(self, fn: Callable[[], T]) -> T: ...

    def close(self) -> None: ...


class SystemClock:
    """The wall clock and the loop's monotonic clock."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class ThreadExecutor:
    """One worker thread: blocking work leaves the event loop, and runs strictly in order."""

    def __init__(self, name: str = "forklab-chain") -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    async def run(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn)

    def close(self) -> None:
        self._pool.shutdown(wait=True)


class InlineExecutor:
    """Runs work on the calling task: deterministic, for the simulator and small tests."""

    async def run(self, fn: Callable[[], T]) -> T:
        return fn()

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class Runtime:
    clock: Clock
    rng: random.Random
    transport: Transport
    executor: Executor


def real_runtime(seed: int | None = None, *, max_frame: int | None = None) -> Runtime:
    """The runtime of a real node process: wall clock, OS randomness, aiohttp WebSockets.

    ``seed`` makes the node's own choices (peer selection, nonces) repeatable, never its keys.
    """
    # Imported here: node.p2p.transport implements the protocols above and imports this module.
    from node.p2p.transport import WebSocketTransport  # noqa: PLC0415

    rng: random.Random = random.SystemRandom() if seed is None else random.Random(seed)
    kwargs = {} if max_frame is None else {"max_frame": max_frame}
    return Runtime(SystemClock(), rng, WebSocketTransport(**kwargs), ThreadExecutor())
