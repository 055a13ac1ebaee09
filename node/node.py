"""A running node: chain state, mempool, peers and events, composed over an injected runtime.

:class:`Node` is the object everything else drives: the ``forklab node`` process and its
JSON-RPC/REST/WebSocket API, the devnet, the simulator and the tests. It owns

- a :class:`~node.chainstate.ChainState` and a :class:`~node.core.mempool.Mempool`, touched only
  on the runtime's executor (one worker thread in a real node, so SQLite never runs on the
  event loop and the chain needs no locks), sharing one
  :class:`~node.core.sigcache.SignatureCache`, so a transaction verified on entry to the mempool
  is not verified again in its block;
- a :class:`~node.p2p.manager.PeerManager` for everything on the wire, which reaches the chain
  and the mempool only through :class:`~node.access.ChainAccess` (one executor trip a question);
- an :class:`~node.events.EventBus` on which it publishes what happens (its own, or one given:
  ``Node(config, runtime, bus=...)``, so a simulator sees each event as it is published).

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from node.access import ChainAccess
from node.chainstate import ChainEvent, ChainState
from node.core.block import Block
from node.core.errors import InternalError
from node.core.mempool import DEFAULT_MAX_BYTES, DEFAULT_MIN_FEE_RATE, Mempool, MempoolEntry
from node.core.params import NetworkParams
from node.core.sigcache import DEFAULT_MAX_ENTRIES, SignatureCache
from node.core.tx import Transaction
from node.events import Event, EventBus, Subscription
from node.p2p.backend import BlockOutcome, ChainTip
from node.p2p.links import LinkPolicy
from node.p2p.manager import P2PConfig, PeerManager
from node.p2p.peer import PeerInfo
from node.runtime import Runtime

log = logging.getLogger("forklab.node")

T = TypeVar("T")


@dataclass(frozen=True)
class NodeConfig:
    params: NetworkParams
    datadir: Path | None
    """The data directory of the chain store; None keeps the chain in memory (simulations)."""
    p2p: P2PConfig = field(default_factory=P2PConfig)
    mempool_max_bytes: int = DEFAULT_MAX_BYTES
    min_fee_rate: int = DEFAULT_MIN_FEE_RATE
    sig_cache_entries: int = DEFAULT_MAX_ENTRIES


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
        self._access: ChainAccess | None = None
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
        access = ChainAccess(self.runtime, chain, config, self.bus)
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

    def _parts(self) -> tuple[ChainAccess, PeerManager]:
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

    async def mine_block(self, block: Block) -> str | None:
        """Submit a block a miner found: None if it became the tip, else BIP 22's word for why
        not (``duplicate-invalid``, ``duplicate``, a rule's reject reason, ``inconclusive``).
        What ``submitblock`` answers and what an in-process miner is told."""

        def known_invalid(chain: ChainState, _mempool: Mempool) -> bool:
            entry = chain.get_entry(block.hash)
            return entry is not None and entry.failed

        if await self.query(known_invalid):
            return "duplicate-invalid"
        outcome = await self.submit_block(block)
        if outcome.duplicate:
            return "duplicate"
        if outcome.error is not None:
            return outcome.error.reason
        if not outcome.accepted or outcome.orphan:
            return "inconclusive"
        return None if self.tip.hash == block.hash else "inconclusive"

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
