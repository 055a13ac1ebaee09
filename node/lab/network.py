"""The simulated wires: per-link latency, jitter, bandwidth, loss and partitions.

:class:`SimNetwork` extends the in-memory transport's :class:`~node.p2p.memory.MemoryNetwork`
(its listeners, addresses, connections and cut links; whole frames, in order) through that
network's hooks: a link model close to TCP over a real route (``link_delay``), wires of its own
(``wire``, see Delivery), and a record of live connections (``connected``) for partitions. Each
direction of each pair of hosts has a :class:`LinkSpec`:

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
(The in-memory network's default wire wakes its reader when a frame is sent and puts it to
sleep until the frame is due: twice the wake-ups, on the path every message of a simulation
takes.)
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

from node.p2p.memory import MemoryConnection, MemoryNetwork, Wire
from node.p2p.messages import MAX_FRAME_SIZE
from node.p2p.transport import host_of
from node.runtime import Clock, ConnectionClosed

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
        self._live: dict[tuple[str, str], list[MemoryConnection]] = {}

    # -- links

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

    def wire(self) -> Wire:
        """A :class:`_Wire` on the running loop's timers (see Delivery)."""
        return _Wire(asyncio.get_running_loop(), self.window)

    def connected(self, dialer: str, conn: MemoryConnection) -> None:
        """Keep the dialling end ``conn`` among the live connections of its pair of hosts."""
        pair = (dialer, host_of(conn.remote))
        live = [c for c in self._live.get(pair, []) if not c.closed]
        live.append(conn)
        self._live[pair] = live


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


def _reset(conn: MemoryConnection, reason: str) -> None:
    conn.abort(ConnectionClosed(reason))
    if conn.peer_end is not None:
        conn.peer_end.abort(ConnectionClosed(reason))
