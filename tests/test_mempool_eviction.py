"""A full mempool: who is evicted, who is refused, and that a child may keep its parent in.

Every transaction here spends one mature coinbase into one output, so all have the same size
``S`` and their fee rates compare as their fees do. The pool is sized to hold three of them.
The rule under test (see node.core.mempool): to enter a full pool, a transaction, and each of
its unconfirmed ancestors counted with it, must beat the *descendant score* of everything
displaced by at least the minimum fee rate; the lowest score goes first, the newest among
equals, and it takes its descendants along.
"""

from __future__ import annotations

import pytest
from blocktools import ChainBuilder, outputs_of, spend

from node.core.errors import ErrorCode, RuleError
from node.core.mempool import Mempool, Removal, RemovalReason
from node.core.params import REGTEST
from node.core.tx import Transaction
from node.core.utxo import CoinsCache

NEXT = 111


class Pool:
    """A mempool of room for three standard transactions, recording what it evicts."""

    def __init__(self, chain: ChainBuilder, view: CoinsCache) -> None:
        self.chain = chain
        self.view = view
        self.size = self.pay(1, 1_000).size
        self.removed: list[Removal] = []
        self.mempool = Mempool(REGTEST, max_bytes=3 * self.size, on_removed=self.removed.append)

    def pay(self, block: int, fee: int) -> Transaction:
        """Spend the coinbase of block ``block`` with ``fee``: size ``S`` whatever the fee."""
        return self.chain.spend([self.chain.coinbase_of(f"b{block}")], fee=fee)

    def child(self, parent: Transaction, fee: int) -> Transaction:
        return spend(outputs_of(parent, self.chain.miner), fee=fee)

    def accept(self, *txs: Transaction) -> None:
        for tx in txs:
            self.mempool.accept(tx, self.view, NEXT)

    def refuse(self, tx: Transaction) -> RuleError:
        before = (self.mempool.entries(), self.mempool.total_bytes, len(self.removed))
        with pytest.raises(RuleError) as caught:
            self.mempool.accept(tx, self.view, NEXT)
        assert (self.mempool.entries(), self.mempool.total_bytes, len(self.removed)) == before
        return caught.value

    def holds(self, *txs: Transaction) -> bool:
        return {e.txid for e in self.mempool.entries()} == {tx.txid for tx in txs}


@pytest.fixture
def pool(chain: ChainBuilder, view: CoinsCache) -> Pool:
    return Pool(chain, view)


def test_all_standard_transactions_here_have_one_size(pool: Pool) -> None:
    assert {pool.pay(n, fee).size for n in (1, 2, 3) for fee in (200, 1_000, 40_000)} == {pool.size}


def test_a_full_pool_evicts_the_lowest_fee_rate(pool: Pool) -> None:
    low, mid, high = pool.pay(1, 1_000), pool.pay(2, 2_000), pool.pay(3, 3_000)
    pool.accept(low, mid, high)
    better = pool.pay(4, 4_000)
    pool.accept(better)
    assert pool.holds(mid, high, better)
    assert [(r.txid, r.reason) for r in pool.removed] == [(low.txid, RemovalReason.SIZELIMIT)]
    assert better.txid_hex in pool.removed[0].detail
    assert pool.mempool.total_bytes == 3 * pool.size


def test_the_newcomer_must_beat_the_lowest_by_the_minimum_fee_rate(pool: Pool) -> None:
    low = pool.pay(1, 1_000)
    pool.accept(low, pool.pay(2, 2_000), pool.pay(3, 3_000))
    increment = pool.mempool.min_fee_rate * pool.size
    error = pool.refuse(pool.pay(4, 1_000 + increment - 1))
    assert error.code is ErrorCode.MEMPOOL_FULL
    pool.accept(pool.pay(4, 1_000 + increment))
    assert low.txid not in pool.mempool


def test_a_newcomer_no_better_than_anything_is_refused(pool: Pool) -> None:
    pool.accept(pool.pay(1, 5_000), pool.pay(2, 5_000), pool.pay(3, 5_000))
    assert pool.refuse(pool.pay(4, 1_000)).code is ErrorCode.MEMPOOL_FULL


def test_among_equal_scores_the_newest_goes_first(pool: Pool) -> None:
    older, newer, high = pool.pay(1, 1_000), pool.pay(2, 1_000), pool.pay(3, 9_000)
    pool.accept(older, newer, high)
    pool.accept(pool.pay(4, 5_000))
    assert [r.txid for r in pool.removed] == [newer.txid]
    assert older.txid in pool.mempool


def test_eviction_takes_the_descendants_along(pool: Pool) -> None:
    parent = pool.pay(1, 500)
    child = pool.child(parent, 1_500)
    other = pool.pay(2, 5_000)
    pool.accept(parent, child, other)
    newcomer = pool.pay(3, 3_000)
    pool.accept(newcomer)
    assert pool.holds(other, newcomer)
    # Children leave before their parents, so the event stream never shows an orphan.
    assert [(r.txid, r.reason) for r in pool.removed] == [
        (child.txid, RemovalReason.SIZELIMIT),
        (parent.txid, RemovalReason.SIZELIMIT),
    ]
    assert parent.txid_hex in pool.removed[0].detail


def test_a_parent_with_a_well_paying_child_is_not_evicted_first(pool: Pool) -> None:
    """Ranked by descendant score: the parent counts its child's fee (CPFP)."""
    parent = pool.pay(1, 200)
    child = pool.child(parent, 9_000)
    middling = pool.pay(2, 1_500)
    pool.accept(parent, child, middling)
    pool.accept(pool.pay(3, 4_000))
    assert [r.txid for r in pool.removed] == [middling.txid]
    assert parent.txid in pool.mempool and child.txid in pool.mempool


def test_a_child_may_pay_for_its_parent_to_stay(pool: Pool) -> None:
    parent = pool.pay(1, 200)
    other = pool.pay(2, 1_000)
    pool.accept(parent, other, pool.pay(3, 9_000))
    # The parent scores lowest, but it is the child's own ancestor: the child is measured
    # together with it, (200 + 5000) / 2S, against the next lowest, and wins.
    child = pool.child(parent, 5_000)
    pool.accept(child)
    assert [r.txid for r in pool.removed] == [other.txid]
    assert parent.txid in pool.mempool and child.txid in pool.mempool


def test_a_child_too_poor_to_carry_its_parent_is_refused(pool: Pool) -> None:
    parent = pool.pay(1, 200)
    pool.accept(parent, pool.pay(2, 1_000), pool.pay(3, 9_000))
    # Alone it would beat the 1,000 fee; with its parent, (200 + 1500) / 2S, it does not.
    error = pool.refuse(pool.child(parent, 1_500))
    assert error.code is ErrorCode.MEMPOOL_FULL


def test_a_transaction_larger_than_the_whole_pool_is_refused(
    chain: ChainBuilder, view: CoinsCache
) -> None:
    tx = chain.spend([chain.coinbase_of("b1")], fee=10_000)
    small = Mempool(REGTEST, max_bytes=tx.size - 1)
    with pytest.raises(RuleError) as caught:
        small.accept(tx, view, NEXT)
    assert caught.value.code is ErrorCode.MEMPOOL_FULL
    assert len(small) == 0


def test_an_evicted_transaction_can_come_back_when_there_is_room(pool: Pool) -> None:
    low = pool.pay(1, 1_000)
    pool.accept(low, pool.pay(2, 2_000), pool.pay(3, 3_000), pool.pay(4, 4_000))
    assert low.txid not in pool.mempool
    confirmed = [e.tx for e in pool.mempool.entries()]
    side = pool.chain.copy()
    block = side.block("room", txs=confirmed)
    view = CoinsCache(pool.view)
    side.full_check("room", view)
    pool.mempool.remove_for_block(block)
    pool.mempool.accept(low, view, NEXT + 1)
    assert pool.holds(low)
    # Its old ranking records were left behind; a new one must rank it, not a stale one.
    pool.mempool.accept(pool.chain.spend([pool.chain.coinbase_of("b5")], fee=9_000), view, 112)
    pool.mempool.accept(pool.chain.spend([pool.chain.coinbase_of("b6")], fee=9_000), view, 112)
    pool.mempool.accept(pool.chain.spend([pool.chain.coinbase_of("b7")], fee=9_000), view, 112)
    assert low.txid not in pool.mempool


def test_the_default_minimum_and_size_are_documented_values() -> None:
    pool = Mempool(REGTEST)
    assert pool.min_fee_rate == 1
    assert pool.max_bytes == 20_000_000


@pytest.mark.parametrize(
    ("max_bytes", "min_fee_rate"), [(0, 1), (1_000, -1)], ids=["no room", "negative fee rate"]
)
def test_nonsense_limits_are_refused(max_bytes: int, min_fee_rate: int) -> None:
    with pytest.raises(ValueError, match="must"):
        Mempool(REGTEST, max_bytes=max_bytes, min_fee_rate=min_fee_rate)
