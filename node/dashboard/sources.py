"""Where the dashboard learns which nodes exist and how the network is meant to be wired.

Two sources, one shape (:class:`NetworkLayout`):

- :class:`DevnetSource` reads a devnet's state file (:mod:`node.devnet.state`) every time it is
  asked, so nodes restarted on new ports, partitions and latencies set from a terminal show up
  on the page without restarting the dashboard. It knows the topology's links (so a link cut by
  a partition can be drawn as cut rather than simply missing), each node's cookie, and each
  node's share of the hash power (the shares of the miners attached to it).
- :class:`StaticSource` is a fixed list of nodes given on the command line (``--node NAME URL
  DATADIR``), for nodes started by hand. It knows no topology, partition or hash shares.

What this module does not do: talk to nodes, or change the devnet.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from node.dashboard.nodes import NodeEndpoint
from node.devnet import state as devnet_state
from node.devnet.state import DevnetError, DevnetPaths
from node.devnet.topology import Topology

Link = tuple[str, str]
"""Two node names, in sorted order."""


def link(a: str, b: str) -> Link:
    return (a, b) if a <= b else (b, a)


@dataclass(frozen=True)
class NetworkLayout:
    endpoints: tuple[NodeEndpoint, ...]
    topology: frozenset[Link] = frozenset()
    """The links the network is meant to have (empty: unknown, use what is observed)."""
    partition: tuple[tuple[str, ...], ...] | None = None
    """The groups of a partition in force; links between groups are cut."""
    latency: tuple[tuple[Link, int], ...] = ()
    """One-way delay in milliseconds set on a link."""
    network: str | None = None
    wallets: tuple[str, ...] = ()
    """Names of the devnet's wallets, which can pay (``send``): the funded ones, then each
    miner's payout wallet (named after the miner)."""
    miners: tuple[tuple[str, str, float], ...] = ()
    """The devnet's miners: name, the node it mines on, its share of the hash power."""
    devnet_dir: Path | None = None
    error: str | None = None
    """Why the layout could not be read this time (the previous one is kept meanwhile)."""

    def separated(self, a: str, b: str) -> bool:
        """Whether the partition in force puts ``a`` and ``b`` on different sides."""
        if self.partition is None:
            return False
        group_of = {name: i for i, group in enumerate(self.partition) for name in group}
        return group_of.get(a, -1) != group_of.get(b, -2)


class NodeSource(Protocol):
    async def layout(self) -> NetworkLayout:
        """The network as it is now; never raises (errors go in ``NetworkLayout.error``)."""
        ...


class StaticSource:
    """A fixed list of nodes, and the partition and latencies the dashboard itself set."""

    def __init__(self, endpoints: Sequence[NodeEndpoint]) -> None:
        names = [e.name for e in endpoints]
        if len(set(names)) != len(names):
            raise ValueError(f"node names must be unique: {', '.join(names)}")
        self._layout = NetworkLayout(tuple(endpoints))

    async def layout(self) -> NetworkLayout:
        return self._layout

    @property
    def current(self) -> NetworkLayout:
        return self._layout

    def record_partition(self, groups: tuple[tuple[str, ...], ...] | None) -> None:
        self._layout = replace(self._layout, partition=groups)

    def record_latency(self, a: str, b: str, ms: int) -> None:
        key = link(a, b)
        kept = tuple(item for item in self._layout.latency if item[0] != key)
        self._layout = replace(self._layout, latency=kept + (((key, ms),) if ms else ()))


class DevnetSource:
    """The nodes of the devnet in ``root``, read from its state file at every call."""

    def __init__(self, root: Path) -> None:
        self.paths = DevnetPaths(root)
        self._last = NetworkLayout((), devnet_dir=root)

    async def layout(self) -> NetworkLayout:
        try:
            state = await asyncio.to_thread(devnet_state.load, self.paths)
        except DevnetError as exc:
            return _with_error(self._last, str(exc))
        if state is None:
            return _with_error(
                self._last, f"no devnet in {self.paths.root} (start one with forklab devnet up)"
            )
        self._last = layout_of(state, self.paths)
        return self._last


def layout_of(state: devnet_state.DevnetState, paths: DevnetPaths) -> NetworkLayout:
    """The layout a devnet state describes."""
    shares: dict[str, float] = {}
    for miner in state.miners:
        shares[miner.node] = shares.get(miner.node, 0.0) + miner.share
    endpoints = tuple(
        NodeEndpoint(
            name=entry.name,
            rpc_url=entry.rpc_url,
            datadir=paths.datadir(entry.name),
            hash_share=shares.get(entry.name, 0.0) if state.miners else None,
        )
        for entry in state.nodes
    )
    names = state.names
    try:
        edges = Topology.parse(state.topology).edges(len(names), state.seed)
    except DevnetError:
        edges = ()
    return NetworkLayout(
        endpoints=endpoints,
        topology=frozenset(link(names[i], names[j]) for i, j in edges),
        partition=state.partition,
        latency=tuple((link(x.a, x.b), x.ms) for x in state.latency),
        network=state.network,
        wallets=(*state.wallets, *(m.name for m in state.miners)),
        miners=tuple((m.name, m.node, m.share) for m in state.miners),
        devnet_dir=paths.root,
    )


def _with_error(layout: NetworkLayout, error: str) -> NetworkLayout:
    return replace(layout, error=error)
