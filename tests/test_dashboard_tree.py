"""The dashboard's block tree: what is main, competing or stale, where each branch is drawn, what
is collapsed, and how a block spread.

The tree is fed as the nodes' event streams feed it: blocks with the node that connected them
and when, and each node's tip. Block names below are their hashes; ``a3`` is the third block of
branch ``a``. Cases are stories a class would watch:

* one chain everyone agrees on;
* a race: two blocks at one height, settled when a node switches;
* a partition: both sides extend their own branch, then heal and the losing side turns stale;
* a node that goes down stops holding its branch alive;
* lanes: branches never overlap, and a lane is reused once its branch has ended;
* thousands of blocks: memory stays bounded, older history is counted, not kept;
* a block's spread, hop by hop along the links.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.dashboard.tree import BlockTree, Hop, Status, spread


def extend(
    tree: BlockTree,
    parent: str,
    parent_height: int,
    names: list[str],
    *,
    node: str,
    at: float = 0.0,
) -> str:
    """Blocks ``names`` on top of ``parent``, each connected by ``node``; the last name."""
    height = parent_height
    for name in names:
        height += 1
        tree.add_block(name, height, parent, 1_800_000_000 + height, txs=1, node=node, at=at)
        parent = name
    return parent


def statuses(tree: BlockTree, depth: int = 100) -> dict[str, str]:
    return {b.hash: b.status.value for b in tree.view(depth).blocks}


def lanes(tree: BlockTree, depth: int = 100) -> dict[str, int]:
    return {b.hash: b.lane for b in tree.view(depth).blocks}


def genesis(tree: BlockTree) -> None:
    tree.add_block("g", 0, "", 1_800_000_000)


def test_one_chain_that_every_node_agrees_on_is_all_main_in_lane_zero() -> None:
    tree = BlockTree()
    genesis(tree)
    tip = extend(tree, "g", 0, ["a1", "a2", "a3"], node="n1")
    for node in ("n1", "n2", "n3"):
        tree.set_tip(node, tip)
    view = tree.view(10)
    assert view.best == "a3" and view.best_height == 3
    assert {b.status for b in view.blocks} == {Status.MAIN}
    assert set(lanes(tree).values()) == {0}
    assert view.lanes == 1
    assert view.tips == {"n1": "a3", "n2": "a3", "n3": "a3"}


def test_a_race_shows_two_branches_until_a_node_switches_then_the_loser_is_stale() -> None:
    tree = BlockTree()
    genesis(tree)
    extend(tree, "g", 0, ["a1"], node="n1")
    extend(tree, "g", 0, ["b1"], node="n3")
    for node, tip in (("n1", "a1"), ("n2", "a1"), ("n3", "b1")):
        tree.set_tip(node, tip)
    # Same height: the tip more nodes hold is the best; the other is alive on n3.
    assert statuses(tree) == {"g": "main", "a1": "main", "b1": "fork"}
    assert lanes(tree)["b1"] == 1
    tree.set_tip("n3", "a1")
    assert statuses(tree) == {"g": "main", "a1": "main", "b1": "stale"}


def test_a_tie_in_height_and_holders_goes_to_the_block_seen_first() -> None:
    tree = BlockTree()
    genesis(tree)
    extend(tree, "g", 0, ["b1"], node="n2", at=1.0)
    extend(tree, "g", 0, ["a1"], node="n1", at=2.0)
    tree.set_tip("n1", "a1")
    tree.set_tip("n2", "b1")
    assert tree.best_tip() == "b1"


def test_a_partition_grows_two_live_branches_and_healing_leaves_the_shorter_stale() -> None:
    tree = BlockTree()
    genesis(tree)
    base = extend(tree, "g", 0, ["c1", "c2"], node="n1")
    for node in ("n1", "n2", "n3", "n4"):
        tree.set_tip(node, base)
    #            /- a3 - a4        (n1, n2)
    # g - c1 - c2
    #            \- b3 - b4 - b5   (n3, n4)
    left = extend(tree, base, 2, ["a3", "a4"], node="n1")
    right = extend(tree, base, 2, ["b3", "b4", "b5"], node="n3")
    for node, tip in (("n1", left), ("n2", left), ("n3", right), ("n4", right)):
        tree.set_tip(node, tip)
    assert statuses(tree) == {
        "g": "main",
        "c1": "main",
        "c2": "main",
        "a3": "fork",
        "a4": "fork",
        "b3": "main",
        "b4": "main",
        "b5": "main",
    }
    # Healed: the left side reorganises onto the longer branch.
    tree.set_tip("n1", right)
    tree.set_tip("n2", right)
    assert statuses(tree)["a3"] == statuses(tree)["a4"] == "stale"
    assert lanes(tree) == {"g": 0, "c1": 0, "c2": 0, "a3": 1, "a4": 1, "b3": 0, "b4": 0, "b5": 0}


def test_the_branch_of_a_node_that_went_down_is_no_longer_held_alive() -> None:
    tree = BlockTree()
    genesis(tree)
    extend(tree, "g", 0, ["a1", "a2"], node="n1")
    extend(tree, "g", 0, ["b1"], node="n2")
    tree.set_tip("n1", "a2")
    tree.set_tip("n2", "b1")
    assert statuses(tree)["b1"] == "fork"
    tree.set_down("n2")
    assert statuses(tree)["b1"] == "stale"
    assert tree.view(10).tips["n2"] == "b1", "a node that is down keeps its last known tip"
    tree.set_down("n2", False)
    assert statuses(tree)["b1"] == "fork"


def test_a_node_that_is_down_is_not_the_best_tip_even_if_highest() -> None:
    tree = BlockTree()
    genesis(tree)
    extend(tree, "g", 0, ["a1", "a2", "a3"], node="n1")
    extend(tree, "g", 0, ["b1"], node="n2")
    tree.set_tip("n1", "a3")
    tree.set_tip("n2", "b1")
    tree.set_down("n1")
    assert tree.best_tip() == "b1"


def test_branches_that_do_not_overlap_share_a_lane_and_overlapping_ones_do_not() -> None:
    tree = BlockTree()
    genesis(tree)
    main = extend(tree, "g", 0, [f"m{i}" for i in range(1, 11)], node="n1")
    tree.set_tip("n1", main)
    # Stale side branches: x at heights 2-3, y at 7; z at 3-4 overlaps x.
    extend(tree, "m1", 1, ["x2", "x3"], node="n2")
    extend(tree, "m6", 6, ["y7"], node="n2")
    extend(tree, "m2", 2, ["z3", "z4"], node="n3")
    lane = lanes(tree)
    assert lane["x2"] == lane["x3"] == 1
    assert lane["y7"] == 1, "x has ended before y starts: y reuses its lane"
    assert lane["z3"] == lane["z4"] == 2
    assert tree.view(100).lanes == 3


def test_a_second_child_of_a_stale_block_starts_a_branch_of_its_own() -> None:
    tree = BlockTree()
    genesis(tree)
    main = extend(tree, "g", 0, ["m1", "m2", "m3"], node="n1")
    tree.set_tip("n1", main)
    extend(tree, "m1", 1, ["x2", "x3"], node="n2")
    extend(tree, "x2", 2, ["w3"], node="n3")
    lane = lanes(tree)
    assert lane["x2"] == lane["x3"] == 1
    assert lane["w3"] == 2


@settings(max_examples=60, deadline=None)
@given(
    parents=st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=60),
    tips=st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=4),
)
def test_property_any_tree_is_drawn_without_overlaps_and_statuses_are_consistent(
    parents: list[int], tips: list[int]
) -> None:
    tree = BlockTree()
    genesis(tree)
    names = ["g"]
    heights = {"g": 0}
    for i, choice in enumerate(parents):
        parent = names[choice % len(names)]
        name = f"b{i}"
        heights[name] = heights[parent] + 1
        tree.add_block(name, heights[name], parent, 0, node="n0", at=float(i))
        names.append(name)
    for k, choice in enumerate(tips):
        tree.set_tip(f"n{k}", names[choice % len(names)])
    view = tree.view(100)
    cells = [(b.height, b.lane) for b in view.blocks]
    assert len(cells) == len(set(cells)), "two blocks drawn in one place"
    by_hash = {b.hash: b for b in view.blocks}
    for block in view.blocks:
        assert (block.lane == 0) == (block.status is Status.MAIN)
        assert block.lane < view.lanes
    live = set()
    for tip in view.tips.values():
        live.update(r.hash for r in tree.ancestors(tip))
    for hash_ in live:
        assert by_hash[hash_].status is not Status.STALE
    main = [b for b in view.blocks if b.status is Status.MAIN]
    assert sorted(b.height for b in main) == list(range(len(main))), "main is one chain"


def test_thousands_of_blocks_keep_memory_bounded_and_count_what_is_collapsed() -> None:
    tree = BlockTree(keep_heights=100)
    genesis(tree)
    parent, stale = "g", 0
    for height in range(1, 3_001):
        name = f"m{height}"
        tree.add_block(name, height, parent, 0, node="n1", at=float(height))
        if height % 50 == 0:  # a block that lost a race
            tree.add_block(f"s{height}", height, parent, 0, node="n2", at=float(height))
            stale += 1
        tree.set_tip("n1", name)
        parent = name
    # The bound, a tenth more while a batch waits, and the stale blocks among them.
    assert len(tree) <= 110 + 1 + 110 // 50 + 1
    view = tree.view(40)
    assert view.best_height == 3_000
    assert min(b.height for b in view.blocks) == 3_000 - 39
    shown = len(view.blocks)
    assert view.collapsed.blocks + shown == 3_001 + stale, "every block is shown or counted"
    shown_stale = sum(1 for b in view.blocks if b.status is Status.STALE)
    assert view.collapsed.stale + shown_stale == stale
    assert view.collapsed.below_height == 3_000 - 39


def test_a_block_reported_below_the_collapsed_horizon_is_ignored() -> None:
    tree = BlockTree(keep_heights=10)
    genesis(tree)
    tip = extend(tree, "g", 0, [f"m{i}" for i in range(1, 31)], node="n1")
    tree.set_tip("n1", tip)
    assert not tree.add_block("late", 5, "m4", 0, node="n2", at=0.0)
    assert "late" not in tree


def test_arrival_times_name_the_first_node_and_the_delays_of_the_others() -> None:
    tree = BlockTree()
    genesis(tree)
    tree.add_block("a1", 1, "g", 0, node="n2", at=10.000)
    tree.add_block("a1", 1, "g", 0, node="n1", at=10.012)
    tree.add_block("a1", 1, "g", 0, node="n3", at=10.030)
    tree.add_block("a1", 1, "g", 0, node="n1", at=11.0)  # a second report changes nothing
    (block,) = [b for b in tree.view(5).blocks if b.hash == "a1"]
    assert block.first_node == "n2"
    assert block.seen_ms == {"n2": 0, "n1": 12, "n3": 30}
    (seeded,) = [b for b in tree.view(5).blocks if b.hash == "g"]
    assert seeded.first_node is None and seeded.seen_ms == {}


@pytest.mark.parametrize(
    ("seen", "links", "hops"),
    [
        pytest.param(
            {"a": 0.0, "b": 0.005, "c": 0.011},
            [("a", "b"), ("b", "c")],
            (Hop("a", "b", 5), Hop("b", "c", 11)),
            id="a line: each hop from the previous node",
        ),
        pytest.param(
            {"a": 0.0, "b": 0.004, "c": 0.006, "d": 0.009},
            [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")],
            (Hop("a", "b", 4), Hop("a", "c", 6), Hop("b", "d", 9)),
            id="a diamond: the far node from the neighbour that had it first",
        ),
        pytest.param(
            {"a": 0.0, "b": 0.003},
            [],
            (Hop("a", "b", 3),),
            id="links unknown: from the first node",
        ),
        pytest.param({"a": 0.0}, [("a", "b")], (), id="only the first node has it"),
        pytest.param({}, [], (), id="nobody has it"),
    ],
)
def test_a_blocks_spread_hop_by_hop(
    seen: dict[str, float], links: list[tuple[str, str]], hops: tuple[Hop, ...]
) -> None:
    assert spread(seen, links) == hops


def test_views_and_bounds_refuse_nonsense() -> None:
    with pytest.raises(ValueError):
        BlockTree(keep_heights=0)
    with pytest.raises(ValueError):
        BlockTree().view(0)
    empty = BlockTree().view(10)
    assert empty.best is None and empty.blocks == () and empty.collapsed.blocks == 0
