"""What the miner tells its user: typed events, as a live status line or as JSON lines.

The mining loop reports :class:`MinerEvent` objects to a :class:`Reporter`; two are provided:

* :class:`TextReporter`, for people. On a terminal the status (hashrate, blocks accepted and
  rejected, the height and target being mined) is one line redrawn in place, and everything
  else (blocks, new tips, the node coming and going, the summary) is a line of its own above
  it. Elsewhere (a pipe, a log file) the status is a line of its own too, at each report.
* :class:`JsonReporter`, for machines: one JSON object per line, ``{"event": KIND, "time":
  UNIX_SECONDS, ...}``, flushed at once. The keys of each kind are the fields of its class:

==========  ====================================================================================
event       keys
==========  ====================================================================================
started     ``protocol`` (gbt, getwork, in-process), ``node``, ``network``, ``payout`` (null for
            getwork), ``backend``, ``device``
work        ``height``, ``prev`` (parent hash), ``bits``, ``target`` (64 hex digits),
            ``reason`` (start, new_tip, new_template, after_block, exhausted, reconnected),
            ``first_roll`` (the extranonce it starts from), ``abandoned_after`` (seconds the
            stale search took to stop, or null)
block       ``height``, ``hash``, ``accepted``, ``reason`` (the node's, null when accepted),
            ``roll``, ``nonce``
status      ``hashrate`` (H/s over the last 10 s), ``hashes``, ``accepted``, ``rejected``,
            ``height``, ``bits``, ``target``, ``seconds`` (since start)
node        ``reachable``, ``detail``
stopped     ``seconds``, ``hashes``, ``hashrate`` (the average), ``accepted``, ``rejected``,
            ``why`` (stop: told to, by a signal or Miner.stop; blocks: as many as asked)
==========  ====================================================================================

What this module does not do: decide when to report (the loop does) or measure anything.
"""

from __future__ import annotations

import enum
import json
import sys
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, TextIO

from miner.rates import format_rate
from node.core.header import difficulty


class WorkReason(enum.Enum):
    """Why the loop took up new work."""

    START = "start"
    NEW_TIP = "new_tip"
    """The node's tip moved: the previous work was stale."""
    NEW_TEMPLATE = "new_template"
    """Same tip, a better template (new transactions, after the node's long-poll delay)."""
    AFTER_BLOCK = "after_block"
    """A block was submitted; work starts again from the node's answer."""
    EXHAUSTED = "exhausted"
    """Every header of the previous unit was searched (getwork cannot roll)."""
    RECONNECTED = "reconnected"
    """The node is back after an outage."""


class MinerEvent:
    """Base of the events; ``kind`` names it in JSON."""

    kind: ClassVar[str]

    def to_json(self) -> dict[str, Any]:
        """The event's fields (``kind`` aside), enums as their values."""
        return {k: v.value if isinstance(v, enum.Enum) else v for k, v in vars(self).items()}


@dataclass(frozen=True)
class Started(MinerEvent):
    kind: ClassVar[str] = "started"
    protocol: str
    node: str
    network: str
    payout: str | None
    backend: str
    device: str


@dataclass(frozen=True)
class NewWork(MinerEvent):
    kind: ClassVar[str] = "work"
    height: int
    prev: str
    bits: str
    target: str
    reason: WorkReason
    first_roll: int
    abandoned_after: float | None


@dataclass(frozen=True)
class BlockFound(MinerEvent):
    kind: ClassVar[str] = "block"
    height: int
    hash: str
    accepted: bool
    reason: str | None
    roll: int
    nonce: int


@dataclass(frozen=True)
class Status(MinerEvent):
    kind: ClassVar[str] = "status"
    hashrate: float
    hashes: int
    accepted: int
    rejected: int
    height: int | None
    bits: str | None
    target: str | None
    seconds: float


@dataclass(frozen=True)
class NodeState(MinerEvent):
    kind: ClassVar[str] = "node"
    reachable: bool
    detail: str


@dataclass(frozen=True)
class Stopped(MinerEvent):
    kind: ClassVar[str] = "stopped"
    seconds: float
    hashes: int
    hashrate: float
    accepted: int
    rejected: int
    why: str


class Reporter(ABC):
    @abstractmethod
    def report(self, event: MinerEvent) -> None: ...

    def close(self) -> None:  # noqa: B027 (most reporters hold nothing)
        """Finish the output (a live line is cleared)."""


class JsonReporter(Reporter):
    """One JSON object per line on ``stream``."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stdout

    def report(self, event: MinerEvent) -> None:
        record = {"event": event.kind, "time": round(time.time(), 3), **event.to_json()}
        self.stream.write(json.dumps(record) + "\n")
        self.stream.flush()


class TextReporter(Reporter):
    """Lines for people on ``stream``; the status line is redrawn in place on a terminal.

    New work after one of the miner's own blocks goes unsaid (the block's line and the status
    say it); JSON lines keep every event.
    """

    def __init__(self, stream: TextIO | None = None, *, interactive: bool | None = None) -> None:
        self.stream = stream if stream is not None else sys.stdout
        self.interactive = self.stream.isatty() if interactive is None else interactive
        self._live = False

    def report(self, event: MinerEvent) -> None:
        if isinstance(event, NewWork) and event.reason is WorkReason.AFTER_BLOCK:
            return
        if isinstance(event, Status) and self.interactive:
            self.stream.write("\r\x1b[K" + status_line(event))
            self.stream.flush()
            self._live = True
            return
        self._clear()
        self.stream.write(describe(event) + "\n")
        self.stream.flush()

    def close(self) -> None:
        self._clear()

    def _clear(self) -> None:
        if self._live:
            self.stream.write("\r\x1b[K")
            self._live = False


def status_line(status: Status) -> str:
    """``block 812 | target 1d00ffff (difficulty 1) | 46.6 MH/s | accepted 3, rejected 0``."""
    mining = "waiting for work"
    if status.height is not None and status.bits is not None:
        mining = f"block {status.height} | target {status.bits} ({_difficulty(status.bits)})"
    return (
        f"{mining} | {format_rate(status.hashrate)} | "
        f"accepted {status.accepted}, rejected {status.rejected}"
    )


def describe(event: MinerEvent) -> str:
    """One line for people about any event."""
    if isinstance(event, Started):
        pays = f", paying {event.payout}" if event.payout else ", paying the node's address"
        return (
            f"mining on {event.node} ({event.network}, {event.protocol}) with the "
            f"{event.backend} backend on {event.device}{pays}"
        )
    if isinstance(event, NewWork):
        return _describe_work(event)
    if isinstance(event, BlockFound):
        verdict = "accepted" if event.accepted else f"rejected: {event.reason}"
        return f"block {event.height} {event.hash} {verdict}"
    if isinstance(event, Status):
        return status_line(event)
    if isinstance(event, NodeState):
        return f"node {'back' if event.reachable else 'unreachable'}: {event.detail}"
    if isinstance(event, Stopped):
        return (
            f"{'done' if event.why == 'blocks' else 'stopped'} after {event.seconds:.1f} s: "
            f"{event.accepted} blocks accepted, {event.rejected} rejected, "
            f"{event.hashes:,} hashes at {format_rate(event.hashrate)} on average"
        )
    raise TypeError(f"no description for {type(event).__name__}")


def _describe_work(event: NewWork) -> str:
    work = f"block {event.height} on {event.prev[:16]}…, target {event.bits}"
    if event.reason is WorkReason.NEW_TIP:
        stopped = (
            f"; stale work abandoned in {event.abandoned_after:.2f} s"
            if event.abandoned_after is not None
            else ""
        )
        return f"new tip: {work}{stopped}"
    if event.reason is WorkReason.NEW_TEMPLATE:
        return f"new template (transactions): {work}"
    if event.reason is WorkReason.EXHAUSTED:
        return f"nonces spent, fresh work: {work}"
    return f"mining {work}"


def _difficulty(bits: str) -> str:
    return f"difficulty {difficulty(int(bits, 16)):.3g}"
