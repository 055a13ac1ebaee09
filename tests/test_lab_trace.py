"""The trace: typed events, their canonical lines, the digest, and the named topologies.

* the digest is SHA-256 over the canonical lines, each ending in a newline: anyone can check it
  from a dumped trace with ``sha256sum``;
* a trace dumped as JSON lines loads back to the same events and the same digest;
* a trace that keeps nothing still has the digest and the counts;
* a block a node stores off its active chain is traced as its own kind, with its hash, height
  and fork height: after a tie each side records the other's block;
* topologies: each named shape dials what its table says, ``random:K`` is connected and gives
  every node at least K peers, and a bad spec is refused with the choices.
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest

from node.lab import Simulation, simulate
from node.lab.errors import SimulationError
from node.lab.topology import topology
from node.lab.trace import Trace, TraceEvent, TraceKind

EVENTS = [
    TraceEvent(0.0, "", TraceKind.NODE_STARTED, (("height", 0),)),
    TraceEvent(600.25, "a", TraceKind.BLOCK_CONNECTED, (("hash", "00ab"), ("height", 1))),
    TraceEvent(601.5, "", TraceKind.PARTITION, (("groups", "a,b | c"),)),
    TraceEvent(1e6 / 3, "c", TraceKind.PEER_CONNECTED, (("peer", "a:40001"), ("inbound", True))),
]


def test_the_digest_is_sha256_of_the_canonical_lines() -> None:
    trace = Trace()
    for event in EVENTS:
        trace.record(event)
    expected = hashlib.sha256(b"".join(e.line().encode() + b"\n" for e in EVENTS)).hexdigest()
    assert trace.digest == expected
    assert EVENTS[1].line() == '[600.25,"a","block_connected",{"hash":"00ab","height":1}]'


def test_a_dumped_trace_loads_back_to_the_same_events_and_digest(tmp_path: Path) -> None:
    trace = Trace()
    for event in EVENTS:
        trace.record(event)
    trace.dump(tmp_path / "trace.jsonl")
    loaded = Trace.load(tmp_path / "trace.jsonl")
    assert loaded.events == trace.events
    assert loaded.digest == trace.digest
    assert loaded.of_kind(TraceKind.PARTITION) == [EVENTS[2]]
    assert EVENTS[3].get("inbound") is True and EVENTS[3].get("missing") is None


def test_a_trace_that_keeps_nothing_still_has_digest_and_counts() -> None:
    kept, digest_only = Trace(), Trace(keep=False)
    for event in EVENTS:
        kept.record(event)
        digest_only.record(event)
    assert digest_only.events == ()
    assert digest_only.digest == kept.digest
    assert len(digest_only) == len(EVENTS)
    assert digest_only.counts[TraceKind.NODE_STARTED] == 1


def test_after_a_tie_each_side_traces_the_others_block_as_a_side_block() -> None:
    async def body(sim: Simulation) -> None:
        await sim.add_node("a")
        await sim.add_node("b", connect=["a"])
        await sim.wait_connected()
        await sim.add_miner("west", node="a", share=0.5)
        await sim.add_miner("east", node="b", share=0.5)
        await sim.mine_on("west")
        assert await sim.settle()
        fork = sim.blocks[sim.tips()["a"]].height
        sim.partition(["a"], ["b"])
        await sim.mine_on("west")
        await sim.mine_on("east")
        await sim.run_for(60)
        tips = sim.tips()
        sim.heal()
        await sim.run_for(600)
        assert sim.tips() == tips  # a tie: each keeps the block it saw first
        sides = sim.trace.of_kind(TraceKind.SIDE_BLOCK)
        assert {(e.node, e.get("hash")) for e in sides} == {
            ("a", sim.blocks[tips["b"]].hash_hex),
            ("b", sim.blocks[tips["a"]].hash_hex),
        }
        assert all((e.get("height"), e.get("fork_height")) == (fork + 1, fork) for e in sides)
        # Traced as itself, not as a note saying which event it was.
        assert not [e for e in sim.trace.of_kind(TraceKind.NOTE) if e.get("event")]

    simulate(body, seed=5)


@pytest.mark.parametrize(
    ("spec", "dials"),
    [
        ("line", {"a": (), "b": ("a",), "c": ("b",), "d": ("c",)}),
        ("ring", {"a": ("d",), "b": ("a",), "c": ("b",), "d": ("c",)}),
        ("star", {"a": (), "b": ("a",), "c": ("a",), "d": ("a",)}),
        ("mesh", {"a": (), "b": ("a",), "c": ("a", "b"), "d": ("a", "b", "c")}),
    ],
)
def test_named_topologies_dial_what_their_table_says(
    spec: str, dials: dict[str, tuple[str, ...]]
) -> None:
    assert topology(spec, ["a", "b", "c", "d"], random.Random(1)) == dials


@pytest.mark.parametrize("degree", [1, 3, 8])
def test_random_topologies_are_connected_and_give_each_node_k_peers(degree: int) -> None:
    names = [f"n{i}" for i in range(40)]
    dials = topology(f"random:{degree}", names, random.Random(degree))
    peers: dict[str, set[str]] = {name: set() for name in names}
    for name, targets in dials.items():
        for target in targets:
            assert target != name and name not in peers[target], "each link is dialled once"
            peers[name].add(target)
            peers[target].add(name)
    assert all(len(p) >= degree for p in peers.values())
    reached, frontier = {"n0"}, ["n0"]
    while frontier:
        for peer in peers[frontier.pop()] - reached:
            reached.add(peer)
            frontier.append(peer)
    assert reached == set(names)
    assert topology(f"random:{degree}", names, random.Random(degree)) == dials


@pytest.mark.parametrize("spec", ["tree", "random", "random:0", "random:x", "line:2"])
def test_a_bad_topology_is_refused_with_the_choices(spec: str) -> None:
    with pytest.raises(SimulationError, match=r"topolog"):
        topology(spec, ["a", "b"], random.Random(1))
