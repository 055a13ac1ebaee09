"""Mempool admission: a catalogue of every reason a transaction is refused, and what is accepted.

Every case runs against the same regtest chain of 110 blocks (coinbases of b1..b10 are mature
for the block at height 111, b20's is not) and a fresh pool. A refusal must name its rule and
leave the pool exactly as it was; an acceptance must make the transaction's outputs spendable
by the next one (unconfirmed chains).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import pytest
from blocktools import ChainBuilder, Spendable, key, outputs_of, pkh, spend

from node.core.errors import ErrorCode, RuleError, RuleKind
from node.core.mempool import (
    MAX_ANCESTORS,
    MAX_DESCENDANTS,
    MAX_PACKAGE_SIZE,
    MAX_STANDARD_TX_SIZE,
    MEMPOOL_HEIGHT,
    Mempool,
    MempoolView,
)
from node.core.params import REGTEST
from node.core.sigcache import SignatureCache, signature_cache_key
from node.core.tx import OutPoint, Transaction, TxIn, TxOut, make_coinbase
from node.core.utxo import CoinsCache
from node.core.validation import connect_block

NEXT = 111
FEE = 1_000


def snapshot(pool: Mempool) -> tuple[object, ...]:
    return (pool.entries(), pool.total_bytes, pool.total_fees, pool.revision)


# -- the catalogue of refusals


@dataclass(frozen=True)
class Refusal:
    """A transaction built against ``chain`` (after ``setup`` ran on the pool) and its code."""

    name: str
    code: ErrorCode
    build: Callable[[ChainBuilder, Mempool, CoinsCache], Transaction]


def _coinbase(chain: ChainBuilder, pool: Mempool, view: CoinsCache) -> Transaction:
    return make_coinbase(NEXT, (TxOut(50, pkh(key("x"))),))


def _duplicate(chain: ChainBuilder, pool: Mempool, view: CoinsCache) -> Transaction:
    tx = chain.spend([chain.coinbase_of("b1")], fee=FEE)
    pool.accept(tx, view, NEXT)
    return tx


def _no_inputs(chain: ChainBuilder, pool: Mempool, view: CoinsCache) -> Transaction:
    return Transaction(1, (), (TxOut(1, pkh(key("x"))),))


def _too_big(chain: ChainBuilder, pool: Mempool, view: CoinsCache) -> Transaction:
    outputs = [TxOut(1_000, pkh(key("x")))] * (MAX_STANDARD_TX_SIZE // 25)
    tx = chain.spend([chain.coinbase_of("b1")], outputs)
    assert tx.size > MAX_STANDARD_TX_SIZE
    return tx


def _non_final(chain: ChainBuilder, pool: Mempool, view: CoinsCache) -> Transaction:
    return chain.spend([chain.coinbase_of("b1")], fee=FEE, locktime=NEXT)


def _conflict(chain: ChainBuilder, pool: Mempool, view: CoinsCache) -> Transaction:
    coin = chain.coinbase_of("b1")
    pool.accept(chain.spend([coin], fee=FEE), view, NEXT)
    return chain.spend([coin], fee=10 * FEE, to=key("someone else"))


def _conflict_in_second_input(chain: ChainBuilder, pool: Mempool, view: CoinsCache) -> Transaction:
    pool.accept(chain.spend([chain.coinbase_of("b2")], fee=FEE), view, NEXT)
    return chain.spend([chain.coinbase_of("b1"), chain.coinbase_of("b2")], fee=FEE)


def _confirmed(chain: ChainBuilder, pool: Mempool, view: CoinsCache) -> Transaction:
    tx = chain.spend([chain.coinbase_of("b1")], fee=FEE)
    side = chain.copy()
    side.block("confirming", txs=[tx])
    side.full_check("confirming", view)
    return tx


def _confirmed_with_a_pool_child(
    chain: ChainBuilder, pool: Mempool, view: CoinsCache
) -> Transaction:
    tx = _confirmed(chain, pool, view)
    pool.accept(spend(outputs_of(tx, chain.miner), fee=FEE), view, NEXT + 1)
    return tx  # relayed again by a peer that missed the block


def _missing_input(chain: ChainBuilder, pool: Mempool, view: CoinsCache) -> Transaction:
    ghost = Spendable(OutPoint(bytes(range(32)), 0), 10_000, key("miner"))
    return chain.spend([ghost], [TxOut(5_000, pkh(key("x")))])


def _immature(chain: ChainBuilder, pool: Mempool, view: CoinsCache) -> Transaction:
    return chain.spend([chain.coinbase_of("b20")], fee=FEE)


def _no_fee(chain: ChainBuilder, pool: Mempool, view: CoinsCache) -> Transaction:
    return chain.spend([chain.coinbase_of("b1")])


def _fee_one_short(chain: ChainBuilder, pool: Mempool, view: CoinsCache) -> Transaction:
    probe = chain.spend([chain.coinbase_of("b1")], fee=FEE)
    # The fee changes no field width here (values stay 9-byte integers), so the size holds.
    return chain.spend([chain.coinbase_of("b1")], fee=probe.size * pool.min_fee_rate - 1)


def _bad_signature(chain: ChainBuilder, pool: Mempool, view: CoinsCache) -> Transaction:
    tx = chain.spend([chain.coinbase_of("b1")], fee=FEE)
    flipped = bytes([tx.inputs[0].signature[0] ^ 1]) + tx.inputs[0].signature[1:]
    return tx.with_signature(0, flipped, tx.inputs[0].pubkey)


def _wrong_key(chain: ChainBuilder, pool: Mempool, view: CoinsCache) -> Transaction:
    coin = dataclasses.replace(chain.coinbase_of("b1"), key=key("thief"))
    return chain.spend([coin], fee=FEE)


def _overspend(chain: ChainBuilder, pool: Mempool, view: CoinsCache) -> Transaction:
    coin = chain.coinbase_of("b1")
    return chain.spend([coin], [TxOut(coin.value + 1, pkh(key("x")))])


def _chain_too_long(chain: ChainBuilder, pool: Mempool, view: CoinsCache) -> Transaction:
    tx = chain.spend([chain.coinbase_of("b1")], fee=FEE)
    for _ in range(MAX_ANCESTORS):
        pool.accept(tx, view, NEXT)
        tx = spend(outputs_of(tx, chain.miner), fee=FEE)
    return tx  # the 26th link


def _too_many_descendants(chain: ChainBuilder, pool: Mempool, view: CoinsCache) -> Transaction:
    parent = chain.spend([chain.coinbase_of("b1")], [TxOut(10**8, pkh(chain.miner))] * 30)
    pool.accept(parent, view, NEXT)
    outputs = outputs_of(parent, chain.miner)
    for coin in outputs[: MAX_DESCENDANTS - 1]:
        pool.accept(spend([coin], fee=FEE), view, NEXT)
    return spend([outputs[MAX_DESCENDANTS - 1]], fee=FEE)  # the parent's 25th descendant


def _package_too_large(chain: ChainBuilder, pool: Mempool, view: CoinsCache) -> Transaction:
    # Two parents of just over half the limit each: neither has too much below it, but a
    # transaction merging them has too much above it.
    parents = []
    for block in ("b1", "b2"):
        many = [TxOut(1_000, pkh(key("x")))] * (MAX_PACKAGE_SIZE // 2 // 25)
        change = TxOut(50 * 10**8 - 1_000 * len(many) - 100 * FEE, pkh(chain.miner))
        parent = chain.spend([chain.coinbase_of(block)], [*many, change])
        pool.accept(parent, view, NEXT)
        parents.append(parent)
    merge = spend([outputs_of(p, chain.miner)[-1] for p in parents], fee=FEE)
    assert sum(p.size for p in parents) + merge.size > MAX_PACKAGE_SIZE
    assert all(p.size + merge.size <= MAX_PACKAGE_SIZE for p in parents)
    return merge


def _descendants_too_large(chain: ChainBuilder, pool: Mempool, view: CoinsCache) -> Transaction:
    # Two children of just over half the limit each under one small parent: the second has
    # little above it, but the parent would have too much below it.
    parent = chain.spend([chain.coinbase_of("b1")], [TxOut(20 * 10**8, pkh(chain.miner))] * 2)
    pool.accept(parent, view, NEXT)
    children = [
        spend([coin], [TxOut(1_000, pkh(key("x")))] * (MAX_PACKAGE_SIZE // 2 // 25), fee=0)
        for coin in outputs_of(parent, chain.miner)
    ]
    pool.accept(children[0], view, NEXT)
    assert parent.size + children[1].size <= MAX_PACKAGE_SIZE
    return children[1]


REFUSALS = [
    Refusal("a coinbase", ErrorCode.COINBASE, _coinbase),
    Refusal("already in the pool", ErrorCode.TXN_ALREADY_IN_MEMPOOL, _duplicate),
    Refusal("no inputs (context-free rules)", ErrorCode.BAD_TXNS_VIN_EMPTY, _no_inputs),
    Refusal("larger than the relay limit", ErrorCode.TX_SIZE, _too_big),
    Refusal("locktime at the next height", ErrorCode.BAD_TXNS_NONFINAL, _non_final),
    Refusal("spends a coin a pool tx spends", ErrorCode.TXN_MEMPOOL_CONFLICT, _conflict),
    Refusal(
        "conflict in its second input", ErrorCode.TXN_MEMPOOL_CONFLICT, _conflict_in_second_input
    ),
    Refusal("already confirmed", ErrorCode.TXN_ALREADY_KNOWN, _confirmed),
    Refusal(
        "already confirmed, a pool tx spends it",
        ErrorCode.TXN_ALREADY_KNOWN,
        _confirmed_with_a_pool_child,
    ),
    Refusal("spends an unknown coin", ErrorCode.BAD_TXNS_INPUTS_MISSINGORSPENT, _missing_input),
    Refusal(
        "spends an immature coinbase",
        ErrorCode.BAD_TXNS_PREMATURE_SPEND_OF_COINBASE,
        _immature,
    ),
    Refusal("pays no fee", ErrorCode.MIN_RELAY_FEE_NOT_MET, _no_fee),
    Refusal("pays one unit too little", ErrorCode.MIN_RELAY_FEE_NOT_MET, _fee_one_short),
    Refusal("the 26th link of a chain", ErrorCode.TOO_LONG_MEMPOOL_CHAIN, _chain_too_long),
    Refusal(
        "a 25th descendant of one parent", ErrorCode.TOO_LONG_MEMPOOL_CHAIN, _too_many_descendants
    ),
    Refusal("ancestors over 101 kB", ErrorCode.TOO_LONG_MEMPOOL_CHAIN, _package_too_large),
    Refusal("descendants over 101 kB", ErrorCode.TOO_LONG_MEMPOOL_CHAIN, _descendants_too_large),
    Refusal("a bad signature", ErrorCode.BAD_TXNS_SIGNATURE, _bad_signature),
    Refusal("signed by another key", ErrorCode.BAD_TXNS_PUBKEY_MISMATCH, _wrong_key),
    Refusal("outputs exceed inputs", ErrorCode.BAD_TXNS_IN_BELOWOUT, _overspend),
]


@pytest.mark.parametrize("case", REFUSALS, ids=lambda case: case.name)
def test_refused_with_its_reason_and_nothing_changes(
    case: Refusal, chain: ChainBuilder, pool: Mempool, view: CoinsCache
) -> None:
    tx = case.build(chain, pool, view)
    before = snapshot(pool)
    with pytest.raises(RuleError) as caught:
        pool.accept(tx, view, NEXT)
    assert caught.value.code is case.code
    assert snapshot(pool) == before


def test_policy_codes_are_policy_and_consensus_codes_are_consensus() -> None:
    # A peer relaying a policy refusal did nothing wrong; the p2p layer relies on the kind.
    policy = {
        ErrorCode.COINBASE,
        ErrorCode.TXN_ALREADY_IN_MEMPOOL,
        ErrorCode.TX_SIZE,
        ErrorCode.TXN_MEMPOOL_CONFLICT,
        ErrorCode.TXN_ALREADY_KNOWN,
        ErrorCode.MIN_RELAY_FEE_NOT_MET,
        ErrorCode.TOO_LONG_MEMPOOL_CHAIN,
    }
    for case in REFUSALS:
        expected = RuleKind.POLICY if case.code in policy else RuleKind.CONSENSUS
        assert case.code.kind is expected, case.name


def test_the_first_seen_of_two_conflicting_spends_stays(
    chain: ChainBuilder, pool: Mempool, view: CoinsCache
) -> None:
    coin = chain.coinbase_of("b1")
    first = chain.spend([coin], fee=FEE)
    richer = chain.spend([coin], fee=100 * FEE, to=key("someone else"))
    pool.accept(first, view, NEXT)
    with pytest.raises(RuleError) as caught:
        pool.accept(richer, view, NEXT)
    assert caught.value.code is ErrorCode.TXN_MEMPOOL_CONFLICT
    assert first.txid_hex in caught.value.detail
    assert first.txid in pool and richer.txid not in pool
    assert pool.spender_of(coin.outpoint) == first.txid


def test_a_cheap_transaction_is_refused_before_its_signatures_are_checked(
    chain: ChainBuilder, pool: Mempool, view: CoinsCache
) -> None:
    """Policy that needs no signature runs first, so a flood of free junk costs no ECDSA."""
    tx = _bad_signature(chain, pool, view)
    free = chain.spend([chain.coinbase_of("b2")])
    free = free.with_signature(0, tx.inputs[0].signature, free.inputs[0].pubkey)
    cache = SignatureCache()
    with pytest.raises(RuleError) as caught:
        pool.accept(free, view, NEXT, sig_cache=cache)
    assert caught.value.code is ErrorCode.MIN_RELAY_FEE_NOT_MET
    assert len(cache) == 0


# -- acceptance


def test_the_minimum_fee_rate_itself_is_enough(
    chain: ChainBuilder, pool: Mempool, view: CoinsCache
) -> None:
    probe = chain.spend([chain.coinbase_of("b1")], fee=FEE)
    tx = chain.spend([chain.coinbase_of("b1")], fee=probe.size * pool.min_fee_rate)
    entry = pool.accept(tx, view, NEXT)
    assert entry.fee == tx.size * pool.min_fee_rate
    assert entry.fee_rate == pool.min_fee_rate


def test_a_zero_minimum_admits_free_transactions(chain: ChainBuilder, view: CoinsCache) -> None:
    pool = Mempool(REGTEST, min_fee_rate=0)
    assert pool.accept(chain.spend([chain.coinbase_of("b1")]), view, NEXT).fee == 0


def test_locktime_below_the_next_height_is_final(
    chain: ChainBuilder, pool: Mempool, view: CoinsCache
) -> None:
    tx = chain.spend([chain.coinbase_of("b1")], fee=FEE, locktime=NEXT - 1)
    assert pool.accept(tx, view, NEXT).tx == tx


def test_an_entry_records_what_the_caller_passed(
    chain: ChainBuilder, pool: Mempool, view: CoinsCache
) -> None:
    tx = chain.spend([chain.coinbase_of("b1")], fee=FEE)
    entry = pool.accept(tx, view, NEXT, entry_time=1_700_000_000)
    assert (entry.fee, entry.time, entry.height, entry.size) == (FEE, 1_700_000_000, 110, tx.size)
    assert pool.get(tx.txid) == entry
    assert (pool.total_bytes, pool.total_fees, len(pool)) == (tx.size, FEE, 1)


def test_unconfirmed_chains_parent_child_grandchild(
    chain: ChainBuilder, pool: Mempool, view: CoinsCache
) -> None:
    parent = chain.spend([chain.coinbase_of("b1")], fee=FEE)
    child = spend(outputs_of(parent, chain.miner), fee=2 * FEE)
    grandchild = spend(outputs_of(child, chain.miner), fee=3 * FEE)
    for tx in (parent, child, grandchild):
        pool.accept(tx, view, NEXT)
    assert [e.txid for e in pool.entries()] == [parent.txid, child.txid, grandchild.txid]

    middle = pool.relatives(child.txid)
    assert middle.parents == {parent.txid} and middle.children == {grandchild.txid}
    assert (middle.ancestor_count, middle.ancestor_fees) == (2, 3 * FEE)
    assert middle.ancestor_size == parent.size + child.size
    assert (middle.descendant_count, middle.descendant_fees) == (2, 5 * FEE)
    assert middle.descendant_size == child.size + grandchild.size
    top = pool.relatives(parent.txid)
    assert (top.descendant_count, top.descendant_fees) == (3, 6 * FEE)
    assert top.ancestor_fee_rate == Fraction(FEE, parent.size)


def test_a_child_may_not_spend_an_output_its_parent_lacks(
    chain: ChainBuilder, pool: Mempool, view: CoinsCache
) -> None:
    parent = chain.spend([chain.coinbase_of("b1")], fee=FEE)
    pool.accept(parent, view, NEXT)
    beyond = Spendable(OutPoint(parent.txid, 1), 1_000, chain.miner)
    with pytest.raises(RuleError) as caught:
        pool.accept(spend([beyond], [TxOut(1, pkh(key("x")))]), view, NEXT)
    assert caught.value.code is ErrorCode.BAD_TXNS_INPUTS_MISSINGORSPENT


# -- the view the pool checks against


def test_the_view_adds_pool_outputs_and_hides_pool_spent_coins(
    chain: ChainBuilder, pool: Mempool, view: CoinsCache
) -> None:
    spent = chain.coinbase_of("b1")
    untouched = chain.coinbase_of("b2")
    tx = chain.spend([spent], fee=FEE)
    pool.accept(tx, view, NEXT)
    seen = MempoolView(view, pool)

    assert view.get_coin(spent.outpoint) is not None
    assert seen.get_coin(spent.outpoint) is None
    assert seen.get_coin(untouched.outpoint) == view.get_coin(untouched.outpoint)
    created = seen.get_coin(OutPoint(tx.txid, 0))
    assert created is not None
    assert (created.value, created.pubkey_hash) == (tx.outputs[0].value, tx.outputs[0].pubkey_hash)
    assert (created.height, created.is_coinbase) == (MEMPOOL_HEIGHT, False)
    assert seen.get_coin(OutPoint(tx.txid, 1)) is None


# -- the signature cache


def test_signatures_checked_on_entry_are_not_checked_again_in_the_block(
    chain: ChainBuilder, pool: Mempool, view: CoinsCache
) -> None:
    cache = SignatureCache()
    coins = [chain.coinbase_of("b1"), chain.coinbase_of("b2")]
    tx = chain.spend(coins, fee=FEE)
    pool.accept(tx, view, NEXT, sig_cache=cache)
    keys = [
        signature_cache_key(tx.sighash(n, REGTEST.genesis_hash), txin.pubkey, txin.signature)
        for n, txin in enumerate(tx.inputs)
    ]
    assert all(cache.contains(k) for k in keys)
    assert len(cache) == len(tx.inputs)

    side = chain.copy()
    block = side.block("confirming", txs=[tx])
    connect_block(block, NEXT, CoinsCache(view), REGTEST, sig_cache=cache)
    assert len(cache) == len(tx.inputs)  # every lookup hit; nothing new was verified


def test_a_signature_in_the_cache_does_not_excuse_a_different_spend(
    chain: ChainBuilder, pool: Mempool, view: CoinsCache
) -> None:
    cache = SignatureCache()
    tx = chain.spend([chain.coinbase_of("b1")], fee=FEE)
    pool.accept(tx, view, NEXT, sig_cache=cache)
    other = Transaction(1, (TxIn(tx.inputs[0].prevout),), (TxOut(1, pkh(key("x"))),))
    forged = other.with_signature(0, tx.inputs[0].signature, tx.inputs[0].pubkey)
    fresh = Mempool(REGTEST)
    with pytest.raises(RuleError) as caught:
        fresh.accept(forged, view, NEXT, sig_cache=cache)
    assert caught.value.code is ErrorCode.BAD_TXNS_SIGNATURE
