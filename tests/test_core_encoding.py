"""Specification of the canonical encodings: one byte string per value, and nothing else.

Every consensus object is hashed over its encoding, so two spellings of one value would give
one transaction two ids. For every decoder (Transaction, Block, BlockHeader, Coin, BlockUndo):

* what it encodes, it decodes to an equal object, and re-encodes to the same bytes;
* any other bytes, whether random, mutated from a valid encoding, or a valid msgpack value of
  the wrong shape, raise DecodeError and nothing else;
* a catalogue of the non-canonical spellings msgpack allows (a wider int format, str instead
  of bin, a wider length prefix, trailing bytes, a float, a boolean, a map...) is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgpack
import pytest
from blocktools import strategies
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.core.block import MAX_BLOCK_SIZE, Block
from node.core.encoding import expect_bytes, expect_int, expect_list, pack, unpack_canonical
from node.core.errors import DecodeError
from node.core.header import BlockHeader
from node.core.tx import MAX_MONEY, MAX_TX_SIZE, OutPoint, Transaction, TxIn, TxOut
from node.core.utxo import BlockUndo, Coin

# Each decoder with a strategy for the objects it must round-trip.
DECODERS: list[tuple[str, Callable[[bytes], Any], st.SearchStrategy[Any]]] = [
    ("transaction", Transaction.deserialize, strategies.transactions),
    ("block", Block.deserialize, strategies.blocks),
    ("header", BlockHeader.deserialize, strategies.headers),
    ("coin", Coin.deserialize, strategies.coins),
    ("block undo", BlockUndo.deserialize, strategies.undos),
]
DECODER_IDS = [name for name, _, _ in DECODERS]


@pytest.mark.parametrize(("name", "decode", "objects"), DECODERS, ids=DECODER_IDS)
def test_round_trip(name: str, decode: Callable[[bytes], Any], objects: Any) -> None:
    @given(objects)
    def check(obj: Any) -> None:
        data = obj.serialize()
        decoded = decode(data)
        assert decoded == obj
        assert decoded.serialize() == data

    check()


@pytest.mark.parametrize(("name", "decode", "objects"), DECODERS, ids=DECODER_IDS)
def test_arbitrary_bytes_raise_only_decode_error(
    name: str, decode: Callable[[bytes], Any], objects: Any
) -> None:
    @given(st.binary(max_size=300))
    def check(data: bytes) -> None:
        _decode_or_decode_error(decode, data)

    check()


@pytest.mark.parametrize(("name", "decode", "objects"), DECODERS, ids=DECODER_IDS)
def test_mutated_encodings_raise_only_decode_error(
    name: str, decode: Callable[[bytes], Any], objects: Any
) -> None:
    """Random bytes rarely get past the first byte; mutations of valid data get deep inside."""

    @settings(suppress_health_check=[HealthCheck.too_slow])
    @given(objects, st.data())
    def check(obj: Any, data: st.DataObject) -> None:
        encoded = bytearray(obj.serialize())
        for _ in range(data.draw(st.integers(1, 3), label="mutations")):
            kind = data.draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
            at = data.draw(st.integers(0, max(0, len(encoded) - 1)), label="position")
            if kind == "flip" and encoded:
                encoded[at] ^= data.draw(st.integers(1, 255), label="mask")
            elif kind == "insert":
                encoded[at:at] = data.draw(st.binary(min_size=1, max_size=4), label="bytes")
            elif kind == "delete":
                del encoded[at : at + data.draw(st.integers(1, 4), label="count")]
            else:
                del encoded[at:]
        _decode_or_decode_error(decode, bytes(encoded))

    check()


def _msgpack_values() -> st.SearchStrategy[Any]:
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**63), 2**64 - 1),
        st.floats(allow_nan=False),
        st.binary(max_size=40),
        st.text(max_size=10),
    )
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=3), inner, max_size=3)
        ),
        max_leaves=20,
    )


@pytest.mark.parametrize(("name", "decode", "objects"), DECODERS, ids=DECODER_IDS)
def test_well_formed_msgpack_of_any_shape_raises_only_decode_error(
    name: str, decode: Callable[[bytes], Any], objects: Any
) -> None:
    @given(_msgpack_values())
    def check(value: Any) -> None:
        _decode_or_decode_error(decode, msgpack.packb(value, use_bin_type=True))

    check()


def _decode_or_decode_error(decode: Callable[[bytes], Any], data: bytes) -> None:
    try:
        obj = decode(data)
    except DecodeError:
        return
    # Whatever is accepted must be the canonical encoding of what it decoded to.
    assert obj.serialize() == data


# -- the catalogue of non-canonical and malformed transactions

SAMPLE_TX = Transaction(
    1,
    (TxIn(OutPoint(bytes(range(32)), 7), b"\x11" * 64, b"\x02" + b"\x22" * 32),),
    (TxOut(5000, b"\x33" * 20), TxOut(MAX_MONEY, b"\x44" * 20)),
    0,
)
SAMPLE = SAMPLE_TX.serialize()
# Fields of the canonical encoding, by offset: 0x94 (array of 4), version 0x01, 0x91 (1 input),
# 0x94 (input array), 0xc4 0x20 + 32-byte txid, ...; the locktime 0x00 is the last byte.
assert SAMPLE[:4] == b"\x94\x01\x91\x94"
assert SAMPLE[4:6] == b"\xc4\x20"
assert SAMPLE[-1:] == b"\x00"


def _tx_obj(**changes: Any) -> list[Any]:
    obj = SAMPLE_TX.to_obj()
    for path, value in changes.items():
        target: Any = obj
        *route, last = [int(part) for part in path.lstrip("_").split("_")]
        for index in route:
            target = target[index]
        target[last] = value
    return obj


NON_CANONICAL_TRANSACTIONS: list[tuple[str, bytes]] = [
    ("version as uint8 instead of fixint", b"\x94\xcc\x01" + SAMPLE[2:]),
    ("version as uint64", b"\x94\xcf" + (1).to_bytes(8, "big") + SAMPLE[2:]),
    ("version as a negative int8 spelling of 1", b"\x94\xd0\x01" + SAMPLE[2:]),
    ("locktime as uint16", SAMPLE[:-1] + b"\xcd\x00\x00"),
    ("outer array as array16", b"\xdc\x00\x04" + SAMPLE[1:]),
    ("inputs array as array16", SAMPLE[:2] + b"\xdc\x00\x01" + SAMPLE[3:]),
    ("txid as bin16 instead of bin8", SAMPLE[:4] + b"\xc5\x00\x20" + SAMPLE[6:]),
    ("txid as bin32", SAMPLE[:4] + b"\xc6\x00\x00\x00\x20" + SAMPLE[6:]),
    ("trailing byte", SAMPLE + b"\x00"),
    ("trailing copy", SAMPLE + SAMPLE),
    ("truncated by one byte", SAMPLE[:-1]),
    ("truncated in the txid", SAMPLE[:20]),
    ("only the array header", SAMPLE[:1]),
    ("empty", b""),
    ("txid as str instead of bin", pack(_tx_obj(_1_0_0="a" * 32))),
    ("pubkey hash as str", pack(_tx_obj(_2_0_1="b" * 20))),
    ("txid as raw str (old msgpack)", msgpack.packb(SAMPLE_TX.to_obj(), use_bin_type=False)),
    ("version as bool", pack(_tx_obj(_0=True))),
    ("locktime as bool", pack(_tx_obj(_3=False))),
    ("value as float", pack(_tx_obj(_2_0_0=5000.0))),
    ("version as float32", SAMPLE[:1] + b"\xca" + msgpack.packb(1.0)[1:5] + SAMPLE[2:]),
    ("version as nil", pack(_tx_obj(_0=None))),
    ("value negative", pack(_tx_obj(_2_0_0=-1))),
    ("value above MAX_MONEY", pack(_tx_obj(_2_0_0=MAX_MONEY + 1))),
    ("prev_index above u32", pack(_tx_obj(_1_0_1=2**32))),
    ("version above u32", pack(_tx_obj(_0=2**32))),
    ("txid of 31 bytes", pack(_tx_obj(_1_0_0=bytes(31)))),
    ("pubkey hash of 21 bytes", pack(_tx_obj(_2_0_1=bytes(21)))),
    ("signature over 100 bytes", pack(_tx_obj(_1_0_2=bytes(101)))),
    ("pubkey of 34 bytes", pack(_tx_obj(_1_0_3=bytes(34)))),
    ("transaction as a map", pack(dict(zip("vilt", SAMPLE_TX.to_obj(), strict=True)))),
    ("input as a map", pack(_tx_obj(_1_0={"txid": bytes(32)}))),
    ("three fields", pack(SAMPLE_TX.to_obj()[:3])),
    ("five fields", pack([*SAMPLE_TX.to_obj(), 0])),
    ("input of three fields", pack(_tx_obj(_1_0=[bytes(32), 0, b""]))),
    ("output of three fields", pack(_tx_obj(_2_0=[1, bytes(20), 0]))),
    ("inputs not an array", pack(_tx_obj(_1=b"inputs"))),
    ("ext type", b"\x94\xd4\x01\x01" + SAMPLE[2:]),
    ("bare integer", pack(1)),
    ("nested too deep", b"\x91" * 100_000),
    ("oversized", pack([1, [], [[1, bytes(20)]] * (MAX_TX_SIZE // 22), 0])),
]


@pytest.mark.parametrize(
    "data", [pytest.param(data, id=name) for name, data in NON_CANONICAL_TRANSACTIONS]
)
def test_non_canonical_transaction_is_refused(data: bytes) -> None:
    with pytest.raises(DecodeError):
        Transaction.deserialize(data)


def test_the_sample_itself_decodes() -> None:
    # Otherwise every case above would pass for the wrong reason.
    assert Transaction.deserialize(SAMPLE) == SAMPLE_TX


def test_oversized_input_is_refused_before_decoding() -> None:
    # One byte past the limit, though the prefix is a perfectly good transaction.
    data = SAMPLE + bytes(MAX_TX_SIZE + 1 - len(SAMPLE))
    with pytest.raises(DecodeError, match="exceeds the limit"):
        Transaction.deserialize(data)


@pytest.mark.parametrize("value", ["text", 5, None, [1]])
def test_decoders_take_only_bytes(value: Any) -> None:
    with pytest.raises(DecodeError):
        Transaction.deserialize(value)


# -- blocks, coins and undo data

SAMPLE_HEADER = BlockHeader(1, bytes(32), bytes(32), 1_700_000_000, 0x207FFFFF, 3)
SAMPLE_BLOCK = Block(SAMPLE_HEADER, (SAMPLE_TX,))
SAMPLE_COIN = Coin(5000, b"\x33" * 20, 120, True)
SAMPLE_UNDO = BlockUndo(((OutPoint(bytes(range(32)), 7), SAMPLE_COIN),))

NON_CANONICAL_OTHERS: list[tuple[str, Callable[[bytes], Any], bytes]] = [
    ("block: header of 79 bytes", Block.deserialize, pack([bytes(79), [SAMPLE_TX.to_obj()]])),
    ("block: header as str", Block.deserialize, pack(["h" * 80, [SAMPLE_TX.to_obj()]])),
    ("block: three fields", Block.deserialize, pack([*SAMPLE_BLOCK.to_obj(), []])),
    (
        "block: a non-canonical transaction inside",
        Block.deserialize,
        pack([SAMPLE_HEADER.serialize(), [_tx_obj(_0=True)]]),
    ),
    ("block: trailing byte", Block.deserialize, SAMPLE_BLOCK.serialize() + b"\xc0"),
    ("block: truncated", Block.deserialize, SAMPLE_BLOCK.serialize()[:-1]),
    (
        "block: oversized",
        Block.deserialize,
        pack([SAMPLE_HEADER.serialize(), [SAMPLE_TX.to_obj()] * (MAX_BLOCK_SIZE // 100)]),
    ),
    ("coin: is_coinbase as bool", Coin.deserialize, pack([5000, bytes(20), 1, True])),
    ("coin: is_coinbase 2", Coin.deserialize, pack([5000, bytes(20), 1, 2])),
    ("coin: value above MAX_MONEY", Coin.deserialize, pack([MAX_MONEY + 1, bytes(20), 1, 0])),
    ("coin: height above u32", Coin.deserialize, pack([1, bytes(20), 2**32, 0])),
    (
        "coin: value as uint32",
        Coin.deserialize,
        b"\x94\xce\x00\x00\x13\x88" + pack(bytes(20)) + b"\x01\x00",
    ),
    ("coin: five fields", Coin.deserialize, pack([*SAMPLE_COIN.to_obj(), 0])),
    ("coin: trailing byte", Coin.deserialize, SAMPLE_COIN.serialize() + b"\x00"),
    ("coin: oversized", Coin.deserialize, pack([1, bytes(100), 1, 0])),
    ("undo: entry of two fields", BlockUndo.deserialize, pack([[bytes(32), 0]])),
    ("undo: a map", BlockUndo.deserialize, pack({"spent": []})),
    ("undo: bad coin inside", BlockUndo.deserialize, pack([[bytes(32), 0, [1, bytes(20), 1, 3]]])),
    ("undo: truncated", BlockUndo.deserialize, SAMPLE_UNDO.serialize()[:-1]),
    ("header: 81 bytes", BlockHeader.deserialize, SAMPLE_HEADER.serialize() + b"\x00"),
    ("header: msgpack-wrapped", BlockHeader.deserialize, pack(SAMPLE_HEADER.serialize())),
]


@pytest.mark.parametrize(
    ("decode", "data"),
    [pytest.param(decode, data, id=name) for name, decode, data in NON_CANONICAL_OTHERS],
)
def test_non_canonical_block_coin_undo_header_is_refused(
    decode: Callable[[bytes], Any], data: bytes
) -> None:
    with pytest.raises(DecodeError):
        decode(data)


def test_samples_of_other_objects_decode() -> None:
    assert Block.deserialize(SAMPLE_BLOCK.serialize()) == SAMPLE_BLOCK
    assert Coin.deserialize(SAMPLE_COIN.serialize()) == SAMPLE_COIN
    assert BlockUndo.deserialize(SAMPLE_UNDO.serialize()) == SAMPLE_UNDO
    assert BlockUndo.deserialize(BlockUndo(()).serialize()) == BlockUndo(())


def test_coin_encoding_is_as_documented() -> None:
    # [value, pubkey_hash, height, is_coinbase]: fixarray 4, uint16 5000, bin8 20, fixint, 1.
    assert SAMPLE_COIN.serialize() == b"\x94\xcd\x13\x88\xc4\x14" + b"\x33" * 20 + b"\x78\x01"


# -- the shape helpers


def test_expect_helpers_name_what_was_wrong() -> None:
    with pytest.raises(DecodeError, match="tx: expected an array, got a map"):
        expect_list({}, "tx")
    with pytest.raises(DecodeError, match="tx: expected 4 fields, got 3"):
        expect_list([1, 2, 3], "tx", 4)
    with pytest.raises(DecodeError, match="v: expected an integer, got a boolean"):
        expect_int(True, "v", 0, 1)
    with pytest.raises(DecodeError, match=r"v: 7 is outside \[0, 5\]"):
        expect_int(7, "v", 0, 5)
    with pytest.raises(DecodeError, match="h: expected bytes, got a string"):
        expect_bytes("x", "h")
    with pytest.raises(DecodeError, match="h: expected 32 bytes, got 2"):
        expect_bytes(b"ab", "h", size=32)


def test_unpack_canonical_checks_size_before_decoding() -> None:
    with pytest.raises(DecodeError, match="exceeds the limit of 4"):
        unpack_canonical(pack(b"hello"), max_size=4, what="x")
