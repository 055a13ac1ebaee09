"""The event stream: node events as JSON messages over a WebSocket at ``/events``.

A client connects (``ws://HOST:PORT/events``, optionally ``?types=new_tip,reorg`` to choose)
and receives one JSON text message per event, each with a ``"type"`` key. The first message is
always ``hello``, with the tip the stream starts from; every event after it happened later.

==================  =======================================================================
type                fields
==================  =======================================================================
hello               network, height, hash (the tip when the stream started), types
new_tip             hash, height, previous_hash, previous_height, reorg_depth (0: none)
block_connected     hash, height, previous_hash, time, txs (count), size
block_disconnected  hash, height, previous_hash, time, txs, size
side_block          hash, height, previous_hash, time, txs, size, fork_height, source ("local"
                    or a peer's address): a valid block stored off the active chain
reorg               old_tip, new_tip, fork_height, depth (blocks disconnected), connected
tx_accepted         txid, size, fee (coins), source ("local", "reorg" or a peer's address)
tx_removed          txid, reason (block, conflict, sizelimit, reorg)
peer_connected      id, address, inbound, user_agent
peer_disconnected   id, address, reason
events_lost         count: this client fell behind and that many events were dropped
==================  =======================================================================

The node never waits for a client: each has a bounded queue (:mod:`node.events`), and one that
does not keep up is told how much it missed (``events_lost``) rather than slowing anyone down.
Messages from the client are ignored; the server pings every 30 s to notice dead clients.
"""

from __future__ import annotations

from typing import Any

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
from node.rpc.jsonfmt import Amount

EVENT_TYPES: dict[str, type[Event]] = {
    cls.kind: cls
    for cls in (
        NewTip,
        BlockConnected,
        BlockDisconnected,
        SideBlock,
        Reorg,
        TxAccepted,
        TxRemoved,
        PeerConnected,
        PeerDisconnected,
    )
}
"""Event types a client may ask for by name (``events_lost`` always comes)."""

STREAM_QUEUE = 10_000
"""Events buffered per client before it is told it lost some."""


def parse_types(text: str | None) -> list[type[Event]] | None:
    """The event classes named in ``?types=a,b``; None for all. ValueError for unknown names."""
    if not text:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in EVENT_TYPES]
    if unknown:
        raise ValueError(
            f"unknown event type(s) {', '.join(unknown)}; known: {', '.join(EVENT_TYPES)}"
        )
    return [EVENT_TYPES[n] for n in names]


def event_json(event: Event) -> dict[str, Any]:
    """The stream message for one event."""
    body: dict[str, Any] = {"type": event.kind}
    if isinstance(event, BlockConnected | BlockDisconnected | SideBlock):
        header = event.block.header
        body |= {
            "hash": event.block.hash_hex,
            "height": event.height,
            "previous_hash": hash_hex(header.prev_hash),
            "time": header.time,
            "txs": len(event.block.transactions),
            "size": event.block.size,
        }
        if isinstance(event, SideBlock):
            body |= {"fork_height": event.fork_height, "source": event.source}
    elif isinstance(event, NewTip):
        body |= {
            "hash": hash_hex(event.hash),
            "height": event.height,
            "previous_hash": hash_hex(event.previous_hash),
            "previous_height": event.previous_height,
            "reorg_depth": event.reorg_depth,
        }
    elif isinstance(event, Reorg):
        body |= {
            "old_tip": hash_hex(event.old_tip),
            "new_tip": hash_hex(event.new_tip),
            "fork_height": event.fork_height,
            "depth": event.depth,
            "connected": event.connected,
        }
    elif isinstance(event, TxAccepted):
        body |= {
            "txid": event.tx.txid_hex,
            "size": event.tx.size,
            "fee": Amount(event.fee),
            "source": event.source,
        }
    elif isinstance(event, TxRemoved):
        body |= {"txid": hash_hex(event.txid), "reason": event.reason}
    elif isinstance(event, PeerConnected):
        body |= {
            "id": event.peer_id,
            "address": event.address,
            "inbound": event.inbound,
            "user_agent": event.user_agent,
        }
    elif isinstance(event, PeerDisconnected):
        body |= {"id": event.peer_id, "address": event.address, "reason": event.reason}
    elif isinstance(event, EventsLost):
        body |= {"count": event.count}
    return body
