"""Block templates: the block a miner gets must pass every rule, pay itself exactly, and re-roll.

A regtest chain of 110 blocks; the template is for height 111 on b110 with the bits and median
time the chain expects. A template is mined by trying nonces (a couple on regtest) and the
block is then put through check_block, both context checks and connect_block, the same rules a
node applies to a block from a peer.
"""

from __future__ import annotations

import dataclasses
import struct

import pytest
from blocktools import ChainBuilder, Spendable, key, outputs_of, pkh, solve, spend
from hypothesis import given
from hypothesis import strategies as st

from node.core.block import Block
from node.core.errors import ErrorCode, RuleError
from node.core.hashing import sha256d
from node.core.header import bits_to_target
from node.core.mempool import Mempool
from node.core.merkle import merkle_root
from node.core.params import REGTEST
from node.core.sigcache import SignatureCache
from node.core.template import (
    EXTRANONCE_SIZE,
    MAX_EXTRANONCE,
    MAX_MESSAGE_SIZE,
    BlockTemplate,
    build_template,
    coinbase_merkle_branch,
)
from node.core.tx import COIN, OutPoint, Transaction, TxOut
from node.core.utxo import CoinsCache
from node.core.validation import (
    check_block,
    check_block_context,
    check_header_context,
    connect_block,
)

HEIGHT = 111
PAYOUT = pkh(key("pool operator"))


def template_for(
    chain: ChainBuilder, pool: Mempool, *, now: int | None = None, **options: object
) -> BlockTemplate:
    return build_template(
        REGTEST,
        parent_hash=chain["b110"].hash,
        height=HEIGHT,
        bits=chain.expected_bits("b110"),
        median_time_past=chain.median_time_past("b110"),
        now=now if now is not None else chain["b110"].header.time + 600,
        mempool=pool,
        payout_pubkey_hash=PAYOUT,
        **options,  # type: ignore[arg-type]
    )


def mine(template: BlockTemplate, extranonce: int = 0) -> Block:
    header = solve(template.header_for(extranonce, template.cur_time, 0))
    return template.block_for(extranonce, header.time, header.nonce)


def check_fully(chain: ChainBuilder, block: Block, view: CoinsCache) -> None:
    check_block(block, REGTEST)
    check_header_context(
        block.header,
        expected_bits=chain.expected_bits("b110"),
        median_time_past=chain.median_time_past("b110"),
        now=block.header.time,
    )
    check_block_context(block, HEIGHT)
    connect_block(block, HEIGHT, CoinsCache(view), REGTEST)


def fill(chain: ChainBuilder, pool: Mempool, view: CoinsCache) -> list[Transaction]:
    """A pool of independent payments, a parent with two generations, and a split."""
    txs = [chain.spend([chain.coinbase_of(f"b{n}")], fee=1_000 * n) for n in range(1, 6)]
    parent = chain.spend([chain.coinbase_of("b6")], fee=700)
    child = spend(outputs_of(parent, chain.miner), fee=9_000)
    grandchild = spend(outputs_of(child, chain.miner), fee=400)
    split = chain.spend(
        [chain.coinbase_of("b7")], [TxOut(10**8, pkh(key("x")))] * 5 + [TxOut(10**8, PAYOUT)]
    )
    txs += [parent, child, grandchild, split]
    for tx in txs:
        pool.accept(tx, view, HEIGHT)
    return txs


# -- the block is valid and pays exactly what it may


def test_a_mined_template_passes_every_rule_and_claims_subsidy_plus_fees(
    chain: ChainBuilder, pool: Mempool, view: CoinsCache
) -> None:
    fill(chain, pool, view)
    template = template_for(chain, pool)
    block = mine(template, extranonce=7)
    check_fully(chain, block, view)
    assert {tx.txid for tx in block.transactions[1:]} == {e.txid for e in pool.entries()}
    fees = sum(e.fee for e in pool.entries())
    assert template.fees == fees
    assert template.coinbase_value == REGTEST.subsidy(HEIGHT) + fees
    coinbase = block.transactions[0]
    assert coinbase.outputs == (TxOut(REGTEST.subsidy(HEIGHT) + fees, PAYOUT),)
    assert block.size == template.size <= REGTEST.max_block_size


def test_claiming_one_unit_more_would_be_refused(
    chain: ChainBuilder, pool: Mempool, view: CoinsCache
) -> None:
    """The exact claim is the most the rules allow: the coinbase value is not undercounted."""
    fill(chain, pool, view)
    template = template_for(chain, pool)
    greedy = dataclasses.replace(template, coinbase_value=template.coinbase_value + 1)
    with pytest.raises(RuleError) as caught:
        check_fully(chain, mine(greedy), view)
    assert caught.value.code is ErrorCode.BAD_CB_AMOUNT


def test_an_empty_pool_gives_a_valid_coinbase_only_block(
    chain: ChainBuilder, pool: Mempool, view: CoinsCache
) -> None:
    template = template_for(chain, pool)
    block = mine(template)
    check_fully(chain, block, view)
    assert len(block.transactions) == 1 and template.fees == 0
    assert template.coinbase_value == REGTEST.subsidy(HEIGHT)


def test_signatures_checked_by_the_pool_are_not_checked_again_for_the_block(
    chain: ChainBuilder, view: CoinsCache
) -> None:
    cache = SignatureCache()
    pool = Mempool(REGTEST)
    for n in range(1, 4):
        pool.accept(
            chain.spend([chain.coinbase_of(f"b{n}")], fee=500), view, HEIGHT, sig_cache=cache
        )
    entries = len(cache)
    block = mine(template_for(chain, pool))
    connect_block(block, HEIGHT, CoinsCache(view), REGTEST, sig_cache=cache)
    assert len(cache) == entries == 3


# -- the extranonce


def test_the_extranonce_changes_the_coinbase_and_the_merkle_root(
    chain: ChainBuilder, pool: Mempool, view: CoinsCache
) -> None:
    fill(chain, pool, view)
    template = template_for(chain, pool)
    extranonces = [0, 1, 2**32, MAX_EXTRANONCE]
    roots = [template.merkle_root(e) for e in extranonces]
    assert len(set(roots)) == len(extranonces)
    for extranonce, root in zip(extranonces, roots, strict=True):
        block = template.block_for(extranonce, template.cur_time, 0)
        assert block.header.merkle_root == root == block.compute_merkle_root()[0]
        data = block.transactions[0].inputs[0].signature
        assert data[:4] == struct.pack("<I", HEIGHT)
        assert data[4 : 4 + EXTRANONCE_SIZE] == struct.pack("<Q", extranonce)
        # Only the coinbase changes with the extranonce; the size never does.
        assert (
            block.transactions[1:] == template.block_for(0, template.cur_time, 0).transactions[1:]
        )
        assert block.size == template.size


@pytest.mark.parametrize("extranonce", [-1, MAX_EXTRANONCE + 1])
def test_an_extranonce_must_fit_its_eight_bytes(
    chain: ChainBuilder, pool: Mempool, extranonce: int
) -> None:
    template = template_for(chain, pool)
    with pytest.raises(ValueError, match="extranonce"):
        template.block_for(extranonce, template.cur_time, 0)
    with pytest.raises(ValueError, match="extranonce"):
        template_for(chain, pool, extranonce=extranonce)


def test_the_starting_header_uses_the_templates_extranonce_and_time(
    chain: ChainBuilder, pool: Mempool
) -> None:
    template = template_for(chain, pool, extranonce=42)
    assert template.header == template.header_for(42, template.cur_time, 0)
    assert template.header.merkle_root == template.merkle_root(42)


@given(txids=st.lists(st.binary(min_size=32, max_size=32), max_size=40))
def test_the_coinbase_branch_folds_to_bitcoins_merkle_root(txids: list[bytes]) -> None:
    coinbase_txid = sha256d(b"coinbase" + bytes(len(txids)))
    root = coinbase_txid
    for sibling in coinbase_merkle_branch(txids):
        root = sha256d(root + sibling)
    assert root == merkle_root([coinbase_txid, *txids])[0]


# -- choosing and ordering transactions


def test_packages_rank_by_ancestor_fee_rate_and_parents_come_first(
    chain: ChainBuilder, pool: Mempool, view: CoinsCache
) -> None:
    cheap_parent = chain.spend([chain.coinbase_of("b1")], fee=200)
    rich_child = spend(outputs_of(cheap_parent, chain.miner), fee=20_000)
    middling = chain.spend([chain.coinbase_of("b2")], fee=3_000)
    low = chain.spend([chain.coinbase_of("b3")], fee=500)
    for tx in (low, middling, cheap_parent, rich_child):
        pool.accept(tx, view, HEIGHT)
    template = template_for(chain, pool)
    assert [t.txid for t in template.transactions] == [
        cheap_parent.txid,
        rich_child.txid,
        middling.txid,
        low.txid,
    ]


def test_a_package_is_rescored_once_an_ancestor_is_in(
    chain: ChainBuilder, pool: Mempool, view: CoinsCache
) -> None:
    """Once the parent is in (with its best child), the other child stands on its own fee."""
    size = chain.spend([chain.coinbase_of("b1")], fee=1).size
    parent = chain.spend(
        [chain.coinbase_of("b1")], [TxOut(20 * COIN, PAYOUT), TxOut(30 * COIN - 30 * size, PAYOUT)]
    )
    rich, poor = (
        spend(
            [Spendable(OutPoint(parent.txid, n), parent.outputs[n].value, key("pool operator"))],
            fee=fee,
        )
        for n, fee in ((0, 40 * size), (1, size))
    )
    middling = chain.spend([chain.coinbase_of("b2")], fee=10 * size)
    for tx in (parent, rich, poor, middling):
        pool.accept(tx, view, HEIGHT)
    order = [t.txid for t in template_for(chain, pool).transactions]
    assert order == [parent.txid, rich.txid, middling.txid, poor.txid]


def test_equal_fee_rates_go_in_the_order_seen(
    chain: ChainBuilder, pool: Mempool, view: CoinsCache
) -> None:
    txs = [chain.spend([chain.coinbase_of(f"b{n}")], fee=1_000) for n in (4, 2, 9, 1)]
    for tx in txs:
        pool.accept(tx, view, HEIGHT)
    assert [t.txid for t in template_for(chain, pool).transactions] == [tx.txid for tx in txs]


def test_a_package_too_big_for_the_room_left_is_skipped_for_smaller_ones(
    chain: ChainBuilder, pool: Mempool, view: CoinsCache
) -> None:
    empty_size = template_for(chain, pool).size
    # Large and paying the best rate: 30 outputs, about six times a one-output payment.
    probe = chain.spend([chain.coinbase_of("b1")], [TxOut(10**8, pkh(key("x")))] * 30)
    large = chain.spend(
        [chain.coinbase_of("b1")],
        [TxOut(10**8, pkh(key("x")))] * 29 + [TxOut(21 * 10**8 - 100 * probe.size, PAYOUT)],
    )
    assert large.size == probe.size
    small = [chain.spend([chain.coinbase_of(f"b{n}")], fee=2_000) for n in (2, 3, 4)]
    for tx in (large, *small):
        pool.accept(tx, view, HEIGHT)
    assert pool.get(large.txid).fee_rate > pool.get(small[0].txid).fee_rate  # type: ignore[union-attr]
    # Room for the three small ones (plus the array header's growth), not for the large one.
    max_size = empty_size + 4 + sum(tx.size for tx in small)
    template = template_for(chain, pool, max_size=max_size)
    assert [t.txid for t in template.transactions] == [tx.txid for tx in small]
    assert template.size <= max_size


def test_every_size_limit_is_respected_and_every_template_is_valid(
    chain: ChainBuilder, pool: Mempool, view: CoinsCache
) -> None:
    fill(chain, pool, view)
    empty_size = template_for(chain, Mempool(REGTEST)).size
    full_size = template_for(chain, pool).size
    counts = set()
    for max_size in range(empty_size + 4, full_size + 40, 53):
        template = template_for(chain, pool, max_size=max_size)
        block = mine(template)
        assert block.size <= max_size
        check_fully(chain, block, view)
        counts.add(len(template.transactions))
    assert len(counts) > 5  # the sweep really went from few transactions to all of them


def test_non_final_transactions_and_their_descendants_are_left_out(
    chain: ChainBuilder, view: CoinsCache
) -> None:
    # A pool checked against the next height, 112, holds a transaction final only from 112.
    pool = Mempool(REGTEST)
    locked = chain.spend([chain.coinbase_of("b1")], fee=5_000, locktime=HEIGHT)
    after_locked = spend(outputs_of(locked, chain.miner), fee=5_000)
    free_to_go = chain.spend([chain.coinbase_of("b2")], fee=1_000)
    for tx in (locked, after_locked, free_to_go):
        pool.accept(tx, view, HEIGHT + 1)
    template = template_for(chain, pool)
    assert [t.txid for t in template.transactions] == [free_to_go.txid]
    check_fully(chain, mine(template), view)


# -- what getblocktemplate shows


def test_the_template_carries_what_getblocktemplate_reports(
    chain: ChainBuilder, pool: Mempool, view: CoinsCache
) -> None:
    parent = chain.spend([chain.coinbase_of("b1")], fee=300)
    other = chain.spend([chain.coinbase_of("b2")], fee=200)
    merged = spend(outputs_of(parent, chain.miner) + outputs_of(other, chain.miner), fee=40_000)
    for tx in (parent, other, merged):
        pool.accept(tx, view, HEIGHT)
    template = template_for(chain, pool)
    assert (template.height, template.prev_hash) == (HEIGHT, chain["b110"].hash)
    assert template.bits == chain.expected_bits("b110")
    assert template.target == bits_to_target(template.bits)
    by_txid = {t.txid: (n, t) for n, t in enumerate(template.transactions, start=1)}
    n_parent, n_other = by_txid[parent.txid][0], by_txid[other.txid][0]
    assert by_txid[merged.txid][1].depends == tuple(sorted((n_parent, n_other)))
    assert by_txid[parent.txid][1].depends == ()
    fees = {e.txid: e.fee for e in pool.entries()}
    assert [t.fee for t in template.transactions] == [fees[t.txid] for t in template.transactions]
    assert template.max_size == REGTEST.max_block_size


def test_times_come_from_the_caller_and_never_precede_the_median(
    chain: ChainBuilder, pool: Mempool
) -> None:
    median = chain.median_time_past("b110")
    ahead = template_for(chain, pool, now=median + 1_000)
    assert (ahead.min_time, ahead.cur_time) == (median + 1, median + 1_000)
    behind = template_for(chain, pool, now=median - 50)
    assert behind.cur_time == behind.min_time == median + 1
    with pytest.raises(ValueError, match="median time past"):
        behind.header_for(0, median, 0)


def test_the_message_goes_into_the_coinbase_within_its_limit(
    chain: ChainBuilder, pool: Mempool, view: CoinsCache
) -> None:
    message = b"m" * MAX_MESSAGE_SIZE
    template = template_for(chain, pool, message=message)
    block = mine(template)
    assert block.transactions[0].inputs[0].signature.endswith(message)
    check_fully(chain, block, view)
    with pytest.raises(ValueError, match="message"):
        template_for(chain, pool, message=message + b"m")


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"max_size": REGTEST.max_block_size + 1}, "limit"),
        ({"max_size": 100}, "no room"),
        ({"payout_pubkey_hash": bytes(19)}, "20 bytes"),
    ],
    ids=["above the network limit", "no room for a coinbase", "short payout hash"],
)
def test_bad_arguments_are_refused_clearly(
    chain: ChainBuilder, pool: Mempool, options: dict[str, object], match: str
) -> None:
    arguments: dict[str, object] = {
        "parent_hash": chain["b110"].hash,
        "height": HEIGHT,
        "bits": REGTEST.pow_limit_bits,
        "median_time_past": 0,
        "now": 1,
        "mempool": pool,
        "payout_pubkey_hash": PAYOUT,
    }
    arguments.update(options)
    with pytest.raises(ValueError, match=match):
        build_template(REGTEST, **arguments)  # type: ignore[arg-type]
