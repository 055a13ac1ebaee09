"""One entry of the block index, and walks along the branch that ends at it.

A :class:`BlockEntry` is a header's place in the tree (parent, height, cumulative work, a skip
pointer) and what is known about its block (:class:`BlockStatus`). The walks need nothing but
entries: the ancestor at a height in O(log n) steps (Bitcoin Core's skip list), the last
common ancestor of two entries, the branch between an ancestor and a tip, and a block locator.

What this module deliberately does not do: keep a tree or choose a chain (that is
:class:`~node.core.chain.BlockTree`, which alone changes an entry's status), validate or store.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

from node.core.header import BlockHeader


class BlockStatus(enum.IntFlag):
    """What is known about a block, beyond its valid header (every entry has one).

    The values are stored on disk; never renumber them.
    """

    HEADER_ONLY = 0
    HAVE_DATA = 1
    """The block's transactions are stored and passed every check that needs no UTXO set."""
    VALID = 2
    """The block was connected at least once: inputs, amounts and signatures are valid."""
    FAILED = 4
    """The block itself broke a consensus rule."""
    FAILED_CHILD = 8
    """An ancestor of the block broke a consensus rule."""

    @property
    def failed(self) -> bool:
        return bool(self & (BlockStatus.FAILED | BlockStatus.FAILED_CHILD))


FAILED_MASK = BlockStatus.FAILED | BlockStatus.FAILED_CHILD

# Plain ints for the hot paths: an IntFlag operation costs about a microsecond (it builds an
# enum member), fifty times an int's, and loading 100,000 entries does several per entry.
_HAVE_DATA = int(BlockStatus.HAVE_DATA)
_VALID = int(BlockStatus.VALID)
_FAILED = int(BlockStatus.FAILED)
_FAILED_CHILD = int(BlockStatus.FAILED_CHILD)
_FAILED_MASK = int(FAILED_MASK)


class BlockEntry:
    """One node of the block index tree.

    Identity is the object: an entry exists once per hash, so entries compare and hash by
    identity. ``status``, ``seq`` and ``linked`` change as blocks arrive and are judged (by
    :class:`BlockTree` only); the rest is fixed at creation.
    """

    __slots__ = (
        "_status",
        "chain_work",
        "children",
        "hash",
        "header",
        "height",
        "linked",
        "parent",
        "seq",
        "skip",
    )

    def __init__(self, header: BlockHeader, parent: BlockEntry | None, work: int) -> None:
        """``work`` is the block's own work (:func:`block_work` of its bits)."""
        self.hash: bytes = header.hash
        self.header = header
        self.parent = parent
        self._status = 0
        self.seq: int | None = None
        """Order in which entries became linked (first seen wins ties); None while unlinked."""
        self.linked = False
        self.children: list[BlockEntry] = []
        if parent is None:
            self.height = 0
            self.chain_work = work
            self.skip: BlockEntry | None = None
        else:
            self.height = parent.height + 1
            self.chain_work = work + parent.chain_work
            # Bitcoin Core's skip list: a pointer to an ancestor chosen so that ``ancestor``
            # takes O(log n) steps, which keeps locators and fork finding cheap on long chains.
            self.skip = parent.ancestor(_skip_height(self.height))

    @property
    def status(self) -> BlockStatus:
        return BlockStatus(self._status)

    @property
    def failed(self) -> bool:
        return bool(self._status & _FAILED_MASK)

    @property
    def has_data(self) -> bool:
        return bool(self._status & _HAVE_DATA)

    @property
    def hash_hex(self) -> str:
        return self.header.hash_hex

    def ancestor(self, height: int) -> BlockEntry:
        """The entry at ``height`` on the chain ending here (``self`` at its own height)."""
        if not 0 <= height <= self.height:
            raise ValueError(f"no ancestor at height {height} of a block at {self.height}")
        walk: BlockEntry = self
        # Core's GetAncestor: take the skip pointer unless it overshoots, or unless the
        # parent's skip lands between the target and this skip, which serves better. Skip
        # heights are read from the pointers rather than recomputed.
        while walk.height > height:
            skip = walk.skip
            parent = walk.parent
            assert parent is not None and skip is not None, "every entry above genesis has both"
            skip_height = skip.height
            skip_prev = 0 if parent.skip is None else parent.skip.height
            if skip_height == height or (
                skip_height > height and not (skip_prev < skip_height - 2 and skip_prev >= height)
            ):
                walk = skip
            else:
                walk = parent
        return walk

    def __repr__(self) -> str:
        return f"BlockEntry({self.hash_hex[:16]}… h={self.height} status={self.status!r})"


def _invert_lowest_one(n: int) -> int:
    return n & (n - 1)


def _skip_height(height: int) -> int:
    """Bitcoin Core's GetSkipHeight: any number works for correctness; this one is fast."""
    if height < 2:
        return 0
    if height & 1:
        return _invert_lowest_one(_invert_lowest_one(height - 1)) + 1
    return _invert_lowest_one(height)


def last_common_ancestor(a: BlockEntry, b: BlockEntry) -> BlockEntry:
    """The highest entry that both ``a`` and ``b`` descend from (or are)."""
    if a.height > b.height:
        a = a.ancestor(b.height)
    elif b.height > a.height:
        b = b.ancestor(a.height)
    while a is not b:
        assert a.parent is not None and b.parent is not None, "entries of different trees"
        a, b = a.parent, b.parent
    return a


def branch_between(fork: BlockEntry, tip: BlockEntry) -> Sequence[BlockEntry]:
    """The entries after ``fork`` up to ``tip``, lowest first (``fork`` must be an ancestor)."""
    path: list[BlockEntry] = []
    walk = tip
    while walk is not fork:
        path.append(walk)
        if walk.parent is None:
            raise ValueError(f"{fork!r} is not an ancestor of {tip!r}")
        walk = walk.parent
    path.reverse()
    return path


def locator_for(entry: BlockEntry) -> list[bytes]:
    """A block locator: hashes from ``entry`` back to genesis, dense near the tip.

    The last ten heights one by one, then doubling steps, then genesis: whoever receives it
    finds the fork point with one lookup per hash, from any fork, in O(log height) hashes.
    """
    hashes: list[bytes] = []
    step = 1
    walk = entry
    while True:
        hashes.append(walk.hash)
        if walk.height == 0:
            return hashes
        if len(hashes) >= 10:
            step *= 2
        walk = walk.ancestor(max(walk.height - step, 0))
