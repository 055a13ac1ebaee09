"""Transaction relay: announcements, requests with failover, orphans, and who knows what.

A transaction announced by several peers is asked of one of them at a time (the first that
announced it and has room: at most ``max_txs_in_flight`` requests per peer). When that peer
answers ``notfound``, times out or disconnects, the next announcer is asked. Accepted
transactions are announced to every peer but the one they came from; refused ones are
remembered (until the tip changes) so their announcements are not fetched again.

A transaction whose inputs are unknown is held in the :class:`~node.p2p.orphans.OrphanPool`
and its missing parents are asked of the same peer; accepting a parent retries its children.

What this module does not do: judge transactions (the mempool, behind the backend, does).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from node.core.errors import ErrorCode, RuleError
from node.core.tx import Transaction
from node.p2p.config import Score, blames_sender
from node.p2p.messages import GetData, InvItem, InvType, Reject, TxMsg
from node.p2p.orphans import OrphanPool
from node.p2p.peer import Peer

if TYPE_CHECKING:
    from node.p2p.manager import PeerManager

RECENT_REJECTS = 20_000

_NOT_REMEMBERED = frozenset({ErrorCode.BAD_TXNS_INPUTS_MISSINGORSPENT, ErrorCode.MEMPOOL_FULL})
"""Refusals that may not hold a moment later, so the txid is not remembered as rejected."""


@dataclass
class _Request:
    announcers: dict[int, None] = field(default_factory=dict)
    """Peers that announced it, in announcement order."""
    peer: int | None = None
    """Peer it is in flight from."""


_NO_REQUEST = _Request()


class TxRelay:
    def __init__(self, manager: PeerManager) -> None:
        self.manager = manager
        self.config = manager.config
        self.orphans = OrphanPool()
        self._requests: dict[bytes, _Request] = {}
        self._waiting: dict[int, dict[bytes, None]] = {}
        """Per peer: transactions it announced that wait for a free request slot, in order."""
        self._recent_rejects: OrderedDict[bytes, None] = OrderedDict()

    # -- announcements and requests

    async def on_announced(self, peer: Peer, txids: list[bytes]) -> None:
        wanted = [
            t
            for t in txids
            if t not in self._recent_rejects
            and t not in self.orphans
            and peer.id not in self._requests.get(t, _NO_REQUEST).announcers
        ]
        if not wanted:
            return
        have = await self.manager.backend.have_tx(wanted)
        waiting = self._waiting.setdefault(peer.id, {})
        for txid, known in zip(wanted, have, strict=True):
            if known or len(waiting) >= self.config.max_tx_announcements:
                continue
            self._requests.setdefault(txid, _Request()).announcers[peer.id] = None
            waiting[txid] = None
        self._fill(peer)

    def _fill(self, peer: Peer) -> None:
        """Request what ``peer`` announced, as far as its free request slots allow."""
        waiting = self._waiting.get(peer.id)
        if not waiting or peer.closing:
            return
        room = self.config.max_txs_in_flight - len(peer.txs_in_flight)
        to_fetch = []
        now = self.manager.clock.monotonic()
        while waiting and room > 0:
            txid = next(iter(waiting))
            del waiting[txid]
            request = self._requests.get(txid)
            if request is None or request.peer is not None or peer.id not in request.announcers:
                continue  # received, in flight from another peer, or given up on
            request.peer = peer.id
            peer.txs_in_flight[txid] = now
            to_fetch.append(InvItem(InvType.TX, txid))
            room -= 1
        if to_fetch:
            peer.send(GetData(tuple(to_fetch)))
            self.manager.wake()

    def request_failed(self, txid: bytes, peer: Peer) -> None:
        """``peer`` will not deliver ``txid``: ask the next peer that announced it."""
        peer.txs_in_flight.pop(txid, None)
        request = self._requests.get(txid)
        if request is None:
            return
        request.announcers.pop(peer.id, None)
        if request.peer == peer.id:
            request.peer = None
        self._fill(peer)
        for other_id in request.announcers:
            other = self.manager.peers.get(other_id)
            if other is None or other.closing:
                continue
            # The next announcer gets it first in line: asked now if it has a free slot,
            # else as soon as one frees.
            waiting = self._waiting.setdefault(other_id, {})
            self._waiting[other_id] = {txid: None, **waiting}
            self._fill(other)
            return
        if request.peer is None:
            del self._requests[txid]

    async def serve(self, peer: Peer, txids: list[bytes]) -> list[bytes]:
        """Send the mempool transactions asked for; returns the txids we do not have."""
        missing = []
        for txid, tx in zip(txids, await self.manager.backend.get_txs(txids), strict=True):
            if tx is None:
                missing.append(txid)
            else:
                peer.add_known(txid)
                peer.send(TxMsg(tx))
        return missing

    # -- transactions received

    async def on_tx(self, peer: Peer, message: TxMsg) -> None:
        tx = message.tx
        txid = tx.txid
        requested = txid in peer.txs_in_flight
        peer.txs_in_flight.pop(txid, None)
        request = self._requests.pop(txid, None)
        if request is not None:
            for other_id in request.announcers:
                other = self.manager.peers.get(other_id)
                if other is not None:
                    other.txs_in_flight.pop(txid, None)
        peer.add_known(txid)
        self._fill(peer)
        if not requested and not self.manager.allow_unrequested(peer):
            self.manager.misbehaving(peer, Score.FLOOD, "unrequested transaction flood")
            return
        if txid in self._recent_rejects or txid in self.orphans:
            return
        await self.process(tx, peer)

    async def process(self, tx: Transaction, peer: Peer | None) -> RuleError | None:
        """Offer a transaction to the mempool; relay it, hold it as an orphan, or refuse it."""
        source = peer.address if peer is not None else "local"
        outcome = await self.manager.backend.submit_tx(tx, source)
        if outcome.accepted:
            self.announce(tx, peer)
            await self.retry_orphans([tx.txid])
            return None
        error = outcome.error
        if outcome.missing_inputs and peer is not None:
            self.orphans.add(tx, peer.id, self.manager.clock.monotonic())
            self._fetch_parents(peer, outcome.missing_inputs)
            return error
        if error is not None and error.code not in _NOT_REMEMBERED:
            self._recent_rejects[tx.txid] = None
            while len(self._recent_rejects) > RECENT_REJECTS:
                self._recent_rejects.popitem(last=False)
        if peer is not None and error is not None and blames_sender(error):
            peer.send(Reject(TxMsg.msgtype, error.reason, tx.txid, error.detail[:200]))
            self.manager.misbehaving(peer, Score.INVALID_TX, f"invalid transaction: {error}")
        return error

    def _fetch_parents(self, peer: Peer, parents: tuple[bytes, ...]) -> None:
        wanted = [t for t in parents if t not in peer.txs_in_flight and t not in self._requests]
        if not wanted:
            return
        now = self.manager.clock.monotonic()
        for txid in wanted:
            peer.txs_in_flight[txid] = now
            self._requests[txid] = _Request({peer.id: None}, peer.id)
        peer.send(GetData(tuple(InvItem(InvType.TX, t) for t in wanted)))

    async def retry_orphans(self, parents: list[bytes]) -> None:
        """Try again the orphans spending outputs of ``parents`` (and theirs, and so on)."""
        queue = list(parents)
        while queue:
            parent = queue.pop(0)
            for orphan in self.orphans.children_of(parent):
                self.orphans.remove(orphan.tx.txid)
                outcome = await self.manager.backend.submit_tx(orphan.tx, "orphan pool")
                if outcome.accepted:
                    self.announce(orphan.tx, self.manager.peers.get(orphan.source))
                    queue.append(orphan.tx.txid)
                elif outcome.missing_inputs:
                    self.orphans.add(orphan.tx, orphan.source, orphan.added)

    def announce(self, tx: Transaction, source: Peer | None) -> None:
        for peer in self.manager.active_peers():
            if peer is not source:
                peer.queue_inv(InvItem(InvType.TX, tx.txid))
        self.manager.wake()

    # -- upkeep

    def tip_changed(self) -> None:
        """A refusal may not hold on the new chain: forget them all (as Bitcoin Core does)."""
        self._recent_rejects.clear()

    def peer_gone(self, peer: Peer) -> None:
        self._waiting.pop(peer.id, None)
        for txid in list(peer.txs_in_flight):
            self.request_failed(txid, peer)
        for txid, request in list(self._requests.items()):
            request.announcers.pop(peer.id, None)
            if request.peer is None and not request.announcers:
                del self._requests[txid]

    def tick(self, peer: Peer, now: float) -> None:
        late = [t for t, at in peer.txs_in_flight.items() if now - at > self.config.tx_timeout]
        for txid in late:
            self.request_failed(txid, peer)
        self._fill(peer)
