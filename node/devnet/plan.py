"""What ``forklab devnet up`` should build: a new devnet from its options, or the recorded one,
changed as far as a running devnet allows.

The options a devnet is *made* with fix its identity: the network and the number of nodes (the
chains in the data directories belong to them), the funded wallets (funded once, in the first
blocks) and the ports (peers know each other by them). A second ``up`` that asks for other
values is refused with the way out (``down --wipe``); one that asks for nothing resumes.
The rest may change at a resume: the topology (the links are re-wired), the miners, their
shares, nodes, backend and the block time, as long as no miner is running with the old ones,
and the dashboard (on or off, its port) as long as it is not running.

Everything here is pure: it reads no file and starts no process (whether miners are running is
passed in), so every rule can be checked directly.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from node.devnet import wallets
from node.devnet.state import (
    NETWORKS,
    DashboardEntry,
    DevnetError,
    DevnetState,
    MinerEntry,
    NodeEntry,
)
from node.devnet.topology import Topology

DEFAULT_NODES = 4
DEFAULT_MINERS = 1
DEFAULT_NETWORK = "regtest"
DEFAULT_TOPOLOGY = "ring"
DEFAULT_BLOCK_TIME = 5.0
DEFAULT_BASE_PORT = 18600
"""Node i (from 0) listens on P2P port base + 2i and RPC port base + 2i + 1; away from the
networks' own default ports, so a devnet and a standalone node can run side by side."""
DASHBOARD_BELOW = 20
"""The dashboard listens this far below the base port: 18580 by default, which is also
``forklab dashboard``'s own default port, so the documented address is the same either way."""
DEFAULT_SEED = 1
DEFAULT_BACKEND = "cpu"
MAX_NODES = 64
MAX_MINERS = 64


@dataclass(frozen=True)
class UpOptions:
    """What ``up`` was asked for; None means "not given" (the recorded value or the default)."""

    nodes: int | None = None
    miners: int | None = None
    network: str | None = None
    topology: str | None = None
    block_time: float | None = None
    base_port: int | None = None
    seed: int | None = None
    wallets: tuple[str, ...] | None = None
    miner_shares: tuple[float, ...] | None = None
    """Weights of the miners' hash power (normalised: 3,1 is 75% and 25%)."""
    miner_nodes: tuple[str, ...] | None = None
    miner_backend: str | None = None
    dashboard: bool | None = None
    """Whether the devnet runs its dashboard (new devnets do unless told not to)."""
    dashboard_port: int | None = None
    """0 for a port the system chooses; None: the base port less 20 (or 0, with base 0)."""


def parse_shares(text: str) -> tuple[float, ...]:
    """``0.6,0.4`` or ``3,1``: positive weights, normalised to fractions adding up to 1."""
    try:
        weights = [float(part) for part in text.split(",")]
    except ValueError:
        raise DevnetError(f"miner shares {text!r}: write numbers separated by commas") from None
    if not weights or any(not 0 < w < float("inf") for w in weights):
        raise DevnetError(f"miner shares {text!r}: every share must be a positive number")
    total = sum(weights)
    return tuple(w / total for w in weights)


def new_state(o: UpOptions) -> DevnetState:
    """A devnet from ``o`` and the defaults; DevnetError for an option out of range."""
    count = DEFAULT_NODES if o.nodes is None else o.nodes
    if not 1 <= count <= MAX_NODES:
        raise DevnetError(f"--nodes must be from 1 to {MAX_NODES}, got {count}")
    network = o.network or DEFAULT_NETWORK
    if network not in NETWORKS:
        raise DevnetError(f"--network must be one of {', '.join(NETWORKS)}, got {network!r}")
    base = DEFAULT_BASE_PORT if o.base_port is None else o.base_port
    if base != 0 and not 1024 <= base <= 65536 - 2 * count:
        raise DevnetError(
            f"--base-port {base}: {count} nodes need ports {base} to {base + 2 * count - 1}, "
            "within 1024..65535 (or 0 for ports the system chooses)"
        )
    nodes = tuple(
        NodeEntry(f"n{i + 1}", base + 2 * i if base else 0, base + 2 * i + 1 if base else 0)
        for i in range(count)
    )
    wallet_names = wallets.DEFAULT_WALLETS if o.wallets is None else o.wallets
    if not wallet_names:
        raise DevnetError("--wallets needs at least one name (blocks mined by hand pay it)")
    for name in wallet_names:
        wallets.check_name(name)
    if len(set(wallet_names)) != len(wallet_names):
        raise DevnetError("--wallets names a wallet twice")
    state = DevnetState(
        network=network,
        seed=DEFAULT_SEED if o.seed is None else o.seed,
        topology=str(Topology.parse(o.topology or DEFAULT_TOPOLOGY)),
        block_time=_block_time(DEFAULT_BLOCK_TIME if o.block_time is None else o.block_time),
        wallets=tuple(wallet_names),
        nodes=nodes,
        miner_backend=o.miner_backend or DEFAULT_BACKEND,
    )
    _check_dashboard_options(o)
    dashboard = None if o.dashboard is False else _dashboard(state, o)
    return replace(state, miners=_miners(state, o), dashboard=dashboard)


def resumed_state(
    o: UpOptions,
    old: DevnetState,
    *,
    root: Path,
    miners_running: bool,
    dashboard_running: bool = False,
) -> DevnetState:
    """The recorded devnet ``old`` with the changes ``o`` asks for (see the module docstring)."""

    def refuse(what: str, recorded: object) -> DevnetError:
        return DevnetError(
            f"the devnet in {root} was made with {what} {recorded}; keep it, or start "
            f"afresh with: forklab devnet down --wipe --dir {root}"
        )

    if o.network is not None and o.network != old.network:
        raise refuse("--network", old.network)
    if o.nodes is not None and o.nodes != len(old.nodes):
        raise refuse("--nodes", len(old.nodes))
    if o.wallets is not None and tuple(o.wallets) != old.wallets:
        raise refuse("--wallets", ",".join(old.wallets))
    if o.base_port not in (None, 0, old.nodes[0].p2p_port):
        raise refuse("--base-port", old.nodes[0].p2p_port)
    state = replace(
        old,
        topology=str(Topology.parse(o.topology)) if o.topology else old.topology,
        block_time=old.block_time if o.block_time is None else _block_time(o.block_time),
        seed=old.seed if o.seed is None else o.seed,
        miner_backend=o.miner_backend or old.miner_backend,
    )
    state = replace(state, dashboard=_resumed_dashboard(o, old, dashboard_running))
    miners = _miners(state, _completed(o, old))
    unchanged = _without_pids(miners) == _without_pids(old.miners) and (
        state.block_time,
        state.miner_backend,
        state.seed,
    ) == (old.block_time, old.miner_backend, old.seed)
    if unchanged:
        return replace(state, miners=old.miners)
    if miners_running:
        raise DevnetError(
            "the miners are running; stop them first (forklab devnet down) to change "
            "--miners, --miner-shares, --miner-nodes, --miner-backend, --block-time or --seed"
        )
    return replace(state, miners=_without_pids(miners))


def default_dashboard_port(nodes: tuple[NodeEntry, ...]) -> int:
    """The base port less :data:`DASHBOARD_BELOW` when the nodes have the ports a base port
    gives them; otherwise (``--base-port 0``: ports the system chose) 0, a free port too."""
    base = nodes[0].p2p_port
    planned = all(
        (n.p2p_port, n.rpc_port) == (base + 2 * i, base + 2 * i + 1) for i, n in enumerate(nodes)
    )
    return base - DASHBOARD_BELOW if base and planned else 0


def _dashboard(state: DevnetState, o: UpOptions) -> DashboardEntry:
    """The dashboard ``o`` asks for (on the default port unless it names one), checked."""
    if o.dashboard_port is None:
        port = default_dashboard_port(state.nodes)
        if port and port < 1024:
            raise DevnetError(
                f"the dashboard would listen on port {port} (--base-port less "
                f"{DASHBOARD_BELOW}), below 1024; choose one with --dashboard-port"
            )
    else:
        port = o.dashboard_port
        if port != 0 and not 1024 <= port <= 65535:
            raise DevnetError(
                f"--dashboard-port must be from 1024 to 65535 (or 0 for a port the system "
                f"chooses), got {port}"
            )
    for node in state.nodes:
        for taken, what in ((node.p2p_port, "P2P"), (node.rpc_port, "RPC")):
            if port and port == taken:
                raise DevnetError(
                    f"--dashboard-port {port} is the {what} port of {node.name}; choose another"
                )
    return DashboardEntry(port)


def _resumed_dashboard(o: UpOptions, old: DevnetState, running: bool) -> DashboardEntry | None:
    """The recorded dashboard, or what ``o`` asks for instead (only while it is stopped)."""
    _check_dashboard_options(o)
    if o.dashboard is False:
        wanted = None
    elif o.dashboard is None and o.dashboard_port is None:
        return old.dashboard
    elif old.dashboard is not None and o.dashboard_port in (None, 0):
        return old.dashboard  # 0 asks for any free port: the one chosen before is one
    else:
        wanted = _dashboard(old, o)
    if wanted == (None if old.dashboard is None else replace(old.dashboard, pid=None)):
        return old.dashboard
    if running:
        assert old.dashboard is not None
        raise DevnetError(
            f"the dashboard is running on port {old.dashboard.port}; stop it first "
            "(forklab devnet kill dashboard --term) to change --dashboard-port or --no-dashboard"
        )
    return wanted


def _check_dashboard_options(o: UpOptions) -> None:
    if o.dashboard is False and o.dashboard_port is not None:
        raise DevnetError("--no-dashboard and --dashboard-port contradict each other")


def _completed(o: UpOptions, old: DevnetState) -> UpOptions:
    """``o`` with the recorded miners' count, shares and nodes where it gives none: asking for
    other nodes keeps the shares, and the reverse."""
    count = o.miners
    if count is None:
        count = len(o.miner_shares) if o.miner_shares else len(old.miners)
    same_count = count == len(old.miners)
    return replace(
        o,
        miners=count,
        miner_shares=o.miner_shares
        or (tuple(m.share for m in old.miners) if same_count and count else None),
        miner_nodes=o.miner_nodes
        or (tuple(m.node for m in old.miners) if same_count and count else None),
    )


def _without_pids(miners: tuple[MinerEntry, ...]) -> tuple[MinerEntry, ...]:
    return tuple(replace(m, pid=None) for m in miners)


def _block_time(value: float) -> float:
    if not 0.05 <= value <= 86_400:
        raise DevnetError(f"--block-time must be from 0.05 to 86400 seconds, got {value:g}")
    return float(value)


def _miners(state: DevnetState, o: UpOptions) -> tuple[MinerEntry, ...]:
    """Miners m1..mM: their shares (equal by default) and nodes (n1, n2... in turn)."""
    if o.miners is not None:
        count = o.miners
    else:
        count = len(o.miner_shares) if o.miner_shares else DEFAULT_MINERS
    if not 0 <= count <= MAX_MINERS:
        raise DevnetError(f"--miners must be from 0 to {MAX_MINERS}, got {count}")
    weights = o.miner_shares or tuple(1.0 for _ in range(count))
    if len(weights) != count:
        raise DevnetError(f"--miner-shares gives {len(weights)} shares for {count} miners")
    if any(not 0 < w < float("inf") for w in weights):
        raise DevnetError("--miner-shares: every share must be a positive number")
    shares = tuple(w / sum(weights) for w in weights)
    hosts = o.miner_nodes or tuple(state.names[k % len(state.names)] for k in range(count))
    if len(hosts) != count:
        raise DevnetError(f"--miner-nodes names {len(hosts)} nodes for {count} miners")
    for host in hosts:
        state.node(host)  # DevnetError naming the devnet's nodes if unknown
    return tuple(
        MinerEntry(f"m{k + 1}", host, share)
        for k, (host, share) in enumerate(zip(hosts, shares, strict=True))
    )
