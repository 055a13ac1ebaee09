"""One connected peer: its frames in and out, its handshake, and what we know about it.

A peer has exactly two tasks: the *reader* (owned by the peer manager, which decodes and handles
one message at a time, so a peer's messages are handled in order) and the *writer* here, which
drains a bounded send buffer. :meth:`Peer.send` never waits: a peer that does not read fast
enough to keep its buffer under ``max_send_bytes`` is disconnected, so a slow or stuck peer can
never stall the node or its other peers.

Latency imposed by the :class:`~node.p2p.links.LinkPolicy` is applied here, frame by frame on
the way out: each frame leaves at ``queued_at + latency``, so the delay pipelines instead of
adding up.

What this module does not do: it makes no decision about relay or sync (see
:mod:`node.p2p.manager`) and never touches the chain.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections import Counter, deque
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TypeVar

from node.core.header import BlockHeader
from node.p2p.known import InventoryFilter
from node.p2p.links import LinkPolicy
from node.p2p.messages import (
    MAX_INV_ITEMS,
    Inv,
    InvItem,
    Message,
    Version,
    decode_message,
)
from node.runtime import Clock, Connection, ConnectionClosed

T = TypeVar("T")

FLUSH_SECONDS = 2.0
"""How long a peer being disconnected with a reason is given to read it."""

KNOWN_INVENTORY = 20_000
"""Hashes remembered at least per peer as known to it (announced by or to it); older ones are
forgotten a generation at a time (:mod:`node.p2p.known`)."""


class Direction(enum.Enum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class TokenBucket:
    """``rate`` tokens a second up to ``burst``: the per-peer rate limits."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._stamp = now

    def take(self, now: float, count: float = 1.0) -> bool:
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._tokens < count:
            return False
        self._tokens -= count
        return True


async def with_timeout(clock: Clock, seconds: float, awaitable: Awaitable[T]) -> T:
    """Await ``awaitable`` for at most ``seconds`` on the injected clock (TimeoutError after).

    ``asyncio.wait_for`` would use the event loop's own time, which a simulator with virtual
    time may not drive; the injected clock is the one time source the node trusts.
    """
    work = asyncio.ensure_future(awaitable)
    timer = asyncio.ensure_future(clock.sleep(seconds))
    try:
        done, _pending = await asyncio.wait({work, timer}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        work.cancel()
        timer.cancel()
        raise
    timer.cancel()
    if work in done:
        return work.result()
    work.cancel()
    try:
        await work
    except asyncio.CancelledError:
        # The work's own cancellation is expected; ours (the caller cancelled while we waited
        # for the work to wind down) must go on, or a cancelled caller would carry on.
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
    except Exception:  # its failure no longer matters: it ran out of time
        pass
    raise TimeoutError(f"no answer within {seconds} s")


@dataclass(frozen=True)
class PeerInfo:
    """A snapshot of one peer for getpeerinfo and the events stream."""

    id: int
    address: str
    """The address we dialled (outbound) or the transport's remote address (inbound)."""
    inbound: bool
    listen_address: str
    user_agent: str
    protocol_version: int
    start_height: int
    best_known_height: int
    ping_seconds: float | None
    connected_seconds: float
    bytes_sent: int
    bytes_received: int
    messages_sent: int
    messages_received: int
    misbehaviour: int
    blocks_in_flight: int
    compact: bool
    high_bandwidth_to: bool
    """We asked this peer to push new blocks as cmpctblock."""
    high_bandwidth_from: bool
    """This peer asked us to push new blocks as cmpctblock."""
    sent_per_msg: dict[str, int]
    received_per_msg: dict[str, int]


class Peer:
    """A connection and everything the node tracks about the peer at its other end."""

    def __init__(
        self,
        peer_id: int,
        conn: Connection,
        direction: Direction,
        *,
        dialed: str | None,
        clock: Clock,
        policy: LinkPolicy,
        max_send_bytes: int,
        max_frame: int,
        salt: int,
    ) -> None:
        """``salt``: a random 64-bit number for the inventory filter (from the node's random
        source, so a seeded simulation replays)."""
        self.id = peer_id
        self.conn = conn
        self.direction = direction
        self.dialed = dialed
        self.clock = clock
        self.policy = policy
        self.max_send_bytes = max_send_bytes
        self.max_frame = max_frame
        self.connected_at = clock.monotonic()

        self.version: Version | None = None
        self.verack_received = False
        self.handshake_done = False
        self.close_reason = ""
        self.misbehaviour = 0

        # -- what it knows and what we asked of it
        self.known = InventoryFilter(KNOWN_INVENTORY, salt)
        self.best_known_hash: bytes | None = None
        self.best_known_work = 0
        self.best_known_height = 0
        self.blocks_in_flight: dict[bytes, float] = {}
        self.txs_in_flight: dict[bytes, float] = {}
        self.headers_requests = 0
        self.headers_polled_at = self.connected_at
        self.presync: list[BlockHeader] = []
        self.compact = False
        self.high_bandwidth_from = False
        self.high_bandwidth_to = False
        self.answered_getaddr = False
        self.stalls = 0
        self.timed_out: dict[bytes, None] = {}
        """Blocks this peer failed to deliver in time: asked of other peers from then on."""

        # -- liveness
        self.ping_nonce: int | None = None
        self.ping_sent_at = 0.0
        self.ping_seconds: float | None = None
        self.last_received = self.connected_at

        # -- counters
        self.bytes_sent = 0
        self.bytes_received = 0
        self.messages_sent = 0
        self.messages_received = 0
        self.sent_per_msg: Counter[str] = Counter()
        """Messages sent, by msgtype (getpeerinfo's bytessent_per_msg counts these)."""
        self.received_per_msg: Counter[str] = Counter()

        # -- the send side
        self._outbox: deque[tuple[float, bytes]] = deque()
        self._outbox_bytes = 0
        self._wakeup = asyncio.Event()
        self._drained = asyncio.Event()
        self._pending_inv: dict[InvItem, None] = {}
        self._closing = False
        self._closed_event = asyncio.Event()
        self.writer: asyncio.Future[None] | None = None
        self._watchdog: asyncio.Future[None] | None = None
        self.reader: asyncio.Task[None] | None = None

    # -- identity

    @property
    def inbound(self) -> bool:
        return self.direction is Direction.INBOUND

    @property
    def address(self) -> str:
        return self.dialed if self.dialed is not None else self.conn.remote

    @property
    def listen_address(self) -> str:
        return self.version.listen_address if self.version is not None else ""

    @property
    def names(self) -> tuple[str, ...]:
        """Every name the peer goes by, for bans and the link policy."""
        return tuple(name for name in (self.dialed, self.listen_address, self.conn.remote) if name)

    def __repr__(self) -> str:
        return f"<peer {self.id} {self.direction.value} {self.address}>"

    @property
    def closing(self) -> bool:
        return self._closing

    # -- inventory known to the peer

    def add_known(self, item_hash: bytes) -> None:
        self.known.add(item_hash)

    def knows(self, item_hash: bytes) -> bool:
        return item_hash in self.known

    # -- sending

    def start_writer(self) -> None:
        self.writer = asyncio.ensure_future(self._write_loop())

    def send(self, message: Message) -> None:
        """Queue a message; never waits. A peer whose backlog overflows is disconnected."""
        if self._closing:
            return
        frame = message.encode()
        if len(frame) > self.max_frame:
            raise ValueError(f"{message.msgtype} of {len(frame)} bytes exceeds the frame limit")
        self._outbox.append((self.clock.monotonic(), frame))
        self._outbox_bytes += len(frame)
        self.messages_sent += 1
        self.sent_per_msg[message.msgtype] += 1
        if self._outbox_bytes > self.max_send_bytes:
            self.close("send buffer overflow: the peer does not read")
            return
        self._wakeup.set()

    async def wait_writable(self) -> None:
        """Wait until the send backlog is under half its limit (flow control for big replies)."""
        while self._outbox_bytes > self.max_send_bytes // 2 and not self._closing:
            self._drained.clear()
            await self._drained.wait()

    def queue_inv(self, item: InvItem, *, now: bool = False) -> None:
        """Announce ``item`` in the next inv this peer gets.

        Announcements are batched: they leave when :meth:`flush_inv` is called (the manager
        does, every tick) or with the next message that must go ``now`` (blocks do), so a
        burst of transactions costs one inv per peer instead of one each.
        """
        if self._closing or item.hash in self.known:
            return
        self.add_known(item.hash)
        self._pending_inv[item] = None
        if now:
            self.flush_inv()

    @property
    def has_pending_inv(self) -> bool:
        return bool(self._pending_inv)

    def flush_inv(self) -> None:
        if not self._pending_inv or self._closing:
            return
        items = list(self._pending_inv)
        self._pending_inv.clear()
        for start in range(0, len(items), MAX_INV_ITEMS):
            self.send(Inv(tuple(items[start : start + MAX_INV_ITEMS])))

    async def _write_loop(self) -> None:
        try:
            while True:
                if not self._outbox:
                    if self._closing:
                        return
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                queued_at, frame = self._outbox[0]
                latency = self.policy.latency(self.names)
                if latency > 0:
                    wait = queued_at + latency - self.clock.monotonic()
                    if wait > 0:
                        await self.clock.sleep(wait)
                        continue  # the backlog may have been dropped meanwhile: look again
                self._outbox.popleft()
                self._outbox_bytes -= len(frame)
                if self._outbox_bytes <= self.max_send_bytes // 2:
                    self._drained.set()
                await self.conn.send(frame)
                self.bytes_sent += len(frame)
        except ConnectionClosed as exc:
            self.close(f"send failed: {exc}")
        finally:
            await self._shutdown()

    # -- receiving

    async def recv(self) -> Message:
        """The next message; DecodeError for a bad frame, ConnectionClosed at the end."""
        frame = await self.conn.recv()
        self.bytes_received += len(frame)
        self.messages_received += 1
        self.last_received = self.clock.monotonic()
        message = decode_message(frame, self.max_frame)
        self.received_per_msg[message.msgtype] += 1
        return message

    # -- closing

    def close(self, reason: str, *, flush: bool = False) -> None:
        """Disconnect; the writer closes the connection.

        What is queued is dropped, unless ``flush``: then it is still sent (a reject telling
        the peer why), for at most FLUSH_SECONDS, so a peer that does not read cannot hold the
        connection open.
        """
        if self._closing:
            return
        self._closing = True
        self.close_reason = reason
        if flush:
            self._watchdog = asyncio.ensure_future(self._close_after(FLUSH_SECONDS))
        else:
            self._outbox.clear()
            self._outbox_bytes = 0
        self._pending_inv.clear()
        self._wakeup.set()
        self._drained.set()
        if self.writer is None:
            self.writer = asyncio.ensure_future(self._shutdown())

    async def _close_after(self, seconds: float) -> None:
        await self.clock.sleep(seconds)
        self._outbox.clear()
        if self.writer is not None:
            self.writer.cancel()
        await self._shutdown()

    async def _shutdown(self) -> None:
        if self._closed_event.is_set():
            return
        self._closing = True
        if not self.close_reason:
            self.close_reason = "closed"
        with contextlib.suppress(Exception):
            await self.conn.close()
        self._closed_event.set()
        if self._watchdog is not None and not self._watchdog.done():
            self._watchdog.cancel()

    async def wait_closed(self) -> None:
        await self._closed_event.wait()

    def info(self) -> PeerInfo:
        version = self.version
        return PeerInfo(
            id=self.id,
            address=self.address,
            inbound=self.inbound,
            listen_address=self.listen_address,
            user_agent=version.user_agent if version else "",
            protocol_version=version.protocol_version if version else 0,
            start_height=version.best_height if version else 0,
            best_known_height=self.best_known_height,
            ping_seconds=self.ping_seconds,
            connected_seconds=self.clock.monotonic() - self.connected_at,
            bytes_sent=self.bytes_sent,
            bytes_received=self.bytes_received,
            messages_sent=self.messages_sent,
            messages_received=self.messages_received,
            misbehaviour=self.misbehaviour,
            blocks_in_flight=len(self.blocks_in_flight),
            compact=self.compact,
            high_bandwidth_to=self.high_bandwidth_to,
            high_bandwidth_from=self.high_bandwidth_from,
            sent_per_msg=dict(self.sent_per_msg),
            received_per_msg=dict(self.received_per_msg),
        )
