"""Blocks: a header and its transactions, and their encoding.

==========  ============================================  =========================================
field       encoding                                      notes
==========  ============================================  =========================================
header      bin, 80 bytes                                 Bitcoin's layout (:mod:`node.core.header`)
txs         array of transaction arrays                   :mod:`node.core.tx`, coinbase first
==========  ============================================  =========================================

The whole block is one canonical msgpack array ``[header, txs]``; its size is the length of that
encoding. The block's id is its header's hash; the header commits to the transactions through
the merkle root of their txids.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from node.core.encoding import expect_bytes, expect_list, pack, unpack_canonical
from node.core.header import HEADER_SIZE, BlockHeader
from node.core.merkle import merkle_root
from node.core.tx import Transaction

MAX_BLOCK_SIZE = 1_000_000
"""Bytes of the encoded block; also bounds decoding, before any field is read."""


@dataclass(frozen=True)
class Block:
    header: BlockHeader
    transactions: tuple[Transaction, ...]

    @property
    def hash(self) -> bytes:
        return self.header.hash

    @property
    def hash_hex(self) -> str:
        return self.header.hash_hex

    @cached_property
    def txids(self) -> tuple[bytes, ...]:
        return tuple(tx.txid for tx in self.transactions)

    def compute_merkle_root(self) -> tuple[bytes, bool]:
        """``(root, mutated)`` of this block's txids; see :func:`merkle_root`."""
        return merkle_root(self.txids)

    def to_obj(self) -> list[Any]:
        return [self.header.serialize(), [tx.to_obj() for tx in self.transactions]]

    def serialize(self) -> bytes:
        return self._encoded

    @cached_property
    def _encoded(self) -> bytes:
        return pack(self.to_obj())

    @property
    def size(self) -> int:
        return len(self._encoded)

    @classmethod
    def deserialize(cls, data: bytes, max_size: int = MAX_BLOCK_SIZE) -> Block:
        fields = expect_list(unpack_canonical(data, max_size=max_size, what="block"), "block", 2)
        header = BlockHeader.deserialize(expect_bytes(fields[0], "block header", size=HEADER_SIZE))
        txs = tuple(Transaction.from_obj(t) for t in expect_list(fields[1], "block transactions"))
        block = cls(header, txs)
        block.__dict__["_encoded"] = bytes(data)
        return block
