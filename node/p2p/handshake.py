"""The handshake: version and verack, the checks on a peer's version, and duplicate links.

Each side sends ``version`` (the dialler first, the listener in answer) and acknowledges the
other's with ``verack``; nothing else may come before both are done (docs/protocol.md,
"Handshake sequence"). A version is refused for another network (``reject wrong-network``), an
obsolete protocol (``reject obsolete``), our own nonce (we dialled ourselves: the address is
remembered as ours and never dialled again) or an address the link policy blocks. When two
nodes dial each other at once, both keep the connection dialled by the lower nonce.

Once done, the peer's listening address goes in the address book, a dialled peer is asked for
addresses, block sync starts and the event bus hears of the peer.

What this module does not do: time the handshake out or close the connection (the peer
manager does both).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from node.events import PeerConnected
from node.p2p.messages import (
    MIN_PROTOCOL_VERSION,
    PROTOCOL_VERSION,
    GetAddr,
    Reject,
    Verack,
    Version,
)
from node.p2p.peer import Peer

if TYPE_CHECKING:
    from node.p2p.manager import PeerManager


class HandshakeError(Exception):
    """The handshake failed; the message says why (logged, and the connection closed)."""


class Handshake:
    """The handshake rules of one peer manager."""

    def __init__(self, manager: PeerManager) -> None:
        self.manager = manager

    async def run(self, peer: Peer) -> None:
        """Exchange version and verack with ``peer``; HandshakeError says why not."""
        if not peer.inbound:
            peer.send(self.our_version())
        while not (peer.version is not None and peer.verack_received):
            message = await peer.recv()
            if isinstance(message, Version):
                if peer.version is not None:
                    raise HandshakeError("duplicate version")
                self._check_version(peer, message)
                peer.version = message
                if peer.inbound:
                    peer.send(self.our_version())
                peer.send(Verack())
            elif isinstance(message, Verack):
                if peer.version is None:
                    raise HandshakeError("verack before version")
                peer.verack_received = True
            elif isinstance(message, Reject):
                raise HandshakeError(f"refused by the peer: {message.reason} {message.detail}")
            else:
                raise HandshakeError(f"{message.msgtype} before the handshake completed")

    def duplicate_of(self, peer: Peer) -> Peer | None:
        """When two nodes dial each other at once, the connection to drop (else None).

        Both ends apply the same rule, so they drop the same one: keep the connection dialled
        by the node with the lower nonce.
        """
        assert peer.version is not None
        for other in self.manager.active_peers():
            if other.version is not None and other.version.nonce == peer.version.nonce:

                def dialer(p: Peer) -> int:
                    assert p.version is not None
                    return self.manager.nonce if not p.inbound else p.version.nonce

                if dialer(peer) == dialer(other):
                    return peer  # two connections in one direction: keep the first
                return peer if dialer(peer) > dialer(other) else other
        return None

    def _check_version(self, peer: Peer, version: Version) -> None:
        manager = self.manager
        if version.genesis_hash != manager.params.genesis_hash:
            detail = f"this node is on {manager.params.name}"
            peer.send(Reject(Version.msgtype, "wrong-network", b"", detail))
            raise HandshakeError(f"peer is on another network: {detail}")
        if version.protocol_version < MIN_PROTOCOL_VERSION:
            peer.send(Reject(Version.msgtype, "obsolete", b"", f"need {MIN_PROTOCOL_VERSION}"))
            raise HandshakeError(f"obsolete protocol version {version.protocol_version}")
        if version.nonce == manager.nonce:
            if peer.inbound:
                # Answer in kind, so our dialling side sees its own nonce and remembers the
                # address it dialled as ours.
                peer.send(self.our_version())
            if peer.dialed is not None:
                manager.addrbook.own_addresses[peer.dialed] = None
                manager.addrbook.remove(peer.dialed)
            raise HandshakeError("connected to ourselves")
        if manager.links.is_blocked([version.listen_address]):
            raise HandshakeError("link blocked by policy")

    def our_version(self) -> Version:
        manager = self.manager
        return Version(
            PROTOCOL_VERSION,
            manager.params.genesis_hash,
            manager.backend.tip.height,
            manager.listen_address,
            manager.config.user_agent,
            manager.nonce,
            int(manager.clock.time()),
        )

    def done(self, peer: Peer) -> None:
        """The handshake finished: remember the address, start syncing, tell the bus."""
        manager = self.manager
        assert peer.version is not None
        peer.handshake_done = True
        now = manager.clock.monotonic()
        unix_now = int(manager.clock.time())
        peer.best_known_height = peer.version.best_height
        if peer.dialed is not None:
            manager.addrbook.mark_good(peer.dialed, now, unix_now)
        elif peer.version.listen_address:
            manager.addrbook.add(peer.version.listen_address, unix_now)
        if not peer.inbound:
            peer.send(GetAddr())
        manager.sync.peer_ready(peer)
        peer.ping_sent_at = now - manager.config.ping_interval  # ping at the next tick
        manager.wake()
        manager.bus.publish(
            PeerConnected(peer.id, peer.address, peer.inbound, peer.version.user_agent)
        )
