"""Check a chain store against itself: rebuild the UTXO set from the blocks and compare.

The UTXO set is derived data: it must equal what replaying the active chain's blocks from
genesis produces. :func:`verify_store` does that replay in memory, independently of the
connect/disconnect code (it trusts no undo data and no stored coin), and reports every
difference, plus any block or undo data of the active chain that is missing or unreadable.
``forklab verify --datadir D`` prints its report.

The replay applies each transaction's effect (spend the inputs, create the outputs); it does not
re-run the consensus rules, which were checked when the blocks were connected. A block whose
inputs are missing from the replayed set is reported as a problem all the same.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from node.core.chain import BlockEntry
from node.core.errors import StoreError
from node.core.hashing import hash_hex, sha256d
from node.core.tx import OutPoint
from node.core.utxo import Coin
from node.store.sqlite import ChainStore

MAX_LISTED = 100
"""Differences listed in a report; all of them are counted."""


class DifferenceKind(enum.Enum):
    MISSING = "missing"
    """The replay has the coin; the store does not."""
    UNEXPECTED = "unexpected"
    """The store has a coin the replay does not."""
    CHANGED = "changed"
    """Both have the outpoint, with different coins."""


@dataclass(frozen=True)
class CoinDifference:
    kind: DifferenceKind
    outpoint: OutPoint
    stored: Coin | None
    expected: Coin | None

    def __str__(self) -> str:
        return f"{self.kind.value} {self.outpoint}: stored {self.stored}, expected {self.expected}"


@dataclass(frozen=True)
class VerifyReport:
    """What :func:`verify_store` found."""

    tip_hash: bytes
    height: int
    blocks_checked: int
    transactions: int
    coins_expected: int
    coins_stored: int
    difference_count: int
    differences: tuple[CoinDifference, ...]
    """The first MAX_LISTED differences, by outpoint."""
    problems: tuple[str, ...]
    """Missing or unreadable block or undo data, a block spending a coin the replay lacks."""

    @property
    def ok(self) -> bool:
        return self.difference_count == 0 and not self.problems

    def summary(self) -> str:
        lines = [
            f"tip {hash_hex(self.tip_hash)} at height {self.height}: "
            f"{self.blocks_checked} blocks, {self.transactions} transactions replayed",
            f"coins: {self.coins_expected} expected, {self.coins_stored} stored, "
            f"{self.difference_count} differences",
        ]
        lines += [f"  {d}" for d in self.differences]
        if self.difference_count > len(self.differences):
            lines.append(f"  ... and {self.difference_count - len(self.differences)} more")
        lines += [f"problem: {p}" for p in self.problems]
        lines.append("OK" if self.ok else "FAILED")
        return "\n".join(lines)


def verify_store(store: ChainStore, active: Sequence[BlockEntry]) -> VerifyReport:
    """Replay the blocks of ``active`` (genesis first) and compare with the stored UTXO set."""
    expected: dict[OutPoint, Coin] = {}
    problems: list[str] = []
    transactions = 0
    tip = active[-1]
    if store.tip_hash() != tip.hash:
        problems.append(
            f"the stored tip {hash_hex(store.tip_hash())} is not the active tip {tip.hash_hex}"
        )
    for entry in active[1:]:
        if sha256d(entry.header.serialize()) != entry.hash:
            problems.append(f"the index entry at height {entry.height} does not hash to its key")
        try:
            block = store.get_block(entry.hash)
            undo = store.get_undo(entry.hash)
        except StoreError as exc:
            problems.append(str(exc))
            continue
        if block is None:
            problems.append(f"block {entry.hash_hex} at height {entry.height} has no data")
            continue
        if undo is None:
            problems.append(f"block {entry.hash_hex} at height {entry.height} has no undo data")
        root, _ = block.compute_merkle_root()
        if root != block.header.merkle_root:
            problems.append(f"block {entry.hash_hex}: transactions do not match the merkle root")
        for tx in block.transactions:
            transactions += 1
            is_coinbase = tx.is_coinbase()
            if not is_coinbase:
                for txin in tx.inputs:
                    if expected.pop(txin.prevout, None) is None:
                        problems.append(
                            f"block {entry.hash_hex} spends {txin.prevout}, absent in the replay"
                        )
            for index, txout in enumerate(tx.outputs):
                expected[OutPoint(tx.txid, index)] = Coin(
                    txout.value, txout.pubkey_hash, entry.height, is_coinbase
                )
    coins_expected = len(expected)
    differences: list[CoinDifference] = []
    stored_count = 0
    for outpoint, coin in store.iter_coins():
        stored_count += 1
        want = expected.pop(outpoint, None)
        if want is None:
            differences.append(CoinDifference(DifferenceKind.UNEXPECTED, outpoint, coin, None))
        elif want != coin:
            differences.append(CoinDifference(DifferenceKind.CHANGED, outpoint, coin, want))
    differences += (
        CoinDifference(DifferenceKind.MISSING, op, None, coin) for op, coin in expected.items()
    )
    differences.sort(key=lambda d: (d.outpoint.txid, d.outpoint.index))
    return VerifyReport(
        tip_hash=tip.hash,
        height=tip.height,
        blocks_checked=len(active) - 1,
        transactions=transactions,
        coins_expected=coins_expected,
        coins_stored=stored_count,
        difference_count=len(differences),
        differences=tuple(differences[:MAX_LISTED]),
        problems=tuple(problems),
    )
