"""Where peers can be found and who is banned: the node's address book.

Addresses arrive from configuration (``--connect``, ``addnode``: *persistent*, always redialled),
from peers' version messages (their listen address) and from address gossip (``addr``). The book
is bounded; when full, the entry seen longest ago is forgotten (persistent ones never).

Redialling backs off exponentially per address (``base * 2^failures``, capped, with jitter from
the node's random source) so a dead address costs little and a network of nodes restarted
together does not reconnect in lockstep.

Bans are by host, except on loopback, where every devnet node shares 127.0.0.1: there the ban
is on the exact address, so banning a misbehaving local peer does not cut off the others.

Iteration order is insertion order everywhere (dicts, never sets), so the simulator's seeded runs
are repeatable whatever Python's hash seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from node.p2p.transport import host_of, is_loopback

MAX_ADDRESSES = 2000
BACKOFF_BASE = 1.0
BACKOFF_MAX = 300.0
MAX_BANS = 10_000


@dataclass
class AddressInfo:
    address: str
    last_seen: int
    """Unix time the address was last known good (from gossip or our own connection)."""
    persistent: bool = False
    failures: int = 0
    next_try: float = 0.0
    """Monotonic time before which we do not dial it again."""


def ban_key(address: str) -> str:
    host = host_of(address)
    return address if is_loopback(host) or host == address else host


class AddressBook:
    def __init__(self, rng: random.Random, *, max_addresses: int = MAX_ADDRESSES) -> None:
        self._rng = rng
        self._max = max_addresses
        self._entries: dict[str, AddressInfo] = {}
        self._bans: dict[str, float] = {}
        """ban key -> monotonic time the ban ends."""
        self.own_addresses: dict[str, None] = {}
        """Addresses found to be ourselves (self-connection): never dialled."""

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, address: object) -> bool:
        return address in self._entries

    def get(self, address: str) -> AddressInfo | None:
        return self._entries.get(address)

    def add(self, address: str, last_seen: int, *, persistent: bool = False) -> bool:
        """Record an address; returns whether it was new."""
        if not address or address in self.own_addresses:
            return False
        info = self._entries.get(address)
        if info is not None:
            info.last_seen = max(info.last_seen, last_seen)
            info.persistent = info.persistent or persistent
            return False
        if len(self._entries) >= self._max:
            evictable = [e for e in self._entries.values() if not e.persistent]
            if not evictable:
                return False
            oldest = min(evictable, key=lambda e: e.last_seen)
            del self._entries[oldest.address]
        self._entries[address] = AddressInfo(address, last_seen, persistent)
        return True

    def remove(self, address: str) -> None:
        self._entries.pop(address, None)

    def set_persistent(self, address: str, persistent: bool) -> None:
        info = self._entries.get(address)
        if info is not None:
            info.persistent = persistent

    def persistent(self) -> list[str]:
        return [e.address for e in self._entries.values() if e.persistent]

    def addresses(self) -> list[AddressInfo]:
        return list(self._entries.values())

    # -- dialling

    def mark_failed(self, address: str, now: float) -> None:
        info = self._entries.get(address)
        if info is None:
            return
        info.failures += 1
        delay = min(BACKOFF_MAX, BACKOFF_BASE * 2 ** min(info.failures - 1, 16))
        info.next_try = now + delay * (0.5 + self._rng.random())

    def mark_good(self, address: str, now: float, unix_now: int) -> None:
        info = self._entries.get(address)
        if info is None:
            return
        info.failures = 0
        info.next_try = now
        info.last_seen = max(info.last_seen, unix_now)

    def reset_backoff(self, addresses: list[str] | None = None) -> None:
        for info in self._entries.values():
            if addresses is None or info.address in addresses:
                info.next_try = 0.0

    def candidates(self, now: float, exclude: set[str]) -> list[str]:
        """Addresses worth dialling now: persistent ones first, then the rest shuffled."""
        ready = [
            e
            for e in self._entries.values()
            if e.next_try <= now and e.address not in exclude and not self.is_banned(e.address, now)
        ]
        persistent = [e.address for e in ready if e.persistent]
        others = [e.address for e in ready if not e.persistent]
        self._rng.shuffle(others)
        return persistent + others

    def next_try(self, now: float, exclude: set[str]) -> float | None:
        """The earliest time after ``now`` an address not in ``exclude`` may be dialled again
        (None: no address is waiting out a backoff)."""
        times = [
            e.next_try
            for e in self._entries.values()
            if e.next_try > now and e.address not in exclude and not self.is_banned(e.address, now)
        ]
        return min(times, default=None)

    def sample(self, count: int) -> list[AddressInfo]:
        """Up to ``count`` addresses to answer a getaddr with."""
        entries = list(self._entries.values())
        if len(entries) <= count:
            return entries
        return self._rng.sample(entries, count)

    # -- bans

    def ban(self, address: str, until: float) -> str:
        key = ban_key(address)
        self._bans[key] = max(until, self._bans.get(key, 0.0))
        if len(self._bans) > MAX_BANS:
            # A loopback attacker gets a new ban key per connection: forget the ban that
            # would end first rather than grow without bound.
            del self._bans[min(self._bans, key=self._bans.__getitem__)]
        return key

    def unban(self, key: str) -> bool:
        return self._bans.pop(key, None) is not None

    def clear_bans(self) -> None:
        self._bans.clear()

    def is_banned(self, address: str, now: float) -> bool:
        for key in (address, ban_key(address)):
            until = self._bans.get(key)
            if until is not None:
                if until > now:
                    return True
                del self._bans[key]
        return False

    def bans(self, now: float) -> dict[str, float]:
        """Ban key -> seconds left, for listbanned."""
        return {key: until - now for key, until in self._bans.items() if until > now}
