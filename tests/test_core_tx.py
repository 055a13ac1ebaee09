"""Specification of transactions: their encoding and id, the digest each input signs, coinbases.

* The encoding is the table in ``node.core.tx`` and nothing else: a transaction assembled by
  hand from that table byte by byte has exactly the encoding and txid the code computes, so
  a change of format cannot slip in unnoticed.
* The txid is stable: it does not depend on how the object was made (built or decoded) and
  changes with every field, signatures included.
* The signed digest (sighash) commits to every field except the signatures themselves, to the
  input's index, and to the network's genesis hash: a signature for regtest is worthless on
  demo or main, and no field can be changed without the key.
"""

from __future__ import annotations

import dataclasses
import struct

import pytest
from blocktools import key, pkh, sign, strategies
from hypothesis import given
from hypothesis import strategies as st

from node.core.crypto import verify
from node.core.hashing import hash_hex, sha256d
from node.core.params import DEMO, MAIN, PRESETS, REGTEST
from node.core.tx import (
    COIN,
    NULL_OUTPOINT,
    OutPoint,
    Transaction,
    TxIn,
    TxOut,
    coinbase_data,
    format_amount,
    make_coinbase,
)

ALICE = key("alice")
BOB = key("bob")

TX = Transaction(
    version=1,
    inputs=(
        TxIn(OutPoint(b"\xaa" * 32, 0), b"", ALICE.public_key),
        TxIn(OutPoint(b"\xbb" * 32, 300), b"", BOB.public_key),
    ),
    outputs=(TxOut(COIN, pkh(BOB)), TxOut(2 * COIN, pkh(ALICE))),
    locktime=0,
)


# -- encoding and txid


def bin8(payload: bytes) -> bytes:
    """msgpack's bin 8: 0xc4, a one-byte length, the bytes."""
    return b"\xc4" + bytes([len(payload)]) + payload


def test_encoding_is_the_documented_table_byte_for_byte() -> None:
    tx = Transaction(
        1,
        (TxIn(OutPoint(b"\xaa" * 32, 300), b"\x01" * 64, b"\x02" * 33),),
        (TxOut(COIN, b"\x03" * 20),),
        7,
    )
    expected = (
        b"\x94"  # fixarray 4: version, inputs, outputs, locktime
        + b"\x01"  # version 1 (positive fixint)
        + b"\x91"  # one input
        + b"\x94"  # [prev_txid, prev_index, signature, pubkey]
        + bin8(b"\xaa" * 32)
        + b"\xcd\x01\x2c"  # uint16 300
        + bin8(b"\x01" * 64)
        + bin8(b"\x02" * 33)
        + b"\x91"  # one output
        + b"\x92"  # [value, pubkey_hash]
        + b"\xce\x05\xf5\xe1\x00"  # uint32 100,000,000
        + bin8(b"\x03" * 20)
        + b"\x07"  # locktime 7
    )
    assert tx.serialize() == expected
    assert tx.txid == sha256d(expected)
    assert tx.txid_hex == hash_hex(sha256d(expected))
    assert tx.size == len(expected)


@given(strategies.transactions)
def test_txid_does_not_depend_on_how_the_transaction_was_made(tx: Transaction) -> None:
    decoded = Transaction.deserialize(tx.serialize())
    rebuilt = Transaction(tx.version, tx.inputs, tx.outputs, tx.locktime)
    assert decoded.txid == rebuilt.txid == tx.txid == sha256d(tx.serialize())


def _variants(tx: Transaction) -> dict[str, Transaction]:
    """``tx`` with one field changed, for every field."""
    first, second = tx.inputs
    out0 = tx.outputs[0]

    def with_input(n: int, **changes: object) -> Transaction:
        inputs = list(tx.inputs)
        inputs[n] = dataclasses.replace(inputs[n], **changes)  # type: ignore[arg-type]
        return dataclasses.replace(tx, inputs=tuple(inputs))

    def with_output(n: int, **changes: object) -> Transaction:
        outputs = list(tx.outputs)
        outputs[n] = dataclasses.replace(outputs[n], **changes)  # type: ignore[arg-type]
        return dataclasses.replace(tx, outputs=tuple(outputs))

    return {
        "version": dataclasses.replace(tx, version=2),
        "locktime": dataclasses.replace(tx, locktime=1),
        "prev txid of input 0": with_input(0, prevout=OutPoint(b"\xcc" * 32, 0)),
        "prev index of input 1": with_input(1, prevout=OutPoint(second.prevout.txid, 301)),
        "pubkey of input 0": with_input(0, pubkey=BOB.public_key),
        "value of output 0": with_output(0, value=out0.value + 1),
        "owner of output 0": with_output(0, pubkey_hash=pkh(ALICE)),
        "inputs swapped": dataclasses.replace(tx, inputs=(second, first)),
        "outputs swapped": dataclasses.replace(tx, outputs=tx.outputs[::-1]),
        "an output added": dataclasses.replace(tx, outputs=(*tx.outputs, out0)),
        "an input dropped": dataclasses.replace(tx, inputs=(first,)),
    }


def test_txid_changes_with_every_field_and_with_signatures() -> None:
    signed = sign(TX, [ALICE, BOB], REGTEST)
    variants = _variants(TX)
    variants["a signature"] = signed
    variants["the other signature"] = signed.with_signature(0, b"\x01" * 64, ALICE.public_key)
    txids = {name: tx.txid for name, tx in variants.items()}
    assert TX.txid not in txids.values()
    assert len(set(txids.values())) == len(txids)


# -- what a signature commits to


@pytest.mark.parametrize("field", list(_variants(TX)))
def test_sighash_changes_when_any_field_changes(field: str) -> None:
    changed = _variants(TX)[field]
    for index in range(len(changed.inputs)):
        assert changed.sighash(index, REGTEST.genesis_hash) != TX.sighash(
            index, REGTEST.genesis_hash
        )


def test_sighash_does_not_change_with_signatures() -> None:
    # A signature cannot sign itself; and signing one input must not invalidate another.
    signed = sign(TX, [ALICE, BOB], REGTEST)
    for index in range(2):
        assert signed.sighash(index, REGTEST.genesis_hash) == TX.sighash(
            index, REGTEST.genesis_hash
        )


def test_sighash_differs_per_input() -> None:
    assert TX.sighash(0, REGTEST.genesis_hash) != TX.sighash(1, REGTEST.genesis_hash)


def test_sighash_commits_to_the_network() -> None:
    digests = {p.name: TX.sighash(0, p.genesis_hash) for p in PRESETS.values()}
    assert len(set(digests.values())) == len(PRESETS)


def test_a_signature_for_one_network_is_invalid_on_every_other() -> None:
    signed = sign(TX, [ALICE, BOB], REGTEST)
    txin = signed.inputs[0]
    assert verify(txin.pubkey, signed.sighash(0, REGTEST.genesis_hash), txin.signature)
    for other in (DEMO, MAIN):
        assert not verify(txin.pubkey, signed.sighash(0, other.genesis_hash), txin.signature)


@given(st.data())
def test_every_input_of_a_signed_transaction_verifies(data: st.DataObject) -> None:
    n_inputs = data.draw(st.integers(1, 4), label="inputs")
    owners = [key(f"owner{data.draw(st.integers(0, 3))}") for _ in range(n_inputs)]
    tx = Transaction(
        data.draw(st.integers(0, 3), label="version"),
        tuple(TxIn(data.draw(strategies.outpoints, label="prevout")) for _ in owners),
        tuple(data.draw(st.lists(strategies.txouts, min_size=1, max_size=3), label="outputs")),
        data.draw(st.integers(0, 1000), label="locktime"),
    )
    signed = sign(tx, owners, REGTEST)
    for n, txin in enumerate(signed.inputs):
        assert verify(txin.pubkey, signed.sighash(n, REGTEST.genesis_hash), txin.signature)


def test_with_signature_sets_one_input_and_keeps_the_rest() -> None:
    signed = TX.with_signature(1, b"\x09" * 64, ALICE.public_key)
    assert signed.inputs[0] == TX.inputs[0]
    assert signed.inputs[1] == TxIn(TX.inputs[1].prevout, b"\x09" * 64, ALICE.public_key)
    assert signed.outputs == TX.outputs
    assert TX.inputs[1].signature == b""  # the original is untouched: it is immutable


def test_sighash_layout() -> None:
    # The tag, the network, the input's index, then the blanked transaction's hash: one hash of
    # the transaction for all inputs keeps checking n inputs linear in n.
    blank = dataclasses.replace(
        TX, inputs=tuple(dataclasses.replace(i, signature=b"") for i in TX.inputs)
    )
    expected = sha256d(
        b"forklab/sighash/v1"
        + REGTEST.genesis_hash
        + struct.pack("<I", 1)
        + sha256d(blank.serialize())
    )
    assert sign(TX, [ALICE, BOB], REGTEST).sighash(1, REGTEST.genesis_hash) == expected


# -- coinbases


def test_coinbase_carries_its_height_extranonce_and_message() -> None:
    cb = make_coinbase(1234, (TxOut(50 * COIN, pkh(ALICE)),), b"\x01\x02", b"hello")
    assert cb.is_coinbase()
    assert cb.coinbase_height == 1234
    assert cb.inputs[0].prevout == NULL_OUTPOINT
    assert cb.inputs[0].signature == coinbase_data(1234, b"\x01\x02", b"hello")
    assert cb.inputs[0].signature == struct.pack("<I", 1234) + b"\x01\x02hello"
    assert cb.total_out() == 50 * COIN


def test_coinbases_of_different_heights_have_different_txids() -> None:
    # BIP 34: the height in the coinbase makes every coinbase, hence every txid, unique.
    outputs = (TxOut(50 * COIN, pkh(ALICE)),)
    assert make_coinbase(1, outputs).txid != make_coinbase(2, outputs).txid


@pytest.mark.parametrize(
    ("name", "tx", "is_coinbase"),
    [
        ("one null input", make_coinbase(1, (TxOut(1, bytes(20)),)), True),
        ("no inputs", Transaction(1, (), (TxOut(1, bytes(20)),)), False),
        ("a real prevout", TX, False),
        (
            "null txid, index 0",
            Transaction(1, (TxIn(OutPoint(bytes(32), 0)),), (TxOut(1, bytes(20)),)),
            False,
        ),
        (
            "two null inputs",
            Transaction(1, (TxIn(NULL_OUTPOINT), TxIn(NULL_OUTPOINT)), (TxOut(1, bytes(20)),)),
            False,
        ),
    ],
)
def test_what_counts_as_a_coinbase(name: str, tx: Transaction, is_coinbase: bool) -> None:
    assert tx.is_coinbase() is is_coinbase


def test_coinbase_height_needs_four_bytes() -> None:
    short = Transaction(1, (TxIn(NULL_OUTPOINT, b"\x01\x02\x03"),), (TxOut(1, bytes(20)),))
    assert short.coinbase_height is None
    assert Transaction(1, (), ()).coinbase_height is None


# -- amounts


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0.00000000"),
        (1, "0.00000001"),
        (COIN, "1.00000000"),
        (21_000_000 * COIN, "21000000.00000000"),
        (2_099_999_997_690_000, "20999999.97690000"),
        (-150_000_000, "-1.50000000"),
    ],
)
def test_format_amount_has_eight_exact_decimals(value: int, text: str) -> None:
    assert format_amount(value) == text
