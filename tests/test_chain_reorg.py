"""Reorganisation catalogue: named fork trees fed to a ChainState, btcd fullblocktests style.

Every case starts from the same 101-block chain (``b1`` .. ``b101``; the coinbases of b1 and b2
are mature from height 101 on), grows named branches with blocktools' ChainBuilder, and feeds
them block by block. After each step it asserts the tip, the events emitted (disconnections
``-name``, connections ``+name``, then ``tip old->new depth``), and that the stored UTXO set
equals a from-scratch replay of the winning branch (every rule run again on every block).

Mempool effects belong to the mempool's tests; the node wires the events to it.
"""

from __future__ import annotations

import pytest
from blocktools import ChainBuilder, key, pkh

from node.chainstate import (
    BlockConnected,
    BlockDisconnected,
    BlockOutcome,
    BlockResult,
    ChainEvent,
    ChainState,
    TipChanged,
)
from node.core.chain import TipStatus
from node.core.errors import ErrorCode
from node.core.params import REGTEST
from node.core.tx import OutPoint
from node.core.utxo import Coin

NOW = REGTEST.genesis_time + 10**7
"""A clock far past every block built here: no block is too new."""

BASE = ChainBuilder()
BASE.extend(101)


class Feeder:
    """A ChainState and the builder whose named blocks are fed to it."""

    def __init__(self, builder: ChainBuilder | None = None) -> None:
        self.builder = builder if builder is not None else BASE.copy()
        self.chain = ChainState.in_memory(REGTEST)
        for name in BASE.branch("b101"):
            self.accept(name)

    def feed(self, name: str) -> BlockResult:
        return self.chain.process_block(self.builder[name], NOW)

    def accept(self, name: str) -> list[str]:
        result = self.feed(name)
        assert result.outcome is BlockOutcome.ACCEPTED, (name, result.reject)
        return self.describe(result.events)

    def reject(self, name: str, code: ErrorCode) -> list[str]:
        result = self.feed(name)
        assert result.outcome is BlockOutcome.REJECTED, (name, result.outcome)
        assert result.reject is not None and result.reject.code is code, result.reject
        return self.describe(result.events)

    def describe(self, events: tuple[ChainEvent, ...]) -> list[str]:
        names = self.builder.names
        out = []
        for event in events:
            if isinstance(event, BlockDisconnected):
                out.append(f"-{names[event.block.hash]}")
                assert event.height == self.builder.height(names[event.block.hash])
            elif isinstance(event, BlockConnected):
                out.append(f"+{names[event.block.hash]}")
                assert event.height == self.builder.height(names[event.block.hash])
            else:
                assert isinstance(event, TipChanged)
                old, new = names[event.old_tip.hash], names[event.new_tip.hash]
                out.append(f"tip {old}->{new} {event.reorg_depth}")
        return out

    @property
    def tip(self) -> str:
        return self.builder.names[self.chain.tip.hash]

    def utxo(self) -> dict[OutPoint, Coin]:
        return dict(self.chain.store.iter_coins())

    def assert_utxo_is_replay(self) -> None:
        """The stored UTXO set equals connecting the tip's branch from genesis, all rules on."""
        replayed = self.builder.connect_branch(self.tip)
        assert self.utxo() == dict(replayed.changes().added)
        assert self.chain.verify().ok


def names(prefix: str, first: int, last: int) -> list[str]:
    return [f"{prefix}{n}" for n in range(first, last + 1)]


def grow(builder: ChainBuilder, prefix: str, parent: str, count: int) -> None:
    """Build ``count`` coinbase-only blocks ``prefix1``.. on ``parent``."""
    for n in range(1, count + 1):
        builder.block(f"{prefix}{n}", parent=parent if n == 1 else f"{prefix}{n - 1}")


@pytest.mark.parametrize("depth", [1, 2, 40])
def test_deep_reorg(depth: int) -> None:
    """
    b101 ── m1 ── m2 ── … ── m{depth}                    active first, spends in m1
        └── r1 ── r2 ── … ── r{depth} ── r{depth+1}      equal work ties (first seen wins);
                                                        one more block wins: reorg of {depth}
    """
    b2 = BASE.copy()
    pay = b2.spend([b2.coinbase_of("b1")], fee=1_000, to=key("alice"))
    b2.block("m1", parent="b101", txs=[pay])
    for n in range(2, depth + 1):
        b2.block(f"m{n}", parent=f"m{n - 1}")
    other = b2.spend([b2.coinbase_of("b2")], fee=2_000, to=key("bob"))
    b2.block("r1", parent="b101", txs=[other])
    for n in range(2, depth + 2):
        b2.block(f"r{n}", parent=f"r{n - 1}")
    feeder = Feeder(b2)
    for n in range(1, depth + 1):
        feeder.accept(f"m{n}")
    assert feeder.tip == f"m{depth}"
    for n in range(1, depth + 1):
        assert feeder.accept(f"r{n}") == [], "equal or less work: no switch"
    assert feeder.tip == f"m{depth}"
    events = feeder.accept(f"r{depth + 1}")
    assert events == [
        *(f"-m{n}" for n in range(depth, 0, -1)),
        *(f"+r{n}" for n in range(1, depth + 2)),
        f"tip m{depth}->r{depth + 1} {depth}",
    ]
    feeder.assert_utxo_is_replay()
    utxo = feeder.utxo()
    assert OutPoint(pay.txid, 0) not in utxo, "the losing branch's payment is gone"
    assert utxo[OutPoint(other.txid, 0)].pubkey_hash == pkh(key("bob"))
    assert OutPoint(b2.coinbase_of("b1").outpoint.txid, 0) in utxo, "b1's coinbase unspent again"


def test_double_spend_across_forks() -> None:
    """
    b101 ── m1[coin X -> alice]                 active first
        └── r1[coin X -> bob] ── r2             wins: X ends paying bob, alice's output gone
    """
    b = BASE.copy()
    coin_x = b.coinbase_of("b1")
    to_alice = b.spend([coin_x], fee=1_000, to=key("alice"))
    to_bob = b.spend([coin_x], fee=5_000, to=key("bob"))
    b.block("m1", parent="b101", txs=[to_alice])
    b.block("r1", parent="b101", txs=[to_bob])
    b.block("r2", parent="r1")
    feeder = Feeder(b)
    assert feeder.accept("m1") == ["+m1", "tip b101->m1 0"]
    assert feeder.accept("r1") == []
    assert feeder.accept("r2") == ["-m1", "+r1", "+r2", "tip m1->r2 1"]
    utxo = feeder.utxo()
    assert OutPoint(to_alice.txid, 0) not in utxo
    assert utxo[OutPoint(to_bob.txid, 0)] == Coin(
        coin_x.value - 5_000, pkh(key("bob")), b.height("r1"), False
    )
    assert coin_x.outpoint not in utxo
    feeder.assert_utxo_is_replay()


def test_spending_a_coinbase_of_an_orphaned_branch() -> None:
    """
    b101 ── m1 ── m2 ── … ── m101[spends m1's coinbase]     valid there (mature at m101)
        └── r1 ── … ── r102 ── r103[spends m1's coinbase]   r102 wins; r103 is invalid:
                                                            that coin never existed here
    """
    b = BASE.copy()
    grow(b, "m", "b101", 100)
    spend_m1 = b.spend([b.coinbase_of("m1")], fee=1_000, to=key("alice"))
    b.block("m101", parent="m100", txs=[spend_m1])
    grow(b, "r", "b101", 102)
    b.block("r103", parent="r102", txs=[spend_m1])
    feeder = Feeder(b)
    for name in names("m", 1, 101):
        feeder.accept(name)
    assert OutPoint(spend_m1.txid, 0) in feeder.utxo()
    for name in names("r", 1, 101):
        assert feeder.accept(name) == []
    events = feeder.accept("r102")
    assert events[:101] == [f"-m{n}" for n in range(101, 0, -1)]
    assert events[-1] == "tip m101->r102 101"
    assert feeder.reject("r103", ErrorCode.BAD_TXNS_INPUTS_MISSINGORSPENT) == []
    assert feeder.tip == "r102"
    assert feeder.chain.get_entry(b["r103"].hash).failed  # type: ignore[union-attr]
    assert OutPoint(spend_m1.txid, 0) not in feeder.utxo()
    feeder.assert_utxo_is_replay()


def test_reorg_back_and_forth() -> None:
    """
    b101 ── a1[X -> alice] ── a2[Y -> carol] ── a3 ── a4
        └── c1[X -> bob] ── c2 ── c3 ── c4 ── c5

    a1 a2 | c1 c2 (tie) | c3: to c | a3 (tie) | a4: back to a | c4 (tie) | c5: to c again
    """
    b = BASE.copy()
    x, y = b.coinbase_of("b1"), b.coinbase_of("b2")
    x_alice = b.spend([x], fee=100, to=key("alice"))
    y_carol = b.spend([y], fee=100, to=key("carol"))
    x_bob = b.spend([x], fee=300, to=key("bob"))
    b.block("a1", parent="b101", txs=[x_alice])
    b.block("a2", txs=[y_carol])
    b.block("a3")
    b.block("a4")
    b.block("c1", parent="b101", txs=[x_bob])
    for n in range(2, 6):
        b.block(f"c{n}", parent=f"c{n - 1}")
    feeder = Feeder(b)
    steps: list[tuple[str, list[str], str]] = [
        ("a1", ["+a1", "tip b101->a1 0"], "a1"),
        ("a2", ["+a2", "tip a1->a2 0"], "a2"),
        ("c1", [], "a2"),
        ("c2", [], "a2"),
        ("c3", ["-a2", "-a1", "+c1", "+c2", "+c3", "tip a2->c3 2"], "c3"),
        ("a3", [], "c3"),
        ("a4", ["-c3", "-c2", "-c1", "+a1", "+a2", "+a3", "+a4", "tip c3->a4 3"], "a4"),
        ("c4", [], "a4"),
        ("c5", [*(f"-a{n}" for n in range(4, 0, -1)), *names("+c", 1, 5), "tip a4->c5 4"], "c5"),
    ]
    for name, events, tip in steps:
        assert feeder.accept(name) == events, name
        assert feeder.tip == tip
        feeder.assert_utxo_is_replay()
        utxo = feeder.utxo()
        on_a = tip.startswith("a")
        assert (OutPoint(x_alice.txid, 0) in utxo) is on_a
        assert (OutPoint(x_bob.txid, 0) in utxo) is (not on_a)
        assert (OutPoint(y_carol.txid, 0) in utxo) is (tip in ("a2", "a3", "a4"))


def test_a_failed_reorg_falls_back_to_the_old_chain() -> None:
    """
    b101 ── a1 ── a2                         active
        └── c1 ── c2 ── c3[bad coinbase]    c3 makes c the most work; connecting it fails:
                                            c3 is marked invalid, a2 (seen before c2) wins
    """
    b = BASE.copy()
    grow(b, "a", "b101", 2)
    grow(b, "c", "b101", 2)
    b.block("c3", parent="c2", coinbase_value=REGTEST.subsidy(104) + 1)
    feeder = Feeder(b)
    for name in ("a1", "a2", "c1", "c2"):
        feeder.accept(name)
    assert feeder.tip == "a2"
    assert feeder.reject("c3", ErrorCode.BAD_CB_AMOUNT) == [], "net effect: nothing changed"
    assert feeder.tip == "a2"
    tips = {b.names[t.hash]: t.status for t in feeder.chain.chain_tips()}
    assert tips == {"a2": TipStatus.ACTIVE, "c3": TipStatus.INVALID}
    c2 = feeder.chain.get_entry(b["c2"].hash)
    assert c2 is not None and not c2.failed, "c2 was connected once and is valid"
    feeder.assert_utxo_is_replay()


def test_a_failed_reorg_keeps_the_valid_prefix_when_it_has_more_work() -> None:
    """
    b101 ── a1 ── a2                                  active
        └── c1 ── c2 ── c3 ── c4[bad coinbase]        c2..c4 arrive first (orphans), then c1:
                                                      reorg to c4 fails at c4; c3 still has
                                                      more work than a2, so the node stays there
    """
    b = BASE.copy()
    grow(b, "a", "b101", 2)
    grow(b, "c", "b101", 3)
    b.block("c4", parent="c3", coinbase_value=REGTEST.subsidy(105) + 1)
    feeder = Feeder(b)
    feeder.accept("a1")
    feeder.accept("a2")
    for name in ("c4", "c3", "c2"):
        assert feeder.feed(name).outcome is BlockOutcome.ORPHAN
    events = feeder.accept("c1")
    assert events == ["-a2", "-a1", "+c1", "+c2", "+c3", "tip a2->c3 2"]
    assert feeder.tip == "c3"
    assert feeder.chain.get_entry(b["c4"].hash).failed  # type: ignore[union-attr]
    feeder.assert_utxo_is_replay()


def test_a_failed_reorg_tries_the_next_best_branch() -> None:
    """
    b101 ── a1 ── a2                                    active
        └── x1 ── c2 ── c3 ── c4 ── c5 ── c6[bad]       held as orphans until x1 arrives
              └── d2 ── d3 ── d4 ── d5 ── d6            held as orphans until x1 arrives

    x1 arrives: c6 and d6 tie, c6 was linked first and is tried first; it fails. Then d6, with
    more work than c5, is the next best: the node ends there, not on c5 nor back on a2.
    """
    b = BASE.copy()
    grow(b, "a", "b101", 2)
    b.block("x1", parent="b101")
    for n in range(2, 6):
        b.block(f"c{n}", parent="x1" if n == 2 else f"c{n - 1}")
    b.block("c6", parent="c5", coinbase_value=REGTEST.subsidy(107) + 1)
    for n in range(2, 7):
        b.block(f"d{n}", parent="x1" if n == 2 else f"d{n - 1}")
    feeder = Feeder(b)
    feeder.accept("a1")
    feeder.accept("a2")
    for name in [*names("c", 2, 6), *names("d", 2, 6)]:
        assert feeder.feed(name).outcome is BlockOutcome.ORPHAN
    assert feeder.accept("x1") == ["-a2", "-a1", "+x1", *names("+d", 2, 6), "tip a2->d6 2"]
    assert feeder.tip == "d6"
    statuses = {b.names[t.hash]: t.status for t in feeder.chain.chain_tips()}
    assert statuses == {"a2": TipStatus.VALID_FORK, "c6": TipStatus.INVALID, "d6": TipStatus.ACTIVE}
    feeder.assert_utxo_is_replay()
