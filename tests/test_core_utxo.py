"""Specification of the UTXO overlay and of connecting and disconnecting blocks.

* ``CoinsCache`` is an overlay: reads fall through to the base, writes never reach it, and
  ``changes()`` is the net effect, so applying it to the base gives exactly what the overlay
  shows. A random sequence of adds and spends checks that against a plain dict.
* ``disconnect_block`` is the exact inverse of ``connect_block``: after connecting a branch of
  random spends and disconnecting it again, nothing has changed; connecting it again gives the
  same undo data. Undo data that does not fit the block is our own corruption: InternalError.
"""

from __future__ import annotations

import random

import pytest
from blocktools import ChainBuilder, Spendable, key, make_block, outputs_of, pkh, spend
from hypothesis import given, settings
from hypothesis import strategies as st

from node.core.errors import ErrorCode, InternalError, RuleError
from node.core.params import REGTEST
from node.core.tx import COIN, OutPoint, TxOut, make_coinbase
from node.core.utxo import BlockUndo, Coin, CoinsCache, UtxoChanges
from node.core.validation import connect_block, disconnect_block

MINER = key("miner")
ALICE = key("alice")


def op(n: int) -> OutPoint:
    return OutPoint(n.to_bytes(32, "little"), n % 3)


def coin(value: int, height: int = 1) -> Coin:
    return Coin(value, pkh(ALICE), height, False)


class DictView:
    """A real UtxoView over a dict, counting lookups."""

    def __init__(self, coins: dict[OutPoint, Coin]) -> None:
        self.coins = coins
        self.lookups = 0

    def get_coin(self, outpoint: OutPoint) -> Coin | None:
        self.lookups += 1
        return self.coins.get(outpoint)


def apply(changes: UtxoChanges, coins: dict[OutPoint, Coin]) -> dict[OutPoint, Coin]:
    result = dict(coins)
    for outpoint in changes.spent:
        del result[outpoint]
    for outpoint, added in changes.added:
        assert outpoint not in result
        result[outpoint] = added
    return result


# -- the overlay


def test_empty_cache_has_no_coins() -> None:
    cache = CoinsCache()
    assert cache.get_coin(op(1)) is None
    assert cache.changes().is_empty()


def test_add_get_spend() -> None:
    cache = CoinsCache()
    cache.add_coin(op(1), coin(5))
    assert cache.get_coin(op(1)) == coin(5)
    assert cache.spend_coin(op(1)) == coin(5)
    assert cache.get_coin(op(1)) is None


def test_spending_a_missing_or_spent_coin_is_a_rule_error() -> None:
    cache = CoinsCache()
    with pytest.raises(RuleError) as caught:
        cache.spend_coin(op(1))
    assert caught.value.code is ErrorCode.BAD_TXNS_INPUTS_MISSINGORSPENT
    cache.add_coin(op(1), coin(5))
    cache.spend_coin(op(1))
    with pytest.raises(RuleError) as caught:
        cache.spend_coin(op(1))
    assert caught.value.code is ErrorCode.BAD_TXNS_INPUTS_MISSINGORSPENT


def test_overwriting_an_unspent_coin_is_our_bug() -> None:
    base = DictView({op(1): coin(5)})
    cache = CoinsCache(base)
    with pytest.raises(InternalError):
        cache.add_coin(op(1), coin(6))
    cache.add_coin(op(2), coin(7))
    with pytest.raises(InternalError):
        cache.add_coin(op(2), coin(7))


def test_writes_never_reach_the_base() -> None:
    coins = {op(1): coin(5), op(2): coin(6)}
    base = DictView(dict(coins))
    cache = CoinsCache(base)
    cache.spend_coin(op(1))
    cache.add_coin(op(3), coin(7))
    assert base.coins == coins
    assert cache.get_coin(op(1)) is None
    assert cache.get_coin(op(2)) == coin(6)
    assert cache.get_coin(op(3)) == coin(7)


def test_the_base_is_asked_once_per_outpoint() -> None:
    base = DictView({op(1): coin(5)})
    cache = CoinsCache(base)
    for _ in range(3):
        cache.get_coin(op(1))
        cache.get_coin(op(9))
    cache.spend_coin(op(1))
    cache.add_coin(op(9), coin(1))
    cache.changes()
    assert base.lookups == 2


@pytest.mark.parametrize(
    ("name", "steps", "added", "spent"),
    [
        ("add a new coin", [("add", 2, 7)], [(2, 7)], []),
        ("spend a base coin", [("spend", 1, 0)], [], [1]),
        ("add then spend: no trace", [("add", 2, 7), ("spend", 2, 0)], [], []),
        ("spend then re-add the same coin: no change", [("spend", 1, 0), ("add", 1, 5)], [], []),
        (
            "spend then re-add another coin: replaced",
            [("spend", 1, 0), ("add", 1, 8)],
            [(1, 8)],
            [1],
        ),
        ("reads only: nothing", [("get", 1, 0), ("get", 3, 0)], [], []),
    ],
)
def test_changes_are_the_net_effect(
    name: str,
    steps: list[tuple[str, int, int]],
    added: list[tuple[int, int]],
    spent: list[int],
) -> None:
    base = {op(1): coin(5)}
    cache = CoinsCache(DictView(dict(base)))
    for action, n, value in steps:
        if action == "add":
            cache.add_coin(op(n), coin(value))
        elif action == "spend":
            cache.spend_coin(op(n))
        else:
            cache.get_coin(op(n))
    expected_added = tuple((op(n), coin(v)) for n, v in added)
    assert cache.changes() == UtxoChanges(expected_added, tuple(op(n) for n in spent))


@settings(max_examples=200)
@given(
    st.dictionaries(st.integers(0, 15), st.integers(0, 100), max_size=8),
    st.lists(st.tuples(st.booleans(), st.integers(0, 15), st.integers(0, 100)), max_size=40),
)
def test_overlay_matches_a_dict_and_its_changes_rebuild_it(
    initial: dict[int, int], actions: list[tuple[bool, int, int]]
) -> None:
    base = {op(n): coin(v) for n, v in initial.items()}
    model = dict(base)
    cache = CoinsCache(DictView(dict(base)))
    for is_add, n, value in actions:
        if is_add and op(n) not in model:
            cache.add_coin(op(n), coin(value))
            model[op(n)] = coin(value)
        elif not is_add and op(n) in model:
            assert cache.spend_coin(op(n)) == model.pop(op(n))
    for n in range(16):
        assert cache.get_coin(op(n)) == model.get(op(n))
    assert apply(cache.changes(), base) == model


def test_overlays_stack() -> None:
    lower = CoinsCache(DictView({op(1): coin(5)}))
    lower.add_coin(op(2), coin(6))
    upper = CoinsCache(lower)
    upper.spend_coin(op(2))
    upper.add_coin(op(3), coin(7))
    assert upper.changes() == UtxoChanges(((op(3), coin(7)),), (op(2),))
    assert lower.get_coin(op(2)) == coin(6)


# -- connecting and disconnecting blocks


def _random_branch(seed: int, blocks: int) -> ChainBuilder:
    """b1..b100 of coinbases, then ``blocks`` blocks of random spends, some inside a block."""
    rng = random.Random(seed)
    chain = ChainBuilder(REGTEST, miner=MINER)
    chain.extend(100)
    wallet: list[Spendable] = []
    for height in range(101, 101 + blocks):
        wallet.append(chain.coinbase_of(f"b{height - 100}"))
        txs = []
        for _ in range(rng.randint(0, 3)):
            if not wallet:
                break
            rng.shuffle(wallet)
            inputs = [wallet.pop() for _ in range(min(len(wallet), rng.randint(1, 3)))]
            total = sum(c.value for c in inputs) - rng.randint(0, 1000)
            parts = rng.randint(1, 3)
            tx = spend(inputs, [TxOut(total // parts, pkh(MINER))] * parts)
            txs.append(tx)
            # New coins may be spent by a later transaction of the same block.
            wallet.extend(outputs_of(tx, MINER))
        chain.block(f"b{height}", txs=txs)
    return chain


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2**32), st.integers(1, 8))
def test_disconnect_is_the_exact_inverse_of_connect(seed: int, blocks: int) -> None:
    chain = _random_branch(seed, blocks)
    view = chain.connect_branch("b100")
    before = view.changes()
    top = chain.branch(chain.tip)[100:]
    undos = []
    for name in top:
        undos.append(chain.full_check(name, view))
    after = view.changes()
    for name, undo in zip(reversed(top), reversed(undos), strict=True):
        disconnect_block(chain[name], BlockUndo.deserialize(undo.serialize()), view)
    assert view.changes() == before
    for name, undo in zip(top, undos, strict=True):
        assert connect_block(chain[name], chain.height(name), view, REGTEST) == undo
    assert view.changes() == after


def test_disconnect_restores_a_coin_created_and_spent_in_the_same_block() -> None:
    chain = ChainBuilder(REGTEST, miner=MINER)
    chain.extend(100)
    first = spend([chain.coinbase_of("b1")], to=ALICE)
    second = spend(outputs_of(first, ALICE), fee=COIN)
    chain.block("b101", txs=[first, second])
    view = chain.connect_branch("b100")
    base = CoinsCache(view)
    undo = chain.full_check("b101", base)
    assert [outpoint for outpoint, _ in undo.spent] == [
        OutPoint(chain["b1"].transactions[0].txid, 0),
        OutPoint(first.txid, 0),
    ]
    assert undo.spent[1][1] == Coin(first.outputs[0].value, pkh(ALICE), 101, False)
    disconnect_block(chain["b101"], undo, base)
    assert base.changes().is_empty()


def _connected_block() -> tuple[ChainBuilder, CoinsCache, BlockUndo]:
    chain = ChainBuilder(REGTEST, miner=MINER)
    chain.extend(101)
    tx = spend([chain.coinbase_of("b1"), chain.coinbase_of("b2")], fee=COIN)
    chain.block("b102", txs=[tx])
    view = chain.connect_branch("b101")
    undo = chain.full_check("b102", view)
    return chain, view, undo


@pytest.mark.parametrize(
    ("name", "corrupt"),
    [
        ("a coin missing", lambda u: BlockUndo(u.spent[:1])),
        ("a coin too many", lambda u: BlockUndo((*u.spent, u.spent[0]))),
        ("coins in the wrong order", lambda u: BlockUndo(u.spent[::-1])),
        ("another block's undo", lambda u: BlockUndo(())),
    ],
)
def test_undo_data_that_does_not_fit_is_an_internal_error(name: str, corrupt: object) -> None:
    chain, view, undo = _connected_block()
    with pytest.raises(InternalError):
        disconnect_block(chain["b102"], corrupt(undo), view)  # type: ignore[operator]


def test_disconnecting_a_block_that_is_not_connected_is_an_internal_error() -> None:
    chain, view, undo = _connected_block()
    disconnect_block(chain["b102"], undo, view)
    with pytest.raises(InternalError):
        disconnect_block(chain["b102"], undo, view)


def test_disconnect_checks_the_outputs_are_the_blocks_own() -> None:
    cb = make_coinbase(1, (TxOut(50 * COIN, pkh(MINER)),))
    block = make_block(bytes(32), [cb], time=0, bits=0x207FFFFF)
    view = CoinsCache()
    view.add_coin(OutPoint(cb.txid, 0), Coin(49 * COIN, pkh(MINER), 1, True))
    with pytest.raises(InternalError, match="as the block created it"):
        disconnect_block(block, BlockUndo(()), view)
