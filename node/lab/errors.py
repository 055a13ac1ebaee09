"""The fork lab's errors, under forklab's one hierarchy.

::

    ForklabError                  (node.core.errors)
    └── SimulationError           the simulation cannot do what was asked: an unknown node,
        │                         a node that is down, a miner strategy that failed, a bad
        │                         parameter of an experiment
        └── SimulationStalled     nothing is ready and no timer is left: virtual time can never
                                  move again (every task waits for something that cannot come)

A rule a block breaks is not a simulation error: nodes refuse such blocks as they would on any
network, and the trace shows it.
"""

from __future__ import annotations

from node.core.errors import ForklabError


class SimulationError(ForklabError):
    """The simulation cannot do what was asked; the message says why."""


class SimulationStalled(SimulationError):  # noqa: N818 (a state, like asyncio.TimeoutError)
    """Every task waits for something that no timer or callback will ever bring."""
