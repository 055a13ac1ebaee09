"""Blocks on the wire: headers-first sync, parallel download, block relay and compact blocks.

Glossary
--------
best known
    The most-work header a peer has shown us (by ``headers``, ``inv`` or a block). Blocks are
    downloaded from a peer only on the way to its best known header.
in flight
    A block asked for and not yet received. Each block is in flight from one peer at a time;
    after ``block_timeout`` it is asked of another peer, and a peer that lets ``max_stalls``
    requests time out is disconnected as stalling.
moving window
    Blocks are requested lowest first, at most ``max_blocks_in_flight`` per peer and never
    more than ``download_window`` above the active tip, so several peers fill the window in
    parallel and the chain connects them as their parents arrive.
presync
    Headers of a fork with less work than our tip are not stored (anyone can make cheap
    headers that would fill the index); while a peer keeps sending full batches, they are held
    in memory (at most ``presync_max_headers``) and stored at once when the fork proves to have
    at least our tip's work.
equal work
    A fork whose chain has exactly our tip's work (a competing block at the same height) is
    stored and its blocks are downloaded, as Bitcoin Core does: the node must know the
    competing block for anyone to see the fork, and each such block costs as much proof of
    work as extending our own tip, so it is no cheaper a flood than any valid block. The tip
    stays where it is (first seen wins) until one branch gets ahead.
high bandwidth
    Up to ``high_bandwidth_peers`` peers are asked (``sendcmpct(true)``) to push new blocks as
    ``cmpctblock`` at once; the others announce them with ``inv``.

What this module does not do: validate (the chain, behind the backend, does) or decide which
chain is best (the most-work rule lives in :mod:`node.core.chain`).
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from typing import TYPE_CHECKING

from node.core.block import Block
from node.core.errors import ErrorCode
from node.core.header import block_work
from node.p2p.backend import HeadersStatus
from node.p2p.compact import PartialBlock, make_compact
from node.p2p.config import Score, blames_sender
from node.p2p.messages import (
    MAX_HEADERS,
    MAX_LOCATOR,
    BlockMsg,
    BlockTxn,
    CmpctBlock,
    GetBlockTxn,
    GetData,
    GetHeaders,
    Headers,
    InvItem,
    InvType,
    Reject,
    SendCmpct,
)
from node.p2p.peer import Peer

if TYPE_CHECKING:
    from node.p2p.manager import PeerManager

ZERO_HASH = bytes(32)
COMPACT_VERSION = 1
RECENT_BLOCKS = 16
"""Recent blocks kept in memory: for getblocktxn and getdata right after a relay."""
COMPACT_DEPTH = 10
"""Blocks at most this far below the tip are served as cmpctblock when asked so."""
MAX_HEADERS_REQUESTS = 4
"""Unanswered getheaders a peer may owe us before more announcements are ignored."""


class BlockSync:
    def __init__(self, manager: PeerManager) -> None:
        self.manager = manager
        self.config = manager.config
        self.backend = manager.backend
        self._requests: dict[bytes, int] = {}
        """Block hash -> id of the peer it is in flight from."""
        self._partials: dict[bytes, tuple[int, PartialBlock]] = {}
        self._recent: OrderedDict[bytes, Block] = OrderedDict()
        self._high_bandwidth: list[int] = []

    @property
    def in_flight(self) -> int:
        return len(self._requests)

    # -- peers coming and going

    def peer_ready(self, peer: Peer) -> None:
        """After the handshake: say we speak compact blocks, and ask for headers."""
        if self.config.compact_blocks:
            high = len(self._high_bandwidth) < self.config.high_bandwidth_peers
            if high:
                self._high_bandwidth.append(peer.id)
                peer.high_bandwidth_to = True
            peer.send(SendCmpct(high, COMPACT_VERSION))
        self.manager.spawn(self.request_headers(peer))

    def peer_gone(self, peer: Peer) -> None:
        for block_hash in peer.blocks_in_flight:
            if self._requests.get(block_hash) == peer.id:
                del self._requests[block_hash]
        for block_hash, (owner, _partial) in list(self._partials.items()):
            if owner == peer.id:
                del self._partials[block_hash]
        if peer.id in self._high_bandwidth:
            self._high_bandwidth.remove(peer.id)
            self._promote_high_bandwidth()

    def _promote_high_bandwidth(self) -> None:
        if not self.config.compact_blocks:
            return
        for peer in self.manager.active_peers():
            if len(self._high_bandwidth) >= self.config.high_bandwidth_peers:
                return
            if peer.compact and peer.id not in self._high_bandwidth:
                self._high_bandwidth.append(peer.id)
                peer.high_bandwidth_to = True
                peer.send(SendCmpct(True, COMPACT_VERSION))

    # -- headers

    async def request_headers(self, peer: Peer, stop: bytes = ZERO_HASH, lead: bytes = b"") -> None:
        """Send ``getheaders`` with our locator (led by ``lead`` to continue a batch)."""
        locator = await self.backend.locator()
        if lead:
            locator = [lead, *locator[: MAX_LOCATOR - 1]]
        peer.headers_requests += 1
        peer.send(GetHeaders(tuple(locator), stop))

    async def on_getheaders(self, peer: Peer, message: GetHeaders) -> None:
        headers = await self.backend.headers_after(message.locator, message.stop_hash, MAX_HEADERS)
        if headers:
            peer.add_known(headers[-1].hash)
        peer.send(Headers(tuple(headers)))

    async def on_headers(self, peer: Peer, message: Headers) -> None:
        manager = self.manager
        if peer.headers_requests <= 0:
            manager.misbehaving(peer, Score.UNREQUESTED_HEADERS, "unrequested headers")
            return
        peer.headers_requests -= 1
        headers = list(message.headers)
        if not headers:
            peer.presync = []
            return
        for previous, header in itertools.pairwise(headers):
            if header.prev_hash != previous.hash:
                manager.misbehaving(peer, Score.UNCONNECTED_HEADERS, "headers not contiguous")
                return
        batch = headers
        if peer.presync and headers[0].prev_hash == peer.presync[-1].hash:
            batch = peer.presync + headers
        peer.presync = []
        outcome = await self.backend.accept_headers(batch, int(manager.clock.time()))
        full = len(headers) == MAX_HEADERS
        if outcome.status is HeadersStatus.UNCONNECTED:
            manager.misbehaving(peer, Score.UNCONNECTED_HEADERS, "headers do not connect")
            return
        if outcome.status is HeadersStatus.INVALID:
            manager.misbehaving(peer, Score.INVALID_HEADER, f"invalid header: {outcome.error}")
            return
        if outcome.status is HeadersStatus.LOW_WORK:
            if full and len(batch) + MAX_HEADERS <= self.config.presync_max_headers:
                peer.presync = batch
                await self.request_headers(peer, lead=batch[-1].hash)
            return
        assert outcome.last_hash is not None
        self._update_best_known(peer, outcome.last_hash, outcome.last_height, outcome.last_work)
        peer.add_known(outcome.last_hash)
        if full:
            await self.request_headers(peer, lead=outcome.last_hash)
        await self.schedule_all()

    async def on_announced(self, peer: Peer, block_hash: bytes) -> None:
        info = await self.backend.header_info(block_hash)
        if info is None:
            if peer.headers_requests < MAX_HEADERS_REQUESTS:
                await self.request_headers(peer, stop=block_hash)
            return
        height, work = info
        self._update_best_known(peer, block_hash, height, work)
        await self.schedule(peer)

    @staticmethod
    def _update_best_known(peer: Peer, block_hash: bytes, height: int, work: int) -> None:
        if work > peer.best_known_work:
            peer.best_known_hash = block_hash
            peer.best_known_work = work
            peer.best_known_height = height

    # -- download

    async def schedule_all(self) -> None:
        for peer in self.manager.active_peers():
            await self.schedule(peer)

    async def schedule(self, peer: Peer) -> None:
        """Ask ``peer`` for the next blocks on the way to its best known header."""
        room = self.config.max_blocks_in_flight - len(peer.blocks_in_flight)
        if peer.closing or room <= 0 or peer.best_known_hash is None:
            return
        tip = self.backend.tip
        # Equal work is fetched too (Bitcoin Core's rule): a competing tip is stored as a side
        # branch, so the fork is known; first seen stays the tip. Less work is never fetched.
        if peer.best_known_work < tip.chain_work or peer.best_known_hash == tip.hash:
            return
        wanted = await self.backend.blocks_to_download(
            peer.best_known_hash, room, set(self._requests).union(peer.timed_out)
        )
        items = []
        now = self.manager.clock.monotonic()
        for block_hash, height in wanted:
            # Another peer's scheduling may have claimed it while we waited for the chain.
            if block_hash in self._requests or peer.closing:
                continue
            self._requests[block_hash] = peer.id
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
            self.manager.wake()

    def request_done(self, block_hash: bytes, peer: Peer | None) -> None:
        owner = self._requests.pop(block_hash, None)
        for candidate in (peer, self.manager.peers.get(owner) if owner is not None else None):
            if candidate is not None:
                candidate.blocks_in_flight.pop(block_hash, None)
        self._partials.pop(block_hash, None)

    def not_found(self, peer: Peer, block_hash: bytes) -> None:
        if block_hash in peer.blocks_in_flight:
            self.request_done(block_hash, peer)

    def tick(self, peer: Peer, now: float) -> None:
        if now - peer.headers_polled_at >= self.config.headers_poll_interval:
            peer.headers_polled_at = now
            if peer.headers_requests == 0:
                self.manager.spawn(self.request_headers(peer))
        late = [
            h for h, at in peer.blocks_in_flight.items() if now - at > self.config.block_timeout
        ]
        for block_hash in late:
            self.request_done(block_hash, peer)
            peer.timed_out[block_hash] = None
            peer.stalls += 1
        if late and peer.stalls >= self.config.max_stalls:
            peer.close("stalling block download")

    # -- serving

    async def serve(self, peer: Peer, items: list[InvItem]) -> list[InvItem]:
        """Send the blocks asked for (compact when asked so and recent); returns the missing."""
        missing = []
        for item in items:
            await peer.wait_writable()  # a peer asking for many blocks gets them as it reads
            if peer.closing:
                return []
            block = await self.load_block(item.hash)
            if block is None:
                missing.append(item)
                continue
            peer.add_known(item.hash)
            if item.type is InvType.CMPCT_BLOCK and await self._is_recent(block):
                peer.send(make_compact(block, self.manager.rng.getrandbits(64)))
            else:
                peer.send(BlockMsg(block))
        return missing

    async def _is_recent(self, block: Block) -> bool:
        info = await self.backend.header_info(block.hash)
        return info is not None and self.backend.tip.height - info[0] <= COMPACT_DEPTH

    async def load_block(self, block_hash: bytes) -> Block | None:
        block = self._recent.get(block_hash)
        if block is None:
            block = await self.backend.get_block(block_hash)
        return block

    def _remember(self, block: Block) -> None:
        self._recent[block.hash] = block
        while len(self._recent) > RECENT_BLOCKS:
            self._recent.popitem(last=False)

    # -- blocks received

    async def on_block(self, peer: Peer, message: BlockMsg) -> None:
        block = message.block
        requested = block.hash in peer.blocks_in_flight
        self.request_done(block.hash, peer)
        peer.add_known(block.hash)
        if not requested:
            if not self.manager.allow_unrequested(peer):
                self.manager.misbehaving(peer, Score.FLOOD, "unrequested block flood")
                return
            if await self._low_work(block):
                return  # not stored: blocks of a weaker chain are fetched only when asked for
        await self.process(block, peer)

    async def _low_work(self, block: Block) -> bool:
        """Whether ``block`` extends a known chain to less work than our tip.

        Bitcoin Core's guard for unrequested blocks: storing them would let anyone fill the
        disk with cheap blocks on an old fork. A block whose parent is unknown is not judged
        here (it is held as an orphan while its headers are fetched).
        """
        parent = await self.backend.header_info(block.header.prev_hash)
        if parent is None:
            return False
        return parent[1] + block_work(block.header.bits) < self.backend.tip.chain_work

    async def process(self, block: Block, peer: Peer | None) -> None:
        """Hand a block to the chain, then relay, punish or fetch what it needs."""
        manager = self.manager
        outcome = await self.backend.submit_block(block, peer.address if peer else "local")
        if outcome.error is not None:
            error = outcome.error
            if peer is not None and blames_sender(error):
                peer.send(Reject(BlockMsg.msgtype, error.reason, block.hash, error.detail[:200]))
                manager.misbehaving(peer, Score.INVALID_BLOCK, f"invalid block: {error}")
            elif peer is not None and error.code is ErrorCode.PREV_BLK_NOT_FOUND:
                await self.request_headers(peer)
            return
        if outcome.orphan:
            if peer is not None:
                await self.request_headers(peer)
            return
        self._remember(block)
        if peer is not None:
            info = await self.backend.header_info(block.hash)
            if info is not None:
                self._update_best_known(peer, block.hash, info[0], info[1])
        if outcome.tip_changed and outcome.tip_block is not None:
            manager.relay.tip_changed()
            self.announce(outcome.tip_block, peer)
        for tx in outcome.readded:
            manager.relay.announce(tx, None)
        if not outcome.duplicate:
            await manager.relay.retry_orphans([tx.txid for tx in block.transactions])
        await self.schedule_all()

    def announce(self, block: Block, source: Peer | None) -> None:
        """Tell every peer but ``source`` about a new tip (pushed whole to high-bandwidth peers)."""
        self._remember(block)
        compact: CmpctBlock | None = None
        for peer in self.manager.active_peers():
            if peer is source or peer.knows(block.hash):
                continue
            if self.config.compact_blocks and peer.compact and peer.high_bandwidth_from:
                if compact is None:
                    compact = make_compact(block, self.manager.rng.getrandbits(64))
                peer.add_known(block.hash)
                peer.send(compact)
            else:
                peer.queue_inv(InvItem(InvType.BLOCK, block.hash), now=True)

    # -- compact blocks

    async def on_sendcmpct(self, peer: Peer, message: SendCmpct) -> None:
        if message.version != COMPACT_VERSION:
            return
        peer.compact = True
        peer.high_bandwidth_from = message.high_bandwidth
        if peer.id not in self._high_bandwidth:
            self._promote_high_bandwidth()

    async def on_cmpctblock(self, peer: Peer, message: CmpctBlock) -> None:
        manager = self.manager
        block_hash = message.header.hash
        requested = block_hash in peer.blocks_in_flight or peer.high_bandwidth_to
        peer.add_known(block_hash)
        if not requested and not manager.allow_unrequested(peer):
            manager.misbehaving(peer, Score.FLOOD, "unrequested cmpctblock flood")
            return
        if (await self.backend.have_block([block_hash]))[0]:
            self.request_done(block_hash, peer)
            return
        owner = self._requests.get(block_hash)
        if owner is not None and owner != peer.id:
            return  # another peer is already delivering it
        # Claimed before the header is stored, so the download scheduler, which may run while
        # we wait, does not ask another peer for the same block.
        self._requests[block_hash] = peer.id
        peer.blocks_in_flight[block_hash] = manager.clock.monotonic()
        outcome = await self.backend.accept_headers([message.header], int(manager.clock.time()))
        if outcome.status is not HeadersStatus.STORED:
            self.request_done(block_hash, peer)
            if outcome.status is HeadersStatus.UNCONNECTED:
                await self.request_headers(peer, stop=block_hash)
            elif outcome.status is HeadersStatus.INVALID:
                manager.misbehaving(peer, Score.INVALID_HEADER, f"invalid header: {outcome.error}")
            return
        self._update_best_known(peer, block_hash, outcome.last_height, outcome.last_work)
        try:
            partial = PartialBlock(message)
        except ValueError:
            peer.send(GetData((InvItem(InvType.BLOCK, block_hash),)))
            return
        if not await self.backend.fill_compact(partial):
            # Another peer delivered it while we waited: its transactions left the mempool.
            self.request_done(block_hash, peer)
            return
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
        self.request_done(block.hash, peer)
        await self.process(block, peer)

    async def on_getblocktxn(self, peer: Peer, message: GetBlockTxn) -> None:
        block = await self.load_block(message.block_hash)
        if block is None:
            return
        if message.indexes and message.indexes[-1] >= len(block.transactions):
            self.manager.misbehaving(peer, Score.MALFORMED, "getblocktxn index out of range")
            return
        txs = tuple(block.transactions[i] for i in message.indexes)
        peer.send(BlockTxn(message.block_hash, txs))

    async def on_blocktxn(self, peer: Peer, message: BlockTxn) -> None:
        entry = self._partials.get(message.block_hash)
        if entry is None or entry[0] != peer.id:
            self.manager.misbehaving(peer, Score.UNREQUESTED_DATA, "unrequested blocktxn")
            return
        partial = entry[1]
        del self._partials[message.block_hash]
        try:
            partial.fill_missing(message.txs)
        except ValueError as exc:
            self.manager.misbehaving(peer, Score.MALFORMED, f"blocktxn: {exc}")
            return
        await self._finish_compact(peer, partial)
