"""``forklab devnet status``: what every node, miner and wallet of a devnet is doing now, and
where its dashboard is.

The answer is gathered in one pass (each running node is asked once, in a batch, all nodes in
parallel) and shaped as frozen dataclasses; :meth:`DevnetStatus.to_json` is the ``--json``
output, whose keys are documented in ``docs/devnet.md`` and kept stable for scripts and the
dashboard:

==============  ============================================================================
key             value
==============  ============================================================================
``dir``         the devnet directory
``network``     regtest or demo
``topology``    line, ring, mesh or random:K
``block_time``  mean seconds between blocks, all miners together
``links``       the topology's links, ``[["n1", "n2"], ...]``
``partition``   the groups in force, ``[["n1", "n2"], ["n3", "n4"]]``, or null
``latency``     ``[{"a", "b", "ms"}]``: one-way delay added each way on a link
``nodes``       per node: ``name``, ``running``, ``pid``, ``p2p_port``, ``rpc_port``,
                ``rpc_url``, ``datadir``, ``cookie``, ``log``, ``height``, ``headers``,
                ``tip``, ``peers`` (names of connected nodes), ``mempool`` (transactions);
                chain fields are null for a node that is not running
``miners``      per miner: ``name``, ``node``, ``share``, ``interval`` (its mean seconds
                between blocks), ``running``, ``pid``, ``address``, ``log``
``wallets``     per wallet (funded ones, then the miners'): ``name``, ``address``,
                ``balance`` (coins, as a string with eight decimals; null if no node runs)
``dashboard``   ``url`` (null until a port chosen by the system is known), ``port``,
                ``running``, ``pid``, ``log``; null for a devnet without a dashboard
==============  ============================================================================
"""

from __future__ import annotations

import http.client
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from node.core.tx import COIN, format_amount
from node.devnet import launch, wallets
from node.devnet.state import DevnetError, DevnetState, Latency
from node.devnet.topology import Topology
from node.rpc.client import RpcCallError, RpcConnectionError
from node.rpc.jsonfmt import loads

if TYPE_CHECKING:
    from node.devnet.devnet import Devnet


@dataclass(frozen=True)
class NodeStatus:
    name: str
    running: bool
    pid: int | None
    p2p_port: int
    rpc_port: int
    rpc_url: str
    datadir: Path
    cookie: Path
    log: Path
    height: int | None = None
    headers: int | None = None
    tip: str | None = None
    peers: tuple[str, ...] = ()
    mempool: int | None = None


@dataclass(frozen=True)
class MinerStatus:
    name: str
    node: str
    share: float
    interval: float
    running: bool
    pid: int | None
    address: str
    log: Path


@dataclass(frozen=True)
class DashboardStatus:
    url: str | None
    port: int
    running: bool
    pid: int | None
    log: Path


@dataclass(frozen=True)
class WalletStatus:
    name: str
    address: str
    balance: int | None
    """In the smallest unit: confirmed and pending coins not already spent by the mempool."""


@dataclass(frozen=True)
class DevnetStatus:
    dir: Path
    network: str
    topology: str
    block_time: float
    links: tuple[tuple[str, str], ...]
    partition: tuple[tuple[str, ...], ...] | None
    latency: tuple[Latency, ...]
    nodes: tuple[NodeStatus, ...]
    miners: tuple[MinerStatus, ...]
    wallets: tuple[WalletStatus, ...]
    dashboard: DashboardStatus | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "dir": str(self.dir),
            "network": self.network,
            "topology": self.topology,
            "block_time": self.block_time,
            "links": [list(link) for link in self.links],
            "partition": None if self.partition is None else [list(g) for g in self.partition],
            "latency": [{"a": x.a, "b": x.b, "ms": x.ms} for x in self.latency],
            "nodes": [
                {
                    "name": n.name,
                    "running": n.running,
                    "pid": n.pid,
                    "p2p_port": n.p2p_port,
                    "rpc_port": n.rpc_port,
                    "rpc_url": n.rpc_url,
                    "datadir": str(n.datadir),
                    "cookie": str(n.cookie),
                    "log": str(n.log),
                    "height": n.height,
                    "headers": n.headers,
                    "tip": n.tip,
                    "peers": list(n.peers),
                    "mempool": n.mempool,
                }
                for n in self.nodes
            ],
            "miners": [
                {
                    "name": m.name,
                    "node": m.node,
                    "share": m.share,
                    "interval": m.interval,
                    "running": m.running,
                    "pid": m.pid,
                    "address": m.address,
                    "log": str(m.log),
                }
                for m in self.miners
            ],
            "wallets": [
                {
                    "name": w.name,
                    "address": w.address,
                    "balance": None if w.balance is None else format_amount(w.balance),
                }
                for w in self.wallets
            ],
            "dashboard": None
            if self.dashboard is None
            else {
                "url": self.dashboard.url,
                "port": self.dashboard.port,
                "running": self.dashboard.running,
                "pid": self.dashboard.pid,
                "log": str(self.dashboard.log),
            },
        }


def collect(devnet: Devnet, state: DevnetState) -> DevnetStatus:
    paths = devnet.paths
    params = devnet.params(state)
    names_by_address = {n.p2p_address: n.name for n in state.nodes}
    running = {n.name for n in devnet.running_nodes(state)}

    def node_status(index: int) -> NodeStatus:
        entry = state.nodes[index]
        base = NodeStatus(
            name=entry.name,
            running=entry.name in running,
            pid=entry.pid if entry.name in running else None,
            p2p_port=entry.p2p_port,
            rpc_port=entry.rpc_port,
            rpc_url=entry.rpc_url,
            datadir=paths.datadir(entry.name),
            cookie=paths.cookie(entry.name),
            log=paths.log(entry.name),
        )
        if entry.name not in running:
            return base
        try:
            info, peers, mempool = devnet.client(state, entry.name, timeout=10).batch(
                [("getblockchaininfo", []), ("getpeerinfo", []), ("getmempoolinfo", [])]
            )
        except (RpcConnectionError, DevnetError):
            return base  # starting, stopping, or its cookie is being replaced
        if isinstance(info, RpcCallError) or isinstance(peers, RpcCallError):
            return base
        peer_names = sorted(
            names_by_address.get(p["listen_addr"]) or p["listen_addr"] or p["addr"] for p in peers
        )
        return replace(
            base,
            height=int(info["blocks"]),
            headers=int(info["headers"]),
            tip=str(info["bestblockhash"]),
            peers=tuple(peer_names),
            mempool=None if isinstance(mempool, RpcCallError) else int(mempool["size"]),
        )

    with ThreadPoolExecutor(max_workers=min(8, len(state.nodes))) as pool:
        nodes = tuple(pool.map(node_status, range(len(state.nodes))))

    miners = tuple(
        MinerStatus(
            name=m.name,
            node=m.node,
            share=m.share,
            interval=state.block_time / m.share,
            running=launch.is_running(paths, state, m.name),
            pid=m.pid if launch.is_running(paths, state, m.name) else None,
            address=wallets.address(params, m.name),
            log=paths.log(m.name),
        )
        for m in state.miners
    )
    rest_port = next((n.rpc_port for n in nodes if n.running and n.height is not None), None)
    wallet_rows = tuple(
        WalletStatus(name, address, _balance(rest_port, address))
        for name in (*state.wallets, *(m.name for m in state.miners))
        for address in (wallets.address(params, name),)
    )
    dashboard = None
    if state.dashboard is not None:
        dashboard_running = launch.is_running(paths, state, state.dashboard.name)
        dashboard = DashboardStatus(
            url=state.dashboard.url,
            port=state.dashboard.port,
            running=dashboard_running,
            pid=state.dashboard.pid if dashboard_running else None,
            log=paths.log(state.dashboard.name),
        )
    edges = Topology.parse(state.topology).edges(len(state.nodes), state.seed)
    return DevnetStatus(
        dir=paths.root,
        network=state.network,
        topology=state.topology,
        block_time=state.block_time,
        links=tuple((state.names[a], state.names[b]) for a, b in edges),
        partition=state.partition,
        latency=state.latency,
        nodes=nodes,
        miners=miners,
        wallets=wallet_rows,
        dashboard=dashboard,
    )


def rest_get(port: int, path: str) -> Any:
    """GET a node's public REST route on loopback; the JSON answer (amounts exact)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
    except (OSError, http.client.HTTPException) as exc:
        raise DevnetError(f"cannot reach the node's REST API on port {port}: {exc}") from exc
    finally:
        conn.close()
    if response.status != 200:
        raise DevnetError(f"{path}: HTTP {response.status}: {body[:200].decode(errors='replace')}")
    return loads(body)


def _balance(port: int | None, address: str) -> int | None:
    if port is None:
        return None
    try:
        answer = rest_get(port, f"/rest/address/{address}/utxos")
    except DevnetError:
        return None
    return sum(
        int(Decimal(u["amount"]) * COIN) for u in answer["utxos"] if not u["spent_in_mempool"]
    )
