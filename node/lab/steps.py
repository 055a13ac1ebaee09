"""The steps of a scenario's timeline, and the amounts of coins they carry.

Each step is a frozen dataclass with its ``kind`` (the ``do`` of a ``[[step]]`` table) and a
one-line :meth:`describe` for narration, reports and the trace. What a step *does* is the
runners' business (:mod:`node.lab.runner_sim`, :mod:`node.lab.runner_real`); which names it may
use is checked by the scenario that holds it (:mod:`node.lab.scenario`).

What this module does not do: read files or check references.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import ClassVar

from node.core.tx import COIN, MAX_MONEY
from node.lab.conditions import Condition


def coins(text: str | int | float) -> int:
    """An amount of coins (``2.5``, ``"0.001"``) in units, exactly; ValueError if it is not one."""
    try:
        value = Decimal(str(text))
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a number of coins") from None
    units = value * COIN
    if not value.is_finite() or units != units.to_integral_value():
        raise ValueError(f"{text!r} is not a number of coins with at most eight decimals")
    if not 0 < units <= MAX_MONEY:
        raise ValueError(f"{text!r}: an amount is above 0 and at most 21,000,000 coins")
    return int(units)


def format_coins(units: int) -> str:
    """Units as coins, without trailing zeros: ``250000000`` -> ``"2.5"``."""
    text = f"{Decimal(units) / COIN:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


@dataclass(frozen=True)
class Partition:
    """Cut the network into groups; nodes named in no group form one more group."""

    kind: ClassVar[str] = "partition"
    groups: tuple[tuple[str, ...], ...]

    def describe(self) -> str:
        return "partition " + " | ".join(",".join(g) for g in self.groups)


@dataclass(frozen=True)
class Heal:
    """Lift the partition; nodes reconnect on their own."""

    kind: ClassVar[str] = "heal"

    def describe(self) -> str:
        return "heal"


@dataclass(frozen=True)
class Kill:
    """Crash a node."""

    kind: ClassVar[str] = "kill"
    node: str

    def describe(self) -> str:
        return f"kill {self.node}"


@dataclass(frozen=True)
class Restart:
    """Start a killed node again."""

    kind: ClassVar[str] = "restart"
    node: str

    def describe(self) -> str:
        return f"restart {self.node}"


@dataclass(frozen=True)
class SetLatency:
    """Set the one-way latency between two nodes, both ways."""

    kind: ClassVar[str] = "latency"
    a: str
    b: str
    seconds: float

    def describe(self) -> str:
        return f"latency {self.a} - {self.b}: {self.seconds:g} s"


@dataclass(frozen=True)
class SetShare:
    """Change a miner's hash power (simulator only)."""

    kind: ClassVar[str] = "share"
    miner: str
    share: float

    def describe(self) -> str:
        return f"share of {self.miner}: {self.share:g}"


@dataclass(frozen=True)
class Send:
    """Wallet ``sender`` pays ``amount`` units to ``to`` through node ``via``.

    ``conflicts`` names an earlier send whose first coin this one spends instead: a double
    spend, refused by a node that already has the other, accepted across a partition.
    """

    kind: ClassVar[str] = "send"
    sender: str
    to: str
    amount: int
    via: str | None = None
    """None: the first node."""
    label: str | None = None
    """A name for the transaction, for conditions (``confirmations(LABEL)``) and the report."""
    fee_rate: int | None = None
    conflicts: str | None = None

    def describe(self) -> str:
        text = f"send {format_coins(self.amount)} {self.sender} -> {self.to}"
        if self.via:
            text += f" via {self.via}"
        if self.conflicts:
            text += f", double-spending {self.conflicts}"
        return text + (f" ({self.label})" if self.label else "")


@dataclass(frozen=True)
class Mine:
    """Find ``blocks`` blocks: on ``node``'s tip now (paying ``to``, or ``@NODE``), by ``miner``
    now (its strategy decides where), or, with neither, by the miners at their shares while the
    network runs."""

    kind: ClassVar[str] = "mine"
    blocks: int = 1
    node: str | None = None
    miner: str | None = None
    to: str | None = None

    def describe(self) -> str:
        plural = "block" if self.blocks == 1 else "blocks"
        if self.node is not None:
            where = f" on {self.node}" + (f" paying {self.to}" if self.to else "")
        elif self.miner is not None:
            where = f" by {self.miner}"
        else:
            where = " by the miners"
        return f"mine {self.blocks} {plural}{where}"


@dataclass(frozen=True)
class Wait:
    """Let the network run ``seconds``, or until ``until`` holds (at most ``timeout``).

    ``mining``: the miners mine meanwhile (at their shares). A wait that times out is a failure.
    """

    kind: ClassVar[str] = "wait"
    seconds: float | None = None
    until: Condition | None = None
    timeout: float = 3600.0
    mining: bool = False

    def describe(self) -> str:
        mining = ", mining" if self.mining else ""
        if self.until is not None:
            return f"wait until {self.until} (at most {self.timeout:g} s{mining})"
        return f"wait {self.seconds:g} s{mining}"


@dataclass(frozen=True)
class Assert:
    """Check a condition now; a failure is reported (the steps go on)."""

    kind: ClassVar[str] = "assert"
    that: Condition
    message: str = ""

    def describe(self) -> str:
        return f"assert {self.that}"


@dataclass(frozen=True)
class Note:
    """A line of narration, put in the trace and shown as the scenario runs."""

    kind: ClassVar[str] = "note"
    text: str

    def describe(self) -> str:
        return self.text


Step = (
    Partition | Heal | Kill | Restart | SetLatency | SetShare | Send | Mine | Wait | Assert | Note
)
STEPS: dict[str, type[Step]] = {
    cls.kind: cls
    for cls in (
        Partition,
        Heal,
        Kill,
        Restart,
        SetLatency,
        SetShare,
        Send,
        Mine,
        Wait,
        Assert,
        Note,
    )
}


def step_context(index: int, step: Step) -> str:
    """``step 3 (partition)``: how messages name a step (numbered from 1, as people count)."""
    return f"step {index + 1} ({step.kind})"
