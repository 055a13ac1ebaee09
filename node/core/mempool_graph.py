"""The pool's transaction graph: entries, their in-pool relatives, and the eviction order.

:class:`node.core.mempool.Mempool` decides *whether* a transaction may enter (policy and
consensus); this module keeps what is in: every entry with its in-pool parents and children and
the running totals of its ancestors and descendants (count, bytes, fees, itself included), the
outpoints pool transactions spend, and a heap ordered by *descendant score* that says what to
evict first. It is kept apart so the admission rules read without the bookkeeping, and the
bookkeeping can be checked on its own.

The totals stay exact because the graph only ever removes a transaction that has no in-pool
children (eviction and conflicts remove whole subtrees, leaves first) or no in-pool parents (a
block confirms parents before children); :meth:`PoolGraph.unlink` refuses anything else.

What this module does not do: check any rule (the caller has), report removals (it returns
them), or read a clock.
"""

from __future__ import annotations

import enum
import heapq
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from fractions import Fraction

from node.core.block import Block
from node.core.errors import ErrorCode, InternalError, RuleError
from node.core.tx import OutPoint, Transaction


class RemovalReason(enum.Enum):
    """Why a transaction left the pool (Bitcoin Core's ``MemPoolRemovalReason`` names)."""

    BLOCK = "block"
    """Confirmed by a connected block."""
    CONFLICT = "conflict"
    """A connected block spent one of its inputs (or an ancestor's) with another transaction."""
    SIZELIMIT = "sizelimit"
    """Evicted to make room for transactions paying a higher fee rate."""
    REORG = "reorg"
    """No longer valid after the chain changed: an input gone, an immature coinbase, non-final."""


@dataclass(frozen=True)
class Removal:
    tx: Transaction
    reason: RemovalReason
    detail: str = ""

    @property
    def txid(self) -> bytes:
        return self.tx.txid


@dataclass(frozen=True)
class MempoolEntry:
    """A transaction in the pool and the facts fixed when it entered."""

    tx: Transaction
    fee: int
    """Inputs minus outputs, in units."""
    time: int
    """The entry time the caller passed (0 if none): the pool itself reads no clock."""
    height: int
    """The chain height when it entered (the tip's, one below the block it was checked for)."""
    sequence: int
    """Order of admission, unique; iteration order of the pool. Renumbered after a reorg."""

    @property
    def txid(self) -> bytes:
        return self.tx.txid

    @property
    def size(self) -> int:
        return self.tx.size

    @property
    def fee_rate(self) -> Fraction:
        """Units per byte, exactly."""
        return Fraction(self.fee, self.tx.size)


class PoolNode:
    """An entry plus the mutable graph bookkeeping the pool keeps for it."""

    __slots__ = (
        "anc_count",
        "anc_fee",
        "anc_size",
        "children",
        "desc_count",
        "desc_fee",
        "desc_size",
        "entry",
        "parents",
        "version",
    )

    def __init__(self, entry: MempoolEntry, parents: set[bytes]) -> None:
        self.entry = entry
        self.parents = parents
        self.children: set[bytes] = set()
        size, fee = entry.tx.size, entry.fee
        self.anc_count, self.anc_size, self.anc_fee = 1, size, fee
        self.desc_count, self.desc_size, self.desc_fee = 1, size, fee
        # Set from the pool's counter whenever the descendant totals change: eviction heap
        # records of another version are stale and skipped. A pool-wide counter, so a record
        # left by an earlier stay of the same txid can never pass for a current one.
        self.version = 0

    @property
    def txid(self) -> bytes:
        return self.entry.tx.txid

    def descendant_score(self) -> Fraction:
        """The higher of its own fee rate and its package-with-descendants fee rate."""
        own = Fraction(self.entry.fee, self.entry.tx.size)
        return max(own, Fraction(self.desc_fee, self.desc_size))


# (descendant score, -sequence, txid, version): the lowest score first and, among equals, the
# newest first, so the first seen is the last evicted.
HeapRecord = tuple[Fraction, int, bytes, int]


class PoolGraph:
    """Entries by txid with their relatives, spent outpoints, totals and the eviction heap.

    Fields are read directly by the pool that owns it; only these methods change them, which
    keeps the running totals and the heap consistent with the entries.
    """

    def __init__(self) -> None:
        self.nodes: dict[bytes, PoolNode] = {}
        self.spenders: dict[OutPoint, bytes] = {}
        self.bytes = 0
        """Encoded bytes of every transaction held."""
        self.fees = 0
        self.heap: list[HeapRecord] = []
        self.next_sequence = 0
        self.next_version = 0
        self.revision = 0
        """Changes whenever the contents do."""

    def plan_eviction(self, node: PoolNode, max_bytes: int, increment: int) -> list[PoolNode]:
        """The subtrees to evict so ``node`` fits in ``max_bytes``, or RuleError ``mempool-full``.

        Every package displaced must score at least ``increment`` per byte below the newcomer
        (the pool's incremental relay fee).

        Bitcoin Core inserts first and then evicts by descendant score until the pool fits,
        refusing the newcomer if it is evicted itself. This decides the same without changing
        anything: the newcomer would go first if it, or one of its ancestors with it as a new
        descendant, scored lowest. Ancestors are never evicted for it (that would evict it);
        their score with the newcomer counts instead, so a child may pay for its parent to stay.
        Popped heap records are pushed back whatever happens.
        """
        entry = node.entry
        needed = self.bytes + entry.size - max_bytes
        if needed <= 0:
            return []
        if entry.size > max_bytes:
            raise RuleError(
                ErrorCode.MEMPOOL_FULL, f"{entry.size} bytes is more than the whole pool holds"
            )
        ancestors = self.ancestors_of(node.parents)
        # The lowest descendant score among the newcomer and its ancestors once it is in.
        guard = entry.fee_rate
        for ancestor in ancestors:
            with_newcomer = Fraction(ancestor.desc_fee + entry.fee, ancestor.desc_size + entry.size)
            guard = min(guard, max(ancestor.entry.fee_rate, with_newcomer))
        protected = {ancestor.txid for ancestor in ancestors}
        popped: list[HeapRecord] = []
        planned: set[bytes] = set()
        roots: list[PoolNode] = []
        freed = 0
        try:
            while freed < needed:
                record = self.pop_valid()
                if record is None:
                    raise RuleError(ErrorCode.MEMPOOL_FULL, "its own ancestors fill the pool")
                popped.append(record)
                score, _, txid, _ = record
                if txid in planned or txid in protected:
                    continue
                if guard <= score or guard < score + increment:
                    raise RuleError(
                        ErrorCode.MEMPOOL_FULL,
                        f"fee rate {float(guard):.3f} per byte (with its unconfirmed "
                        f"ancestors) does not beat {float(score):.3f} + {increment} "
                        "of what it would displace",
                    )
                victim = self.nodes[txid]
                roots.append(victim)
                for member in [victim, *self.descendants_of(victim)]:
                    if member.txid not in planned:
                        planned.add(member.txid)
                        freed += member.entry.size
        finally:
            for record in popped:
                heapq.heappush(self.heap, record)
        return roots

    def insert(self, node: PoolNode) -> None:
        entry = node.entry
        txid = entry.txid
        size, fee = entry.size, entry.fee
        for ancestor in self.ancestors_of(node.parents):
            node.anc_count += 1
            node.anc_size += ancestor.entry.size
            node.anc_fee += ancestor.entry.fee
            ancestor.desc_count += 1
            ancestor.desc_size += size
            ancestor.desc_fee += fee
            self.push(ancestor)
        for parent in node.parents:
            self.nodes[parent].children.add(txid)
        for txin in entry.tx.inputs:
            self.spenders[txin.prevout] = txid
        self.nodes[txid] = node
        self.bytes += size
        self.fees += fee
        self.next_sequence += 1
        self.revision += 1
        self.push(node)

    def unlink(self, node: PoolNode) -> None:
        """Take one entry out; it must have no in-pool children or no in-pool parents.

        Removing a transaction from the middle of a chain would cut its descendants off from
        their other ancestors, which the running totals cannot follow; no caller does that.
        """
        if node.children and node.parents:
            raise InternalError(f"removing {node.entry.tx.txid_hex} would split a chain")
        entry = node.entry
        txid, size, fee = entry.txid, entry.size, entry.fee
        for ancestor in self.ancestors_of(node.parents):
            ancestor.desc_count -= 1
            ancestor.desc_size -= size
            ancestor.desc_fee -= fee
            self.push(ancestor)
        for descendant in self.descendants_of(node):
            descendant.anc_count -= 1
            descendant.anc_size -= size
            descendant.anc_fee -= fee
        for parent in node.parents:
            self.nodes[parent].children.discard(txid)
        for child in node.children:
            self.nodes[child].parents.discard(txid)
        for txin in entry.tx.inputs:
            del self.spenders[txin.prevout]
        del self.nodes[txid]
        self.bytes -= size
        self.fees -= fee
        self.revision += 1

    def remove_subtree(self, root: PoolNode, reason: RemovalReason, detail: str) -> list[Removal]:
        """Remove ``root`` and all its descendants, children before parents."""
        members = sorted(
            [root, *self.descendants_of(root)], key=lambda n: n.entry.sequence, reverse=True
        )
        removed = []
        for member in members:
            self.unlink(member)
            why = detail if member is root else f"descends from {root.entry.tx.txid_hex}: {detail}"
            removed.append(Removal(member.entry.tx, reason, why))
        return removed

    def confirm(self, node: PoolNode, block: Block) -> list[Removal]:
        """Remove a confirmed entry, and first any in-pool ancestors: they are confirmed too."""
        members = sorted([*self.ancestors_of(node.parents), node], key=lambda n: n.entry.sequence)
        removed = []
        for member in members:
            self.unlink(member)
            removed.append(
                Removal(member.entry.tx, RemovalReason.BLOCK, f"in block {block.hash_hex}")
            )
        return removed

    def ancestors_of(self, txids: Iterable[bytes]) -> list[PoolNode]:
        """In-pool ancestors of transactions with these in-pool parents (parents included)."""
        return self._walk(txids, lambda node: node.parents)

    def descendants_of(self, node: PoolNode) -> list[PoolNode]:
        return self._walk(node.children, lambda child: child.children)

    def _walk(
        self, start: Iterable[bytes], edges: Callable[[PoolNode], Iterable[bytes]]
    ) -> list[PoolNode]:
        """Every node reachable from ``start`` along ``edges``, each once (no recursion)."""
        seen: set[bytes] = set()
        stack = list(start)
        found = []
        while stack:
            txid = stack.pop()
            if txid in seen:
                continue
            seen.add(txid)
            node = self.nodes[txid]
            found.append(node)
            stack.extend(edges(node))
        return found

    def clear(self) -> None:
        self.nodes.clear()
        self.spenders.clear()
        self.heap.clear()
        self.bytes = 0
        self.fees = 0
        self.revision += 1

    # -- the eviction order

    def push(self, node: PoolNode) -> None:
        self.next_version += 1
        node.version = self.next_version
        heapq.heappush(
            self.heap,
            (node.descendant_score(), -node.entry.sequence, node.txid, node.version),
        )
        # Every change pushes a record and leaves the old one stale; rebuild before the stale
        # ones outnumber the live ones.
        if len(self.heap) > 2 * len(self.nodes) + 1024:
            self.heap = [
                (n.descendant_score(), -n.entry.sequence, n.txid, n.version)
                for n in self.nodes.values()
            ]
            heapq.heapify(self.heap)

    def pop_valid(self) -> HeapRecord | None:
        """The live record of the lowest descendant score, or None if the pool is empty."""
        while self.heap:
            record = heapq.heappop(self.heap)
            node = self.nodes.get(record[2])
            if node is not None and node.version == record[3]:
                return record
        return None

    def trim(self, max_bytes: int) -> list[Removal]:
        """Evict the lowest descendant scores, whole subtrees, until at most ``max_bytes``."""
        removed: list[Removal] = []
        while self.bytes > max_bytes:
            record = self.pop_valid()
            if record is None:
                break
            removed += self.remove_subtree(
                self.nodes[record[2]], RemovalReason.SIZELIMIT, "the pool is over its size"
            )
        return removed
