"""P2P message encoding: every message round-trips, and no byte string decodes to anything but a
message or a DecodeError.

The catalogue holds one representative of every message type; hypothesis then builds arbitrary
messages (round trip), arbitrary bytes and arbitrary msgpack values (only DecodeError), and the
limits are checked at their edges: a list one item over its bound is refused, one at the bound
accepted.
"""

from __future__ import annotations

import contextlib
from typing import Any

import msgpack
import pytest
from blocktools import ChainBuilder
from hypothesis import given, settings
from hypothesis import strategies as st

from node.core.encoding import pack
from node.core.errors import DecodeError
from node.core.header import BlockHeader
from node.p2p.messages import (
    MAX_ADDR,
    MAX_FRAME_SIZE,
    MAX_HEADERS,
    MAX_INV_ITEMS,
    MAX_LOCATOR,
    MESSAGE_TYPES,
    Addr,
    AddrEntry,
    BlockMsg,
    BlockTxn,
    CmpctBlock,
    GetAddr,
    GetBlockTxn,
    GetData,
    GetHeaders,
    Headers,
    Inv,
    InvItem,
    InvType,
    Message,
    NotFound,
    Ping,
    Pong,
    PrefilledTx,
    Reject,
    SendCmpct,
    TxMsg,
    UnknownMessageError,
    Verack,
    Version,
    decode_message,
)

_CHAIN = ChainBuilder()
_CHAIN.extend(3)
_BLOCK = _CHAIN["b3"]
_TX = _CHAIN.spend([_CHAIN.coinbase_of("b1")], fee=1000)
_H = bytes(range(32))

CATALOGUE: dict[str, Message] = {
    "version": Version(1, _H, 42, "127.0.0.1:18444", "/forklab:0.1.0/", 2**64 - 1, 1_764_028_800),
    "verack": Verack(),
    "ping": Ping(7),
    "pong": Pong(7),
    "getaddr": GetAddr(),
    "addr": Addr((AddrEntry("10.0.0.1:18444", 1_764_028_800), AddrEntry("[::1]:1", 0))),
    "inv": Inv((InvItem(InvType.TX, _TX.txid), InvItem(InvType.BLOCK, _BLOCK.hash))),
    "getdata": GetData((InvItem(InvType.CMPCT_BLOCK, _BLOCK.hash),)),
    "notfound": NotFound((InvItem(InvType.TX, _H),)),
    "getheaders": GetHeaders((_BLOCK.hash, _H), bytes(32)),
    "headers": Headers(tuple(_CHAIN[n].header for n in ("b1", "b2", "b3"))),
    "block": BlockMsg(_BLOCK),
    "tx": TxMsg(_TX),
    "sendcmpct": SendCmpct(True, 1),
    "cmpctblock": CmpctBlock(
        _BLOCK.header, 5, (b"abcdef",), (PrefilledTx(0, _BLOCK.transactions[0]),)
    ),
    "getblocktxn": GetBlockTxn(_BLOCK.hash, (1, 2, 5)),
    "blocktxn": BlockTxn(_BLOCK.hash, (_TX,)),
    "reject": Reject("tx", "bad-txns-signature", _TX.txid, "input 0"),
}


def test_catalogue_covers_every_registered_message() -> None:
    assert set(CATALOGUE) == set(MESSAGE_TYPES)
    for msgtype, message in CATALOGUE.items():
        assert message.msgtype == msgtype


@pytest.mark.parametrize("msgtype", sorted(CATALOGUE))
def test_round_trip(msgtype: str) -> None:
    message = CATALOGUE[msgtype]
    frame = message.encode()
    assert decode_message(frame) == message
    assert decode_message(frame).encode() == frame


def test_frame_is_a_msgpack_array_led_by_the_msgtype() -> None:
    assert msgpack.unpackb(Ping(7).encode()) == ["ping", 7]
    assert msgpack.unpackb(Verack().encode()) == ["verack"]


# -- refusals, each with its reason


def _frame(*items: Any) -> bytes:
    return pack(list(items))


REFUSED: dict[str, bytes] = {
    "empty input": b"",
    "not msgpack": b"\xc1",
    "truncated": Ping(7).encode()[:-1],
    "trailing bytes": Ping(7).encode() + b"\x00",
    "not an array": pack({"ping": 7}),
    "empty array": pack([]),
    "msgtype not a string": _frame(1, 7),
    "missing field": _frame("ping"),
    "extra field": _frame("ping", 7, 8),
    "wrong field type": _frame("ping", b"7"),
    "negative nonce": _frame("ping", -1),
    "boolean for an integer": _frame("ping", True),
    "non-canonical integer": b"\x92\xa4ping\xcd\x00\x07",
    "inv item with unknown type": _frame("inv", [[3, _H]]),
    "inv hash too short": _frame("inv", [[1, _H[:31]]]),
    "header of 79 bytes": _frame("headers", [bytes(79)]),
    "getblocktxn indexes not increasing": _frame("getblocktxn", _H, [2, 2]),
    "cmpctblock prefilled index past the end": _frame(
        "cmpctblock", _BLOCK.header.serialize(), 0, [], [[1, _TX.serialize()]]
    ),
    "cmpctblock short id of 5 bytes": _frame(
        "cmpctblock", _BLOCK.header.serialize(), 0, [b"12345"], []
    ),
    "block bytes not a block": _frame("block", b"\x90"),
    "tx bytes not a transaction": _frame("tx", b"\x01"),
    "reject hash of 5 bytes": _frame("reject", "tx", "x", b"12345", ""),
    "sendcmpct flag as an integer": _frame("sendcmpct", 1, 1),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused(case: str) -> None:
    with pytest.raises(DecodeError):
        decode_message(REFUSED[case])


def test_unknown_msgtype_is_its_own_error() -> None:
    with pytest.raises(UnknownMessageError) as err:
        decode_message(_frame("mempool"))
    assert err.value.msgtype == "mempool"


def test_size_is_checked_before_decoding() -> None:
    frame = BlockMsg(_BLOCK).encode()
    with pytest.raises(DecodeError, match="exceeds the limit"):
        decode_message(frame, max_size=len(frame) - 1)
    assert decode_message(frame, max_size=len(frame)) == BlockMsg(_BLOCK)


@pytest.mark.parametrize(
    ("msgtype", "limit", "item"),
    [
        ("inv", MAX_INV_ITEMS, [1, _H]),
        ("getdata", MAX_INV_ITEMS, [2, _H]),
        ("notfound", MAX_INV_ITEMS, [1, _H]),
        ("addr", MAX_ADDR, ["127.0.0.1:1", 0]),
        ("headers", MAX_HEADERS, _BLOCK.header.serialize()),
    ],
)
def test_item_counts_are_bounded(msgtype: str, limit: int, item: Any) -> None:
    assert len(decode_message(_frame(msgtype, [item] * limit)).fields()[0]) == limit
    with pytest.raises(DecodeError, match="exceeds the limit"):
        decode_message(_frame(msgtype, [item] * (limit + 1)))


def test_locator_is_bounded() -> None:
    decode_message(_frame("getheaders", [_H] * MAX_LOCATOR, _H))
    with pytest.raises(DecodeError):
        decode_message(_frame("getheaders", [_H] * (MAX_LOCATOR + 1), _H))


def test_largest_block_fits_a_frame() -> None:
    assert MAX_FRAME_SIZE > 1_000_000 + 64


# -- properties

_hash = st.binary(min_size=32, max_size=32)
_u64 = st.integers(0, 2**64 - 1)
_u32 = st.integers(0, 2**32 - 1)
_text = st.text(max_size=40)
_items = st.lists(st.builds(InvItem, st.sampled_from(list(InvType)), _hash), max_size=20)
_header = st.builds(BlockHeader, _u32, _hash, _hash, _u32, _u32, _u32)

_messages = st.one_of(
    st.builds(Version, _u32, _hash, _u32, _text, _text, _u64, _u64),
    st.builds(Verack),
    st.builds(GetAddr),
    st.builds(Ping, _u64),
    st.builds(Pong, _u64),
    st.builds(Addr, st.lists(st.builds(AddrEntry, _text, _u64), max_size=10).map(tuple)),
    st.builds(Inv, _items.map(tuple)),
    st.builds(GetData, _items.map(tuple)),
    st.builds(NotFound, _items.map(tuple)),
    st.builds(GetHeaders, st.lists(_hash, max_size=10).map(tuple), _hash),
    st.builds(Headers, st.lists(_header, max_size=5).map(tuple)),
    st.builds(SendCmpct, st.booleans(), _u64),
    st.builds(
        GetBlockTxn,
        _hash,
        st.sets(st.integers(0, 10_000), max_size=20).map(lambda s: tuple(sorted(s))),
    ),
    st.builds(
        Reject, st.text(max_size=12), st.text(max_size=30), st.sampled_from([b"", _H]), _text
    ),
)


@given(_messages)
@settings(max_examples=300)
def test_any_message_round_trips(message: Message) -> None:
    assert decode_message(message.encode()) == message


@given(st.binary(max_size=300))
@settings(max_examples=200)
def test_arbitrary_bytes_raise_only_decode_error(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        decode_message(data)


_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.binary(max_size=40)
    | st.text(max_size=10),
    lambda children: st.lists(children, max_size=5),
    max_leaves=20,
)


@given(st.sampled_from(sorted(MESSAGE_TYPES)), st.lists(_values, max_size=5))
@settings(max_examples=200)
def test_well_formed_msgpack_of_any_shape_raises_only_decode_error(
    msgtype: str, fields: list[Any]
) -> None:
    with contextlib.suppress(DecodeError):
        decode_message(_frame(msgtype, *fields))
