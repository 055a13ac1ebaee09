"""Merkle roots exactly as Bitcoin computes them, with the CVE-2012-2459 mutation detected.

Bitcoin pairs hashes level by level and, when a level has an odd count, pairs the last hash with
itself. That makes ``[a, b, c]`` and ``[a, b, c, c]`` share a root: anyone can take a valid block,
duplicate its last transactions, and hand out an invalid block with the *valid* block's hash. A
node that marked that hash invalid would then refuse the real block forever. So the computation
also reports whether any level held two equal adjacent hashes, and such a block is refused
without being marked (``bad-txns-duplicate``).
"""

from __future__ import annotations

from collections.abc import Sequence

from node.core.hashing import sha256d


def merkle_root(hashes: Sequence[bytes]) -> tuple[bytes, bool]:
    """Return ``(root, mutated)`` for the leaf hashes, in internal byte order.

    An empty list has the all-zero root (never valid for a block, which needs a coinbase).
    """
    if not hashes:
        return bytes(32), False
    level = list(hashes)
    mutated = False
    while len(level) > 1:
        # Equal neighbours at an even position are exactly what duplication produces.
        for i in range(0, len(level) - 1, 2):
            if level[i] == level[i + 1]:
                mutated = True
        if len(level) % 2:
            level.append(level[-1])
        level = [sha256d(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
    return level[0], mutated
