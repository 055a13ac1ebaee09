"""The memory pool: valid transactions waiting for a block, and the policy that admits them.

Consensus says which transactions a *block* may hold; policy says which ones this node keeps
and relays before then. A transaction enters the pool when it passes every consensus rule
against the chain's UTXO set *plus the pool's own outputs* (so unconfirmed chains work: a child
may spend its parent while both wait) and the policy below. Policy refusals use their own
error codes (``RuleKind.POLICY``): the transaction is not invalid, only unwelcome here.

Policy, in the order it is checked (cheapest first, signatures last):

==============================  ==============================================================
reason                          rule
==============================  ==============================================================
``coinbase``                    a coinbase exists only inside its block
``txn-already-in-mempool``      the same txid is already here
(check_transaction codes)       the context-free consensus rules
``tx-size``                     at most ``MAX_STANDARD_TX_SIZE`` bytes (a tenth of a block)
``bad-txns-nonfinal``           final in the next block (locktime 0 or below its height)
``txn-mempool-conflict``        spends a coin another pool transaction spends: first seen
                                wins, no replacement
``txn-already-known``           its inputs are gone and its outputs are in the UTXO set: it
                                is already confirmed
``min-relay-fee-not-met``       pays at least ``min_fee_rate`` units per byte of its encoding
``too-long-mempool-chain``      at most ``MAX_ANCESTORS`` in its unconfirmed chain, and no
                                ancestor gets more than ``MAX_DESCENDANTS``; ``MAX_PACKAGE_SIZE``
                                bytes either way (Bitcoin Core's limits)
(check_tx_inputs codes)         inputs exist and are mature, amounts, keys, signatures
``mempool-full``                the pool is full and the transaction does not pay enough to
                                displace what would have to go (see *eviction*)
==============================  ==============================================================

Fee rates are exact fractions (units per byte); sizes are bytes of the canonical encoding, the
same bytes that count against the block size limit.

**Relatives.** Every entry knows its in-pool parents and children and keeps running totals of
its ancestors and descendants (count, bytes, fees, itself included), as Bitcoin Core does. The
totals stay exact because the pool only ever removes a transaction that has no in-pool children
(eviction and conflicts remove whole subtrees, leaves first) or no in-pool parents (a block
confirms parents before children). Bitcoin Core's chain limits (25 ancestors, 25 descendants,
101 kB either way) keep every walk over relatives short, whatever a sender chains together.
That bookkeeping, and the eviction heap, live in :mod:`node.core.mempool_graph`; this module
holds the rules and the entry points.

**Eviction.** The pool holds at most ``max_bytes`` of encoded transactions. Entries are ranked by
Bitcoin Core's *descendant score*: the higher of their own fee rate and the fee rate of
themselves with all their descendants, so a parent paid for by its child (CPFP) is not thrown
out first. To enter a full pool a transaction must beat every package it displaces by at least
``min_fee_rate`` (Bitcoin's incremental relay fee, which defaults to the minimum relay fee),
and so must each of its unconfirmed ancestors scored with it as a descendant (they stay; a
child may pay for its parent's place). Otherwise it is refused with ``mempool-full`` and nothing
is evicted. Ties go to the transaction seen first. This needs no clock, unlike Core's decaying
minimum fee.

**Blocks and reorganisations.** :meth:`Mempool.remove_for_block` removes a connected block's
transactions and everything that conflicts with them (and their descendants).
:meth:`Mempool.readd_disconnected` puts the transactions of disconnected blocks back (first,
since they were confirmed before anything here) and rechecks everything the pool held against
the new chain: what lost an input, spends a coinbase that is immature again or is no longer
final is dropped. Rechecking needs no signature: a txid fixes the outputs it spends, so only
existence, maturity and finality can change with the chain.

Removals of every kind (confirmed, conflict, size limit, reorg) are reported to the optional
``on_removed`` callback, so the node can publish them as events; the methods also return them.

What this module does not do: relay, orphan handling (a transaction whose inputs are missing is
refused with ``bad-txns-inputs-missingorspent``; keeping it until its parent arrives is the
p2p layer's job), fee estimation, replace-by-fee, expiry by age (that would need a clock), or
ordering for a block (:mod:`node.core.template`). It reads no clock: the caller passes the
entry time if it wants one recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction

from node.core.block import MAX_BLOCK_SIZE, Block
from node.core.errors import ErrorCode, InternalError, RuleError
from node.core.hashing import hash_hex
from node.core.mempool_graph import MempoolEntry, PoolGraph, PoolNode, Removal, RemovalReason
from node.core.params import NetworkParams
from node.core.sigcache import SignatureCache
from node.core.tx import MAX_MONEY, OutPoint, Transaction
from node.core.utxo import Coin, UtxoView
from node.core.validation import check_transaction, check_tx_inputs

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MIN_FEE_RATE",
    "MAX_ANCESTORS",
    "MAX_DESCENDANTS",
    "MAX_PACKAGE_SIZE",
    "MAX_STANDARD_TX_SIZE",
    "MEMPOOL_HEIGHT",
    "Mempool",
    "MempoolEntry",
    "MempoolView",
    "Relatives",
    "Removal",
    "RemovalReason",
    "ReorgResult",
    "is_final",
]

DEFAULT_MIN_FEE_RATE = 1
"""Units per byte a transaction must pay to enter (Bitcoin's default, 1 satoshi per vbyte).

A typical one-input, two-output payment is about 215 bytes, so it pays 215 units: 0.00000215
coins. Zero is allowed (a devnet that accepts free transactions), but then a full pool can be
churned for free; keep it positive on any shared network.
"""

DEFAULT_MAX_BYTES = 20_000_000
"""Encoded bytes the pool holds by default: about twenty full blocks.

Python objects cost several times their encoding, so this is roughly 100-200 MB of memory;
Bitcoin Core's 300 MB limit counts memory, not encoded bytes.
"""

MAX_STANDARD_TX_SIZE = MAX_BLOCK_SIZE // 10
"""The largest transaction relayed (consensus allows a whole block's worth, as Bitcoin does)."""

MAX_ANCESTORS = 25
"""A transaction and its unconfirmed ancestors: at most this many (Bitcoin Core's default)."""

MAX_DESCENDANTS = 25
"""A transaction and its unconfirmed descendants: at most this many."""

MAX_PACKAGE_SIZE = 101_000
"""Encoded bytes of a transaction with its ancestors, or with its descendants, at most.

These limits bound the work of every admission, removal and template (each walks a
transaction's relatives), so a long unconfirmed chain cannot make the pool quadratic.
"""

MEMPOOL_HEIGHT = 0x7FFFFFFF
"""The height :class:`MempoolView` gives coins created by pool transactions: not in a block yet.

Only a coinbase's height matters to the rules (maturity), and the pool never holds a coinbase.
"""


@dataclass(frozen=True)
class Relatives:
    """An entry's place among unconfirmed transactions (``getrawmempool`` verbose fields).

    Ancestor and descendant totals include the entry itself, as Bitcoin Core's do.
    """

    parents: frozenset[bytes]
    """txids of in-pool transactions whose outputs this one spends (``depends``)."""
    children: frozenset[bytes]
    """txids of in-pool transactions spending this one's outputs (``spentby``)."""
    ancestor_count: int
    ancestor_size: int
    ancestor_fees: int
    descendant_count: int
    descendant_size: int
    descendant_fees: int

    @property
    def ancestor_fee_rate(self) -> Fraction:
        """The fee rate of the package a block must take to include this entry."""
        return Fraction(self.ancestor_fees, self.ancestor_size)


@dataclass(frozen=True)
class ReorgResult:
    readded: tuple[MempoolEntry, ...]
    """Transactions of disconnected blocks now back in the pool."""
    removed: tuple[Removal, ...]
    """Transactions the pool held before that are gone now."""


class Mempool:
    """Unconfirmed transactions, admitted by policy, bounded in bytes.

    One owner (the node's chain task) calls every method; there are no locks.
    """

    def __init__(
        self,
        params: NetworkParams,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        min_fee_rate: int = DEFAULT_MIN_FEE_RATE,
        on_removed: Callable[[Removal], None] | None = None,
    ) -> None:
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        if min_fee_rate < 0:
            raise ValueError(f"min_fee_rate must not be negative, got {min_fee_rate}")
        self.params = params
        self.max_bytes = max_bytes
        self.min_fee_rate = min_fee_rate
        self._on_removed = on_removed
        self._graph = PoolGraph()

    # -- reading

    def __len__(self) -> int:
        return len(self._graph.nodes)

    def __contains__(self, txid: object) -> bool:
        return txid in self._graph.nodes

    def __iter__(self) -> Iterator[MempoolEntry]:
        """Entries in admission order, which is also a valid order for a block (parents first)."""
        return (node.entry for node in list(self._graph.nodes.values()))

    def get(self, txid: bytes) -> MempoolEntry | None:
        node = self._graph.nodes.get(txid)
        return node.entry if node is not None else None

    def entries(self) -> tuple[MempoolEntry, ...]:
        """Every entry, parents before children (admission order)."""
        return tuple(node.entry for node in self._graph.nodes.values())

    def spender_of(self, outpoint: OutPoint) -> bytes | None:
        """The txid of the pool transaction spending ``outpoint``, if any."""
        return self._graph.spenders.get(outpoint)

    def relatives(self, txid: bytes) -> Relatives:
        """Parents, children and package totals of an entry; KeyError if it is not here."""
        node = self._graph.nodes[txid]
        return Relatives(
            parents=frozenset(node.parents),
            children=frozenset(node.children),
            ancestor_count=node.anc_count,
            ancestor_size=node.anc_size,
            ancestor_fees=node.anc_fee,
            descendant_count=node.desc_count,
            descendant_size=node.desc_size,
            descendant_fees=node.desc_fee,
        )

    @property
    def total_bytes(self) -> int:
        """Encoded bytes of every transaction held."""
        return self._graph.bytes

    @property
    def total_fees(self) -> int:
        return self._graph.fees

    @property
    def revision(self) -> int:
        """A counter that changes whenever the contents do (for long polling a template)."""
        return self._graph.revision

    # -- admission

    def accept(
        self,
        tx: Transaction,
        chain_view: UtxoView,
        next_height: int,
        *,
        sig_cache: SignatureCache | None = None,
        entry_time: int = 0,
    ) -> MempoolEntry:
        """Admit ``tx`` or raise RuleError saying why not (see the module's table).

        ``chain_view`` is the UTXO set at the tip; ``next_height`` the height of the block that
        would confirm ``tx``. Signatures found valid go into ``sig_cache``, so the block that
        confirms the transaction does not verify them again. If room must be made, the
        displaced transactions are reported to ``on_removed`` with reason ``sizelimit``.
        """
        node, evict = self._check(
            tx,
            chain_view,
            next_height,
            sig_cache=sig_cache,
            entry_time=entry_time,
            enforce_limits=True,
        )
        removed: list[Removal] = []
        for root in evict:
            removed += self._graph.remove_subtree(
                root, RemovalReason.SIZELIMIT, f"displaced by {tx.txid_hex}"
            )
        self._graph.insert(node)
        self._report(removed)
        return node.entry

    def _check(
        self,
        tx: Transaction,
        chain_view: UtxoView,
        next_height: int,
        *,
        sig_cache: SignatureCache | None,
        entry_time: int,
        enforce_limits: bool,
    ) -> tuple[PoolNode, list[PoolNode]]:
        """Every admission rule; returns the node to insert and the subtrees to evict first.

        Changes nothing, so a refusal leaves the pool exactly as it was.
        """
        txid = tx.txid
        if tx.is_coinbase():
            raise RuleError(
                ErrorCode.COINBASE, f"{tx.txid_hex} is a coinbase, which only a block can hold"
            )
        if txid in self._graph.nodes:
            raise RuleError(ErrorCode.TXN_ALREADY_IN_MEMPOOL, tx.txid_hex)
        check_transaction(tx)
        if tx.size > MAX_STANDARD_TX_SIZE:
            raise RuleError(
                ErrorCode.TX_SIZE,
                f"{tx.size} bytes exceeds the relay limit of {MAX_STANDARD_TX_SIZE}",
            )
        if not is_final(tx, next_height):
            raise RuleError(
                ErrorCode.BAD_TXNS_NONFINAL,
                f"locktime {tx.locktime} lets it into blocks above that height, "
                f"the next block is {next_height}",
            )
        for n, txin in enumerate(tx.inputs):
            spender = self._graph.spenders.get(txin.prevout)
            if spender is not None:
                raise RuleError(
                    ErrorCode.TXN_MEMPOOL_CONFLICT,
                    f"input {n} spends {txin.prevout}, already spent by {hash_hex(spender)}",
                )
        view = MempoolView(chain_view, self)
        coins = [view.get_coin(txin.prevout) for txin in tx.inputs]
        if None in coins:
            if any(
                chain_view.get_coin(OutPoint(txid, index)) is not None
                for index in range(len(tx.outputs))
            ):
                raise RuleError(ErrorCode.TXN_ALREADY_KNOWN, f"{tx.txid_hex} is confirmed")
        else:
            # Spendable inputs, yet a pool transaction already spends its outputs: possible only
            # if a block was disconnected and readd_disconnected() was not called.
            for index in range(len(tx.outputs)):
                if OutPoint(txid, index) in self._graph.spenders:
                    raise InternalError(
                        f"{tx.txid_hex} arrives after a pool transaction spending it: call "
                        "readd_disconnected() when blocks are disconnected"
                    )
        if enforce_limits and None not in coins:
            # Refuse a cheap transaction before paying for its signatures. The amounts are
            # rechecked by check_tx_inputs below; out-of-range ones are left to it.
            value_in = sum(coin.value for coin in coins if coin is not None)
            fee_hint = value_in - tx.total_out()
            if fee_hint >= 0 and value_in <= MAX_MONEY:
                self._check_fee_rate(tx, fee_hint)
        parents = {
            txin.prevout.txid for txin in tx.inputs if txin.prevout.txid in self._graph.nodes
        }
        self._check_chain_limits(tx, parents)
        fee = check_tx_inputs(tx, view, next_height, self.params, sig_cache=sig_cache)

        entry = MempoolEntry(tx, fee, entry_time, next_height - 1, self._graph.next_sequence)
        node = PoolNode(entry, parents)
        evict: list[PoolNode] = []
        if enforce_limits:
            self._check_fee_rate(tx, fee)
            evict = self._graph.plan_eviction(node, self.max_bytes, self.min_fee_rate)
        return node, evict

    def _check_chain_limits(self, tx: Transaction, parents: set[bytes]) -> None:
        """Refuse a transaction that would make an unconfirmed chain too long or too large."""
        ancestors = self._graph.ancestors_of(parents)
        size = tx.size
        if len(ancestors) + 1 > MAX_ANCESTORS:
            raise RuleError(
                ErrorCode.TOO_LONG_MEMPOOL_CHAIN,
                f"{len(ancestors)} unconfirmed ancestors, at most {MAX_ANCESTORS - 1} allowed",
            )
        ancestor_size = size + sum(ancestor.entry.size for ancestor in ancestors)
        if ancestor_size > MAX_PACKAGE_SIZE:
            raise RuleError(
                ErrorCode.TOO_LONG_MEMPOOL_CHAIN,
                f"{ancestor_size} bytes with its ancestors, at most {MAX_PACKAGE_SIZE} allowed",
            )
        for ancestor in ancestors:
            if (
                ancestor.desc_count + 1 > MAX_DESCENDANTS
                or ancestor.desc_size + size > MAX_PACKAGE_SIZE
            ):
                raise RuleError(
                    ErrorCode.TOO_LONG_MEMPOOL_CHAIN,
                    f"{ancestor.entry.tx.txid_hex} would have over {MAX_DESCENDANTS - 1} "
                    f"descendants or {MAX_PACKAGE_SIZE} bytes with them",
                )

    def _check_fee_rate(self, tx: Transaction, fee: int) -> None:
        needed = self.min_fee_rate * tx.size
        if fee < needed:
            raise RuleError(
                ErrorCode.MIN_RELAY_FEE_NOT_MET,
                f"fee {fee} for {tx.size} bytes; at least {needed} "
                f"({self.min_fee_rate} per byte) is needed",
            )

    # -- blocks and reorganisations

    def remove_for_block(self, block: Block) -> tuple[Removal, ...]:
        """Remove a connected block's transactions and whatever conflicts with them."""
        removed: list[Removal] = []
        for tx in block.transactions:
            node = self._graph.nodes.get(tx.txid)
            if node is not None:
                removed += self._graph.confirm(node, block)
        for tx in block.transactions:
            if tx.is_coinbase():
                continue
            for txin in tx.inputs:
                spender = self._graph.spenders.get(txin.prevout)
                if spender is not None:
                    removed += self._graph.remove_subtree(
                        self._graph.nodes[spender],
                        RemovalReason.CONFLICT,
                        f"{txin.prevout} was spent by {tx.txid_hex} in block {block.hash_hex}",
                    )
        self._report(removed)
        return tuple(removed)

    def readd_disconnected(
        self,
        txs: Iterable[Transaction],
        chain_view: UtxoView,
        next_height: int,
        *,
        sig_cache: SignatureCache | None = None,
        entry_time: int = 0,
    ) -> ReorgResult:
        """After a reorganisation: re-admit the disconnected blocks' transactions, recheck the rest.

        ``txs`` are the transactions of the disconnected blocks (coinbases are skipped; any
        order, parents are put first); ``chain_view`` and ``next_height`` describe the new tip.
        Those now confirmed or conflicting with the new chain are dropped silently (they were
        not in the pool). They are re-admitted without the fee and size limits, as Bitcoin Core
        does, so a block's zero-fee transactions are not lost to a reorg; then the pool is
        trimmed back to size. The chain limits still hold: an entry that would break them now
        is dropped.
        """
        old = list(self._graph.nodes.values())
        self._graph.clear()
        readded: list[PoolNode] = []
        for tx in _parents_first(txs):
            if tx.is_coinbase() or tx.txid in self._graph.nodes:
                continue
            try:
                node, _ = self._check(
                    tx,
                    chain_view,
                    next_height,
                    sig_cache=sig_cache,
                    entry_time=entry_time,
                    enforce_limits=False,
                )
            except RuleError:
                continue
            self._graph.insert(node)
            readded.append(node)
        removed: list[Removal] = []
        for node in old:
            tx = node.entry.tx
            if tx.txid in self._graph.nodes:
                continue
            try:
                self._recheck(tx, chain_view, next_height)
            except RuleError as err:
                removed.append(Removal(tx, RemovalReason.REORG, str(err)))
                continue
            parents = {i.prevout.txid for i in tx.inputs if i.prevout.txid in self._graph.nodes}
            try:
                self._check_chain_limits(tx, parents)
            except RuleError as err:
                removed.append(Removal(tx, RemovalReason.REORG, str(err)))
                continue
            entry = node.entry
            self._graph.insert(
                PoolNode(
                    MempoolEntry(
                        tx, entry.fee, entry.time, entry.height, self._graph.next_sequence
                    ),
                    parents,
                )
            )
        old_txids = {node.txid for node in old}
        for removal in self._graph.trim(self.max_bytes):
            if removal.txid in old_txids:
                removed.append(removal)
        self._report(removed)
        return ReorgResult(
            tuple(node.entry for node in readded if node.txid in self._graph.nodes), tuple(removed)
        )

    def revalidate(self, chain_view: UtxoView, next_height: int) -> tuple[Removal, ...]:
        """Recheck every entry against a changed chain; drop (and return) those now invalid."""
        return self.readd_disconnected((), chain_view, next_height).removed

    def _recheck(self, tx: Transaction, chain_view: UtxoView, next_height: int) -> None:
        """What a chain change can break in an admitted transaction (signatures it cannot)."""
        if not is_final(tx, next_height):
            raise RuleError(
                ErrorCode.BAD_TXNS_NONFINAL,
                f"locktime {tx.locktime}, the next block is {next_height}",
            )
        view = MempoolView(chain_view, self)
        for n, txin in enumerate(tx.inputs):
            if txin.prevout in self._graph.spenders:
                raise RuleError(
                    ErrorCode.TXN_MEMPOOL_CONFLICT,
                    f"input {n} spends {txin.prevout}, "
                    f"spent by {hash_hex(self._graph.spenders[txin.prevout])}",
                )
            coin = view.get_coin(txin.prevout)
            if coin is None:
                raise RuleError(
                    ErrorCode.BAD_TXNS_INPUTS_MISSINGORSPENT, f"input {n} spends {txin.prevout}"
                )
            if coin.is_coinbase and next_height - coin.height < self.params.coinbase_maturity:
                raise RuleError(
                    ErrorCode.BAD_TXNS_PREMATURE_SPEND_OF_COINBASE,
                    f"input {n} spends a coinbase of height {coin.height} at {next_height}",
                )

    def _report(self, removed: Sequence[Removal]) -> None:
        if self._on_removed is not None:
            for removal in removed:
                self._on_removed(removal)


class MempoolView(UtxoView):
    """The chain's UTXO set as the pool sees it: plus pool outputs, minus pool-spent coins.

    This is the view a new transaction is checked against, so it may spend unconfirmed outputs;
    a wallet uses it to avoid coins already spent by its own pending payments.
    """

    def __init__(self, chain_view: UtxoView, mempool: Mempool) -> None:
        self._chain = chain_view
        self._mempool = mempool

    def get_coin(self, outpoint: OutPoint) -> Coin | None:
        if self._mempool.spender_of(outpoint) is not None:
            return None
        entry = self._mempool.get(outpoint.txid)
        if entry is None:
            return self._chain.get_coin(outpoint)
        outputs = entry.tx.outputs
        if outpoint.index >= len(outputs):
            return None
        txout = outputs[outpoint.index]
        return Coin(txout.value, txout.pubkey_hash, MEMPOOL_HEIGHT, False)


def is_final(tx: Transaction, height: int) -> bool:
    """Whether ``tx`` may be in a block at ``height``: locktime is the last height it may not."""
    return tx.locktime == 0 or tx.locktime < height


def _parents_first(txs: Iterable[Transaction]) -> list[Transaction]:
    """``txs`` reordered so that every transaction follows those of the set it spends.

    Keeps the given order otherwise, so transactions of disconnected blocks passed oldest
    block first come out unchanged.
    """
    pending = {tx.txid: tx for tx in txs}
    ordered: list[Transaction] = []
    done: set[bytes] = set()
    opened: set[bytes] = set()
    for root in list(pending.values()):
        # Depth-first over in-set parents, without recursion (chains may be long). A txid
        # cannot spend its own descendant, but ``opened`` keeps even such input finite.
        stack: list[tuple[Transaction, bool]] = [(root, False)]
        while stack:
            tx, expanded = stack.pop()
            if expanded:
                done.add(tx.txid)
                ordered.append(tx)
                continue
            if tx.txid in opened:
                continue
            opened.add(tx.txid)
            stack.append((tx, True))
            for txin in reversed(tx.inputs):
                parent = pending.get(txin.prevout.txid)
                if parent is not None and parent.txid not in opened:
                    stack.append((parent, False))
    return ordered
