"""Link control inside the node: partitions and latency on real sockets, without privileges.

``forklab devnet partition A,B C,D`` and ``latency A B MS`` must work on loopback as an ordinary
user, where no firewall or ``tc`` is at hand. So each node applies them to itself: it consults
its :class:`LinkPolicy` before it talks to a peer.

- A *blocked* address is a cut cable: the node drops its connections to that peer at once and
  refuses new ones, both ways, until unblocked. (Silently dropping frames instead would leave
  the connection slots full of dead peers until their pings time out.)
- A *latency* is one-way and applied by the sender: each outgoing frame to that peer is held
  until ``queued_at + latency`` on the node's clock, in order, so a link of 100 ms still carries
  many frames per 100 ms. Set it on both nodes for a symmetric round trip of twice the value.

A peer is matched by any of its names: the address we dialled, the listen address it declared in
its version message, and the transport's remote address. Use one spelling per node in the
devnet (e.g. ``127.0.0.1:PORT`` everywhere).

The simulator's in-memory network has its own, richer link model
(:meth:`node.p2p.memory.MemoryNetwork.link_delay`); both can be used at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable


class LinkPolicy:
    """Blocked addresses and per-peer latency; listeners hear about every change."""

    def __init__(self) -> None:
        self._blocked: dict[str, None] = {}
        self._latency: dict[str, float] = {}
        self._listeners: list[Callable[[], None]] = []

    def on_change(self, callback: Callable[[], None]) -> None:
        self._listeners.append(callback)

    def _changed(self) -> None:
        for callback in self._listeners:
            callback()

    # -- partitions

    def block(self, *addresses: str) -> None:
        for address in addresses:
            self._blocked[address] = None
        self._changed()

    def unblock(self, *addresses: str) -> None:
        for address in addresses:
            self._blocked.pop(address, None)
        self._changed()

    def heal(self) -> None:
        """Unblock everything (latencies stay)."""
        self._blocked.clear()
        self._changed()

    def blocked(self) -> tuple[str, ...]:
        return tuple(self._blocked)

    def is_blocked(self, names: Iterable[str]) -> bool:
        return any(name in self._blocked for name in names if name)

    # -- latency

    def set_latency(self, address: str, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("latency cannot be negative")
        if seconds == 0:
            self._latency.pop(address, None)
        else:
            self._latency[address] = seconds
        self._changed()

    def latency(self, names: Iterable[str]) -> float:
        """The largest latency set for any of the peer's names (0 if none)."""
        return max((self._latency.get(name, 0.0) for name in names if name), default=0.0)

    def latencies(self) -> dict[str, float]:
        return dict(self._latency)
