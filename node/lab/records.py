"""What the simulation remembers besides the trace: blocks found, and errors the nodes logged.

A :class:`BlockRecord` per block a miner found: who, when, on what parent, when it was first
published and when each node first connected it. The analysis of a run (the main chain, stale
blocks, each miner's share, propagation times) works from these, not from the trace, so a long
run can keep only the trace's digest.

:class:`LoggedError` collects what the nodes log at ERROR level: a node survives a bug in
handling one peer by dropping the peer and logging it, and a simulation that should have had no
such thing checks that the list is empty. :func:`describe` turns a node's event into the kind
and details of a trace event.

What this module does not do: record anything by itself (the simulation does, as events come).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from node.core.block import Block
from node.core.hashing import hash_hex
from node.events import (
    BlockConnected,
    BlockDisconnected,
    Event,
    EventsLost,
    NewTip,
    PeerConnected,
    PeerDisconnected,
    Reorg,
    SideBlock,
    TxAccepted,
    TxRemoved,
)
from node.lab.trace import TraceKind, Value


@dataclass(slots=True)
class BlockRecord:
    """A block found in the simulation, and what became of it."""

    hash: bytes
    parent: bytes
    height: int
    miner: str
    found_at: float
    tx_count: int
    published_at: float | None = None
    """When its miner first handed it to a public node (None: never)."""
    arrivals: dict[str, float] = field(default_factory=dict)
    """Node name -> virtual time the node first connected it."""

    @classmethod
    def found(cls, block: Block, miner: str, now: float) -> BlockRecord:
        """The record of ``block``, found by ``miner`` at ``now``."""
        height = block.transactions[0].coinbase_height
        return cls(
            block.hash,
            block.header.prev_hash,
            height if height is not None else -1,
            miner,
            now,
            len(block.transactions) - 1,
        )

    @property
    def hash_hex(self) -> str:
        return hash_hex(self.hash)


def chain_to(records: Mapping[bytes, BlockRecord], tip: bytes) -> list[BlockRecord]:
    """The records of the chain ending at ``tip``, oldest first, back to the first block found
    in the simulation (blocks made before it have no record)."""
    chain = []
    walk = records.get(tip)
    while walk is not None:
        chain.append(walk)
        walk = records.get(walk.parent)
    chain.reverse()
    return chain


@dataclass(frozen=True)
class LoggedError:
    """Something logged at ERROR level while the simulation ran: a node's caught failure.

    A node survives a bug in handling one peer (it drops the peer and logs it); a simulation
    that should have no such thing checks :attr:`Simulation.errors` is empty.
    """

    time: float
    logger: str
    message: str
    exception: str
    """The exception's class name, or "" if none was attached."""


WATCHED_LOGGERS = ("forklab", "asyncio")
"""Loggers whose errors the simulation collects: the node's own, and asyncio's (a task that
failed with nobody awaiting it)."""


class ErrorCollector(logging.Handler):
    def __init__(self, sink: Callable[[logging.LogRecord], None]) -> None:
        super().__init__(logging.ERROR)
        self._sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self._sink(record)


def describe(event: Event) -> tuple[TraceKind, tuple[tuple[str, Value], ...]]:
    """The trace kind and details of a node event."""
    if isinstance(event, BlockConnected | BlockDisconnected):
        kind = (
            TraceKind.BLOCK_CONNECTED
            if isinstance(event, BlockConnected)
            else TraceKind.BLOCK_DISCONNECTED
        )
        return kind, (("hash", event.block.hash_hex), ("height", event.height))
    if isinstance(event, SideBlock):
        return TraceKind.SIDE_BLOCK, (
            ("hash", event.block.hash_hex),
            ("height", event.height),
            ("fork_height", event.fork_height),
        )
    if isinstance(event, NewTip):
        return TraceKind.NEW_TIP, (
            ("hash", hash_hex(event.hash)),
            ("height", event.height),
            ("reorg_depth", event.reorg_depth),
        )
    if isinstance(event, Reorg):
        return TraceKind.REORG, (
            ("old_tip", hash_hex(event.old_tip)),
            ("new_tip", hash_hex(event.new_tip)),
            ("fork_height", event.fork_height),
            ("depth", event.depth),
        )
    if isinstance(event, TxAccepted):
        return TraceKind.TX_ACCEPTED, (("txid", event.tx.txid_hex), ("source", event.source))
    if isinstance(event, TxRemoved):
        return TraceKind.TX_REMOVED, (("txid", hash_hex(event.txid)), ("reason", event.reason))
    if isinstance(event, PeerConnected):
        return TraceKind.PEER_CONNECTED, (("peer", event.address), ("inbound", event.inbound))
    if isinstance(event, PeerDisconnected):
        return TraceKind.PEER_DISCONNECTED, (("peer", event.address), ("reason", event.reason))
    if isinstance(event, EventsLost):
        return TraceKind.EVENTS_LOST, (("count", event.count),)
    return TraceKind.NOTE, (("event", event.kind),)
