"""Waiting for a devnet's nodes to agree: what each says, and whether they share a tip.

``up``, ``heal`` and ``restart`` end by waiting for the network to settle, and ``status`` asks
the same question once: every running node that answers is surveyed over RPC (its tip, whether
it is still downloading, its peers by devnet name), and the nodes of each partition group
must share one tip, with every link the topology allows between running nodes up.

What this module does not do: start, stop or wire anything (:mod:`node.devnet.devnet` does).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from node.devnet.state import DevnetError, DevnetState
from node.devnet.topology import Topology, neighbours
from node.rpc.client import RpcCallError, RpcConnectionError

if TYPE_CHECKING:
    from node.devnet.devnet import Devnet

SYNC_TIMEOUT = 120.0
POLL = 0.1


@dataclass(frozen=True)
class View:
    """One node's answer during a wait."""

    height: int
    tip: str
    downloading: bool
    peers: frozenset[str]
    """Connected peers, by devnet name where known."""


def survey(devnet: Devnet, state: DevnetState) -> dict[str, View]:
    """What every running node that answers says about its tip and its peers."""
    by_address = {n.p2p_address: n.name for n in state.nodes}
    views = {}
    for entry in devnet.running_nodes(state):
        try:
            info, peers = devnet.client(state, entry.name, timeout=10).batch(
                [("getblockchaininfo", []), ("getpeerinfo", [])]
            )
        except (RpcConnectionError, DevnetError):
            continue
        if isinstance(info, RpcCallError) or isinstance(peers, RpcCallError):
            continue
        views[entry.name] = View(
            int(info["blocks"]),
            str(info["bestblockhash"]),
            bool(info["initialblockdownload"]),
            frozenset(by_address.get(p["listen_addr"], p["addr"]) for p in peers),
        )
    return views


def groups(state: DevnetState) -> list[tuple[str, ...]]:
    """The partition's groups, or all nodes as one."""
    return list(state.partition) if state.partition else [state.names]


def synced(devnet: Devnet, state: DevnetState) -> tuple[bool, str]:
    """Whether the running nodes of each partition group share one tip and every allowed
    link between running nodes is up; and a summary for people."""
    views = survey(devnet, state)
    edges = Topology.parse(state.topology).edges(len(state.nodes), state.seed)
    ok = True
    missing_links = 0
    for group in groups(state):
        members = {name: views[name] for name in group if name in views}
        if len({v.tip for v in members.values()}) > 1 or any(
            v.downloading for v in members.values()
        ):
            ok = False
        for name, view in members.items():
            expected = {state.names[i] for i in neighbours(edges, state.index(name))}
            missing_links += len((expected & members.keys()) - view.peers)
    heights = [v.height for v in views.values()]
    if not heights:
        return False, "no node answers"
    if min(heights) == max(heights):
        summary = f"height {max(heights)}"
    else:
        summary = f"heights {min(heights)} to {max(heights)}"
    if missing_links:
        summary += f", {missing_links // 2 or 1} links still connecting"
    return ok and not missing_links, summary


def wait_synced(
    devnet: Devnet, state: DevnetState, label: str, timeout: float = SYNC_TIMEOUT
) -> str:
    """Wait until :func:`synced`; the summary, or DevnetError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    with devnet.progress.step(label) as step:
        while True:
            ok, summary = synced(devnet, state)
            if ok:
                count = len(groups(state))
                where = "one tip" if count == 1 else f"one tip per group ({count} groups)"
                step.done(f"{len(devnet.running_nodes(state))} nodes on {where} at {summary}")
                return summary
            step.update(detail=summary)
            if time.monotonic() >= deadline:
                raise DevnetError(
                    f"the nodes did not agree on a tip within {timeout:g} s ({summary}); "
                    f"see forklab devnet status --dir {devnet.root}"
                )
            time.sleep(POLL)


def wait_caught_up(
    devnet: Devnet, state: DevnetState, name: str, timeout: float = SYNC_TIMEOUT
) -> int:
    """Wait until ``name`` reaches the best height its partition group had when asked."""
    group = next(g for g in groups(state) if name in g)
    views = survey(devnet, state)
    target = max((views[n].height for n in group if n in views and n != name), default=0)
    deadline = time.monotonic() + timeout
    with devnet.progress.step(f"{name} catching up", target or None) as step:
        while True:
            view = survey(devnet, state).get(name)
            height = 0 if view is None else view.height
            step.update(min(height, target), f"height {height}")
            if height >= target:
                step.done(f"{name} caught up at height {height}")
                return height
            if time.monotonic() >= deadline:
                raise DevnetError(f"{name} stayed at height {height} below {target}")
            time.sleep(POLL)
