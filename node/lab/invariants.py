"""Invariants: what must hold after any run, whatever the scenario did to the network.

The fuzzer checks them after every random scenario; any scenario may list them
(``invariants = [...]``), and a shrunk fuzzer case does, so replaying it checks the same.

Before checking, the network gets its chance to recover: mining stops, the partition is
healed, every node that is down is restarted, and the network runs until every node is on one
tip. If it is not by then, one more block is mined on the node with the most work (two branches
of equal work are a tie that only the next block breaks, on a real network too) and the network
runs again, up to :data:`TIE_BREAKS` times (a selfish pool answers a block with one it kept back,
which ties again). Then:

===============  ===========================================================================
name             what must hold
===============  ===========================================================================
``converge``     every public node is on one tip, and it has the most work of any valid tip
                 any public node knows
``utxo-replay``  every running node's UTXO set equals a replay of its active chain
                 (:meth:`~node.chainstate.ChainState.verify`), private nodes included
``supply``       no running node holds more coins than the subsidy schedule has issued up to
                 its height
``unique-tx``    no transaction appears twice on any running node's active chain
``no-crash``     no node logged an error (a failure it survived); a simulation that itself
                 failed is reported as a crash of the run, which also violates this
===============  ===========================================================================

Tests may :func:`register` more (an invariant that a chosen run violates on purpose shows that
the fuzzer finds, shrinks and replays a failure exactly); a replay must register them too.

What this module does not do: generate runs (:mod:`node.lab.fuzz`) or run steps.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from node.chainstate import ChainState
from node.core.chain import TipStatus
from node.core.hashing import hash_hex
from node.core.mempool import Mempool
from node.lab.analysis import ON_DEMAND
from node.lab.mining import Miner
from node.lab.outcome import InvariantOutcome
from node.lab.scenario import ScenarioError

if TYPE_CHECKING:
    from node.lab.runner_sim import SimRunner

SETTLE_TIMEOUT = 6 * 3600.0
"""Virtual seconds the network gets to converge (reconnection backoffs can be long)."""
TIE_BREAKS = 20
"""Blocks mined, one at a time, to break ties. A selfish pool answers each with a block it kept
back, making a new tie, until it has none left; twenty outlast any lead a fuzzer case builds."""

Check = Callable[["SimRunner"], Awaitable[list[str]]]
T = TypeVar("T")


@dataclass(frozen=True)
class Invariant:
    name: str
    description: str
    check: Check


_REGISTRY: dict[str, Invariant] = {}


def register(invariant: Invariant) -> None:
    if invariant.name in _REGISTRY:
        raise ValueError(f"there is already an invariant called {invariant.name}")
    _REGISTRY[invariant.name] = invariant


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def registered() -> tuple[Invariant, ...]:
    return tuple(_REGISTRY.values())


def resolve(names: Iterable[str]) -> tuple[Invariant, ...]:
    """The invariants called ``names``; ScenarioError for a name nobody registered."""
    found = []
    for name in names:
        invariant = _REGISTRY.get(name)
        if invariant is None:
            raise ScenarioError(
                f"no invariant {name!r} (invariants: {', '.join(_REGISTRY)})",
                section="scenario",
                key="invariants",
            )
        found.append(invariant)
    return tuple(found)


async def check_invariants(runner: SimRunner, names: Iterable[str]) -> tuple[InvariantOutcome, ...]:
    """Let the network recover (module docstring), then check each invariant of ``names``."""
    invariants = resolve(names)
    if not invariants:
        return ()
    await recover(runner)
    outcomes = []
    for invariant in invariants:
        outcomes.append(InvariantOutcome(invariant.name, tuple(await invariant.check(runner))))
    return tuple(outcomes)


async def recover(runner: SimRunner) -> None:
    sim = runner.sim
    sim.note("invariants: heal, restart every node, settle")
    await sim.stop_mining()
    sim.heal()
    for name in runner.scenario.node_names:
        if not sim.node(name).up:
            await sim.restart(name)
    for _ in range(TIE_BREAKS):
        if await sim.settle(SETTLE_TIMEOUT):
            return
        best = max(sim.public_nodes(), key=lambda n: (n.require().tip.chain_work, n.name))
        payee = f"{ON_DEMAND}{best.name}"
        miner = Miner(payee, 0.0, sim.pubkey_hash(payee))
        sim.note("invariants: one more block breaks the tie", on=best.name)
        await sim.publish(miner, await sim.build_block(best.name, miner), best.name)


# ----------------------------------------------------------------------------------- checks


async def _converge(runner: SimRunner) -> list[str]:
    sim = runner.sim
    tips = runner.tips()
    if len({t.hash for t in tips.values()}) > 1:
        shown = ", ".join(f"{n} at {t.height} {hash_hex(t.hash)[:16]}" for n, t in tips.items())
        return [f"the nodes are on different tips after healing: {shown}"]

    def most_work(chain: ChainState, _mempool: Mempool) -> int:
        valid = (TipStatus.ACTIVE, TipStatus.VALID_FORK, TipStatus.VALID_HEADERS)
        works = [
            entry.chain_work
            for tip in chain.chain_tips()
            if tip.status in valid and (entry := chain.get_entry(tip.hash)) is not None
        ]
        return max(works)

    problems = []
    for node in sim.public_nodes():
        work = await node.query(most_work)
        tip = tips[node.name]
        if work > tip.chain_work:
            problems.append(
                f"{node.name} knows a valid branch with more work ({work}) than the tip "
                f"everyone is on ({tip.chain_work})"
            )
    return problems


async def _on_running_nodes(
    runner: SimRunner, read: Callable[[ChainState, Mempool], T]
) -> list[tuple[str, T]]:
    """``read`` on every running node's chain (private nodes included), with the node's name."""
    return [(node.name, await node.query(read)) for node in runner.sim.nodes.values() if node.up]


async def _utxo_replay(runner: SimRunner) -> list[str]:
    reports = await _on_running_nodes(runner, lambda chain, _m: chain.verify())
    return [f"{name}: {report.summary()}" for name, report in reports if not report.ok]


async def _supply(runner: SimRunner) -> list[str]:
    params = runner.sim.params

    def coins(chain: ChainState, _mempool: Mempool) -> tuple[int, int]:
        return chain.height, sum(coin.value for _, coin in chain.store.iter_coins())

    problems = []
    for name, (height, total) in await _on_running_nodes(runner, coins):
        issued = params.supply_at(height)
        if total > issued:
            problems.append(
                f"{name} holds {total} units at height {height}, "
                f"but the schedule has issued {issued}"
            )
    return problems


async def _unique_tx(runner: SimRunner) -> list[str]:
    def duplicates(chain: ChainState, _mempool: Mempool) -> list[str]:
        seen: dict[bytes, int] = {}
        found = []
        for height in range(1, chain.height + 1):
            block_hash = chain.block_hash_at(height)
            block = chain.get_block(block_hash) if block_hash is not None else None
            if block is None:
                found.append(f"no block at height {height}")
                continue
            for txid in block.txids:
                if txid in seen:
                    found.append(f"{hash_hex(txid)} at heights {seen[txid]} and {height}")
                seen[txid] = height
        return found

    return [
        f"{name}: {problem}"
        for name, problems in await _on_running_nodes(runner, duplicates)
        for problem in problems
    ]


async def _no_crash(runner: SimRunner) -> list[str]:
    return [
        f"at {e.time:.3f} s {e.logger} logged: {e.message}"
        + (f" ({e.exception})" if e.exception else "")
        for e in runner.sim.errors
    ]


_BUILT_IN = (
    Invariant("converge", "one tip with the most work on every node after healing", _converge),
    Invariant("utxo-replay", "every UTXO set equals a replay of its chain", _utxo_replay),
    Invariant("supply", "no coin beyond the subsidy schedule", _supply),
    Invariant("unique-tx", "no transaction twice on one chain", _unique_tx),
    Invariant("no-crash", "no node logged an error", _no_crash),
)
for _invariant in _BUILT_IN:
    register(_invariant)

DEFAULT_INVARIANTS = tuple(invariant.name for invariant in _BUILT_IN)
