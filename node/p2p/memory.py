"""An in-memory Transport: many nodes in one process, for tests and the fork-lab simulator.

Every node gets a :class:`MemoryTransport` from one shared :class:`MemoryNetwork`, which plays the
part of the wires. Addresses are plain names ("alice", or "alice:8333"); a node's outgoing
connections appear at the other end as ``"<its name>:<counter>"``, so a host (the part before the
colon) identifies the dialling node, as an IP address does on a real network.

Determinism: no threads and no wall clock. A frame sent at ``t`` is delivered at ``t + delay``
on the injected Clock, in the order it was sent (a link is a stream, as TCP is). The only
scheduling is asyncio's own, so a virtual-time event loop replays the same run exactly.

A subclass changes the network through three documented hooks, never its bookkeeping:

=========================  ===================================================================
``link_delay``             how long a frame takes on a link, or None to drop it. The default
                           gives per-link latency and cut links (a cut link silently drops
                           frames, as a black-holed route does, and refuses new connections).
``wire``                   one direction of a new connection (a :class:`Wire`): how frames
                           wait and wake their reader. The default sleeps the reader until a
                           frame is due on the Clock.
``connected``              told of each new connection, to keep what the subclass needs.
=========================  ===================================================================

The fork-lab simulator (``node.lab.network``) uses them for jitter, bandwidth, loss, wires on
the event loop's timers, and resetting connections across a cut.

What it does not do: no byte-level streaming and no partial frames; frames move whole.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from typing import Protocol

from node.p2p.messages import MAX_FRAME_SIZE
from node.p2p.transport import FrameTooLarge, host_of
from node.runtime import AcceptCallback, Clock, Connection, ConnectionClosed, TransportError

DEFAULT_WINDOW = 256
"""Frames a link buffers before the sender waits (the role of a TCP window)."""


class Wire(Protocol):
    """One direction of a connection, as :class:`MemoryConnection` drives it.

    A wire is a stream: frames arrive whole and in the order they were put, each no sooner
    than its delay. It holds a bounded number of frames (a TCP window's role), so a sender
    beyond it waits for the reader.
    """

    async def put(self, delay: float, frame: bytes) -> None:
        """Send ``frame`` to arrive ``delay`` seconds from now; ConnectionClosed once closed."""
        ...

    async def get(self) -> bytes:
        """The next frame, once due; the close's error when none is left to come."""
        ...

    def close(self, error: ConnectionClosed, *, discard: bool) -> None:
        """No more frames; ``discard`` drops those not yet read, else they still arrive."""
        ...


class _Pipe:
    """The default :class:`Wire`: a bounded FIFO of (deliver_at, frame) on a Clock; the
    reader takes a frame when it is sent and sleeps until it is due."""

    def __init__(self, clock: Clock, capacity: int) -> None:
        self._clock = clock
        self._items: deque[tuple[float, bytes]] = deque()
        self._capacity = capacity
        self._closed: ConnectionClosed | None = None
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()
        self._last_at = 0.0

    async def put(self, delay: float, frame: bytes) -> None:
        at = self._clock.monotonic() + delay
        while len(self._items) >= self._capacity and self._closed is None:
            self._writable.clear()
            await self._writable.wait()
        if self._closed is not None:
            raise ConnectionClosed("connection closed")
        # A stream never reorders: a frame is not delivered before the one sent ahead of it.
        self._last_at = max(at, self._last_at)
        self._items.append((self._last_at, frame))
        self._readable.set()

    async def get(self) -> bytes:
        while not self._items:
            if self._closed is not None:
                raise self._closed
            self._readable.clear()
            await self._readable.wait()
        at, frame = self._items.popleft()
        self._writable.set()
        wait = at - self._clock.monotonic()
        if wait > 0:
            await self._clock.sleep(wait)
        return frame

    def close(self, error: ConnectionClosed, *, discard: bool) -> None:
        if self._closed is None:
            self._closed = error
        if discard:
            self._items.clear()
        self._readable.set()
        self._writable.set()


class MemoryConnection:
    """One end of an in-memory connection (the :class:`~node.runtime.Connection` a node uses):
    it sends on one wire and reads the other."""

    def __init__(
        self,
        network: MemoryNetwork,
        *,
        local_host: str,
        remote: str,
        remote_host: str,
        inbox: Wire,
        outbox: Wire,
    ) -> None:
        self._network = network
        self._local_host = local_host
        self._remote = remote
        self._remote_host = remote_host
        self._inbox = inbox
        self._outbox = outbox
        self._closed = False
        self.peer_end: MemoryConnection | None = None

    @property
    def remote(self) -> str:
        return self._remote

    @property
    def closed(self) -> bool:
        return self._closed

    async def send(self, frame: bytes) -> None:
        if self._closed:
            raise ConnectionClosed("connection closed")
        if len(frame) > self._network.max_frame:
            # The receiving transport refuses an oversized frame and drops the connection.
            if self.peer_end is not None:
                self.peer_end.abort(FrameTooLarge(len(frame), self._network.max_frame))
            self.abort(ConnectionClosed("frame too large for the peer"))
            raise ConnectionClosed("frame too large for the peer")
        delay = self._network.link_delay(self._local_host, self._remote_host, frame)
        if delay is not None:
            await self._outbox.put(delay, frame)

    async def recv(self) -> bytes:
        return await self._inbox.get()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # Frames already sent still arrive at the other end, then it sees the close.
        self._outbox.close(ConnectionClosed("closed by the peer"), discard=False)
        self._inbox.close(ConnectionClosed("connection closed"), discard=True)
        if self.peer_end is not None:
            self.peer_end._closed = True

    def abort(self, error: ConnectionClosed) -> None:
        """Drop the connection at once, with ``error`` for whoever reads next."""
        self._closed = True
        self._inbox.close(error, discard=True)
        self._outbox.close(error, discard=True)


class MemoryListener:
    def __init__(self, network: MemoryNetwork, address: str) -> None:
        self._network = network
        self._address = address

    @property
    def address(self) -> str:
        return self._address

    async def close(self) -> None:
        self._network._listeners.pop(self._address, None)


class MemoryTransport:
    """One node's view of a :class:`MemoryNetwork`; ``host`` names it to the others."""

    def __init__(self, network: MemoryNetwork, host: str) -> None:
        self.network = network
        self.host = host
        self._connections: list[MemoryConnection] = []

    async def listen(self, address: str, accept: AcceptCallback) -> MemoryListener:
        return self.network._listen(self, address, accept)

    async def connect(self, address: str) -> Connection:
        conn = await self.network._connect(self, address)
        self._connections.append(conn)
        return conn

    async def close(self) -> None:
        for conn in self._connections:
            await conn.close()
        self._connections.clear()
        for address, (owner, _accept) in list(self.network._listeners.items()):
            if owner is self:
                self.network._listeners.pop(address, None)


class MemoryNetwork:
    """The wires between MemoryTransports: listeners by address, latency and cut links."""

    def __init__(
        self, clock: Clock, *, max_frame: int = MAX_FRAME_SIZE, window: int = DEFAULT_WINDOW
    ) -> None:
        self.clock = clock
        self.max_frame = max_frame
        self.window = window
        """Frames one direction of a connection holds before its sender waits."""
        self._listeners: dict[str, tuple[MemoryTransport, AcceptCallback]] = {}
        self._latency: dict[tuple[str, str], float] = {}
        self._cut: set[tuple[str, str]] = set()
        self._ports = itertools.count(40000)
        self._tasks: dict[asyncio.Future[None], None] = {}
        """Accepting tasks in flight, in order (a set's order would depend on addresses)."""

    def transport(self, host: str) -> MemoryTransport:
        return MemoryTransport(self, host)

    # -- link control (the simulator overrides link_delay for more)

    def set_latency(self, a: str, b: str, seconds: float) -> None:
        """One-way delay between hosts ``a`` and ``b``, both directions."""
        self._latency[(a, b)] = self._latency[(b, a)] = seconds

    def cut(self, a: str, b: str) -> None:
        self._cut.add((a, b))
        self._cut.add((b, a))

    def restore(self, a: str, b: str) -> None:
        self._cut.discard((a, b))
        self._cut.discard((b, a))

    def partition(self, *groups: list[str]) -> None:
        """Cut every link between hosts of different groups."""
        for i, group in enumerate(groups):
            for other in groups[i + 1 :]:
                for a in group:
                    for b in other:
                        self.cut(a, b)

    def heal(self) -> None:
        self._cut.clear()

    def is_cut(self, src: str, dst: str) -> bool:
        return (src, dst) in self._cut

    def link_delay(self, src: str, dst: str, frame: bytes) -> float | None:
        """Seconds until ``frame`` from host ``src`` reaches ``dst``, or None to drop it."""
        if (src, dst) in self._cut:
            return None
        return self._latency.get((src, dst), 0.0)

    # -- connections (a subclass overrides wire and connected)

    def wire(self) -> Wire:
        """A new direction of a connection, holding up to ``window`` frames."""
        return _Pipe(self.clock, self.window)

    def connected(self, dialer: str, conn: MemoryConnection) -> None:
        """Told of each new connection, by its dialling end and host, before its acceptor
        runs. The default keeps nothing."""

    def _listen(
        self, owner: MemoryTransport, address: str, accept: AcceptCallback
    ) -> MemoryListener:
        if address.endswith(":0"):
            address = f"{address[:-2]}:{next(self._ports)}"
        if address in self._listeners:
            raise TransportError(f"address {address} is already in use")
        self._listeners[address] = (owner, accept)
        return MemoryListener(self, address)

    async def _connect(self, dialer: MemoryTransport, address: str) -> MemoryConnection:
        entry = self._listeners.get(address)
        remote_host = host_of(address)
        if entry is None:
            raise TransportError(f"connection to {address} refused")
        if self.is_cut(dialer.host, remote_host):
            raise TransportError(f"{address} is unreachable")
        owner, accept = entry
        forward, backward = self.wire(), self.wire()
        ours = MemoryConnection(
            self,
            local_host=dialer.host,
            remote=address,
            remote_host=remote_host,
            inbox=backward,
            outbox=forward,
        )
        local_name = f"{dialer.host}:{next(self._ports)}"
        theirs = MemoryConnection(
            self,
            local_host=remote_host,
            remote=local_name,
            remote_host=dialer.host,
            inbox=forward,
            outbox=backward,
        )
        ours.peer_end, theirs.peer_end = theirs, ours
        owner._connections.append(theirs)
        self.connected(dialer.host, ours)
        # The acceptor runs as its own task, as a server's connection handler would.
        task = asyncio.ensure_future(accept(theirs))
        self._tasks[task] = None
        task.add_done_callback(lambda done: self._tasks.pop(done, None))
        return ours
