"""The simulated wires: per-link latency, jitter, bandwidth, loss and partitions.

:class:`SimNetwork` extends the in-memory transport's :class:`~node.p2p.memory.MemoryNetwork`
(its listeners, addresses and cut links; whole frames, in order) with a link model close to
TCP over a real route, and connections of its own (see Delivery). Each direction of each pair
of hosts has a :class:`LinkSpec`:

==========  ============================================================================
latency     one-way propagation delay, seconds
jitter      an extra delay drawn uniformly from ``[0, jitter)`` per frame; a link is a
            stream, so a frame is still never delivered before the one sent ahead of it
bandwidth   bytes per second; a frame occupies the link for ``size / bandwidth`` seconds
            and frames queue behind each other (None: unlimited)
loss        probability that one transmission of a frame is lost; as in TCP the frame is
            sent again after a retransmission timeout, so loss costs time, never data
==========  ============================================================================

**Partitions** cut links as a firewall would: connections across the cut are reset at once
(both ends see the connection close) and new ones are refused until the cut is healed. A cut
that silently swallowed frames would leave a stream with a hole in it, which TCP never
delivers; a reset is what a node on a real network sees, and it then redials with its usual
backoff.

Every random draw comes from the one ``random.Random`` given to the network, in the order
frames are sent, so a seeded run is repeatable.

**Delivery.** A frame costs the receiver one wake-up: each direction of a connection (a
:class:`_Wire`) keeps its frames in flight in order, with at most one timer, set for the first
of them; at that time every frame due is moved to the receiver's queue and the reader is woken.
(The generic in-memory connection wakes its reader when a frame is sent and puts it to sleep
until the frame is due: twice the wake-ups, on the path every message of a simulation takes.)
The wires run on the event loop's time, which the network's clock must be (a
:class:`~node.lab.vtime.VirtualClock`'s ``monotonic`` is).

What this module does not do: interpret frames (it moves bytes), or decide the topology (the
simulation dials through the nodes' own configuration).
"""

from __future__ import annotations

import asyncio
import math
import random
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from node.p2p.memory import MemoryNetwork, MemoryTransport
from node.p2p.messages import MAX_FRAME_SIZE
from node.p2p.transport import FrameTooLarge, host_of
from node.runtime import AcceptCallback, Clock, Connection, ConnectionClosed, TransportError

MIN_RTO = 0.2
"""Linux's minimum TCP retransmission timeout, seconds; a lost frame costs at least this."""


@dataclass(frozen=True)
class LinkSpec:
    """How one direction of a link behaves (see the module docstring)."""

    latency: float = 0.05
    jitter: float = 0.0
    bandwidth: float | None = None
    loss: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.latency) and self.latency >= 0):
            raise ValueError(f"latency must be a finite number of seconds >= 0, not {self.latency}")
        if not (math.isfinite(self.jitter) and self.jitter >= 0):
            raise ValueError(f"jitter must be a finite number of seconds >= 0, not {self.jitter}")
        if self.bandwidth is not None and not (
            math.isfinite(self.bandwidth) and self.bandwidth > 0
        ):
            raise ValueError(f"bandwidth must be above 0 bytes per second, not {self.bandwidth}")
        if not 0 <= self.loss < 1:
            raise ValueError(f"loss must be a probability below 1, not {self.loss}")

    @property
    def retransmission_timeout(self) -> float:
        """What one lost transmission costs: a round trip, and at least MIN_RTO."""
        return max(MIN_RTO, 2 * self.latency)


class SimNetwork(MemoryNetwork):
    """A MemoryNetwork with the link model above; hosts are node names."""

    def __init__(
        self,
        clock: Clock,
        rng: random.Random,
        *,
        default_link: LinkSpec | None = None,
        max_frame: int = MAX_FRAME_SIZE,
    ) -> None:
        super().__init__(clock, max_frame=max_frame)
        self.rng = rng
        self.default_link = default_link if default_link is not None else LinkSpec()
        self._links: dict[tuple[str, str], LinkSpec] = {}
        self._busy_until: dict[tuple[str, str], float] = {}
        # Live connections by (dialling host, listening host), to reset them on a cut.
        self._live: dict[tuple[str, str], list[SimConnection]] = {}
        self._accepting: dict[asyncio.Future[None], None] = {}

    # -- links

    def transport(self, host: str) -> SimTransport:
        return SimTransport(self, host)

    def link(self, src: str, dst: str) -> LinkSpec:
        """The spec of the direction ``src`` -> ``dst``."""
        return self._links.get((src, dst), self.default_link)

    def set_link(self, a: str, b: str, spec: LinkSpec, *, both_ways: bool = True) -> None:
        """Set the link ``a`` -> ``b`` (and ``b`` -> ``a`` unless ``both_ways`` is False)."""
        self._links[(a, b)] = spec
        if both_ways:
            self._links[(b, a)] = spec

    def set_latency(self, a: str, b: str, seconds: float) -> None:
        """Change only the latency of the link between ``a`` and ``b``, both directions."""
        for src, dst in ((a, b), (b, a)):
            old = self.link(src, dst)
            self._links[(src, dst)] = LinkSpec(seconds, old.jitter, old.bandwidth, old.loss)

    def link_delay(self, src: str, dst: str, frame: bytes) -> float | None:
        if self.is_cut(src, dst):
            return None
        spec = self.link(src, dst)
        now = self.clock.monotonic()
        delay = spec.latency
        if spec.bandwidth is not None:
            start = max(now, self._busy_until.get((src, dst), now))
            done = start + len(frame) / spec.bandwidth
            self._busy_until[(src, dst)] = done
            delay += done - now
        if spec.jitter:
            delay += spec.jitter * self.rng.random()
        if spec.loss:
            while self.rng.random() < spec.loss:
                delay += spec.retransmission_timeout
        return delay

    # -- partitions

    def cut(self, a: str, b: str) -> None:
        super().cut(a, b)
        self.reset(a, b)

    def partition(self, *groups: list[str]) -> None:
        """Cut every link between hosts of different groups (hosts in no group keep theirs)."""
        super().partition(*groups)
        for i, group in enumerate(groups):
            for other in groups[i + 1 :]:
                for a in group:
                    for b in other:
                        self.reset(a, b)

    def isolate(self, host: str, others: Iterable[str]) -> None:
        """Cut ``host`` off from each of ``others``."""
        for other in others:
            if other != host:
                self.cut(host, other)

    # -- connections

    def reset(self, a: str, b: str) -> None:
        """Reset every live connection between hosts ``a`` and ``b``."""
        for pair in ((a, b), (b, a)):
            for conn in self._live.pop(pair, []):
                _reset(conn, f"connection reset: the link {pair[0]} - {pair[1]} is cut")

    def reset_host(self, host: str) -> None:
        """Reset every live connection of ``host`` (it crashed: its peers see the close)."""
        for pair in [p for p in self._live if host in p]:
            for conn in self._live.pop(pair, []):
                _reset(conn, f"connection reset: {host} is gone")

    def _track(self, dialer: str, conn: SimConnection) -> None:
        pair = (dialer, host_of(conn.remote))
        live = [c for c in self._live.get(pair, []) if not c.closed]
        live.append(conn)
        self._live[pair] = live

    async def _open(self, dialer: SimTransport, address: str) -> SimConnection:
        """Connect ``dialer`` to the listener at ``address``; its acceptor runs as a task."""
        entry = self._listeners.get(address)
        remote_host = host_of(address)
        if entry is None:
            raise TransportError(f"connection to {address} refused")
        if self.is_cut(dialer.host, remote_host):
            raise TransportError(f"{address} is unreachable")
        owner, accept = entry
        loop = asyncio.get_running_loop()
        forward, backward = _Wire(loop, self.window), _Wire(loop, self.window)
        ours = SimConnection(
            self,
            local_host=dialer.host,
            remote=address,
            remote_host=remote_host,
            inbox=backward,
            outbox=forward,
        )
        local_name = f"{dialer.host}:{next(self._ports)}"
        theirs = SimConnection(
            self,
            local_host=remote_host,
            remote=local_name,
            remote_host=dialer.host,
            inbox=forward,
            outbox=backward,
        )
        ours.peer_end, theirs.peer_end = theirs, ours
        if isinstance(owner, SimTransport):
            owner.opened.append(theirs)
        self._track(dialer.host, ours)
        # The acceptor runs as its own task, as a server's connection handler would.
        self._accept(accept, theirs)
        return ours

    def _accept(self, accept: AcceptCallback, conn: SimConnection) -> None:
        task = asyncio.ensure_future(accept(conn))
        # Held until done (the loop keeps only a weak reference); a dict, for a fixed order.
        self._accepting[task] = None
        task.add_done_callback(lambda done: self._accepting.pop(done, None))


class _Wire:
    """One direction of a connection: frames in flight in order, then frames arrived.

    At most one timer is set, for the first frame in flight; when it fires, every frame due
    moves to ``arrived`` and the reader wakes. ``window`` bounds the frames in flight and
    unread together (the role of a TCP window): a sender beyond it waits.
    """

    __slots__ = (
        "_arrived",
        "_closed",
        "_flight",
        "_last_at",
        "_loop",
        "_reader",
        "_timer",
        "_window",
        "_writer",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop, window: int) -> None:
        self._loop = loop
        self._window = window
        self._flight: deque[tuple[float, bytes]] = deque()
        self._arrived: deque[bytes] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._last_at = 0.0
        self._closed: ConnectionClosed | None = None
        self._reader: asyncio.Future[None] | None = None
        self._writer: asyncio.Future[None] | None = None

    async def put(self, delay: float, frame: bytes) -> None:
        """Send ``frame`` to arrive ``delay`` seconds from now (never before an earlier one)."""
        while len(self._flight) + len(self._arrived) >= self._window and self._closed is None:
            self._writer = self._loop.create_future()
            await self._writer
        if self._closed is not None:
            raise ConnectionClosed("connection closed")
        # A stream never reorders: a frame is not delivered before the one sent ahead of it.
        at = max(self._loop.time() + delay, self._last_at)
        self._last_at = at
        self._flight.append((at, frame))
        if self._timer is None:
            self._timer = self._loop.call_at(at, self._land)

    def _land(self) -> None:
        now = self._loop.time()
        flight = self._flight
        while flight and flight[0][0] <= now:
            self._arrived.append(flight.popleft()[1])
        self._timer = self._loop.call_at(flight[0][0], self._land) if flight else None
        _wake(self._reader)

    async def get(self) -> bytes:
        """The next frame that arrived; the close's error once none is left to arrive."""
        while not self._arrived:
            if self._closed is not None and not self._flight:
                raise self._closed
            self._reader = self._loop.create_future()
            await self._reader
        frame = self._arrived.popleft()
        _wake(self._writer)
        return frame

    def close(self, error: ConnectionClosed, *, discard: bool) -> None:
        """No more frames; ``discard`` drops those in flight and unread, else they still come."""
        if self._closed is None:
            self._closed = error
        if discard:
            self._flight.clear()
            self._arrived.clear()
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        _wake(self._reader)
        _wake(self._writer)


def _wake(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


class SimConnection:
    """One end of a simulated connection (the :class:`~node.runtime.Connection` a node uses)."""

    def __init__(
        self,
        network: SimNetwork,
        *,
        local_host: str,
        remote: str,
        remote_host: str,
        inbox: _Wire,
        outbox: _Wire,
    ) -> None:
        self._network = network
        self._local_host = local_host
        self._remote = remote
        self._remote_host = remote_host
        self._inbox = inbox
        self._outbox = outbox
        self._closed = False
        self.peer_end: SimConnection | None = None

    @property
    def remote(self) -> str:
        return self._remote

    @property
    def closed(self) -> bool:
        return self._closed

    async def send(self, frame: bytes) -> None:
        if self._closed:
            raise ConnectionClosed("connection closed")
        limit = self._network.max_frame
        if len(frame) > limit:
            # The receiving transport refuses an oversized frame and drops the connection.
            if self.peer_end is not None:
                self.peer_end.abort(FrameTooLarge(len(frame), limit))
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


class SimTransport(MemoryTransport):
    """A node's transport on a :class:`SimNetwork`: listening as in memory, connecting on
    :class:`_Wire` s, and registering what it dials so a cut can reset it."""

    network: SimNetwork

    def __init__(self, network: SimNetwork, host: str) -> None:
        super().__init__(network, host)
        self.opened: list[SimConnection] = []
        """Connections it dialled or accepted, closed with it."""

    async def connect(self, address: str) -> Connection:
        conn = await self.network._open(self, address)
        self.opened.append(conn)
        return conn

    async def close(self) -> None:
        for conn in self.opened:
            await conn.close()
        self.opened.clear()
        await super().close()


def _reset(conn: SimConnection, reason: str) -> None:
    conn.abort(ConnectionClosed(reason))
    if conn.peer_end is not None:
        conn.peer_end.abort(ConnectionClosed(reason))
