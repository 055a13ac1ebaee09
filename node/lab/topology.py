"""Who dials whom: the named topologies of the fork lab.

A topology is a spec string and a list of node names; the result maps each name to the names
it dials (its outbound peers, redialled by the node itself when a connection drops). Each
connection is made once: if ``a`` dials ``b``, ``b`` does not also dial ``a``.

==============  =====================================================================
``line``        each node dials the one before it: the longest path for relay
``ring``        a line whose last node also dials the first
``star``        every node dials the first (a hub)
``mesh``        every node dials every node before it: all pairs connected
``random:K``    each node dials K others chosen at random, the first of them among the
                nodes before it, so the graph is always connected (Bitcoin's outbound
                peers are random too; K = 8 is its default)
==============  =====================================================================

What this module does not do: set latencies (links are the network's business) or start nodes.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence

from node.lab.errors import SimulationError

TOPOLOGIES = ("line", "ring", "star", "mesh", "random:K")


def topology(spec: str, names: Sequence[str], rng: random.Random) -> dict[str, tuple[str, ...]]:
    """Outbound peers of each of ``names`` for the topology ``spec`` (see the module table)."""
    if len(set(names)) != len(names):
        raise SimulationError("node names must be distinct")
    kind, colon, arg = spec.partition(":")
    if colon and kind != "random":
        raise SimulationError(f"topology {kind!r} takes no argument; got {spec!r}")
    dials: dict[str, list[str]] = {name: [] for name in names}
    if kind in ("line", "ring"):
        for before, name in itertools.pairwise(names):
            dials[name].append(before)
        if kind == "ring" and len(names) > 2:
            dials[names[0]].append(names[-1])
    elif kind == "star":
        for name in names[1:]:
            dials[name].append(names[0])
    elif kind == "mesh":
        for i, name in enumerate(names):
            dials[name].extend(names[:i])
    elif kind == "random":
        _random(dials, names, _degree(spec, arg), rng)
    else:
        raise SimulationError(f"unknown topology {spec!r}; choose one of {', '.join(TOPOLOGIES)}")
    return {name: tuple(peers) for name, peers in dials.items()}


def _degree(spec: str, arg: str) -> int:
    if not arg.isdigit() or int(arg) < 1:
        raise SimulationError(f"topology {spec!r}: random:K needs a whole number K >= 1")
    return int(arg)


def _random(
    dials: dict[str, list[str]], names: Sequence[str], degree: int, rng: random.Random
) -> None:
    linked: set[tuple[str, str]] = set()

    def link(a: str, b: str) -> None:
        dials[a].append(b)
        linked.add((a, b))
        linked.add((b, a))

    for i, name in enumerate(names[1:], start=1):
        link(name, names[rng.randrange(i)])
    for name in names:
        others = [n for n in names if n != name and (name, n) not in linked]
        rng.shuffle(others)
        for other in others[: max(0, degree - len(dials[name]))]:
            link(name, other)
