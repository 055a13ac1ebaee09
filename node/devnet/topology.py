"""Who talks to whom in a devnet: the topology's links, partitions, and the link policy of each
node that enforces both.

A devnet node is told its neighbours (``addnode``), but nodes also gossip addresses and would
soon dial everyone. So the topology is *kept* by the same mechanism as a partition: each node's
:class:`~node.p2p.links.LinkPolicy` blocks every devnet node that is not its neighbour, and a
partition blocks, on top, every node of another group. Healing returns to the topology alone.
Address gossip can then never add a link, and a killed neighbour's slot is not taken by a
stranger.

=============  ==========================================================================
topology       links between nodes 0..N-1
=============  ==========================================================================
``line``       i -- i+1: the longest path, so a block crosses N-1 hops
``ring``       the line plus N-1 -- 0 (from three nodes on)
``mesh``       every pair
``random:K``   a random spanning tree (so the network is connected), then random extra
               links until every node has at least min(K, N-1) neighbours; seeded
=============  ==========================================================================

Everything here is a pure function of names, counts and a seed: no process, socket or clock.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from node.devnet.state import DevnetError

Edge = tuple[int, int]
"""A link between two node indexes, lower first."""


class Shape(enum.Enum):
    LINE = "line"
    RING = "ring"
    MESH = "mesh"
    RANDOM = "random"


@dataclass(frozen=True)
class Topology:
    shape: Shape
    degree: int = 0
    """For ``random:K``: the least number of neighbours each node gets (K)."""

    @classmethod
    def parse(cls, text: str) -> Topology:
        """``line``, ``ring``, ``mesh`` or ``random:K``; DevnetError for anything else."""
        name, sep, arg = text.strip().partition(":")
        try:
            shape = Shape(name)
        except ValueError:
            raise DevnetError(
                f"unknown topology {text!r}: choose line, ring, mesh or random:K"
            ) from None
        if shape is Shape.RANDOM:
            if not (sep and arg.isascii() and arg.isdigit() and int(arg) >= 1):
                raise DevnetError(
                    f"topology {text!r}: write random:K with K >= 1 (the least neighbours per node)"
                )
            return cls(shape, int(arg))
        if sep:
            raise DevnetError(f"topology {text!r}: only random takes a parameter (random:K)")
        return cls(shape)

    def __str__(self) -> str:
        return f"random:{self.degree}" if self.shape is Shape.RANDOM else self.shape.value

    def edges(self, count: int, seed: int) -> tuple[Edge, ...]:
        """The links of a network of ``count`` nodes, sorted; ``seed`` only matters for random."""
        if self.shape is Shape.LINE:
            links = {(i, i + 1) for i in range(count - 1)}
        elif self.shape is Shape.RING:
            links = {(i, i + 1) for i in range(count - 1)}
            if count >= 3:
                links.add((0, count - 1))
        elif self.shape is Shape.MESH:
            links = {(i, j) for i in range(count) for j in range(i + 1, count)}
        else:
            links = _random_edges(count, min(self.degree, count - 1), seed)
        return tuple(sorted(links))


def _edge(a: int, b: int) -> Edge:
    return (a, b) if a < b else (b, a)


def _random_edges(count: int, degree: int, seed: int) -> set[Edge]:
    rng = random.Random(seed)
    order = list(range(count))
    rng.shuffle(order)
    links: set[Edge] = set()
    # A random recursive tree: each node links to one placed before it, so all are connected.
    for position in range(1, count):
        links.add(_edge(order[position], order[rng.randrange(position)]))
    neighbours = {i: {j for edge in links if i in edge for j in edge if j != i} for i in order}
    for node in order:
        while len(neighbours[node]) < degree:
            candidates = sorted(set(range(count)) - neighbours[node] - {node})
            other = rng.choice(candidates)
            links.add(_edge(node, other))
            neighbours[node].add(other)
            neighbours[other].add(node)
    return links


def neighbours(edges: Iterable[Edge], index: int) -> list[int]:
    """The indexes linked to ``index``, ascending."""
    return sorted(b if a == index else a for a, b in edges if index in (a, b))


def parse_partition(words: Sequence[str], names: Sequence[str]) -> tuple[tuple[str, ...], ...]:
    """Groups from ``A,B C,D`` words; nodes named in no group form one more group.

    DevnetError for an empty group, an unknown name, a name in two groups, or fewer than two
    groups in all.
    """
    groups = []
    for word in words:
        group = tuple(part.strip() for part in word.split(",") if part.strip())
        if not group:
            raise DevnetError(f"empty group {word!r}: write node names separated by commas")
        groups.append(group)
    return complete_partition(groups, names)


def complete_partition(
    groups: Iterable[Sequence[str]], names: Sequence[str]
) -> tuple[tuple[str, ...], ...]:
    """``groups`` of node names plus one more of the nodes they leave out, checked.

    DevnetError for an unknown name, a name in two groups, or fewer than two groups in all.
    The one rule for the command line and the dashboard alike.
    """
    known = set(names)
    seen: set[str] = set()
    complete: list[tuple[str, ...]] = []
    for group in groups:
        for name in group:
            if name not in known:
                raise DevnetError(f"no node {name!r} in this devnet (nodes: {', '.join(names)})")
            if name in seen:
                raise DevnetError(f"node {name} is named in two groups")
            seen.add(name)
        complete.append(tuple(group))
    rest = tuple(name for name in names if name not in seen)
    if rest:
        complete.append(rest)
    if len(complete) < 2:
        raise DevnetError(
            "a partition needs at least two groups, two sides that cannot reach each other "
            "(nodes not named form one)"
        )
    return tuple(complete)


def blocked_peers(
    names: Sequence[str],
    edges: Iterable[Edge],
    partition: Sequence[Sequence[str]] | None,
) -> dict[str, tuple[str, ...]]:
    """For each node, the devnet nodes its link policy must refuse: every node that is not its
    neighbour in the topology, and every node of another partition group."""
    edge_set = set(edges)
    group_of: dict[str, int] = {}
    for number, group in enumerate(partition or ()):
        for name in group:
            group_of[name] = number
    blocked: dict[str, tuple[str, ...]] = {}
    for i, name in enumerate(names):
        refused = []
        for j, other in enumerate(names):
            if i == j:
                continue
            linked = _edge(i, j) in edge_set
            same_side = group_of.get(name) == group_of.get(other)
            if not (linked and same_side):
                refused.append(other)
        blocked[name] = tuple(refused)
    return blocked
