"""The single owner of a node's chain: block tree, active chain, UTXO set and their store.

Every block and header a node receives goes through :class:`ChainState`: it checks the header
against its parent, stores the block, picks the chain with the most work, and connects or
disconnects blocks to reach it, each step one SQLite transaction (:mod:`node.store.sqlite`).
What changed comes back as events (:class:`BlockConnected`, :class:`BlockDisconnected`,
:class:`TipChanged`) for the node to publish to the mempool, the wallet and API clients.

How a block is handled
----------------------
1. Known already: ``duplicate``, or refused if it is marked invalid (or descends from one).
2. Parent unknown: an orphan. Held (bounded) after its context-free checks, and processed when
   its parent is accepted, iteratively, so a long chain of orphans needs no deep recursion.
3. Header: proof of work, then the rules that need the parent (``bits``, median time past, not
   more than two hours ahead of ``now``). A header that fails is refused and never stored.
4. Body: the checks that need no UTXO set (merkle root, sizes, coinbase, height commitment). A
   failure marks the block and its descendants invalid, unless the code says the fault may not
   be the block's own (:attr:`~node.core.errors.ErrorCode.marks_invalid`): a mutated copy of a
   valid block, a time too far ahead. Those are refused unmarked, so the real block is still
   accepted when it comes.
5. Stored; then the best candidate is activated: disconnect to the fork point through undo data,
   connect up to the candidate. If a block fails to connect, it is marked invalid and the next
   best chain is tried, possibly the old one, so the node never stays on less work than a valid
   chain it holds in full.

The rules themselves are in :mod:`node.core.validation`; the tree in :mod:`node.core.chain`.

What this class deliberately does not do: no networking, no mempool, no clock (``now`` is an
argument), no threads and no asyncio. It is synchronous and not thread-safe: the node runs it
in one owner thread and never calls it from async code, since every call may block on SQLite.
A :class:`~node.core.errors.StoreError` (disk full, a corrupt file) leaves the object unusable:
close it and reopen, and it resumes at the last committed tip.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from node.core.block import Block
from node.core.chain import (
    ActiveChain,
    BlockEntry,
    BlockStatus,
    ChainTip,
    branch_between,
    last_common_ancestor,
)
from node.core.errors import ErrorCode, RuleError, StoreError
from node.core.hashing import hash_hex
from node.core.header import BlockHeader, check_proof_of_work
from node.core.mempool import Mempool
from node.core.orphans import OrphanBlocks
from node.core.params import NetworkParams
from node.core.sigcache import SignatureCache
from node.core.template import NO_POLICY, BlockTemplate, MiningPolicy, build_template
from node.core.tx import OutPoint
from node.core.utxo import Coin, CoinsCache
from node.core.validation import (
    check_block,
    check_block_context,
    check_header_context,
    connect_block,
    disconnect_block,
)
from node.store.sqlite import ChainStore
from node.store.verify import VerifyReport, verify_store

# -- events


@dataclass(frozen=True)
class BlockConnected:
    """``block`` joined the active chain at ``height``."""

    block: Block
    height: int


@dataclass(frozen=True)
class BlockDisconnected:
    """``block`` left the active chain, where it was at ``height``."""

    block: Block
    height: int


@dataclass(frozen=True)
class TipChanged:
    """The active tip moved; ``reorg_depth`` blocks of the old chain were disconnected."""

    old_tip: BlockEntry
    new_tip: BlockEntry
    reorg_depth: int


ChainEvent = BlockConnected | BlockDisconnected | TipChanged
"""Events describe the net change of one call: disconnections from the old tip down to the
fork point, then connections up to the new tip, then one TipChanged. A block disconnected and
connected again within the call (a failed reorganisation) appears in neither."""


class BlockOutcome(enum.Enum):
    ACCEPTED = "accepted"
    """Stored and valid so far; on the active chain if the events say it was connected."""
    ORPHAN = "orphan"
    """Its parent is unknown: held until the parent arrives."""
    DUPLICATE = "duplicate"
    """Already stored (or already held as an orphan)."""
    REJECTED = "rejected"
    """It, or a block it descends from, broke a rule: ``reject`` says which."""


@dataclass(frozen=True)
class BlockResult:
    block_hash: bytes
    outcome: BlockOutcome
    events: tuple[ChainEvent, ...] = ()
    reject: RuleError | None = None

    @property
    def accepted(self) -> bool:
        return self.outcome is BlockOutcome.ACCEPTED


class ChainState:
    """A node's block tree, active chain and UTXO set over a :class:`ChainStore`.

    Open with :meth:`open` (a data directory) or :meth:`in_memory`. Opening loads the block
    index, restores the active chain at the last committed tip, and finishes any connection a
    crash interrupted.
    """

    def __init__(
        self,
        store: ChainStore,
        params: NetworkParams,
        *,
        sig_cache: SignatureCache | None = None,
        orphans: OrphanBlocks | None = None,
    ) -> None:
        if store.params.genesis_hash != params.genesis_hash:
            raise StoreError(f"the store is for {store.params.name}, not {params.name}")
        self.params = params
        self.store = store
        self.sig_cache = sig_cache if sig_cache is not None else SignatureCache()
        self.orphans = orphans if orphans is not None else OrphanBlocks()
        self.tree, tip = store.load_tree()
        self.active = ActiveChain(self.tree)
        self.active.set_tip(tip)
        # Blocks read or received during one call, for its events and to avoid re-reading.
        self._blocks: dict[bytes, Block] = {}
        self._failures: dict[bytes, RuleError] = {}
        while self.active.tip.failed:
            self._disconnect_tip()
        self.tree.reset_candidates(self.active.tip)
        self._activate_best_chain()
        self._blocks.clear()
        self._failures.clear()

    @classmethod
    def open(
        cls,
        datadir: Path,
        params: NetworkParams,
        *,
        sig_cache: SignatureCache | None = None,
        create: bool = True,
    ) -> ChainState:
        """Open the chain store in ``datadir``, creating it unless ``create`` is False.

        StoreError if it is not usable (see :meth:`ChainStore.open`).
        """
        store = ChainStore.open(datadir, params, create=create)
        try:
            return cls(store, params, sig_cache=sig_cache)
        except BaseException:
            store.close()
            raise

    @classmethod
    def in_memory(
        cls, params: NetworkParams, *, sig_cache: SignatureCache | None = None
    ) -> ChainState:
        """A chain state whose store lives in memory (simulated nodes, tests)."""
        return cls(ChainStore.memory(params), params, sig_cache=sig_cache)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> ChainState:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading

    @property
    def tip(self) -> BlockEntry:
        return self.active.tip

    @property
    def height(self) -> int:
        return self.active.height

    def get_entry(self, block_hash: bytes) -> BlockEntry | None:
        return self.tree.get(block_hash)

    def get_block(self, block_hash: bytes) -> Block | None:
        """A stored block, on the active chain or not; None if its data is not here."""
        return self.store.get_block(block_hash)

    def block_hash_at(self, height: int) -> bytes | None:
        """Hash of the active block at ``height``, or None past the tip."""
        entry = self.active.get(height)
        return None if entry is None else entry.hash

    def get_coin(self, outpoint: OutPoint) -> Coin | None:
        """The unspent coin at ``outpoint`` on the active chain (a UtxoView)."""
        return self.store.get_coin(outpoint)

    def coins_for(self, pubkey_hashes: Iterable[bytes]) -> list[tuple[OutPoint, Coin]]:
        """Every unspent coin on the active chain paying one of ``pubkey_hashes``."""
        return self.store.coins_for(pubkey_hashes)

    def locator(self) -> list[bytes]:
        return self.active.locator()

    def find_fork(self, locator: Iterable[bytes]) -> BlockEntry:
        """Where a peer's chain, described by its locator, meets the active chain."""
        return self.active.find_fork(locator)

    def chain_tips(self) -> list[ChainTip]:
        return self.tree.chain_tips(self.active)

    def next_bits(self) -> int:
        """The ``bits`` a block on top of the tip must carry."""
        return self.tree.expected_bits(self.tip, self.params)

    def median_time_past(self) -> int:
        """The tip's median time past: a block on top of it must be later."""
        return self.tree.median_time_past(self.tip)

    def missing_blocks(self, limit: int) -> list[BlockEntry]:
        """Blocks to download next to reach the best known header, lowest first."""
        return self.tree.missing_blocks(self.tree.best_header, self.active, limit)

    def verify(self) -> VerifyReport:
        """Rebuild the UTXO set from the active chain's stored blocks and compare."""
        return verify_store(self.store, list(self.active))

    # -- headers

    def process_header(self, header: BlockHeader, now: int) -> BlockEntry:
        """Validate a header against its parent and add it to the tree, without its block.

        Returns its entry (the existing one if known). Raises RuleError: ``prev-blk-not-found``
        if the parent is unknown, ``bad-prevblk`` if the parent is invalid, ``invalid-block``
        if it is itself marked invalid, or the code of the check it fails.
        """
        entry, new = self._accept_header(header, now)
        if new:
            self.store.save_entries([entry])
        return entry

    def _accept_header(self, header: BlockHeader, now: int) -> tuple[BlockEntry, bool]:
        entry = self.tree.get(header.hash)
        if entry is not None:
            _refuse_if_failed(entry)
            return entry, False
        parent = self.tree.get(header.prev_hash)
        if parent is None:
            raise RuleError(
                ErrorCode.PREV_BLK_NOT_FOUND,
                f"parent {hash_hex(header.prev_hash)} of {header.hash_hex} is unknown",
            )
        if parent.failed:
            raise RuleError(
                ErrorCode.BAD_PREVBLK,
                f"parent {parent.hash_hex} of {header.hash_hex} is marked invalid",
            )
        check_proof_of_work(header, self.params.pow_limit)
        check_header_context(
            header,
            expected_bits=self.tree.expected_bits(parent, self.params),
            median_time_past=self.tree.median_time_past(parent),
            now=now,
        )
        return self.tree.add_header(header), True

    # -- blocks

    def process_block(self, block: Block, now: int) -> BlockResult:
        """Accept a block if it is valid, and move to the best chain. See the module docstring."""
        old_tip = self.active.tip
        try:
            outcome, reject = self._accept_block(block, now)
            if outcome is BlockOutcome.ACCEPTED:
                self._accept_orphans_of(block.hash, now)
                self._activate_best_chain()
                entry = self.tree.get(block.hash)
                assert entry is not None
                failure = self._failures.get(block.hash)
                if failure is not None:
                    outcome, reject = BlockOutcome.REJECTED, failure
                elif entry.failed:
                    outcome, reject = BlockOutcome.REJECTED, _failed_ancestor_error(entry)
            return BlockResult(block.hash, outcome, self._events_since(old_tip), reject)
        finally:
            self._blocks.clear()
            self._failures.clear()

    def _accept_block(self, block: Block, now: int) -> tuple[BlockOutcome, RuleError | None]:
        """Steps 1 to 4 of the module docstring; does not change the active chain."""
        params = self.params
        entry = self.tree.get(block.hash)
        new_header = False
        try:
            if entry is None and block.header.prev_hash not in self.tree:
                # Checked before holding it, so the orphan pool holds no cheap junk.
                check_block(block, params)
                if block.hash in self.orphans:
                    return BlockOutcome.DUPLICATE, RuleError(ErrorCode.DUPLICATE, "orphan held")
                self.orphans.add(block)
                return BlockOutcome.ORPHAN, None
            if entry is not None and entry.has_data and not entry.failed:
                return BlockOutcome.DUPLICATE, RuleError(ErrorCode.DUPLICATE, block.hash_hex)
            entry, new_header = self._accept_header(block.header, now)
        except RuleError as exc:
            return BlockOutcome.REJECTED, exc
        try:
            check_block(block, params)
            check_block_context(block, entry.height)
        except RuleError as exc:
            if exc.code.marks_invalid:
                self._mark_invalid(entry)
            elif new_header:
                self.store.save_entries([entry])
            return BlockOutcome.REJECTED, exc
        linked = self.tree.set_have_data(entry)
        self.store.put_block(block, dict.fromkeys([entry, *linked]))
        self._blocks[block.hash] = block
        return BlockOutcome.ACCEPTED, None

    def _accept_orphans_of(self, parent_hash: bytes, now: int) -> None:
        """Accept the held orphans whose ancestor ``parent_hash`` just arrived, breadth first."""
        queue = deque(self.orphans.pop_children(parent_hash))
        while queue:
            orphan = queue.popleft()
            outcome, _ = self._accept_block(orphan, now)
            if outcome is BlockOutcome.ACCEPTED:
                queue.extend(self.orphans.pop_children(orphan.hash))

    # -- invalidateblock / reconsiderblock

    def invalidate_block(self, block_hash: bytes) -> tuple[ChainEvent, ...]:
        """Mark a block and its descendants invalid, as bitcoind's ``invalidateblock``.

        If it is on the active chain, the chain is disconnected down to its parent, then the
        best remaining chain is activated. KeyError if the block is unknown; ValueError for
        genesis.
        """
        entry = self._entry_or_raise(block_hash)
        if entry is self.tree.genesis:
            raise ValueError("the genesis block cannot be invalidated")
        old_tip = self.active.tip
        try:
            while entry in self.active:
                self._disconnect_tip()
            self._mark_invalid(entry)
            return self._reselect_best_chain(old_tip)
        finally:
            self._blocks.clear()
            self._failures.clear()

    def reconsider_block(self, block_hash: bytes) -> tuple[ChainEvent, ...]:
        """Clear invalid marks from a block, its descendants and ancestors (``reconsiderblock``).

        Then the best chain is activated; a block that really breaks a rule is found invalid
        again when connected. KeyError if the block is unknown.
        """
        entry = self._entry_or_raise(block_hash)
        old_tip = self.active.tip
        try:
            self.store.save_entries(self.tree.reconsider(entry))
            return self._reselect_best_chain(old_tip)
        finally:
            self._blocks.clear()
            self._failures.clear()

    def _reselect_best_chain(self, old_tip: BlockEntry) -> tuple[ChainEvent, ...]:
        """After invalid marks changed: choose and activate the best chain again from the
        candidates; the events since ``old_tip``."""
        self.tree.reset_candidates(self.active.tip)
        self._activate_best_chain()
        return self._events_since(old_tip)

    def _entry_or_raise(self, block_hash: bytes) -> BlockEntry:
        entry = self.tree.get(block_hash)
        if entry is None:
            raise KeyError(f"block {hash_hex(block_hash)} is not known")
        return entry

    # -- moving the active chain

    def _activate_best_chain(self) -> None:
        """Move the active chain to the best candidate, falling back past invalid blocks."""
        while True:
            best = self.tree.best_candidate()
            if best is self.active.tip:
                break
            fork = self.active.fork_point(best)
            while self.active.tip is not fork:
                self._disconnect_tip()
            for entry in branch_between(fork, best):
                try:
                    self._connect(entry)
                except RuleError as exc:
                    # Every fault found here is the block's own, whatever its code: the merkle
                    # root was checked without mutation, so these are the transactions its
                    # header commits to.
                    self._failures[entry.hash] = exc
                    self._mark_invalid(entry)
                    break
        self.tree.prune_candidates(self.active.tip)

    def _connect(self, entry: BlockEntry) -> None:
        block = self._block_of(entry)
        view = CoinsCache(self.store)
        undo = connect_block(block, entry.height, view, self.params, sig_cache=self.sig_cache)
        self.tree.mark_valid(entry)
        self.store.connect(entry, view.changes(), undo)
        self.active.set_tip(entry)

    def _disconnect_tip(self) -> None:
        entry = self.active.tip
        if entry.parent is None:
            raise StoreError("cannot disconnect the genesis block")
        block = self._block_of(entry)
        undo = self.store.get_undo(entry.hash)
        if undo is None:
            raise StoreError(f"no undo data for active block {entry.hash_hex}")
        view = CoinsCache(self.store)
        disconnect_block(block, undo, view)
        self.store.disconnect(entry, view.changes())
        self.active.set_tip(entry.parent)

    def _block_of(self, entry: BlockEntry) -> Block:
        block = self._blocks.get(entry.hash)
        if block is None:
            block = self.store.get_block(entry.hash)
            if block is None:
                raise StoreError(f"block {entry.hash_hex} is indexed as stored but has no data")
            self._blocks[entry.hash] = block
        return block

    def _mark_invalid(self, entry: BlockEntry) -> None:
        self.store.save_entries(self.tree.mark_invalid(entry))

    def _events_since(self, old_tip: BlockEntry) -> tuple[ChainEvent, ...]:
        new_tip = self.active.tip
        if new_tip is old_tip:
            return ()
        fork = last_common_ancestor(old_tip, new_tip)
        gone = list(reversed(branch_between(fork, old_tip)))
        events: list[ChainEvent] = [BlockDisconnected(self._block_of(e), e.height) for e in gone]
        events += [
            BlockConnected(self._block_of(e), e.height) for e in branch_between(fork, new_tip)
        ]
        events.append(TipChanged(old_tip, new_tip, len(gone)))
        return tuple(events)


def _refuse_if_failed(entry: BlockEntry) -> None:
    if entry.status & BlockStatus.FAILED:
        raise RuleError(ErrorCode.INVALID_BLOCK, f"block {entry.hash_hex} is marked invalid")
    if entry.failed:
        raise _failed_ancestor_error(entry)


def _failed_ancestor_error(entry: BlockEntry) -> RuleError:
    walk: BlockEntry | None = entry
    while walk is not None and not walk.status & BlockStatus.FAILED:
        walk = walk.parent
    culprit = walk.hash_hex if walk is not None else "an ancestor"
    return RuleError(
        ErrorCode.BAD_PREVBLK, f"block {entry.hash_hex} descends from invalid block {culprit}"
    )


def template_on_tip(
    chain: ChainState,
    mempool: Mempool,
    payout: bytes,
    now: int,
    message: bytes = b"",
    *,
    policy: MiningPolicy = NO_POLICY,
) -> BlockTemplate:
    """A template for the next block on ``chain``'s tip, paying ``payout``, leaving out what
    ``policy`` refuses.

    The chain supplies what only it knows (parent, height, expected ``bits``, median time past);
    every miner of forklab (RPC, ``forklab mine`` in-process, the simulator, the quickstart)
    builds its work here. Run it where the chain is owned (the node's executor).
    """
    tip = chain.tip
    return build_template(
        chain.params,
        parent_hash=tip.hash,
        height=tip.height + 1,
        bits=chain.next_bits(),
        median_time_past=chain.median_time_past(),
        now=now,
        mempool=mempool,
        payout_pubkey_hash=payout,
        message=message,
        policy=policy,
    )
