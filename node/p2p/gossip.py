"""Address gossip: answering ``getaddr``, learning from ``addr``, passing fresh ones on.

A node answers one ``getaddr`` per connection with a sample of its address book (and its own
listening address first); it takes in at most ``addr_rate`` addresses a second from each peer
(more is a flood), and relays small announcements of addresses seen in the last ten minutes to
two random peers, so a new node becomes known without anyone broadcasting whole books.

What this module does not do: keep the book (:mod:`node.p2p.addrbook`) or decide whom to dial
(the peer manager does).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from node.p2p.config import Score
from node.p2p.messages import MAX_ADDR, Addr, AddrEntry, GetAddr
from node.p2p.peer import Peer

if TYPE_CHECKING:
    from node.p2p.manager import PeerManager


class AddressGossip:
    """The address messages of one peer manager."""

    def __init__(self, manager: PeerManager) -> None:
        self.manager = manager

    async def on_getaddr(self, peer: Peer, message: GetAddr) -> None:
        manager = self.manager
        if peer.answered_getaddr:
            return
        peer.answered_getaddr = True
        entries = [
            AddrEntry(info.address, info.last_seen)
            for info in manager.addrbook.sample(MAX_ADDR)
            if info.address not in peer.names
        ]
        if manager.listen_address:
            entries = [AddrEntry(manager.listen_address, int(manager.clock.time())), *entries]
        peer.send(Addr(tuple(entries[:MAX_ADDR])))

    async def on_addr(self, peer: Peer, message: Addr) -> None:
        manager = self.manager
        if not manager.allow_addresses(peer, len(message.entries)):
            manager.misbehaving(peer, Score.FLOOD, "addr flood")
            return
        unix_now = int(manager.clock.time())
        fresh = []
        for entry in message.entries:
            seen = min(entry.last_seen, unix_now)
            if manager.addrbook.add(entry.address, seen) and unix_now - seen < 600:
                fresh.append(AddrEntry(entry.address, seen))
        # Small announcements of new addresses travel on, to two random peers.
        if fresh and len(message.entries) <= 10:
            others = [p for p in manager.active_peers() if p is not peer]
            for other in manager.rng.sample(others, min(2, len(others))):
                other.send(Addr(tuple(fresh)))
