"""The peer manager: connections, liveness, timers and DoS protection.

It owns every :class:`~node.p2p.peer.Peer`, runs one reader task per peer and one maintenance
task, and hands each decoded message to the part that deals with it:
:class:`~node.p2p.handshake.Handshake` (version, verack, duplicate links),
:class:`~node.p2p.gossip.AddressGossip` (addresses), :class:`~node.p2p.sync.BlockSync`
(headers, blocks, compact blocks) or :class:`~node.p2p.relay.TxRelay` (transactions). Pings,
bans and rate limits are handled here.

misbehaviour
    Points a peer earns by breaking the protocol (:class:`~node.p2p.config.Score`, table in
    docs/protocol.md); at 100 it is disconnected and banned for ``ban_seconds``.

Concurrency: one reader task per peer decodes and handles that peer's messages in order, so a
slow chain operation for one peer delays only that peer. Bookkeeping (in-flight maps, orphans)
lives on the event loop and is never touched by another thread; the chain and mempool are
reached only through :class:`~node.p2p.backend.ChainBackend`. Every timeout is measured on the
injected clock by the maintenance task, so a simulator with virtual time drives it exactly.
Collections that are iterated are dicts (insertion order), never sets of bytes, so seeded runs
repeat exactly whatever Python's hash seed.

What this module does not do: validate anything (the backend does), or store anything on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from node.core.block import Block
from node.core.errors import DecodeError, RuleError
from node.core.hashing import sha256
from node.core.params import NetworkParams
from node.core.tx import Transaction
from node.events import EventBus, PeerDisconnected
from node.p2p.addrbook import AddressBook
from node.p2p.backend import ChainBackend
from node.p2p.config import P2PConfig, Score
from node.p2p.gossip import AddressGossip
from node.p2p.handshake import Handshake, HandshakeError
from node.p2p.links import LinkPolicy
from node.p2p.messages import (
    Addr,
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
from node.p2p.peer import Direction, Peer, PeerInfo, TokenBucket, with_timeout
from node.p2p.relay import TxRelay
from node.p2p.sync import BlockSync
from node.p2p.transport import FrameTooLarge
from node.runtime import Connection, ConnectionClosed, Listener, Runtime, TransportError

__all__ = ["P2PConfig", "PeerManager", "Score"]

log = logging.getLogger("forklab.p2p")


@dataclass
class _Limits:
    messages: TokenBucket
    inv: TokenBucket
    unrequested: TokenBucket
    addr: TokenBucket


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
        self.peers: dict[int, Peer] = {}
        self.listen_address = ""
        self.network_active = True
        self.handshake = Handshake(self)
        self.gossip = AddressGossip(self)
        self.sync = BlockSync(self)
        self.relay = TxRelay(self)

        self._next_id = 1
        self._limits: dict[int, _Limits] = {}
        self._dialing: dict[str, None] = {}
        self._listener: Listener | None = None
        self._tasks: dict[asyncio.Future[Any], None] = {}
        """Tasks the manager owns, in the order they were started: stop cancels them in that
        order (a set's order would depend on memory addresses, and a seeded simulation must
        replay exactly)."""
        self._maintenance: asyncio.Future[None] | None = None
        self._stopping = False
        self._wake = asyncio.Event()
        self._handlers: dict[type[Message], Handler] = {
            Ping: self._on_ping,
            Pong: self._on_pong,
            GetAddr: self.gossip.on_getaddr,
            Addr: self.gossip.on_addr,
            Inv: self._on_inv,
            GetData: self._on_getdata,
            NotFound: self._on_notfound,
            GetHeaders: self.sync.on_getheaders,
            Headers: self.sync.on_headers,
            BlockMsg: self.sync.on_block,
            SendCmpct: self.sync.on_sendcmpct,
            CmpctBlock: self.sync.on_cmpctblock,
            GetBlockTxn: self.sync.on_getblocktxn,
            BlockTxn: self.sync.on_blocktxn,
            TxMsg: self.relay.on_tx,
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
            # Two nodes started with the same seed draw the same nonce; mixing in where each
            # listens keeps them apart (and stays deterministic for a seeded simulation).
            self.nonce ^= int.from_bytes(sha256(self.listen_address.encode())[:8], "little")
        self._maintenance = asyncio.ensure_future(self._maintain())

    async def stop(self) -> None:
        self._stopping = True
        if self._maintenance is not None:
            self._maintenance.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._maintenance
        if self._listener is not None:
            await self._listener.close()
            self._listener = None
        for peer in list(self.peers.values()):
            peer.close("shutting down")
        for peer in list(self.peers.values()):
            with contextlib.suppress(TimeoutError):
                await with_timeout(self.clock, 5.0, peer.wait_closed())
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def spawn(self, awaitable: Awaitable[Any]) -> None:
        """Run ``awaitable`` as a task owned by the manager (cancelled on stop)."""
        task = asyncio.ensure_future(awaitable)
        self._tasks[task] = None
        task.add_done_callback(self._forget_task)

    def _forget_task(self, task: asyncio.Future[Any]) -> None:
        self._tasks.pop(task, None)

    # ----------------------------------------------------------------------------- the node's API

    async def process_block(self, block: Block, peer: Peer | None = None) -> None:
        await self.sync.process(block, peer)

    def announce_block(self, block: Block, source: Peer | None = None) -> None:
        self.sync.announce(block, source)

    async def process_tx(self, tx: Transaction, peer: Peer | None = None) -> RuleError | None:
        return await self.relay.process(tx, peer)

    def announce_tx(self, tx: Transaction, source: Peer | None = None) -> None:
        self.relay.announce(tx, source)

    # ----------------------------------------------------------------------------- control

    def active_peers(self) -> list[Peer]:
        return [p for p in self.peers.values() if p.handshake_done and not p.closing]

    def peer_info(self) -> list[PeerInfo]:
        return [p.info() for p in self.active_peers()]

    def add_node(self, address: str) -> None:
        """Keep a connection to ``address`` (bitcoind's ``addnode ADDR add``)."""
        self.addrbook.add(address, int(self.clock.time()), persistent=True)
        self.addrbook.reset_backoff([address])
        self.wake()

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
        self.wake()

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
        self.wake()

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
        self.spawn(self._run_peer(self._new_peer(conn, Direction.INBOUND, None)))

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
            salt=self.rng.getrandbits(64),
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
                await with_timeout(
                    self.clock, self.config.handshake_timeout, self.handshake.run(peer)
                )
            except (HandshakeError, TimeoutError, DecodeError, ConnectionClosed) as exc:
                reason = str(exc) or type(exc).__name__
                log.debug("handshake with %s failed: %s", peer, reason)
                if peer.dialed is not None:
                    self.addrbook.mark_failed(peer.dialed, self.clock.monotonic())
                peer.close(f"handshake failed: {reason}", flush=True)
                return
            duplicate = self.handshake.duplicate_of(peer)
            if duplicate is not None:
                duplicate.close("duplicate connection")
                if duplicate is peer:
                    return
            self.handshake.done(peer)
            await self._read_loop(peer)
        except Exception:
            # A bug handling one peer's message must cost that peer, never the node.
            log.exception("internal error with %s", peer)
            peer.close("internal error")
        finally:
            peer.close(peer.close_reason or "connection closed")
            await self._forget_peer(peer)

    async def _forget_peer(self, peer: Peer) -> None:
        await peer.wait_closed()
        if self.peers.pop(peer.id, None) is None:
            return
        self._limits.pop(peer.id, None)
        self.sync.peer_gone(peer)
        self.relay.peer_gone(peer)
        self.wake()
        if peer.dialed is not None and not self._stopping:
            # Not a failure to count up, but do not redial in the same breath either.
            self.addrbook.mark_failed(peer.dialed, self.clock.monotonic())
            info = self.addrbook.get(peer.dialed)
            if info is not None and peer.handshake_done:
                info.failures = 0
        if peer.handshake_done:
            self.bus.publish(PeerDisconnected(peer.id, peer.address, peer.close_reason))
            if not self._stopping:
                await self.sync.schedule_all()

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

    # ----------------------------------------------------------------------------- inventory

    async def _on_inv(self, peer: Peer, message: Inv) -> None:
        if not self._limits[peer.id].inv.take(self.clock.monotonic(), len(message.items)):
            self.misbehaving(peer, Score.FLOOD, "inv flood")
            return
        txids = []
        for item in message.items:
            peer.add_known(item.hash)
            if item.type is InvType.TX:
                txids.append(item.hash)
            else:
                await self.sync.on_announced(peer, item.hash)
        # Heeded even while blocks are downloading: a peer that shows us headers of a heavier
        # chain and then withholds its blocks must not be able to make us deaf to payments.
        if txids:
            await self.relay.on_announced(peer, txids)

    async def _on_getdata(self, peer: Peer, message: GetData) -> None:
        txids = [i.hash for i in message.items if i.type is InvType.TX]
        blocks = [i for i in message.items if i.type is not InvType.TX]
        missing = [InvItem(InvType.TX, t) for t in await self.relay.serve(peer, txids)]
        missing += await self.sync.serve(peer, blocks)
        if missing and not peer.closing:
            peer.send(NotFound(tuple(missing)))

    async def _on_notfound(self, peer: Peer, message: NotFound) -> None:
        for item in message.items:
            if item.type is InvType.TX:
                if item.hash in peer.txs_in_flight:
                    self.relay.request_failed(item.hash, peer)
            else:
                self.sync.not_found(peer, item.hash)
        await self.sync.schedule_all()

    def allow_addresses(self, peer: Peer, count: int) -> bool:
        """Whether ``peer`` may send ``count`` more addresses (rate limited)."""
        limits = self._limits.get(peer.id)
        return limits is not None and limits.addr.take(self.clock.monotonic(), count)

    def allow_unrequested(self, peer: Peer) -> bool:
        """Whether ``peer`` may push one more object nobody asked for (rate limited)."""
        limits = self._limits.get(peer.id)
        return limits is not None and limits.unrequested.take(self.clock.monotonic())

    # ----------------------------------------------------------------------------- maintenance

    def wake(self) -> None:
        """New work (an announcement to batch, a request to time, a peer to dial): let the
        maintenance task look now instead of at its next deadline."""
        self._wake.set()

    async def _maintain(self) -> None:
        while True:
            try:
                await self._tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("maintenance failed")
            delay = self._next_due() - self.clock.monotonic()
            self._wake.clear()
            if delay <= self.config.tick:
                await self.clock.sleep(self.config.tick)
            else:
                # Idle: sleep until the next deadline, unless woken by new work. A simulated
                # node thus costs nothing between events, however long the virtual hour.
                with contextlib.suppress(TimeoutError):
                    await with_timeout(self.clock, delay, self._wake.wait())

    def _next_due(self) -> float:
        """When the maintenance task next has something to do (monotonic time)."""
        c = self.config
        now = self.clock.monotonic()
        if self.sync.in_flight or self.backend.tip.syncing or self._dialing:
            return now
        due = now + c.idle_tick
        for peer in self.peers.values():
            if not peer.handshake_done or peer.closing:
                continue
            if peer.has_pending_inv or peer.txs_in_flight or peer.blocks_in_flight:
                return now
            pong_due = c.ping_timeout if peer.ping_nonce is not None else c.ping_interval
            due = min(
                due, peer.ping_sent_at + pong_due, peer.headers_polled_at + c.headers_poll_interval
            )
        if self.network_active:
            outbound = sum(1 for p in self.peers.values() if not p.inbound)
            if outbound < c.max_outbound:
                exclude = self._outbound_addresses()
                ready = self.addrbook.candidates(now, exclude)
                if any(not self.links.is_blocked([a]) for a in ready):
                    return now
                next_try = self.addrbook.next_try(now, exclude)
                if next_try is not None:
                    due = min(due, next_try)
        oldest = self.relay.orphans.oldest()
        if oldest is not None:
            due = min(due, oldest + self.relay.orphans.expiry)
        return due

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
            self.sync.tick(peer, now)
            self.relay.tick(peer, now)
            peer.flush_inv()
        self.relay.orphans.expire(now)
        if self.network_active and not self._stopping:
            self._dial_more(now)
        if self.sync.in_flight or self.backend.tip.syncing:
            await self.sync.schedule_all()

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
            self.spawn(self._dial(address))
