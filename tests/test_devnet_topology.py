"""Devnet topologies, partitions and the link policies that enforce both.

* each shape has exactly the links its name promises, for every network size;
* ``random:K`` is connected, gives every node at least min(K, N-1) neighbours, and is the same
  network for the same seed (and another one for another seed);
* a partition is parsed from ``A,B C,D`` words, nodes named nowhere form one more group, and
  mistakes are refused with the reason;
* the blocked set of each node is exactly its non-neighbours plus the other groups' nodes.
"""

from __future__ import annotations

from collections import deque

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.devnet.state import DevnetError
from node.devnet.topology import (
    Shape,
    Topology,
    blocked_peers,
    neighbours,
    parse_partition,
)


def names(count: int) -> list[str]:
    return [f"n{i + 1}" for i in range(count)]


def connected(count: int, edges: tuple[tuple[int, int], ...]) -> bool:
    seen = {0}
    queue = deque([0])
    while queue:
        node = queue.popleft()
        for other in neighbours(edges, node):
            if other not in seen:
                seen.add(other)
                queue.append(other)
    return len(seen) == count


# -- parsing

PARSED = {
    "line": Topology(Shape.LINE),
    "ring": Topology(Shape.RING),
    "mesh": Topology(Shape.MESH),
    "random:3": Topology(Shape.RANDOM, 3),
    " random:1 ": Topology(Shape.RANDOM, 1),
}


@pytest.mark.parametrize(("text", "topology"), PARSED.items())
def test_topologies_parse_and_print_back(text: str, topology: Topology) -> None:
    assert Topology.parse(text) == topology
    assert Topology.parse(str(topology)) == topology


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("star", "unknown topology"),
        ("random", "random:K"),
        ("random:0", "random:K"),
        ("random:-1", "random:K"),
        ("random:x", "random:K"),
        ("random:²", "random:K"),
        ("ring:2", "only random takes a parameter"),
        ("", "unknown topology"),
    ],
)
def test_bad_topologies_are_refused_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(DevnetError, match=reason):
        Topology.parse(text)


# -- links


@pytest.mark.parametrize(
    ("shape", "count", "edges"),
    [
        ("line", 1, ()),
        ("line", 2, ((0, 1),)),
        ("line", 4, ((0, 1), (1, 2), (2, 3))),
        ("ring", 2, ((0, 1),)),
        ("ring", 3, ((0, 1), (0, 2), (1, 2))),
        ("ring", 5, ((0, 1), (0, 4), (1, 2), (2, 3), (3, 4))),
        ("mesh", 1, ()),
        ("mesh", 4, ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))),
    ],
)
def test_fixed_shapes_have_exactly_their_links(
    shape: str, count: int, edges: tuple[tuple[int, int], ...]
) -> None:
    assert Topology.parse(shape).edges(count, seed=0) == edges
    assert Topology.parse(shape).edges(count, seed=99) == edges


@given(count=st.integers(1, 30), degree=st.integers(1, 6), seed=st.integers(0, 2**32))
def test_random_networks_are_connected_with_enough_neighbours(
    count: int, degree: int, seed: int
) -> None:
    edges = Topology(Shape.RANDOM, degree).edges(count, seed)
    assert connected(count, edges)
    assert all(a < b < count for a, b in edges)
    for node in range(count):
        assert len(neighbours(edges, node)) >= min(degree, count - 1)


def test_random_networks_depend_on_the_seed_only() -> None:
    topology = Topology(Shape.RANDOM, 2)
    assert topology.edges(12, seed=7) == topology.edges(12, seed=7)
    assert len({topology.edges(12, seed=s) for s in range(10)}) > 1


# -- partitions


def test_a_partition_lists_its_groups_and_the_rest() -> None:
    assert parse_partition(["n1,n2", "n3"], names(5)) == (("n1", "n2"), ("n3",), ("n4", "n5"))
    assert parse_partition(["n1,n2", "n3,n4"], names(4)) == (("n1", "n2"), ("n3", "n4"))
    assert parse_partition(["n2"], names(3)) == (("n2",), ("n1", "n3"))


@pytest.mark.parametrize(
    ("words", "reason"),
    [
        (["n1,n9"], "no node 'n9'"),
        (["n1,n2", "n2,n3"], "n2 is named in two groups"),
        (["n1,n1"], "n1 is named in two groups"),
        (["n1,n2,n3,n4"], "at least two groups"),
        ([","], "empty group"),
    ],
)
def test_bad_partitions_are_refused_with_the_reason(words: list[str], reason: str) -> None:
    with pytest.raises(DevnetError, match=reason):
        parse_partition(words, names(4))


def test_each_node_blocks_its_non_neighbours() -> None:
    edges = Topology.parse("line").edges(4, 0)
    assert blocked_peers(names(4), edges, None) == {
        "n1": ("n3", "n4"),
        "n2": ("n4",),
        "n3": ("n1",),
        "n4": ("n1", "n2"),
    }


def test_a_partition_also_blocks_the_other_groups() -> None:
    edges = Topology.parse("mesh").edges(4, 0)
    groups = parse_partition(["n1,n2"], names(4))
    assert blocked_peers(names(4), edges, groups) == {
        "n1": ("n3", "n4"),
        "n2": ("n3", "n4"),
        "n3": ("n1", "n2"),
        "n4": ("n1", "n2"),
    }


@given(count=st.integers(2, 12), seed=st.integers(0, 1000), cut=st.integers(1, 11))
def test_blocking_is_symmetric(count: int, seed: int, cut: int) -> None:
    """A link is cut from both ends, or not at all: a one-sided block would still let the
    other side dial (and be refused only at the handshake)."""
    all_names = names(count)
    edges = Topology(Shape.RANDOM, 2).edges(count, seed)
    groups = parse_partition([",".join(all_names[: min(cut, count - 1)])], all_names)
    blocked = blocked_peers(all_names, edges, groups)
    for a in all_names:
        for b in blocked[a]:
            assert a in blocked[b]
