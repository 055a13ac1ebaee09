"""Run a scenario in the simulator: real nodes, virtual time, a result that is a function of
the seed.

:func:`run_scenario` builds the scenario's network in a :class:`~node.lab.sim.Simulation`:

1. the nodes, each dialling its earlier neighbours in the topology, with the links' properties
   (the default latency on every other link), and waits until every link is up;
2. the funding blocks, mined on the first node, paying the wallets in turn (``funding``);
3. the miners with their strategies (after funding, so a strategy's private node starts from
   the funded chain);
4. the steps, in order; each is also a note in the trace (``step 3: heal``), so the trace
   reads as the story and its digest covers the timeline;
5. the invariants, if the scenario lists any (:mod:`node.lab.invariants`).

A step that cannot be done (a node already down, a wallet without coins, a double spend a node
refuses) is a failure, or is skipped if the scenario says ``step_errors = "skip"``; the steps go
on either way. A failure of the simulation itself (a strategy that raised, a node's task that
died) ends the run: it is the result's ``crash``.

Conditions are polled in virtual time, every second or every 1/2000 of the wait's timeout if
that is longer, so a long wait stays cheap.

**Stopping.** ``stop`` (a :class:`threading.Event`, set from another thread or a signal
handler) ends a run at once, not at the end of a step: a thread of the runner's waits for the
event and hands the simulation's loop an interrupt (``call_soon_threadsafe``; the virtual loop
never blocks in real time, so it runs within one iteration), which cancels the set-up or the
step under way. The step says ``stopped``, so do the steps not begun; invariants are not
checked, the tree is analysed as it is, and the nodes are closed as usual. Nothing is added to
the simulation before the event is set, so a run's trace is the same with or without ``stop``.

What this module does not do: decide what a step means on real nodes
(:mod:`node.lab.runner_real`) or render the result (:mod:`node.lab.report`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections import Counter

from node.chainstate import ChainState
from node.core.block import Block
from node.core.errors import AddressError, RuleError, WalletError
from node.core.mempool import Mempool
from node.core.tx import Transaction
from node.events import BlockConnected, Event, Reorg
from node.lab import strategies
from node.lab.analysis import FUNDING, ON_DEMAND, Analysis, BlockInfo, SentTx, TipView, analyse
from node.lab.conditions import Condition, Evaluation, Facts, Needs, Value
from node.lab.errors import SimulationError
from node.lab.interrupts import Interrupter, StopWatch
from node.lab.invariants import check_invariants, resolve
from node.lab.mining import Miner
from node.lab.network import LinkSpec
from node.lab.nodes import SIM_P2P
from node.lab.outcome import (
    STOPPED_DURING,
    InvariantOutcome,
    ScenarioResult,
    Status,
    StepCallback,
    StepOutcome,
    StepStartCallback,
    assert_outcome,
    stopped_steps,
)
from node.lab.scenario import (
    Assert,
    Censoring,
    DoubleSpend,
    Heal,
    Honest,
    Kill,
    Mine,
    MinerDecl,
    Note,
    Partition,
    Restart,
    Scenario,
    Selfish,
    Send,
    SetLatency,
    SetShare,
    Step,
    Wait,
)
from node.lab.sim import Simulation, simulate
from node.lab.trace import Trace
from node.p2p import P2PConfig
from node.wallet.payment import build_payment

STEP_FAILURES = (SimulationError, WalletError, RuleError, AddressError)
"""What a step that cannot be done raises (as opposed to a bug, which is a crash)."""

SETTLE_TIMEOUT = 3600.0
CONNECT_TIMEOUT = 600.0
POLLS_PER_WAIT = 2000


class Crash(Exception):  # noqa: N818 (it is the event, not an error class of ours)
    """The simulation itself failed during a step; the run ends."""


def run_scenario(
    scenario: Scenario,
    *,
    seed: int | None = None,
    trace: Trace | None = None,
    on_step: StepCallback | None = None,
    on_step_start: StepStartCallback | None = None,
    stop: threading.Event | None = None,
) -> ScenarioResult:
    """Run ``scenario`` in the simulator (with ``seed``, else the scenario's own); ``stop``
    set from another thread ends it early (its steps say ``stopped``)."""
    resolve(scenario.invariants)  # an unknown invariant is an error before anything runs
    run_seed = scenario.seed if seed is None else seed
    trace = trace if trace is not None else Trace(keep=False)
    started = time.perf_counter()

    async def body(sim: Simulation) -> ScenarioResult:
        runner = SimRunner(sim, scenario, on_step, on_step_start=on_step_start, stop=stop)
        crash = None
        invariants: tuple[InvariantOutcome, ...] = ()
        limit = scenario.time_limit
        deadline = asyncio.timeout(limit)
        analysis: Analysis | None = None
        duration = 0.0
        try:
            async with deadline, StopWatch(stop, runner.interrupt):
                try:
                    await runner.setup()
                    await runner.run_steps()
                    if not runner.stopped:
                        invariants = await check_invariants(runner, scenario.invariants)
                except Crash as exc:
                    crash = str(exc)
                analysis, duration = runner.analysis(), sim.now
                # Closed here, under the time limit: a node that never stops is a hang too.
                await sim.close()
        except TimeoutError:
            if not deadline.expired():
                raise
            crash = f"the run did not finish within {limit:g} s of simulated time (a hang)"
            if analysis is None:
                analysis, duration = runner.analysis(), sim.now
        return ScenarioResult(
            scenario=scenario,
            backend="simulator",
            seed=run_seed,
            steps=tuple(runner.outcomes),
            invariants=invariants,
            analysis=analysis,
            duration=duration,
            wall_seconds=time.perf_counter() - started,
            trace_digest=trace.digest,
            events=len(trace),
            crash=crash,
        )

    return simulate(
        body,
        seed=run_seed,
        params=scenario.network_params(),
        interval=scenario.interval,
        p2p=_p2p_for(scenario),
        default_link=LinkSpec(latency=scenario.latency),
        trace=trace,
    )


def slowest_link(scenario: Scenario) -> float:
    """The longest one-way latency any link of the scenario ever has, seconds."""
    return max(
        [scenario.latency]
        + [link.latency or 0.0 for link in scenario.links]
        + [s.seconds for s in scenario.steps if isinstance(s, SetLatency)]
    )


def _p2p_for(scenario: Scenario) -> P2PConfig:
    """The simulated nodes' P2P settings, with room in their timeouts for the slowest link.

    A handshake or a block request crosses it three or four times, and on a lossy link a lost
    frame costs a retransmission timeout of two crossings more: ten crossings make a timeout
    that only a run of losses exceeds (with 10% loss, about one handshake in a thousand).
    """
    slack = 10 * slowest_link(scenario)
    return dataclasses.replace(
        SIM_P2P,
        handshake_timeout=SIM_P2P.handshake_timeout + slack,
        block_timeout=SIM_P2P.block_timeout + slack,
        ping_timeout=SIM_P2P.ping_timeout + slack,
    )


def build_strategy(decl: MinerDecl) -> strategies.Strategy:
    spec = decl.strategy
    if isinstance(spec, Selfish):
        return strategies.Selfish(publish_via=spec.publish_via)
    if isinstance(spec, Censoring):
        return strategies.Censoring(
            spec.addresses, orphan=spec.orphan, give_up_after=spec.give_up_after
        )
    if isinstance(spec, DoubleSpend):
        return strategies.DoubleSpend(
            merchant=spec.merchant,
            amount=spec.amount,
            start_height=spec.start_height,
            merchant_node=spec.merchant_node,
            confirmations=spec.confirmations,
            give_up_behind=spec.give_up_behind,
            fee_rate=spec.fee_rate,
        )
    assert isinstance(spec, Honest)
    return strategies.Honest()


class SimRunner:
    """One scenario in one simulation: sets it up, runs its steps, and observes."""

    def __init__(
        self,
        sim: Simulation,
        scenario: Scenario,
        on_step: StepCallback | None = None,
        *,
        on_step_start: StepStartCallback | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.sim = sim
        self.scenario = scenario
        self.on_step = on_step
        self.on_step_start = on_step_start
        self.stop = stop
        self.interrupts = Interrupter()
        self.outcomes: list[StepOutcome] = []
        self.sends: list[SentTx] = []
        self.txs: dict[str, Transaction] = {}
        self.reorgs: Counter[int] = Counter()
        """Reorganisations of the scenario's (public) nodes, by depth."""
        self._blocks: dict[bytes, Block] = {}
        self._on_demand: dict[tuple[str, bytes], Miner] = {}
        self._public = frozenset(scenario.node_names)
        sim.listen(self._on_event)

    @property
    def first_node(self) -> str:
        return self.scenario.nodes[0].name

    def _on_event(self, node: str, event: Event) -> None:
        if isinstance(event, BlockConnected):
            self._blocks.setdefault(event.block.hash, event.block)
        elif isinstance(event, Reorg) and node in self._public:
            self.reorgs[event.depth] += 1

    # ------------------------------------------------------------------------------ setup

    @property
    def stopped(self) -> bool:
        """Whether :meth:`interrupt` ended the run (or ``stop`` was found set)."""
        return self.interrupts.stopped

    def interrupt(self) -> None:
        """End the run (on the simulation's loop): cancel the set-up or the step under way."""
        self.interrupts.interrupt()

    def _stop_asked(self) -> bool:
        if self.stop is not None and self.stop.is_set():
            self.interrupts.stopped = True
        return self.stopped

    async def setup(self) -> None:
        with self.interrupts.part():
            await self._setup()

    async def _setup(self) -> None:
        sim, scenario = self.sim, self.scenario
        for link in scenario.links:
            latency = scenario.latency if link.latency is None else link.latency
            sim.set_link(link.a, link.b, LinkSpec(latency, link.jitter, link.bandwidth, link.loss))
        edges = scenario.edges()
        for decl in scenario.nodes:
            await sim.add_node(
                decl.name,
                connect=[a for a, b in edges if b == decl.name],
                clock_offset=decl.clock_offset,
                persistent=decl.persistent,
            )
        # Every link is up before anything happens: give the slow ones their time.
        await sim.wait_connected(timeout=CONNECT_TIMEOUT + 100 * slowest_link(scenario))
        if scenario.wallets:
            count = scenario.funding_blocks()
            for n in range(count):
                wallet = scenario.wallets[n % len(scenario.wallets)]
                miner = Miner(FUNDING, 0.0, sim.wallet(wallet).change_pubkey_hash)
                block = await sim.build_block(self.first_node, miner)
                await sim.publish(miner, block, self.first_node)
            sim.note("wallets funded", wallets=",".join(scenario.wallets), blocks=count)
            if not await sim.settle(SETTLE_TIMEOUT):
                raise Crash("the funding blocks did not reach every node")
        for miner_decl in scenario.miners:
            await sim.add_miner(
                miner_decl.name,
                node=miner_decl.node,
                share=miner_decl.share,
                strategy=build_strategy(miner_decl),
            )

    # ------------------------------------------------------------------------------ steps

    async def run_steps(self) -> None:
        for index, step in enumerate(self.scenario.steps):
            if self._stop_asked():
                self.outcomes += stopped_steps(self.scenario, index, self.sim.now)
                return
            started = self.sim.now
            self.sim.note(f"step {index + 1}: {step.describe()}")
            if self.on_step_start is not None:
                self.on_step_start(index, step)
            with self.interrupts.part() as interrupted:
                try:
                    status, detail = await self._do(index, step)
                except STEP_FAILURES as exc:
                    self._raise_crash()
                    skip = self.scenario.step_errors == "skip"
                    status, detail = (Status.SKIPPED if skip else Status.FAILED), str(exc)
                    self.sim.note(f"step {index + 1} {status.value}", reason=type(exc).__name__)
            if interrupted.happened:
                self.sim.note(f"step {index + 1} stopped")
                status, detail = Status.STOPPED, STOPPED_DURING
            else:
                self._raise_crash()
            outcome = StepOutcome(index, step.kind, step.describe(), started, status, detail)
            self.outcomes.append(outcome)
            if self.on_step is not None:
                self.on_step(outcome)
            if interrupted.happened:
                self.outcomes += stopped_steps(self.scenario, index + 1, self.sim.now)
                return

    def _raise_crash(self) -> None:
        try:
            self.sim.check()
        except SimulationError as exc:
            raise Crash(str(exc)) from exc

    async def _do(self, index: int, step: Step) -> tuple[Status, str]:
        sim = self.sim
        if isinstance(step, Partition):
            named = {n for group in step.groups for n in group}
            rest = [n for n in self.scenario.node_names if n not in named]
            sim.partition(*step.groups, *([rest] if rest else []))
        elif isinstance(step, Heal):
            sim.heal()
        elif isinstance(step, Kill):
            await sim.kill(step.node)
        elif isinstance(step, Restart):
            await sim.restart(step.node)
        elif isinstance(step, SetLatency):
            sim.set_latency(step.a, step.b, step.seconds)
        elif isinstance(step, SetShare):
            sim.set_share(step.miner, step.share)
        elif isinstance(step, Send):
            await self._send(index, step)
        elif isinstance(step, Mine):
            await self._mine(step)
        elif isinstance(step, Wait):
            return await self._wait(step)
        elif isinstance(step, Assert):
            return assert_outcome(step, await self.evaluate(step.that))
        else:
            assert isinstance(step, Note)
        return Status.OK, ""

    async def _send(self, index: int, step: Send) -> None:
        sim = self.sim
        via = step.via or self.first_node
        fee_rate = 2 if step.fee_rate is None else step.fee_rate
        if step.conflicts is None:
            tx = await sim.pay(step.sender, step.to, step.amount, node=via, fee_rate=fee_rate)
        else:
            tx = await self._double_spend(step, via, fee_rate)
        label = step.label or f"send-{index + 1}"
        self.txs[label] = tx
        self.sends.append(SentTx(label, tx.txid, step.sender, step.to, step.amount, via, sim.now))

    async def _double_spend(self, step: Send, via: str, fee_rate: int) -> Transaction:
        """A payment spending the first coin of the send labelled ``step.conflicts``."""
        assert step.conflicts is not None
        sim = self.sim
        original = self.txs.get(step.conflicts)
        if original is None:
            raise WalletError(f"the send labelled {step.conflicts} was never made")
        wallet = sim.wallet(step.sender)
        prevout = original.inputs[0].prevout
        pay_to = sim.pubkey_hash(step.to)

        def build(chain: ChainState, _mempool: Mempool) -> Transaction:
            coin = chain.get_coin(prevout)
            if coin is None:
                raise WalletError(f"on {via}, the coin {step.conflicts} spends is already spent")
            key = wallet.key_for(coin.pubkey_hash)
            if key is None:
                raise WalletError(f"the coin {step.conflicts} spends is not {step.sender}'s")
            return build_payment(
                [(prevout, coin)],
                chain.height + 1,
                sim.params,
                keys={coin.pubkey_hash: key},
                pay_to=pay_to,
                amount=step.amount,
                fee_rate=fee_rate,
                change_to=wallet.change_pubkey_hash,
            ).tx

        node = sim.node(via)
        tx = await node.query(build)
        await node.require().submit_tx(tx)
        sim.note("double spend sent", txid=tx.txid_hex, conflicts=original.txid_hex)
        return tx

    async def _mine(self, step: Mine) -> None:
        sim = self.sim
        if step.node is not None:
            payee = step.to or f"{ON_DEMAND}{step.node}"
            payout = sim.pubkey_hash(payee)
            key = (step.node, payout)
            miner = self._on_demand.get(key)
            if miner is None:
                miner = self._on_demand[key] = Miner(f"{ON_DEMAND}{step.node}", 0.0, payout)
            for _ in range(step.blocks):
                block = await sim.build_block(step.node, miner)
                if not await sim.publish(miner, block, step.node):
                    raise SimulationError(f"{step.node} refused the block it was given to mine")
        elif step.miner is not None:
            for _ in range(step.blocks):
                await sim.mine_on(step.miner)
        else:
            await sim.mine(step.blocks)

    async def _wait(self, step: Wait) -> tuple[Status, str]:
        sim = self.sim
        if step.mining:
            sim.start_mining()
        try:
            if step.until is None:
                assert step.seconds is not None
                await sim.run_for(step.seconds)
                return Status.OK, ""
            return await self._wait_until(step.until, step.timeout)
        finally:
            if step.mining:
                await sim.stop_mining()

    async def _wait_until(self, condition: Condition, timeout: float) -> tuple[Status, str]:
        sim = self.sim
        poll = max(1.0, timeout / POLLS_PER_WAIT)
        deadline = sim.now + timeout
        while True:
            evaluation = await self.evaluate(condition)
            if evaluation.passed:
                return Status.OK, f"after {sim.now - (deadline - timeout):g} s"
            remaining = deadline - sim.now
            if remaining <= 0:
                return Status.FAILED, f"not within {timeout:g} s ({evaluation.describe()})"
            await sim.run_for(min(poll, remaining))

    # ---------------------------------------------------------------------------- observe

    def tips(self) -> dict[str, TipView]:
        return {
            n.name: TipView(
                n.require().tip.hash, n.require().tip.height, n.require().tip.chain_work
            )
            for n in self.sim.public_nodes()
        }

    def hash_shares(self) -> dict[str, float]:
        total = sum(m.share for m in self.sim.miners.values())
        return {name: (m.share / total if total else 0.0) for name, m in self.sim.miners.items()}

    def analysis(self) -> Analysis:
        sim = self.sim
        infos = [
            BlockInfo(
                record.hash,
                record.parent,
                record.height,
                record.miner,
                record.found_at,
                self._blocks.get(record.hash),
                tuple(sorted((n, t) for n, t in record.arrivals.items() if n in self._public)),
            )
            for record in sim.blocks.values()
        ]
        miners = [(name, sim.strategies[name].kind, m.share) for name, m in sim.miners.items()]
        return analyse(infos, self.tips(), reorgs=self.reorgs, miners=miners, sends=self.sends)

    async def evaluate(self, condition: Condition) -> Evaluation:
        return condition.evaluate(await self.facts(condition.needs()))

    async def facts(self, needs: Needs) -> Facts:
        sim = self.sim
        confirmations = {}
        for label, node in needs.confirmations:
            if node:
                confirmations[(label, node)] = await self.confirmations(label, node)
        strategy: dict[tuple[str, str], Value] = {}
        for miner, fact in needs.strategy:
            chosen = sim.strategies.get(miner)
            if fact == "attack_succeeded" and isinstance(chosen, strategies.DoubleSpend):
                strategy[(miner, fact)] = await chosen.succeeded(sim)
            elif fact == "refused_blocks" and isinstance(chosen, strategies.Censoring):
                strategy[(miner, fact)] = len(chosen.refused)
        return Facts(
            time=sim.now,
            params=sim.params,
            tips=self.tips(),
            reorgs=dict(self.reorgs),
            errors=len(sim.errors),
            hash_shares=self.hash_shares(),
            analysis=self.analysis() if needs.tree else None,
            peers={
                name: len(sim.node(name).require().peers()) if sim.node(name).up else 0
                for name in needs.peers
            },
            confirmations=confirmations,
            strategy=strategy,
        )

    async def confirmations(self, label: str, node: str) -> int:
        """Confirmations of the labelled transaction on ``node``'s chain (0 if down)."""
        tx = self.txs.get(label)
        sim_node = self.sim.node(node)
        if tx is None or not sim_node.up:
            return 0
        holders = [b for b in self._blocks.values() if tx.txid in b.txids]

        def count(chain: ChainState, _mempool: Mempool) -> int:
            for block in holders:
                entry = chain.get_entry(block.hash)
                if entry is not None and chain.block_hash_at(entry.height) == block.hash:
                    return chain.height - entry.height + 1
            return 0

        return await sim_node.query(count)
