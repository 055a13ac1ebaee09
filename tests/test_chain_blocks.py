"""How ChainState accepts, refuses, marks and holds blocks and headers: a named catalogue.

Each case builds a small named tree with blocktools' ChainBuilder on regtest and feeds it to an
in-memory ChainState, asserting the outcome (accepted, orphan, duplicate, rejected with a code),
whether a refused block was *marked* invalid (never accepted again) or refused unmarked (the
fault may not be its own: a mutated copy, a time too far ahead), the tip, and getchaintips.
"""

from __future__ import annotations

import dataclasses

import pytest
from blocktools import ChainBuilder, solve

from node.chainstate import BlockConnected, BlockOutcome, BlockResult, ChainState, TipChanged
from node.core.block import Block
from node.core.chain import BlockStatus, TipStatus
from node.core.errors import ErrorCode, RuleError, StoreError
from node.core.orphans import OrphanBlocks
from node.core.params import DEMO, MAX_FUTURE_BLOCK_TIME, REGTEST
from node.store import ChainStore

NOW = REGTEST.genesis_time + 10**7


class Feeder:
    def __init__(self, builder: ChainBuilder, chain: ChainState | None = None) -> None:
        self.b = builder
        self.chain = chain if chain is not None else ChainState.in_memory(REGTEST)

    def feed(self, name: str, now: int = NOW) -> BlockResult:
        return self.chain.process_block(self.b[name], now)

    def accept(self, *names: str) -> None:
        for name in names:
            result = self.feed(name)
            assert result.outcome is BlockOutcome.ACCEPTED, (name, result.reject)

    def reject(self, block: str | Block, code: ErrorCode, now: int = NOW) -> BlockResult:
        blk = self.b[block] if isinstance(block, str) else block
        result = self.chain.process_block(blk, now)
        assert result.outcome is BlockOutcome.REJECTED, (block, result.outcome)
        assert result.reject is not None and result.reject.code is code, result.reject
        return result

    def status(self, name: str) -> BlockStatus | None:
        entry = self.chain.get_entry(self.b[name].hash)
        return None if entry is None else entry.status

    @property
    def tip(self) -> str:
        return self.b.names[self.chain.tip.hash]

    def tips(self) -> dict[str, tuple[TipStatus, int]]:
        return {self.b.names[t.hash]: (t.status, t.branch_len) for t in self.chain.chain_tips()}


def remake(block: Block, *, mine: bool = True, **fields: int | bytes) -> Block:
    """``block`` with header fields changed and mined again (or made to fail its target)."""
    header = dataclasses.replace(block.header, nonce=0, **fields)  # type: ignore[arg-type]
    return Block(solve(header, valid=mine), block.transactions)


def chain_of(length: int) -> ChainBuilder:
    builder = ChainBuilder()
    builder.extend(length)
    return builder


# -- marking invalid


def test_an_invalid_block_is_marked_and_never_accepted_again() -> None:
    """
    genesis ── b1 ── b2 ── x3[coinbase claims too much] ── x4
    """
    b = chain_of(2)
    b.block("x3", coinbase_value=REGTEST.subsidy(3) + 1)
    b.block("x4")
    feeder = Feeder(b)
    feeder.accept("b1", "b2")
    feeder.reject("x3", ErrorCode.BAD_CB_AMOUNT)
    assert feeder.status("x3") == BlockStatus.HAVE_DATA | BlockStatus.FAILED
    feeder.reject("x3", ErrorCode.INVALID_BLOCK)
    # x4's parent is known invalid: refused at once, and not even added to the tree.
    feeder.reject("x4", ErrorCode.BAD_PREVBLK)
    assert feeder.status("x4") is None
    assert feeder.tip == "b2"


def test_descendants_known_by_header_are_marked_with_the_invalid_block() -> None:
    """
    genesis ── b1 ── x2[coinbase commits to the wrong height] ── x3 ── x4   (headers first)
    """
    b = chain_of(1)
    b.block("x2", coinbase_height=7)
    b.block("x3")
    b.block("x4")
    feeder = Feeder(b)
    feeder.accept("b1")
    for name in ("x2", "x3", "x4"):
        feeder.chain.process_header(b[name].header, NOW)
    assert feeder.tips()["x4"] == (TipStatus.HEADERS_ONLY, 3)
    feeder.reject("x2", ErrorCode.BAD_CB_HEIGHT)
    assert feeder.status("x2") == BlockStatus.FAILED, "refused before storing: no data"
    assert feeder.status("x3") == BlockStatus.FAILED_CHILD
    assert feeder.status("x4") == BlockStatus.FAILED_CHILD
    feeder.reject("x4", ErrorCode.BAD_PREVBLK)
    with pytest.raises(RuleError) as caught:
        feeder.chain.process_header(b["x3"].header, NOW)
    assert caught.value.code is ErrorCode.BAD_PREVBLK
    assert feeder.tips() == {"b1": (TipStatus.ACTIVE, 0), "x4": (TipStatus.INVALID, 3)}


def test_a_mutated_copy_is_refused_unmarked_and_the_real_block_accepted() -> None:
    """CVE-2012-2459: [cb, t1, t2] and [cb, t1, t2, t2] share a merkle root, hence a hash."""
    b = chain_of(101)
    t1 = b.spend([b.coinbase_of("b1")], fee=1_000)
    t2 = b.spend([b.coinbase_of("b2")], fee=1_000)
    real = b.block("b102", txs=[t1, t2])
    mutated = Block(real.header, (*real.transactions, t2))
    assert mutated.hash == real.hash
    feeder = Feeder(b)
    feeder.accept(*b.branch("b101"))
    feeder.reject(mutated, ErrorCode.BAD_TXNS_DUPLICATE)
    assert feeder.status("b102") == BlockStatus.HEADER_ONLY, "header kept, not marked"
    feeder.accept("b102")
    assert feeder.tip == "b102"


def test_a_copy_with_other_transactions_is_refused_unmarked() -> None:
    """Transactions that do not match the header's merkle root say nothing about the block."""
    b = chain_of(101)
    t1 = b.spend([b.coinbase_of("b1")], fee=1_000)
    real = b.block("b102", txs=[t1])
    swapped = Block(real.header, real.transactions[:1])
    feeder = Feeder(b)
    feeder.accept(*b.branch("b101"))
    feeder.reject(swapped, ErrorCode.BAD_TXNMRKLROOT)
    assert not feeder.chain.get_entry(real.hash).failed  # type: ignore[union-attr]
    feeder.accept("b102")


def test_a_block_too_far_ahead_is_refused_unmarked_then_accepted_later() -> None:
    b = chain_of(1)
    b.block("b2")
    when = b["b2"].header.time
    feeder = Feeder(b)
    feeder.accept("b1")
    early = when - MAX_FUTURE_BLOCK_TIME - 1
    feeder.reject("b2", ErrorCode.TIME_TOO_NEW, now=early)
    assert feeder.status("b2") is None, "not in the tree: nothing to remember"
    assert feeder.feed("b2", now=early + 1).accepted
    assert feeder.tip == "b2"


def test_a_header_failing_its_own_checks_never_enters_the_tree() -> None:
    b = chain_of(3)
    feeder = Feeder(b)
    feeder.accept("b1", "b2")
    b3 = b["b3"]
    cases = {
        ErrorCode.HIGH_HASH: remake(b3, mine=False).header,
        ErrorCode.BAD_DIFFBITS: remake(b3, bits=0x207FFFFE).header,
        ErrorCode.TIME_TOO_OLD: remake(b3, time=b["b1"].header.time).header,
        ErrorCode.PREV_BLK_NOT_FOUND: remake(b3, prev_hash=bytes(32)).header,
    }
    for code, header in cases.items():
        with pytest.raises(RuleError) as caught:
            feeder.chain.process_header(header, NOW)
        assert caught.value.code is code
        assert feeder.chain.get_entry(header.hash) is None
    assert len(feeder.chain.tree) == 3


# -- duplicates, orphans, headers first


def test_a_block_seen_twice_is_a_duplicate() -> None:
    feeder = Feeder(chain_of(1))
    feeder.accept("b1")
    result = feeder.feed("b1")
    assert result.outcome is BlockOutcome.DUPLICATE and result.events == ()
    result = feeder.chain.process_block(REGTEST.genesis, NOW)
    assert result.outcome is BlockOutcome.DUPLICATE


def test_orphans_connect_in_order_when_the_parent_arrives() -> None:
    b = chain_of(5)
    feeder = Feeder(b)
    feeder.accept("b1")
    for name in ("b5", "b3", "b4"):
        result = feeder.feed(name)
        assert result.outcome is BlockOutcome.ORPHAN and result.reject is None
    assert feeder.feed("b4").outcome is BlockOutcome.DUPLICATE
    assert feeder.chain.orphans.root_parent(b["b5"].hash) == b["b2"].hash
    result = feeder.feed("b2")
    assert result.accepted
    connected = [b.names[e.block.hash] for e in result.events if isinstance(e, BlockConnected)]
    assert connected == ["b2", "b3", "b4", "b5"]
    assert isinstance(result.events[-1], TipChanged)
    assert len(feeder.chain.orphans) == 0


def test_a_long_orphan_chain_connects_without_deep_recursion() -> None:
    """1,500 orphans, newest first, then their missing root: more than Python's stack."""
    b = chain_of(1501)
    chain = ChainState(ChainStore.memory(REGTEST), REGTEST, orphans=OrphanBlocks(max_blocks=2_000))
    feeder = Feeder(b, chain)
    feeder.accept("b1")
    for height in range(1501, 2, -1):
        assert feeder.feed(f"b{height}").outcome is BlockOutcome.ORPHAN
    assert feeder.feed("b2").accepted
    assert feeder.chain.height == 1501


def test_an_orphan_failing_context_free_checks_is_not_held() -> None:
    b = chain_of(3)
    feeder = Feeder(b)
    feeder.reject(remake(b["b3"], mine=False), ErrorCode.HIGH_HASH)
    assert len(feeder.chain.orphans) == 0


def test_headers_first_then_blocks_in_any_order() -> None:
    b = chain_of(5)
    feeder = Feeder(b)
    for name in b.branch("b5"):
        entry = feeder.chain.process_header(b[name].header, NOW)
        assert entry.status == BlockStatus.HEADER_ONLY
    assert feeder.chain.tree.best_header.hash == b["b5"].hash
    assert [e.height for e in feeder.chain.missing_blocks(10)] == [1, 2, 3, 4, 5]
    for name in ("b4", "b5", "b2"):
        assert feeder.feed(name).events == (), "b1 missing: nothing can connect"
    assert feeder.tip == "genesis"
    assert [e.height for e in feeder.chain.missing_blocks(10)] == [1, 3]
    feeder.accept("b1")
    assert feeder.tip == "b2"
    result = feeder.feed("b3")
    assert [b.names[e.block.hash] for e in result.events if isinstance(e, BlockConnected)] == [
        "b3",
        "b4",
        "b5",
    ]
    assert feeder.chain.missing_blocks(10) == []


def test_process_header_returns_the_known_entry() -> None:
    b = chain_of(1)
    feeder = Feeder(b)
    first = feeder.chain.process_header(b["b1"].header, NOW)
    assert feeder.chain.process_header(b["b1"].header, NOW) is first


# -- choosing between equal chains


@pytest.mark.parametrize("order", [("a1", "c1"), ("c1", "a1")])
def test_first_seen_wins_a_tie(order: tuple[str, str]) -> None:
    """
    genesis ── a1
           └── c1
    """
    b = ChainBuilder()
    b.block("a1", parent="genesis")
    b.block("c1", parent="genesis")
    feeder = Feeder(b)
    feeder.accept(order[0])
    second = feeder.feed(order[1])
    assert second.accepted and second.events == ()
    assert feeder.tip == order[0]
    assert feeder.tips() == {
        order[0]: (TipStatus.ACTIVE, 0),
        order[1]: (TipStatus.VALID_HEADERS, 1),
    }


# -- getchaintips


def test_chain_tips_through_a_chain_state() -> None:
    """
    genesis ── b1 ── b2 ── b3 ── b4     active
                 ├── v2 ── v3           valid-fork: active once, then b4 took over
                 ├── w2                 valid-headers: stored, never connected
                 ├── h2                 headers-only
                 └── x2[bad]            invalid
    """
    b = chain_of(4)
    b.block("v2", parent="b1")
    b.block("v3")
    b.block("w2", parent="b1")
    b.block("h2", parent="b1")
    b.block("x2", parent="b1", coinbase_height=9)
    feeder = Feeder(b)
    feeder.accept("b1", "v2", "v3", "b2", "b3", "b4", "w2")
    feeder.chain.process_header(b["h2"].header, NOW)
    feeder.reject("x2", ErrorCode.BAD_CB_HEIGHT)
    assert feeder.tips() == {
        "b4": (TipStatus.ACTIVE, 0),
        "v3": (TipStatus.VALID_FORK, 2),
        "w2": (TipStatus.VALID_HEADERS, 1),
        "h2": (TipStatus.HEADERS_ONLY, 1),
        "x2": (TipStatus.INVALID, 1),
    }


# -- invalidateblock and reconsiderblock


def test_invalidate_and_reconsider_on_one_chain() -> None:
    b = chain_of(5)
    feeder = Feeder(b)
    feeder.accept(*b.branch("b5"))
    events = feeder.chain.invalidate_block(b["b3"].hash)
    assert [type(e).__name__ for e in events] == ["BlockDisconnected"] * 3 + ["TipChanged"]
    assert feeder.tip == "b2"
    assert feeder.tips() == {"b2": (TipStatus.ACTIVE, 0), "b5": (TipStatus.INVALID, 3)}
    feeder.reject("b4", ErrorCode.BAD_PREVBLK)
    feeder.reject("b3", ErrorCode.INVALID_BLOCK)
    events = feeder.chain.reconsider_block(b["b3"].hash)
    assert [type(e).__name__ for e in events] == ["BlockConnected"] * 3 + ["TipChanged"]
    assert feeder.tip == "b5"
    assert feeder.chain.verify().ok


def test_invalidate_moves_to_the_best_other_fork() -> None:
    """
    genesis ── b1 ── b2 ── b3 ── b4 ── b5     active; invalidate b3
                 └── f2 ── f3 ── f4          then the best valid chain is f4 (more than b2)
    """
    b = chain_of(5)
    b.block("f2", parent="b1")
    b.block("f3")
    b.block("f4")
    feeder = Feeder(b)
    feeder.accept(*b.branch("b5"), "f2", "f3", "f4")
    events = feeder.chain.invalidate_block(b["b3"].hash)
    tip_changed = events[-1]
    assert isinstance(tip_changed, TipChanged) and tip_changed.reorg_depth == 4
    assert feeder.tip == "f4"
    assert feeder.chain.verify().ok
    # Invalidating a block off the active chain changes nothing active.
    assert feeder.chain.invalidate_block(b["b4"].hash) == ()
    feeder.chain.reconsider_block(b["b4"].hash)
    assert feeder.tip == "b5", "reconsidering b4 also clears its ancestor b3"


def test_invalidate_refuses_genesis_and_unknown_blocks() -> None:
    chain = ChainState.in_memory(REGTEST)
    with pytest.raises(ValueError):
        chain.invalidate_block(REGTEST.genesis_hash)
    with pytest.raises(KeyError):
        chain.invalidate_block(bytes(32))
    with pytest.raises(KeyError):
        chain.reconsider_block(bytes(32))


def test_reconsidering_a_truly_invalid_block_marks_it_again() -> None:
    b = chain_of(1)
    b.block("x2", coinbase_value=REGTEST.subsidy(2) + 1)
    feeder = Feeder(b)
    feeder.accept("b1")
    feeder.reject("x2", ErrorCode.BAD_CB_AMOUNT)
    assert feeder.chain.reconsider_block(b["x2"].hash) == ()
    assert feeder.status("x2") == BlockStatus.HAVE_DATA | BlockStatus.FAILED
    assert feeder.tip == "b1"


def test_events_carry_the_blocks_and_heights() -> None:
    b = chain_of(2)
    feeder = Feeder(b)
    feeder.accept("b1")
    result = feeder.feed("b2")
    connected, changed = result.events
    assert connected == BlockConnected(b["b2"], 2)
    assert isinstance(changed, TipChanged)
    assert (changed.old_tip.hash, changed.new_tip.hash, changed.reorg_depth) == (
        b["b1"].hash,
        b["b2"].hash,
        0,
    )


def test_a_chain_state_refuses_a_store_of_another_network() -> None:
    with pytest.raises(StoreError, match="demo"):
        ChainState(ChainStore.memory(DEMO), REGTEST)
