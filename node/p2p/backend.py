"""What the P2P layer asks of the node's chain and mempool, and the answers it gets.

The peer manager never touches the chain state or the mempool directly: those have one owner
(the node's executor, a single worker thread in a real node), and every question below is one
trip to it. Answers are small frozen values, so nothing shared crosses threads.

The node implements :class:`ChainBackend` (:mod:`node.node`); this module only names the
contract, so the P2P layer can be read without knowing about SQLite.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from node.core.block import Block
from node.core.errors import RuleError
from node.core.header import BlockHeader
from node.core.tx import Transaction
from node.p2p.compact import PartialBlock


@dataclass(frozen=True)
class ChainTip:
    """The active tip and best header, as the P2P layer needs them."""

    hash: bytes
    height: int
    chain_work: int
    best_header_hash: bytes
    best_header_height: int
    best_header_work: int

    @property
    def syncing(self) -> bool:
        """Whether headers are known beyond the tip (blocks still to download)."""
        return self.best_header_work > self.chain_work


class HeadersStatus(enum.Enum):
    STORED = "stored"
    """Every header is in the tree now (some may have been already)."""
    LOW_WORK = "low-work"
    """They connect, but the chain they end has less work than our tip: nothing stored."""
    UNCONNECTED = "unconnected"
    """The first header's parent is unknown."""
    INVALID = "invalid"
    """A header broke a rule; those before it were stored."""


@dataclass(frozen=True)
class HeadersOutcome:
    status: HeadersStatus
    last_hash: bytes | None = None
    """The last header now in our tree (STORED, or INVALID after a valid prefix)."""
    last_height: int = 0
    last_work: int = 0
    """Chain work at the end of the headers (what they claim, even when not stored)."""
    new: int = 0
    """Headers that were not in the tree before."""
    error: RuleError | None = None


@dataclass(frozen=True)
class BlockOutcome:
    """What became of a block handed to the chain."""

    accepted: bool
    """Stored (connected, on a side branch, or waiting for its parent's data)."""
    error: RuleError | None = None
    orphan: bool = False
    """Its parent is unknown: the chain holds it until the parent arrives."""
    duplicate: bool = False
    tip_changed: bool = False
    tip: ChainTip | None = None
    """The active tip after the block, when it changed."""
    tip_block: Block | None = None
    """The new tip's block (for announcing it), when the tip changed."""
    readded: tuple[Transaction, ...] = ()
    """Transactions of disconnected blocks back in the mempool (to announce again)."""


@dataclass(frozen=True)
class TxOutcome:
    accepted: bool
    error: RuleError | None = None
    missing_inputs: tuple[bytes, ...] = ()
    """Txids of inputs found neither in the chain nor in the mempool (an orphan's parents)."""


class ChainBackend(Protocol):
    """The node's chain and mempool, one executor trip per call."""

    @property
    def tip(self) -> ChainTip:
        """The latest known tip; readable on the event loop without a trip."""
        ...

    async def locator(self) -> list[bytes]: ...

    async def headers_after(
        self, locator: Sequence[bytes], stop_hash: bytes, limit: int
    ) -> list[BlockHeader]:
        """Headers of the active chain after the locator's fork point, up to ``stop_hash``."""
        ...

    async def accept_headers(self, headers: Sequence[BlockHeader], now: int) -> HeadersOutcome:
        """Store a contiguous run of headers if the chain they end has at least our tip's work
        (or they are already known); otherwise say why not."""
        ...

    async def header_info(self, block_hash: bytes) -> tuple[int, int] | None:
        """(height, chain work) of a known header; None when unknown."""
        ...

    async def blocks_to_download(
        self, best_known: bytes, limit: int, exclude: frozenset[bytes] | set[bytes]
    ) -> list[tuple[bytes, int]]:
        """(hash, height) of blocks without data on the way from our active chain to
        ``best_known``, lowest first, within the download window, skipping ``exclude``."""
        ...

    async def have_block(self, block_hashes: Sequence[bytes]) -> list[bool]:
        """Whether each block's data (or at least a failed verdict) is known."""
        ...

    async def have_tx(self, txids: Sequence[bytes]) -> list[bool]:
        """Whether each transaction is in the mempool or confirmed at the tip."""
        ...

    async def get_block(self, block_hash: bytes) -> Block | None: ...

    async def get_txs(self, txids: Sequence[bytes]) -> list[Transaction | None]:
        """Mempool transactions by txid (relay serves the mempool only)."""
        ...

    async def fill_compact(self, partial: PartialBlock) -> bool:
        """Offer every mempool transaction to a compact block being rebuilt; False (and
        nothing offered) if the block is already stored."""
        ...

    async def submit_block(self, block: Block, source: str) -> BlockOutcome: ...

    async def submit_tx(self, tx: Transaction, source: str) -> TxOutcome: ...
