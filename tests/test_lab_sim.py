"""The Simulation's own API: nodes, links, crashes, wallets, the trace and its mistakes.

* honest miners on a line of nodes: every node ends on the same chain, and the records say who
  found which block and when each node connected it;
* a partition splits the chain in two; after the heal every node reorganises onto the branch
  with the most work (its UTXO set still a replay of its chain), and the trace shows the
  partition, the heal and the reorganisations;
* a killed node's peers see it go at once; restarted from its data directory it resumes where
  it was, and a node without one starts from genesis and syncs again;
* a node whose wall clock is far ahead sees everyone's blocks and mines blocks the others
  refuse as too far in the future (the rule is the node's, the clock is the simulation's);
* payments go through wallets named in the simulation, and a wallet without coins says so;
* errors the nodes log (failures they survive) are collected and traced;
* mistakes are refused with a sentence: unknown or duplicate names, mining with no miner,
  restarting a running node, a Simulation made outside its loop.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from node.core.errors import WalletError
from node.core.tx import COIN
from node.lab import LinkSpec, Simulation, SimulationError, TraceKind, simulate


async def line(sim: Simulation, count: int) -> list[str]:
    names = [f"n{i}" for i in range(count)]
    for before, name in zip([None, *names], names, strict=False):
        await sim.add_node(name, connect=[before] if before else [])
    await sim.wait_connected()
    return names


def test_honest_miners_on_a_line_agree_and_the_records_tell_who_and_when() -> None:
    async def body(sim: Simulation) -> None:
        names = await line(sim, 5)
        sim.set_link("n1", "n2", LinkSpec(latency=2.0))
        await sim.add_miner("left", node="n0", share=0.5)
        await sim.add_miner("right", node="n4", share=0.5)
        await sim.mine(30)
        assert await sim.settle()
        chain = sim.main_chain()
        assert [r.height for r in chain] == list(range(1, len(chain) + 1))
        assert {r.miner for r in chain} == {"left", "right"}
        first = chain[0]
        assert first.published_at == first.found_at
        assert set(first.arrivals) == set(names)
        # n0 and n4 are four hops apart, one of them 2 s long.
        finder = "n0" if first.miner == "left" else "n4"
        other = "n4" if finder == "n0" else "n0"
        assert first.arrivals[other] - first.arrivals[finder] >= 2.0
        assert sim.miners["left"].blocks_found + sim.miners["right"].blocks_found == 30

    simulate(body, seed=11)


def test_a_partition_forks_the_chain_and_the_heal_converges_on_the_most_work() -> None:
    async def body(sim: Simulation) -> None:
        await line(sim, 4)
        await sim.add_miner("west", node="n0", share=0.3)
        await sim.add_miner("east", node="n3", share=0.7)
        await sim.mine(5)
        assert await sim.settle()
        sim.partition(["n0", "n1"], ["n2", "n3"])
        await sim.mine_on("west")
        for _ in range(3):
            await sim.mine_on("east")
        await sim.run_for(60)
        tips = sim.tips()
        assert tips["n0"] == tips["n1"] != tips["n2"] == tips["n3"]
        sim.heal()
        assert await sim.settle()
        assert sim.node("n0").tip == tips["n3"]
        kinds = [e.kind for e in sim.trace]
        assert kinds.index(TraceKind.PARTITION) < kinds.index(TraceKind.HEAL)
        reorgs = [e for e in sim.trace.of_kind(TraceKind.REORG) if e.node in ("n0", "n1")]
        assert {e.get("depth") for e in reorgs} == {1}
        for node in sim.public_nodes():  # every UTXO set is a replay of its chain
            report = await node.query(lambda chain, _m: chain.verify())
            assert report.ok, report.summary()

    simulate(body, seed=12)


def test_a_restarted_node_resumes_from_its_data_directory_or_resyncs_from_genesis() -> None:
    async def body(sim: Simulation) -> None:
        await sim.add_node("a")
        await sim.add_node("kept", connect=["a"], persistent=True)
        await sim.add_node("wiped", connect=["a"])
        await sim.wait_connected()
        await sim.add_miner("pool", node="a", share=1.0)
        await sim.mine(20)
        assert await sim.settle()
        await sim.kill("kept")
        await sim.kill("wiped")
        await sim.run_for(1)
        assert len(sim.node("a").require().peers()) == 0  # their connections were reset
        await sim.mine(5)
        kept = await sim.restart("kept")
        wiped = await sim.restart("wiped")
        assert kept.height == 20 and wiped.height == 0
        assert await sim.settle()
        assert kept.height == wiped.height == 25
        started = sim.trace.of_kind(TraceKind.NODE_STARTED)
        assert [e.get("height") for e in started if e.node == "kept"] == [0, 20]

    simulate(body, seed=13)


def test_a_node_with_its_clock_far_ahead_mines_blocks_the_others_refuse() -> None:
    async def body(sim: Simulation) -> None:
        await sim.add_node("a")
        await sim.add_node("ahead", connect=["a"], clock_offset=3 * 3600)
        await sim.wait_connected()
        await sim.add_miner("fast", node="ahead", share=1.0)
        await sim.mine_on("fast")
        await sim.run_for(60)
        assert sim.node("ahead").height == 1
        assert sim.node("a").height == 0  # more than two hours in its future

    simulate(body, seed=14)


def test_wallets_pay_each_other_and_an_empty_wallet_says_so() -> None:
    async def body(sim: Simulation) -> None:
        await line(sim, 2)
        await sim.add_miner("alice", node="n0", share=1.0)
        await sim.mine(101)
        tx = await sim.pay("alice", "bob", 7 * COIN, node="n1")
        assert tx.outputs[0].pubkey_hash == sim.pubkey_hash("bob")
        assert sim.pubkey_hash(sim.address("bob")) == sim.pubkey_hash("bob")
        await sim.mine(1)
        assert await sim.settle()
        balance = await sim.node("n0").query(
            lambda chain, _m: sum(
                c.value for _, c in chain.coins_for(sim.wallet("bob").pubkey_hashes)
            )
        )
        assert balance == 7 * COIN
        with pytest.raises(WalletError, match="insufficient funds"):
            await sim.pay("carol", "bob", COIN, node="n0")
        sent = sim.trace.of_kind(TraceKind.TX_SENT)
        assert [e.get("txid") for e in sent] == [tx.txid_hex]

    simulate(body, seed=15)


def test_errors_the_nodes_log_are_collected_and_traced() -> None:
    async def body(sim: Simulation) -> None:
        await sim.add_node("a")
        assert sim.errors == []
        try:
            raise ValueError("a bug")
        except ValueError:
            logging.getLogger("forklab.p2p").exception("internal error with a peer")
        logging.getLogger("forklab.p2p").warning("only a warning")
        [error] = sim.errors
        assert (error.logger, error.message, error.exception) == (
            "forklab.p2p",
            "internal error with a peer",
            "ValueError",
        )
        [traced] = sim.trace.of_kind(TraceKind.LOG_ERROR)
        assert traced.get("exception") == "ValueError"

    simulate(body, seed=17)
    # Closed, the simulation no longer listens.
    assert all(type(h).__name__ != "_ErrorCollector" for h in logging.getLogger("forklab").handlers)


def test_mistakes_are_refused_with_a_sentence() -> None:
    async def body(sim: Simulation) -> None:
        await sim.add_node("a")
        with pytest.raises(SimulationError, match="taken"):
            await sim.add_node("a")
        with pytest.raises(SimulationError, match="colon"):
            await sim.add_node("b:1")
        with pytest.raises(SimulationError, match="no node called 'zed'"):
            sim.node("zed")
        with pytest.raises(SimulationError, match="no miner can mine"):
            await sim.mine(1)
        await sim.add_miner("pool", node="a", share=1.0)
        with pytest.raises(SimulationError, match="already a miner"):
            await sim.add_miner("pool", node="a", share=1.0)
        with pytest.raises(SimulationError, match="already running"):
            await sim.restart("a")
        with pytest.raises(SimulationError, match="no miner called"):
            await sim.mine_on("nobody")
        await sim.kill("a")
        with pytest.raises(SimulationError, match="a is down"):
            sim.node("a").require()

    simulate(body, seed=16)

    async def outside() -> None:
        Simulation(seed=1)

    with pytest.raises(SimulationError, match="VirtualTimeLoop"):
        asyncio.run(outside())
