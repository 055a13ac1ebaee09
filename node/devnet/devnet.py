"""The devnet controller: bring a local network up and down, and act on it while it runs.

Every ``forklab devnet`` command is a short-lived process that opens a :class:`Devnet` on a
directory, reads the state file the previous command left (:mod:`node.devnet.state`), acts on
the processes and nodes it names, and writes the state back. Nothing stays resident besides the
nodes, the miners and the dashboard themselves.

``up`` in order (each step skipped when already done, so ``up`` also resumes and repairs):

1. plan (:mod:`node.devnet.plan`): a new devnet from the options, or the recorded one, resumed
   with its chain (changing what it was made with is refused);
2. start the nodes that are not running, all at once, and the dashboard with them (it follows
   the state file, so it sees them come up), and wait for their ready lines;
3. wire them: set each node's link policy (topology, partition, latency) over RPC, then
   ``addnode`` its neighbours, in that order so no link exists that the policy would refuse;
4. fund the wallets in the first blocks (:mod:`node.devnet.wallets`), mined on the first node;
5. wait until every node has the same tip;
6. start the miners (:mod:`node.devnet.miner`), after the sync so none mines on a stale tip.

If a step fails, or the command is interrupted, the processes this command started are stopped
again (and their pids cleared): a failed ``up`` leaves the devnet as it found it.

Live controls act on the running nodes: ``partition``/``heal``/``latency`` change the link
policies (and are recorded, so a restarted node gets them back before it dials anyone), ``kill``
stops a process (SIGKILL by default, as a crash), ``restart`` starts it again and waits for it
to catch up, ``mine`` and ``send`` go through a node's RPC. ``kill`` and ``restart`` also take
the dashboard, by its name ``dashboard``.

The lock (:func:`node.devnet.state.locked`) makes commands that change the devnet run one at a
time; ``status`` and ``logs`` only read. Waiting for the nodes to agree on a tip (after ``up``,
``heal`` and ``restart``) is :mod:`node.devnet.convergence`.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from node.core.params import NetworkParams, params_for
from node.core.tx import COIN
from node.devnet import convergence, launch, procs, wallets
from node.devnet.plan import UpOptions, new_state, resumed_state
from node.devnet.progress import Progress
from node.devnet.state import (
    DashboardEntry,
    DevnetError,
    DevnetPaths,
    DevnetState,
    MinerEntry,
    NodeEntry,
    Process,
    load,
    locked,
    save,
)
from node.devnet.status import DevnetStatus, collect, rest_get
from node.devnet.topology import Topology, blocked_peers, neighbours, parse_partition
from node.rpc.client import RpcCallError, RpcClient
from node.rpc.errors import RpcCode

START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
MAX_TRIES = 1 << 40
"""Hashes ``generatetoaddress`` may spend per block: more than any devnet difficulty needs."""


class Devnet:
    """One devnet directory; see the module docstring."""

    def __init__(self, root: Path, progress: Progress | None = None) -> None:
        self.paths = DevnetPaths(root)
        self.progress = progress if progress is not None else Progress(interactive=False)

    @property
    def root(self) -> Path:
        return self.paths.root

    def state(self) -> DevnetState:
        """The recorded state; DevnetError when the directory holds no devnet."""
        state = load(self.paths)
        if state is None:
            raise DevnetError(
                f"no devnet in {self.root}; start one with: forklab devnet up --dir {self.root}"
            )
        return state

    @contextlib.contextmanager
    def _changing(self) -> Iterator[DevnetState]:
        """Hold the lock over an existing devnet, with its state as read under the lock.

        Fails before touching anything (not even creating the directory) without a devnet.
        """
        self.state()
        with locked(self.paths):
            yield self.state()

    def params(self, state: DevnetState) -> NetworkParams:
        return params_for(state.network)

    def client(self, state: DevnetState, name: str, timeout: float = 60.0) -> RpcClient:
        entry = state.node(name)
        if not launch.is_running(self.paths, state, name):
            raise DevnetError(
                f"node {name} is not running; start it with: forklab devnet restart {name}"
            )
        return RpcClient.from_datadir(entry.rpc_url, self.paths.datadir(name), timeout=timeout)

    def running_nodes(self, state: DevnetState) -> list[NodeEntry]:
        return [n for n in state.nodes if self.is_running(state, n.name)]

    # ------------------------------------------------------------------------------------ up

    def up(self, options: UpOptions) -> DevnetState:
        with locked(self.paths):
            old = load(self.paths)
            if old is None:
                state = new_state(options)
            else:
                state = resumed_state(
                    options,
                    old,
                    root=self.root,
                    miners_running=any(self.is_running(old, m.name) for m in old.miners),
                    dashboard_running=old.dashboard is not None
                    and self.is_running(old, old.dashboard.name),
                )
            started: list[int] = []
            try:
                save(self.paths, state)
                self._check_ports(state)
                # Spawned first, so its start-up overlaps the nodes'; waited for after them.
                state, dashboard_log = self._spawn_dashboard(state, started)
                state = self._start_nodes(state, started)
                save(self.paths, state)
                state = self._dashboard_ready(state, dashboard_log)
                save(self.paths, state)
                self._wire(state)
                if not state.funded:
                    self._fund(state)
                    state = replace(state, funded=True)
                    save(self.paths, state)
                convergence.wait_synced(self, state, "syncing")
                state = self._start_miners(state, started)
                save(self.paths, state)
            except BaseException:
                self._undo(state, started)
                raise
            return state

    def is_running(self, state: DevnetState, name: str) -> bool:
        return launch.is_running(self.paths, state, name)

    def _check_ports(self, state: DevnetState, only: Iterable[str] | None = None) -> None:
        """DevnetError naming the first port that a process to be started (not running; of
        ``only``, if given) would need and another program holds: before anything starts."""
        wanted = {p.name for p in state.processes} if only is None else set(only)
        for entry in state.processes:
            if entry.name not in wanted or self.is_running(state, entry.name):
                continue
            if isinstance(entry, NodeEntry):
                for port, what in ((entry.p2p_port, "P2P"), (entry.rpc_port, "RPC")):
                    if port and procs.port_in_use(port):
                        raise DevnetError(
                            f"port {port} ({what} of {entry.name}) is in use by another "
                            "program; stop it, or choose other ports with --base-port "
                            "(0: any free ports)"
                        )
            elif isinstance(entry, DashboardEntry) and entry.port and procs.port_in_use(entry.port):
                raise DevnetError(
                    f"port {entry.port} (the dashboard's) is in use by another program "
                    "(a forklab dashboard of your own?); stop it, or choose another port "
                    "with --dashboard-port (0: any free port), or go without: --no-dashboard"
                )

    def _start_nodes(
        self, state: DevnetState, started: list[int], only: Iterable[str] | None = None
    ) -> DevnetState:
        """Start the nodes that are not running (of ``only``, if given); ``started`` gets their
        pids as soon as they exist, so a failure can stop them."""
        wanted = set(state.names if only is None else only)
        todo = [n for n in state.nodes if n.name in wanted and not self.is_running(state, n.name)]
        if not todo:
            return state
        with self.progress.step(f"starting {len(todo)} nodes", len(todo)) as step:
            spawned = []
            for entry in todo:
                pid, offset = launch.start_node(self.paths, state, entry)
                started.append(pid)
                spawned.append((entry, pid, offset))
                # Recorded at once, so an interrupted start still knows what to stop.
                state = state.with_node(replace(entry, pid=pid))
            for done, (entry, pid, offset) in enumerate(spawned, 1):
                ready = launch.node_ready(self.paths, entry, pid, offset, START_TIMEOUT)
                state = state.with_node(ready)
                step.update(done, entry.name)
            step.done(f"started {', '.join(e.name for e, _, _ in spawned)}")
        return state

    def _start_miners(
        self, state: DevnetState, started: list[int], only: Iterable[str] | None = None
    ) -> DevnetState:
        wanted = {m.name for m in state.miners} if only is None else set(only)
        todo = [m for m in state.miners if m.name in wanted and not self.is_running(state, m.name)]
        if not todo:
            return state
        with self.progress.step(f"starting {len(todo)} miners", len(todo)) as step:
            spawned = []
            for miner in todo:
                pid, offset = launch.start_miner(self.paths, state, miner)
                started.append(pid)
                spawned.append((miner, pid, offset))
                state = state.with_miner(replace(miner, pid=pid))
            for done, (miner, pid, offset) in enumerate(spawned, 1):
                launch.miner_ready(self.paths, miner, pid, offset, START_TIMEOUT)
                step.update(done, miner.name)
            step.done(f"started miners {', '.join(m.name for m, _, _ in spawned)}")
        return state

    def _spawn_dashboard(
        self, state: DevnetState, started: list[int]
    ) -> tuple[DevnetState, int | None]:
        """Spawn the dashboard if the devnet has one and it is not running; the state with
        its pid, and the log offset its ready line will follow (None if nothing started)."""
        entry = state.dashboard
        if entry is None or self.is_running(state, entry.name):
            return state, None
        pid, offset = launch.start_dashboard(self.paths, entry)
        started.append(pid)
        state = replace(state, dashboard=replace(entry, pid=pid))
        save(self.paths, state)
        return state, offset

    def _dashboard_ready(self, state: DevnetState, offset: int | None) -> DevnetState:
        """Wait for the dashboard :meth:`_spawn_dashboard` started; records the port it bound."""
        entry = state.dashboard
        if offset is None or entry is None or entry.pid is None:
            return state
        with self.progress.step("starting the dashboard") as step:
            ready = launch.dashboard_ready(self.paths, entry, entry.pid, offset, START_TIMEOUT)
            step.done(f"dashboard at {ready.url}")
        return replace(state, dashboard=ready)

    def _undo(self, state: DevnetState, started: Sequence[int]) -> None:
        """Stop what this command started and clear their pids (after a failed ``up``)."""
        for pid in started:
            if procs.running(pid):
                procs.stop(pid, timeout=STOP_TIMEOUT)
        save(self.paths, state.without_pids(started))

    # ------------------------------------------------------------------------------ wiring

    def _policies(self, state: DevnetState) -> dict[str, dict[str, Any]]:
        """Each node's link policy, as ``setlinkpolicy`` takes it."""
        edges = Topology.parse(state.topology).edges(len(state.nodes), state.seed)
        blocked = blocked_peers(state.names, edges, state.partition)
        address = {n.name: n.p2p_address for n in state.nodes}
        return {
            name: {
                "blocked": [address[other] for other in blocked[name]],
                "latency_ms": {
                    address[other]: state.latency_between(name, other)
                    for other in state.names
                    if other != name and state.latency_between(name, other)
                },
            }
            for name in state.names
        }

    def _wire(self, state: DevnetState, only: Iterable[str] | None = None) -> None:
        """Set the link policy of every running node (or of ``only``), then ``addnode`` each
        one's neighbours: the policy comes first, so no refused link is ever made."""
        policies = self._policies(state)
        edges = Topology.parse(state.topology).edges(len(state.nodes), state.seed)
        running = {n.name for n in self.running_nodes(state)}
        targets = [name for name in (only or state.names) if name in running]
        for name in targets:
            self.client(state, name).call_named("setlinkpolicy", policies[name])
        for name in targets:
            client = self.client(state, name)
            for other in neighbours(edges, state.index(name)):
                try:
                    client.call("addnode", state.nodes[other].p2p_address, "add")
                except RpcCallError as exc:
                    if exc.code != RpcCode.CLIENT_NODE_ALREADY_ADDED:
                        raise

    def _apply_policies(self, state: DevnetState) -> None:
        policies = self._policies(state)
        for entry in self.running_nodes(state):
            self.client(state, entry.name).call_named("setlinkpolicy", policies[entry.name])

    # ----------------------------------------------------------------------------- funding

    def _fund(self, state: DevnetState) -> None:
        params = self.params(state)
        first = self.running_nodes(state)[0].name
        client = self.client(state, first)
        height = client.call("getblockcount")
        if height > 0:
            return  # a chain already there (a state file lost and remade): nothing to fund
        payees = wallets.funding_payees(params, state.wallets)
        with self.progress.step("funding wallets", len(payees)) as step:
            for n, payee in enumerate(payees, 1):
                client.call("generatetoaddress", 1, payee, MAX_TRIES)
                step.update(n, f"block {n}")
            step.done(
                f"funded {', '.join(state.wallets)} in {len(payees)} blocks on {first} "
                f"(coinbase maturity {params.coinbase_maturity})"
            )

    # -------------------------------------------------------------------------------- down

    def down(self, *, wipe: bool = False) -> list[str]:
        """Stop every process of the devnet; the names of those that were running."""
        with self._changing() as state:
            stopped = self._stop_all(state)
            if wipe:
                self._wipe()
            else:
                save(self.paths, state.without_pids())
            return stopped

    def _stop_all(self, state: DevnetState) -> list[str]:
        """SIGTERM to every process at once (miners first, the dashboard last), then wait for
        all of them."""
        order: tuple[Process, ...] = (
            *state.miners,
            *state.nodes,
            *([state.dashboard] if state.dashboard else []),
        )
        alive = [(p.name, p.pid) for p in order if self.is_running(state, p.name)]
        with self.progress.step(f"stopping {len(alive)} processes", len(alive)) as step:
            for _name, pid in alive:
                assert pid is not None
                procs.signal_group(pid)
            for done, (name, pid) in enumerate(alive, 1):
                assert pid is not None
                procs.stop(pid, timeout=STOP_TIMEOUT)
                step.update(done, name)
            step.done(f"stopped {len(alive)} processes")
        return [name for name, _ in alive]

    def _wipe(self) -> None:
        """Delete what a devnet puts in its directory, and the directory if nothing else is
        in it: ``--dir`` may name a directory the user keeps other things in."""
        try:
            for name in ("nodes", "logs"):
                if (self.root / name).exists():
                    shutil.rmtree(self.root / name)
            for path in (
                self.paths.state_file,
                self.paths.state_file.with_suffix(".tmp"),
                self.paths.lock_file,
            ):
                path.unlink(missing_ok=True)
        except OSError as exc:
            raise DevnetError(f"cannot wipe {self.root}: {exc}") from exc
        with contextlib.suppress(OSError):
            self.root.rmdir()  # fails if something of the user's is in there too: leave it

    # ------------------------------------------------------------------------ kill/restart

    def kill(self, name: str, *, term: bool = False) -> None:
        """Stop node, miner or dashboard ``name``: SIGKILL (a crash) unless ``term`` (a clean
        stop)."""
        with self._changing() as state:
            if not self.is_running(state, name):
                raise DevnetError(f"{name} is not running")
            pid = self._pid(state, name)
            procs.stop(pid, timeout=STOP_TIMEOUT, hard=not term)
            save(self.paths, state.with_pid(name, None))

    def restart(self, name: str) -> int | None:
        """Start node, miner or dashboard ``name`` again (stopping it first if it runs); for a
        node, wait until it has caught up with its peers and return its height."""
        with self._changing() as current:
            state = current
            if self.is_running(state, name):
                procs.stop(self._pid(state, name), timeout=STOP_TIMEOUT)
                state = state.with_pid(name, None)
                save(self.paths, state)
            entry = state.process(name)
            started: list[int] = []
            try:
                self._check_ports(state, only=[name])
                if isinstance(entry, NodeEntry):
                    state = self._start_nodes(state, started, only=[name])
                    save(self.paths, state)
                    # The restarted node dials its neighbours at once; theirs may be backing off.
                    self._wire(state, only=[name])
                elif isinstance(entry, MinerEntry):
                    state = self._start_miners(state, started, only=[name])
                    save(self.paths, state)
                else:
                    state, offset = self._spawn_dashboard(state, started)
                    state = self._dashboard_ready(state, offset)
                    save(self.paths, state)
            except BaseException:
                self._undo(state, started)
                raise
            # Started: a slow catch-up is reported, but does not stop the node again.
            if isinstance(entry, NodeEntry):
                return convergence.wait_caught_up(self, state, name)
            return None

    def _pid(self, state: DevnetState, name: str) -> int:
        entry = state.process(name)
        if entry.pid is not None:
            return entry.pid
        raise DevnetError(f"{name} has no recorded process")

    # ---------------------------------------------------------------------- links controls

    def partition(self, words: Sequence[str]) -> tuple[tuple[str, ...], ...]:
        with self._changing() as current:
            groups = parse_partition(words, current.names)
            state = replace(current, partition=groups)
            save(self.paths, state)
            self._apply_policies(state)
            return groups

    def heal(self, *, wait: bool = True) -> str | None:
        """Lift the partition; with ``wait``, return once all nodes share one tip."""
        with self._changing() as current:
            state = replace(current, partition=None)
            save(self.paths, state)
            # A policy change also resets every node's redial backoff: links come back at once.
            self._apply_policies(state)
            return convergence.wait_synced(self, state, "healing") if wait else None

    def latency(self, a: str, b: str, ms: int) -> None:
        if not 0 <= ms <= 600_000:
            raise DevnetError(f"latency must be from 0 to 600000 ms, got {ms}")
        with self._changing() as current:
            for name in (a, b):
                current.node(name)  # DevnetError naming the devnet's nodes if unknown
            if a == b:
                raise DevnetError("a latency is between two different nodes")
            state = current.with_latency(a, b, ms)
            save(self.paths, state)
            self._apply_policies(state)

    # ---------------------------------------------------------------------- mining, sending

    def mine(self, name: str, count: int, to: str | None = None) -> list[str]:
        """Mine ``count`` blocks on node ``name`` now, paying ``to`` (a wallet or an address;
        the first wallet by default); the block hashes."""
        if not 1 <= count <= 10_000:
            raise DevnetError(f"mine 1 to 10000 blocks at a time, got {count}")
        state = self.state()
        params = self.params(state)
        payee = wallets.resolve_payee(params, to or state.wallets[0], self._wallet_names(state))
        hashes: list[str] = self.client(state, name).call(
            "generatetoaddress", count, payee, MAX_TRIES
        )
        return hashes

    def send(
        self,
        source: str,
        target: str,
        amount: str,
        *,
        via: str | None = None,
        fee_rate: int | None = None,
    ) -> str:
        """Pay ``amount`` coins from devnet wallet ``source`` to ``target`` (a wallet or an
        address) through node ``via`` (the first running node by default); the txid."""
        state = self.state()
        params = self.params(state)
        names = self._wallet_names(state)
        if source not in names:
            raise DevnetError(f"no devnet wallet {source!r} (wallets: {', '.join(names)})")
        pay_to = wallets.resolve_payee(params, target, names)
        units = wallets.parse_amount(amount)
        running = self.running_nodes(state)
        if via is None:
            if not running:
                raise DevnetError("no node is running")
            via = running[0].name
        client = self.client(state, via)
        entry = state.node(via)
        answer = rest_get(entry.rpc_port, f"/rest/address/{wallets.address(params, source)}/utxos")
        if fee_rate is None:
            # The node's relay minimum, which it shows in coins per 1,000 bytes.
            fee_rate = int(client.call("getnetworkinfo")["relayfee"] * COIN) // 1000
        payment = wallets.payment(
            params,
            source,
            answer["utxos"],
            int(answer["height"]) + 1,
            pay_to=pay_to,
            amount=units,
            fee_rate=fee_rate,
        )
        txid: str = client.call("sendrawtransaction", payment.tx.serialize().hex())
        return txid

    def _wallet_names(self, state: DevnetState) -> list[str]:
        return [*state.wallets, *(m.name for m in state.miners)]

    # ------------------------------------------------------------------------------ status

    def status(self) -> DevnetStatus:
        return collect(self, self.state())

    def log_path(self, name: str) -> Path:
        """Where node, miner or dashboard ``name`` logs (DevnetError if the devnet has no such
        process)."""
        self.state().process(name)
        return self.paths.log(name)
