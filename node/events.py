"""Typed node events and the bus that hands them to subscribers without ever waiting for one.

Events say what happened to the node, in the order it happened: a block connected or
disconnected, a block stored on a side branch, the tip moved (with the depth of the
reorganisation, if any), a transaction entered or left the mempool, a peer came or went. The
WebSocket event stream, long polling of ``getblocktemplate``, wallets and tests all read them
from here.

The bus never blocks the node: :meth:`EventBus.publish` is synchronous and each subscriber has
its own bounded queue. A subscriber that falls behind loses the events that do not fit, and is
told so in order: the next thing it reads after the loss is :class:`EventsLost` with the count,
followed by the events published once it had room again. Nothing is ever reordered.

What this module does not do: no persistence and no replay; a subscriber sees events published
after it subscribed.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from types import TracebackType

from node.core.block import Block
from node.core.tx import Transaction

DEFAULT_QUEUE = 1000


class Event:
    """Base of every event; ``kind`` is the stable name used by the event stream."""

    __slots__ = ()
    kind: str = "event"


@dataclass(frozen=True, slots=True)
class BlockConnected(Event):
    kind = "block_connected"
    block: Block
    height: int


@dataclass(frozen=True, slots=True)
class BlockDisconnected(Event):
    kind = "block_disconnected"
    block: Block
    height: int


@dataclass(frozen=True, slots=True)
class SideBlock(Event):
    """A valid block was stored off the active chain: a competing block (its chain has no more
    work than the tip, so the first-seen tip stays) or a block of a branch still behind.

    The node keeps it, so a later block on top can make its branch the best one; a fork is
    visible to anyone watching only because of this. Published once per block, when its chain
    becomes complete (the block and its ancestors all stored), never for a block that joined
    the active chain at once (that is :class:`BlockConnected`).
    """

    kind = "side_block"
    block: Block
    height: int
    fork_height: int
    """Height of the last block its branch shares with the active chain."""
    source: str
    """"local" (RPC, the miner) or the address of the peer that sent it."""


@dataclass(frozen=True, slots=True)
class NewTip(Event):
    """The active tip moved; ``reorg_depth`` blocks were disconnected on the way (0: none)."""

    kind = "new_tip"
    hash: bytes
    height: int
    previous_hash: bytes
    previous_height: int
    reorg_depth: int


@dataclass(frozen=True, slots=True)
class Reorg(Event):
    """The tip moved to another branch: ``depth`` blocks disconnected, ``connected`` connected."""

    kind = "reorg"
    old_tip: bytes
    new_tip: bytes
    fork_height: int
    depth: int
    connected: int


@dataclass(frozen=True, slots=True)
class TxAccepted(Event):
    kind = "tx_accepted"
    tx: Transaction
    fee: int
    source: str
    """"local" (RPC, wallet), "reorg" (back from a disconnected block) or a peer's address."""


@dataclass(frozen=True, slots=True)
class TxRemoved(Event):
    kind = "tx_removed"
    txid: bytes
    reason: str
    """Bitcoin Core's removal reasons: block, conflict, sizelimit, reorg."""


@dataclass(frozen=True, slots=True)
class PeerConnected(Event):
    kind = "peer_connected"
    peer_id: int
    address: str
    inbound: bool
    user_agent: str


@dataclass(frozen=True, slots=True)
class PeerDisconnected(Event):
    kind = "peer_disconnected"
    peer_id: int
    address: str
    reason: str


@dataclass(frozen=True, slots=True)
class EventsLost(Event):
    """This subscriber fell behind and ``count`` events were dropped here."""

    kind = "events_lost"
    count: int


class Subscription:
    """One subscriber's bounded queue; an async iterator and an async context manager."""

    def __init__(self, bus: EventBus, maxsize: int, kinds: frozenset[type[Event]] | None) -> None:
        if maxsize < 1:
            raise ValueError("a subscription holds at least one event")
        self._bus = bus
        self._maxsize = maxsize
        self._kinds = kinds
        self._queue: deque[Event] = deque()
        self._lost = 0
        self._ready = asyncio.Event()
        self.closed = False

    @property
    def lost(self) -> int:
        """Events dropped and not yet reported."""
        return self._lost

    def _offer(self, event: Event) -> None:
        if self.closed or (self._kinds is not None and type(event) not in self._kinds):
            return
        # Once events were lost, the notice goes in first, as soon as there is room for both.
        needed = 2 if self._lost else 1
        if len(self._queue) + needed > self._maxsize:
            self._lost += 1
            return
        if self._lost:
            self._queue.append(EventsLost(self._lost))
            self._lost = 0
        self._queue.append(event)
        self._ready.set()

    def get_nowait(self) -> Event | None:
        if self._queue:
            return self._queue.popleft()
        if self._lost:
            lost, self._lost = self._lost, 0
            return EventsLost(lost)
        return None

    async def get(self) -> Event:
        """The next event; raises asyncio.CancelledError if cancelled, EOFError once closed."""
        while True:
            event = self.get_nowait()
            if event is not None:
                return event
            if self.closed:
                raise EOFError("subscription closed")
            self._ready.clear()
            await self._ready.wait()

    def close(self) -> None:
        self.closed = True
        self._bus._unsubscribe(self)
        self._ready.set()

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        while True:
            try:
                yield await self.get()
            except EOFError:
                return

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class EventBus:
    """Fan-out of events to subscriptions; publishing never waits."""

    def __init__(self) -> None:
        self._subscriptions: list[Subscription] = []
        self.published = 0

    def subscribe(
        self, *, maxsize: int = DEFAULT_QUEUE, kinds: Iterable[type[Event]] | None = None
    ) -> Subscription:
        """A new subscription, optionally only to some event classes."""
        sub = Subscription(self, maxsize, frozenset(kinds) if kinds is not None else None)
        self._subscriptions.append(sub)
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        if sub in self._subscriptions:
            self._subscriptions.remove(sub)

    def publish(self, event: Event) -> None:
        self.published += 1
        for sub in list(self._subscriptions):
            sub._offer(event)

    def close(self) -> None:
        for sub in list(self._subscriptions):
            sub.close()
