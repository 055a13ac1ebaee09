"""What a peer is known to have: a compact, rolling set of inventory hashes.

The node remembers, per peer, the transactions and blocks the peer announced or sent, and those
we announced to it, so nothing is announced twice and nothing back to where it came from. With
hundreds of items a second and dozens of peers this set is the largest thing a peer costs, so
it is kept small, in the spirit of Bitcoin Core's ``CRollingBloomFilter``:

- **8-byte keys.** An item is remembered by the first 8 bytes of its hash (in internal byte
  order, where a block hash is random; its zeros are at the other end). That is 8 bytes a
  key in flat ``array('Q')`` tables instead of a Python ``bytes`` object and a dict entry
  (about 75 bytes, measured: ``bench/known_inventory.py``).
- **Generations.** Keys go into the current of three tables; when it holds ``capacity / 2``
  keys the oldest table is emptied and becomes the current one. So the filter always
  remembers at least the last ``capacity`` items added and at most half as many again, and
  never needs to delete a key (no tombstones, no per-key ordering). Adding a key the current
  table lacks refreshes it, as re-adding did in the ordered dict this replaces.
- **Salted slots.** A key's slot is the top bits of ``key * salt`` (multiply-shift hashing)
  with a random odd salt per filter: inventory hashes come from peers, who could otherwise
  pick hashes that all land in one cluster and turn every lookup into a walk of the table.

False positives, and what they cost: two different hashes with equal first 8 bytes look the
same. By chance that is one in 2^64 per pair (about one in 10^15 for a full filter); on purpose
it takes a second preimage of 64 bits of SHA-256d, out of reach. A false positive makes us
believe the peer has an item it lacks, so we do not announce it to that peer: it learns the item
from another peer, or, for a block, from its next headers poll. Nothing is ever refused or
punished because of this filter. False negatives only come from age, as before: an item older
than the last ``capacity`` may be announced to a peer again, which it ignores.

What this module does not do: count, iterate or remove items, or know what they are.
"""

from __future__ import annotations

from array import array

MASK64 = (1 << 64) - 1
MIN_BITS = 6
"""A table starts with 2^6 slots and doubles as it fills: most peers know few items."""
GENERATIONS = 3


class _Table:
    """Open addressing with linear probing over 8-byte keys; 0 marks an empty slot.

    A key's home slot is the top ``bits`` bits of its salted product, so the product is
    computed once per lookup whatever the tables' sizes.
    """

    __slots__ = ("count", "mask", "shift", "slots")

    def __init__(self, bits: int = MIN_BITS) -> None:
        self.count = 0
        self.mask = (1 << bits) - 1
        self.shift = 64 - bits
        self.slots = array("Q", bytes(8 << bits))

    def holds(self, key: int, mixed: int) -> bool:
        slots, mask = self.slots, self.mask
        i = mixed >> self.shift
        while True:
            found = slots[i]
            if found == key:
                return True
            if not found:
                return False
            i = (i + 1) & mask

    def put(self, key: int, mixed: int, salt: int) -> None:
        """Insert ``key`` (absent); the table doubles past a load of 5/8."""
        if (self.count + 1) * 8 > len(self.slots) * 5:
            self._double(salt)
        self._place(key, mixed)
        self.count += 1

    def _place(self, key: int, mixed: int) -> None:
        slots, mask = self.slots, self.mask
        i = mixed >> self.shift
        while slots[i]:
            i = (i + 1) & mask
        slots[i] = key

    def _double(self, salt: int) -> None:
        old = self.slots
        bits = 64 - self.shift + 1
        self.mask = (1 << bits) - 1
        self.shift = 64 - bits
        self.slots = array("Q", bytes(8 << bits))
        for key in old:
            if key:
                self._place(key, (key * salt) & MASK64)


class InventoryFilter:
    """Hashes a peer is known to have; see the module docstring for the trade-offs."""

    __slots__ = ("_per_table", "_salt", "_tables")

    def __init__(self, capacity: int, salt: int) -> None:
        """Remember at least the last ``capacity`` items; ``salt`` is any 64-bit number (made
        odd here), drawn from the node's random source so a seeded simulation replays."""
        if capacity < 2:
            raise ValueError("an inventory filter remembers at least two items")
        self._per_table = (capacity + 1) // 2
        self._salt = (salt & MASK64) | 1
        self._tables: list[_Table] = [_Table()]
        """Newest first: recent items are asked about most."""

    def __contains__(self, item_hash: object) -> bool:
        if not isinstance(item_hash, bytes):
            return False
        # 0 marks an empty slot, so the one hash prefix that maps to it shares 1's key.
        key = int.from_bytes(item_hash[:8], "little") or 1
        mixed = (key * self._salt) & MASK64
        return any(table.holds(key, mixed) for table in self._tables)

    def add(self, item_hash: bytes) -> None:
        key = int.from_bytes(item_hash[:8], "little") or 1
        mixed = (key * self._salt) & MASK64
        current = self._tables[0]
        if current.holds(key, mixed):
            return
        if current.count >= self._per_table:
            current = _Table()
            self._tables.insert(0, current)
            del self._tables[GENERATIONS:]
        current.put(key, mixed, self._salt)

    @property
    def nbytes(self) -> int:
        """Bytes held by the tables' slots (what the filter's size is made of)."""
        return sum(t.slots.itemsize * len(t.slots) for t in self._tables)
