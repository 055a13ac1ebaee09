"""The declarations of a scenario: its nodes, links and miners, and the miners' strategies.

Plain frozen data, as a TOML table or Python builds it; :class:`node.lab.scenario.Scenario`
holds them and checks every reference (:mod:`node.lab.scenario` re-exports them all). What a
strategy *does* is :mod:`node.lab.strategies`'s.

What this module does not do: check anything beyond its own fields' types, or run anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True)
class NodeDecl:
    name: str
    clock_offset: float = 0.0
    """Seconds its clock is ahead (negative: behind) of the others' (simulator only)."""
    persistent: bool = True
    """Keep its chain on disk, so a restart resumes it; False: a restart starts from genesis
    (simulator only: real nodes always keep their chain)."""


@dataclass(frozen=True)
class LinkDecl:
    """Properties of the link between two nodes, both ways (see :class:`node.lab.LinkSpec`)."""

    a: str
    b: str
    latency: float | None = None
    """Seconds one way; None: the scenario's default latency."""
    jitter: float = 0.0
    bandwidth: float | None = None
    loss: float = 0.0


@dataclass(frozen=True)
class Honest:
    kind: ClassVar[str] = "honest"


@dataclass(frozen=True)
class Selfish:
    """Eyal and Sirer's selfish mining (:class:`node.lab.strategies.Selfish`)."""

    kind: ClassVar[str] = "selfish"
    publish_via: tuple[str, ...] = ()
    """Nodes the pool also hands its blocks to when it publishes."""


@dataclass(frozen=True)
class Censoring:
    """Leaves out transactions touching ``addresses`` (wallet or miner names, or addresses)."""

    kind: ClassVar[str] = "censoring"
    addresses: tuple[str, ...] = ()
    orphan: bool = False
    """Also refuse to build on blocks that include such a transaction."""
    give_up_after: int | None = None
    """With ``orphan``: accept such a block once this many blocks behind (None: never)."""


@dataclass(frozen=True)
class DoubleSpend:
    """Pays ``merchant``, mines a private branch paying itself instead, releases it once the
    merchant has seen ``confirmations`` (:class:`node.lab.strategies.DoubleSpend`)."""

    kind: ClassVar[str] = "double-spend"
    merchant: str = ""
    amount: int = 0
    """Units."""
    start_height: int = 0
    """The public height at which it pays and starts its private branch."""
    merchant_node: str = ""
    confirmations: int = 6
    give_up_behind: int = 6
    fee_rate: int = 2


StrategySpec = Honest | Selfish | Censoring | DoubleSpend
STRATEGIES: dict[str, type[StrategySpec]] = {
    cls.kind: cls for cls in (Honest, Selfish, Censoring, DoubleSpend)
}


@dataclass(frozen=True)
class MinerDecl:
    name: str
    node: str
    share: float
    strategy: StrategySpec = Honest()
