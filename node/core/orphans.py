"""Orphan blocks: blocks whose parent is unknown, held until the parent arrives.

Blocks may arrive before their parents (a peer announces its tip first, or several peers race).
Dropping such a block would mean fetching it again; connecting it is impossible. So
:class:`node.chainstate.ChainState` holds it here after its context-free checks and, when a
block is accepted, takes that block's waiting children back out (:meth:`OrphanBlocks.pop_children`)
to process them in turn. :meth:`OrphanBlocks.root_parent` names the one missing block to ask
peers for, however long the chain of orphans above it.

Bounds, so a peer sending orphans cannot exhaust memory: at most ``max_blocks`` blocks and
``max_bytes`` of encoded blocks; the oldest is evicted first. Eviction loses nothing that matters:
a block evicted by mistake is simply fetched again later.

What this module does not do: check any rule (the caller checks a block before holding it),
track which peer sent what, or read a clock. Orphan *transactions* are the P2P layer's
(:mod:`node.p2p.orphans`).
"""

from __future__ import annotations

from collections import OrderedDict

from node.core.block import Block


class OrphanBlocks:
    """Blocks whose parent is unknown, held until it arrives; bounded, oldest evicted first.

    Bounded by count and by total encoded size, so a peer sending orphans cannot exhaust
    memory; a block evicted by mistake is simply fetched again later.
    """

    def __init__(self, max_blocks: int = 100, max_bytes: int = 32_000_000) -> None:
        self.max_blocks = max_blocks
        self.max_bytes = max_bytes
        self._blocks: OrderedDict[bytes, Block] = OrderedDict()
        self._by_parent: dict[bytes, list[bytes]] = {}
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._blocks)

    def __contains__(self, block_hash: object) -> bool:
        return block_hash in self._blocks

    @property
    def total_bytes(self) -> int:
        return self._bytes

    def add(self, block: Block) -> list[bytes]:
        """Hold ``block``; returns the hashes evicted to stay within bounds."""
        if block.hash in self._blocks:
            return []
        self._blocks[block.hash] = block
        self._by_parent.setdefault(block.header.prev_hash, []).append(block.hash)
        self._bytes += block.size
        evicted: list[bytes] = []
        while len(self._blocks) > self.max_blocks or self._bytes > self.max_bytes:
            oldest = next(iter(self._blocks))
            self._remove(oldest)
            evicted.append(oldest)
        return evicted

    def pop_children(self, parent_hash: bytes) -> list[Block]:
        """Remove and return the orphans whose parent is ``parent_hash``, oldest first."""
        hashes = self._by_parent.get(parent_hash, [])
        return [self._remove(h) for h in list(hashes)]

    def root_parent(self, block_hash: bytes) -> bytes:
        """The missing parent at the bottom of the orphan chain above ``block_hash``.

        What to ask peers for: fetching it lets every held descendant connect.
        """
        seen = set()
        walk = block_hash
        while walk in self._blocks and walk not in seen:
            seen.add(walk)
            walk = self._blocks[walk].header.prev_hash
        return walk

    def _remove(self, block_hash: bytes) -> Block:
        block = self._blocks.pop(block_hash)
        self._bytes -= block.size
        siblings = self._by_parent[block.header.prev_hash]
        siblings.remove(block_hash)
        if not siblings:
            del self._by_parent[block.header.prev_hash]
        return block
