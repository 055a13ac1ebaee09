"""The command lines of a devnet's node, miner and dashboard processes, and how to find them
again.

A node is ``python -m node node`` with every option given as a flag: its data directory, its
two loopback ports, the network and a seed. Nodes get no ``--connect``: the devnet wires them
over RPC once their link policy is set (:mod:`node.devnet.devnet`), so a restarted node never
dials across a partition before it is told about it. A miner is ``python -m node.devnet miner``
(:mod:`node.devnet.miner`) pointed at its node's RPC and cookie. The dashboard is
``python -m node dashboard --dir D`` on loopback (:mod:`node.dashboard`): it follows the state
file, so it learns of nodes, partitions and restarts without being told.

Children run the same Python and the same forklab as the command that starts them (the package
directory is put first on ``PYTHONPATH``), with a clean environment: ``FORKLAB_*`` variables
meant for the user's own node (``FORKLAB_CONNECT``, ``FORKLAB_CONFIG``...) are not passed on.

:func:`is_running` recognises a recorded pid as ours only if the process's arguments still name
the devnet's data directory (or, for the dashboard, the devnet's directory), so a pid reused by
another program is never signalled.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from pathlib import Path

from node.devnet import procs
from node.devnet.miner import READY_PREFIX as MINER_READY_PREFIX
from node.devnet.state import (
    DashboardEntry,
    DevnetError,
    DevnetPaths,
    DevnetState,
    MinerEntry,
    NodeEntry,
)

NODE_READY = re.compile(
    r"^forklab node ready: network (?P<network>\S+), height (?P<height>\d+), "
    r"p2p (?P<p2p>\S+), rpc http://(?P<rpc>\S+)$"
)
NODE_READY_PREFIX = "forklab node ready:"
"""As :mod:`node.commands.node` prints it (not imported from there: that loads the whole node,
a quarter of a second at every devnet command; a test checks the two agree)."""
DASHBOARD_READY = re.compile(r"^forklab dashboard ready: http://127\.0\.0\.1:(?P<port>\d+)\b")
DASHBOARD_READY_PREFIX = "forklab dashboard ready:"
"""As :mod:`node.dashboard.server` prints it (not imported: that loads aiohttp and the whole
dashboard; a test checks the two agree)."""
PACKAGE_ROOT = Path(__file__).resolve().parents[2]
"""The directory holding the ``node`` package, put first on the children's PYTHONPATH."""


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FORKLAB_")}
    paths = [str(PACKAGE_ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env


def derived_seed(seed: int, name: str) -> int:
    """A 64-bit seed for one process, from the devnet's seed and the process's name."""
    digest = hashlib.sha256(f"forklab-devnet/{seed}/{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def node_argv(paths: DevnetPaths, state: DevnetState, entry: NodeEntry) -> list[str]:
    return [
        sys.executable,
        "-m",
        "node",
        "node",
        "--network",
        state.network,
        "--datadir",
        str(paths.datadir(entry.name)),
        "--listen",
        f"127.0.0.1:{entry.p2p_port}",
        "--rpc-listen",
        f"127.0.0.1:{entry.rpc_port}",
        "--seed",
        str(derived_seed(state.seed, entry.name)),
    ]


def miner_argv(paths: DevnetPaths, state: DevnetState, miner: MinerEntry) -> list[str]:
    host = state.node(miner.node)
    return [
        sys.executable,
        "-m",
        "node.devnet",
        "miner",
        "--name",
        miner.name,
        "--rpc",
        host.rpc_url,
        "--datadir",
        str(paths.datadir(miner.node)),
        "--interval",
        repr(state.block_time / miner.share),
        "--seed",
        str(derived_seed(state.seed, miner.name)),
        "--wallet",
        miner.name,
        "--backend",
        state.miner_backend,
    ]


def dashboard_argv(paths: DevnetPaths, entry: DashboardEntry) -> list[str]:
    return [
        sys.executable,
        "-m",
        "node",
        "dashboard",
        "--dir",
        str(paths.root),
        "--host",
        "127.0.0.1",
        "--port",
        str(entry.port),
    ]


def node_markers(paths: DevnetPaths, name: str) -> tuple[str, ...]:
    return ("--datadir", str(paths.datadir(name)))


def miner_markers(paths: DevnetPaths, state: DevnetState, miner: MinerEntry) -> tuple[str, ...]:
    return ("--name", miner.name, str(paths.datadir(miner.node)))


def dashboard_markers(paths: DevnetPaths) -> tuple[str, ...]:
    return ("dashboard", "--dir", str(paths.root))


def is_running(paths: DevnetPaths, state: DevnetState, name: str) -> bool:
    """Whether node, miner or dashboard ``name`` of ``state`` is alive (and really ours)."""
    entry = state.process(name)
    if isinstance(entry, NodeEntry):
        return procs.running(entry.pid, *node_markers(paths, name))
    if isinstance(entry, MinerEntry):
        return procs.running(entry.pid, *miner_markers(paths, state, entry))
    return procs.running(entry.pid, *dashboard_markers(paths))


def start_node(paths: DevnetPaths, state: DevnetState, entry: NodeEntry) -> tuple[int, int]:
    """Spawn a node; its pid and the log offset its ready line will follow."""
    return _spawn_logged(paths, entry.name, node_argv(paths, state, entry))


def node_ready(
    paths: DevnetPaths, entry: NodeEntry, pid: int, offset: int, timeout: float
) -> NodeEntry:
    """Wait for a node's ready line; its entry with the pid and the ports it really bound."""
    line = procs.wait_ready(
        pid,
        paths.log(entry.name),
        offset,
        NODE_READY_PREFIX,
        timeout=timeout,
        what=f"node {entry.name}",
    )
    match = NODE_READY.match(line.strip())
    if match is None:
        raise DevnetError(f"node {entry.name} printed an unexpected ready line: {line!r}")
    p2p_port = int(match["p2p"].rsplit(":", 1)[1])
    rpc_port = int(match["rpc"].rsplit(":", 1)[1])
    return NodeEntry(entry.name, p2p_port, rpc_port, pid)


def start_miner(paths: DevnetPaths, state: DevnetState, miner: MinerEntry) -> tuple[int, int]:
    return _spawn_logged(paths, miner.name, miner_argv(paths, state, miner))


def miner_ready(
    paths: DevnetPaths, miner: MinerEntry, pid: int, offset: int, timeout: float
) -> None:
    procs.wait_ready(
        pid,
        paths.log(miner.name),
        offset,
        MINER_READY_PREFIX,
        timeout=timeout,
        what=f"miner {miner.name}",
    )


def start_dashboard(paths: DevnetPaths, entry: DashboardEntry) -> tuple[int, int]:
    return _spawn_logged(paths, entry.name, dashboard_argv(paths, entry))


def dashboard_ready(
    paths: DevnetPaths, entry: DashboardEntry, pid: int, offset: int, timeout: float
) -> DashboardEntry:
    """Wait for the dashboard's ready line; its entry with the pid and the port it bound."""
    line = procs.wait_ready(
        pid,
        paths.log(entry.name),
        offset,
        DASHBOARD_READY_PREFIX,
        timeout=timeout,
        what="the dashboard",
    )
    match = DASHBOARD_READY.match(line.strip())
    if match is None:
        raise DevnetError(f"the dashboard printed an unexpected ready line: {line!r}")
    return DashboardEntry(int(match["port"]), pid)


def _spawn_logged(paths: DevnetPaths, name: str, argv: list[str]) -> tuple[int, int]:
    """Spawn ``argv`` appending to ``name``'s log: its pid and the log offset where its output
    (and so its ready line) starts; the log keeps earlier runs' lines above it."""
    log_path = paths.log(name)
    offset = procs.log_size(log_path)
    return procs.spawn(argv, log_path, child_env()), offset
