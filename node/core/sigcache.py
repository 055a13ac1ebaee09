"""A bounded memory of signatures already found valid.

Most transactions are checked twice: when they enter the mempool and again when a block
confirms them. Checking a signature costs far more than everything else validation does, so
the second check is skipped when the first one is remembered (Bitcoin Core's signature cache).

An entry is ``sha256(sighash || pubkey || signature)``: the digest commits to the transaction,
the input and the network, so a hit means exactly this key signed exactly this spend. Only
valid signatures are added, so a peer cannot make us remember anything without paying for a
valid spend, and a wrong or missing entry can only cost time, never accept a bad signature.

The cache has one owner (the task that validates), so it takes no locks. When full, the oldest
entry is dropped: deterministic, needs no randomness, and a flood of new entries can at worst
push out old ones, which only makes a later check slower.
"""

from __future__ import annotations

from collections import OrderedDict

from node.core.hashing import sha256

DEFAULT_MAX_ENTRIES = 100_000
"""About 17 MB of Python objects (measured): the signatures of several full mempools."""


def signature_cache_key(sighash: bytes, pubkey: bytes, signature: bytes) -> bytes:
    return sha256(sighash + pubkey + signature)


class SignatureCache:
    """A set of keys bounded to ``max_entries``, dropping the oldest when full."""

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        if max_entries < 1:
            raise ValueError(f"a signature cache holds at least one entry, not {max_entries}")
        self.max_entries = max_entries
        self._keys: OrderedDict[bytes, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._keys)

    def contains(self, key: bytes) -> bool:
        return key in self._keys

    def add(self, key: bytes) -> None:
        keys = self._keys
        if key in keys:
            return
        if len(keys) >= self.max_entries:
            keys.popitem(last=False)
        keys[key] = None
