"""The mempool as the chain moves: blocks connected, blocks disconnected, the tip moved back.

The node's order of calls, which these tests follow: for each connected block
``remove_for_block(block)``; after a reorganisation, ``readd_disconnected(txs of the
disconnected blocks, view of the new tip, next height)``; after the tip moves back without a
replacement (``invalidateblock``), ``revalidate(view, next height)``.

Chains are named as in btcd's fullblocktests; the common prefix is b1..b110 on genesis::

    ... b110 ── b111            (main: what the pool was built against)
              └── b111a ── b112a (the fork that wins)
"""

from __future__ import annotations

import pytest
from blocktools import ChainBuilder, key, outputs_of, spend

from node.core.errors import ErrorCode
from node.core.mempool import Mempool, Removal, RemovalReason
from node.core.params import REGTEST
from node.core.tx import Transaction
from node.core.utxo import CoinsCache

FEE = 1_000


@pytest.fixture(scope="module")
def prefix() -> ChainBuilder:
    chain = ChainBuilder()
    chain.extend(110)
    return chain


@pytest.fixture(scope="module")
def prefix_view(prefix: ChainBuilder) -> CoinsCache:
    return prefix.connect_branch("b110")


@pytest.fixture
def chain(prefix: ChainBuilder) -> ChainBuilder:
    return prefix.copy()


@pytest.fixture
def view(prefix_view: CoinsCache) -> CoinsCache:
    return CoinsCache(prefix_view)


class Events:
    def __init__(self) -> None:
        self.removed: list[Removal] = []

    def reasons(self) -> list[tuple[bytes, RemovalReason]]:
        return [(r.txid, r.reason) for r in self.removed]


@pytest.fixture
def events() -> Events:
    return Events()


@pytest.fixture
def pool(events: Events) -> Mempool:
    return Mempool(REGTEST, on_removed=events.removed.append)


def txids(pool: Mempool) -> list[bytes]:
    return [e.txid for e in pool.entries()]


def connect(chain: ChainBuilder, name: str, view: CoinsCache) -> None:
    chain.full_check(name, view)


# -- blocks connected


def test_a_confirmed_parent_leaves_and_its_child_stays(
    chain: ChainBuilder, view: CoinsCache, pool: Mempool, events: Events
) -> None:
    parent = chain.spend([chain.coinbase_of("b1")], fee=FEE)
    child = spend(outputs_of(parent, chain.miner), fee=FEE)
    for tx in (parent, child):
        pool.accept(tx, view, 111)
    block = chain.block("b111", txs=[parent])
    connect(chain, "b111", view)

    removed = pool.remove_for_block(block)
    assert [(r.txid, r.reason) for r in removed] == [(parent.txid, RemovalReason.BLOCK)]
    assert events.reasons() == [(parent.txid, RemovalReason.BLOCK)]
    assert txids(pool) == [child.txid]
    alone = pool.relatives(child.txid)
    assert (alone.parents, alone.ancestor_count, alone.ancestor_size) == (
        frozenset(),
        1,
        child.size,
    )
    assert pool.total_bytes == child.size and pool.total_fees == FEE


def test_a_block_spending_a_pool_transactions_input_removes_it_and_its_descendants(
    chain: ChainBuilder, view: CoinsCache, pool: Mempool, events: Events
) -> None:
    coin = chain.coinbase_of("b1")
    ours = chain.spend([coin], fee=FEE)
    ours_child = spend(outputs_of(ours, chain.miner), fee=FEE)
    unrelated = chain.spend([chain.coinbase_of("b2")], fee=FEE)
    for tx in (ours, ours_child, unrelated):
        pool.accept(tx, view, 111)
    theirs = chain.spend([coin], fee=FEE, to=key("someone else"))
    block = chain.block("b111", txs=[theirs])
    connect(chain, "b111", view)

    pool.remove_for_block(block)
    assert events.reasons() == [
        (ours_child.txid, RemovalReason.CONFLICT),
        (ours.txid, RemovalReason.CONFLICT),
    ]
    assert theirs.txid_hex in events.removed[1].detail
    assert txids(pool) == [unrelated.txid]
    assert pool.spender_of(coin.outpoint) is None


def test_a_block_with_parent_and_child_confirms_both(
    chain: ChainBuilder, view: CoinsCache, pool: Mempool, events: Events
) -> None:
    parent = chain.spend([chain.coinbase_of("b1")], fee=FEE)
    child = spend(outputs_of(parent, chain.miner), fee=FEE)
    for tx in (parent, child):
        pool.accept(tx, view, 111)
    block = chain.block("b111", txs=[parent, child])
    connect(chain, "b111", view)
    pool.remove_for_block(block)
    assert events.reasons() == [
        (parent.txid, RemovalReason.BLOCK),
        (child.txid, RemovalReason.BLOCK),
    ]
    assert len(pool) == 0 and pool.total_bytes == 0 and pool.total_fees == 0


# -- reorganisations


def reorganise(
    chain: ChainBuilder, pool: Mempool, fork: list[tuple[str, list[Transaction]]]
) -> tuple[CoinsCache, int]:
    """Build the fork on b110 and connect it as the node would; return its view and next height."""
    parent = "b110"
    for name, txs in fork:
        chain.block(name, parent=parent, txs=txs)
        parent = name
    view = chain.connect_branch(parent)
    for name, _ in fork:
        pool.remove_for_block(chain[name])
    return view, chain.height(parent) + 1


def test_transactions_of_a_disconnected_block_come_back_with_their_pool_children(
    chain: ChainBuilder, view: CoinsCache, pool: Mempool, events: Events
) -> None:
    first = chain.spend([chain.coinbase_of("b1")], fee=FEE)
    second = spend(outputs_of(first, chain.miner), fee=FEE)
    chain.block("b111", txs=[first, second])
    connect(chain, "b111", view)
    waiting = spend(outputs_of(second, chain.miner), fee=FEE)
    unrelated = chain.spend([chain.coinbase_of("b2")], fee=FEE)
    for tx in (waiting, unrelated):
        pool.accept(tx, view, 112)

    new_view, next_height = reorganise(chain, pool, [("b111a", []), ("b112a", [])])
    # Passed children first on purpose: the pool puts parents first itself.
    result = pool.readd_disconnected(reversed(chain["b111"].transactions), new_view, next_height)

    assert [e.txid for e in result.readded] == [first.txid, second.txid]
    assert result.removed == () and events.removed == []
    assert txids(pool) == [first.txid, second.txid, waiting.txid, unrelated.txid]
    chained = pool.relatives(waiting.txid)
    assert chained.parents == {second.txid}
    assert chained.ancestor_count == 3 and chained.ancestor_fees == 3 * FEE
    assert pool.relatives(first.txid).descendant_count == 3


def test_a_double_spend_across_forks_drops_the_losing_side_and_its_children(
    chain: ChainBuilder, view: CoinsCache, pool: Mempool, events: Events
) -> None:
    coin = chain.coinbase_of("b1")
    ours = chain.spend([coin], fee=FEE)
    chain.block("b111", txs=[ours])
    connect(chain, "b111", view)
    child = spend(outputs_of(ours, chain.miner), fee=FEE)
    unrelated = chain.spend([chain.coinbase_of("b2")], fee=FEE)
    for tx in (child, unrelated):
        pool.accept(tx, view, 112)

    theirs = chain.spend([coin], fee=FEE, to=key("someone else"))
    new_view, next_height = reorganise(chain, pool, [("b111a", [theirs]), ("b112a", [])])
    result = pool.readd_disconnected(chain["b111"].transactions, new_view, next_height)

    assert result.readded == ()
    assert [(r.txid, r.reason) for r in result.removed] == [(child.txid, RemovalReason.REORG)]
    assert ErrorCode.BAD_TXNS_INPUTS_MISSINGORSPENT.value in result.removed[0].detail
    assert events.removed == list(result.removed)
    assert txids(pool) == [unrelated.txid]


def test_a_transaction_confirmed_on_both_sides_does_not_come_back(
    chain: ChainBuilder, view: CoinsCache, pool: Mempool
) -> None:
    tx = chain.spend([chain.coinbase_of("b1")], fee=FEE)
    chain.block("b111", txs=[tx])
    connect(chain, "b111", view)
    new_view, next_height = reorganise(chain, pool, [("b111a", [tx]), ("b112a", [])])
    result = pool.readd_disconnected(chain["b111"].transactions, new_view, next_height)
    assert result.readded == () and len(pool) == 0


def test_a_pool_transaction_the_new_chain_confirms_leaves_as_confirmed(
    chain: ChainBuilder, view: CoinsCache, pool: Mempool, events: Events
) -> None:
    tx = chain.spend([chain.coinbase_of("b1")], fee=FEE)
    pool.accept(tx, view, 111)
    chain.block("b111")
    new_view, next_height = reorganise(chain, pool, [("b111a", [tx]), ("b112a", [])])
    pool.readd_disconnected(chain["b111"].transactions, new_view, next_height)
    assert events.reasons() == [(tx.txid, RemovalReason.BLOCK)]
    assert len(pool) == 0


def test_a_spend_of_a_coinbase_on_the_losing_branch_is_dropped(
    chain: ChainBuilder, view: CoinsCache, pool: Mempool, events: Events
) -> None:
    orphaned_coinbase = chain.spend([chain.coinbase_of("b10")], fee=FEE)
    pool.accept(orphaned_coinbase, view, 111)
    # A longer branch from b9 replaces b10..b110, so b10's coinbase never existed.
    chain.extend(103, prefix="x", parent="b9")
    new_view = chain.connect_branch(chain.tip)
    disconnected = [tx for name in chain.branch("b110")[9:] for tx in chain[name].transactions]
    result = pool.readd_disconnected(disconnected, new_view, chain.height(chain.tip) + 1)
    assert result.readded == ()
    assert events.reasons() == [(orphaned_coinbase.txid, RemovalReason.REORG)]


def test_disconnected_transactions_return_even_below_the_minimum_fee(
    chain: ChainBuilder, view: CoinsCache, pool: Mempool
) -> None:
    free = chain.spend([chain.coinbase_of("b1")])
    chain.block("b111", txs=[free])
    new_view, next_height = reorganise(chain, pool, [("b111a", []), ("b112a", [])])
    result = pool.readd_disconnected(chain["b111"].transactions, new_view, next_height)
    assert [e.txid for e in result.readded] == [free.txid]
    assert result.readded[0].fee == 0


def test_the_pool_is_trimmed_back_to_size_after_readding(
    chain: ChainBuilder, view: CoinsCache, events: Events
) -> None:
    rich = chain.spend([chain.coinbase_of("b1")], fee=50 * FEE)
    low = chain.spend([chain.coinbase_of("b2")], fee=FEE)
    mid = chain.spend([chain.coinbase_of("b3")], fee=2 * FEE)
    pool = Mempool(REGTEST, max_bytes=2 * rich.size, on_removed=events.removed.append)
    for tx in (low, mid):
        pool.accept(tx, view, 111)
    chain.block("b111", txs=[rich])
    new_view, next_height = reorganise(chain, pool, [("b111a", []), ("b112a", [])])
    result = pool.readd_disconnected(chain["b111"].transactions, new_view, next_height)
    assert [e.txid for e in result.readded] == [rich.txid]
    assert events.reasons() == [(low.txid, RemovalReason.SIZELIMIT)]
    assert set(txids(pool)) == {rich.txid, mid.txid}


# -- the tip moved back


def test_moving_the_tip_back_drops_spends_of_coinbases_immature_again(
    chain: ChainBuilder, view: CoinsCache, pool: Mempool, events: Events
) -> None:
    just_mature = chain.spend([chain.coinbase_of("b11")], fee=FEE)
    child = spend(outputs_of(just_mature, chain.miner), fee=FEE)
    older = chain.spend([chain.coinbase_of("b1")], fee=FEE)
    for tx in (just_mature, child, older):
        pool.accept(tx, view, 111)

    removed = pool.revalidate(chain.connect_branch("b109"), 110)
    assert [(r.txid, r.reason) for r in removed] == [
        (just_mature.txid, RemovalReason.REORG),
        (child.txid, RemovalReason.REORG),
    ]
    assert ErrorCode.BAD_TXNS_PREMATURE_SPEND_OF_COINBASE.value in removed[0].detail
    assert events.removed == list(removed)
    assert txids(pool) == [older.txid]


def test_moving_the_tip_back_drops_transactions_no_longer_final(
    chain: ChainBuilder, view: CoinsCache, pool: Mempool
) -> None:
    locked = chain.spend([chain.coinbase_of("b1")], fee=FEE, locktime=110)
    pool.accept(locked, view, 111)
    removed = pool.revalidate(chain.connect_branch("b109"), 110)
    assert [r.txid for r in removed] == [locked.txid]
    assert ErrorCode.BAD_TXNS_NONFINAL.value in removed[0].detail


def test_revalidating_against_an_unchanged_chain_changes_nothing(
    chain: ChainBuilder, view: CoinsCache, pool: Mempool
) -> None:
    parent = chain.spend([chain.coinbase_of("b1")], fee=FEE)
    child = spend(outputs_of(parent, chain.miner), fee=2 * FEE)
    for tx in (parent, child):
        pool.accept(tx, view, 111, entry_time=1_234)
    before = [(e.tx, e.fee, e.time, e.height) for e in pool.entries()]
    assert pool.revalidate(view, 111) == ()
    assert [(e.tx, e.fee, e.time, e.height) for e in pool.entries()] == before
    assert pool.relatives(parent.txid).descendant_fees == 3 * FEE
