"""Where work comes from and where solutions go: the interface the mining loop drives.

One interface, three sources, so that the loop (:mod:`miner.loop`) is written once:

=================  ======================  ====================================================
source             module                  work, news of a new tip, submission
=================  ======================  ====================================================
GbtSource          :mod:`miner.rpc`        ``getblocktemplate``; its long poll; ``submitblock``
GetworkSource      :mod:`miner.rpc`        ``getwork``; the ``/events`` stream (or polling);
                                           ``getwork DATA``
NodeSource         :mod:`miner.inprocess`  a template from ``Node.query``; the node's event
                                           bus; ``Node.submit_block``
=================  ======================  ====================================================

Errors a source raises while mining are :class:`~node.core.errors.ForklabError`; those that
pass with time (the node is unreachable, restarting or still downloading blocks) are
:class:`NodeUnavailableError`, and the loop waits and asks again. Errors of configuration (an
address of another network, credentials refused) come from :meth:`WorkSource.start`, before
any mining, and end the run.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from miner.work import Solution, Work
from node.core.errors import ForklabError


class NodeUnavailableError(ForklabError):
    """The node cannot give work or take a block just now; asking again later may succeed."""


@dataclass(frozen=True)
class SourceInfo:
    """What a source is connected to, for the status report."""

    protocol: str
    """``gbt``, ``getwork`` or ``in-process``."""
    node: str
    """The node's API URL, or a description of an in-process node."""
    network: str
    payout: str | None
    """The address coinbases pay, or None where the node chooses (getwork)."""


@dataclass(frozen=True)
class Submission:
    """The node's verdict on a solution."""

    accepted: bool
    reason: str | None = None
    """Why not, in the node's words (BIP 22's ``submitblock`` results: ``inconclusive``,
    ``duplicate``, ``bad-prevblk``...), or how delivery failed."""


class WorkSource(ABC):
    """A node as the mining loop sees it. Coroutines run on the loop that owns the source."""

    @abstractmethod
    async def start(self) -> SourceInfo:
        """Connect and check the configuration (the address's network); ForklabError if wrong."""

    @abstractmethod
    async def fetch(self) -> Work:
        """Work on the node's current tip, now."""

    @abstractmethod
    async def next_change(self, work: Work) -> Work:
        """Wait until ``work`` is out of date (a new tip, or a better template) and return the
        work to mine instead. Cancelling the wait is always safe."""

    @abstractmethod
    async def submit(self, solution: Solution) -> Submission:
        """Hand a solution to the node and return its verdict."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections and subscriptions; safe to call twice, or without start."""
