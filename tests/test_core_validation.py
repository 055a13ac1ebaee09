"""Specification of the block and transaction rules, as a catalogue of named blocks.

In the spirit of btcd's fullblocktests and Bitcoin Core's feature_block.py: a shared regtest
chain is built once, and every case grows one block ``x`` on its tip that breaks exactly one
rule. The block runs through every check the node makes (``ChainBuilder.full_check``: context
free, header context, block context, then connecting to a UTXO overlay) and must be refused
with exactly that rule's code. Valid cases around each boundary must pass.

The shared chain, heights 0..110 (``bN`` is at height N, coinbases pay the miner)::

    genesis -> b1 -> ... -> b100 -> b101 -> ... -> b110
                                    (b101 spends b1's coinbase into 4 coins: "split")

A case block ``x`` is at height 111, so coinbases of heights up to 11 are mature: b2..b11
(b1's is spent), and b12's matures only at height 112.

Rules that no block can break once the others hold are checked one layer down, with a view
built by hand: BIP30 (unreachable since coinbases carry their height), input values out of
range and fee sums out of range (unreachable with a UTXO set whose coins are all in range).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from blocktools import ChainBuilder, Spendable, key, make_block, outputs_of, pkh, sign, spend

from node.core.block import Block
from node.core.crypto import CURVE_ORDER, PrivateKey
from node.core.errors import ErrorCode, RuleError, RuleKind
from node.core.params import DEMO, MAX_FUTURE_BLOCK_TIME, REGTEST
from node.core.sigcache import SignatureCache, signature_cache_key
from node.core.tx import (
    COIN,
    MAX_MONEY,
    MAX_TX_SIZE,
    NULL_OUTPOINT,
    OutPoint,
    Transaction,
    TxIn,
    TxOut,
    make_coinbase,
)
from node.core.utxo import Coin, CoinsCache
from node.core.validation import (
    check_block,
    check_transaction,
    check_tx_inputs,
    connect_block,
)

MINER = key("miner")
ALICE = key("alice")
BOB = key("bob")


@dataclass(frozen=True)
class Base:
    chain: ChainBuilder
    view: CoinsCache
    split: tuple[Spendable, ...]
    """The four coins b101 made from b1's coinbase (not coinbase coins: spendable at once)."""


@pytest.fixture(scope="module")
def base() -> Base:
    chain = ChainBuilder(REGTEST, miner=MINER)
    chain.extend(100)
    split_tx = chain.spend(
        [chain.coinbase_of("b1")], [TxOut(12 * COIN, pkh(MINER))] * 4, fee=2 * COIN
    )
    chain.block("b101", txs=[split_tx])
    chain.extend(9)
    assert chain.tip == "b110"
    view = chain.connect_branch("b110")
    return Base(chain, view, tuple(outputs_of(split_tx, MINER)))


@dataclass
class Case:
    """What a case builder gets: a private copy of the chain, handy coins, and the clock."""

    chain: ChainBuilder
    split: tuple[Spendable, ...]
    now: int | None = None
    """The validating node's clock; None: each block's own time (never too new)."""

    def mature(self, height: int) -> Spendable:
        """The coinbase coin of block ``b{height}``."""
        return self.chain.coinbase_of(f"b{height}")

    def arrival_time(self) -> int:
        """When a block on b110 would arrive: one target spacing after it."""
        return self.chain["b110"].header.time + REGTEST.target_spacing


def run(base: Base, build: Callable[[Case], str]) -> tuple[Case, CoinsCache, str]:
    """Build a case's blocks on a copy of the base chain; check and connect those past b110."""
    case = Case(base.chain.copy(), base.split)
    name = build(case)
    view = CoinsCache(base.view)
    for ancestor in case.chain.branch(name)[110:]:
        case.chain.full_check(ancestor, view, now=case.now)
    return case, view, name


# -- the catalogue of invalid blocks: one per rule

INVALID: list[object] = []


def invalid(code: ErrorCode) -> Callable[[Callable[[Case], str]], Callable[[Case], str]]:
    def register(build: Callable[[Case], str]) -> Callable[[Case], str]:
        INVALID.append(pytest.param(build, code, id=f"{build.__name__} [{code.value}]"))
        return build

    return register


def unsigned(coins: list[Spendable], outputs: list[TxOut], locktime: int = 0) -> Transaction:
    return Transaction(1, tuple(TxIn(c.outpoint) for c in coins), tuple(outputs), locktime)


def with_input(
    tx: Transaction, n: int, *, signature: bytes | None = None, pubkey: bytes | None = None
) -> Transaction:
    """``tx`` with input ``n``'s signature or public key replaced (nothing re-signed)."""
    txin = tx.inputs[n]
    inputs = list(tx.inputs)
    inputs[n] = TxIn(
        txin.prevout,
        txin.signature if signature is None else signature,
        txin.pubkey if pubkey is None else pubkey,
    )
    return dataclasses.replace(tx, inputs=tuple(inputs))


# proof of work and header context


@invalid(ErrorCode.HIGH_HASH)
def hash_above_target(c: Case) -> str:
    c.chain.block("x", mine=False)
    return "x"


@invalid(ErrorCode.BAD_DIFFBITS)
def bits_easier_than_pow_limit(c: Case) -> str:
    c.chain.block("x", bits=0x2100FFFF)
    return "x"


@invalid(ErrorCode.BAD_DIFFBITS)
def bits_not_what_retarget_expects(c: Case) -> str:
    c.chain.block("x", bits=0x1F7FFFFF)  # harder than required: still wrong
    return "x"


@invalid(ErrorCode.TIME_TOO_OLD)
def time_equal_to_median_time_past(c: Case) -> str:
    c.chain.block("x", time=c.chain.median_time_past("b110"))
    return "x"


@invalid(ErrorCode.TIME_TOO_NEW)
def time_past_two_hours_ahead(c: Case) -> str:
    c.now = c.arrival_time()
    c.chain.block("x", time=c.now + MAX_FUTURE_BLOCK_TIME + 1)
    return "x"


# block structure


@invalid(ErrorCode.BAD_TXNMRKLROOT)
def transaction_added_after_mining(c: Case) -> str:
    block = c.chain.block("y")
    extra = spend([c.mature(2)])
    c.chain.add("x", Block(block.header, (*block.transactions, extra)), "b110")
    return "x"


@invalid(ErrorCode.BAD_TXNS_DUPLICATE)
def last_transactions_repeated_same_merkle_root(c: Case) -> str:
    # CVE-2012-2459: [cb, a, b] and [cb, a, b, b] share a root, so the copy has the hash of a
    # valid block (test_mutated_copy_has_the_hash_of_a_valid_block shows that one passes).
    a, b = spend([c.mature(2)]), spend([c.mature(3)])
    valid = c.chain.block("valid", txs=[a, b])
    c.chain.add("x", Block(valid.header, (*valid.transactions, b)), "b110")
    return "x"


@invalid(ErrorCode.BAD_BLK_LENGTH)
def block_over_a_megabyte(c: Case) -> str:
    # Two transactions under the transaction limit whose block is over the block limit.
    dust = [TxOut(1, pkh(ALICE))] * 25_000
    txs = [unsigned([c.mature(2)], dust), unsigned([c.mature(3)], dust)]
    assert all(tx.size < MAX_TX_SIZE for tx in txs)
    c.chain.block("x", txs=txs)
    return "x"


@invalid(ErrorCode.BAD_BLK_LENGTH)
def block_without_transactions(c: Case) -> str:
    block = make_block(
        c.chain["b110"].hash, [], time=c.arrival_time(), bits=0x207FFFFF, merkle_root=bytes(32)
    )
    c.chain.add("x", block, "b110")
    return "x"


@invalid(ErrorCode.BAD_CB_MISSING)
def first_transaction_not_a_coinbase(c: Case) -> str:
    c.chain.block("x", txs=[spend([c.mature(2)])], munge=lambda txs: txs[1:])
    return "x"


@invalid(ErrorCode.BAD_CB_MULTIPLE)
def second_coinbase(c: Case) -> str:
    second = make_coinbase(111, (TxOut(COIN, pkh(ALICE)),), message=b"second")
    c.chain.block("x", munge=lambda txs: [*txs, second])
    return "x"


@invalid(ErrorCode.BAD_CB_LENGTH)
def coinbase_data_over_100_bytes(c: Case) -> str:
    cb = make_coinbase(111, (TxOut(50 * COIN, pkh(MINER)),), message=bytes(97))
    c.chain.block("x", coinbase=cb)
    return "x"


@invalid(ErrorCode.BAD_CB_LENGTH)
def coinbase_data_under_4_bytes(c: Case) -> str:
    cb = Transaction(1, (TxIn(NULL_OUTPOINT, b"\x6f\x00\x00"),), (TxOut(50 * COIN, pkh(MINER)),))
    c.chain.block("x", coinbase=cb)
    return "x"


# context-free transaction rules, inside a block


@invalid(ErrorCode.BAD_TXNS_VIN_EMPTY)
def transaction_without_inputs(c: Case) -> str:
    c.chain.block("x", txs=[Transaction(1, (), (TxOut(1, pkh(ALICE)),))])
    return "x"


@invalid(ErrorCode.BAD_TXNS_VOUT_EMPTY)
def transaction_without_outputs(c: Case) -> str:
    c.chain.block("x", txs=[sign(unsigned([c.mature(2)], []), [MINER], REGTEST)])
    return "x"


@invalid(ErrorCode.BAD_TXNS_VOUT_NEGATIVE)
def negative_output(c: Case) -> str:
    outputs = [TxOut(-1, pkh(ALICE)), TxOut(50 * COIN, pkh(ALICE))]
    c.chain.block("x", txs=[spend([c.mature(2)], outputs)])
    return "x"


@invalid(ErrorCode.BAD_TXNS_VOUT_TOOLARGE)
def output_over_max_money(c: Case) -> str:
    c.chain.block("x", txs=[spend([c.mature(2)], [TxOut(MAX_MONEY + 1, pkh(ALICE))])])
    return "x"


@invalid(ErrorCode.BAD_TXNS_TXOUTTOTAL_TOOLARGE)
def outputs_summing_over_max_money(c: Case) -> str:
    # CVE-2010-5139: each output in range, their sum not.
    outputs = [TxOut(MAX_MONEY, pkh(ALICE)), TxOut(1, pkh(ALICE))]
    c.chain.block("x", txs=[spend([c.mature(2)], outputs)])
    return "x"


@invalid(ErrorCode.BAD_TXNS_INPUTS_DUPLICATE)
def same_coin_twice_in_one_transaction(c: Case) -> str:
    # CVE-2018-17144: without this rule the coin would be counted twice as input value.
    coin = c.mature(2)
    c.chain.block("x", txs=[spend([coin, coin], [TxOut(100 * COIN, pkh(ALICE))])])
    return "x"


@invalid(ErrorCode.BAD_TXNS_PREVOUT_NULL)
def null_prevout_outside_the_coinbase(c: Case) -> str:
    tx = unsigned([c.mature(2)], [TxOut(COIN, pkh(ALICE))])
    tx = dataclasses.replace(tx, inputs=(*tx.inputs, TxIn(NULL_OUTPOINT)))
    c.chain.block("x", txs=[sign(tx, [MINER, MINER], REGTEST)])
    return "x"


@invalid(ErrorCode.BAD_TXNS_SIGNATURE)
def signature_of_63_bytes(c: Case) -> str:
    tx = spend([c.mature(2)])
    c.chain.block("x", txs=[with_input(tx, 0, signature=tx.inputs[0].signature[:63])])
    return "x"


@invalid(ErrorCode.BAD_TXNS_SIGNATURE)
def uncompressed_public_key(c: Case) -> str:
    tx = spend([c.mature(2)])
    c.chain.block("x", txs=[with_input(tx, 0, pubkey=b"\x04" + bytes(64))])
    return "x"


# block context


@invalid(ErrorCode.BAD_TXNS_NONFINAL)
def locktime_equal_to_height(c: Case) -> str:
    c.chain.block("x", txs=[spend([c.mature(2)], locktime=111)])
    return "x"


@invalid(ErrorCode.BAD_CB_HEIGHT)
def coinbase_commits_to_another_height(c: Case) -> str:
    c.chain.block("x", coinbase_height=112)
    return "x"


@invalid(ErrorCode.BAD_CB_HEIGHT)
def coinbase_copied_from_an_earlier_block(c: Case) -> str:
    # What BIP30 guarded against before BIP 34: a second coinbase with an earlier one's txid.
    c.chain.block("x", coinbase=c.chain["b110"].transactions[0])
    return "x"


# the UTXO set


@invalid(ErrorCode.BAD_TXNS_INPUTS_MISSINGORSPENT)
def input_never_created(c: Case) -> str:
    ghost = Spendable(OutPoint(b"\x42" * 32, 0), COIN, MINER)
    c.chain.block("x", txs=[spend([ghost])])
    return "x"


@invalid(ErrorCode.BAD_TXNS_INPUTS_MISSINGORSPENT)
def input_spent_in_an_earlier_block(c: Case) -> str:
    c.chain.block("x", txs=[spend([c.chain.coinbase_of("b1")])])
    return "x"


@invalid(ErrorCode.BAD_TXNS_INPUTS_MISSINGORSPENT)
def same_coin_in_two_transactions_of_the_block(c: Case) -> str:
    coin = c.mature(2)
    first = spend([coin], to=ALICE)
    second = spend([coin], to=BOB)
    c.chain.block("x", txs=[first, second])
    return "x"


@invalid(ErrorCode.BAD_TXNS_INPUTS_MISSINGORSPENT)
def spend_of_a_later_transaction_in_the_block(c: Case) -> str:
    # Order matters: a transaction may spend only outputs of transactions before it.
    parent = spend([c.mature(2)])
    child = spend(outputs_of(parent, MINER))
    c.chain.block("x", txs=[child, parent])
    return "x"


@invalid(ErrorCode.BAD_TXNS_PREMATURE_SPEND_OF_COINBASE)
def coinbase_spent_one_block_early(c: Case) -> str:
    c.chain.block("x", txs=[spend([c.mature(12)])])  # b12's coinbase matures at 112
    return "x"


@invalid(ErrorCode.BAD_TXNS_IN_BELOWOUT)
def outputs_above_inputs(c: Case) -> str:
    coin = c.mature(2)
    c.chain.block("x", txs=[spend([coin], [TxOut(coin.value + 1, pkh(ALICE))])])
    return "x"


@invalid(ErrorCode.BAD_TXNS_PUBKEY_MISMATCH)
def signed_by_a_key_that_does_not_own_the_coin(c: Case) -> str:
    coin = dataclasses.replace(c.mature(2), key=BOB)
    c.chain.block("x", txs=[spend([coin])])
    return "x"


@invalid(ErrorCode.BAD_TXNS_SIGNATURE)
def signature_with_a_flipped_bit(c: Case) -> str:
    tx = spend([c.mature(2)])
    sig = bytearray(tx.inputs[0].signature)
    sig[10] ^= 1
    c.chain.block("x", txs=[with_input(tx, 0, signature=bytes(sig))])
    return "x"


@invalid(ErrorCode.BAD_TXNS_SIGNATURE)
def signature_made_for_another_network(c: Case) -> str:
    c.chain.block("x", txs=[spend([c.mature(2)], params=DEMO)])
    return "x"


@invalid(ErrorCode.BAD_TXNS_SIGNATURE)
def signature_malleated_to_high_s(c: Case) -> str:
    # (r, n - s) verifies in textbook ECDSA; accepting it would let anyone change the txid.
    tx = spend([c.mature(2)])
    sig = tx.inputs[0].signature
    high_s = (CURVE_ORDER - int.from_bytes(sig[32:], "big")).to_bytes(32, "big")
    c.chain.block("x", txs=[with_input(tx, 0, signature=sig[:32] + high_s)])
    return "x"


@invalid(ErrorCode.BAD_TXNS_SIGNATURE)
def second_input_unsigned_by_its_owner(c: Case) -> str:
    # Input 1 carries input 0's signature: valid bytes, wrong digest.
    tx = spend([c.mature(2), c.mature(3)])
    c.chain.block("x", txs=[with_input(tx, 1, signature=tx.inputs[0].signature)])
    return "x"


@invalid(ErrorCode.BAD_TXNS_SIGNATURE)
def output_changed_after_signing(c: Case) -> str:
    tx = spend([c.mature(2)], [TxOut(COIN, pkh(ALICE))])
    c.chain.block("x", txs=[dataclasses.replace(tx, outputs=(TxOut(COIN, pkh(BOB)),))])
    return "x"


@invalid(ErrorCode.BAD_CB_AMOUNT)
def coinbase_claims_one_unit_more_than_subsidy(c: Case) -> str:
    c.chain.block("x", coinbase_value=REGTEST.subsidy(111) + 1)
    return "x"


@invalid(ErrorCode.BAD_CB_AMOUNT)
def coinbase_claims_one_unit_more_than_subsidy_and_fees(c: Case) -> str:
    txs = [spend([c.mature(2)], fee=1000), spend([c.split[0]], fee=234)]
    c.chain.block("x", txs=txs, coinbase_value=REGTEST.subsidy(111) + 1234 + 1)
    return "x"


@invalid(ErrorCode.BAD_CB_AMOUNT)
def coinbase_claims_subsidy_of_the_wrong_era(c: Case) -> str:
    # Build up to the first halving (height 150) and claim the old subsidy there.
    c.chain.extend(39, parent="b110")
    c.chain.block("x", coinbase_value=REGTEST.subsidy(149))
    assert c.chain.height("x") == 150
    return "x"


@pytest.mark.parametrize(("build", "code"), INVALID)
def test_invalid_block(base: Base, build: Callable[[Case], str], code: ErrorCode) -> None:
    with pytest.raises(RuleError) as caught:
        run(base, build)
    assert caught.value.code is code, caught.value


# -- valid blocks, at the boundaries of the rules above

VALID: list[object] = []


def valid(build: Callable[[Case], str]) -> Callable[[Case], str]:
    VALID.append(pytest.param(build, id=build.__name__))
    return build


@valid
def coinbase_only(c: Case) -> str:
    c.chain.block("x")
    return "x"


@valid
def spends_within_one_block(c: Case) -> str:
    parent = spend([c.mature(2)], [TxOut(25 * COIN, pkh(ALICE))] * 2)
    child = spend(outputs_of(parent, ALICE), fee=500)
    grandchild = spend(outputs_of(child, ALICE), to=BOB, fee=500)
    c.chain.block("x", txs=[parent, child, grandchild])
    return "x"


@valid
def chain_of_spends_across_blocks(c: Case) -> str:
    tx = spend([c.mature(2)], to=ALICE, fee=100)
    c.chain.block("y", txs=[tx])
    for n in range(3):
        tx = spend(outputs_of(tx, ALICE), fee=100)
        c.chain.block("x" if n == 2 else f"y{n}", txs=[tx])
    return "x"


@valid
def coinbase_claims_subsidy_and_fees_exactly(c: Case) -> str:
    txs = [spend([c.mature(2)], fee=1000), spend([c.split[0]], fee=234)]
    c.chain.block("x", txs=txs, coinbase_value=REGTEST.subsidy(111) + 1234)
    return "x"


@valid
def coinbase_claims_less_than_allowed(c: Case) -> str:
    c.chain.block("x", coinbase_value=0)
    return "x"


@valid
def coinbase_spent_exactly_at_maturity(c: Case) -> str:
    c.chain.block("x", txs=[spend([c.mature(11)])])  # height 11 + 100 = 111
    return "x"


@valid
def locktime_one_below_height(c: Case) -> str:
    c.chain.block("x", txs=[spend([c.mature(2)], locktime=110)])
    return "x"


@valid
def time_one_second_after_median_time_past(c: Case) -> str:
    c.chain.block("x", time=c.chain.median_time_past("b110") + 1)
    return "x"


@valid
def time_exactly_two_hours_ahead(c: Case) -> str:
    c.now = c.arrival_time()
    c.chain.block("x", time=c.now + MAX_FUTURE_BLOCK_TIME)
    return "x"


@valid
def coinbase_data_of_100_bytes(c: Case) -> str:
    cb = make_coinbase(111, (TxOut(50 * COIN, pkh(MINER)),), message=bytes(96))
    c.chain.block("x", coinbase=cb)
    return "x"


@valid
def outputs_of_zero_and_max_money_sum(c: Case) -> str:
    coins = [c.mature(h) for h in range(2, 12)]
    outputs = [TxOut(0, pkh(ALICE)), TxOut(sum(k.value for k in coins), pkh(BOB))]
    c.chain.block("x", txs=[spend(coins, outputs)])
    return "x"


@valid
def many_inputs_and_outputs(c: Case) -> str:
    coins = [*c.split, *(c.mature(h) for h in range(2, 12))]
    total = sum(k.value for k in coins)
    c.chain.block("x", txs=[spend(coins, [TxOut(total // 50, pkh(ALICE))] * 50)])
    return "x"


@pytest.mark.parametrize("build", VALID)
def test_valid_block(base: Base, build: Callable[[Case], str]) -> None:
    case, view, name = run(base, build)
    block = case.chain[name]
    height = case.chain.height(name)
    spent = {txin.prevout for tx in block.transactions for txin in tx.inputs}
    for tx in block.transactions:
        for n, txout in enumerate(tx.outputs):
            outpoint = OutPoint(tx.txid, n)
            expected = Coin(txout.value, txout.pubkey_hash, height, tx.is_coinbase())
            assert view.get_coin(outpoint) == (None if outpoint in spent else expected)
    for outpoint in spent:
        assert view.get_coin(outpoint) is None


@valid
def two_independent_spends(c: Case) -> str:
    c.chain.block("x", txs=[spend([c.mature(2)]), spend([c.mature(3)])])
    return "x"


def test_mutated_copy_has_the_hash_of_a_valid_block(base: Base) -> None:
    case, _, _ = run(base, two_independent_spends)
    original = case.chain["x"]
    mutated = Block(original.header, (*original.transactions, original.transactions[-1]))
    assert mutated.hash == original.hash
    with pytest.raises(RuleError) as caught:
        check_block(mutated, REGTEST)
    assert caught.value.code is ErrorCode.BAD_TXNS_DUPLICATE
    assert not caught.value.code.marks_invalid


# -- rules below the block level


def test_transaction_over_a_megabyte() -> None:
    tx = unsigned(
        [Spendable(OutPoint(b"\x01" * 32, 0), COIN, MINER)], [TxOut(1, pkh(ALICE))] * 45_000
    )
    assert tx.size > MAX_TX_SIZE
    with pytest.raises(RuleError) as caught:
        check_transaction(tx)
    assert caught.value.code is ErrorCode.BAD_TXNS_OVERSIZE


def _view_with(*coins: tuple[OutPoint, Coin]) -> CoinsCache:
    view = CoinsCache()
    for outpoint, coin in coins:
        view.add_coin(outpoint, coin)
    return view


def _coin_for(owner: PrivateKey, value: int, label: int) -> tuple[OutPoint, Coin, Spendable]:
    outpoint = OutPoint(bytes([label]) * 32, 0)
    return outpoint, Coin(value, pkh(owner), 1, False), Spendable(outpoint, value, owner)


@pytest.mark.parametrize(
    ("values", "detail"),
    [
        ([MAX_MONEY + 1], "input 0 value"),
        ([MAX_MONEY, 1], "inputs 0..1 sum"),
        ([MAX_MONEY // 2 + 1, MAX_MONEY // 2 + 1], "inputs 0..1 sum"),
    ],
)
def test_input_values_out_of_range(values: list[int], detail: str) -> None:
    # Coins out of range cannot exist in a UTXO set built by these rules, so the view is
    # made by hand: this is the last line of defence against CVE-2010-5139.
    made = [_coin_for(ALICE, v, n) for n, v in enumerate(values)]
    view = _view_with(*((op, coin) for op, coin, _ in made))
    tx = spend([s for _, _, s in made], [TxOut(1, pkh(BOB))])
    with pytest.raises(RuleError, match=detail) as caught:
        check_tx_inputs(tx, view, 200, REGTEST)
    assert caught.value.code is ErrorCode.BAD_TXNS_INPUTVALUES_OUTOFRANGE


def test_fees_of_a_block_summing_over_max_money() -> None:
    made = [_coin_for(ALICE, MAX_MONEY, n) for n in (1, 2)]
    view = _view_with(*((op, coin) for op, coin, _ in made))
    txs = [spend([s], [TxOut(0, pkh(BOB))]) for _, _, s in made]
    coinbase = make_coinbase(5, (TxOut(1, pkh(MINER)),))
    block = make_block(bytes(32), [coinbase, *txs], time=0, bits=0x207FFFFF)
    with pytest.raises(RuleError) as caught:
        connect_block(block, 5, view, REGTEST)
    assert caught.value.code is ErrorCode.BAD_TXNS_ACCUMULATED_FEE_OUTOFRANGE


def test_bip30_refuses_to_overwrite_an_unspent_output(base: Base) -> None:
    # With coinbases committing to their height, only a block that skipped that check could
    # repeat a txid (coinbase_copied_from_an_earlier_block); connect_block refuses it anyway.
    chain = base.chain.copy()
    chain.block("x", coinbase=chain["b110"].transactions[0])
    view = CoinsCache(base.view)
    with pytest.raises(RuleError) as caught:
        connect_block(chain["x"], 111, view, REGTEST)
    assert caught.value.code is ErrorCode.BAD_TXNS_BIP30


def test_bip30_allows_recreating_a_spent_output() -> None:
    # Bitcoin's rule is about *unspent* outputs: a txid whose outputs are all spent may recur.
    cb = make_coinbase(1, (TxOut(50 * COIN, pkh(MINER)),))
    block = make_block(bytes(32), [cb], time=0, bits=0x207FFFFF)
    view = CoinsCache()
    connect_block(block, 1, view, REGTEST)
    view.spend_coin(OutPoint(cb.txid, 0))
    connect_block(block, 1, view, REGTEST)
    assert view.get_coin(OutPoint(cb.txid, 0)) is not None


def test_public_key_off_the_curve_fails_as_a_bad_signature() -> None:
    # It hashes to the coin's owner (the coin was made for it), but it is no key.
    bogus = b"\x02" + b"\xff" * 32
    outpoint = OutPoint(b"\x07" * 32, 0)
    view = _view_with((outpoint, Coin(COIN, hash160_of(bogus), 1, False)))
    tx = Transaction(1, (TxIn(outpoint, bytes(64), bogus),), (TxOut(1, pkh(BOB)),))
    with pytest.raises(RuleError) as caught:
        check_tx_inputs(tx, view, 2, REGTEST)
    assert caught.value.code is ErrorCode.BAD_TXNS_SIGNATURE


def hash160_of(data: bytes) -> bytes:
    from node.core.address import hash160

    return hash160(data)


def test_check_tx_inputs_returns_the_fee() -> None:
    made = [_coin_for(ALICE, 7 * COIN, n) for n in (1, 2)]
    view = _view_with(*((op, coin) for op, coin, _ in made))
    tx = spend([s for _, _, s in made], [TxOut(13 * COIN, pkh(BOB))])
    assert check_tx_inputs(tx, view, 2, REGTEST) == COIN
    # The view was only read.
    assert all(view.get_coin(op) is not None for op, _, _ in made)


def test_a_coinbase_has_no_inputs_to_check() -> None:
    cb = make_coinbase(3, (TxOut(COIN, pkh(MINER)),))
    with pytest.raises(RuleError) as caught:
        check_tx_inputs(cb, CoinsCache(), 3, REGTEST)
    assert caught.value.code is ErrorCode.BAD_TXNS_INPUTS_MISSINGORSPENT


# -- the signature cache


def _signed_spend() -> tuple[Transaction, CoinsCache]:
    outpoint, coin, spendable = _coin_for(ALICE, 5 * COIN, 9)
    return spend([spendable], fee=COIN), _view_with((outpoint, coin))


def test_valid_signatures_are_remembered() -> None:
    tx, view = _signed_spend()
    cache = SignatureCache(10)
    check_tx_inputs(tx, view, 2, REGTEST, sig_cache=cache)
    txin = tx.inputs[0]
    assert cache.contains(
        signature_cache_key(tx.sighash(0, REGTEST.genesis_hash), txin.pubkey, txin.signature)
    )
    assert len(cache) == 1


def test_a_cache_hit_skips_the_signature_check() -> None:
    # Shown by the one thing a skipped check can do: pass a signature that would fail. The
    # cache is trusted; only valid signatures are ever put in it.
    tx, view = _signed_spend()
    forged = with_input(tx, 0, signature=b"\x01" * 64)
    cache = SignatureCache(10)
    digest = forged.sighash(0, REGTEST.genesis_hash)
    cache.add(signature_cache_key(digest, forged.inputs[0].pubkey, forged.inputs[0].signature))
    check_tx_inputs(forged, view, 2, REGTEST, sig_cache=cache)
    with pytest.raises(RuleError):
        check_tx_inputs(forged, view, 2, REGTEST, sig_cache=SignatureCache(10))


def test_invalid_signatures_are_not_remembered() -> None:
    tx, view = _signed_spend()
    forged = with_input(tx, 0, signature=b"\x01" * 64)
    cache = SignatureCache(10)
    with pytest.raises(RuleError):
        check_tx_inputs(forged, view, 2, REGTEST, sig_cache=cache)
    assert len(cache) == 0


def test_the_cache_is_bounded_and_drops_the_oldest() -> None:
    cache = SignatureCache(3)
    for n in range(5):
        cache.add(bytes([n]) * 32)
    assert len(cache) == 3
    assert not cache.contains(bytes([0]) * 32)
    assert not cache.contains(bytes([1]) * 32)
    assert all(cache.contains(bytes([n]) * 32) for n in (2, 3, 4))
    cache.add(bytes([4]) * 32)  # present already: nothing moves
    assert len(cache) == 3
    with pytest.raises(ValueError, match="at least one"):
        SignatureCache(0)


# -- error codes


def test_every_error_code_has_a_distinct_value_and_a_kind() -> None:
    values = [code.value for code in ErrorCode]
    assert len(values) == len(set(values))
    for code in ErrorCode:
        assert isinstance(code.kind, RuleKind)
        assert isinstance(code.marks_invalid, bool)
        assert RuleError(code, "why").reason == code.value


# Codes the chain layer raises, not the rules: a missing or invalid parent, a repeat.
CHAIN_CODES = {
    ErrorCode.PREV_BLK_NOT_FOUND,
    ErrorCode.BAD_PREVBLK,
    ErrorCode.DUPLICATE,
    ErrorCode.INVALID_BLOCK,
    ErrorCode.BAD_VERSION,
}
# Refused without marking the block invalid: the fault may not be the block's own.
NOT_MARKING = {
    ErrorCode.TIME_TOO_NEW,
    ErrorCode.BAD_TXNMRKLROOT,
    ErrorCode.BAD_TXNS_DUPLICATE,
    ErrorCode.BAD_BLK_LENGTH,
}
BELOW_BLOCK_LEVEL = {
    ErrorCode.BAD_TXNS_OVERSIZE,
    ErrorCode.BAD_TXNS_INPUTVALUES_OUTOFRANGE,
    ErrorCode.BAD_TXNS_ACCUMULATED_FEE_OUTOFRANGE,
    ErrorCode.BAD_TXNS_BIP30,
}


def test_every_consensus_rule_has_a_case_in_the_catalogue() -> None:
    catalogued = {param.values[1] for param in INVALID}  # type: ignore[attr-defined]
    consensus = {code for code in ErrorCode if code.kind is RuleKind.CONSENSUS}
    assert consensus - CHAIN_CODES == catalogued | BELOW_BLOCK_LEVEL


def test_codes_of_the_rules_mark_blocks_invalid_except_where_the_fault_may_not_be_theirs() -> None:
    used = {param.values[1] for param in INVALID} | BELOW_BLOCK_LEVEL  # type: ignore[attr-defined]
    for code in used:
        assert code.kind is RuleKind.CONSENSUS
        assert code.marks_invalid is (code not in NOT_MARKING), code
