"""What is tunable about the P2P layer, and what each protocol offence costs a peer.

The defaults suit a small network of real nodes; tests shorten the timers, the simulator may
change anything. Every limit here is also stated in docs/protocol.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from node import __version__
from node.core.errors import ErrorCode, RuleError, RuleKind
from node.p2p.messages import MAX_FRAME_SIZE


class Score:
    """Misbehaviour points per offence; at BAN a peer is disconnected and banned."""

    MALFORMED = 100
    OVERSIZED_FRAME = 100
    INVALID_BLOCK = 100
    INVALID_HEADER = 100
    UNKNOWN_MESSAGE = 20
    UNREQUESTED_HEADERS = 20
    UNCONNECTED_HEADERS = 20
    INVALID_TX = 10
    FLOOD = 10
    UNREQUESTED_DATA = 5
    BAN = 100


@dataclass(frozen=True)
class P2PConfig:
    """Everything tunable about the P2P layer."""

    listen: str | None = "127.0.0.1:0"
    """P2P listen address ("host:port", port 0 for any); None to accept no connections."""
    connect: tuple[str, ...] = ()
    """Peers to keep connected to, redialled with backoff (``--connect``)."""
    max_outbound: int = 8
    """Outbound connections the node keeps (configured peers first, then gossiped ones)."""
    max_inbound: int = 32
    user_agent: str = f"/forklab:{__version__}/"
    compact_blocks: bool = True
    """Relay blocks as cmpctblock where the peer supports it."""
    high_bandwidth_peers: int = 3
    """Peers asked to push new blocks as cmpctblock without an inv first (BIP 152's limit)."""
    ban_seconds: float = 24 * 3600.0
    handshake_timeout: float = 10.0
    ping_interval: float = 30.0
    ping_timeout: float = 60.0
    tick: float = 0.1
    """Period of the maintenance task: dialling, pings, request timeouts, and the batching of
    transaction announcements (each peer gets at most one inv of transactions per tick)."""
    idle_tick: float = 60.0
    """Longest the maintenance task sleeps when nothing is due (it wakes for new work)."""
    headers_poll_interval: float = 60.0
    """Each peer is asked for headers this often, so announcements lost on a broken link
    (a silent partition that healed) cannot leave a node behind for good."""
    block_timeout: float = 20.0
    """A requested block not received by then is asked of another peer."""
    tx_timeout: float = 10.0
    max_stalls: int = 3
    """Block requests a peer may let time out before it is disconnected."""
    max_blocks_in_flight: int = 16
    """Blocks in flight per peer (the moving download window spans several peers)."""
    download_window: int = 1024
    """Blocks are fetched at most this far above the active tip."""
    max_txs_in_flight: int = 100
    max_tx_announcements: int = 5000
    """Transactions a peer announced that are waiting to be fetched."""
    presync_max_headers: int = 50_000
    max_send_bytes: int = 32 * 1024 * 1024
    """Bytes queued for a peer before it is disconnected as not reading."""
    max_frame: int = MAX_FRAME_SIZE
    message_rate: float = 2000.0
    message_burst: float = 4000.0
    inv_rate: float = 5000.0
    """Announced items per second a peer may send (inv flood protection)."""
    inv_burst: float = 20_000.0
    unrequested_rate: float = 5.0
    """Unrequested blocks and transactions per second a peer may push."""
    unrequested_burst: float = 200.0
    addr_rate: float = 10.0
    addr_burst: float = 2000.0


_CONTEXTUAL = frozenset(
    {
        ErrorCode.TIME_TOO_NEW,
        ErrorCode.PREV_BLK_NOT_FOUND,
        ErrorCode.DUPLICATE,
        ErrorCode.BAD_TXNS_INPUTS_MISSINGORSPENT,
        ErrorCode.BAD_TXNS_PREMATURE_SPEND_OF_COINBASE,
        ErrorCode.BAD_TXNS_NONFINAL,
        ErrorCode.BAD_TXNS_BIP30,
    }
)
"""Consensus codes that depend on the receiver's chain or clock, not only on the object."""


def blames_sender(error: RuleError) -> bool:
    """Whether relaying an object refused with ``error`` is the relaying peer's fault."""
    return error.code.kind is RuleKind.CONSENSUS and error.code not in _CONTEXTUAL
