"""P2P messages: one small frozen class per message, and the one registry that decodes them.

A frame is one binary WebSocket message holding one canonical msgpack array (see
:mod:`node.core.encoding`)::

    [msgtype, field1, field2, ...]

``msgtype`` is a short string; the fields are positional, as in every forklab encoding. Blocks,
transactions and headers travel as their own consensus encodings (``bin`` fields), so the bytes
a peer hashes are exactly the bytes it received.

Decoding is defensive in the order btcd taught: the frame's size is checked before a byte is
parsed, every list is bounded (``MAX_*`` below) before it is walked, and the class to build is
looked up in :data:`MESSAGE_TYPES` (never chosen by the peer any other way). Every fault raises
:class:`~node.core.errors.DecodeError`; an unknown ``msgtype`` raises its subclass
:class:`UnknownMessageError`, which a peer is scored for less harshly (a newer client may know more
messages than we do).

This module encodes and decodes; what a message *means* (handshake, relay, sync) is for
:mod:`node.p2p.peer` and :mod:`node.p2p.manager`. The full field tables are in docs/protocol.md.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from node.core.block import MAX_BLOCK_SIZE, Block
from node.core.encoding import expect_bytes, expect_int, expect_list, pack, unpack_canonical
from node.core.errors import DecodeError
from node.core.header import HEADER_SIZE, BlockHeader
from node.core.tx import MAX_TX_SIZE, Transaction

PROTOCOL_VERSION = 1
"""The version this node speaks; peers below MIN_PROTOCOL_VERSION are refused."""
MIN_PROTOCOL_VERSION = 1

MAX_FRAME_SIZE = MAX_BLOCK_SIZE + 64 * 1024
"""Largest frame: a maximal block plus room for the message around it."""
MAX_INV_ITEMS = 1000
"""Items in one inv, getdata or notfound."""
MAX_HEADERS = 2000
"""Headers in one headers message; a full batch means "ask again from my last one"."""
MAX_LOCATOR = 101
"""Hashes in a block locator (Bitcoin Core's MAX_LOCATOR_SZ)."""
MAX_ADDR = 1000
"""Addresses in one addr message."""
MAX_BLOCK_TXS = MAX_BLOCK_SIZE // 60
"""More transactions than fit in a block (the smallest encodes to more than 60 bytes)."""
MAX_ADDRESS_LEN = 100
MAX_USER_AGENT = 256
MAX_REASON = 64
MAX_DETAIL = 256
SHORT_ID_SIZE = 6

_U32 = 0xFFFFFFFF
_U64 = 0xFFFFFFFFFFFFFFFF


class UnknownMessageError(DecodeError):
    """A well-formed frame whose msgtype this node does not know."""

    def __init__(self, msgtype: str) -> None:
        self.msgtype = msgtype
        super().__init__(f"unknown message type {msgtype[:32]!r}")


class InvType(enum.IntEnum):
    """What an inventory hash names (Bitcoin's MSG_TX, MSG_BLOCK and MSG_CMPCT_BLOCK)."""

    TX = 1
    BLOCK = 2
    CMPCT_BLOCK = 4


@dataclass(frozen=True, slots=True)
class InvItem:
    type: InvType
    hash: bytes

    def to_obj(self) -> list[Any]:
        return [int(self.type), self.hash]

    @classmethod
    def from_obj(cls, obj: Any, what: str) -> InvItem:
        fields = expect_list(obj, what, 2)
        code = expect_int(fields[0], f"{what} type", 0, _U32)
        try:
            kind = InvType(code)
        except ValueError:
            raise DecodeError(f"{what}: unknown inventory type {code}") from None
        return cls(kind, expect_bytes(fields[1], f"{what} hash", size=32))


@dataclass(frozen=True, slots=True)
class AddrEntry:
    address: str
    """Where the node listens, "host:port"."""
    last_seen: int
    """Seconds since the epoch when the address was last known to be good."""


@dataclass(frozen=True, slots=True)
class PrefilledTx:
    index: int
    tx: Transaction


# -- field helpers ---------------------------------------------------------------------------


def _str(obj: Any, what: str, max_len: int) -> str:
    if not isinstance(obj, str):
        raise DecodeError(f"{what}: expected a string")
    if len(obj) > max_len:
        raise DecodeError(f"{what}: {len(obj)} characters exceeds the limit of {max_len}")
    return obj


def _bool(obj: Any, what: str) -> bool:
    if not isinstance(obj, bool):
        raise DecodeError(f"{what}: expected a boolean")
    return obj


def _bounded_list(obj: Any, what: str, max_items: int) -> list[Any]:
    items = expect_list(obj, what)
    if len(items) > max_items:
        raise DecodeError(f"{what}: {len(items)} items exceeds the limit of {max_items}")
    return items


def _hash(obj: Any, what: str) -> bytes:
    return expect_bytes(obj, what, size=32)


def _tx(obj: Any, what: str) -> Transaction:
    return Transaction.deserialize(expect_bytes(obj, what, max_size=MAX_TX_SIZE))


def _header(obj: Any, what: str) -> BlockHeader:
    return BlockHeader.deserialize(expect_bytes(obj, what, size=HEADER_SIZE))


def _check_fields(fields: list[Any], msgtype: str, count: int) -> None:
    if len(fields) != count:
        raise DecodeError(f"{msgtype}: expected {count} fields, got {len(fields)}")


# -- messages --------------------------------------------------------------------------------


class Message:
    """Base of every message: ``msgtype`` and a symmetric field encoding."""

    __slots__ = ()
    msgtype: ClassVar[str]

    def fields(self) -> list[Any]:
        raise NotImplementedError

    @classmethod
    def from_fields(cls, fields: list[Any]) -> Message:
        raise NotImplementedError

    def encode(self) -> bytes:
        return pack([self.msgtype, *self.fields()])


@dataclass(frozen=True, slots=True)
class Version(Message):
    msgtype: ClassVar[str] = "version"
    protocol_version: int
    genesis_hash: bytes
    """The network's identity: peers of another network are refused."""
    best_height: int
    listen_address: str
    """Where the sender accepts connections ("" if it does not)."""
    user_agent: str
    nonce: int
    """Random per node; receiving our own nonce means we dialled ourselves."""
    time: int

    def fields(self) -> list[Any]:
        return [
            self.protocol_version,
            self.genesis_hash,
            self.best_height,
            self.listen_address,
            self.user_agent,
            self.nonce,
            self.time,
        ]

    @classmethod
    def from_fields(cls, fields: list[Any]) -> Version:
        _check_fields(fields, cls.msgtype, 7)
        return cls(
            expect_int(fields[0], "version protocol_version", 0, _U32),
            _hash(fields[1], "version genesis_hash"),
            expect_int(fields[2], "version best_height", 0, _U32),
            _str(fields[3], "version listen_address", MAX_ADDRESS_LEN),
            _str(fields[4], "version user_agent", MAX_USER_AGENT),
            expect_int(fields[5], "version nonce", 0, _U64),
            expect_int(fields[6], "version time", 0, _U64),
        )


@dataclass(frozen=True, slots=True)
class _Empty(Message):
    def fields(self) -> list[Any]:
        return []

    @classmethod
    def from_fields(cls, fields: list[Any]) -> Message:
        _check_fields(fields, cls.msgtype, 0)
        return cls()


@dataclass(frozen=True, slots=True)
class Verack(_Empty):
    msgtype: ClassVar[str] = "verack"


@dataclass(frozen=True, slots=True)
class GetAddr(_Empty):
    msgtype: ClassVar[str] = "getaddr"


@dataclass(frozen=True, slots=True)
class _Nonce(Message):
    nonce: int

    def fields(self) -> list[Any]:
        return [self.nonce]

    @classmethod
    def from_fields(cls, fields: list[Any]) -> Message:
        _check_fields(fields, cls.msgtype, 1)
        return cls(expect_int(fields[0], f"{cls.msgtype} nonce", 0, _U64))


@dataclass(frozen=True, slots=True)
class Ping(_Nonce):
    msgtype: ClassVar[str] = "ping"


@dataclass(frozen=True, slots=True)
class Pong(_Nonce):
    msgtype: ClassVar[str] = "pong"


@dataclass(frozen=True, slots=True)
class Addr(Message):
    msgtype: ClassVar[str] = "addr"
    entries: tuple[AddrEntry, ...]

    def fields(self) -> list[Any]:
        return [[[e.address, e.last_seen] for e in self.entries]]

    @classmethod
    def from_fields(cls, fields: list[Any]) -> Addr:
        _check_fields(fields, cls.msgtype, 1)
        entries = []
        for n, raw in enumerate(_bounded_list(fields[0], "addr entries", MAX_ADDR)):
            entry = expect_list(raw, f"addr entry {n}", 2)
            entries.append(
                AddrEntry(
                    _str(entry[0], f"addr entry {n} address", MAX_ADDRESS_LEN),
                    expect_int(entry[1], f"addr entry {n} last_seen", 0, _U64),
                )
            )
        return cls(tuple(entries))


@dataclass(frozen=True, slots=True)
class _Inventory(Message):
    items: tuple[InvItem, ...]

    def fields(self) -> list[Any]:
        return [[item.to_obj() for item in self.items]]

    @classmethod
    def from_fields(cls, fields: list[Any]) -> Message:
        _check_fields(fields, cls.msgtype, 1)
        raw = _bounded_list(fields[0], f"{cls.msgtype} items", MAX_INV_ITEMS)
        return cls(tuple(InvItem.from_obj(o, f"{cls.msgtype} item {n}") for n, o in enumerate(raw)))


@dataclass(frozen=True, slots=True)
class Inv(_Inventory):
    """ "I have these": announces transactions and blocks."""

    msgtype: ClassVar[str] = "inv"


@dataclass(frozen=True, slots=True)
class GetData(_Inventory):
    """ "Send me these": answered by tx, block or cmpctblock, and notfound for the rest."""

    msgtype: ClassVar[str] = "getdata"


@dataclass(frozen=True, slots=True)
class NotFound(_Inventory):
    msgtype: ClassVar[str] = "notfound"


@dataclass(frozen=True, slots=True)
class GetHeaders(Message):
    """Headers after the first locator hash on the receiver's active chain, up to ``stop``."""

    msgtype: ClassVar[str] = "getheaders"
    locator: tuple[bytes, ...]
    stop_hash: bytes
    """Stop after this hash; 32 zero bytes for "as many as fit"."""

    def fields(self) -> list[Any]:
        return [list(self.locator), self.stop_hash]

    @classmethod
    def from_fields(cls, fields: list[Any]) -> GetHeaders:
        _check_fields(fields, cls.msgtype, 2)
        raw = _bounded_list(fields[0], "getheaders locator", MAX_LOCATOR)
        locator = tuple(_hash(h, f"getheaders locator {n}") for n, h in enumerate(raw))
        return cls(locator, _hash(fields[1], "getheaders stop_hash"))


@dataclass(frozen=True, slots=True)
class Headers(Message):
    msgtype: ClassVar[str] = "headers"
    headers: tuple[BlockHeader, ...]

    def fields(self) -> list[Any]:
        return [[h.serialize() for h in self.headers]]

    @classmethod
    def from_fields(cls, fields: list[Any]) -> Headers:
        _check_fields(fields, cls.msgtype, 1)
        raw = _bounded_list(fields[0], "headers", MAX_HEADERS)
        return cls(tuple(_header(h, f"header {n}") for n, h in enumerate(raw)))


@dataclass(frozen=True, slots=True)
class BlockMsg(Message):
    msgtype: ClassVar[str] = "block"
    block: Block

    def fields(self) -> list[Any]:
        return [self.block.serialize()]

    @classmethod
    def from_fields(cls, fields: list[Any]) -> BlockMsg:
        _check_fields(fields, cls.msgtype, 1)
        data = expect_bytes(fields[0], "block", max_size=MAX_BLOCK_SIZE)
        return cls(Block.deserialize(data))


@dataclass(frozen=True, slots=True)
class TxMsg(Message):
    msgtype: ClassVar[str] = "tx"
    tx: Transaction

    def fields(self) -> list[Any]:
        return [self.tx.serialize()]

    @classmethod
    def from_fields(cls, fields: list[Any]) -> TxMsg:
        _check_fields(fields, cls.msgtype, 1)
        return cls(_tx(fields[0], "tx"))


@dataclass(frozen=True, slots=True)
class SendCmpct(Message):
    """Compact blocks understood; ``high_bandwidth`` asks the receiver to push new blocks."""

    msgtype: ClassVar[str] = "sendcmpct"
    high_bandwidth: bool
    version: int

    def fields(self) -> list[Any]:
        return [self.high_bandwidth, self.version]

    @classmethod
    def from_fields(cls, fields: list[Any]) -> SendCmpct:
        _check_fields(fields, cls.msgtype, 2)
        return cls(
            _bool(fields[0], "sendcmpct high_bandwidth"),
            expect_int(fields[1], "sendcmpct version", 0, _U64),
        )


@dataclass(frozen=True, slots=True)
class CmpctBlock(Message):
    """A block as its header, short ids of its transactions, and a few transactions in full."""

    msgtype: ClassVar[str] = "cmpctblock"
    header: BlockHeader
    nonce: int
    """Keys the short ids together with the header (see :mod:`node.p2p.compact`)."""
    short_ids: tuple[bytes, ...]
    prefilled: tuple[PrefilledTx, ...]
    """Transactions sent whole, by absolute index in strictly increasing order (coinbase first)."""

    def fields(self) -> list[Any]:
        return [
            self.header.serialize(),
            self.nonce,
            list(self.short_ids),
            [[p.index, p.tx.serialize()] for p in self.prefilled],
        ]

    @classmethod
    def from_fields(cls, fields: list[Any]) -> CmpctBlock:
        _check_fields(fields, cls.msgtype, 4)
        header = _header(fields[0], "cmpctblock header")
        nonce = expect_int(fields[1], "cmpctblock nonce", 0, _U64)
        raw_ids = _bounded_list(fields[2], "cmpctblock short_ids", MAX_BLOCK_TXS)
        short_ids = tuple(
            expect_bytes(s, f"cmpctblock short_id {n}", size=SHORT_ID_SIZE)
            for n, s in enumerate(raw_ids)
        )
        raw_pre = _bounded_list(fields[3], "cmpctblock prefilled", MAX_BLOCK_TXS)
        total = len(short_ids) + len(raw_pre)
        if total == 0 or total > MAX_BLOCK_TXS:
            raise DecodeError(f"cmpctblock: {total} transactions is out of range")
        prefilled = []
        last = -1
        for n, raw in enumerate(raw_pre):
            what = f"cmpctblock prefilled {n}"
            entry = expect_list(raw, what, 2)
            index = expect_int(entry[0], f"{what} index", last + 1, total - 1)
            prefilled.append(PrefilledTx(index, _tx(entry[1], f"{what} tx")))
            last = index
        return cls(header, nonce, short_ids, tuple(prefilled))

    @property
    def tx_count(self) -> int:
        return len(self.short_ids) + len(self.prefilled)


@dataclass(frozen=True, slots=True)
class GetBlockTxn(Message):
    msgtype: ClassVar[str] = "getblocktxn"
    block_hash: bytes
    indexes: tuple[int, ...]
    """Absolute transaction indexes, strictly increasing."""

    def fields(self) -> list[Any]:
        return [self.block_hash, list(self.indexes)]

    @classmethod
    def from_fields(cls, fields: list[Any]) -> GetBlockTxn:
        _check_fields(fields, cls.msgtype, 2)
        block_hash = _hash(fields[0], "getblocktxn block_hash")
        raw = _bounded_list(fields[1], "getblocktxn indexes", MAX_BLOCK_TXS)
        indexes = []
        last = -1
        for n, value in enumerate(raw):
            last = expect_int(value, f"getblocktxn index {n}", last + 1, MAX_BLOCK_TXS - 1)
            indexes.append(last)
        return cls(block_hash, tuple(indexes))


@dataclass(frozen=True, slots=True)
class BlockTxn(Message):
    msgtype: ClassVar[str] = "blocktxn"
    block_hash: bytes
    txs: tuple[Transaction, ...]
    """The transactions asked for, in the order of the request's indexes."""

    def fields(self) -> list[Any]:
        return [self.block_hash, [tx.serialize() for tx in self.txs]]

    @classmethod
    def from_fields(cls, fields: list[Any]) -> BlockTxn:
        _check_fields(fields, cls.msgtype, 2)
        block_hash = _hash(fields[0], "blocktxn block_hash")
        raw = _bounded_list(fields[1], "blocktxn txs", MAX_BLOCK_TXS)
        return cls(block_hash, tuple(_tx(t, f"blocktxn tx {n}") for n, t in enumerate(raw)))


@dataclass(frozen=True, slots=True)
class Reject(Message):
    """Why a message was refused; informational, never acted upon."""

    msgtype: ClassVar[str] = "reject"
    message: str
    """The msgtype of the refused message."""
    reason: str
    """A reject reason (``wrong-network``, or an ErrorCode value such as ``bad-txns-signature``)."""
    hash: bytes
    """The refused object's hash, or empty."""
    detail: str

    def fields(self) -> list[Any]:
        return [self.message, self.reason, self.hash, self.detail]

    @classmethod
    def from_fields(cls, fields: list[Any]) -> Reject:
        _check_fields(fields, cls.msgtype, 4)
        digest = expect_bytes(fields[2], "reject hash", max_size=32)
        if len(digest) not in (0, 32):
            raise DecodeError("reject hash: expected 0 or 32 bytes")
        return cls(
            _str(fields[0], "reject message", 16),
            _str(fields[1], "reject reason", MAX_REASON),
            digest,
            _str(fields[3], "reject detail", MAX_DETAIL),
        )


MESSAGE_TYPES: Mapping[str, type[Message]] = {
    cls.msgtype: cls
    for cls in (
        Version,
        Verack,
        Ping,
        Pong,
        GetAddr,
        Addr,
        Inv,
        GetData,
        NotFound,
        GetHeaders,
        Headers,
        BlockMsg,
        TxMsg,
        SendCmpct,
        CmpctBlock,
        GetBlockTxn,
        BlockTxn,
        Reject,
    )
}
"""The one registry: a peer's msgtype selects a class only through this table."""


def decode_message(frame: bytes, max_size: int = MAX_FRAME_SIZE) -> Message:
    """Decode one frame; every fault raises DecodeError (UnknownMessageError for unknown types)."""
    obj = unpack_canonical(frame, max_size=max_size, what="frame")
    items = expect_list(obj, "frame")
    if not items:
        raise DecodeError("frame: empty array")
    msgtype = _str(items[0], "frame msgtype", 16)
    cls = MESSAGE_TYPES.get(msgtype)
    if cls is None:
        raise UnknownMessageError(msgtype)
    return cls.from_fields(items[1:])


def encode_message(message: Message) -> bytes:
    return message.encode()
