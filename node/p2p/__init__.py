"""The P2P layer: messages, transports, peers, relay and headers-first sync.

Modules, from the wire up:

- :mod:`~node.p2p.messages`: one class per message and the registry that decodes frames.
- :mod:`~node.p2p.compact`: compact blocks (short ids, rebuilding a block from the mempool).
- :mod:`~node.p2p.transport`: the real transport, aiohttp WebSockets at ``/p2p``.
- :mod:`~node.p2p.memory`: an in-memory transport for tests and the simulator.
- :mod:`~node.p2p.links`: partitions and latency imposed by the node on its own links.
- :mod:`~node.p2p.peer`: one connection, its send buffer and what we know of the peer.
- :mod:`~node.p2p.known`: the compact rolling filter of what each peer is known to have.
- :mod:`~node.p2p.addrbook`, :mod:`~node.p2p.orphans`: addresses and bans; orphan transactions.
- :mod:`~node.p2p.backend`: what the P2P layer asks of the chain and mempool.
- :mod:`~node.p2p.config`: every tunable, and the misbehaviour score of each offence.
- :mod:`~node.p2p.sync`: headers-first sync, parallel block download, block relay, compact
  blocks.
- :mod:`~node.p2p.relay`: transaction relay, request failover, orphans.
- :mod:`~node.p2p.handshake`, :mod:`~node.p2p.gossip`: version and verack, duplicate links;
  address gossip.
- :mod:`~node.p2p.manager`: the peer manager: connections, liveness, bans and rate limits; it
  hands each message to the handshake, gossip, sync or relay.

What this package does not do: validate blocks or transactions (the backend does), or decide
anything about consensus. The protocol is specified in docs/protocol.md.
"""

from node.p2p.links import LinkPolicy
from node.p2p.manager import P2PConfig, PeerManager
from node.p2p.memory import MemoryNetwork, MemoryTransport
from node.p2p.peer import PeerInfo
from node.p2p.transport import WebSocketTransport

__all__ = [
    "LinkPolicy",
    "MemoryNetwork",
    "MemoryTransport",
    "P2PConfig",
    "PeerInfo",
    "PeerManager",
    "WebSocketTransport",
]
