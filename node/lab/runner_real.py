"""Run a scenario on real nodes: a devnet of node processes on loopback, from the same file.

:func:`run_real` makes a devnet for the scenario in a temporary directory (``forklab devnet``'s
machinery, :class:`~node.devnet.Devnet`), runs the steps against it, and takes it down, files
and all, whatever happens. The devnet's names are its own: the scenario's nodes become ``n1``,
``n2``... in order and its miners ``m1``, ``m2``...; reports use the scenario's names.

**Time.** A scenario is written in its own seconds, with blocks every ``interval`` (600 by
default); real nodes cannot wait ten minutes per block in a lesson. Every duration is scaled by
``block_time / interval`` (``block_time`` is the devnet's, 2 s by default): waits, timeouts,
latencies (so the ratio of latency to block interval, which decides the stale rate, is the
scenario's), and times in the report are given back in the scenario's seconds. A wait for a
condition gets at least :data:`MIN_TIMEOUT` real seconds, for real processes reconnect and sync
in real time.

**Hash power.** Miners are the devnet's paced miners with the scenario's shares; they run only
during ``mine`` steps without a node (until that many blocks are found) and ``wait`` steps with
``mining``, as hash power only works during those in the simulator. ``mine`` on a node uses
the node's ``generatetoaddress``.

**Strategies.** A censoring or double-spending miner is a paced miner on a node of its own, and
the runner is its pool's operator, reacting every few tens of milliseconds while the network
runs (:mod:`node.lab.real_strategies`, which also composes partitions with isolation).

**What real nodes cannot do** is listed for a scenario by :func:`unsupported`
(:mod:`node.lab.real_limits`); such a scenario is refused before any process starts.

**Observing.** Blocks are fetched from every running node (``getchaintips``, then each block not
seen before) whenever a condition needs the tree and at the end, so a block known only to a node
that is later killed is still counted; its time is when the runner first saw it. A block's
miner is read from the address its coinbase pays. The nodes do not report their
reorganisations over RPC; a branch a node once followed and left shows as a ``valid-fork`` tip,
so each such tip is counted as one reorganisation of its branch's length. Funding blocks are
found before the scenario starts.

**Stopping.** ``stop`` (a :class:`threading.Event`) is looked at between steps and every
:data:`~node.lab.real_strategies.REACT` seconds of every wait and ``mine`` by the miners; once it
is set the step under way ends (its miners stopped), it and the steps not begun say
``stopped``, the strategies undo what they changed and the tree is read as usual; a step that
is one blocking call (a node's restart, ``generatetoaddress``) finishes first.

What this module does not do: simulate anything, or keep a devnet running after the run (the
dashboard runs lessons on its own devnet with :class:`RealRunner`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from node.core.block import Block
from node.core.hashing import hash_from_hex, hash_hex
from node.core.params import NetworkParams, params_for
from node.devnet import Devnet, DevnetError, Progress, UpOptions
from node.devnet import wallets as devnet_wallets
from node.devnet.state import DevnetState
from node.lab import real_strategies
from node.lab.analysis import FUNDING, ON_DEMAND, Analysis, BlockInfo, SentTx, TipView, analyse
from node.lab.conditions import Condition, Evaluation, Facts, Needs
from node.lab.outcome import (
    STOPPED_DURING,
    ScenarioResult,
    Status,
    StepCallback,
    StepOutcome,
    StepStartCallback,
    assert_outcome,
    stopped_steps,
)
from node.lab.real_limits import unsupported as unsupported  # noqa: PLC0414 (re-exported)
from node.lab.real_strategies import Links, RealStrategy, Stopped
from node.lab.scenario import (
    NAME,
    Assert,
    Heal,
    Kill,
    Mine,
    Note,
    Partition,
    Restart,
    Scenario,
    ScenarioError,
    Send,
    SetLatency,
    SetShare,
    Step,
    Wait,
    format_coins,
)
from node.rpc.client import RpcCallError, RpcClient, RpcConnectionError
from node.wallet.wallet import Wallet

BLOCK_TIME = 2.0
"""Real seconds between blocks on the devnet, all miners together."""
MIN_TIMEOUT = 30.0
"""Real seconds a wait for a condition gets at least."""
POLL = 0.25
"""Real seconds between checks of a condition."""
CLIENTS_FOR = 0.5
"""Real seconds the runner trusts its list of running nodes."""


def run_real(
    scenario: Scenario,
    *,
    seed: int | None = None,
    block_time: float = BLOCK_TIME,
    workdir: Path | None = None,
    on_step: StepCallback | None = None,
    on_step_start: StepStartCallback | None = None,
    stop: threading.Event | None = None,
    progress: Progress | None = None,
) -> ScenarioResult:
    """Run ``scenario`` on a devnet made for it in ``workdir`` (a temporary directory by
    default), taken down (and wiped) at the end, also when ``stop`` ends it early.
    ScenarioError if it cannot run on real nodes."""
    reasons = unsupported(scenario)
    if reasons:
        raise ScenarioError(
            f"scenario {scenario.name} cannot run on real nodes: " + "; ".join(reasons)
        )
    run_seed = scenario.seed if seed is None else seed
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(
                stack.enter_context(tempfile.TemporaryDirectory(prefix="forklab-scenario-"))
            )
        devnet = Devnet(workdir / "devnet", progress or Progress(interactive=False))
        runner = RealRunner(
            scenario,
            devnet,
            block_time=block_time,
            on_step=on_step,
            on_step_start=on_step_start,
            stop=stop,
        )
        wall = time.perf_counter()
        try:
            runner.start(run_seed)
            result = runner.run(run_seed)
        finally:
            with contextlib.suppress(DevnetError):
                devnet.down(wipe=True)
        # The devnet's start and stop are part of what the run cost.
        return dataclasses.replace(result, wall_seconds=time.perf_counter() - wall)


@dataclass(frozen=True)
class _Names:
    """Scenario names and the devnet's."""

    nodes: dict[str, str]
    miners: dict[str, str]

    def node(self, name: str) -> str:
        return self.nodes[name]

    def wallet(self, name: str) -> str:
        """A wallet of the scenario (a miner's is the devnet miner's)."""
        return self.miners.get(name, name)


class RealRunner:
    """One scenario on one devnet (:meth:`start` makes the devnet, :meth:`run` runs the steps).

    The devnet may also be one that runs already (the dashboard's) if it has the scenario's
    shape: :meth:`run` alone then plays the steps on it.
    """

    def __init__(
        self,
        scenario: Scenario,
        devnet: Devnet,
        *,
        block_time: float = BLOCK_TIME,
        on_step: StepCallback | None = None,
        on_step_start: StepStartCallback | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.scenario = scenario
        self.devnet = devnet
        self.on_step = on_step
        self.on_step_start = on_step_start
        self.stop = stop
        self.scale = block_time / scenario.interval
        """Real seconds per second of the scenario."""
        self.block_time = block_time
        self.params: NetworkParams = params_for(scenario.network)
        self.names = _Names(
            {n.name: f"n{i}" for i, n in enumerate(scenario.nodes, 1)},
            {m.name: f"m{i}" for i, m in enumerate(scenario.miners, 1)},
        )
        self.outcomes: list[StepOutcome] = []
        self.sends: list[SentTx] = []
        self.txids: dict[str, bytes] = {}
        self.blocks: dict[bytes, BlockInfo] = {}
        self.forks: dict[tuple[str, bytes], int] = {}
        """(node, valid-fork tip) -> its branch's length: the reorganisations seen."""
        self.started = time.time()
        self._payees: dict[bytes, str] = {}
        self._wallets: frozenset[str] = frozenset()
        self._log_start: dict[str, int] = {}
        self._funding_height = 0
        self.links = Links(devnet, self.names.nodes)
        self._known_clients: tuple[float, dict[str, RpcClient]] | None = None
        self.strategies: dict[str, RealStrategy] = {}

    # ------------------------------------------------------------------------------ setup

    def start(self, seed: int) -> None:
        """Bring the devnet up with the scenario's nodes, topology, wallets and miners; the
        miners are stopped again at once (hash power works only in the steps that ask)."""
        s = self.scenario
        total = sum(m.share for m in s.miners)
        options = UpOptions(
            nodes=len(s.nodes),
            miners=len(s.miners),
            network=s.network,
            topology=s.topology,
            block_time=self.block_time / total if total else self.block_time,
            base_port=0,
            seed=seed,
            wallets=s.wallets or ("funding",),
            miner_shares=tuple(m.share for m in s.miners) if total else None,
            miner_nodes=tuple(self.names.node(m.node) for m in s.miners) or None,
            dashboard=False,
        )
        state = self.devnet.up(options)
        self._stop_miners(state)
        for link in s.links:
            latency = s.latency if link.latency is None else link.latency
            self._latency(link.a, link.b, latency)
        if s.latency:
            for a, b in s.edges():
                if not any({a, b} == {link.a, link.b} for link in s.links):
                    self._latency(a, b, s.latency)

    def _stop_miners(self, state: DevnetState) -> None:
        for miner in state.miners:
            with contextlib.suppress(DevnetError):
                self.devnet.kill(miner.name, term=True)

    def _latency(self, a: str, b: str, seconds: float) -> None:
        ms = min(600_000, round(seconds * self.scale * 1000))
        self.devnet.latency(self.names.node(a), self.names.node(b), ms)

    # ------------------------------------------------------------------------------ steps

    def run(self, seed: int) -> ScenarioResult:
        state = self.devnet.state()
        self._learn_payees(state)
        self._funding_height = (
            self.scenario.funding_blocks()
            if self.scenario.wallets
            else len(devnet_wallets.funding_payees(self.params, state.wallets))
        )
        self.observe()
        for name, devnet_name in self.names.nodes.items():
            with contextlib.suppress(OSError):
                self._log_start[name] = self.devnet.paths.log(devnet_name).stat().st_size
        self.started = time.time()
        wall = time.perf_counter()
        self.strategies = real_strategies.build(self, self.scenario.miners)
        try:
            for strategy in self.strategies.values():
                strategy.begin()
            self._steps()
            self.observe()
            analysis = self.analysis()
        finally:
            for strategy in self.strategies.values():
                with contextlib.suppress(DevnetError, RpcCallError, RpcConnectionError):
                    strategy.end()
        return ScenarioResult(
            scenario=self.scenario,
            backend="real",
            seed=seed,
            steps=tuple(self.outcomes),
            invariants=(),
            analysis=analysis,
            duration=self.now,
            wall_seconds=time.perf_counter() - wall,
            trace_digest=None,
            events=0,
        )

    def _steps(self) -> None:
        for index, step in enumerate(self.scenario.steps):
            if self.stop is not None and self.stop.is_set():
                self.outcomes += stopped_steps(self.scenario, index, self.now)
                return
            started = self.now
            if self.on_step_start is not None:
                self.on_step_start(index, step)
            try:
                status, detail = self._do(step)
                self._pause(0)
            except (DevnetError, RpcCallError, RpcConnectionError) as exc:
                skip = self.scenario.step_errors == "skip"
                status, detail = (Status.SKIPPED if skip else Status.FAILED), str(exc)
            except Stopped:
                status, detail = Status.STOPPED, STOPPED_DURING
            outcome = StepOutcome(index, step.kind, step.describe(), started, status, detail)
            self.outcomes.append(outcome)
            if self.on_step is not None:
                self.on_step(outcome)
            if status is Status.STOPPED:
                self.outcomes += stopped_steps(self.scenario, index + 1, self.now)
                return

    def _pause(self, seconds: float) -> None:
        """Let real ``seconds`` pass, the strategies reacting meanwhile; :class:`Stopped`
        once the run is asked to stop."""
        real_strategies.pause(seconds, list(self.strategies.values()), self.stop)

    @property
    def now(self) -> float:
        """Seconds of the scenario since the steps began."""
        return (time.time() - self.started) / self.scale

    def _do(self, step: Step) -> tuple[Status, str]:
        devnet, names = self.devnet, self.names
        if isinstance(step, Partition):
            self.links.partition(step.groups)
        elif isinstance(step, Heal):
            self.links.heal()
        elif isinstance(step, Kill):
            devnet.kill(names.node(step.node))
            self._known_clients = None
        elif isinstance(step, Restart):
            devnet.restart(names.node(step.node))
            self._known_clients = None
            for strategy in self.strategies.values():
                strategy.restarted(step.node)
        elif isinstance(step, SetLatency):
            self._latency(step.a, step.b, step.seconds)
        elif isinstance(step, Send):
            self._send(step)
        elif isinstance(step, Mine):
            self._mine(step)
        elif isinstance(step, Wait):
            return self._wait(step)
        elif isinstance(step, Assert):
            return assert_outcome(step, self.evaluate(step.that))
        else:
            assert isinstance(step, Note | SetShare)
        return Status.OK, ""

    def _send(self, step: Send) -> None:
        via = self.names.node(step.via or self.scenario.nodes[0].name)
        txid = self.devnet.send(
            self.names.wallet(step.sender),
            self.address(step.to),
            format_coins(step.amount),
            via=via,
            fee_rate=step.fee_rate,
        )
        label = step.label or f"send-{len(self.outcomes) + 1}"
        self.txids[label] = sent = hash_from_hex(txid)
        self.sends.append(SentTx(label, sent, step.sender, step.to, step.amount, via, self.now))

    def address(self, target: str) -> str:
        """A scenario name as the devnet's address for it (miners' wallets are ``mK``)."""
        if not NAME.fullmatch(target):
            return target  # an address already (the scenario checked it)
        return self.wallet(target).addresses()[0]

    def wallet(self, name: str) -> Wallet:
        """The devnet's wallet of a scenario name (a miner's is the devnet miner's)."""
        return devnet_wallets.wallet(self.params, self.names.wallet(name))

    def _mine(self, step: Mine) -> None:
        if step.node is not None:
            payee = (
                self.address(step.to)
                if step.to
                else _on_demand(self.params, step.node).addresses()[0]
            )
            self.devnet.mine(self.names.node(step.node), step.blocks, to=payee)
        elif step.miner is not None:
            miner = next(m for m in self.scenario.miners if m.name == step.miner)
            payee = self.address(step.miner)
            self.devnet.mine(self.names.node(miner.node), step.blocks, to=payee)
        if step.node is not None or step.miner is not None:
            # A block's time is when this runner first sees it: look now, or a later step's
            # observation would date these blocks (and the payments they confirm) late.
            self.observe()
        else:
            target = len(self.observe()) + step.blocks
            with self._mining():
                patience = max(MIN_TIMEOUT, 20 * step.blocks * self.block_time)
                deadline = time.monotonic() + patience
                while len(self.observe()) < target:
                    if time.monotonic() > deadline:
                        raise DevnetError(
                            f"the miners found {target - len(self.blocks)} blocks too few "
                            f"in {patience:g} s"
                        )
                    self._pause(POLL)

    @contextlib.contextmanager
    def _mining(self) -> Iterator[None]:
        for miner in self.devnet.state().miners:
            self.devnet.restart(miner.name)
        try:
            yield
        finally:
            self._stop_miners(self.devnet.state())

    def _wait(self, step: Wait) -> tuple[Status, str]:
        with self._mining() if step.mining else contextlib.nullcontext():
            if step.until is None:
                assert step.seconds is not None
                self._pause(step.seconds * self.scale)
                return Status.OK, ""
            started = self.now
            deadline = time.monotonic() + max(MIN_TIMEOUT, step.timeout * self.scale)
            while True:
                evaluation = self.evaluate(step.until)
                if evaluation.passed:
                    return Status.OK, f"after {self.now - started:g} s"
                if time.monotonic() > deadline:
                    return Status.FAILED, f"not in time ({evaluation.describe()})"
                self._pause(POLL)

    # ---------------------------------------------------------------------------- observe

    def _clients(self) -> dict[str, RpcClient]:
        """A client of every running node, by scenario name; looked up again after
        :data:`CLIENTS_FOR` seconds (strategies ask many times a second) or a kill or restart."""
        now = time.monotonic()
        if self._known_clients is None or now - self._known_clients[0] > CLIENTS_FOR:
            state = self.devnet.state()
            running = {n.name for n in self.devnet.running_nodes(state)}
            clients = {
                name: self.devnet.client(state, devnet_name, timeout=10)
                for name, devnet_name in self.names.nodes.items()
                if devnet_name in running
            }
            self._known_clients = (now, clients)
        return self._known_clients[1]

    def running(self) -> list[str]:
        return list(self._clients())

    def client(self, name: str) -> RpcClient | None:
        """An RPC client of node ``name`` (the scenario's name), None while it is down."""
        return self._clients().get(name)

    def _learn_payees(self, state: DevnetState) -> None:
        for name in self.names.miners:
            self._payees[self.wallet(name).change_pubkey_hash] = name
        for name in self.scenario.node_names:
            self._payees[_on_demand(self.params, name).change_pubkey_hash] = f"{ON_DEMAND}{name}"
        self._wallets = frozenset(state.wallets)
        for wallet in state.wallets:
            payee = devnet_wallets.wallet(self.params, wallet).change_pubkey_hash
            self._payees.setdefault(payee, wallet)

    def tips(self) -> dict[str, TipView]:
        tips = {}
        for name, client in self._clients().items():
            with contextlib.suppress(RpcConnectionError, RpcCallError):
                info = client.call("getblockchaininfo")
                tips[name] = TipView(
                    hash_from_hex(info["bestblockhash"]),
                    int(info["blocks"]),
                    int(info["chainwork"], 16),
                )
        return tips

    def public_tips(self) -> dict[str, TipView]:
        """The tips of the running nodes but pools' private ones (the simulator's public nodes)."""
        private = {s.private for s in self.strategies.values()}
        return {name: tip for name, tip in self.tips().items() if name not in private}

    def observe(self) -> dict[bytes, BlockInfo]:
        """Fetch every block a running node knows and this runner does not yet; the blocks."""
        for name, client in self._clients().items():
            try:
                tips = client.call("getchaintips")
            except (RpcConnectionError, RpcCallError):
                continue
            for tip in tips:
                if tip["status"] == "valid-fork":
                    self.forks[(name, hash_from_hex(tip["hash"]))] = int(tip["branchlen"])
                if tip["status"] in ("active", "valid-fork", "valid-headers"):
                    self._fetch(client, hash_from_hex(tip["hash"]))
        return self.blocks

    def _fetch(self, client: RpcClient, tip: bytes) -> None:
        walk = tip
        genesis = self.params.genesis_hash
        while walk != genesis and walk not in self.blocks:
            try:
                block = Block.deserialize(bytes.fromhex(client.call("getblock", hash_hex(walk), 0)))
            except (RpcCallError, RpcConnectionError):
                return
            height = block.transactions[0].coinbase_height or 0
            payee = block.transactions[0].outputs[0].pubkey_hash
            miner = self._payees.get(payee, payee.hex()[:8])
            if height <= self._funding_height and miner in self._wallets:
                miner = FUNDING
            # First seen, not the header's time: a header's whole seconds, pushed ahead of the
            # clock by the median-time rule when blocks come fast, are too coarse once scaled.
            found = max(0.0, self.now)
            self.blocks[walk] = BlockInfo(walk, block.header.prev_hash, height, miner, found, block)
            walk = block.header.prev_hash

    def reorgs(self) -> Counter[int]:
        """Reorganisations by depth; not an attacker's node leaving the private branch it
        abandoned (in the simulator that branch is on a node of the pool's own)."""
        depths: Counter[int] = Counter()
        for (node, tip), depth in self.forks.items():
            block = self.blocks.get(tip)
            strategy = self.strategies.get(block.miner) if block is not None else None
            if block is None or strategy is None or not strategy.abandoned(node, block):
                depths[depth] += 1
        return depths

    def analysis(self) -> Analysis:
        self.observe()
        miners = [(m.name, m.strategy.kind, m.share) for m in self.scenario.miners]
        tips, reorgs = self.public_tips(), self.reorgs()
        return analyse(self.blocks.values(), tips, reorgs=reorgs, miners=miners, sends=self.sends)

    def evaluate(self, condition: Condition) -> Evaluation:
        return condition.evaluate(self.facts(condition.needs()))

    def facts(self, needs: Needs) -> Facts:
        analysis = self.analysis() if needs.tree else None
        if analysis is None:
            self.observe()  # the reorganisations are read from the fork tips it finds
        tips = dict(analysis.tips) if analysis is not None else self.public_tips()
        total = sum(m.share for m in self.scenario.miners)
        return Facts(
            time=self.now,
            params=self.params,
            tips=tips,
            reorgs=dict(self.reorgs()),
            errors=self._logged_errors(),
            hash_shares={m.name: (m.share / total if total else 0.0) for m in self.scenario.miners},
            analysis=analysis,
            peers=self._peers(needs.peers),
            confirmations={
                (label, node): self._confirmations(label, node)
                for label, node in needs.confirmations
                if node
            },
            strategy=real_strategies.facts(self.strategies, needs.strategy),
        )

    def _logged_errors(self) -> int:
        """ERROR lines the nodes logged since the steps began (the simulator's ``errors``)."""
        count = 0
        for name, devnet_name in self.names.nodes.items():
            path = self.devnet.paths.log(devnet_name)
            with contextlib.suppress(OSError), path.open("rb") as log:
                log.seek(self._log_start.get(name, 0))
                count += sum(1 for line in log if b" ERROR " in line)
        return count

    def _peers(self, names: Sequence[str] | frozenset[str]) -> dict[str, int]:
        peers = dict.fromkeys(names, 0)
        for name, client in self._clients().items():
            if name in peers:
                with contextlib.suppress(RpcConnectionError, RpcCallError):
                    peers[name] = len(client.call("getpeerinfo"))
        return peers

    def _confirmations(self, label: str, node: str) -> int:
        txid = self.txids.get(label)
        client = self._clients().get(node)
        if txid is None or client is None:
            return 0
        for block in self.blocks.values():
            if txid in block.txids:
                try:
                    on_chain = client.call("getblockhash", block.height) == hash_hex(block.hash)
                    height = int(client.call("getblockcount"))
                except (RpcCallError, RpcConnectionError):
                    continue
                if on_chain:
                    return height - block.height + 1
        return 0


def _on_demand(params: NetworkParams, node: str) -> Wallet:
    """The wallet blocks a ``mine`` step makes on ``node`` pay (the simulator's ``@NODE``)."""
    return Wallet.from_seed(params, f"forklab-lab/{ON_DEMAND}{node}".encode())
