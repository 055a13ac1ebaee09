"""Follow the money: where the coins paid to one address went, transaction by transaction.

Pseudonymity is not anonymity. An address names no person, but every coin it receives sits in
a public ledger, and every later transaction that spends the coin says where it went. A
:class:`Tracer` is fed the active chain's blocks in order (and then, optionally, the mempool's
transactions, parents first); it starts from every output paying the chosen address and
follows the coins forward through every transaction that spends them, one *hop* per
transaction. The result (:class:`Trace`) is a graph: transactions, and for each of their
outputs its value, how much of it descends from the address, whom it pays and who spent it.

The taint model: proportional ("haircut")
----------------------------------------
When a transaction spends traced coins together with other coins, its outputs cannot say which
input paid which output (the UTXO model has no such link). The *haircut* model, the usual one
in the literature on Bitcoin tracing (Möser, Böhme and Breuker, "Towards risk scoring of
Bitcoin transactions", 2014), gives every output, and the fee, the share of traced value that
the traced coins hold among all the inputs::

    traced(output) = value(output) * traced(inputs) / value(inputs)

Shares are whole units, rounded by the largest-remainder method, so a transaction's shares add
up to exactly the traced value it received and no output holds more than its value: the
traced coins are conserved, never created or lost to rounding.

The alternative, *first in, first out* (FIFO, the rule of Clayton's Case in English law),
assigns the inputs' value to the outputs in order, as if the coins kept their identity; it
gives crisp answers (an output is entirely traced or not at all), but those answers depend on
an input and output order the wallet chose arbitrarily (forklab's wallet puts the payment
first, so FIFO would pin the traced coins on the payee and none on the change). Haircut
depends on nothing arbitrary, never loses a trace (every output with traced inputs carries a
part), and is what the lesson needs to show: mixing your coins with others' dilutes the trace,
it does not erase it.

Two choices of this module:

- An output paying the address itself counts as wholly traced: the address's coins are the
  address's, wherever they came from. The part of it that already descended from the address
  (change sent back, a round trip) is counted as ``recirculated``, so the totals do not count
  the same coin twice: ``received - recirculated`` is the traced coins, and always equals the
  traced value still unspent plus the traced value paid as fees (while the trace is not
  truncated).
- Fees take their share, and the trail stops there: following it into the miners' coinbases
  would mark every later block's reward as "descended from" every address that ever paid a fee.

Bounds: a trace holds at most ``max_txs`` transactions and ``max_hops`` hops, and says so
(``truncated``) when a transaction it would follow is left out. It reads each block once, in
order, keeping a map of the outputs in the graph, so its cost is one pass over the blocks given
to it plus the work of the transactions it follows, however many hops the trail takes.

What this module deliberately does not do: read the store or the mempool (the caller feeds
blocks and says what each spent output was worth: undo data, a replay, a mempool view), clock
anything, or de-anonymise: it knows addresses, not people, and does not cluster addresses by
common inputs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from node.core.block import Block
from node.core.tx import OutPoint, Transaction

DEFAULT_MAX_TXS = 200
"""Transactions a trace holds unless told otherwise: a readable graph."""

MAX_TXS = 2000
"""The most a caller may ask for (the RPC's bound: a reply of a few megabytes at most)."""

DEFAULT_MAX_HOPS = 100
MAX_HOPS = 10_000
"""Beyond any real trail; it only bounds what a caller may ask."""

ValueOf = Callable[[OutPoint], int]
"""What an output spent by a transaction was worth (undo data, a replay or a mempool view)."""


@dataclass(frozen=True)
class TracedOutput:
    """One output of a transaction in the graph."""

    txid: bytes
    index: int
    value: int
    """Units."""
    traced: int
    """Units of it that descend from the address (all of it if it pays the address)."""
    pubkey_hash: bytes
    """Whom it pays."""
    spent_by: bytes | None
    """The txid of the transaction that spent it, on the chain or in the mempool fed to the
    tracer (that transaction may be outside the graph if the trace is truncated)."""

    @property
    def outpoint(self) -> OutPoint:
        return OutPoint(self.txid, self.index)

    @property
    def fraction(self) -> float:
        """The part of its value that descends from the address, 0 to 1."""
        return self.traced / self.value if self.value else 0.0


@dataclass(frozen=True)
class TracedTx:
    """A transaction that pays the address or spends coins descending from it."""

    txid: bytes
    hop: int
    """0 for a transaction with no traced input (it pays the address), else one more than the
    highest hop among the transactions whose traced outputs it spends."""
    height: int | None
    """Its block's height; None for a mempool transaction."""
    block_hash: bytes | None
    coinbase: bool
    value_in: int
    """Units its inputs were worth (a coinbase: what its outputs create)."""
    traced_in: int
    """Units of its inputs that descend from the address."""
    fee: int
    traced_fee: int
    """The fee's share of ``traced_in``: traced coins that left the trail."""
    spends: tuple[OutPoint, ...]
    """The outputs of the graph it spends (traced or not), in input order."""
    outputs: tuple[TracedOutput, ...]

    @property
    def fraction(self) -> float:
        """The traced part of its inputs, 0 to 1 (0 for a transaction that only pays the
        address: its inputs are someone else's coins)."""
        return self.traced_in / self.value_in if self.value_in else 0.0


@dataclass(frozen=True)
class Trace:
    """The graph of a trace, and its totals (units)."""

    pubkey_hash: bytes
    txs: tuple[TracedTx, ...]
    """In chain order (mempool transactions last, parents first)."""
    received: int
    """Value of every output paying the address."""
    recirculated: int
    """Of ``received``, the part that already descended from the address (change, round trips)."""
    unspent: int
    """Traced value in outputs nobody has spent yet."""
    fees: int
    """Traced value paid as fees."""
    truncated: bool
    """A transaction the trail reaches was left out (``max_txs`` or ``max_hops``)."""
    max_txs: int
    max_hops: int
    blocks_scanned: int
    """Blocks fed to the tracer (the whole active chain, for the RPC)."""

    @property
    def traced(self) -> int:
        """Distinct coins traced: what the address received, not counting its own coins twice."""
        return self.received - self.recirculated

    @property
    def hops(self) -> int:
        """The deepest hop in the graph (-1 for an empty trace)."""
        return max((tx.hop for tx in self.txs), default=-1)

    def outputs(self) -> Iterable[TracedOutput]:
        for tx in self.txs:
            yield from tx.outputs

    def traced_to(self, pubkey_hashes: Iterable[bytes]) -> int:
        """Traced units unspent in outputs paying any of ``pubkey_hashes``: what they hold
        that descends from the address."""
        wanted = frozenset(pubkey_hashes)
        return sum(
            out.traced
            for out in self.outputs()
            if out.spent_by is None and out.pubkey_hash in wanted
        )


def apportion(total: int, weights: Sequence[int]) -> list[int]:
    """``total`` split in proportion to ``weights`` in whole units (largest remainder).

    The shares add up to ``total`` exactly; each is the exact proportional share rounded down
    or up, so with ``total <= sum(weights)`` none exceeds its weight. Ties of remainders go to
    the earlier weight, so the split is a function of its arguments.
    """
    whole = sum(weights)
    if total < 0 or any(w < 0 for w in weights) or total > whole:
        raise ValueError("apportion needs 0 <= total <= sum(weights) and weights >= 0")
    if total == 0:
        return [0] * len(weights)
    shares = [total * w // whole for w in weights]
    remainders = [total * w % whole for w in weights]
    left = total - sum(shares)
    for i in sorted(range(len(weights)), key=lambda i: (-remainders[i], i))[:left]:
        shares[i] += 1
    return shares


@dataclass
class _Output:
    """An output of the graph while the trace is being built (mutable: its spender comes later)."""

    value: int
    traced: int
    pubkey_hash: bytes
    hop: int
    spent_by: bytes | None = None


class Tracer:
    """Builds a :class:`Trace`: feed it blocks in chain order, then mempool transactions.

    Not thread-safe; it holds the graph so far and nothing else (no reference to a chain).
    """

    def __init__(
        self,
        pubkey_hash: bytes,
        *,
        max_txs: int = DEFAULT_MAX_TXS,
        max_hops: int = DEFAULT_MAX_HOPS,
    ) -> None:
        if max_txs < 1 or max_hops < 0:
            raise ValueError("max_txs must be at least 1 and max_hops at least 0")
        self.pubkey_hash = pubkey_hash
        self.max_txs = max_txs
        self.max_hops = max_hops
        self.truncated = False
        self.blocks_scanned = 0
        self._txs: list[tuple[TracedTx, int]] = []
        """Each transaction without its outputs (their spenders come later), and how many
        outputs it has: they are in ``_outputs``."""
        self._outputs: dict[OutPoint, _Output] = {}
        self._received = 0
        self._recirculated = 0

    def add_block(self, block: Block, height: int, value_of: ValueOf) -> None:
        """The next block of the chain; ``value_of`` is called only for the inputs of
        transactions the trail reaches, so a caller may load undo data lazily."""
        self.blocks_scanned += 1
        for tx in block.transactions:
            self.add_transaction(tx, value_of, height=height, block_hash=block.hash)

    def add_transaction(
        self,
        tx: Transaction,
        value_of: ValueOf,
        *,
        height: int | None = None,
        block_hash: bytes | None = None,
    ) -> None:
        """One transaction, after every transaction it spends (a mempool one: no height)."""
        coinbase = tx.is_coinbase()
        spends: list[OutPoint] = []
        traced_parents: list[_Output] = []
        if not coinbase:
            for txin in tx.inputs:
                parent = self._outputs.get(txin.prevout)
                if parent is not None:
                    parent.spent_by = tx.txid
                    spends.append(txin.prevout)
                    if parent.traced:
                        traced_parents.append(parent)
        pays = any(out.pubkey_hash == self.pubkey_hash for out in tx.outputs)
        if not pays and not traced_parents:
            return
        hop = 1 + max((p.hop for p in traced_parents), default=-1)
        if hop > self.max_hops or len(self._txs) >= self.max_txs:
            self.truncated = True
            return
        total_out = tx.total_out()
        value_in = total_out if coinbase else sum(value_of(t.prevout) for t in tx.inputs)
        traced_in = sum(p.traced for p in traced_parents)
        fee = value_in - total_out
        *shares, traced_fee = apportion(traced_in, [*(o.value for o in tx.outputs), fee])
        record = TracedTx(
            tx.txid,
            hop,
            height,
            block_hash,
            coinbase,
            value_in,
            traced_in,
            fee,
            traced_fee,
            tuple(spends),
            outputs=(),
        )
        for index, (out, share) in enumerate(zip(tx.outputs, shares, strict=True)):
            traced = share
            if out.pubkey_hash == self.pubkey_hash:
                self._received += out.value
                self._recirculated += share
                traced = out.value
            self._outputs[OutPoint(tx.txid, index)] = _Output(
                out.value, traced, out.pubkey_hash, hop
            )
        self._txs.append((record, len(tx.outputs)))

    def result(self) -> Trace:
        """The graph so far (the tracer may be fed more afterwards)."""
        txs = []
        unspent = fees = 0
        for record, count in self._txs:
            outputs = []
            for index in range(count):
                out = self._outputs[OutPoint(record.txid, index)]
                outputs.append(
                    TracedOutput(
                        record.txid, index, out.value, out.traced, out.pubkey_hash, out.spent_by
                    )
                )
                if out.spent_by is None:
                    unspent += out.traced
            fees += record.traced_fee
            txs.append(dataclasses.replace(record, outputs=tuple(outputs)))
        return Trace(
            pubkey_hash=self.pubkey_hash,
            txs=tuple(txs),
            received=self._received,
            recirculated=self._recirculated,
            unspent=unspent,
            fees=fees,
            truncated=self.truncated,
            max_txs=self.max_txs,
            max_hops=self.max_hops,
            blocks_scanned=self.blocks_scanned,
        )


def trace_blocks(
    pubkey_hash: bytes,
    blocks: Iterable[tuple[int, Block]],
    *,
    max_txs: int = DEFAULT_MAX_TXS,
    max_hops: int = DEFAULT_MAX_HOPS,
) -> Trace:
    """Trace through ``blocks`` (height, block), a whole chain from block 1 in order.

    The values of spent outputs come from replaying the blocks themselves, so this needs no
    store: the fork lab uses it on the best chain of a run. KeyError if a block spends an
    output no earlier block created.
    """
    tracer = Tracer(pubkey_hash, max_txs=max_txs, max_hops=max_hops)
    values: dict[OutPoint, int] = {}
    for height, block in blocks:
        tracer.blocks_scanned += 1
        for tx in block.transactions:
            # Per transaction: a later one of the same block may spend this one's outputs.
            tracer.add_transaction(tx, values.__getitem__, height=height, block_hash=block.hash)
            if not tx.is_coinbase():
                for txin in tx.inputs:
                    values.pop(txin.prevout, None)
            for index, out in enumerate(tx.outputs):
                values[OutPoint(tx.txid, index)] = out.value
    return tracer.result()
