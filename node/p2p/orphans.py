"""Orphan transactions: held, bounded, until the transactions they spend arrive.

A transaction can arrive before its parent (relay paths race). The mempool refuses it with
``bad-txns-inputs-missingorspent``; the P2P layer keeps it here, asks the sender for the missing
parents, and retries it when a parent is accepted.

Bounds, so a peer cannot fill memory with transactions spending nothing: at most ``max_count``
orphans and ``max_tx_size`` bytes each; the oldest is dropped first (deterministic, unlike Bitcoin
Core's random eviction, so seeded simulations replay exactly), and an orphan older than
``expiry`` seconds is dropped by :meth:`OrphanPool.expire`. Orphans of a disconnected peer stay:
another peer may deliver the parent.
"""

from __future__ import annotations

from dataclasses import dataclass

from node.core.tx import Transaction

MAX_ORPHANS = 100
MAX_ORPHAN_SIZE = 100_000
ORPHAN_EXPIRY = 20 * 60.0


@dataclass(frozen=True)
class Orphan:
    tx: Transaction
    source: int
    """Id of the peer that sent it."""
    added: float
    """Monotonic time it arrived."""


class OrphanPool:
    def __init__(
        self,
        *,
        max_count: int = MAX_ORPHANS,
        max_tx_size: int = MAX_ORPHAN_SIZE,
        expiry: float = ORPHAN_EXPIRY,
    ) -> None:
        self.max_count = max_count
        self.max_tx_size = max_tx_size
        self.expiry = expiry
        self._orphans: dict[bytes, Orphan] = {}
        self._by_parent: dict[bytes, dict[bytes, None]] = {}

    def __len__(self) -> int:
        return len(self._orphans)

    def __contains__(self, txid: object) -> bool:
        return txid in self._orphans

    def add(self, tx: Transaction, source: int, now: float) -> bool:
        """Hold ``tx``; False if it is too large or already held."""
        if tx.txid in self._orphans or tx.size > self.max_tx_size:
            return False
        while len(self._orphans) >= self.max_count:
            self.remove(next(iter(self._orphans)))
        self._orphans[tx.txid] = Orphan(tx, source, now)
        for txin in tx.inputs:
            self._by_parent.setdefault(txin.prevout.txid, {})[tx.txid] = None
        return True

    def remove(self, txid: bytes) -> Orphan | None:
        orphan = self._orphans.pop(txid, None)
        if orphan is None:
            return None
        for txin in orphan.tx.inputs:
            children = self._by_parent.get(txin.prevout.txid)
            if children is not None:
                children.pop(txid, None)
                if not children:
                    del self._by_parent[txin.prevout.txid]
        return orphan

    def children_of(self, parent_txid: bytes) -> list[Orphan]:
        """Orphans spending an output of ``parent_txid``, oldest first (still held)."""
        children = self._by_parent.get(parent_txid, {})
        return [self._orphans[txid] for txid in children if txid in self._orphans]

    def oldest(self) -> float | None:
        """Arrival time of the oldest orphan (they are kept in arrival order)."""
        first = next(iter(self._orphans.values()), None)
        return first.added if first is not None else None

    def expire(self, now: float) -> int:
        old = [txid for txid, o in self._orphans.items() if now - o.added > self.expiry]
        for txid in old:
            self.remove(txid)
        return len(old)
