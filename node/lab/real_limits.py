"""What of a scenario real nodes cannot do: :func:`unsupported` gives the reasons, in words.

A devnet runs real node processes of a preset network on loopback, so a scenario runs there
only if it asks nothing the simulator alone can do: changed chain constants (``[params]``),
links' jitter, bandwidth and loss (the devnet sets latency only), skewed clocks, nodes that
lose their chain on a restart, hash power that changes mid-run, conflicting ``send`` steps,
invariants (they read the simulator's nodes from inside), a bound on simulated time, and
strategies real nodes cannot play as a pool's operator would
(:func:`node.lab.real_strategies.unsupported` says which and why).

What this module does not do: run anything (:mod:`node.lab.runner_real` does, and refuses a
scenario this module finds reasons against).
"""

from __future__ import annotations

from node.devnet.state import NETWORKS
from node.lab import real_strategies
from node.lab.scenario import Scenario, Send, SetShare


def unsupported(scenario: Scenario) -> list[str]:
    """Why ``scenario`` cannot run on real nodes; empty if it can."""
    reasons = []
    if scenario.network not in NETWORKS:
        reasons.append(f"network {scenario.network}: a devnet runs {' or '.join(NETWORKS)}")
    if scenario.params:
        reasons.append("[params] changes the chain's constants, which real nodes of a preset keep")
    reasons += real_strategies.unsupported(scenario)
    for node in scenario.nodes:
        if node.clock_offset:
            reasons.append(f"node {node.name} has a skewed clock (simulator only)")
        if not node.persistent:
            reasons.append(f"node {node.name} loses its chain on a restart (simulator only)")
    for link in scenario.links:
        if link.jitter or link.bandwidth is not None or link.loss:
            reasons.append(
                f"link {link.a} - {link.b}: jitter, bandwidth and loss are simulated only"
            )
    for index, step in enumerate(scenario.steps):
        where = f"step {index + 1} ({step.kind})"
        if isinstance(step, SetShare):
            reasons.append(f"{where}: hash power cannot change on a running devnet")
        if isinstance(step, Send) and step.conflicts:
            reasons.append(f"{where}: double spends are simulated only")
    if scenario.invariants:
        reasons.append("invariants are checked in the simulator only")
    if scenario.time_limit is not None:
        reasons.append("time_limit bounds simulated time only")
    for wallet in scenario.wallets:
        if wallet[:1] == "m" and wallet[1:].isdigit():
            reasons.append(f"wallet {wallet}: on a devnet that name is a miner's")
    return reasons
