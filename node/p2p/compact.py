"""Compact block relay (BIP 152's idea): send a block as short ids of transactions peers hold.

A peer that already has a block's transactions in its mempool needs only the header and a short
id per transaction to rebuild the block; it asks (``getblocktxn``) for the few it lacks. A block
of 1,000 transactions then crosses the network in about 6 KB instead of a few hundred.

Short ids. BIP 152 uses SipHash-2-4 because it is the fastest keyed hash in C++; in Python the
fastest keyed hash is the standard library's BLAKE2b, so forklab uses it:

    key      = SHA-256(header (80 bytes) || nonce (u64 little-endian))          32 bytes
    short_id = BLAKE2b(txid, key=key, digest_size=6, person=b"forklab/cmpct")   6 bytes

The key changes with every block and every sender's nonce, so nobody can precompute
transactions whose short ids collide in every block. Collisions still happen by chance (48
bits); they are handled, never trusted:

- two short ids in one cmpctblock equal: the sender's block is ambiguous; fetch the full block;
- two mempool transactions matching one short id: that slot is treated as missing and asked for;
- a wrong transaction matching by chance: the rebuilt block's merkle root does not match its
  header, so the full block is fetched instead.

This module is pure (no I/O); the node feeds it mempool transactions and peer replies.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from node.core.block import Block
from node.core.hashing import sha256
from node.core.tx import Transaction
from node.p2p.messages import SHORT_ID_SIZE, CmpctBlock, PrefilledTx

_PERSON = b"forklab/cmpct"


def short_id_key(header_bytes: bytes, nonce: int) -> bytes:
    return sha256(header_bytes + nonce.to_bytes(8, "little"))


def short_id(key: bytes, txid: bytes) -> bytes:
    return hashlib.blake2b(txid, key=key, digest_size=SHORT_ID_SIZE, person=_PERSON).digest()


def make_compact(block: Block, nonce: int) -> CmpctBlock:
    """The compact form of ``block``: the coinbase in full (no peer can have it), the rest by id."""
    key = short_id_key(block.header.serialize(), nonce)
    ids = tuple(short_id(key, tx.txid) for tx in block.transactions[1:])
    return CmpctBlock(block.header, nonce, ids, (PrefilledTx(0, block.transactions[0]),))


class PartialBlock:
    """A block being rebuilt from a cmpctblock, the mempool and a blocktxn reply."""

    def __init__(self, compact: CmpctBlock) -> None:
        """Lay out the slots; raise ValueError if the cmpctblock's short ids collide."""
        self.header = compact.header
        self.slots: list[Transaction | None] = [None] * compact.tx_count
        prefilled = {p.index: p.tx for p in compact.prefilled}
        self._slot_of: dict[bytes, int] = {}
        ids = iter(compact.short_ids)
        for index in range(compact.tx_count):
            if index in prefilled:
                self.slots[index] = prefilled[index]
                continue
            sid = next(ids)
            if sid in self._slot_of:
                raise ValueError("short id collision inside the cmpctblock")
            self._slot_of[sid] = index
        self._key = short_id_key(compact.header.serialize(), compact.nonce)
        self._ambiguous: set[int] = set()

    @property
    def block_hash(self) -> bytes:
        return self.header.hash

    def fill_from(self, candidates: Iterable[Transaction]) -> None:
        """Place every candidate whose short id names a slot; two candidates for one slot
        leave it empty (it is then asked for by index)."""
        for tx in candidates:
            index = self._slot_of.get(short_id(self._key, tx.txid))
            if index is None or index in self._ambiguous:
                continue
            current = self.slots[index]
            if current is None:
                self.slots[index] = tx
            elif current.txid != tx.txid:
                self.slots[index] = None
                self._ambiguous.add(index)

    def missing(self) -> tuple[int, ...]:
        return tuple(i for i, tx in enumerate(self.slots) if tx is None)

    def fill_missing(self, txs: Iterable[Transaction]) -> None:
        """Fill the missing slots, in order, from a blocktxn reply (ValueError on a bad count)."""
        missing = self.missing()
        given = list(txs)
        if len(given) != len(missing):
            raise ValueError(f"expected {len(missing)} transactions, got {len(given)}")
        for index, tx in zip(missing, given, strict=True):
            self.slots[index] = tx

    def block(self) -> Block | None:
        """The rebuilt block, or None while slots are missing or if the merkle root disagrees
        (a chance short-id collision put a wrong transaction in a slot)."""
        if any(tx is None for tx in self.slots):
            return None
        block = Block(self.header, tuple(tx for tx in self.slots if tx is not None))
        root, _mutated = block.compute_merkle_root()
        if root != self.header.merkle_root:
            return None
        return block
