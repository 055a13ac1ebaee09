"""Units of mining work: the headers a backend searches, and how a nonce becomes a block.

A *work* unit comes from a node and fixes the parent, the height and the target. The mining
loop cuts it into *jobs*: 80-byte headers, each searched over its nonce space. When a job's
nonces are spent the work *rolls* to another header with the same parent, if it can:

==============  ===============================  ==============================================
kind            where it comes from              how it rolls
==============  ===============================  ==============================================
TemplateWork    ``getblocktemplate``, a Node     roll ``r`` is coinbase extranonce ``r`` (a
                                                 new merkle root: 2^64 rolls), with the time
                                                 moved on to now
HeaderWork      ``getwork``                      it does not: the node built the coinbase, so
                                                 the loop asks it for a fresh unit
==============  ===============================  ==============================================

A found nonce becomes a :class:`Solution`: the solved header, and for template work the whole
block. Blocks are built only through :class:`~node.core.template.BlockTemplate` (coinbase
layout, merkle branch, header), so a miner's block is laid out exactly as the node's own.

:func:`template_from_gbt` turns a ``getblocktemplate`` answer into such a template paying the
miner's address (BIP 22: the miner writes its own coinbase from ``coinbasevalue`` and
``height``). This module talks to nobody and reads no clock: sources fetch work, the loop
(:mod:`miner.loop`) says which roll and how many seconds have passed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from node.core.block import Block
from node.core.errors import DecodeError
from node.core.hashing import hash_from_hex, hash_hex
from node.core.header import BlockHeader, bits_to_target
from node.core.template import (
    MAX_EXTRANONCE,
    MAX_MESSAGE_SIZE,
    BlockTemplate,
    TemplateTx,
    coinbase_merkle_branch,
)
from node.core.tx import MAX_MONEY, PUBKEY_HASH_SIZE, Transaction

_U32 = 0xFFFFFFFF
DEFAULT_MESSAGE = b"forklab mine"
"""The coinbase message of the miner's blocks unless it is given another."""


@dataclass(frozen=True)
class Job:
    """One header to search, and what it was built from."""

    header: bytes
    """The 80-byte header; its nonce field is ignored by the backends."""
    target: int
    roll: int
    """Which of the work's headers this is (the extranonce, for template work)."""
    time: int
    """The header's time field."""


@dataclass(frozen=True)
class Solution:
    """A nonce that meets the target, as the header it completes and, where the miner built the
    coinbase, the block."""

    header: BlockHeader
    block: Block | None
    """None for getwork, whose node keeps the block and takes back only the header."""
    roll: int

    @property
    def hash_hex(self) -> str:
        return self.header.hash_hex


class Work(ABC):
    """A unit of work on one parent; see the module docstring for the kinds."""

    prev_hash: bytes
    height: int
    """The height of the block being mined."""
    bits: int

    @property
    def target(self) -> int:
        return bits_to_target(self.bits)

    @property
    def prev_hex(self) -> str:
        return hash_hex(self.prev_hash)

    @property
    @abstractmethod
    def rolls(self) -> int:
        """How many distinct headers the work offers (roll numbers are 0 .. rolls - 1)."""

    @abstractmethod
    def job(self, roll: int, elapsed: int) -> Job:
        """The header of roll ``roll``, ``elapsed`` seconds after the work arrived.

        ValueError for a roll outside ``0 .. rolls - 1``.
        """

    @abstractmethod
    def solution(self, job: Job, nonce: int) -> Solution:
        """What a nonce that meets the target in ``job`` solves."""

    def _check_roll(self, roll: int) -> None:
        if not 0 <= roll < self.rolls:
            raise ValueError(f"roll {roll} is outside 0..{self.rolls - 1}")


class TemplateWork(Work):
    """Work from a block template: the miner builds the coinbase, so it rolls the extranonce.

    The time of each new header is the template's ``curtime`` plus the seconds since the
    template arrived (bitcoind's miner does the same), so a long search does not date its block
    in the past.
    """

    def __init__(self, template: BlockTemplate, *, longpollid: str | None = None) -> None:
        self.template = template
        self.longpollid = longpollid
        """The node's name for the state the template was built from (long polling)."""
        self.prev_hash = template.prev_hash
        self.height = template.height
        self.bits = template.bits

    @property
    def rolls(self) -> int:
        return MAX_EXTRANONCE + 1

    def job(self, roll: int, elapsed: int) -> Job:
        self._check_roll(roll)
        template = self.template
        time = min(max(template.cur_time + max(0, elapsed), template.min_time), _U32)
        header = template.header_for(roll, time, 0)
        return Job(header.serialize(), self.target, roll, time)

    def solution(self, job: Job, nonce: int) -> Solution:
        block = self.template.block_for(job.roll, job.time, nonce)
        return Solution(block.header, block, job.roll)


class HeaderWork(Work):
    """Work from ``getwork``: one header whose coinbase the node built; it cannot roll."""

    def __init__(self, header: BlockHeader, target: int, height: int) -> None:
        self.header = header
        self.prev_hash = header.prev_hash
        self.height = height
        self.bits = header.bits
        self._target = target

    @property
    def target(self) -> int:
        """The target the node sent, which getwork lets differ from the header's ``bits``."""
        return self._target

    @property
    def rolls(self) -> int:
        return 1

    def job(self, roll: int, elapsed: int) -> Job:
        self._check_roll(roll)
        return Job(self.header.serialize(), self._target, 0, self.header.time)

    def solution(self, job: Job, nonce: int) -> Solution:
        return Solution(self.header.with_nonce(nonce), None, 0)


def template_from_gbt(
    obj: Mapping[str, Any], payout_pubkey_hash: bytes, message: bytes = b""
) -> BlockTemplate:
    """A :class:`BlockTemplate` from a ``getblocktemplate`` answer, paying ``payout_pubkey_hash``.

    The coinbase claims the whole ``coinbasevalue`` and carries ``message``. DecodeError for an
    answer that does not describe a block (missing or malformed fields, a transaction whose
    ``txid`` is not the hash of its ``data``); ValueError for a bad payout or message.
    """
    if len(payout_pubkey_hash) != PUBKEY_HASH_SIZE:
        raise ValueError(f"the payout is a {PUBKEY_HASH_SIZE}-byte public-key hash")
    if len(message) > MAX_MESSAGE_SIZE:
        raise ValueError(f"a coinbase message is at most {MAX_MESSAGE_SIZE} bytes")
    try:
        txs = tuple(_template_tx(t) for t in obj["transactions"])
        template = BlockTemplate(
            version=_integer(obj, "version"),
            prev_hash=hash_from_hex(obj["previousblockhash"]),
            height=_integer(obj, "height"),
            bits=int(obj["bits"], 16),
            min_time=_integer(obj, "mintime"),
            cur_time=max(_integer(obj, "curtime"), _integer(obj, "mintime")),
            payout_pubkey_hash=payout_pubkey_hash,
            message=message,
            transactions=txs,
            fees=sum(t.fee for t in txs),
            coinbase_value=_integer(obj, "coinbasevalue"),
            max_size=_integer(obj, "sizelimit"),
            merkle_branch=coinbase_merkle_branch([t.txid for t in txs]),
        )
        if not 0 <= template.height <= _U32:
            raise ValueError(f"height {template.height} is not a block height")
        if not 0 <= template.coinbase_value <= MAX_MONEY:
            raise ValueError(f"coinbasevalue {template.coinbase_value} is not an amount")
        if template.target <= 0:
            raise ValueError(f"bits {template.bits:#x} encode no target")
        template.header_for(0, template.cur_time, 0)  # version, time and bits fit a header
    except DecodeError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DecodeError(f"not a block template: {type(exc).__name__}: {exc}") from None
    return template


def _template_tx(obj: Mapping[str, Any]) -> TemplateTx:
    tx = Transaction.deserialize(bytes.fromhex(obj["data"]))
    if "txid" in obj and obj["txid"] != tx.txid_hex:
        raise DecodeError(f"template transaction {obj['txid']} does not hash to its txid")
    depends = obj["depends"]
    if not isinstance(depends, list) or not all(_is_integer(d) for d in depends):
        raise DecodeError(f"template transaction depends is not a list of numbers: {depends!r}")
    return TemplateTx(tx, _integer(obj, "fee"), tuple(depends))


def _is_integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _integer(obj: Mapping[str, Any], key: str) -> int:
    """A whole number of a template answer. Not ``int()``: it would take ``"12"`` or ``1.9``
    and raise OverflowError on an infinity; a node's answer has JSON integers there."""
    value = obj[key]
    if not _is_integer(value):
        raise DecodeError(f"not a block template: {key} is {value!r}, not a whole number")
    return int(value)
