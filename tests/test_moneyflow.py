"""Following the money (``node.moneyflow``): the haircut model, case by case and on random graphs.

The ledger below builds plain transactions (the tracer checks no signature: it follows what a
valid chain already holds) and feeds them to a :class:`Tracer` in order, saying what each
spent output was worth, as the node does from undo data. Owners are single letters; ``A`` is
the address traced.

The properties, over random transaction graphs:

- no output holds more traced value than its value, and no fee more than the fee;
- each transaction hands on exactly the traced value it received (outputs + fee, with the
  address's own outputs counted as recirculated);
- conservation: traced value unspent + traced fees = received - recirculated;
- haircut: each share is the exact proportional share, within the rounding of its hops.
"""

from __future__ import annotations

import itertools
from fractions import Fraction
from pathlib import Path

import pytest
from blocktools import make_block
from hypothesis import given, settings
from hypothesis import strategies as st

from node.core.block import Block
from node.core.params import REGTEST
from node.core.tx import OutPoint, Transaction, TxIn, TxOut, make_coinbase
from node.moneyflow import Trace, Tracer, apportion, trace_blocks

OWNERS = "AXYZ"


def owner(letter: str) -> bytes:
    return letter.encode() * 20


A = owner("A")


class Ledger:
    """Transactions fed to a tracer in order, with the values of every output ever made."""

    def __init__(self, **limits: int) -> None:
        self.tracer = Tracer(A, **limits)
        self.values: dict[OutPoint, int] = {}
        self.unique = itertools.count(1)
        self.txs: list[Transaction] = []

    def mint(self, to: str, value: int) -> OutPoint:
        """A coinbase paying ``to``."""
        tx = make_coinbase(next(self.unique), (TxOut(value, owner(to)),))
        return self._add(tx)[0]

    def pay(
        self, spends: list[OutPoint], outputs: list[tuple[str, int]], *, mempool: bool = False
    ) -> list[OutPoint]:
        tx = Transaction(
            1,
            tuple(TxIn(op) for op in spends),
            tuple(TxOut(v, owner(who)) for who, v in outputs),
            next(self.unique),
        )
        return self._add(tx, mempool=mempool)

    def _add(self, tx: Transaction, *, mempool: bool = False) -> list[OutPoint]:
        height = None if mempool else len(self.txs) + 1
        self.tracer.add_transaction(tx, self.values.__getitem__, height=height)
        self.txs.append(tx)
        made = [OutPoint(tx.txid, n) for n in range(len(tx.outputs))]
        for op, out in zip(made, tx.outputs, strict=True):
            self.values[op] = out.value
        return made

    def trace(self) -> Trace:
        return self.tracer.result()


def output(trace: Trace, outpoint: OutPoint) -> tuple[int, int]:
    """(value, traced) of an output of the graph."""
    found = next(o for o in trace.outputs() if o.outpoint == outpoint)
    return found.value, found.traced


def check_conservation(trace: Trace) -> None:
    assert not trace.truncated
    assert trace.unspent + trace.fees == trace.received - trace.recirculated


# -- apportion


def test_apportion_splits_exactly_and_never_above_a_weight() -> None:
    assert apportion(10, [5, 5, 10]) == [3, 2, 5]  # 2.5, 2.5, 5: the tie goes to the first
    assert apportion(0, [3, 4]) == [0, 0]
    assert apportion(7, [7, 0]) == [7, 0]
    with pytest.raises(ValueError):
        apportion(8, [7])


@given(st.lists(st.integers(0, 10**9), min_size=1, max_size=8), st.data())
def test_apportion_property(weights: list[int], data: st.DataObject) -> None:
    total = data.draw(st.integers(0, sum(weights)))
    shares = apportion(total, weights)
    assert sum(shares) == total
    whole = sum(weights)
    for share, weight in zip(shares, weights, strict=True):
        assert 0 <= share <= weight
        if whole:
            assert abs(share - Fraction(total * weight, whole)) < 1


# -- named cases


def test_a_coin_never_spent() -> None:
    ledger = Ledger()
    coin = ledger.mint("A", 50)
    trace = ledger.trace()
    assert [tx.hop for tx in trace.txs] == [0]
    assert trace.txs[0].coinbase
    assert output(trace, coin) == (50, 50)
    assert trace.received == trace.unspent == trace.traced == 50
    assert trace.txs[0].outputs[0].spent_by is None
    check_conservation(trace)


def test_a_split_passes_every_part_on_whole() -> None:
    ledger = Ledger()
    coin = ledger.mint("A", 50)
    to_x, to_y = ledger.pay([coin], [("X", 20), ("Y", 29)])  # fee 1
    trace = ledger.trace()
    assert output(trace, to_x) == (20, 20)
    assert output(trace, to_y) == (29, 29)
    spend = trace.txs[1]
    assert (spend.hop, spend.fee, spend.traced_fee, spend.fraction) == (1, 1, 1, 1.0)
    assert trace.txs[0].outputs[0].spent_by == spend.txid
    check_conservation(trace)


def test_a_merge_with_foreign_coins_dilutes_the_trace() -> None:
    ledger = Ledger()
    mine = ledger.mint("A", 30_000)
    foreign = ledger.mint("X", 10_000)
    (paid,) = ledger.pay([mine, foreign], [("Y", 39_000)])  # fee 1,000
    trace = ledger.trace()
    merge = trace.txs[-1]
    assert (merge.value_in, merge.traced_in, merge.fee) == (40_000, 30_000, 1_000)
    assert output(trace, paid) == (39_000, 29_250)  # three quarters
    assert merge.traced_fee == 750
    assert merge.spends == (mine,)  # the foreign coin was never in the graph
    assert [tx.txid for tx in trace.txs].count(ledger.txs[1].txid) == 0
    check_conservation(trace)


def test_a_chain_of_hops_is_followed_to_its_end() -> None:
    ledger = Ledger()
    coin = ledger.mint("A", 100_000)
    to_x, change = ledger.pay([coin], [("X", 60_000), ("A", 39_000)])
    to_y, x_change = ledger.pay([to_x], [("Y", 20_000), ("X", 39_000)])
    (to_z,) = ledger.pay([to_y], [("Z", 19_000)])
    trace = ledger.trace()
    assert [tx.hop for tx in trace.txs] == [0, 1, 2, 3]
    assert trace.hops == 3
    for outpoint in (to_x, change, to_y, x_change, to_z):
        value, traced = output(trace, outpoint)
        assert traced == value  # every coin of this trail is the address's
    assert trace.traced_to([owner("Z")]) == 19_000
    assert trace.traced_to([owner("Y")]) == 0  # Y passed it all on
    check_conservation(trace)


def test_the_address_paying_itself_is_not_counted_twice() -> None:
    ledger = Ledger()
    coin = ledger.mint("A", 50_000)
    (back,) = ledger.pay([coin], [("A", 49_000)])
    trace = ledger.trace()
    assert output(trace, back) == (49_000, 49_000)
    assert trace.received == 99_000
    assert trace.recirculated == 49_000
    assert trace.traced == 50_000 == trace.unspent + trace.fees
    check_conservation(trace)


def test_someone_elses_change_is_not_followed() -> None:
    ledger = Ledger()
    funds = ledger.mint("X", 50_000)
    to_a, change = ledger.pay([funds], [("A", 10_000), ("X", 39_000)])
    ledger.pay([change], [("Y", 38_000)])
    trace = ledger.trace()
    # Only the payment to A: not the coinbase that paid X, nor the spend of X's change.
    assert [tx.txid for tx in trace.txs] == [ledger.txs[1].txid]
    assert output(trace, change) == (39_000, 0)
    assert trace.txs[0].outputs[1].spent_by == ledger.txs[-1].txid  # spent, outside the graph
    assert trace.txs[0].hop == 0 and output(trace, to_a) == (10_000, 10_000)
    check_conservation(trace)


def test_a_mempool_spend_is_followed_without_a_height() -> None:
    ledger = Ledger()
    coin = ledger.mint("A", 50_000)
    ledger.pay([coin], [("X", 49_000)], mempool=True)
    trace = ledger.trace()
    assert [tx.height for tx in trace.txs] == [1, None]
    check_conservation(trace)


def test_the_bounds_truncate_and_say_so() -> None:
    for limits, kept in (({"max_txs": 2}, 2), ({"max_hops": 1}, 2), ({"max_hops": 0}, 1)):
        ledger = Ledger(**limits)
        coin = ledger.mint("A", 100_000)
        for _ in range(3):
            (coin,) = ledger.pay([coin], [("X", ledger.values[coin] - 1_000)])
        trace = ledger.trace()
        assert trace.truncated, limits
        assert len(trace.txs) == kept, limits
        # The frontier output still says it was spent, though its spender is not drawn.
        assert trace.txs[-1].outputs[0].spent_by is not None


def test_blocks_are_replayed_in_order_within_a_block() -> None:
    """``trace_blocks`` (what the fork lab uses) finds the values of spent outputs itself,
    including an output spent by a later transaction of the same block."""
    coinbase = make_coinbase(1, (TxOut(50_000, A),))
    hop1 = Transaction(1, (TxIn(OutPoint(coinbase.txid, 0)),), (TxOut(49_000, owner("X")),))
    block1 = make_block(REGTEST.genesis_hash, [coinbase], time=1, bits=REGTEST.pow_limit_bits)
    hop2 = Transaction(1, (TxIn(OutPoint(hop1.txid, 0)),), (TxOut(48_000, owner("Y")),))
    block2 = make_block(
        block1.hash,
        [make_coinbase(2, (TxOut(50_000, owner("Z")),)), hop1, hop2],
        time=2,
        bits=REGTEST.pow_limit_bits,
    )
    blocks: list[tuple[int, Block]] = [(1, block1), (2, block2)]
    trace = trace_blocks(A, blocks)
    assert [(tx.hop, tx.height) for tx in trace.txs] == [(0, 1), (1, 2), (2, 2)]
    assert trace.blocks_scanned == 2
    assert trace.traced_to([owner("Y")]) == 48_000
    check_conservation(trace)


# -- random graphs


@st.composite
def ledgers(draw: st.DrawFn) -> Ledger:
    """Coinbases to random owners, then payments spending random unspent outputs into one to
    three outputs to random owners, with a random fee."""
    ledger = Ledger(max_txs=10_000, max_hops=10_000)
    unspent = [
        ledger.mint(draw(st.sampled_from(OWNERS)), draw(st.integers(1, 10**8)))
        for _ in range(draw(st.integers(1, 4)))
    ]
    for _ in range(draw(st.integers(0, 12))):
        if not unspent:
            break
        chosen = draw(st.lists(st.sampled_from(unspent), min_size=1, max_size=3, unique=True))
        value_in = sum(ledger.values[op] for op in chosen)
        fee = draw(st.integers(0, value_in // 10))
        count = draw(st.integers(1, 3))
        cuts = sorted(
            draw(st.lists(st.integers(0, value_in - fee), min_size=count - 1, max_size=count - 1))
        )
        values = [b - a for a, b in zip([0, *cuts], [*cuts, value_in - fee], strict=True)]
        made = ledger.pay(chosen, [(draw(st.sampled_from(OWNERS)), v) for v in values])
        unspent = [op for op in unspent if op not in chosen] + made
    return ledger


def exact_shares(ledger: Ledger) -> dict[OutPoint, Fraction]:
    """The haircut model in exact fractions, over every transaction (the reference)."""
    traced: dict[OutPoint, Fraction] = {}
    for tx in ledger.txs:
        spent = [] if tx.is_coinbase() else [t.prevout for t in tx.inputs]
        value_in = sum(ledger.values[op] for op in spent)
        traced_in = sum((traced[op] for op in spent), Fraction(0))
        for n, out in enumerate(tx.outputs):
            share = traced_in * out.value / value_in if value_in else Fraction(0)
            traced[OutPoint(tx.txid, n)] = Fraction(out.value) if out.pubkey_hash == A else share
    return traced


@settings(max_examples=150, deadline=None)
@given(ledgers())
def test_random_graphs_conserve_the_traced_coins(ledger: Ledger) -> None:
    trace = ledger.trace()
    check_conservation(trace)
    reference = exact_shares(ledger)
    graph = {tx.txid for tx in trace.txs}
    for tx in trace.txs:
        assert 0 <= tx.traced_fee <= tx.fee
        handed_on = tx.traced_fee
        for out in tx.outputs:
            assert 0 <= out.traced <= out.value
            if out.pubkey_hash != A:
                handed_on += out.traced
                # Rounding is below one unit per transaction the value went through.
                assert abs(out.traced - reference[out.outpoint]) <= len(trace.txs)
            else:
                assert out.traced == out.value
        recirculated = tx.traced_in - handed_on
        assert 0 <= recirculated <= sum(o.value for o in tx.outputs if o.pubkey_hash == A)
    # Exactly the transactions that pay the address or spend traced value are in the graph.
    traced_outputs = {o.outpoint for o in trace.outputs() if o.traced}
    for made in ledger.txs:
        pays = any(out.pubkey_hash == A for out in made.outputs)
        spends = not made.is_coinbase() and any(t.prevout in traced_outputs for t in made.inputs)
        assert (made.txid in graph) == (pays or spends)


# -- the lesson: follow-the-money on both backends


def test_the_lesson_follows_the_trail_in_the_simulator() -> None:
    from node.lab.runner_sim import run_scenario
    from node.lab.scenarios import builtin
    from node.wallet.wallet import Wallet

    result = run_scenario(builtin("follow-the-money"))
    assert result.passed, [s.detail for s in result.failed_steps]
    analysis = result.analysis
    for name in ("alice", "bob", "carol", "dave", "erin"):
        # The simulator's wallets, learnt from what the run did rather than derived.
        expected = Wallet.from_seed(REGTEST, f"forklab-lab/{name}".encode()).change_pubkey_hash
        assert analysis.address_of(name) == expected, name
    # The same numbers from the block tree as from a trace of the best chain.
    erin = analysis.traced("alice", "erin")
    assert erin is not None and 45 * 10**8 < erin < 46 * 10**8
    assert analysis.traced("erin", "alice") == 0  # erin never paid alice
    assert analysis.traced("alice", "nobody") == 0


def test_the_lesson_follows_the_trail_on_real_nodes(tmp_path: Path) -> None:
    from node.devnet import wallets
    from node.lab.report import as_json
    from node.lab.runner_real import run_real, unsupported
    from node.lab.scenarios import builtin

    scenario = builtin("follow-the-money")
    assert unsupported(scenario) == []
    result = run_real(scenario, workdir=tmp_path)
    assert result.passed, [f"{s.description}: {s.detail}" for s in result.failed_steps]
    for name in ("alice", "erin"):
        expected = wallets.wallet(REGTEST, name).change_pubkey_hash
        assert result.analysis.address_of(name) == expected, name
    # Each payment is mined on n1 before the next is sent: a block is dated when the runner
    # first saw it, which must be right after the mine step, not when a later step looked.
    payments = as_json(result)["transactions"]
    assert [p["label"] for p in payments] == ["to-bob", "to-carol", "to-dave", "to-erin"]
    for paid, then in itertools.pairwise(payments):
        assert paid["sent_at"] <= paid["confirmed_at"] <= then["sent_at"], (paid, then)
    assert list(tmp_path.iterdir()) == []
