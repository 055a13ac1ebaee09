"""The UTXO set as the consensus rules see it: coins, an overlay cache, and undo data.

A *coin* is an unspent transaction output together with what the rules need to know about where
it came from: the height of its block (for coinbase maturity) and whether a coinbase made it.

Validation never touches storage. It reads coins through :class:`UtxoView` (one method,
``get_coin``) and writes into a :class:`CoinsCache`, an overlay that records changes over a base
view without modifying it, like Bitcoin Core's ``CCoinsViewCache``. A block is connected into a
fresh overlay; if any rule fails the overlay is simply dropped, and if every rule passes its net
effect (:meth:`CoinsCache.changes`) is written to the store in one transaction by whoever owns
the store. The overlay assumes its base does not change underneath it while it is in use.

Connecting a block records the coins it spent (:class:`BlockUndo`); with them a block can be
disconnected exactly, which is how a reorganisation of any depth walks back.

This module deliberately does not decide whether a spend is allowed (that is
:mod:`node.core.validation`) and knows no file or database.

Encodings (canonical msgpack arrays, see :mod:`node.core.encoding`):

==========  =================================================  ==================================
object      array fields, in order                             limits
==========  =================================================  ==================================
Coin        value, pubkey_hash, height, is_coinbase            0..MAX_MONEY, 20 bytes, u32, 0 or 1
BlockUndo   array of ``[prev_txid, prev_index, coin]``         32 bytes, u32, Coin as above;
                                                               whole encoding <= MAX_BLOCK_SIZE
==========  =================================================  ==================================

``is_coinbase`` is an integer, not msgpack's boolean, so every field decodes through the same
strict integer check. Undo data is never larger than its block (an undo entry is smaller than
the signed input that spent the coin), hence the block's size limit bounds its decoding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from node.core.block import MAX_BLOCK_SIZE
from node.core.encoding import expect_bytes, expect_int, expect_list, pack, unpack_canonical
from node.core.errors import ErrorCode, InternalError, RuleError
from node.core.tx import MAX_MONEY, PUBKEY_HASH_SIZE, OutPoint

_U32 = 0xFFFFFFFF
MAX_COIN_SIZE = 64
"""Bytes of an encoded coin: 1 + 9 + 22 + 5 + 1 = 38 at most; the limit leaves room, no more."""


@dataclass(frozen=True)
class Coin:
    """An unspent output and the facts about its origin that the rules need."""

    value: int
    """Amount in the smallest unit."""
    pubkey_hash: bytes
    """hash160 of the public key that may spend it."""
    height: int
    """Height of the block that created it."""
    is_coinbase: bool
    """Created by a coinbase, hence spendable only after ``coinbase_maturity`` blocks."""

    def to_obj(self) -> list[Any]:
        return [self.value, self.pubkey_hash, self.height, int(self.is_coinbase)]

    @classmethod
    def from_obj(cls, obj: Any, what: str = "coin") -> Coin:
        fields = expect_list(obj, what, 4)
        return cls(
            expect_int(fields[0], f"{what} value", 0, MAX_MONEY),
            expect_bytes(fields[1], f"{what} pubkey_hash", size=PUBKEY_HASH_SIZE),
            expect_int(fields[2], f"{what} height", 0, _U32),
            bool(expect_int(fields[3], f"{what} is_coinbase", 0, 1)),
        )

    def serialize(self) -> bytes:
        return pack(self.to_obj())

    @classmethod
    def deserialize(cls, data: bytes) -> Coin:
        return cls.from_obj(unpack_canonical(data, max_size=MAX_COIN_SIZE, what="coin"))


class UtxoView(Protocol):
    """Read access to a set of unspent coins: all that validation needs to read."""

    def get_coin(self, outpoint: OutPoint) -> Coin | None:
        """The unspent coin at ``outpoint``, or None if there is none (never created, or spent)."""
        ...


_UNKNOWN = object()
"""Marks "not in this dict" where None already means "no coin"."""


class _EmptyView:
    def get_coin(self, outpoint: OutPoint) -> Coin | None:
        return None


@dataclass(frozen=True)
class UtxoChanges:
    """The net effect of an overlay on its base.

    Apply ``spent`` first, then ``added``: an outpoint may appear in both when a coin was
    replaced by a different one (the same transaction confirmed again at another height after a
    reorganisation).
    """

    added: tuple[tuple[OutPoint, Coin], ...]
    spent: tuple[OutPoint, ...]

    def is_empty(self) -> bool:
        return not self.added and not self.spent


class CoinsCache(UtxoView):
    """An overlay of coin changes over a base view, which it never modifies.

    Each outpoint is looked up in the base at most once: the answer is remembered, both to serve
    later reads and to compute the net effect in :meth:`changes` without asking the base again.
    """

    def __init__(self, base: UtxoView | None = None) -> None:
        self._base: UtxoView = base if base is not None else _EmptyView()
        # What the base held for every outpoint this overlay has touched.
        self._base_seen: dict[OutPoint, Coin | None] = {}
        # The overlay's own state for outpoints it changed: a coin, or None for spent.
        self._entries: dict[OutPoint, Coin | None] = {}

    def get_coin(self, outpoint: OutPoint) -> Coin | None:
        # One dict probe per level: hashing an OutPoint is a Python call, and this is the
        # innermost loop of block validation.
        coin = self._entries.get(outpoint, _UNKNOWN)
        if coin is _UNKNOWN:
            coin = self._base_seen.get(outpoint, _UNKNOWN)
            if coin is _UNKNOWN:
                coin = self._base_seen[outpoint] = self._base.get_coin(outpoint)
        return coin  # type: ignore[return-value]

    def add_coin(self, outpoint: OutPoint, coin: Coin) -> None:
        """Create ``coin`` at ``outpoint``, which must not hold an unspent coin.

        Overwriting an unspent coin would destroy money silently; the rules refuse it before
        it gets here (BIP30), so reaching it is our own bug and raises InternalError.
        """
        if self.get_coin(outpoint) is not None:
            raise InternalError(f"add_coin: {outpoint} already holds an unspent coin")
        self._entries[outpoint] = coin

    def spend_coin(self, outpoint: OutPoint) -> Coin:
        """Spend the coin at ``outpoint`` and return it.

        Raises RuleError ``bad-txns-inputs-missingorspent`` if there is none: the outpoint was
        never created, or was spent already (earlier in the same block, or before).
        """
        coin = self.get_coin(outpoint)
        if coin is None:
            raise RuleError(
                ErrorCode.BAD_TXNS_INPUTS_MISSINGORSPENT, f"{outpoint} is missing or spent"
            )
        self._entries[outpoint] = None
        return coin

    def changes(self) -> UtxoChanges:
        """The net effect on the base, in the order outpoints were first changed."""
        added: list[tuple[OutPoint, Coin]] = []
        spent: list[OutPoint] = []
        for outpoint, coin in self._entries.items():
            before = self._base_seen.get(outpoint)
            if coin == before:
                continue
            if before is not None:
                spent.append(outpoint)
            if coin is not None:
                added.append((outpoint, coin))
        return UtxoChanges(tuple(added), tuple(spent))


@dataclass(frozen=True)
class BlockUndo:
    """The coins a block spent, in spending order: what it takes to disconnect it."""

    spent: tuple[tuple[OutPoint, Coin], ...]

    def to_obj(self) -> list[Any]:
        return [[op.txid, op.index, coin.to_obj()] for op, coin in self.spent]

    @classmethod
    def from_obj(cls, obj: Any) -> BlockUndo:
        spent = []
        for n, raw in enumerate(expect_list(obj, "block undo")):
            what = f"undo entry {n}"
            entry = expect_list(raw, what, 3)
            outpoint = OutPoint(
                expect_bytes(entry[0], f"{what} prev_txid", size=32),
                expect_int(entry[1], f"{what} prev_index", 0, _U32),
            )
            spent.append((outpoint, Coin.from_obj(entry[2], f"{what} coin")))
        return cls(tuple(spent))

    def serialize(self) -> bytes:
        return pack(self.to_obj())

    @classmethod
    def deserialize(cls, data: bytes) -> BlockUndo:
        return cls.from_obj(unpack_canonical(data, max_size=MAX_BLOCK_SIZE, what="block undo"))
