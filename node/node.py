"""A running node: chain state, mempool, peers and events, composed over an injected runtime.

:class:`Node` is the object everything else drives: the ``forklab node`` process and its
JSON-RPC/REST/WebSocket API, the devnet, the simulator and the tests. It owns

- a :class:`~node.chainstate.ChainState` and a :class:`~node.core.mempool.Mempool`, touched only
  on the runtime's executor (one worker thread in a real node, so SQLite never runs on the
  event loop and the chain needs no locks), sharing one
  :class:`~node.core.sigcache.SignatureCache`, so a transaction verified on entry to the mempool
  is not verified again in its block;
- a :class:`~node.p2p.manager.PeerManager` for everything on the wire;
- an :class:`~node.events.EventBus` on which it publishes what happens.

Public API (all coroutines run on the node's event loop)
--------------------------------------------------------
=====================================  ========================================================
``await node.start()`` / ``stop()``    open the chain, listen, dial; close peers, flush, close
                                       the store, the transport and the executor (also
                                       ``async with node``). Restart = a new Node on the same
                                       data dir; it resumes at the last committed tip.
``node.tip`` / ``node.height``         the active tip (:class:`~node.p2p.backend.ChainTip`)
``await node.submit_block(block)``     validate, store, relay (``submitblock``); returns a
                                       :class:`~node.p2p.backend.BlockOutcome`
``await node.submit_tx(tx)``           mempool admission and relay (``sendrawtransaction``);
                                       returns the MempoolEntry, raises RuleError
``await node.get_block(hash)``         a stored block or None
``await node.query(fn)``               run ``fn(chain, mempool)`` on the executor: every other
                                       read (``gettxout``, templates, ``getchaintips``...)
``await node.invalidate_block(h)``     and ``reconsider_block(h)``: as bitcoind's RPCs
``node.peers()``                       :class:`~node.p2p.peer.PeerInfo` of connected peers
``node.add_node(a)`` / ``remove_node`` keep (or stop keeping) a connection to an address
``await node.connect_once(a)``         dial once (``addnode a onetry``)
``node.disconnect_node(address=,id=)`` drop a peer
``node.set_network_active(bool)``      drop every peer and refuse new ones, or resume
``node.ban(a)`` / ``unban`` / ``banned()`` / ``clear_banned()``
``node.links``                         the :class:`~node.p2p.links.LinkPolicy` (partitions and
                                       latency imposed by this node on its own links)
``node.subscribe(maxsize=, kinds=)``   an :class:`~node.events.Subscription` to node events
``node.listen_address``                where the P2P listener is bound ("" if not listening)
``node.uptime``                        seconds since start, on the injected clock
``node.manager``                       the :class:`~node.p2p.manager.PeerManager` itself (for
                                       tests and the simulator's instrumentation)
=====================================  ========================================================

Determinism: with a seeded ``random.Random``, a virtual clock, an in-memory transport
(:mod:`node.p2p.memory`), ``InlineExecutor`` and ``datadir=None`` (an in-memory chain), a node
reads nothing from the outside world, so a seeded simulation replays exactly.

What this module does not do: parse command lines or configuration files, serve RPC, or mine;
those are built on this API.
"""

from __future__ import annotations

import logging
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from node.chainstate import (
    BlockConnected as ChainBlockConnected,
)
from node.chainstate import (
    BlockDisconnected as ChainBlockDisconnected,
)
from node.chainstate import (
    BlockOutcome as ChainOutcome,
)
from node.chainstate import (
    ChainEvent,
    ChainState,
    TipChanged,
)
from node.core.block import Block
from node.core.errors import ErrorCode, InternalError, RuleError
from node.core.header import BlockHeader, block_work
from node.core.mempool import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MIN_FEE_RATE,
    Mempool,
    MempoolEntry,
    Removal,
)
from node.core.params import NetworkParams
from node.core.sigcache import DEFAULT_MAX_ENTRIES, SignatureCache
from node.core.tx import Transaction
from node.events import (
    BlockConnected,
    BlockDisconnected,
    Event,
    EventBus,
    NewTip,
    Reorg,
    SideBlock,
    Subscription,
    TxAccepted,
    TxRemoved,
)
from node.p2p.backend import (
    BlockOutcome,
    ChainTip,
    HeadersOutcome,
    HeadersStatus,
    TxOutcome,
)
from node.p2p.compact import PartialBlock
from node.p2p.links import LinkPolicy
from node.p2p.manager import P2PConfig, PeerManager
from node.p2p.peer import PeerInfo
from node.runtime import Runtime

log = logging.getLogger("forklab.node")

T = TypeVar("T")

RECENT_CONFIRMED = 50_000
"""Txids of recently connected blocks remembered, so their announcements are not fetched."""


@dataclass(frozen=True)
class NodeConfig:
    params: NetworkParams
    datadir: Path | None
    """The data directory of the chain store; None keeps the chain in memory (simulations)."""
    p2p: P2PConfig = field(default_factory=P2PConfig)
    mempool_max_bytes: int = DEFAULT_MAX_BYTES
    min_fee_rate: int = DEFAULT_MIN_FEE_RATE
    sig_cache_entries: int = DEFAULT_MAX_ENTRIES


class _ChainAccess:
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


class Node:
    """A node over an injected runtime; see the module docstring for the API."""

    def __init__(
        self, config: NodeConfig, runtime: Runtime, *, bus: EventBus | None = None
    ) -> None:
        """``bus``: where the node publishes its events (a new one by default); a simulator
        passes its own to see every event the moment it is published."""
        self.config = config
        self.params = config.params
        self.runtime = runtime
        self.bus = bus if bus is not None else EventBus()
        self.links = LinkPolicy()
        self.sig_cache = SignatureCache(config.sig_cache_entries)
        self._chain: ChainState | None = None
        self._access: _ChainAccess | None = None
        self._manager: PeerManager | None = None
        self._started_at: float | None = None

    # -- lifecycle

    async def start(self) -> None:
        if self._started_at is not None:
            raise RuntimeError("node already started")
        config = self.config
        datadir = config.datadir

        def open_chain() -> ChainState:
            if datadir is None:
                return ChainState.in_memory(self.params, sig_cache=self.sig_cache)
            return ChainState.open(datadir, self.params, sig_cache=self.sig_cache)

        chain = await self.runtime.executor.run(open_chain)
        self._chain = chain
        access = _ChainAccess(self.runtime, chain, config, self.bus)
        self._access = access
        self._manager = PeerManager(
            config.p2p,
            self.params,
            runtime=self.runtime,
            backend=access,
            bus=self.bus,
            links=self.links,
        )
        try:
            await self._manager.start()
        except BaseException:
            # Clean-up runs if and only if start-up did not finish: nothing is left open.
            await self._manager.stop()
            await self.runtime.executor.run(chain.close)
            self._chain = None
            await self.runtime.transport.close()
            self.runtime.executor.close()
            raise
        self._started_at = self.runtime.clock.monotonic()
        log.info(
            "node started on %s at height %d, listening on %s",
            self.params.name,
            access.tip.height,
            self._manager.listen_address or "nothing",
        )

    async def stop(self) -> None:
        """Close peers, then the store, the transport and the executor. Safe to call twice."""
        if self._started_at is None:
            return
        self._started_at = None
        if self._manager is not None:
            await self._manager.stop()
        if self._chain is not None:
            await self.runtime.executor.run(self._chain.close)
            self._chain = None
        await self.runtime.transport.close()
        self.runtime.executor.close()
        self.bus.close()

    async def __aenter__(self) -> Node:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def running(self) -> bool:
        return self._started_at is not None

    @property
    def uptime(self) -> float:
        if self._started_at is None:
            return 0.0
        return self.runtime.clock.monotonic() - self._started_at

    def _parts(self) -> tuple[_ChainAccess, PeerManager]:
        if self._access is None or self._manager is None or self._started_at is None:
            raise InternalError("the node is not running")
        return self._access, self._manager

    # -- chain

    @property
    def tip(self) -> ChainTip:
        return self._parts()[0].tip

    @property
    def height(self) -> int:
        return self.tip.height

    async def submit_block(self, block: Block) -> BlockOutcome:
        access, manager = self._parts()
        outcome = await access.submit_block(block, "local")
        if outcome.accepted and outcome.tip_changed and outcome.tip_block is not None:
            manager.announce_block(outcome.tip_block, None)
        for tx in outcome.readded:
            manager.announce_tx(tx, None)
        return outcome

    async def submit_tx(self, tx: Transaction) -> MempoolEntry:
        """Admit ``tx`` to the mempool and relay it; RuleError says why not."""
        access, manager = self._parts()
        error = await manager.process_tx(tx, None)
        if error is not None:
            raise error
        entry = await access.run(lambda: access.mempool.get(tx.txid))
        if entry is None:
            raise InternalError(f"{tx.txid_hex} was accepted but is not in the mempool")
        return entry

    async def get_block(self, block_hash: bytes) -> Block | None:
        return await self._parts()[0].get_block(block_hash)

    async def query(self, fn: Callable[[ChainState, Mempool], T]) -> T:
        """Run ``fn(chain, mempool)`` on the executor, the only place they may be touched."""
        access, _ = self._parts()
        return await access.run(lambda: fn(access.chain, access.mempool))

    async def invalidate_block(self, block_hash: bytes) -> ChainTip:
        return await self._chain_call(lambda chain: chain.invalidate_block(block_hash))

    async def reconsider_block(self, block_hash: bytes) -> ChainTip:
        return await self._chain_call(lambda chain: chain.reconsider_block(block_hash))

    async def _chain_call(self, fn: Callable[[ChainState], Sequence[ChainEvent]]) -> ChainTip:
        access, manager = self._parts()
        tip, block = await access.chain_call(fn)
        if block is not None:
            manager.announce_block(block, None)
        return tip

    # -- network

    @property
    def listen_address(self) -> str:
        return self._parts()[1].listen_address

    @property
    def network_active(self) -> bool:
        return self._parts()[1].network_active

    def peers(self) -> list[PeerInfo]:
        return self._parts()[1].peer_info()

    def add_node(self, address: str) -> None:
        self._parts()[1].add_node(address)

    def remove_node(self, address: str) -> bool:
        return self._parts()[1].remove_node(address)

    async def connect_once(self, address: str) -> None:
        await self._parts()[1].connect_once(address)

    def disconnect_node(self, *, address: str | None = None, peer_id: int | None = None) -> bool:
        return self._parts()[1].disconnect(address=address, peer_id=peer_id)

    def set_network_active(self, active: bool) -> None:
        self._parts()[1].set_network_active(active)

    def ban(self, address: str, seconds: float | None = None) -> str:
        return self._parts()[1].ban(address, seconds)

    def unban(self, key: str) -> bool:
        return self._parts()[1].unban(key)

    def banned(self) -> dict[str, float]:
        return self._parts()[1].banned()

    def clear_banned(self) -> None:
        self._parts()[1].clear_bans()

    @property
    def manager(self) -> PeerManager:
        """The peer manager itself, for tests and the simulator's instrumentation."""
        return self._parts()[1]

    # -- events

    def subscribe(
        self, *, maxsize: int = 1000, kinds: Sequence[type[Event]] | None = None
    ) -> Subscription:
        return self.bus.subscribe(maxsize=maxsize, kinds=kinds)
