"""Transactions of the UTXO model and their canonical encoding.

A transaction spends outputs of earlier transactions (each input names one by txid and index,
and proves ownership with a signature by the key whose hash the output names) and creates new
outputs. Amounts are integers of the smallest unit, 10^8 to a coin, as in Bitcoin.

Encoding (canonical msgpack, arrays only; see :mod:`node.core.encoding`):

==============  ===========================================  ===================================
object          array fields, in order                       limits
==============  ===========================================  ===================================
Transaction     version, inputs, outputs, locktime           version, locktime: u32
TxIn            prev_txid, prev_index, signature, pubkey     32 bytes, u32, <= 100 bytes,
                                                             0 or 33 bytes
TxOut           value, pubkey_hash                           0..MAX_MONEY, 20 bytes
==============  ===========================================  ===================================

The txid is SHA-256d of the encoding, shown byte-reversed like Bitcoin's.

A coinbase has exactly one input whose prevout is null (32 zero bytes, index 0xffffffff); its
``signature`` field carries the coinbase data instead of a signature, as Bitcoin's scriptSig does:
the block height as u32 little-endian (BIP 34: this makes every coinbase, hence every txid,
unique), then an extranonce and a free message.

Signatures are 64-byte compact ECDSA (r || s, low-S) over :meth:`Transaction.sighash`, which
commits to the whole transaction with every signature blanked, to the input's index and to the
network's genesis hash, so a transaction signed for one network is invalid on every other.

This module encodes and hashes; whether a transaction may be spent is for
:mod:`node.core.validation`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

from node.core.encoding import (
    expect_bytes,
    expect_int,
    expect_list,
    pack,
    unpack_canonical,
)
from node.core.hashing import hash_hex, sha256d

COIN = 100_000_000
"""Smallest units in one coin."""

MAX_MONEY = 21_000_000 * COIN
"""No amount, and no sum of amounts, may exceed this (the overflow bug CVE-2010-5139)."""

NULL_TXID = bytes(32)
COINBASE_INDEX = 0xFFFFFFFF
MAX_TX_SIZE = 1_000_000
MAX_SIGNATURE_FIELD = 100
"""A signature is 64 bytes; the field holds coinbase data of up to 100 bytes (Bitcoin's limit)."""

PUBKEY_HASH_SIZE = 20
_SIGHASH_TAG = b"forklab/sighash/v1"
_U32 = 0xFFFFFFFF


@dataclass(frozen=True)
class OutPoint:
    """A reference to one output of an earlier transaction."""

    txid: bytes
    index: int

    def is_null(self) -> bool:
        return self.txid == NULL_TXID and self.index == COINBASE_INDEX

    def __str__(self) -> str:
        return f"{hash_hex(self.txid)}:{self.index}"


NULL_OUTPOINT = OutPoint(NULL_TXID, COINBASE_INDEX)


@dataclass(frozen=True)
class TxIn:
    prevout: OutPoint
    signature: bytes = b""
    """64-byte compact signature; in a coinbase, the coinbase data."""
    pubkey: bytes = b""
    """33-byte compressed public key whose hash160 the spent output names; empty in a coinbase."""


@dataclass(frozen=True)
class TxOut:
    value: int
    pubkey_hash: bytes
    """hash160 of the public key that may spend this output."""


@dataclass(frozen=True)
class Transaction:
    version: int
    inputs: tuple[TxIn, ...]
    outputs: tuple[TxOut, ...]
    locktime: int = 0
    """0, or the first block height at which the transaction may be mined, minus one."""

    # -- encoding

    def to_obj(self) -> list[Any]:
        return [
            self.version,
            [[i.prevout.txid, i.prevout.index, i.signature, i.pubkey] for i in self.inputs],
            [[o.value, o.pubkey_hash] for o in self.outputs],
            self.locktime,
        ]

    @classmethod
    def from_obj(cls, obj: Any) -> Transaction:
        fields = expect_list(obj, "transaction", 4)
        version = expect_int(fields[0], "transaction version", 0, _U32)
        inputs = []
        for n, raw in enumerate(expect_list(fields[1], "transaction inputs")):
            what = f"input {n}"
            txin = expect_list(raw, what, 4)
            inputs.append(
                TxIn(
                    OutPoint(
                        expect_bytes(txin[0], f"{what} prev_txid", size=32),
                        expect_int(txin[1], f"{what} prev_index", 0, _U32),
                    ),
                    expect_bytes(txin[2], f"{what} signature", max_size=MAX_SIGNATURE_FIELD),
                    expect_bytes(txin[3], f"{what} pubkey", max_size=33),
                )
            )
        outputs = []
        for n, raw in enumerate(expect_list(fields[2], "transaction outputs")):
            what = f"output {n}"
            txout = expect_list(raw, what, 2)
            outputs.append(
                TxOut(
                    expect_int(txout[0], f"{what} value", 0, MAX_MONEY),
                    expect_bytes(txout[1], f"{what} pubkey_hash", size=PUBKEY_HASH_SIZE),
                )
            )
        locktime = expect_int(fields[3], "transaction locktime", 0, _U32)
        return cls(version, tuple(inputs), tuple(outputs), locktime)

    def serialize(self) -> bytes:
        return self._encoded

    @classmethod
    def deserialize(cls, data: bytes) -> Transaction:
        tx = cls.from_obj(unpack_canonical(data, max_size=MAX_TX_SIZE, what="transaction"))
        # The bytes are canonical, so they are exactly what we would encode: keep them.
        tx.__dict__["_encoded"] = bytes(data)
        return tx

    @cached_property
    def _encoded(self) -> bytes:
        return pack(self.to_obj())

    # -- identity

    @cached_property
    def txid(self) -> bytes:
        return sha256d(self._encoded)

    @property
    def txid_hex(self) -> str:
        return hash_hex(self.txid)

    @property
    def size(self) -> int:
        return len(self._encoded)

    def is_coinbase(self) -> bool:
        return len(self.inputs) == 1 and self.inputs[0].prevout.is_null()

    @property
    def coinbase_height(self) -> int | None:
        """The height a coinbase commits to (BIP 34), or None if it commits to none."""
        data = self.inputs[0].signature if self.inputs else b""
        if len(data) < 4:
            return None
        return int.from_bytes(data[:4], "little")

    def total_out(self) -> int:
        """Sum of the outputs; may exceed MAX_MONEY, which validation checks."""
        return sum(o.value for o in self.outputs)

    # -- signing

    def sighash(self, index: int, genesis_hash: bytes) -> bytes:
        """The digest input ``index`` signs.

        Every signature is blanked (a signature cannot sign itself), everything else stays: all
        prevouts, public keys and outputs, so changing any of them breaks every signature.

        Each input signs the *hash* of the blanked transaction, computed once, not its bytes:
        hashing the whole transaction again for every input costs time quadratic in its size,
        and a 1 MB transaction of 7,000 inputs would then take minutes to check (Bitcoin's
        legacy sighash had that flaw; BIP 143 fixed it the same way).
        """
        return sha256d(
            _SIGHASH_TAG + genesis_hash + struct.pack("<I", index) + self._blank_digest
        )

    @cached_property
    def _blank_digest(self) -> bytes:
        """SHA-256d of the encoding with every signature blanked: what every input commits to."""
        obj = self.to_obj()
        for txin in obj[1]:
            txin[2] = b""
        return sha256d(pack(obj))

    def with_signature(self, index: int, signature: bytes, pubkey: bytes) -> Transaction:
        inputs = list(self.inputs)
        inputs[index] = replace(inputs[index], signature=signature, pubkey=pubkey)
        return replace(self, inputs=tuple(inputs))


def coinbase_data(height: int, extranonce: bytes = b"", message: bytes = b"") -> bytes:
    """The coinbase's data field: height (BIP 34), then extranonce, then a free message."""
    return struct.pack("<I", height) + extranonce + message


def make_coinbase(
    height: int, outputs: tuple[TxOut, ...], extranonce: bytes = b"", message: bytes = b""
) -> Transaction:
    data = coinbase_data(height, extranonce, message)
    return Transaction(1, (TxIn(NULL_OUTPOINT, data, b""),), outputs, 0)


def format_amount(value: int) -> str:
    """An amount in coins as bitcoind prints BTC: eight decimals, no float rounding."""
    sign = "-" if value < 0 else ""
    whole, frac = divmod(abs(value), COIN)
    return f"{sign}{whole}.{frac:08d}"
