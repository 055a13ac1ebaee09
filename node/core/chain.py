"""The block index tree and the choice of the best chain, by cumulative work.

Glossary
--------
entry
    One :class:`BlockEntry` per known header: its place in the tree (parent, height), the work
    of the chain ending at it, and what we know about it (:class:`BlockStatus`).
chain work
    Sum of :func:`~node.core.header.block_work` over the entry and all its ancestors: the
    expected number of hashes it took to build that chain. The best chain is the one with the
    most work, never the longest one (a long chain of easy blocks must not win).
linked
    The entry and all its ancestors have their block data, so the chain ending at it could be
    connected right now (Bitcoin Core's ``nChainTx != 0``). Headers-first sync adds headers long
    before their blocks arrive, and blocks may arrive out of order.
candidate
    A linked entry, not known to be invalid, with at least the work of the active tip: a chain
    we might switch to. The best candidate has the most work; among equal work the one linked
    first (lowest ``seq``) wins, so a node does not flip between equal tips.
active chain
    The chain whose blocks are connected to the UTXO set, indexed by height (:class:`ActiveChain`).
orphan block
    A block whose parent header is unknown; held in :class:`~node.core.orphans.OrphanBlocks`
    until the parent arrives.

Headers that fail their own checks (proof of work, bits, time) never enter the tree: refusing
them again costs nothing, and adding them would let anyone fill the index with cheap junk, as
Bitcoin Core reasons too. A header that passed but whose block broke a rule is *marked* invalid
(``FAILED``) and so are all its descendants (``FAILED_CHILD``), so neither is ever fetched or
accepted again, until :meth:`BlockTree.reconsider` (``reconsiderblock``) clears them.

The entries themselves, their status flags and the walks along a branch (ancestors by skip
list, the common ancestor of two entries, locators) are in :mod:`node.core.blockentry`; they
are re-exported here.

What this module deliberately does not do: it validates nothing (the rules are in
:mod:`node.core.validation`), touches no UTXO set and no storage. It is a pure data structure;
:mod:`node.chainstate` drives it and persists every change it reports.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from node.core.blockentry import (
    _FAILED,
    _FAILED_CHILD,
    _FAILED_MASK,
    _HAVE_DATA,
    _VALID,
    FAILED_MASK,
    BlockEntry,
    BlockStatus,
    branch_between,
    last_common_ancestor,
    locator_for,
)
from node.core.header import BlockHeader, block_work
from node.core.params import MEDIAN_TIME_SPAN, NetworkParams

__all__ = [
    "FAILED_MASK",
    "ActiveChain",
    "BlockEntry",
    "BlockStatus",
    "BlockTree",
    "ChainTip",
    "TipStatus",
    "branch_between",
    "last_common_ancestor",
    "locator_for",
]


class TipStatus(enum.Enum):
    """The status of a branch tip, spelled as bitcoind's ``getchaintips`` spells it."""

    ACTIVE = "active"
    """The tip of the active chain."""
    VALID_FORK = "valid-fork"
    """Fully validated (connected once), but not on the active chain."""
    VALID_HEADERS = "valid-headers"
    """Every block of the branch is here, but the tip was never connected."""
    HEADERS_ONLY = "headers-only"
    """Some block of the branch is missing: only its headers are known."""
    INVALID = "invalid"
    """The branch holds a block that broke a rule."""


@dataclass(frozen=True)
class ChainTip:
    """One row of ``getchaintips``."""

    height: int
    hash: bytes
    branch_len: int
    """Blocks from the fork point with the active chain to the tip (0 for the active tip)."""
    status: TipStatus


class BlockTree:
    """Every known header in a tree rooted at genesis, with the candidates for the best chain.

    Each method that changes entries returns the entries it changed, so the owner can persist
    exactly those.
    """

    def __init__(self, genesis: BlockHeader) -> None:
        self._work_by_bits: dict[int, int] = {}
        root = BlockEntry(genesis, None, self._work(genesis.bits))
        root._status = _HAVE_DATA | _VALID
        root.linked = True
        root.seq = 0
        self.genesis = root
        self._index: dict[bytes, BlockEntry] = {root.hash: root}
        self._tips: dict[BlockEntry, None] = {root: None}
        """Entries without children, in the order they became tips (a set's order would
        depend on memory addresses; a seeded simulation must replay exactly)."""
        self._candidates: set[BlockEntry] = {root}
        self._next_seq = 1
        self._best_header = root

    def _work(self, bits: int) -> int:
        # Bits repeat for thousands of blocks; caching the big-integer division makes loading
        # a long index from disk noticeably faster.
        work = self._work_by_bits.get(bits)
        if work is None:
            work = self._work_by_bits[bits] = block_work(bits)
        return work

    # -- lookup

    def get(self, block_hash: bytes) -> BlockEntry | None:
        return self._index.get(block_hash)

    def __contains__(self, block_hash: object) -> bool:
        return block_hash in self._index

    def __len__(self) -> int:
        return len(self._index)

    def __iter__(self) -> Iterator[BlockEntry]:
        """Entries in the order they were added: every parent before its children."""
        return iter(self._index.values())

    @property
    def tips(self) -> tuple[BlockEntry, ...]:
        """Entries without children: the ends of every branch, oldest first."""
        return tuple(self._tips)

    @property
    def best_header(self) -> BlockEntry:
        """The entry with the most work that is not known invalid, data or not (first wins ties).

        Headers-first sync downloads the blocks of this chain.
        """
        return self._best_header

    # -- growth

    @classmethod
    def restore(
        cls, genesis: BlockHeader, rows: Iterable[tuple[BlockHeader, int, int | None]]
    ) -> BlockTree:
        """Rebuild a tree from stored ``(header, status, seq)`` rows, parents before children.

        One pass, with tips and the best header computed once at the end; the caller then
        calls :meth:`reset_candidates` with the restored tip. ValueError if a parent is missing
        or a hash repeats.
        """
        tree = cls(genesis)
        index = tree._index
        work = tree._work
        unsequenced: list[BlockEntry] = []
        last_seq = 0
        for header, status, seq in rows:
            block_hash = header.hash
            parent = index.get(header.prev_hash)
            if parent is None or block_hash in index:
                raise ValueError(f"block {header.hash_hex}: parent missing or hash repeated")
            entry = BlockEntry(header, parent, work(header.bits))
            flags = status | (_FAILED_CHILD if parent._status & _FAILED_MASK else 0)
            entry._status = flags
            if flags & _HAVE_DATA and parent.linked:
                entry.linked = True
                entry.seq = seq
                if seq is None:
                    unsequenced.append(entry)
                elif seq > last_seq:
                    last_seq = seq
            index[block_hash] = entry
            parent.children.append(entry)
        for entry in unsequenced:
            last_seq += 1
            entry.seq = last_seq
        tree._next_seq = last_seq + 1
        tree._tips = {e: None for e in index.values() if not e.children}
        tree._recompute_best_header()
        return tree

    def add_header(self, header: BlockHeader) -> BlockEntry:
        """Add a header whose parent is in the tree; returns its new entry, without data.

        The caller has validated the header. An entry whose parent is failed is born failed.
        """
        if header.hash in self._index:
            raise ValueError(f"block {header.hash_hex} is already in the tree")
        parent = self._index.get(header.prev_hash)
        if parent is None:
            raise ValueError(f"parent of {header.hash_hex} is not in the tree")
        entry = BlockEntry(header, parent, self._work(header.bits))
        if parent._status & _FAILED_MASK:
            entry._status = _FAILED_CHILD
        self._index[entry.hash] = entry
        parent.children.append(entry)
        self._tips.pop(parent, None)
        self._tips[entry] = None
        if not entry.failed and entry.chain_work > self._best_header.chain_work:
            self._best_header = entry
        return entry

    def set_have_data(self, entry: BlockEntry) -> list[BlockEntry]:
        """Record that ``entry``'s block is stored; returns the entries that became linked.

        When the parent is linked, the entry becomes linked, and so do the descendants whose
        blocks arrived before it (out-of-order download), in order, each with the next ``seq``.
        """
        entry._status |= _HAVE_DATA
        if entry.parent is None or not entry.parent.linked:
            return []
        linked: list[BlockEntry] = []
        queue: deque[BlockEntry] = deque([entry])
        while queue:
            current = queue.popleft()
            current.linked = True
            current.seq = self._next_seq
            self._next_seq += 1
            linked.append(current)
            if not current.failed:
                self._candidates.add(current)
            queue.extend(c for c in current.children if c.has_data and not c.linked)
        return linked

    def mark_valid(self, entry: BlockEntry) -> None:
        entry._status |= _VALID

    # -- the best chain

    def best_candidate(self) -> BlockEntry:
        """The linked, not-invalid entry with the most work; the lowest ``seq`` among equals."""
        return max(self._candidates, key=_candidate_key)

    def prune_candidates(self, tip: BlockEntry) -> None:
        """Drop candidates with less work than ``tip``: they can no longer win."""
        self._candidates = {e for e in self._candidates if e.chain_work >= tip.chain_work}
        self._candidates.add(tip)

    def reset_candidates(self, tip: BlockEntry) -> None:
        """Recompute the candidates from the whole tree, after the tip lost work.

        Needed when the tip moves back (a block invalidated or reconsidered): blocks pruned
        earlier may be the best choice again. Linear in the size of the tree, and rare.
        """
        self._candidates = {
            e
            for e in self._index.values()
            if e.linked and not e.failed and e.chain_work >= tip.chain_work
        }
        self._candidates.add(tip)

    # -- invalidity

    def mark_invalid(self, entry: BlockEntry) -> list[BlockEntry]:
        """Mark ``entry`` as breaking a rule and every descendant as its child.

        Returns the entries whose status changed.
        """
        changed: list[BlockEntry] = []
        for current in self._subtree(entry):
            flag = _FAILED if current is entry else _FAILED_CHILD
            if not current._status & flag:
                current._status |= flag
                changed.append(current)
            self._candidates.discard(current)
        if self._best_header.failed:
            self._recompute_best_header()
        return changed

    def reconsider(self, entry: BlockEntry) -> list[BlockEntry]:
        """Clear the invalid marks of ``entry``, its descendants and its ancestors.

        bitcoind's ``reconsiderblock``: a block that really breaks a rule will simply fail
        again when the chain tries to connect it. Returns the entries whose status changed;
        the caller must :meth:`reset_candidates` afterwards.
        """
        changed: list[BlockEntry] = []
        for current in self._subtree(entry):
            if current.failed:
                current._status &= ~_FAILED_MASK
                changed.append(current)
        walk = entry.parent
        while walk is not None:
            if walk.failed:
                walk._status &= ~_FAILED_MASK
                changed.append(walk)
            walk = walk.parent
        # Other branches below a cleared ancestor keep their FAILED_CHILD marks, as in bitcoind:
        # reconsidering one block says nothing about its siblings.
        self._recompute_best_header()
        return changed

    def _recompute_best_header(self) -> None:
        best = self.genesis
        for e in self._index.values():
            if not e.failed and e.chain_work > best.chain_work:
                best = e
        self._best_header = best

    def _subtree(self, entry: BlockEntry) -> Iterator[BlockEntry]:
        """``entry`` and all its descendants, parents before children, without recursion."""
        queue: deque[BlockEntry] = deque([entry])
        while queue:
            current = queue.popleft()
            yield current
            queue.extend(current.children)

    # -- context for validating a header

    def median_time_past(self, entry: BlockEntry) -> int:
        """Median time of ``entry`` and up to ten ancestors: a new child must be later."""
        times: list[int] = []
        walk: BlockEntry | None = entry
        while walk is not None and len(times) < MEDIAN_TIME_SPAN:
            times.append(walk.header.time)
            walk = walk.parent
        times.sort()
        return times[len(times) // 2]

    def expected_bits(self, parent: BlockEntry, params: NetworkParams) -> int:
        """The ``bits`` a child of ``parent`` must carry under the retarget rule."""
        height = parent.height + 1
        interval = params.retarget_interval
        if interval == 0 or height % interval != 0:
            return params.next_bits(height, parent.header.bits, 0, 0)
        first = parent.ancestor(height - interval)
        return params.next_bits(height, parent.header.bits, first.header.time, parent.header.time)

    # -- reporting

    def chain_tips(self, active: ActiveChain) -> list[ChainTip]:
        """Every branch tip and the active tip, highest first, like bitcoind's getchaintips."""
        tips = dict(self._tips)
        tips[active.tip] = None
        rows = []
        for tip in tips:
            branch_len = tip.height - active.fork_point(tip).height
            rows.append(ChainTip(tip.height, tip.hash, branch_len, _tip_status(tip, active)))
        rows.sort(key=lambda r: (-r.height, r.branch_len, r.hash))
        return rows

    def missing_blocks(
        self, target: BlockEntry, active: ActiveChain, limit: int
    ) -> list[BlockEntry]:
        """Up to ``limit`` entries without data on the way from the active chain to ``target``.

        Lowest first: what headers-first sync should download next to reach ``target``.
        """
        fork = active.fork_point(target)
        path: list[BlockEntry] = []
        walk = target
        while walk is not fork:
            if not walk.has_data:
                path.append(walk)
            assert walk.parent is not None
            walk = walk.parent
        path.reverse()
        return path[:limit]


def _candidate_key(entry: BlockEntry) -> tuple[int, int]:
    assert entry.seq is not None, "candidates are linked"
    return entry.chain_work, -entry.seq


def _tip_status(tip: BlockEntry, active: ActiveChain) -> TipStatus:
    if tip in active:
        return TipStatus.ACTIVE
    if tip.failed:
        return TipStatus.INVALID
    if not tip.linked:
        return TipStatus.HEADERS_ONLY
    if tip._status & _VALID:
        return TipStatus.VALID_FORK
    return TipStatus.VALID_HEADERS


class ActiveChain:
    """The connected chain as a list indexed by height, from genesis to the tip."""

    def __init__(self, tree: BlockTree) -> None:
        self._tree = tree
        self._entries: list[BlockEntry] = [tree.genesis]

    @property
    def tip(self) -> BlockEntry:
        return self._entries[-1]

    @property
    def height(self) -> int:
        return len(self._entries) - 1

    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, height: int) -> BlockEntry:
        if not 0 <= height < len(self._entries):
            raise IndexError(f"no active block at height {height}")
        return self._entries[height]

    def get(self, height: int) -> BlockEntry | None:
        return self._entries[height] if 0 <= height < len(self._entries) else None

    def __contains__(self, entry: object) -> bool:
        if not isinstance(entry, BlockEntry):
            return False
        return entry.height < len(self._entries) and self._entries[entry.height] is entry

    def __iter__(self) -> Iterator[BlockEntry]:
        return iter(self._entries)

    def next(self, entry: BlockEntry) -> BlockEntry | None:
        """The active block after ``entry``, if ``entry`` is active and not the tip."""
        if entry not in self:
            return None
        return self.get(entry.height + 1)

    def set_tip(self, entry: BlockEntry) -> None:
        """Make ``entry`` the tip: drop the blocks past the fork point, append the new branch."""
        branch: list[BlockEntry] = []
        walk: BlockEntry | None = entry
        while walk is not None and walk not in self:
            branch.append(walk)
            walk = walk.parent
        if walk is None:
            raise ValueError(f"{entry!r} is not in this chain's tree")
        del self._entries[walk.height + 1 :]
        self._entries.extend(reversed(branch))

    def fork_point(self, entry: BlockEntry) -> BlockEntry:
        """The highest active entry that ``entry`` descends from (``entry`` itself if active)."""
        if entry.height > self.height:
            entry = entry.ancestor(self.height)
        while entry not in self:
            assert entry.parent is not None, "genesis is always active"
            entry = entry.parent
        return entry

    def locator(self) -> list[bytes]:
        return locator_for(self.tip)

    def find_fork(self, locator: Iterable[bytes]) -> BlockEntry:
        """The first locator hash on the active chain: where a peer's chain meets ours.

        Genesis when none is (every peer of the network shares it).
        """
        for block_hash in locator:
            entry = self._tree.get(block_hash)
            if entry is not None and entry in self:
                return entry
        return self._entries[0]
