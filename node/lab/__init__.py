"""The fork lab: real nodes in a deterministic simulator, to make forks on purpose.

The lab runs the node code of :mod:`node` unchanged, many nodes in one process, on virtual
time: an hour of network time with little to compute takes a fraction of a second, and a run
is a function of its seed (the same seed gives the same trace, byte for byte, in any process).

Modules, from the ground up:

- :mod:`~node.lab.vtime`: the virtual-time event loop and the nodes' virtual clock;
- :mod:`~node.lab.network`: simulated links (latency, jitter, bandwidth, loss, partitions);
- :mod:`~node.lab.trace`: typed events and the trace digest;
- :mod:`~node.lab.mining`: simulated hash power (a Poisson process per miner) finding real
  blocks with real proof of work;
- :mod:`~node.lab.strategies`: honest, selfish, censoring and double-spending miners;
- :mod:`~node.lab.nodes`, :mod:`~node.lab.records`: simulated nodes; block records and the
  errors nodes log;
- :mod:`~node.lab.wallets`: one deterministic wallet per name, and the payments they make;
- :mod:`~node.lab.sim`: the :class:`Simulation` that ties them together, and :func:`simulate`;
- :mod:`~node.lab.topology`: named topologies (line, ring, star, mesh, random:K);
- :mod:`~node.lab.experiments`: selfish mining and stale blocks against their formulas.

Scenarios, on top of the simulator and of real node processes:

- :mod:`~node.lab.declarations`, :mod:`~node.lab.steps`, :mod:`~node.lab.scenario`,
  :mod:`~node.lab.scenario_toml`: a scenario as frozen dataclasses and as a TOML file;
  :mod:`~node.lab.conditions`: what ``wait until`` and ``assert`` test;
- :mod:`~node.lab.runner_sim`, :mod:`~node.lab.interrupts`: a scenario in the simulator, and
  stopping it from another thread; :mod:`~node.lab.runner_real`,
  :mod:`~node.lab.real_limits`, :mod:`~node.lab.real_strategies`, :mod:`~node.lab.real_relay`:
  the same file on a devnet of real processes, attacks played by the runner as a pool's
  operator;
- :mod:`~node.lab.analysis`, :mod:`~node.lab.outcome`, :mod:`~node.lab.report`,
  :mod:`~node.lab.plot`: what a run measured, as text, JSON and SVG;
- :mod:`~node.lab.fuzz`, :mod:`~node.lab.invariants`, :mod:`~node.lab.shrink`: the fork fuzzer,
  what it checks after each case, and delta debugging of a failure to a minimal file;
- :mod:`~node.lab.scenarios`: the built-in scenarios (the dashboard's lessons).

What the lab does not do: change how a node behaves. Everything a node does in the lab it
does on a real network; only the clock, the randomness, the wires and the threads are injected.
"""

from node.lab.errors import SimulationError, SimulationStalled
from node.lab.mining import Miner
from node.lab.network import LinkSpec, SimNetwork
from node.lab.nodes import SIM_P2P, NodeSpec, SimNode
from node.lab.records import BlockRecord, LoggedError
from node.lab.sim import Simulation, derive_rng, simulate
from node.lab.strategies import AttackPhase, Censoring, DoubleSpend, Honest, Selfish, Strategy
from node.lab.topology import topology
from node.lab.trace import Trace, TraceEvent, TraceKind

__all__ = [
    "SIM_P2P",
    "AttackPhase",
    "BlockRecord",
    "Censoring",
    "DoubleSpend",
    "Honest",
    "LinkSpec",
    "LoggedError",
    "Miner",
    "NodeSpec",
    "Selfish",
    "SimNetwork",
    "SimNode",
    "Simulation",
    "SimulationError",
    "SimulationStalled",
    "Strategy",
    "Trace",
    "TraceEvent",
    "TraceKind",
    "derive_rng",
    "simulate",
    "topology",
]
