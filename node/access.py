"""The node's chain and mempool as the P2P layer sees them: every question one executor trip.

:class:`ChainAccess` implements :class:`~node.p2p.backend.ChainBackend` for
:class:`~node.node.Node`. The chain state and the mempool have one owner, the runtime's
executor (a single worker thread in a real node, inline in a simulation), so every method
here that touches them runs its body there, and the event loop only ever sees small frozen
answers. Each chain change is turned into node events (:mod:`node.events`) on the executor,
with the mempool upkeep it needs (a connected block's transactions leave it, a disconnected
block's come back), and published on the loop, in order, once the trip returns.

What this module does not do: decide anything about peers, or validate (the chain state does).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

from node.chainstate import BlockConnected as ChainBlockConnected
from node.chainstate import BlockDisconnected as ChainBlockDisconnected
from node.chainstate import BlockOutcome as ChainOutcome
from node.chainstate import ChainEvent, ChainState, TipChanged
from node.core.block import Block
from node.core.errors import ErrorCode, RuleError
from node.core.header import BlockHeader, block_work
from node.core.mempool import Mempool, MempoolEntry, Removal
from node.core.tx import Transaction
from node.events import (
    BlockConnected,
    BlockDisconnected,
    Event,
    EventBus,
    NewTip,
    Reorg,
    SideBlock,
    TxAccepted,
    TxRemoved,
)
from node.p2p.backend import BlockOutcome, ChainTip, HeadersOutcome, HeadersStatus, TxOutcome
from node.p2p.compact import PartialBlock
from node.runtime import Runtime

if TYPE_CHECKING:
    from node.node import NodeConfig

T = TypeVar("T")

RECENT_CONFIRMED = 50_000
"""Txids of recently connected blocks remembered, so their announcements are not fetched."""


class ChainAccess:
    """The chain and mempool behind the executor: the node's ChainBackend for the P2P layer.

    Every method body that touches ``chain`` or ``mempool`` runs on the executor; the loop side
    only keeps ``tip`` (replaced after each call) and publishes the events each call returns.
    """

    def __init__(
        self, runtime: Runtime, chain: ChainState, config: NodeConfig, bus: EventBus
    ) -> None:
        self.runtime = runtime
        self.chain = chain
        self.mempool = Mempool(
            config.params,
            max_bytes=config.mempool_max_bytes,
            min_fee_rate=config.min_fee_rate,
            on_removed=self.on_removed,
        )
        self.bus = bus
        self.window = config.p2p.download_window
        self.tip = self._read_tip()
        self._removed: list[Removal] = []
        self._recent_confirmed: OrderedDict[bytes, None] = OrderedDict()

    # -- executor-side helpers (never called on the loop)

    def _read_tip(self) -> ChainTip:
        tip = self.chain.tip
        best = self.chain.tree.best_header
        if best.chain_work < tip.chain_work:
            best = tip
        return ChainTip(
            tip.hash, tip.height, tip.chain_work, best.hash, best.height, best.chain_work
        )

    def on_removed(self, removal: Removal) -> None:
        self._removed.append(removal)

    def _drain_removed(self) -> list[Removal]:
        removed, self._removed = self._removed, []
        return removed

    async def run(self, fn: Callable[[], T]) -> T:
        return await self.runtime.executor.run(fn)

    # -- ChainBackend

    async def locator(self) -> list[bytes]:
        return await self.run(self.chain.locator)

    async def headers_after(
        self, locator: Sequence[bytes], stop_hash: bytes, limit: int
    ) -> list[BlockHeader]:
        def work() -> list[BlockHeader]:
            fork = self.chain.find_fork(locator)
            headers = []
            for height in range(fork.height + 1, min(self.chain.height, fork.height + limit) + 1):
                entry = self.chain.active[height]
                headers.append(entry.header)
                if entry.hash == stop_hash:
                    break
            return headers

        return await self.run(work)

    async def accept_headers(self, headers: Sequence[BlockHeader], now: int) -> HeadersOutcome:
        def work() -> HeadersOutcome:
            tree = self.chain.tree
            parent = tree.get(headers[0].prev_hash)
            if parent is None:
                return HeadersOutcome(HeadersStatus.UNCONNECTED)
            claimed = parent.chain_work + sum(block_work(h.bits) for h in headers)
            last_height = parent.height + len(headers)
            known = all(h.hash in tree for h in headers)
            # Equal work is stored (Bitcoin Core's rule): a competing tip must be known for a
            # fork to be seen, and it costs as much proof of work as a block on our own tip.
            if not known and claimed < self.chain.tip.chain_work:
                return HeadersOutcome(
                    HeadersStatus.LOW_WORK, last_height=last_height, last_work=claimed
                )
            new = 0
            last = None
            for header in headers:
                was_known = header.hash in tree
                try:
                    last = self.chain.process_header(header, now)
                except RuleError as exc:
                    return HeadersOutcome(
                        HeadersStatus.INVALID,
                        last_hash=last.hash if last else None,
                        last_height=last.height if last else 0,
                        last_work=last.chain_work if last else 0,
                        new=new,
                        error=exc,
                    )
                new += not was_known
            assert last is not None
            return HeadersOutcome(
                HeadersStatus.STORED,
                last_hash=last.hash,
                last_height=last.height,
                last_work=last.chain_work,
                new=new,
            )

        outcome = await self.run(work)
        if outcome.new:
            self.tip = await self.run(self._read_tip)
        return outcome

    async def header_info(self, block_hash: bytes) -> tuple[int, int] | None:
        def work() -> tuple[int, int] | None:
            entry = self.chain.get_entry(block_hash)
            return None if entry is None else (entry.height, entry.chain_work)

        return await self.run(work)

    async def blocks_to_download(
        self, best_known: bytes, limit: int, exclude: frozenset[bytes] | set[bytes]
    ) -> list[tuple[bytes, int]]:
        def work() -> list[tuple[bytes, int]]:
            target = self.chain.get_entry(best_known)
            if target is None or target.failed:
                return []
            fork = self.chain.active.fork_point(target)
            top = min(target.height, fork.height + self.window)
            wanted: list[tuple[bytes, int]] = []
            # Walk up from the fork by skip-list lookups: the blocks needed next are usually
            # the first few above it, so this stays cheap on a chain of any length.
            for height in range(fork.height + 1, top + 1):
                entry = target.ancestor(height)
                if entry.failed:
                    break
                if not entry.has_data and entry.hash not in exclude:
                    wanted.append((entry.hash, height))
                    if len(wanted) >= limit:
                        break
            return wanted

        return await self.run(work)

    async def have_block(self, block_hashes: Sequence[bytes]) -> list[bool]:
        def work() -> list[bool]:
            result = []
            for block_hash in block_hashes:
                entry = self.chain.get_entry(block_hash)
                held = entry is not None and (entry.has_data or entry.failed)
                result.append(held or block_hash in self.chain.orphans)
            return result

        return await self.run(work)

    async def have_tx(self, txids: Sequence[bytes]) -> list[bool]:
        def work() -> list[bool]:
            return [t in self.mempool or t in self._recent_confirmed for t in txids]

        return await self.run(work)

    async def get_block(self, block_hash: bytes) -> Block | None:
        return await self.run(lambda: self.chain.get_block(block_hash))

    async def get_txs(self, txids: Sequence[bytes]) -> list[Transaction | None]:
        def work() -> list[Transaction | None]:
            entries = [self.mempool.get(t) for t in txids]
            return [e.tx if e is not None else None for e in entries]

        return await self.run(work)

    async def fill_compact(self, partial: PartialBlock) -> bool:
        def work() -> bool:
            entry = self.chain.get_entry(partial.block_hash)
            if entry is not None and entry.has_data:
                return False
            partial.fill_from(e.tx for e in self.mempool)
            return True

        return await self.run(work)

    async def submit_block(self, block: Block, source: str) -> BlockOutcome:
        now = int(self.runtime.clock.time())

        def work() -> tuple[BlockOutcome, list[Event]]:
            result = self.chain.process_block(block, now)
            events = self._apply_chain_events(result.events)
            if result.outcome is ChainOutcome.ACCEPTED:
                events += self._side_blocks(block, source)
            readded = tuple(e.tx for e in events if isinstance(e, TxAccepted))
            tip_changed = any(isinstance(e, TipChanged) for e in result.events)
            tip = self._read_tip()
            tip_block = None
            if tip_changed:
                tip_block = self.chain.get_block(tip.hash) if tip.hash != block.hash else block
            outcome = result.outcome
            error = result.reject if outcome is ChainOutcome.REJECTED else None
            return (
                BlockOutcome(
                    accepted=outcome is ChainOutcome.ACCEPTED,
                    error=error,
                    orphan=outcome is ChainOutcome.ORPHAN,
                    duplicate=outcome is ChainOutcome.DUPLICATE,
                    tip_changed=tip_changed,
                    tip=tip,
                    tip_block=tip_block,
                    readded=readded,
                ),
                events,
            )

        outcome, events = await self.run(work)
        self.tip = outcome.tip if outcome.tip is not None else self.tip
        for event in events:
            self.bus.publish(event)
        return outcome

    def _side_blocks(self, block: Block, source: str) -> list[Event]:
        """A :class:`SideBlock` for each block that ``block`` completed off the active chain:
        itself, and the descendants that arrived before it (executor, after the chain moved).

        They are the entries this block linked; none was linked before it, so each is
        reported exactly once.
        """
        entry = self.chain.get_entry(block.hash)
        if entry is None or not entry.linked:
            return []
        active = self.chain.active
        events: list[Event] = []
        queue = deque([entry])
        while queue:
            current = queue.popleft()
            queue.extend(c for c in current.children if c.linked)
            if current in active or current.failed:
                continue
            stored = block if current is entry else self.chain.get_block(current.hash)
            if stored is not None:
                fork = active.fork_point(current).height
                events.append(SideBlock(stored, current.height, fork, source))
        return events

    def _apply_chain_events(self, chain_events: Sequence[ChainEvent]) -> list[Event]:
        """Mempool upkeep for a chain change, and the node events describing it (executor)."""
        events: list[Event] = []
        disconnected: list[Transaction] = []
        for event in chain_events:
            if isinstance(event, ChainBlockDisconnected):
                disconnected.extend(event.block.transactions)
                events.append(BlockDisconnected(event.block, event.height))
            elif isinstance(event, ChainBlockConnected):
                self.mempool.remove_for_block(event.block)
                for txid in event.block.txids:
                    self._recent_confirmed[txid] = None
                while len(self._recent_confirmed) > RECENT_CONFIRMED:
                    self._recent_confirmed.popitem(last=False)
                events.append(BlockConnected(event.block, event.height))
            elif isinstance(event, TipChanged):
                old, new = event.old_tip, event.new_tip
                events.append(NewTip(new.hash, new.height, old.hash, old.height, event.reorg_depth))
                if event.reorg_depth:
                    fork_height = old.height - event.reorg_depth
                    events.append(
                        Reorg(
                            old.hash,
                            new.hash,
                            fork_height,
                            event.reorg_depth,
                            new.height - fork_height,
                        )
                    )
        readded: tuple[MempoolEntry, ...] = ()
        if disconnected:
            for tx in disconnected:
                self._recent_confirmed.pop(tx.txid, None)
            result = self.mempool.readd_disconnected(
                disconnected,
                self.chain,
                self.chain.height + 1,
                sig_cache=self.chain.sig_cache,
                entry_time=int(self.runtime.clock.time()),
            )
            readded = result.readded
        events += [TxRemoved(r.txid, r.reason.value) for r in self._drain_removed()]
        events += [TxAccepted(e.tx, e.fee, "reorg") for e in readded]
        return events

    async def submit_tx(self, tx: Transaction, source: str) -> TxOutcome:
        now = int(self.runtime.clock.time())

        def work() -> tuple[TxOutcome, list[Event]]:
            try:
                entry = self.mempool.accept(
                    tx,
                    self.chain,
                    self.chain.height + 1,
                    sig_cache=self.chain.sig_cache,
                    entry_time=now,
                )
            except RuleError as exc:
                self._drain_removed()
                missing: tuple[bytes, ...] = ()
                if exc.code is ErrorCode.BAD_TXNS_INPUTS_MISSINGORSPENT:
                    missing = tuple(
                        dict.fromkeys(
                            i.prevout.txid
                            for i in tx.inputs
                            if i.prevout.txid not in self.mempool
                            and self.chain.get_coin(i.prevout) is None
                            and i.prevout.txid not in self._recent_confirmed
                        )
                    )
                return TxOutcome(False, exc, missing), []
            events: list[Event] = [TxRemoved(r.txid, r.reason.value) for r in self._drain_removed()]
            events.append(TxAccepted(tx, entry.fee, source))
            return TxOutcome(True), events

        outcome, events = await self.run(work)
        for event in events:
            self.bus.publish(event)
        return outcome

    async def chain_call(
        self, fn: Callable[[ChainState], Sequence[ChainEvent]]
    ) -> tuple[ChainTip, Block | None]:
        """Run a chain operation that returns events (invalidate/reconsider) with mempool upkeep."""

        def work() -> tuple[ChainTip, Block | None, list[Event]]:
            chain_events = fn(self.chain)
            events = self._apply_chain_events(chain_events)
            tip = self._read_tip()
            changed = any(isinstance(e, TipChanged) for e in chain_events)
            return tip, self.chain.get_block(tip.hash) if changed else None, events

        tip, block, events = await self.run(work)
        self.tip = tip
        for event in events:
            self.bus.publish(event)
        return tip, block
