"""The trace of a simulation: what happened, when, where, as typed events that hash.

Every event is a :class:`TraceEvent`: the virtual time in seconds since the simulation began,
the node it happened at ("" for the simulation itself), a :class:`TraceKind` and a few details
(strings, integers, floats, booleans; hashes as hex). Two kinds of events are interleaved in the
order they happened:

- what the simulation did: a miner found a block, a pool published or withheld one, a partition,
  a heal, a node killed or restarted, a link changed, a transaction sent;
- what each node published on its event bus (:mod:`node.events`): blocks connected and
  disconnected, blocks stored off its active chain, new tips, reorganisations, transactions
  accepted and removed, peers connected and disconnected.

**Digest.** Each event has one canonical line, compact JSON ``[time, node, kind, {details}]``
(floats in Python's shortest round-trip form, details in the order they were recorded); the
digest is SHA-256 over the lines, each followed by a newline. The same seed gives the same
lines, so the same digest, in any process; that is what the determinism tests compare. The
digest is kept as the trace grows, so a long run need not keep its events (``keep=False``).

What this module does not do: decide what to record (the simulation does) or analyse it
(:mod:`node.lab.analysis` works from the simulation's block records).
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

Value = str | int | float | bool


class TraceKind(enum.Enum):
    # -- the simulation
    NODE_STARTED = "node_started"
    NODE_KILLED = "node_killed"
    NODE_STOPPED = "node_stopped"
    BLOCK_FOUND = "block_found"
    """A miner found a block (it may still keep it to itself)."""
    BLOCK_PUBLISHED = "block_published"
    """A miner handed one of its blocks to a public node."""
    PARTITION = "partition"
    HEAL = "heal"
    LINK = "link"
    HASHRATE = "hashrate"
    TX_SENT = "tx_sent"
    NOTE = "note"
    """Free text from whoever drives the simulation (a scenario's narration)."""
    LOG_ERROR = "log_error"
    """A node (or asyncio) logged an error: a failure it caught and survived."""
    # -- the nodes' own events
    BLOCK_CONNECTED = "block_connected"
    BLOCK_DISCONNECTED = "block_disconnected"
    SIDE_BLOCK = "side_block"
    """A node stored a valid block off its active chain (a fork it saw); details: hash, height
    and fork_height, the height of the last block its branch shares with the active chain."""
    NEW_TIP = "new_tip"
    REORG = "reorg"
    TX_ACCEPTED = "tx_accepted"
    TX_REMOVED = "tx_removed"
    PEER_CONNECTED = "peer_connected"
    PEER_DISCONNECTED = "peer_disconnected"
    EVENTS_LOST = "events_lost"


@dataclass(frozen=True, slots=True)
class TraceEvent:
    time: float
    """Virtual seconds since the simulation began."""
    node: str
    """The node it happened at, or "" for the simulation."""
    kind: TraceKind
    details: tuple[tuple[str, Value], ...] = ()

    def get(self, key: str, default: Value | None = None) -> Value | None:
        for name, value in self.details:
            if name == key:
                return value
        return default

    def as_json(self) -> list[object]:
        return [self.time, self.node, self.kind.value, dict(self.details)]

    def line(self) -> str:
        """The canonical line the digest is computed over."""
        return json.dumps(self.as_json(), separators=(",", ":"), ensure_ascii=True)

    @classmethod
    def from_json(cls, data: list[object]) -> TraceEvent:
        time, node, kind, details = data
        if not (
            isinstance(time, int | float)
            and isinstance(node, str)
            and isinstance(kind, str)
            and isinstance(details, dict)
        ):
            raise ValueError(f"not a trace event: {data!r}")
        return cls(float(time), node, TraceKind(kind), tuple(details.items()))

    def __str__(self) -> str:
        where = self.node or "sim"
        text = " ".join(f"{key}={value}" for key, value in self.details)
        return f"{self.time:12.3f}  {where:<12} {self.kind.value:<18} {text}"


class Trace:
    """Events in order, with a running digest; ``keep=False`` keeps only the digest and counts."""

    def __init__(self, *, keep: bool = True) -> None:
        self.keep = keep
        self._events: list[TraceEvent] = []
        self._hash = hashlib.sha256()
        self.counts: Counter[TraceKind] = Counter()

    def record(self, event: TraceEvent) -> None:
        self._hash.update(event.line().encode("ascii") + b"\n")
        self.counts[event.kind] += 1
        if self.keep:
            self._events.append(event)

    @property
    def digest(self) -> str:
        """SHA-256 (hex) of the canonical lines of every event recorded so far."""
        return self._hash.hexdigest()

    def __len__(self) -> int:
        return sum(self.counts.values())

    def __iter__(self) -> Iterator[TraceEvent]:
        return iter(self._events)

    @property
    def events(self) -> tuple[TraceEvent, ...]:
        """The events kept (none if ``keep`` is False)."""
        return tuple(self._events)

    def of_kind(self, *kinds: TraceKind) -> list[TraceEvent]:
        return [e for e in self._events if e.kind in kinds]

    def lines(self) -> Iterator[str]:
        return (event.line() for event in self._events)

    def dump(self, path: Path) -> None:
        """Write the kept events as JSON lines (the canonical lines)."""
        with path.open("w", encoding="ascii") as out:
            for line in self.lines():
                out.write(line + "\n")

    @classmethod
    def load(cls, path: Path) -> Trace:
        return cls.from_lines(path.read_text(encoding="ascii").splitlines())

    @classmethod
    def from_lines(cls, lines: Iterable[str]) -> Trace:
        trace = cls()
        for line in lines:
            if line.strip():
                trace.record(TraceEvent.from_json(json.loads(line)))
        return trace
