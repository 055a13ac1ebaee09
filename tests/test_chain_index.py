"""Specification of the block index tree (node.core.chain), without any store or UTXO set.

The tree is pure, so it is exercised directly on headers from blocktools' ChainBuilder: chain
work is cumulative work and not length; skip pointers find the same ancestor as a walk
through parents; the best candidate is the most work, first linked winning ties; out-of-order
block data links in order; invalid marks spread to descendants and are cleared by reconsider;
getchaintips reports every status; the orphan pool stays bounded.
"""

from __future__ import annotations

import dataclasses
import itertools

import pytest
from blocktools import ChainBuilder
from hypothesis import given, settings
from hypothesis import strategies as st

from node.core.chain import (
    ActiveChain,
    BlockEntry,
    BlockStatus,
    BlockTree,
    TipStatus,
    branch_between,
    last_common_ancestor,
    locator_for,
)
from node.core.header import bits_to_target, block_work, target_to_bits
from node.core.orphans import OrphanBlocks
from node.core.params import DEMO, REGTEST

# A long chain built once: headers only matter here, and building is cheap on regtest.
LONG = ChainBuilder()
LONG.extend(300)


def tree_of(builder: ChainBuilder, names: list[str], *, data: bool = True) -> BlockTree:
    """A tree holding ``names`` (parents first), each with its block data if ``data``."""
    tree = BlockTree(builder.params.genesis.header)
    for name in names:
        entry = tree.add_header(builder[name].header)
        if data:
            tree.set_have_data(entry)
    return tree


def entry(tree: BlockTree, builder: ChainBuilder, name: str) -> BlockEntry:
    found = tree.get(builder[name].hash)
    assert found is not None, name
    return found


LONG_TREE = tree_of(LONG, LONG.branch("b300"), data=False)
"""Shared by tests that only read it."""


def naive_ancestor(e: BlockEntry, height: int) -> BlockEntry:
    while e.height > height:
        assert e.parent is not None
        e = e.parent
    return e


# -- work and ancestry


def test_chain_work_is_the_sum_of_block_work_not_the_length() -> None:
    tree = tree_of(LONG, LONG.branch("b10"))
    tip = entry(tree, LONG, "b10")
    assert tip.height == 10
    assert tip.chain_work == 11 * block_work(REGTEST.genesis_bits)


def test_a_short_chain_of_harder_blocks_beats_a_long_easy_one() -> None:
    """
    genesis ── e1 ── e2 ── e3      (easy: regtest's limit)
           └── h1                  (one block at a quarter of the target: 4x the work)
    """
    builder = ChainBuilder()
    builder.extend(3, prefix="e")
    hard_bits = 0x201FFFFF
    builder.block("h1", parent="genesis", bits=hard_bits)
    tree = tree_of(builder, ["e1", "e2", "e3", "h1"])
    assert block_work(hard_bits) > 3 * block_work(REGTEST.pow_limit_bits)
    assert tree.best_candidate() is entry(tree, builder, "h1")


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 300), st.data())
def test_skip_pointers_find_the_same_ancestor_as_walking_parents(
    top: int, data: st.DataObject
) -> None:
    tree = LONG_TREE
    start = tree.genesis if top == 0 else entry(tree, LONG, f"b{top}")
    height = data.draw(st.integers(0, top))
    assert start.ancestor(height) is naive_ancestor(start, height)


def test_ancestor_outside_the_chain_is_an_error() -> None:
    tree = tree_of(LONG, LONG.branch("b5"))
    with pytest.raises(ValueError):
        entry(tree, LONG, "b5").ancestor(6)


def test_last_common_ancestor_and_branch_between() -> None:
    """
    genesis ── b1 ── b2 ── b3 ── b4
                      └── x3 ── x4 ── x5
    """
    builder = ChainBuilder()
    builder.extend(4)
    builder.block("x3", parent="b2")
    builder.block("x4")
    builder.block("x5")
    tree = tree_of(builder, ["b1", "b2", "b3", "b4", "x3", "x4", "x5"])
    b2, b4, x5 = (entry(tree, builder, n) for n in ("b2", "b4", "x5"))
    assert last_common_ancestor(b4, x5) is b2
    assert last_common_ancestor(x5, b2) is b2
    assert [e.height for e in branch_between(b2, x5)] == [3, 4, 5]
    with pytest.raises(ValueError):
        branch_between(b4, x5)


# -- the best candidate


def test_first_linked_wins_a_tie_of_equal_work() -> None:
    """
    genesis ── a1          (linked first)
           └── b1          (same work, linked second)
    """
    builder = ChainBuilder()
    builder.block("a1", parent="genesis")
    builder.block("b1", parent="genesis")
    tree = tree_of(builder, ["a1", "b1"])
    assert tree.best_candidate() is entry(tree, builder, "a1")
    tree = tree_of(builder, ["b1", "a1"])
    assert tree.best_candidate() is entry(tree, builder, "b1")


def test_tie_is_decided_by_data_arrival_not_header_arrival() -> None:
    """Headers a1 then b1 arrive; b1's block arrives first: b1 was seen (in full) first."""
    builder = ChainBuilder()
    builder.block("a1", parent="genesis")
    builder.block("b1", parent="genesis")
    tree = tree_of(builder, ["a1", "b1"], data=False)
    tree.set_have_data(entry(tree, builder, "b1"))
    tree.set_have_data(entry(tree, builder, "a1"))
    assert tree.best_candidate() is entry(tree, builder, "b1")
    assert tree.best_header is entry(tree, builder, "a1"), "headers: first header seen"


def test_blocks_arriving_out_of_order_link_when_the_gap_fills() -> None:
    tree = tree_of(LONG, ["b1", "b2", "b3", "b4"], data=False)
    b1, b2, b3, b4 = (entry(tree, LONG, f"b{h}") for h in range(1, 5))
    assert tree.set_have_data(b3) == []
    assert tree.set_have_data(b4) == []
    assert tree.set_have_data(b1) == [b1]
    assert tree.best_candidate() is b1
    assert tree.set_have_data(b2) == [b2, b3, b4]
    assert [e.seq for e in (b1, b2, b3, b4)] == sorted(e.seq or 0 for e in (b1, b2, b3, b4))
    assert tree.best_candidate() is b4


def test_pruned_candidates_come_back_after_a_reset() -> None:
    """
    genesis ── b1 ── b2 ── b3
           └── s1
    """
    builder = ChainBuilder()
    builder.extend(3)
    builder.block("s1", parent="genesis")
    tree = tree_of(builder, ["b1", "b2", "b3", "s1"])
    b1, b3, s1 = (entry(tree, builder, n) for n in ("b1", "b3", "s1"))
    tree.prune_candidates(b3)
    assert tree.best_candidate() is b3
    # The tip moves back below s1's work: only a reset finds the pruned s1 again.
    tree.mark_invalid(b1)
    tree.prune_candidates(tree.genesis)
    assert tree.best_candidate() is tree.genesis
    tree.reset_candidates(tree.genesis)
    assert tree.best_candidate() is s1


# -- invalidity


def fork_tree() -> tuple[ChainBuilder, BlockTree]:
    """
    genesis ── b1 ── b2 ── b3 ── b4
                 └── f2 ── f3
    """
    builder = ChainBuilder()
    builder.extend(4)
    builder.block("f2", parent="b1")
    builder.block("f3")
    return builder, tree_of(builder, ["b1", "b2", "b3", "b4", "f2", "f3"])


def test_marking_invalid_spreads_to_descendants_only() -> None:
    builder, tree = fork_tree()
    b2 = entry(tree, builder, "b2")
    changed = tree.mark_invalid(b2)
    assert [builder.names[e.hash] for e in changed] == ["b2", "b3", "b4"]
    assert b2.status & BlockStatus.FAILED
    assert entry(tree, builder, "b4").status & BlockStatus.FAILED_CHILD
    assert not entry(tree, builder, "b1").failed
    assert not entry(tree, builder, "f3").failed
    assert tree.best_candidate() is entry(tree, builder, "f3")
    assert tree.best_header is entry(tree, builder, "f3")


def test_a_header_added_below_an_invalid_block_is_born_invalid() -> None:
    builder, tree = fork_tree()
    tree.mark_invalid(entry(tree, builder, "b4"))
    builder.block("b5", parent="b4")
    child = tree.add_header(builder["b5"].header)
    assert child.status & BlockStatus.FAILED_CHILD


def test_reconsider_clears_descendants_and_ancestors() -> None:
    builder, tree = fork_tree()
    tree.mark_invalid(entry(tree, builder, "b2"))
    tree.mark_invalid(entry(tree, builder, "b4"))
    changed = tree.reconsider(entry(tree, builder, "b3"))
    assert {builder.names[e.hash] for e in changed} == {"b2", "b3", "b4"}
    assert not any(e.failed for e in tree)
    tree.reset_candidates(tree.genesis)
    assert tree.best_candidate() is entry(tree, builder, "b4")


# -- restoring from storage


def test_restore_rebuilds_what_live_operations_built() -> None:
    """Statuses, seqs, links, tips and the best header survive a save-and-restore round trip,
    including out-of-order data, an invalid branch and its descendants."""
    builder, tree = fork_tree()
    for name, parent in [("h5", "b4"), ("h6", "h5"), ("x4", "f3"), ("x5", "x4")]:
        builder.block(name, parent=parent)
        tree.add_header(builder[name].header)
    tree.set_have_data(entry(tree, builder, "h6"))  # waits for h5: unlinked
    tree.set_have_data(entry(tree, builder, "x4"))
    tree.mark_valid(entry(tree, builder, "b2"))
    tree.mark_invalid(entry(tree, builder, "x4"))
    rows = [(e.header, int(e.status), e.seq) for e in tree if e is not tree.genesis]
    restored = BlockTree.restore(REGTEST.genesis.header, rows)

    def state(t: BlockTree) -> list[tuple[object, ...]]:
        return [(e.hash, e.height, e.chain_work, e.status, e.seq, e.linked) for e in t]

    assert state(restored) == state(tree)
    assert {e.hash for e in restored.tips} == {e.hash for e in tree.tips}
    assert restored.best_header.hash == tree.best_header.hash
    # A child stored as healthy below a failed parent comes back failed too.
    failed_parent_rows = [(h, s & ~int(BlockStatus.FAILED_CHILD), q) for h, s, q in rows]
    again = BlockTree.restore(REGTEST.genesis.header, failed_parent_rows)
    assert state(again) == state(tree)
    # New entries continue the sequence after the restored ones.
    later = restored.set_have_data(restored.get(builder["h5"].hash))  # type: ignore[arg-type]
    assert [e.seq for e in later] == [
        max(e.seq or 0 for e in tree) + 1,
        max(e.seq or 0 for e in tree) + 2,
    ]


def test_restore_refuses_rows_out_of_order() -> None:
    rows = [(LONG[f"b{h}"].header, 1, h) for h in (2, 1)]
    with pytest.raises(ValueError):
        BlockTree.restore(REGTEST.genesis.header, rows)


# -- context for the next header


def test_median_time_past_is_bitcoin_cores_median_of_the_last_eleven() -> None:
    """Core sorts up to 11 times and takes index len // 2: the upper median of an even count."""
    builder = ChainBuilder()
    start = REGTEST.genesis_time
    # Times out of order, as miners' clocks are: offsets chosen so the median is not the last.
    offsets = [5, 3, 9, 1, 7, 2, 8, 4, 6, 10, 11, 12, 13]
    for n, off in enumerate(offsets, start=1):
        builder.block(f"t{n}", time=start + 100 * off)
    tree = tree_of(builder, builder.branch("t13"), data=False)
    assert tree.median_time_past(tree.genesis) == start
    for n in range(1, 14):
        times = [start] + [start + 100 * off for off in offsets[:n]]
        last_eleven = sorted(times[-11:])
        want = last_eleven[len(last_eleven) // 2]
        assert tree.median_time_past(entry(tree, builder, f"t{n}")) == want, n
    # Height 1: two times, genesis and t1; Core takes the later one.
    assert tree.median_time_past(entry(tree, builder, "t1")) == start + 500


def test_expected_bits_follows_the_retarget_rule() -> None:
    """demo's retarget (every 12 blocks), with regtest's easy genesis target so that mining
    the test chain takes a few hashes: a fast period makes the target harder in proportion."""
    params = dataclasses.replace(DEMO, genesis_bits=REGTEST.genesis_bits)
    builder = ChainBuilder(params)
    for n in range(1, 13):
        builder.block(f"d{n}", time=params.genesis_time + 2 * n)
    tree = tree_of(builder, [f"d{n}" for n in range(1, 13)], data=False)
    d11, d12 = entry(tree, builder, "d11"), entry(tree, builder, "d12")
    # Blocks 0..11 span 11 gaps of 2 s (Bitcoin's off-by-one) where 12 x 5 s were planned.
    want = target_to_bits(bits_to_target(params.genesis_bits) * 22 // 60)
    assert tree.expected_bits(d11, params) == want == builder.expected_bits("d11")
    assert tree.expected_bits(d12, params) == d12.header.bits, "height 13 keeps the bits"
    assert tree.expected_bits(tree.genesis, params) == params.genesis_bits


# -- the active chain


def test_active_chain_set_tip_locator_and_find_fork() -> None:
    builder, tree = fork_tree()
    active = ActiveChain(tree)
    b4, f3 = entry(tree, builder, "b4"), entry(tree, builder, "f3")
    active.set_tip(b4)
    assert [builder.names.get(e.hash) for e in active] == ["genesis", "b1", "b2", "b3", "b4"]
    assert active.fork_point(f3) is entry(tree, builder, "b1")
    assert active.find_fork(locator_for(f3)) is entry(tree, builder, "b1")
    assert active.find_fork([b"\x01" * 32]) is tree.genesis
    active.set_tip(f3)
    assert active.height == 3 and active.tip is f3
    assert b4 not in active and entry(tree, builder, "b1") in active
    assert active.next(entry(tree, builder, "b1")) is entry(tree, builder, "f2")
    assert active.next(f3) is None


def test_locator_is_dense_near_the_tip_then_doubles_to_genesis() -> None:
    tree = LONG_TREE
    tip = entry(tree, LONG, "b300")
    heights = [tree.get(h).height for h in locator_for(tip)]  # type: ignore[union-attr]
    assert heights[:10] == list(range(300, 290, -1))
    steps = [a - b for a, b in itertools.pairwise(heights)]
    assert steps[9:-1] == [2 ** (n + 1) for n in range(len(steps) - 10)]
    assert heights[-1] == 0
    assert len(heights) < 25


# -- getchaintips


def test_chain_tips_reports_every_status() -> None:
    """
    genesis ── b1 ── b2 ── b3                  active
                 ├── v2 ── v3                  valid-fork (connected once, then left)
                 ├── w2                        valid-headers (data, never connected)
                 ├── h2 ── h3                  headers-only (h2's block missing)
                 └── x2 ── x3                  invalid (x2 broke a rule)
    """
    builder = ChainBuilder()
    builder.extend(3)
    for name, parent in [
        ("v2", "b1"), ("v3", "v2"), ("w2", "b1"), ("h2", "b1"), ("h3", "h2"),
        ("x2", "b1"), ("x3", "x2"),
    ]:  # fmt: skip
        builder.block(name, parent=parent)
    tree = tree_of(builder, ["b1", "b2", "b3", "v2", "v3", "w2", "x2", "x3"])
    tree.add_header(builder["h2"].header)
    tree.set_have_data(tree.add_header(builder["h3"].header))
    for name in ("v2", "v3", "b1", "b2", "b3"):
        tree.mark_valid(entry(tree, builder, name))
    tree.mark_invalid(entry(tree, builder, "x2"))
    active = ActiveChain(tree)
    active.set_tip(entry(tree, builder, "b3"))
    tips = {
        builder.names[t.hash]: (t.status, t.branch_len, t.height) for t in tree.chain_tips(active)
    }
    assert tips == {
        "b3": (TipStatus.ACTIVE, 0, 3),
        "v3": (TipStatus.VALID_FORK, 2, 3),
        "w2": (TipStatus.VALID_HEADERS, 1, 2),
        "h3": (TipStatus.HEADERS_ONLY, 2, 3),
        "x3": (TipStatus.INVALID, 2, 3),
    }


def test_chain_tips_includes_an_active_tip_with_headers_beyond_it() -> None:
    tree = tree_of(LONG, ["b1"])
    tree.add_header(LONG["b2"].header)
    active = ActiveChain(tree)
    active.set_tip(entry(tree, LONG, "b1"))
    statuses = {t.height: t.status for t in tree.chain_tips(active)}
    assert statuses == {1: TipStatus.ACTIVE, 2: TipStatus.HEADERS_ONLY}


def test_missing_blocks_lists_what_to_download_lowest_first() -> None:
    tree = tree_of(LONG, ["b1"])
    for h in range(2, 8):
        tree.add_header(LONG[f"b{h}"].header)
    tree.set_have_data(entry(tree, LONG, "b4"))
    active = ActiveChain(tree)
    active.set_tip(entry(tree, LONG, "b1"))
    assert tree.best_header is entry(tree, LONG, "b7")
    missing = tree.missing_blocks(tree.best_header, active, limit=4)
    assert [e.height for e in missing] == [2, 3, 5, 6]


# -- orphans


def test_orphan_pool_evicts_the_oldest_beyond_its_count() -> None:
    pool = OrphanBlocks(max_blocks=3)
    blocks = [LONG[f"b{h}"] for h in range(2, 7)]
    evicted = [pool.add(b) for b in blocks]
    assert evicted[:3] == [[], [], []]
    assert evicted[3:] == [[blocks[0].hash], [blocks[1].hash]]
    assert len(pool) == 3
    assert blocks[0].hash not in pool and blocks[4].hash in pool
    assert pool.pop_children(blocks[2].header.prev_hash) == [blocks[2]]
    assert pool.pop_children(blocks[2].header.prev_hash) == []
    assert len(pool) == 2


def test_orphan_pool_is_bounded_in_bytes_too() -> None:
    size = LONG["b2"].size
    pool = OrphanBlocks(max_blocks=100, max_bytes=2 * size)
    for h in range(2, 6):
        pool.add(LONG[f"b{h}"])
    assert len(pool) == 2 and pool.total_bytes <= 2 * size


def test_orphan_pool_keeps_siblings_and_finds_the_missing_root() -> None:
    builder = ChainBuilder()
    builder.extend(4)
    builder.block("s3", parent="b2")
    pool = OrphanBlocks()
    for name in ("b4", "b3", "s3"):
        pool.add(builder[name])
    assert pool.root_parent(builder["b4"].hash) == builder["b2"].hash
    children = pool.pop_children(builder["b2"].hash)
    assert children == [builder["b3"], builder["s3"]]
    assert pool.pop_children(builder["b3"].hash) == [builder["b4"]]
    assert len(pool) == 0 and pool.total_bytes == 0


def test_adding_a_header_twice_or_without_parent_is_a_programming_error() -> None:
    tree = tree_of(LONG, ["b1"])
    with pytest.raises(ValueError):
        tree.add_header(LONG["b1"].header)
    with pytest.raises(ValueError):
        tree.add_header(LONG["b3"].header)
