"""Miner strategies, step by step: each case forces who finds the next block (``mine_on``) and
checks what the network ends up with.

Selfish mining (Eyal and Sirer's state machine), on ``hub`` <- ``view-b``, ``hub`` <- ``pool``,
honest miners working from view-b and announcing at the hub::

    lead 2, honest finds one      -> the pool publishes both and wins; the honest block is stale
    lead 1, honest finds one      -> a race; honest finds the next -> honest wins
    lead 1, honest finds one      -> a race; the pool finds the next -> the pool wins
    lead 4, honest finds three    -> the pool matches each, then publishes the rest and wins

Censorship, on ``a`` (honest alice) and ``b`` (the censor): by policy the censor leaves carol's
payment out of its blocks (others confirm it); refusing to build on blocks that include it,
the censor orphans them if it outpaces the honest miners, and gives up after ``give_up_after``.

Double spend, on ``a`` (honest), ``m`` (the merchant's node) and ``x`` (the attacker): the
attacker pays, the merchant waits for 2 confirmations and delivers, the attacker's private
branch with a refund overtakes and replaces the payment; or it falls behind and gives up.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from node.core.tx import COIN, OutPoint, Transaction
from node.lab import (
    AttackPhase,
    Censoring,
    DoubleSpend,
    Honest,
    Selfish,
    Simulation,
    simulate,
)

RELAY = 5.0
"""Virtual seconds after a forced block for every reaction and relay to finish."""


async def found(sim: Simulation, miner: str, count: int = 1) -> list[bytes]:
    """Make ``miner`` find ``count`` blocks, letting the network react after each."""
    hashes = []
    for _ in range(count):
        before = len(sim.blocks)
        await sim.mine_on(miner)
        hashes.append(list(sim.blocks)[before])
        await sim.run_for(RELAY)
    return hashes


def main_chain(sim: Simulation, node: str) -> list[bytes]:
    return [record.hash for record in sim.main_chain(sim.node(node).tip)]


# -- selfish mining


def selfish_case(steps: Callable[[Simulation, Selfish], Awaitable[None]]) -> None:
    async def body(sim: Simulation) -> None:
        await sim.add_node("hub")
        await sim.add_node("view-b", connect=["hub"])
        await sim.add_node("pool", connect=["hub"])
        await sim.wait_connected()
        strategy = Selfish(publish_via=["hub"])
        await sim.add_miner("selfish", node="pool", share=0.3, strategy=strategy)
        honest = Honest(work_node="view-b", submit_to="hub")
        await sim.add_miner("honest", node="hub", share=0.7, strategy=honest)
        await steps(sim, strategy)

    simulate(body, seed=3)


def test_selfish_lead_of_two_publishes_both_when_honest_finds_one() -> None:
    async def steps(sim: Simulation, selfish: Selfish) -> None:
        s1, s2 = await found(sim, "selfish", 2)
        assert sim.node("hub").height == 0 and selfish.lead == 2
        [h1] = await found(sim, "honest")
        assert main_chain(sim, "hub") == [s1, s2]
        assert sim.converged() and h1 not in main_chain(sim, "view-b")
        assert selfish.branch == []

    selfish_case(steps)


def test_selfish_race_is_lost_when_honest_finds_the_next_block() -> None:
    async def steps(sim: Simulation, selfish: Selfish) -> None:
        [s1] = await found(sim, "selfish")
        [h1] = await found(sim, "honest")
        assert s1 in selfish.published  # the race is on
        assert main_chain(sim, "view-b") == [h1]  # view-b heard the honest block first
        [h2] = await found(sim, "honest")
        assert main_chain(sim, "hub") == [h1, h2]
        assert sim.node("selfish.private").tip == h2  # the pool adopted the public chain
        assert selfish.branch == []

    selfish_case(steps)


def test_selfish_race_is_won_when_the_pool_finds_the_next_block() -> None:
    async def steps(sim: Simulation, selfish: Selfish) -> None:
        [s1] = await found(sim, "selfish")
        [h1] = await found(sim, "honest")
        [s2] = await found(sim, "selfish")
        assert main_chain(sim, "hub") == [s1, s2]
        assert sim.converged() and h1 not in main_chain(sim, "view-b")

    selfish_case(steps)


def test_selfish_long_lead_matches_each_honest_block_then_wins() -> None:
    async def steps(sim: Simulation, selfish: Selfish) -> None:
        pool = await found(sim, "selfish", 4)
        [h1] = await found(sim, "honest")
        assert selfish.published == {pool[0]}
        [h2] = await found(sim, "honest")
        assert selfish.published == {pool[0], pool[1]}
        assert main_chain(sim, "view-b") == [h1, h2]  # the matched blocks did not win (yet)
        await found(sim, "honest")
        assert main_chain(sim, "hub") == pool
        assert sim.converged()

    selfish_case(steps)


# -- censorship


def censor_case(
    censor: Censoring, steps: Callable[[Simulation, Censoring, Transaction], Awaitable[None]]
) -> None:
    async def body(sim: Simulation) -> None:
        await sim.add_node("a")
        await sim.add_node("b", connect=["a"])
        await sim.wait_connected()
        await sim.add_miner("alice", node="a", share=0.5)
        await sim.add_miner("censor", node="b", share=0.5, strategy=censor)
        await found(sim, "alice", 102)  # two coinbases of alice's are mature
        to_carol = await sim.pay("alice", "carol", 5 * COIN, node="a")
        await sim.run_for(RELAY)
        await steps(sim, censor, to_carol)

    simulate(body, seed=5)


async def confirmed(sim: Simulation, node: str, tx: Transaction) -> bool:
    return await sim.node(node).query(
        lambda chain, _m: chain.get_coin(OutPoint(tx.txid, 0)) is not None
    )


async def block_txids(sim: Simulation, node: str, block_hash: bytes) -> list[bytes]:
    block = await sim.node(node).require().get_block(block_hash)
    assert block is not None
    return list(block.txids)


def test_a_censor_leaves_the_transaction_out_and_others_confirm_it() -> None:
    async def steps(sim: Simulation, censor: Censoring, to_carol: Transaction) -> None:
        to_dave = await sim.pay("alice", "dave", 3 * COIN, node="a")
        await sim.run_for(RELAY)
        [by_censor] = await found(sim, "censor")
        txids = await block_txids(sim, "b", by_censor)
        assert to_dave.txid in txids and to_carol.txid not in txids
        assert not await confirmed(sim, "a", to_carol)
        [by_alice] = await found(sim, "alice")
        assert to_carol.txid in await block_txids(sim, "a", by_alice)
        assert await confirmed(sim, "b", to_carol)

    censor_case(Censoring(["carol"]), steps)


def test_a_censor_that_outpaces_the_others_orphans_the_block_that_confirms_it() -> None:
    async def steps(sim: Simulation, censor: Censoring, to_carol: Transaction) -> None:
        [confirming] = await found(sim, "alice")
        assert await confirmed(sim, "a", to_carol)
        assert censor.refused == [confirming]
        ours = await found(sim, "censor", 2)
        assert main_chain(sim, "a")[-2:] == ours  # the censor's branch won
        assert confirming not in main_chain(sim, "a")
        assert not await confirmed(sim, "a", to_carol)
        in_pool = await sim.node("a").query(lambda _c, mempool: to_carol.txid in mempool)
        assert in_pool  # back in the mempool, waiting for an honest block

    censor_case(Censoring(["carol"], orphan=True), steps)


def test_a_censor_gives_up_once_the_others_are_far_enough_ahead() -> None:
    async def steps(sim: Simulation, censor: Censoring, to_carol: Transaction) -> None:
        confirming, _, last = await found(sim, "alice", 3)
        assert censor.refused == [confirming]
        [ours] = await found(sim, "censor")
        assert sim.blocks[ours].parent == last  # it builds on the chain it refused, now
        assert await confirmed(sim, "b", to_carol)

    censor_case(Censoring(["carol"], orphan=True, give_up_after=2), steps)


# -- double spend


def double_spend_case(
    steps: Callable[[Simulation, DoubleSpend], Awaitable[None]],
) -> None:
    async def body(sim: Simulation) -> None:
        await sim.add_node("a")
        await sim.add_node("m", connect=["a"])
        await sim.add_node("x", connect=["a"])
        await sim.wait_connected()
        await sim.add_miner("honest", node="a", share=0.6)
        attack = DoubleSpend(
            merchant="merchant",
            amount=10 * COIN,
            start_height=102,
            merchant_node="m",
            confirmations=2,
            give_up_behind=3,
        )
        await sim.add_miner("attacker", node="x", share=0.4, strategy=attack)
        await found(sim, "attacker", 102)
        assert attack.phase is AttackPhase.MINING and attack.payment is not None
        await steps(sim, attack)

    simulate(body, seed=7)


def test_a_double_spend_replaces_the_payment_after_the_merchant_delivered() -> None:
    async def steps(sim: Simulation, attack: DoubleSpend) -> None:
        assert attack.payment is not None and attack.refund is not None
        await found(sim, "honest", 2)
        assert attack.delivered_at is not None
        assert await confirmed(sim, "m", attack.payment)
        await found(sim, "attacker", 3)
        assert attack.phase is AttackPhase.RELEASED
        assert await attack.succeeded(sim)
        assert not await confirmed(sim, "m", attack.payment)
        assert await confirmed(sim, "m", attack.refund)
        assert sim.reorgs[2] >= 1

    double_spend_case(steps)


def test_a_double_spend_that_falls_behind_is_abandoned() -> None:
    async def steps(sim: Simulation, attack: DoubleSpend) -> None:
        assert attack.payment is not None
        await found(sim, "attacker")
        await found(sim, "honest", 4)
        assert attack.phase is AttackPhase.ABANDONED
        assert not await attack.succeeded(sim)
        assert await confirmed(sim, "m", attack.payment)
        [honest_again] = await found(sim, "attacker")
        assert honest_again in main_chain(sim, "m")  # back to mining on the public chain

    double_spend_case(steps)
