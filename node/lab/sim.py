"""The simulation: real nodes on virtual time, simulated wires and simulated hash power.

A :class:`Simulation` owns, for one seeded run:

- a :class:`~node.lab.network.SimNetwork` (the wires) and one
  :class:`~node.node.Node` per simulated node, each with its own runtime: a
  :class:`~node.lab.vtime.VirtualClock`, a ``random.Random`` derived from the run's seed and
  the node's name, the node's transport on the network, and inline execution (no threads). The
  node code is the real one, unchanged; only what the runtime injects differs;
- the miners and the :class:`~node.lab.mining.HashScheduler` that decides who finds the next
  block and when; each miner's :class:`~node.lab.strategies.Strategy` decides what the block
  is built on and who hears of it;
- the :class:`~node.lab.trace.Trace`, and a :class:`~node.lab.records.BlockRecord` per block
  found.

Everything random is drawn from generators derived from the seed by name
(:func:`derive_rng`), so adding a node does not change the draws of another, and the same seed
gives the same trace. Run it with :func:`simulate`::

    async def body(sim: Simulation) -> int:
        await sim.add_node("a")
        await sim.add_node("b", connect=["a"])
        await sim.add_miner("pool", node="a", share=1.0)
        await sim.mine(10)
        await sim.settle()
        return sim.node("b").height

    simulate(body, seed=1)  # 10, every time

Nodes are addressed by name; a node listens at ``NAME:PORT`` on the simulated network and its
host name is its name, so links and partitions are set between names.

What this module does not do: parse scenario files or decide strategies; it is the engine and
the API they drive. The nodes themselves are in :mod:`node.lab.nodes`, the block records and
the errors collected in :mod:`node.lab.records`, the wallets in :mod:`node.lab.wallets`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import random
import tempfile
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from node.chainstate import template_on_tip
from node.core.address import encode_address
from node.core.block import Block
from node.core.hashing import hash_hex
from node.core.params import REGTEST, NetworkParams
from node.core.template import BlockTemplate
from node.core.tx import Transaction
from node.events import BlockConnected, Event, Reorg
from node.lab.errors import SimulationError
from node.lab.mining import HashScheduler, Miner, grind
from node.lab.network import LinkSpec, SimNetwork
from node.lab.nodes import SIM_P2P, NodeSpec, SimNode, TapBus
from node.lab.records import (
    WATCHED_LOGGERS,
    BlockRecord,
    ErrorCollector,
    LoggedError,
    chain_to,
    describe,
)
from node.lab.strategies import Honest, Strategy
from node.lab.trace import Trace, TraceEvent, TraceKind, Value
from node.lab.vtime import VirtualClock, VirtualTimeLoop, run_virtual
from node.lab.wallets import SimWallets
from node.node import Node, NodeConfig
from node.p2p import P2PConfig
from node.runtime import InlineExecutor, Runtime
from node.wallet.wallet import Wallet

T = TypeVar("T")

NodeListener = Callable[[str, Event], None]

DEFAULT_INTERVAL = 600.0
"""Seconds between blocks when the miners' shares add up to 1 (Bitcoin's ten minutes)."""

EPOCH_OFFSET = 3600
"""Virtual time 0 is this many seconds after the network's genesis time."""


def derive_rng(seed: int, label: str) -> random.Random:
    """An independent generator for ``label`` ("node/a", "mining") of the run ``seed``."""
    digest = hashlib.sha256(f"forklab-lab/{seed}/{label}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


class Simulation:
    """One seeded run; create it inside :func:`simulate` (it needs the virtual-time loop)."""

    def __init__(
        self,
        *,
        seed: int = 0,
        params: NetworkParams = REGTEST,
        interval: float = DEFAULT_INTERVAL,
        p2p: P2PConfig = SIM_P2P,
        default_link: LinkSpec | None = None,
        trace: Trace | None = None,
        workdir: Path | None = None,
    ) -> None:
        loop = asyncio.get_running_loop()
        if not isinstance(loop, VirtualTimeLoop):
            raise SimulationError("a Simulation runs on a VirtualTimeLoop; use simulate()")
        self.loop = loop
        self.seed = seed
        self.params = params
        self.p2p = p2p
        self.epoch = float(params.genesis_time + EPOCH_OFFSET)
        self.clock = VirtualClock(loop, self.epoch)
        self.trace = trace if trace is not None else Trace()
        self.network = SimNetwork(
            self.clock, derive_rng(seed, "network"), default_link=default_link
        )
        self.nodes: dict[str, SimNode] = {}
        self.blocks: dict[bytes, BlockRecord] = {}
        self.reorgs: Counter[int] = Counter()
        """Reorganisation depth -> how many times a node went through one."""
        self.scheduler = HashScheduler(
            derive_rng(seed, "mining"), interval, self._on_found, self._can_mine
        )
        self.strategies: dict[str, Strategy] = {}
        self._listeners: list[NodeListener] = []
        self.wallets = SimWallets(params)
        self._workdir = workdir
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        self._tasks: list[asyncio.Future[Any]] = []
        self._failure: asyncio.Future[BaseException] = loop.create_future()
        self._mining: asyncio.Future[None] | None = None
        self._recording = True
        self._closed = False
        self.errors: list[LoggedError] = []
        """Errors the nodes (or asyncio) logged during the run, in order."""
        self._collector = ErrorCollector(self._on_log)
        for name in WATCHED_LOGGERS:
            logging.getLogger(name).addHandler(self._collector)

    # ------------------------------------------------------------------------------- time

    @property
    def now(self) -> float:
        """Virtual seconds since the simulation began."""
        return self.loop.time()

    async def run_for(self, seconds: float) -> None:
        await self.run_until(lambda: False, timeout=seconds)

    async def run_until(
        self, predicate: Callable[[], bool], *, timeout: float, poll: float = 1.0
    ) -> bool:
        """Let the network run until ``predicate()`` holds (True) or ``timeout`` passes (False).

        The predicate is checked every ``poll`` virtual seconds.
        """
        deadline = self.now + timeout
        while True:
            self.check()
            if predicate():
                return True
            remaining = deadline - self.now
            if remaining <= 0:
                return False
            await asyncio.sleep(min(poll, remaining))

    def check(self) -> None:
        """Raise the failure of a background task (a strategy, the scheduler), if any."""
        if self._failure.done():
            error = self._failure.result()
            raise SimulationError(f"the simulation failed: {error}") from error

    def spawn(self, awaitable: Awaitable[Any]) -> asyncio.Future[Any]:
        """Run ``awaitable`` in the background; its failure fails the simulation."""
        task = asyncio.ensure_future(awaitable)
        self._tasks.append(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Future[Any]) -> None:
        self._tasks.remove(task)
        if task.cancelled():
            return
        error = task.exception()
        if error is not None and not self._failure.done():
            self._failure.set_result(error)

    async def _wait(self, task: asyncio.Future[T]) -> T:
        waiting: list[asyncio.Future[Any]] = [task, self._failure]
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        self.check()
        return task.result()

    # ------------------------------------------------------------------------------- nodes

    async def add_node(
        self,
        name: str,
        *,
        connect: Iterable[str] = (),
        clock_offset: float = 0.0,
        persistent: bool = False,
        private: bool = False,
        p2p: P2PConfig | None = None,
    ) -> SimNode:
        """Create and start a node; ``connect`` names nodes it dials (they may come later)."""
        spec = NodeSpec(name, tuple(connect), clock_offset, persistent, private, p2p)
        return await self.add(spec)

    async def add(self, spec: NodeSpec) -> SimNode:
        if not spec.name or ":" in spec.name or spec.name in self.nodes:
            raise SimulationError(f"node name {spec.name!r} is empty, has a colon or is taken")
        if spec.private and spec.connect:
            raise SimulationError(f"private node {spec.name} cannot dial anyone")
        address = f"{spec.name}:{self.params.default_p2p_port}"
        clock = VirtualClock(self.loop, self.epoch, spec.clock_offset)
        sim_node = SimNode(spec, address, clock)
        if spec.persistent:
            sim_node.datadir = self._scratch() / spec.name
        self.nodes[spec.name] = sim_node
        await self._start(sim_node)
        return sim_node

    def node(self, name: str) -> SimNode:
        try:
            return self.nodes[name]
        except KeyError:
            raise SimulationError(f"there is no node called {name!r}") from None

    def public_nodes(self) -> list[SimNode]:
        """Running nodes of the public network (private ones left out)."""
        return [n for n in self.nodes.values() if n.up and not n.spec.private]

    async def _start(self, sim_node: SimNode) -> None:
        spec = sim_node.spec
        base = spec.p2p if spec.p2p is not None else self.p2p
        p2p = dataclasses.replace(
            base,
            listen=None if spec.private else sim_node.address,
            connect=tuple(f"{peer}:{self.params.default_p2p_port}" for peer in spec.connect),
            max_outbound=len(spec.connect),
            user_agent=f"/forklab-lab:{spec.name}/",
        )
        runtime = Runtime(
            sim_node.clock,
            derive_rng(self.seed, f"node/{spec.name}/{sim_node.incarnation}"),
            self.network.transport(spec.name),
            InlineExecutor(),
        )
        config = NodeConfig(self.params, sim_node.datadir, p2p)
        node = Node(
            config, runtime, bus=TapBus(lambda event: self._on_node_event(spec.name, event))
        )
        await node.start()
        sim_node.node = node
        self._record(spec.name, TraceKind.NODE_STARTED, height=node.height)
        self.scheduler.changed()

    async def kill(self, name: str) -> None:
        """Crash a node: its connections are reset at once, then it is shut down."""
        sim_node = self.node(name)
        node = sim_node.require()
        self.network.reset_host(name)
        sim_node.node = None
        self.scheduler.changed()
        await node.stop()
        self._record(name, TraceKind.NODE_KILLED)

    async def restart(self, name: str) -> SimNode:
        """Start a killed node again (from its data directory if it is persistent)."""
        sim_node = self.node(name)
        if sim_node.up:
            raise SimulationError(f"node {name} is already running")
        sim_node.incarnation += 1
        await self._start(sim_node)
        return sim_node

    def _scratch(self) -> Path:
        if self._workdir is not None:
            return self._workdir
        if self._tempdir is None:
            self._tempdir = tempfile.TemporaryDirectory(prefix="forklab-lab-")
        return Path(self._tempdir.name)

    # ------------------------------------------------------------------------------- links

    def set_link(self, a: str, b: str, spec: LinkSpec, *, both_ways: bool = True) -> None:
        self.network.set_link(a, b, spec, both_ways=both_ways)
        self._record("", TraceKind.LINK, a=a, b=b, latency=spec.latency, both_ways=both_ways)

    def set_latency(self, a: str, b: str, seconds: float) -> None:
        self.network.set_latency(a, b, seconds)
        self._record("", TraceKind.LINK, a=a, b=b, latency=seconds, both_ways=True)

    def partition(self, *groups: Sequence[str]) -> None:
        """Cut every link between different groups; their connections are reset."""
        for group in groups:
            for name in group:
                self.node(name)
        self.network.partition(*(list(group) for group in groups))
        self._record("", TraceKind.PARTITION, groups=" | ".join(",".join(g) for g in groups))

    def heal(self) -> None:
        """Restore every cut link; nodes reconnect on their own, with their usual backoff."""
        self.network.heal()
        self._record("", TraceKind.HEAL)

    # ------------------------------------------------------------------------------- mining

    async def add_miner(
        self, name: str, *, node: str, share: float, strategy: Strategy | None = None
    ) -> Miner:
        """A miner with ``share`` of the reference hash rate, working through ``node``."""
        if name in self.strategies:
            raise SimulationError(f"there is already a miner called {name}")
        if share < 0:
            raise SimulationError(f"a hash share cannot be negative, got {share}")
        self.node(node)
        miner = Miner(name, share, self.wallet(name).change_pubkey_hash)
        chosen = strategy if strategy is not None else Honest()
        await chosen.attach(self, miner, node)
        self.strategies[name] = chosen
        self.scheduler.add(miner)
        self._record("", TraceKind.HASHRATE, miner=name, share=share, strategy=chosen.kind)
        return miner

    def set_share(self, name: str, share: float) -> None:
        if name not in self.scheduler.miners:
            raise SimulationError(f"there is no miner called {name!r}")
        self.scheduler.set_share(name, share)
        self._record("", TraceKind.HASHRATE, miner=name, share=share)

    @property
    def miners(self) -> dict[str, Miner]:
        return self.scheduler.miners

    async def mine(self, blocks: int) -> None:
        """Let the miners find ``blocks`` more blocks (the network runs meanwhile)."""
        if self._mining is not None:
            raise SimulationError("the miners are already mining continuously")
        if blocks < 0:
            raise SimulationError(f"cannot mine {blocks} blocks")
        if not self.scheduler.active():
            raise SimulationError("no miner can mine: none has a share and a running node")
        await self._wait(self.spawn(self.scheduler.run(blocks)))

    def start_mining(self) -> None:
        """Mine continuously until :meth:`stop_mining`."""
        if self._mining is None:
            self._mining = self.spawn(self.scheduler.run(None))

    async def stop_mining(self) -> None:
        if self._mining is not None:
            task, self._mining = self._mining, None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def mine_on(self, miner: str) -> None:
        """Make ``miner`` find one block now, whatever its share (a scenario's "mine" step)."""
        found = self.scheduler.miners.get(miner)
        if found is None:
            raise SimulationError(f"there is no miner called {miner!r}")
        found.blocks_found += 1
        self.scheduler.found += 1
        await self._on_found(found)

    def _can_mine(self, miner: Miner) -> bool:
        return self.strategies[miner.name].can_mine(self)

    async def _on_found(self, miner: Miner) -> None:
        await self.strategies[miner.name].on_found(self, miner)

    async def build_block(
        self,
        node: str,
        miner: Miner,
        *,
        select: Callable[[BlockTemplate], BlockTemplate] | None = None,
    ) -> Block:
        """A block on ``node``'s tip paying ``miner``, with real proof of work; recorded.

        ``select`` may change the template first (a censor drops transactions).
        """
        sim_node = self.node(node)
        now = int(sim_node.clock.time())
        template = await sim_node.query(
            lambda chain, mempool: template_on_tip(chain, mempool, miner.payout, now)
        )
        if select is not None:
            template = select(template)
        return self.found_block(miner, grind(template, miner.next_extranonce(), template.cur_time))

    def found_block(self, miner: Miner, block: Block) -> Block:
        """Record ``block`` as found by ``miner`` now (strategies building their own call this)."""
        record = self.blocks[block.hash] = BlockRecord.found(block, miner.name, self.now)
        self._record(
            "",
            TraceKind.BLOCK_FOUND,
            miner=miner.name,
            hash=block.hash_hex,
            height=record.height,
            parent=hash_hex(record.parent),
            txs=record.tx_count,
        )
        return block

    async def publish(self, miner: Miner, block: Block, node: str) -> bool:
        """Hand ``miner``'s ``block`` to ``node`` (which relays it if it becomes its tip).

        Returns whether the node accepted it; a block the node refuses is traced, not raised.
        """
        outcome = await self.node(node).require().submit_block(block)
        record = self.blocks.get(block.hash)
        if record is not None and record.published_at is None:
            record.published_at = self.now
        error = outcome.error
        self._record(
            node,
            TraceKind.BLOCK_PUBLISHED,
            miner=miner.name,
            hash=block.hash_hex,
            accepted=outcome.accepted or outcome.duplicate,
            reason=error.reason if error is not None else "",
        )
        return outcome.accepted or outcome.duplicate

    # ------------------------------------------------------------------------------- wallets

    def wallet(self, name: str) -> Wallet:
        """The deterministic wallet called ``name`` (a miner's wallet receives its coinbases)."""
        return self.wallets.wallet(name)

    def address(self, name: str) -> str:
        return self.wallets.address(name)

    def pubkey_hash(self, recipient: str) -> bytes:
        """The public-key hash of an address of this network, or else of the wallet so named."""
        return self.wallets.pubkey_hash(recipient)

    async def pay(
        self, sender: str, recipient: str, amount: int, *, node: str, fee_rate: int = 2
    ) -> Transaction:
        """``sender``'s wallet pays ``amount`` to wallet ``recipient`` through ``node``.

        ``recipient`` is a wallet name or an address. Coins are those of ``node``'s chain not
        already spent in its mempool. WalletError if the sender cannot pay.
        """
        sim_node = self.node(node)
        payment = self.wallets.payment(sender, recipient, amount, fee_rate=fee_rate)
        tx = await sim_node.query(payment)
        await sim_node.require().submit_tx(tx)
        to = encode_address(self.pubkey_hash(recipient), self.params.address_version)
        self._record(node, TraceKind.TX_SENT, txid=tx.txid_hex, sender=sender, to=to, amount=amount)
        return tx

    # ------------------------------------------------------------------------------- views

    def tips(self) -> dict[str, bytes]:
        """Each running public node's tip."""
        return {n.name: n.tip for n in self.public_nodes()}

    def converged(self) -> bool:
        """Whether every running public node has the same tip."""
        return len(set(self.tips().values())) <= 1

    def expected_peers(self) -> dict[str, int]:
        """Connections each running public node should have: those it dials and is dialled by."""
        running = {n.name for n in self.public_nodes()}
        degree = dict.fromkeys(running, 0)
        for name in running:
            for peer in self.nodes[name].spec.connect:
                if peer in running and peer != name:
                    degree[name] += 1
                    degree[peer] += 1
        return degree

    def connected(self) -> bool:
        """Whether every running public node has all the connections its topology gives it."""
        return all(
            len(self.nodes[name].require().peers()) >= count
            for name, count in self.expected_peers().items()
        )

    async def wait_connected(self, timeout: float = 600.0) -> None:
        """Run until the topology is fully connected; SimulationError if it is not in time."""
        if not await self.run_until(self.connected, timeout=timeout, poll=0.1):
            missing = {
                name: f"{len(self.nodes[name].require().peers())}/{count}"
                for name, count in self.expected_peers().items()
                if len(self.nodes[name].require().peers()) < count
            }
            raise SimulationError(f"nodes not connected after {timeout} s: {missing}")

    async def settle(self, timeout: float = 3600.0) -> bool:
        """Run (without forcing anything) until the public nodes agree on a tip."""
        return await self.run_until(self.converged, timeout=timeout)

    def main_chain(self, tip: bytes | None = None) -> list[BlockRecord]:
        """Records of the blocks found in the simulation on the chain ending at ``tip``.

        ``tip`` defaults to the tip with the most work among the public nodes. Oldest first.
        """
        if tip is None:
            best = max(
                (n.require().tip for n in self.public_nodes()),
                key=lambda t: (t.chain_work, t.hash),
                default=None,
            )
            if best is None:
                return []
            tip = best.hash
        return chain_to(self.blocks, tip)

    def listen(self, listener: NodeListener) -> None:
        """Call ``listener(node_name, event)`` for every event of every node, as it happens."""
        self._listeners.append(listener)

    # ------------------------------------------------------------------------------- trace

    def note(self, text: str, **details: Value) -> None:
        """Put a line of narration in the trace."""
        self._record("", TraceKind.NOTE, text=text, **details)

    def _record(self, node: str, kind: TraceKind, **details: Value) -> None:
        if self._recording:
            self.trace.record(TraceEvent(self.now, node, kind, tuple(details.items())))

    def _on_log(self, record: logging.LogRecord) -> None:
        error = record.exc_info[1] if record.exc_info else None
        exception = type(error).__name__ if error is not None else ""
        self.errors.append(LoggedError(self.now, record.name, record.getMessage(), exception))
        # The message may show object addresses; the trace keeps what is the same every run.
        self._record("", TraceKind.LOG_ERROR, logger=record.name, exception=exception)

    def _on_node_event(self, name: str, event: Event) -> None:
        if isinstance(event, BlockConnected):
            record = self.blocks.get(event.block.hash)
            if record is not None:
                record.arrivals.setdefault(name, self.now)
        elif isinstance(event, Reorg):
            self.reorgs[event.depth] += 1
        if self._recording:
            kind, details = describe(event)
            self.trace.record(TraceEvent(self.now, name, kind, details))
        for listener in self._listeners:
            listener(name, event)

    # ------------------------------------------------------------------------------- closing

    async def close(self) -> None:
        """Stop mining and every node; the trace ends here (shutdown is not part of it)."""
        if self._closed:
            return
        self._closed = True
        self._recording = False
        for name in WATCHED_LOGGERS:
            logging.getLogger(name).removeHandler(self._collector)
        await self.stop_mining()
        for task in list(self._tasks):
            task.cancel()
        for sim_node in self.nodes.values():
            node, sim_node.node = sim_node.node, None
            if node is not None:
                await node.stop()
        if self._tempdir is not None:
            self._tempdir.cleanup()


def simulate(body: Callable[[Simulation], Awaitable[T]], **options: Any) -> T:
    """Run ``body(simulation)`` on a fresh virtual-time loop and return its result.

    ``options`` are :class:`Simulation`'s keyword arguments (``seed``, ``params``,
    ``interval``, ``p2p``, ``default_link``, ``trace``, ``workdir``). The simulation is closed
    when ``body`` returns or raises.
    """

    async def main() -> T:
        sim = Simulation(**options)
        try:
            return await body(sim)
        finally:
            await sim.close()

    return run_virtual(VirtualTimeLoop(), main())
