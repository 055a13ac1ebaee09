"""Property: whatever the fork tree and whatever the order blocks arrive in, the chain ends on
the most work among valid blocks, and its UTXO set is a replay of that chain.

Hypothesis draws a tree of up to 14 blocks over a shared 110-block chain: each block has a random
parent, may spend one of five mature coins (so branches double-spend each other, and a block
spending a coin its own branch already spent is invalid), and may overpay its coinbase (invalid).
The blocks arrive in a random order (children before parents become orphans), some headers
first. A model computes which blocks are valid on their own branch; after every arrival:

* the tip's work is the most of any valid block whose whole branch has arrived;
* no block on the active chain is invalid in the model;
* the stored UTXO set equals a from-scratch replay (``verify()``).

At the end every valid block has been accepted, and every invalid one was refused or never
looked better than the tip (a side branch is only validated in full when it would win).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from blocktools import ChainBuilder
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.chainstate import BlockOutcome, ChainState
from node.core.errors import RuleError
from node.core.params import REGTEST

NOW = REGTEST.genesis_time + 10**7
BASE = ChainBuilder()
BASE.extend(110)
COINS = [BASE.coinbase_of(f"b{h}") for h in range(1, 6)]


@dataclass(frozen=True)
class Plan:
    parents: tuple[int, ...]
    """Parent of block i: -1 for b110, else an earlier block's index."""
    spends: tuple[int | None, ...]
    """Which of COINS block i spends, if any."""
    overpays: tuple[bool, ...]
    order: tuple[int, ...]
    headers_first: tuple[bool, ...]


@st.composite
def plans(draw: st.DrawFn) -> Plan:
    size = draw(st.integers(1, 14))
    parents = tuple(draw(st.integers(-1, i - 1)) for i in range(size))
    spends = tuple(draw(st.none() | st.integers(0, len(COINS) - 1)) for _ in range(size))
    overpays = tuple(draw(st.integers(0, 9)) == 0 for _ in range(size))
    order = tuple(draw(st.permutations(range(size))))
    headers_first = tuple(draw(st.booleans()) for _ in range(size))
    return Plan(parents, spends, overpays, order, headers_first)


def build(plan: Plan) -> tuple[ChainBuilder, list[str], list[bool]]:
    """The blocks of ``plan`` and, per block, whether it is valid on its own branch."""
    b = BASE.copy()
    names = [f"n{i}" for i in range(len(plan.parents))]
    valid: list[bool] = []
    spent: list[frozenset[int]] = []
    for i, parent in enumerate(plan.parents):
        parent_name = "b110" if parent < 0 else names[parent]
        coin = plan.spends[i]
        txs = [] if coin is None else [b.spend([COINS[coin]], fee=1_000 + i)]
        height = b.height(parent_name) + 1
        value = REGTEST.subsidy(height) + (1_000 + i if txs else 0) + (1 if plan.overpays[i] else 0)
        b.block(names[i], parent=parent_name, txs=txs, coinbase_value=value)
        before = frozenset() if parent < 0 else spent[parent]
        parent_ok = parent < 0 or valid[parent]
        ok = parent_ok and not plan.overpays[i] and (coin is None or coin not in before)
        valid.append(ok)
        spent.append(before | ({coin} if coin is not None else set()))
    return b, names, valid


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plans())
def test_any_tree_in_any_order_ends_on_the_most_work(plan: Plan) -> None:
    b, names, valid = build(plan)
    chain = ChainState.in_memory(REGTEST)
    for name in BASE.branch("b110"):
        assert chain.process_block(b[name], NOW).accepted
    for i in plan.order:
        if plan.headers_first[i]:
            # Refused when its parent's header is not known yet, or is invalid: both fine.
            with contextlib.suppress(RuleError):
                chain.process_header(b[names[i]].header, NOW)
    arrived: set[int] = set()
    for i in plan.order:
        result = chain.process_block(b[names[i]], NOW)
        arrived.add(i)
        assert result.outcome is not BlockOutcome.DUPLICATE

        def complete(j: int) -> bool:
            while j >= 0:
                if j not in arrived:
                    return False
                j = plan.parents[j]
            return True

        best_height = max(
            [110] + [b.height(names[j]) for j in range(len(names)) if valid[j] and complete(j)]
        )
        assert chain.height == best_height
        active = {e.hash for e in chain.active}
        for j, name in enumerate(names):
            if b[name].hash in active:
                assert valid[j], f"{name} is invalid but active"
        report = chain.verify()
        assert report.ok, report.summary()
    tip = chain.tip
    assert tip.seq is not None
    for i, name in enumerate(names):
        entry = chain.get_entry(b[name].hash)
        if valid[i]:
            assert entry is not None and entry.has_data and not entry.failed, name
        elif entry is not None and entry.linked and not entry.failed:
            # Never tried, which is right only if it never looked better than the tip.
            assert entry.seq is not None
            assert (entry.chain_work, -entry.seq) < (tip.chain_work, -tip.seq), name
        elif entry is None and b[name].hash in chain.orphans:
            # Held because its parent was refused (it descends from an invalid block).
            assert not valid[plan.parents[i]], name
