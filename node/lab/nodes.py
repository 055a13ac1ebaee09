"""Simulated nodes: real :class:`~node.node.Node` objects, named, restartable, and watched.

A :class:`SimNode` is a name that outlives restarts: its :class:`NodeSpec` (whom it dials, its
clock offset, whether its chain is kept on disk), its clock, and the running node, if any. The
node itself is the real one; the only difference is the event bus it is given, a
:class:`TapBus` that also hands each event to the simulation the moment it is published, so
the trace records it at the exact virtual time and in the exact order it happened.

What this module does not do: start or stop nodes (the simulation does, with the runtime it
builds for each), or decide topologies.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from node.chainstate import ChainState
from node.core.mempool import Mempool
from node.events import Event, EventBus
from node.lab.errors import SimulationError
from node.lab.vtime import VirtualClock
from node.node import Node
from node.p2p import P2PConfig

T = TypeVar("T")

SIM_P2P = P2PConfig(
    listen=None,
    tick=10.0,
    ping_interval=1200.0,
    ping_timeout=2400.0,
    headers_poll_interval=1200.0,
    max_inbound=1000,
)
"""P2P settings of simulated nodes, in virtual seconds.

The defaults of a real node tick every 0.25 s, ping every 30 s and poll peers for headers every
minute: cheap in real time, but in a simulation every tick and every message of every node is
work, and a day of network time would cost millions of them (measured: with a 5 s tick and
2-minute pings, the timers of 100 nodes cost four times the blocks they relay). Here timeouts
fire up to ten seconds late and liveness is checked every 20 minutes; links in the simulation
never die silently (a cut resets connections), so nothing waits on a ping to notice.
``max_outbound`` is set per node to the number of peers it is told to dial, so the topology is
the one asked for.
"""


@dataclass(frozen=True)
class NodeSpec:
    name: str
    connect: tuple[str, ...] = ()
    """Names of the nodes it dials (and redials) at start."""
    clock_offset: float = 0.0
    """Seconds its wall clock is ahead (negative: behind) of everyone else's."""
    persistent: bool = False
    """Keep its chain in a data directory, so a restart resumes it. Otherwise the chain lives in
    memory and a restarted node starts again from genesis, as a wiped node would."""
    private: bool = False
    """Not part of the public network (a pool's private node): it neither listens nor dials,
    and convergence checks leave it out."""
    p2p: P2PConfig | None = None
    """P2P settings replacing the simulation's (``listen`` and ``connect`` are still set)."""


class TapBus(EventBus):
    """The node's event bus, also handing every event to the simulation as it is published."""

    def __init__(self, tap: Callable[[Event], None]) -> None:
        super().__init__()
        self._tap = tap

    def publish(self, event: Event) -> None:
        super().publish(event)
        self._tap(event)


class SimNode:
    """A named simulated node across restarts; ``node`` is the running Node (None if down)."""

    def __init__(self, spec: NodeSpec, address: str, clock: VirtualClock) -> None:
        self.spec = spec
        self.address = address
        self.clock = clock
        self.node: Node | None = None
        self.incarnation = 0
        self.datadir: Path | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def up(self) -> bool:
        return self.node is not None

    def require(self) -> Node:
        if self.node is None:
            raise SimulationError(f"node {self.name} is down")
        return self.node

    @property
    def height(self) -> int:
        return self.require().height

    @property
    def tip(self) -> bytes:
        return self.require().tip.hash

    async def query(self, fn: Callable[[ChainState, Mempool], T]) -> T:
        return await self.require().query(fn)

    def __repr__(self) -> str:
        state = f"height {self.node.height}" if self.node is not None else "down"
        return f"<SimNode {self.name} {state}>"
