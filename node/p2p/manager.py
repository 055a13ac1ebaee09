"""The peer manager: connections, handshake, relay, headers-first sync and DoS protection.

Glossary
--------
announce
    Tell peers an object exists: ``inv`` for transactions and blocks, or a pushed
    ``cmpctblock`` to the (at most ``high_bandwidth_peers``) peers that asked for pushes.
in flight
    An object asked for with ``getdata`` and not yet received. Each object is in flight from
    at most one peer at a time; after a timeout or a ``notfound`` it is asked of another peer
    that announced it.
best known
    The most-work header a peer has shown us (by ``headers``, ``inv`` or a block). Blocks are
    downloaded from a peer only on the way to its best known header.
presync
    Headers of a fork that does not (yet) have more work than our tip are not stored (anyone
    can make cheap headers that would fill the index); while a peer keeps sending full batches,
    they are held in memory (at most ``presync_max_headers``) and stored at once when the fork
    proves to have more work.
misbehaviour
    Points a peer earns by breaking the protocol (table in docs/protocol.md); at 100 it is
    disconnected and banned for ``ban_seconds``.

Concurrency: one reader task per peer decodes and handles that peer's messages in order; a
slow chain operation for one peer delays only that peer. Bookkeeping (in-flight maps, orphans)
lives on the event loop and is never touched by another thread; the chain and mempool are
reached only through :class:`~node.p2p.backend.ChainBackend`. Every timeout is measured on the
injected clock by one maintenance task, so a simulator with virtual time drives it exactly.

What this module does not do: validate anything (the backend does), or store anything on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from node import __version__
from node.core.block import Block
from node.core.errors import DecodeError, ErrorCode, RuleError, RuleKind
from node.core.params import NetworkParams
from node.core.tx import Transaction
from node.events import EventBus, PeerConnected, PeerDisconnected
from node.p2p.addrbook import AddressBook
from node.p2p.backend import ChainBackend, HeadersStatus
from node.p2p.compact import PartialBlock, make_compact
from node.p2p.links import LinkPolicy
from node.p2p.messages import (
    MAX_ADDR,
    MAX_FRAME_SIZE,
    MAX_HEADERS,
    MIN_PROTOCOL_VERSION,
    PROTOCOL_VERSION,
    Addr,
    AddrEntry,
    BlockMsg,
    BlockTxn,
    CmpctBlock,
    GetAddr,
    GetBlockTxn,
    GetData,
    GetHeaders,
    Headers,
    Inv,
    InvItem,
    InvType,
    Message,
    NotFound,
    Ping,
    Pong,
    Reject,
    SendCmpct,
    TxMsg,
    UnknownMessageError,
    Verack,
    Version,
)
from node.p2p.orphans import OrphanPool
from node.p2p.peer import Direction, Peer, PeerInfo, TokenBucket, with_timeout
from node.p2p.transport import FrameTooLarge
from node.runtime import Connection, ConnectionClosed, Listener, Runtime, TransportError

log = logging.getLogger("forklab.p2p")

ZERO_HASH = bytes(32)
COMPACT_VERSION = 1
RECENT_BLOCKS = 16
RECENT_REJECTS = 20_000
COMPACT_DEPTH = 10
"""Blocks at most this far below the tip are served as cmpctblock when asked so."""


class Score:
    """Misbehaviour points per offence; 100 means disconnect and ban."""

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
    """Everything tunable about the P2P layer; the defaults suit a small network."""

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
    tick: float = 0.25
    """Period of the maintenance task: dialling, pings, request timeouts."""
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


@dataclass
class _Limits:
    messages: TokenBucket
    inv: TokenBucket
    unrequested: TokenBucket
    addr: TokenBucket


@dataclass
class _TxRequest:
    announcers: dict[int, None] = field(default_factory=dict)
    """Peers that announced it, in announcement order."""
    peer: int | None = None
    """Peer it is in flight from."""


class HandshakeError(Exception):
    pass


Handler = Callable[[Peer, Any], Awaitable[None]]


class PeerManager:
    """All peers of one node; see the module docstring."""

    def __init__(
        self,
        config: P2PConfig,
        params: NetworkParams,
        *,
        runtime: Runtime,
        backend: ChainBackend,
        bus: EventBus,
        links: LinkPolicy | None = None,
    ) -> None:
        self.config = config
        self.params = params
        self.runtime = runtime
        self.clock = runtime.clock
        self.rng = runtime.rng
        self.backend = backend
        self.bus = bus
        self.links = links if links is not None else LinkPolicy()
        self.nonce = self.rng.getrandbits(64)
        self.addrbook = AddressBook(self.rng)
        self.orphans = OrphanPool()
        self.peers: dict[int, Peer] = {}
        self.listen_address = ""
        self.network_active = True

        self._next_id = 1
        self._limits: dict[int, _Limits] = {}
        self._dialing: dict[str, None] = {}
        self._listener: Listener | None = None
        self._tasks: set[asyncio.Future[Any]] = set()
        self._maintenance: asyncio.Task[None] | None = None
        self._block_requests: dict[bytes, int] = {}
        self._tx_requests: dict[bytes, _TxRequest] = {}
        self._partials: dict[bytes, tuple[int, PartialBlock]] = {}
        self._recent_blocks: OrderedDict[bytes, Block] = OrderedDict()
        self._recent_rejects: OrderedDict[bytes, None] = OrderedDict()
        self._hb_peers: list[int] = []
        self._stopping = False
        self._handlers: dict[type[Message], Handler] = {
            Ping: self._on_ping,
            Pong: self._on_pong,
            GetAddr: self._on_getaddr,
            Addr: self._on_addr,
            Inv: self._on_inv,
            GetData: self._on_getdata,
            NotFound: self._on_notfound,
            GetHeaders: self._on_getheaders,
            Headers: self._on_headers,
            BlockMsg: self._on_block,
            TxMsg: self._on_tx,
            SendCmpct: self._on_sendcmpct,
            CmpctBlock: self._on_cmpctblock,
            GetBlockTxn: self._on_getblocktxn,
            BlockTxn: self._on_blocktxn,
            Reject: self._on_reject,
            Version: self._on_late_handshake,
            Verack: self._on_late_handshake,
        }
        self.links.on_change(self._apply_links)
        for address in config.connect:
            self.addrbook.add(address, 0, persistent=True)

    # ----------------------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        if self.config.listen is not None:
            self._listener = await self.runtime.transport.listen(
                self.config.listen, self._on_accept
            )
            self.listen_address = self._listener.address
        self._maintenance = asyncio.ensure_future(self._maintain())

    async def stop(self) -> None:
        self._stopping = True
        if self._maintenance is not None:
            self._maintenance.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._maintenance
        # Peers first: a server waits for its open connections before it stops listening.
        for peer in list(self.peers.values()):
            peer.close("shutting down")
        for peer in list(self.peers.values()):
            with contextlib.suppress(TimeoutError):
                await with_timeout(self.clock, 5.0, peer.wait_closed())
        if self._listener is not None:
            await self._listener.close()
            self._listener = None
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, awaitable: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(awaitable)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ----------------------------------------------------------------------------- control

    def active_peers(self) -> list[Peer]:
        return [p for p in self.peers.values() if p.handshake_done and not p.closing]

    def peer_info(self) -> list[PeerInfo]:
        return [p.info() for p in self.active_peers()]

    def add_node(self, address: str) -> None:
        """Keep a connection to ``address`` (bitcoind's ``addnode ADDR add``)."""
        self.addrbook.add(address, int(self.clock.time()), persistent=True)
        self.addrbook.reset_backoff([address])

    def remove_node(self, address: str) -> bool:
        known = address in self.addrbook
        self.addrbook.remove(address)
        return known

    async def connect_once(self, address: str) -> None:
        """Dial ``address`` now, without keeping it (``addnode ADDR onetry``)."""
        await self._dial(address)

    def disconnect(self, *, address: str | None = None, peer_id: int | None = None) -> bool:
        found = False
        for peer in list(self.peers.values()):
            if peer.id == peer_id or (address is not None and address in peer.names):
                peer.close("disconnected on request")
                found = True
        return found

    def set_network_active(self, active: bool) -> None:
        self.network_active = active
        if not active:
            for peer in list(self.peers.values()):
                peer.close("network disabled")
        else:
            self.addrbook.reset_backoff()

    def ban(self, address: str, seconds: float | None = None) -> str:
        seconds = self.config.ban_seconds if seconds is None else seconds
        key = self.addrbook.ban(address, self.clock.monotonic() + seconds)
        for peer in list(self.peers.values()):
            if any(self.addrbook.is_banned(n, self.clock.monotonic()) for n in peer.names):
                peer.close("banned")
        return key

    def unban(self, key: str) -> bool:
        return self.addrbook.unban(key)

    def clear_bans(self) -> None:
        self.addrbook.clear_bans()

    def banned(self) -> dict[str, float]:
        return self.addrbook.bans(self.clock.monotonic())

    def _apply_links(self) -> None:
        for peer in list(self.peers.values()):
            if self.links.is_blocked(peer.names):
                peer.close("link blocked by policy")
        self.addrbook.reset_backoff()

    # ----------------------------------------------------------------------------- connections

    async def _on_accept(self, conn: Connection) -> None:
        now = self.clock.monotonic()
        inbound = sum(1 for p in self.peers.values() if p.inbound)
        reason = ""
        if self._stopping or not self.network_active:
            reason = "network inactive"
        elif inbound >= self.config.max_inbound:
            reason = "too many inbound connections"
        elif self.addrbook.is_banned(conn.remote, now):
            reason = "banned"
        elif self.links.is_blocked([conn.remote]):
            reason = "link blocked by policy"
        if reason:
            log.debug("refusing %s: %s", conn.remote, reason)
            await conn.close()
            return
        self._spawn(self._run_peer(self._new_peer(conn, Direction.INBOUND, None)))

    def _new_peer(self, conn: Connection, direction: Direction, dialed: str | None) -> Peer:
        peer = Peer(
            self._next_id,
            conn,
            direction,
            dialed=dialed,
            clock=self.clock,
            policy=self.links,
            max_send_bytes=self.config.max_send_bytes,
            max_frame=self.config.max_frame,
        )
        self._next_id += 1
        now = self.clock.monotonic()
        c = self.config
        self._limits[peer.id] = _Limits(
            TokenBucket(c.message_rate, c.message_burst, now),
            TokenBucket(c.inv_rate, c.inv_burst, now),
            TokenBucket(c.unrequested_rate, c.unrequested_burst, now),
            TokenBucket(c.addr_rate, c.addr_burst, now),
        )
        self.peers[peer.id] = peer
        return peer

    async def _dial(self, address: str) -> None:
        if address in self._dialing:
            return
        self._dialing[address] = None
        try:
            try:
                conn = await self.runtime.transport.connect(address)
            except TransportError as exc:
                log.debug("cannot connect to %s: %s", address, exc)
                self.addrbook.mark_failed(address, self.clock.monotonic())
                return
        finally:
            self._dialing.pop(address, None)
        if self._stopping or not self.network_active or self.links.is_blocked([address]):
            await conn.close()
            return
        peer = self._new_peer(conn, Direction.OUTBOUND, address)
        await self._run_peer(peer)

    def _outbound_addresses(self) -> set[str]:
        names: set[str] = set(self._dialing)
        for peer in self.peers.values():
            names.update(peer.names)
        names.update(self.addrbook.own_addresses)
        if self.listen_address:
            names.add(self.listen_address)
        return names

    async def _run_peer(self, peer: Peer) -> None:
        peer.start_writer()
        try:
            try:
                await with_timeout(self.clock, self.config.handshake_timeout, self._handshake(peer))
            except (HandshakeError, TimeoutError, DecodeError, ConnectionClosed) as exc:
                reason = str(exc) or type(exc).__name__
                log.debug("handshake with %s failed: %s", peer, reason)
                if peer.dialed is not None:
                    self.addrbook.mark_failed(peer.dialed, self.clock.monotonic())
                peer.close(f"handshake failed: {reason}")
                return
            duplicate = self._duplicate_of(peer)
            if duplicate is not None:
                duplicate.close("duplicate connection")
                if duplicate is peer:
                    return
            self._on_handshake_done(peer)
            await self._read_loop(peer)
        except Exception:
            # A bug handling one peer's message must cost that peer, never the node.
            log.exception("internal error with %s", peer)
            peer.close("internal error")
        finally:
            peer.close(peer.close_reason or "connection closed")
            await self._forget_peer(peer)

    async def _handshake(self, peer: Peer) -> None:
        if not peer.inbound:
            peer.send(self._our_version())
        while not (peer.version is not None and peer.verack_received):
            message = await peer.recv()
            if isinstance(message, Version):
                if peer.version is not None:
                    raise HandshakeError("duplicate version")
                self._check_version(peer, message)
                peer.version = message
                if peer.inbound:
                    peer.send(self._our_version())
                peer.send(Verack())
            elif isinstance(message, Verack):
                if peer.version is None:
                    raise HandshakeError("verack before version")
                peer.verack_received = True
            elif isinstance(message, Reject):
                raise HandshakeError(f"refused by the peer: {message.reason} {message.detail}")
            else:
                raise HandshakeError(f"{message.msgtype} before the handshake completed")

    def _duplicate_of(self, peer: Peer) -> Peer | None:
        """When two nodes dial each other at once, the connection to drop (else None).

        Both ends apply the same rule, so they drop the same one: keep the connection dialled
        by the node with the lower nonce.
        """
        assert peer.version is not None
        for other in self.active_peers():
            if other.version is not None and other.version.nonce == peer.version.nonce:

                def dialer(p: Peer) -> int:
                    assert p.version is not None
                    return self.nonce if not p.inbound else p.version.nonce

                if dialer(peer) == dialer(other):
                    return peer  # two connections in one direction: keep the first
                return peer if dialer(peer) > dialer(other) else other
        return None

    def _check_version(self, peer: Peer, version: Version) -> None:
        if version.genesis_hash != self.params.genesis_hash:
            detail = f"this node is on {self.params.name}"
            peer.send(Reject(Version.msgtype, "wrong-network", b"", detail))
            raise HandshakeError(f"peer is on another network: {detail}")
        if version.protocol_version < MIN_PROTOCOL_VERSION:
            peer.send(Reject(Version.msgtype, "obsolete", b"", f"need {MIN_PROTOCOL_VERSION}"))
            raise HandshakeError(f"obsolete protocol version {version.protocol_version}")
        if version.nonce == self.nonce:
            if peer.dialed is not None:
                self.addrbook.own_addresses[peer.dialed] = None
                self.addrbook.remove(peer.dialed)
            raise HandshakeError("connected to ourselves")
        if self.links.is_blocked([version.listen_address]):
            raise HandshakeError("link blocked by policy")

    def _our_version(self) -> Version:
        return Version(
            PROTOCOL_VERSION,
            self.params.genesis_hash,
            self.backend.tip.height,
            self.listen_address,
            self.config.user_agent,
            self.nonce,
            int(self.clock.time()),
        )

    def _on_handshake_done(self, peer: Peer) -> None:
        assert peer.version is not None
        peer.handshake_done = True
        now = self.clock.monotonic()
        unix_now = int(self.clock.time())
        peer.best_known_height = peer.version.best_height
        if peer.dialed is not None:
            self.addrbook.mark_good(peer.dialed, now, unix_now)
        elif peer.version.listen_address:
            self.addrbook.add(peer.version.listen_address, unix_now)
        if self.config.compact_blocks:
            high = len(self._hb_peers) < self.config.high_bandwidth_peers
            if high:
                self._hb_peers.append(peer.id)
                peer.high_bandwidth_to = True
            peer.send(SendCmpct(high, COMPACT_VERSION))
        if not peer.inbound:
            peer.send(GetAddr())
        self._spawn(self._request_headers(peer))
        peer.ping_sent_at = now - self.config.ping_interval  # ping at the next tick
        self.bus.publish(
            PeerConnected(peer.id, peer.address, peer.inbound, peer.version.user_agent)
        )

    async def _forget_peer(self, peer: Peer) -> None:
        await peer.wait_closed()
        if self.peers.pop(peer.id, None) is None:
            return
        self._limits.pop(peer.id, None)
        for block_hash in peer.blocks_in_flight:
            if self._block_requests.get(block_hash) == peer.id:
                del self._block_requests[block_hash]
        for block_hash, (owner, _partial) in list(self._partials.items()):
            if owner == peer.id:
                del self._partials[block_hash]
        for txid in list(peer.txs_in_flight):
            self._tx_request_failed(txid, peer)
        for request in self._tx_requests.values():
            request.announcers.pop(peer.id, None)
        if peer.id in self._hb_peers:
            self._hb_peers.remove(peer.id)
            self._promote_high_bandwidth()
        if peer.dialed is not None and not self._stopping:
            # Not a failure to count up, but do not redial in the same breath either.
            self.addrbook.mark_failed(peer.dialed, self.clock.monotonic())
            info = self.addrbook.get(peer.dialed)
            if info is not None and peer.handshake_done:
                info.failures = 0
        if peer.handshake_done:
            self.bus.publish(PeerDisconnected(peer.id, peer.address, peer.close_reason))
            if not self._stopping:
                await self._schedule_all()

    def _promote_high_bandwidth(self) -> None:
        if not self.config.compact_blocks:
            return
        for peer in self.active_peers():
            if len(self._hb_peers) >= self.config.high_bandwidth_peers:
                return
            if peer.compact and peer.id not in self._hb_peers:
                self._hb_peers.append(peer.id)
                peer.high_bandwidth_to = True
                peer.send(SendCmpct(True, COMPACT_VERSION))

    # ----------------------------------------------------------------------------- reading

    async def _read_loop(self, peer: Peer) -> None:
        limits = self._limits[peer.id]
        while not peer.closing:
            try:
                message = await peer.recv()
            except FrameTooLarge as exc:
                self.misbehaving(peer, Score.OVERSIZED_FRAME, str(exc))
                return
            except ConnectionClosed:
                return
            except UnknownMessageError as exc:
                self.misbehaving(peer, Score.UNKNOWN_MESSAGE, str(exc))
                continue
            except DecodeError as exc:
                self.misbehaving(peer, Score.MALFORMED, f"malformed message: {exc}")
                return
            if not limits.messages.take(self.clock.monotonic()):
                self.misbehaving(peer, Score.FLOOD, "message flood")
                continue
            await self._handlers[type(message)](peer, message)

    def misbehaving(self, peer: Peer, score: int, reason: str) -> None:
        """Add ``score`` points; at 100 the peer is disconnected and banned."""
        peer.misbehaviour += score
        log.info("peer %s misbehaving (+%d = %d): %s", peer, score, peer.misbehaviour, reason)
        if peer.misbehaviour >= Score.BAN and not peer.closing:
            until = self.clock.monotonic() + self.config.ban_seconds
            if peer.dialed is not None:
                self.addrbook.ban(peer.dialed, until)
            self.addrbook.ban(peer.conn.remote, until)
            peer.close(f"banned: {reason}", flush=True)

    # ----------------------------------------------------------------------------- liveness

    async def _on_ping(self, peer: Peer, message: Ping) -> None:
        peer.send(Pong(message.nonce))

    async def _on_pong(self, peer: Peer, message: Pong) -> None:
        if peer.ping_nonce is not None and message.nonce == peer.ping_nonce:
            peer.ping_seconds = self.clock.monotonic() - peer.ping_sent_at
            peer.ping_nonce = None

    async def _on_late_handshake(self, peer: Peer, message: Message) -> None:
        self.misbehaving(peer, Score.MALFORMED, f"{message.msgtype} after the handshake")

    async def _on_reject(self, peer: Peer, message: Reject) -> None:
        log.info(
            "peer %s rejected our %s: %s %s", peer, message.message, message.reason, message.detail
        )

    # ----------------------------------------------------------------------------- addresses

    async def _on_getaddr(self, peer: Peer, message: GetAddr) -> None:
        if peer.answered_getaddr:
            return
        peer.answered_getaddr = True
        entries = [
            AddrEntry(info.address, info.last_seen)
            for info in self.addrbook.sample(MAX_ADDR)
            if info.address not in peer.names
        ]
        if self.listen_address:
            entries = [AddrEntry(self.listen_address, int(self.clock.time())), *entries]
        peer.send(Addr(tuple(entries[:MAX_ADDR])))

    async def _on_addr(self, peer: Peer, message: Addr) -> None:
        if not self._limits[peer.id].addr.take(self.clock.monotonic(), len(message.entries)):
            self.misbehaving(peer, Score.FLOOD, "addr flood")
            return
        unix_now = int(self.clock.time())
        fresh = []
        for entry in message.entries:
            seen = min(entry.last_seen, unix_now)
            if self.addrbook.add(entry.address, seen) and unix_now - seen < 600:
                fresh.append(AddrEntry(entry.address, seen))
        # Small announcements of new addresses travel on, to two random peers.
        if fresh and len(message.entries) <= 10:
            others = [p for p in self.active_peers() if p is not peer]
            for other in self.rng.sample(others, min(2, len(others))):
                other.send(Addr(tuple(fresh)))

    # ----------------------------------------------------------------------------- inventory

    async def _on_inv(self, peer: Peer, message: Inv) -> None:
        if not self._limits[peer.id].inv.take(self.clock.monotonic(), len(message.items)):
            self.misbehaving(peer, Score.FLOOD, "inv flood")
            return
        tx_hashes = []
        for item in message.items:
            peer.add_known(item.hash)
            if item.type is InvType.TX:
                tx_hashes.append(item.hash)
            else:
                await self._on_block_announced(peer, item.hash)
        # Announcements are heeded even while blocks are downloading: a peer that shows us
        # headers of a heavier chain and then withholds its blocks must not be able to make
        # us deaf to transactions.
        if tx_hashes:
            await self._on_txs_announced(peer, tx_hashes)

    async def _on_block_announced(self, peer: Peer, block_hash: bytes) -> None:
        info = await self.backend.header_info(block_hash)
        if info is None:
            if peer.headers_requests < 4:
                await self._request_headers(peer, stop=block_hash)
            return
        height, work = info
        self._update_best_known(peer, block_hash, height, work)
        await self._schedule(peer)

    def _update_best_known(self, peer: Peer, block_hash: bytes, height: int, work: int) -> None:
        if work > peer.best_known_work:
            peer.best_known_hash = block_hash
            peer.best_known_work = work
            peer.best_known_height = height

    async def _on_txs_announced(self, peer: Peer, txids: list[bytes]) -> None:
        wanted = [
            t
            for t in txids
            if t not in self._recent_rejects
            and t not in self.orphans
            and peer.id not in self._tx_requests.get(t, _NO_REQUEST).announcers
        ]
        if not wanted:
            return
        have = await self.backend.have_tx(wanted)
        announced = sum(1 for r in self._tx_requests.values() if peer.id in r.announcers)
        to_fetch = []
        for txid, known in zip(wanted, have, strict=True):
            if known or announced >= self.config.max_tx_announcements:
                continue
            request = self._tx_requests.setdefault(txid, _TxRequest())
            request.announcers[peer.id] = None
            announced += 1
            if request.peer is None and len(peer.txs_in_flight) < self.config.max_txs_in_flight:
                request.peer = peer.id
                peer.txs_in_flight[txid] = self.clock.monotonic()
                to_fetch.append(InvItem(InvType.TX, txid))
        if to_fetch:
            peer.send(GetData(tuple(to_fetch)))

    def _tx_request_failed(self, txid: bytes, peer: Peer) -> None:
        """``peer`` will not deliver ``txid``: ask the next peer that announced it."""
        peer.txs_in_flight.pop(txid, None)
        request = self._tx_requests.get(txid)
        if request is None:
            return
        request.announcers.pop(peer.id, None)
        if request.peer == peer.id:
            request.peer = None
        for other_id in request.announcers:
            other = self.peers.get(other_id)
            if other is None or other.closing:
                continue
            if len(other.txs_in_flight) >= self.config.max_txs_in_flight:
                continue
            request.peer = other_id
            other.txs_in_flight[txid] = self.clock.monotonic()
            other.send(GetData((InvItem(InvType.TX, txid),)))
            return
        if request.peer is None and not request.announcers:
            del self._tx_requests[txid]

    async def _on_getdata(self, peer: Peer, message: GetData) -> None:
        missing: list[InvItem] = []
        txids = [i.hash for i in message.items if i.type is InvType.TX]
        if txids:
            for txid, tx in zip(txids, await self.backend.get_txs(txids), strict=True):
                if tx is None:
                    missing.append(InvItem(InvType.TX, txid))
                else:
                    peer.add_known(txid)
                    peer.send(TxMsg(tx))
        for item in message.items:
            if item.type is InvType.TX:
                continue
            await peer.wait_writable()
            if peer.closing:
                return
            block = await self._load_block(item.hash)
            if block is None:
                missing.append(item)
                continue
            peer.add_known(item.hash)
            if item.type is InvType.CMPCT_BLOCK and await self._is_recent(block):
                peer.send(make_compact(block, self.rng.getrandbits(64)))
            else:
                peer.send(BlockMsg(block))
        if missing:
            peer.send(NotFound(tuple(missing)))

    async def _is_recent(self, block: Block) -> bool:
        info = await self.backend.header_info(block.hash)
        return info is not None and self.backend.tip.height - info[0] <= COMPACT_DEPTH

    async def _load_block(self, block_hash: bytes) -> Block | None:
        block = self._recent_blocks.get(block_hash)
        if block is None:
            block = await self.backend.get_block(block_hash)
        return block

    async def _on_notfound(self, peer: Peer, message: NotFound) -> None:
        for item in message.items:
            if item.type is InvType.TX:
                if item.hash in peer.txs_in_flight:
                    self._tx_request_failed(item.hash, peer)
            elif item.hash in peer.blocks_in_flight:
                self._block_request_done(item.hash, peer)
        await self._schedule_all()

    # ----------------------------------------------------------------------------- headers

    async def _request_headers(self, peer: Peer, stop: bytes = ZERO_HASH) -> None:
        locator = await self.backend.locator()
        peer.headers_requests += 1
        peer.send(GetHeaders(tuple(locator), stop))

    async def _on_getheaders(self, peer: Peer, message: GetHeaders) -> None:
        headers = await self.backend.headers_after(message.locator, message.stop_hash, MAX_HEADERS)
        if headers:
            peer.add_known(headers[-1].hash)
        peer.send(Headers(tuple(headers)))

    async def _on_headers(self, peer: Peer, message: Headers) -> None:
        if peer.headers_requests <= 0:
            self.misbehaving(peer, Score.UNREQUESTED_HEADERS, "unrequested headers")
            return
        peer.headers_requests -= 1
        headers = list(message.headers)
        if not headers:
            peer.presync = []
            return
        for previous, header in itertools.pairwise(headers):
            if header.prev_hash != previous.hash:
                self.misbehaving(peer, Score.UNCONNECTED_HEADERS, "headers not contiguous")
                return
        batch = headers
        if peer.presync and headers[0].prev_hash == peer.presync[-1].hash:
            batch = peer.presync + headers
        peer.presync = []
        outcome = await self.backend.accept_headers(batch, int(self.clock.time()))
        full = len(headers) == MAX_HEADERS
        if outcome.status is HeadersStatus.UNCONNECTED:
            self.misbehaving(peer, Score.UNCONNECTED_HEADERS, "headers do not connect")
            return
        if outcome.status is HeadersStatus.INVALID:
            assert outcome.error is not None
            self.misbehaving(peer, Score.INVALID_HEADER, f"invalid header: {outcome.error}")
            return
        if outcome.status is HeadersStatus.LOW_WORK:
            if full and len(batch) + MAX_HEADERS <= self.config.presync_max_headers:
                peer.presync = batch
                locator = await self.backend.locator()
                peer.headers_requests += 1
                peer.send(GetHeaders((batch[-1].hash, *locator[:MAX_HEADERS]), ZERO_HASH))
            return
        assert outcome.last_hash is not None
        self._update_best_known(peer, outcome.last_hash, outcome.last_height, outcome.last_work)
        peer.add_known(outcome.last_hash)
        if full:
            locator = await self.backend.locator()
            peer.headers_requests += 1
            peer.send(GetHeaders((outcome.last_hash, *locator[:100]), ZERO_HASH))
        await self._schedule_all()

    # ----------------------------------------------------------------------------- download

    async def _schedule_all(self) -> None:
        for peer in self.active_peers():
            await self._schedule(peer)

    async def _schedule(self, peer: Peer) -> None:
        """Ask ``peer`` for the next blocks on the way to its best known header."""
        tip = self.backend.tip
        room = self.config.max_blocks_in_flight - len(peer.blocks_in_flight)
        if peer.closing or room <= 0 or peer.best_known_hash is None:
            return
        if peer.best_known_work <= tip.chain_work:
            return
        wanted = await self.backend.blocks_to_download(
            peer.best_known_hash, room, set(self._block_requests)
        )
        items = []
        now = self.clock.monotonic()
        for block_hash, height in wanted:
            if block_hash in self._block_requests or peer.closing:
                continue
            self._block_requests[block_hash] = peer.id
            peer.blocks_in_flight[block_hash] = now
            compact = (
                self.config.compact_blocks
                and peer.compact
                and len(wanted) == 1
                and height == self.backend.tip.height + 1
            )
            items.append(InvItem(InvType.CMPCT_BLOCK if compact else InvType.BLOCK, block_hash))
        if items:
            peer.send(GetData(tuple(items)))

    def _block_request_done(self, block_hash: bytes, peer: Peer | None) -> None:
        owner = self._block_requests.pop(block_hash, None)
        for candidate in (peer, self.peers.get(owner) if owner is not None else None):
            if candidate is not None:
                candidate.blocks_in_flight.pop(block_hash, None)
        self._partials.pop(block_hash, None)

    # ----------------------------------------------------------------------------- blocks

    async def _on_block(self, peer: Peer, message: BlockMsg) -> None:
        block = message.block
        requested = block.hash in peer.blocks_in_flight
        self._block_request_done(block.hash, peer)
        peer.add_known(block.hash)
        if not requested and not self._limits[peer.id].unrequested.take(self.clock.monotonic()):
            self.misbehaving(peer, Score.FLOOD, "unrequested block flood")
            return
        await self.process_block(block, peer)

    async def process_block(self, block: Block, peer: Peer | None) -> None:
        """Hand a block to the chain, then relay, punish or fetch what it needs."""
        source = peer.address if peer is not None else "local"
        outcome = await self.backend.submit_block(block, source)
        if outcome.error is not None:
            error = outcome.error
            if peer is not None and _blames_sender(error):
                peer.send(Reject(BlockMsg.msgtype, error.reason, block.hash, error.detail[:200]))
                self.misbehaving(peer, Score.INVALID_BLOCK, f"invalid block: {error}")
            elif peer is not None and error.code is ErrorCode.PREV_BLK_NOT_FOUND:
                await self._request_headers(peer)
            return
        if outcome.orphan:
            if peer is not None:
                await self._request_headers(peer)
            return
        self._remember_block(block)
        if peer is not None:
            info = await self.backend.header_info(block.hash)
            if info is not None:
                self._update_best_known(peer, block.hash, info[0], info[1])
        if outcome.tip_changed and outcome.tip_block is not None:
            self._recent_rejects.clear()
            self.announce_block(outcome.tip_block, peer)
        for tx in outcome.readded:
            self.announce_tx(tx, None)
        if not outcome.duplicate:
            await self._retry_orphans([tx.txid for tx in block.transactions])
        await self._schedule_all()

    def _remember_block(self, block: Block) -> None:
        self._recent_blocks[block.hash] = block
        while len(self._recent_blocks) > RECENT_BLOCKS:
            self._recent_blocks.popitem(last=False)

    def announce_block(self, block: Block, source: Peer | None) -> None:
        """Tell every peer but ``source`` about a new tip (pushed whole to high-bandwidth peers)."""
        self._remember_block(block)
        compact: CmpctBlock | None = None
        for peer in self.active_peers():
            if peer is source or peer.knows(block.hash):
                continue
            if self.config.compact_blocks and peer.compact and peer.high_bandwidth_from:
                if compact is None:
                    compact = make_compact(block, self.rng.getrandbits(64))
                peer.add_known(block.hash)
                peer.send(compact)
            else:
                peer.queue_inv(InvItem(InvType.BLOCK, block.hash))

    # ----------------------------------------------------------------------------- compact

    async def _on_sendcmpct(self, peer: Peer, message: SendCmpct) -> None:
        if message.version != COMPACT_VERSION:
            return
        peer.compact = True
        peer.high_bandwidth_from = message.high_bandwidth
        if peer.id not in self._hb_peers:
            self._promote_high_bandwidth()

    async def _on_cmpctblock(self, peer: Peer, message: CmpctBlock) -> None:
        block_hash = message.header.hash
        requested = block_hash in peer.blocks_in_flight or peer.high_bandwidth_to
        peer.add_known(block_hash)
        if not requested and not self._limits[peer.id].unrequested.take(self.clock.monotonic()):
            self.misbehaving(peer, Score.FLOOD, "unrequested cmpctblock flood")
            return
        if (await self.backend.have_block([block_hash]))[0]:
            self._block_request_done(block_hash, peer)
            return
        owner = self._block_requests.get(block_hash)
        if owner is not None and owner != peer.id:
            return  # another peer is already delivering it
        # Claimed before the header is stored, so the download scheduler, which may run while
        # we wait, does not ask another peer for the same block.
        self._block_requests[block_hash] = peer.id
        peer.blocks_in_flight[block_hash] = self.clock.monotonic()
        outcome = await self.backend.accept_headers([message.header], int(self.clock.time()))
        if outcome.status is HeadersStatus.UNCONNECTED:
            self._block_request_done(block_hash, peer)
            await self._request_headers(peer, stop=block_hash)
            return
        if outcome.status is HeadersStatus.INVALID:
            self._block_request_done(block_hash, peer)
            self.misbehaving(peer, Score.INVALID_HEADER, f"invalid header: {outcome.error}")
            return
        if outcome.status is HeadersStatus.LOW_WORK:
            self._block_request_done(block_hash, peer)
            return
        self._update_best_known(peer, block_hash, outcome.last_height, outcome.last_work)
        try:
            partial = PartialBlock(message)
        except ValueError:
            peer.send(GetData((InvItem(InvType.BLOCK, block_hash),)))
            return
        await self.backend.fill_compact(partial)
        missing = partial.missing()
        if missing:
            self._partials[block_hash] = (peer.id, partial)
            peer.send(GetBlockTxn(block_hash, missing))
            return
        await self._finish_compact(peer, partial)

    async def _finish_compact(self, peer: Peer, partial: PartialBlock) -> None:
        block = partial.block()
        if block is None:
            # A short id matched the wrong transaction: fall back to the whole block.
            self._partials.pop(partial.block_hash, None)
            peer.send(GetData((InvItem(InvType.BLOCK, partial.block_hash),)))
            return
        self._block_request_done(block.hash, peer)
        await self.process_block(block, peer)

    async def _on_getblocktxn(self, peer: Peer, message: GetBlockTxn) -> None:
        block = await self._load_block(message.block_hash)
        if block is None:
            return
        if message.indexes and message.indexes[-1] >= len(block.transactions):
            self.misbehaving(peer, Score.MALFORMED, "getblocktxn index out of range")
            return
        peer.send(
            BlockTxn(message.block_hash, tuple(block.transactions[i] for i in message.indexes))
        )

    async def _on_blocktxn(self, peer: Peer, message: BlockTxn) -> None:
        entry = self._partials.get(message.block_hash)
        if entry is None or entry[0] != peer.id:
            self.misbehaving(peer, Score.UNREQUESTED_DATA, "unrequested blocktxn")
            return
        partial = entry[1]
        del self._partials[message.block_hash]
        try:
            partial.fill_missing(message.txs)
        except ValueError as exc:
            self.misbehaving(peer, Score.MALFORMED, f"blocktxn: {exc}")
            return
        await self._finish_compact(peer, partial)

    # ----------------------------------------------------------------------------- transactions

    async def _on_tx(self, peer: Peer, message: TxMsg) -> None:
        tx = message.tx
        txid = tx.txid
        requested = txid in peer.txs_in_flight
        peer.txs_in_flight.pop(txid, None)
        request = self._tx_requests.pop(txid, None)
        if request is not None:
            for other_id in request.announcers:
                other = self.peers.get(other_id)
                if other is not None:
                    other.txs_in_flight.pop(txid, None)
        peer.add_known(txid)
        if not requested and not self._limits[peer.id].unrequested.take(self.clock.monotonic()):
            self.misbehaving(peer, Score.FLOOD, "unrequested transaction flood")
            return
        if txid in self._recent_rejects or txid in self.orphans:
            return
        await self.process_tx(tx, peer)

    async def process_tx(self, tx: Transaction, peer: Peer | None) -> RuleError | None:
        """Offer a transaction to the mempool; relay it, hold it as an orphan, or refuse it."""
        source = peer.address if peer is not None else "local"
        outcome = await self.backend.submit_tx(tx, source)
        if outcome.accepted:
            self.announce_tx(tx, peer)
            await self._retry_orphans([tx.txid])
            return None
        error = outcome.error
        if outcome.missing_inputs and peer is not None:
            self.orphans.add(tx, peer.id, self.clock.monotonic())
            wanted = [t for t in outcome.missing_inputs if t not in peer.txs_in_flight]
            if wanted:
                now = self.clock.monotonic()
                for txid in wanted:
                    peer.txs_in_flight[txid] = now
                    self._tx_requests.setdefault(txid, _TxRequest(peer=peer.id)).announcers[
                        peer.id
                    ] = None
                peer.send(GetData(tuple(InvItem(InvType.TX, t) for t in wanted)))
            return error
        if error is not None and error.code not in _NOT_REMEMBERED:
            self._recent_rejects[tx.txid] = None
            while len(self._recent_rejects) > RECENT_REJECTS:
                self._recent_rejects.popitem(last=False)
        if peer is not None and error is not None and _blames_sender(error):
            peer.send(Reject(TxMsg.msgtype, error.reason, tx.txid, error.detail[:200]))
            self.misbehaving(peer, Score.INVALID_TX, f"invalid transaction: {error}")
        return error

    async def _retry_orphans(self, parents: list[bytes]) -> None:
        queue = list(parents)
        while queue:
            parent = queue.pop(0)
            for orphan in self.orphans.children_of(parent):
                self.orphans.remove(orphan.tx.txid)
                outcome = await self.backend.submit_tx(orphan.tx, "orphan pool")
                if outcome.accepted:
                    self.announce_tx(orphan.tx, self.peers.get(orphan.source))
                    queue.append(orphan.tx.txid)
                elif outcome.missing_inputs:
                    self.orphans.add(orphan.tx, orphan.source, orphan.added)

    def announce_tx(self, tx: Transaction, source: Peer | None) -> None:
        for peer in self.active_peers():
            if peer is not source:
                peer.queue_inv(InvItem(InvType.TX, tx.txid))

    # ----------------------------------------------------------------------------- maintenance

    async def _maintain(self) -> None:
        while True:
            try:
                await self._tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("maintenance failed")
            await self.clock.sleep(self.config.tick)

    async def _tick(self) -> None:
        now = self.clock.monotonic()
        c = self.config
        for peer in list(self.peers.values()):
            if not peer.handshake_done or peer.closing:
                continue
            if peer.ping_nonce is not None:
                if now - peer.ping_sent_at > c.ping_timeout:
                    peer.close("ping timeout")
                    continue
            elif now - peer.ping_sent_at >= c.ping_interval:
                peer.ping_nonce = self.rng.getrandbits(64)
                peer.ping_sent_at = now
                peer.send(Ping(peer.ping_nonce))
            late = [h for h, t in peer.blocks_in_flight.items() if now - t > c.block_timeout]
            for block_hash in late:
                self._block_request_done(block_hash, peer)
                peer.stalls += 1
            if late:
                log.info("peer %s let %d block requests time out", peer, len(late))
                if peer.stalls >= c.max_stalls:
                    peer.close("stalling block download")
            for txid in [t for t, at in peer.txs_in_flight.items() if now - at > c.tx_timeout]:
                self._tx_request_failed(txid, peer)
        self.orphans.expire(now)
        if self.network_active and not self._stopping:
            self._dial_more(now)
        if self._block_requests or self.backend.tip.syncing:
            await self._schedule_all()

    def _dial_more(self, now: float) -> None:
        outbound = sum(1 for p in self.peers.values() if not p.inbound) + len(self._dialing)
        room = self.config.max_outbound - outbound
        if room <= 0:
            return
        exclude = self._outbound_addresses()
        for address in self.addrbook.candidates(now, exclude):
            if room <= 0:
                break
            if self.links.is_blocked([address]):
                continue
            room -= 1
            self._spawn(self._dial(address))


_NO_REQUEST = _TxRequest()

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

_NOT_REMEMBERED = frozenset({ErrorCode.BAD_TXNS_INPUTS_MISSINGORSPENT, ErrorCode.MEMPOOL_FULL})
"""Refusals that may not hold a moment later, so the txid is not remembered as rejected."""


def _blames_sender(error: RuleError) -> bool:
    """Whether relaying an object refused with ``error`` is the relaying peer's fault."""
    return error.code.kind is RuleKind.CONSENSUS and error.code not in _CONTEXTUAL
