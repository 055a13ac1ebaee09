"""What a run did to the chain: the block tree, the best chain, stale blocks, reorganisations,
each miner's share of the chain against its hash power, confirmation times, coins in existence.

Both runners describe their run the same way, so one analysis serves both:

- a :class:`BlockInfo` per block found: the simulator builds them from its block records and
  the blocks its nodes connected; the real runner from the blocks it fetched from the nodes;
- each running public node's tip (:class:`TipView`), the reorganisations the nodes reported,
  the miners' hash power, and the transactions the scenario sent (:class:`SentTx`).

The *best chain* ends at the running nodes' tip with the most work (after a run that converged,
everyone's tip). A block is *stale* if it is not on it, whether it lost a race, was withheld or
was refused. A miner's *share* is its part of the best chain's blocks that hash power found:
funding blocks and blocks a ``mine`` step made on a node (labelled ``funding`` and ``@NODE``)
are left out, so shares compare with the miners' shares of the hash power. The *supply* is the
value of the best chain's unspent outputs, replayed from its blocks: every coin in existence.

*Following the money* (``traced(FROM, TO)``): the coins TO holds on the best chain that descend
from FROM's, by :mod:`node.moneyflow`'s haircut model. Names become addresses by what the run
did, not by deriving keys (the simulator and a devnet derive a wallet's key from its name
differently): a ``send``'s inputs carry its sender's public key and its first output pays its
recipient (forklab's wallet puts the payment first and sends change to the same key), and a
miner's blocks pay it in their coinbase (:attr:`Analysis.addresses`).

What this module does not do: observe anything (runners do), or render (:mod:`node.lab.report`
and :mod:`node.lab.plot` do).
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from node.core.address import hash160
from node.core.block import Block
from node.core.tx import OutPoint, Transaction
from node.moneyflow import trace_blocks

FUNDING = "funding"
"""The miner of the blocks that fund the scenario's wallets."""

ON_DEMAND = "@"
"""Prefix of the miner of blocks a ``mine`` step made on a node: ``@n1``."""


@dataclass(frozen=True)
class TipView:
    hash: bytes
    height: int
    chain_work: int


@dataclass(frozen=True)
class BlockInfo:
    hash: bytes
    parent: bytes
    height: int
    miner: str
    """Who found it: a miner of the scenario, ``funding``, or ``@NODE``."""
    found_at: float
    """Seconds since the scenario started."""
    block: Block | None
    """The block itself, if a node connected it (a block nobody accepted has none)."""
    arrivals: tuple[tuple[str, float], ...] = ()
    """(node, seconds) when each public node first connected it (simulator only)."""

    @property
    def txids(self) -> tuple[bytes, ...]:
        return self.block.txids if self.block is not None else ()

    @property
    def tx_count(self) -> int:
        """Transactions besides the coinbase."""
        return len(self.block.transactions) - 1 if self.block is not None else 0


@dataclass(frozen=True)
class SentTx:
    label: str
    txid: bytes
    sender: str
    recipient: str
    amount: int
    via: str
    sent_at: float


@dataclass(frozen=True)
class MinerShare:
    """A miner's hash power and what it earned on the best chain."""

    name: str
    strategy: str
    hash_share: float
    """Its share of the hash power (normalised over the scenario's miners), at the end."""
    found: int
    """Blocks it found, stale or not."""
    main: int
    """Its blocks on the best chain."""
    main_share: float
    """``main`` over the best chain's blocks found by hash power (0 if there are none)."""


@dataclass(frozen=True)
class TxConfirmation:
    label: str
    txid: bytes
    sent_at: float
    confirmed_at: float | None
    """When the best chain's block holding it was found (None: not on the best chain)."""
    height: int | None
    confirmations: int

    @property
    def delay(self) -> float | None:
        return None if self.confirmed_at is None else self.confirmed_at - self.sent_at


@dataclass(frozen=True)
class Analysis:
    blocks: tuple[BlockInfo, ...]
    """Every block found, by height, then by the time it was found."""
    tip: bytes | None
    height: int
    main: frozenset[bytes]
    """Hashes of the best chain's blocks (found during the run)."""
    stale: tuple[BlockInfo, ...]
    reorgs: tuple[tuple[int, int], ...]
    """(depth, count), deepest last."""
    miners: tuple[MinerShare, ...]
    transactions: tuple[TxConfirmation, ...]
    supply: int | None
    """Coins in existence on the best chain, in units; None if a block of it is unknown."""
    tips: tuple[tuple[str, TipView], ...]
    propagation: tuple[float, ...]
    """For each best-chain block seen by more than one node: seconds from the first node
    connecting it to the last (simulator only; empty for real nodes)."""
    addresses: tuple[tuple[str, bytes], ...] = ()
    """(name, public-key hash) of the wallets and miners whose address the run showed."""

    def address_of(self, name: str) -> bytes | None:
        return next((h for n, h in self.addresses if n == name), None)

    def traced(self, source: str, holder: str) -> int | None:
        """Units ``holder`` holds unspent on the best chain that descend from ``source``'s
        coins (haircut model): 0 while the run has not shown both addresses, None if a block
        of the best chain is unknown."""
        source_hash = self.address_of(source)
        holder_hash = self.address_of(holder)
        if source_hash is None or holder_hash is None:
            return 0
        chain = sorted((b for b in self.blocks if b.hash in self.main), key=lambda b: b.height)
        blocks = _replayable(chain)
        if blocks is None:
            return None
        # A run's chain is small, and a bound would make the number wrong: none.
        trace = trace_blocks(source_hash, blocks, max_txs=sys.maxsize, max_hops=sys.maxsize)
        return trace.traced_to([holder_hash])

    def miner(self, name: str) -> MinerShare | None:
        return next((m for m in self.miners if m.name == name), None)

    def confirmations_of(self, label: str) -> int:
        return next((t.confirmations for t in self.transactions if t.label == label), 0)

    @property
    def mined(self) -> tuple[BlockInfo, ...]:
        """Blocks found after funding: by hash power or ``mine`` steps."""
        return tuple(b for b in self.blocks if b.miner != FUNDING)

    @property
    def stale_rate(self) -> float:
        mined = self.mined
        if not mined:
            return 0.0
        return sum(1 for b in mined if b.hash not in self.main) / len(mined)

    @property
    def max_reorg_depth(self) -> int:
        return max((depth for depth, count in self.reorgs if count), default=0)

    @property
    def propagation_median(self) -> float | None:
        return statistics.median(self.propagation) if self.propagation else None


def analyse(
    blocks: Iterable[BlockInfo],
    tips: Mapping[str, TipView],
    *,
    reorgs: Mapping[int, int],
    miners: Sequence[tuple[str, str, float]],
    sends: Sequence[SentTx] = (),
) -> Analysis:
    """The analysis of a run; ``miners`` are (name, strategy, hash share) of the scenario's."""
    by_hash = {b.hash: b for b in blocks}
    ordered = tuple(sorted(by_hash.values(), key=lambda b: (b.height, b.found_at, b.hash)))
    tip = _best_tip(tips, ordered)
    chain = _chain(by_hash, tip)
    main = frozenset(b.hash for b in chain)
    height = _tips_height(tips, tip, ordered)
    return Analysis(
        blocks=ordered,
        tip=tip,
        height=height,
        main=main,
        stale=tuple(b for b in ordered if b.hash not in main),
        reorgs=tuple(sorted((d, n) for d, n in reorgs.items() if n)),
        miners=_shares(ordered, main, miners),
        transactions=tuple(_confirmation(s, chain, height) for s in sends),
        supply=_supply(chain),
        tips=tuple(sorted(tips.items())),
        propagation=tuple(
            max(t for _, t in b.arrivals) - min(t for _, t in b.arrivals)
            for b in chain
            if len(b.arrivals) > 1
        ),
        addresses=_addresses(ordered, sends),
    )


def _addresses(
    ordered: Sequence[BlockInfo], sends: Sequence[SentTx]
) -> tuple[tuple[str, bytes], ...]:
    """What the run showed of each name's address (see the module docstring); the first
    sighting of a name wins."""
    found: dict[str, bytes] = {}
    txs: dict[bytes, Transaction] = {}
    for info in ordered:
        if info.block is None:
            continue
        coinbase = info.block.transactions[0]
        if not info.miner.startswith(ON_DEMAND) and info.miner != FUNDING:
            found.setdefault(info.miner, coinbase.outputs[0].pubkey_hash)
        for tx in info.block.transactions[1:]:
            txs[tx.txid] = tx
    for sent in sends:
        payment = txs.get(sent.txid)
        if payment is None:
            continue
        if payment.inputs[0].pubkey:
            found.setdefault(sent.sender, hash160(payment.inputs[0].pubkey))
        found.setdefault(sent.recipient, payment.outputs[0].pubkey_hash)
    return tuple(sorted(found.items()))


def _best_tip(tips: Mapping[str, TipView], ordered: Sequence[BlockInfo]) -> bytes | None:
    """The tip with the most work; of equal ones, the one most nodes hold, then the lowest hash
    (any rule would do: it only has to be the same every time)."""
    if tips:
        holders: dict[bytes, int] = {}
        for view in tips.values():
            holders[view.hash] = holders.get(view.hash, 0) + 1
        best = max(
            tips.values(), key=lambda v: (v.chain_work, holders[v.hash], -int.from_bytes(v.hash))
        )
        return best.hash
    if ordered:
        top = max(b.height for b in ordered)
        return next(b.hash for b in ordered if b.height == top)
    return None


def _tips_height(
    tips: Mapping[str, TipView], tip: bytes | None, ordered: Sequence[BlockInfo]
) -> int:
    for view in tips.values():
        if view.hash == tip:
            return view.height
    return next((b.height for b in ordered if b.hash == tip), 0)


def _chain(by_hash: Mapping[bytes, BlockInfo], tip: bytes | None) -> list[BlockInfo]:
    """The known blocks of the chain ending at ``tip``, oldest first."""
    chain = []
    walk = by_hash.get(tip) if tip is not None else None
    while walk is not None:
        chain.append(walk)
        walk = by_hash.get(walk.parent)
    chain.reverse()
    return chain


def _shares(
    ordered: Sequence[BlockInfo], main: frozenset[bytes], miners: Sequence[tuple[str, str, float]]
) -> tuple[MinerShare, ...]:
    names = {name for name, _, _ in miners}
    main_by_power = sum(1 for b in ordered if b.hash in main and b.miner in names)
    total_power = sum(share for _, _, share in miners)
    result = []
    for name, strategy, share in miners:
        found = sum(1 for b in ordered if b.miner == name)
        on_main = sum(1 for b in ordered if b.miner == name and b.hash in main)
        result.append(
            MinerShare(
                name=name,
                strategy=strategy,
                hash_share=share / total_power if total_power else 0.0,
                found=found,
                main=on_main,
                main_share=on_main / main_by_power if main_by_power else 0.0,
            )
        )
    return tuple(result)


def _confirmation(sent: SentTx, chain: Sequence[BlockInfo], height: int) -> TxConfirmation:
    for block in chain:
        if sent.txid in block.txids:
            return TxConfirmation(
                sent.label,
                sent.txid,
                sent.sent_at,
                block.found_at,
                block.height,
                height - block.height + 1,
            )
    return TxConfirmation(sent.label, sent.txid, sent.sent_at, None, None, 0)


def _replayable(chain: Sequence[BlockInfo]) -> list[tuple[int, Block]] | None:
    """(height, block) of ``chain`` (oldest first), if it can be replayed: it starts at block 1
    and every block of it is known; else None."""
    blocks = [(b.height, b.block) for b in chain if b.block is not None]
    if len(blocks) != len(chain) or (chain and chain[0].height != 1):
        return None
    return blocks


def _supply(chain: Sequence[BlockInfo]) -> int | None:
    """The value of the unspent outputs of ``chain``, replayed from block 1; None if a block is
    missing (the genesis output is never spendable, as in Bitcoin, so it does not count)."""
    blocks = _replayable(chain)
    if blocks is None:
        return None
    unspent: dict[OutPoint, int] = {}
    for _, block in blocks:
        for tx in block.transactions:
            if not tx.is_coinbase():
                for txin in tx.inputs:
                    unspent.pop(txin.prevout, None)
            for index, out in enumerate(tx.outputs):
                unspent[OutPoint(tx.txid, index)] = out.value
    return sum(unspent.values())
