"""Block templates: everything a miner needs to produce a block, with the nonce space extended.

A template fixes the parent, height, ``bits``, the transactions (chosen from the mempool) and the
coinbase's payee; what a miner varies is the 32-bit header nonce, the time, and an *extranonce*
in the coinbase. The header nonce alone gives 2^32 hashes, a fraction of a second for a GPU on
an easy target; changing the extranonce changes the coinbase's txid, hence the merkle root,
hence gives a fresh 2^32 header nonces. The coinbase data is laid out as:

==========  =====  =========================================================================
field       size   meaning
==========  =====  =========================================================================
height      4      u32 little-endian: the block's height (BIP 34, a consensus rule)
extranonce  8      u64 little-endian: whatever the miner likes; 2^64 x 2^32 nonces in all
message     0-88   free bytes (a pool's tag, a headline), fixed for the template
==========  =====  =========================================================================

Re-rolling is cheap: the merkle branch of the coinbase (the sibling hashes on its path to the
root, as Stratum sends them) is computed once, so a new extranonce costs one coinbase hash and
one hash per tree level, not a rehash of every transaction.

**Choosing transactions.** By *ancestor package* fee rate, as Bitcoin Core's block assembler
does: repeatedly take the transaction whose fee rate together with its not yet included
in-pool ancestors is highest, and include that whole package, parents first. A parent paying
little is thus included when its child pays for both (child pays for parent), and a child is
never placed before its parent. A package that does not fit in the remaining space is skipped;
smaller ones are still tried. Ties go to the transaction seen first. Transactions not final at
the template's height are left out, with their descendants.

**Mining policy.** A miner may refuse to confirm some transactions: a :class:`MiningPolicy`
lists public-key hashes whose payments and spends a template leaves out, with everything that
depends on them (a pool filtering its templates, as real pools do for sanctioned addresses).
The block stays valid: a policy only chooses among valid transactions, it is not a rule of the
network, and other miners confirm what this one leaves out. :func:`without` does the same to a
template already built, for a miner that gets its templates from elsewhere (the fork lab's
simulated pools).

The template is typed (``getblocktemplate`` renders it, BIP 22/23): each transaction carries
its fee and the 1-based indexes of the template transactions it depends on.

What this module does not do: validate (the mempool admitted every transaction against the
tip; the block still goes through the full rules when submitted), compute ``bits`` or the
median time past (the chain knows them and passes them in), read a clock, or search nonces
(``miner/``).
"""

from __future__ import annotations

import dataclasses
import heapq
import struct
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from fractions import Fraction

from node.core.address import hash160
from node.core.block import Block
from node.core.encoding import pack
from node.core.hashing import sha256d
from node.core.header import HEADER_SIZE, BlockHeader, bits_to_target
from node.core.mempool import Mempool, MempoolEntry, Relatives, is_final
from node.core.params import NetworkParams
from node.core.tx import (
    MAX_MONEY,
    MAX_SIGNATURE_FIELD,
    PUBKEY_HASH_SIZE,
    Transaction,
    TxOut,
    make_coinbase,
)

BLOCK_VERSION = 1
"""The header version templates use; the rules give it no meaning yet."""

EXTRANONCE_SIZE = 8
MAX_EXTRANONCE = (1 << (8 * EXTRANONCE_SIZE)) - 1
HEIGHT_SIZE = 4
MAX_MESSAGE_SIZE = MAX_SIGNATURE_FIELD - HEIGHT_SIZE - EXTRANONCE_SIZE
"""88 bytes: the coinbase data holds at most 100, after the height and the extranonce."""

_U32 = 0xFFFFFFFF

# The block encoding around its transactions: a 2-array, the 80-byte header as bin8, and the
# transactions' array header, which grows from 1 to 5 bytes with the count; take the largest.
_BLOCK_OVERHEAD = len(pack([bytes(HEADER_SIZE), []])) - 1 + 5


@dataclass(frozen=True)
class TemplateTx:
    """A transaction of the template, with what ``getblocktemplate`` shows about it."""

    tx: Transaction
    fee: int
    depends: tuple[int, ...]
    """1-based positions among the template's transactions of those it spends (BIP 22)."""

    @property
    def txid(self) -> bytes:
        return self.tx.txid

    @property
    def size(self) -> int:
        return self.tx.size


@dataclass(frozen=True)
class BlockTemplate:
    """A block short of its coinbase extranonce, time and nonce.

    Fields are what ``getblocktemplate`` reports; :meth:`block_for` turns a template into a
    block for any extranonce, time and nonce.
    """

    version: int
    prev_hash: bytes
    height: int
    bits: int
    min_time: int
    """Earliest valid header time: one second after the parent's median time past."""
    cur_time: int
    """The time to use now: the caller's clock, or ``min_time`` if the clock is behind it."""
    payout_pubkey_hash: bytes
    message: bytes
    transactions: tuple[TemplateTx, ...]
    """Everything but the coinbase, in block order (parents first)."""
    fees: int
    coinbase_value: int
    """Subsidy plus fees: what the coinbase claims."""
    max_size: int
    merkle_branch: tuple[bytes, ...]
    """Sibling hashes from the coinbase up to the merkle root, lowest level first."""
    extranonce: int = 0
    """The extranonce of :attr:`header`; miners count up from here."""

    @property
    def target(self) -> int:
        return bits_to_target(self.bits)

    @property
    def size(self) -> int:
        """Encoded size of the block (independent of the extranonce, time and nonce)."""
        return self.block_for(self.extranonce, self.cur_time, 0).size

    def coinbase(self, extranonce: int) -> Transaction:
        _check_extranonce(extranonce)
        return make_coinbase(
            self.height,
            (TxOut(self.coinbase_value, self.payout_pubkey_hash),),
            extranonce=struct.pack("<Q", extranonce),
            message=self.message,
        )

    def merkle_root(self, extranonce: int) -> bytes:
        root = self.coinbase(extranonce).txid
        for sibling in self.merkle_branch:
            root = sha256d(root + sibling)
        return root

    def header_for(self, extranonce: int, time: int, nonce: int) -> BlockHeader:
        """The header for these choices; raises ValueError for a time below ``min_time``."""
        if time < self.min_time:
            raise ValueError(
                f"time {time} is not after the median time past; the least valid is {self.min_time}"
            )
        return BlockHeader(
            self.version, self.prev_hash, self.merkle_root(extranonce), time, self.bits, nonce
        )

    @property
    def header(self) -> BlockHeader:
        """The header at :attr:`extranonce`, :attr:`cur_time` and nonce 0."""
        return self.header_for(self.extranonce, self.cur_time, 0)

    def block_for(self, extranonce: int, time: int, nonce: int) -> Block:
        header = self.header_for(extranonce, time, nonce)
        txs = (self.coinbase(extranonce), *(t.tx for t in self.transactions))
        return Block(header, txs)


def touches(tx: Transaction, pubkey_hashes: Collection[bytes]) -> bool:
    """Whether ``tx`` pays one of ``pubkey_hashes`` or spends a coin of one of them.

    A spend names its key by the public key in the input, whose hash is the coin's owner.
    """
    if any(out.pubkey_hash in pubkey_hashes for out in tx.outputs):
        return True
    return not tx.is_coinbase() and any(hash160(i.pubkey) in pubkey_hashes for i in tx.inputs)


@dataclass(frozen=True)
class MiningPolicy:
    """What a miner leaves out of its blocks (see the module docstring); the default, nothing."""

    excluded: frozenset[bytes] = frozenset()
    """Public-key hashes: a transaction paying one of them or spending one's coin is left out,
    and so is every transaction that depends on it."""

    def refuses(self, tx: Transaction) -> bool:
        return bool(self.excluded) and touches(tx, self.excluded)


NO_POLICY = MiningPolicy()


def build_template(
    params: NetworkParams,
    *,
    parent_hash: bytes,
    height: int,
    bits: int,
    median_time_past: int,
    now: int,
    mempool: Mempool,
    payout_pubkey_hash: bytes,
    extranonce: int = 0,
    message: bytes = b"",
    max_size: int | None = None,
    policy: MiningPolicy = NO_POLICY,
) -> BlockTemplate:
    """A template for the block at ``height`` on ``parent_hash``, paying ``payout_pubkey_hash``.

    ``bits`` and ``median_time_past`` come from the chain (the expected target and the parent's
    median time past), ``now`` from the caller's clock. ``max_size`` (default and upper bound:
    the network's block size limit) caps the encoded block; ``policy`` says which transactions
    the miner refuses (their room goes to others). ValueError for a bad argument: a
    message longer than ``MAX_MESSAGE_SIZE``, a wrong-sized hash, a size too small for a coinbase.
    """
    limit = params.max_block_size if max_size is None else max_size
    if limit > params.max_block_size:
        raise ValueError(
            f"max_size {limit} exceeds the network's block size limit {params.max_block_size}"
        )
    if len(message) > MAX_MESSAGE_SIZE:
        raise ValueError(
            f"coinbase message is {len(message)} bytes; at most {MAX_MESSAGE_SIZE} fit"
        )
    if len(payout_pubkey_hash) != PUBKEY_HASH_SIZE or len(parent_hash) != 32:
        raise ValueError("payout_pubkey_hash is 20 bytes and parent_hash 32")
    if not 0 <= height <= _U32:
        raise ValueError(f"height {height} does not fit in 32 bits")
    _check_extranonce(extranonce)
    # The coinbase's size depends on its value's encoding; reserve room for the largest.
    widest_coinbase = make_coinbase(
        height,
        (TxOut(MAX_MONEY, payout_pubkey_hash),),
        extranonce=bytes(EXTRANONCE_SIZE),
        message=message,
    )
    room = limit - _BLOCK_OVERHEAD - widest_coinbase.size
    if room < 0:
        raise ValueError(f"max_size {limit} leaves no room for the header and the coinbase")

    chosen = select_transactions(mempool, height=height, max_bytes=room, refuse=policy.refuses)
    positions = {entry.txid: n for n, entry in enumerate(chosen, start=1)}
    template_txs = tuple(
        TemplateTx(
            entry.tx,
            entry.fee,
            tuple(
                sorted(
                    {
                        positions[txin.prevout.txid]
                        for txin in entry.tx.inputs
                        if txin.prevout.txid in positions
                    }
                )
            ),
        )
        for entry in chosen
    )
    fees = sum(t.fee for t in template_txs)
    min_time = median_time_past + 1
    return BlockTemplate(
        version=BLOCK_VERSION,
        prev_hash=parent_hash,
        height=height,
        bits=bits,
        min_time=min_time,
        cur_time=max(now, min_time),
        payout_pubkey_hash=payout_pubkey_hash,
        message=message,
        transactions=template_txs,
        fees=fees,
        coinbase_value=params.subsidy(height) + fees,
        max_size=limit,
        merkle_branch=coinbase_merkle_branch([t.txid for t in template_txs]),
        extranonce=extranonce,
    )


def select_transactions(
    mempool: Mempool,
    *,
    height: int,
    max_bytes: int,
    refuse: Callable[[Transaction], bool] | None = None,
) -> tuple[MempoolEntry, ...]:
    """Pool entries for a block at ``height``, best ancestor-package fee rate first.

    At most ``max_bytes`` of transactions, in an order valid for a block (parents first);
    none that ``refuse`` picks, nor any of their descendants.
    """
    entries = mempool.entries()
    by_txid = {entry.txid: entry for entry in entries}
    relatives = {entry.txid: mempool.relatives(entry.txid) for entry in entries}
    # Admission order puts parents first, so one pass excludes the descendants of a
    # non-final or refused transaction along with it.
    excluded: set[bytes] = set()
    for entry in entries:
        if (
            not is_final(entry.tx, height)
            or (refuse is not None and refuse(entry.tx))
            or relatives[entry.txid].parents & excluded
        ):
            excluded.add(entry.txid)
    # Fees and sizes of each candidate's package: itself and its ancestors not yet included.
    package_fee = {txid: rel.ancestor_fees for txid, rel in relatives.items()}
    package_size = {txid: rel.ancestor_size for txid, rel in relatives.items()}
    version = dict.fromkeys(by_txid, 0)
    # (negated package fee rate, sequence, txid, version): the best first, then the oldest.
    heap: list[tuple[Fraction, int, bytes, int]] = [
        (-Fraction(package_fee[e.txid], package_size[e.txid]), e.sequence, e.txid, 0)
        for e in entries
        if e.txid not in excluded
    ]
    heapq.heapify(heap)
    included: set[bytes] = set()
    order: list[MempoolEntry] = []
    used = 0
    while heap:
        _, _, txid, seen_version = heapq.heappop(heap)
        if txid in included or seen_version != version[txid]:
            continue
        if used + package_size[txid] > max_bytes:
            # Left out for now; if an ancestor gets in with another package, this one is
            # pushed again with its smaller package.
            continue
        package = _package(txid, relatives, included)
        package.sort(key=lambda t: by_txid[t].sequence)
        for member in package:
            entry = by_txid[member]
            included.add(member)
            order.append(entry)
            used += entry.size
            for descendant in _descendants(member, relatives, included):
                package_fee[descendant] -= entry.fee
                package_size[descendant] -= entry.size
                version[descendant] += 1
                if descendant not in excluded:
                    heapq.heappush(
                        heap,
                        (
                            -Fraction(package_fee[descendant], package_size[descendant]),
                            by_txid[descendant].sequence,
                            descendant,
                            version[descendant],
                        ),
                    )
    return tuple(order)


def coinbase_merkle_branch(txids: Sequence[bytes]) -> tuple[bytes, ...]:
    """The merkle branch of position 0 in a block whose other transactions are ``txids``.

    Folding a coinbase txid through it, ``root = sha256d(root + sibling)`` for each sibling,
    gives the same root as :func:`node.core.merkle.merkle_root` over all the txids.
    """
    branch: list[bytes] = []
    # Position 0 (the coinbase's subtree) is unknown: only its siblings are needed.
    level: list[bytes] = [b"", *txids]
    while len(level) > 1:
        if len(level) % 2:
            level.append(level[-1])
        branch.append(level[1])
        level = [b"", *(sha256d(level[i] + level[i + 1]) for i in range(2, len(level), 2))]
    return tuple(branch)


def without(template: BlockTemplate, refuse: Callable[[Transaction], bool]) -> BlockTemplate:
    """``template`` minus the transactions ``refuse`` picks and every one that depends on them.

    The coinbase value, the fees and the merkle branch are recomputed, so the result is as
    valid as the template was. (The room they took is not refilled: a builder that can,
    passes a :class:`MiningPolicy` to :func:`build_template` instead.)
    """
    dropped: set[int] = set()
    for position, entry in enumerate(template.transactions, start=1):
        if refuse(entry.tx) or dropped.intersection(entry.depends):
            dropped.add(position)
    if not dropped:
        return template
    # Positions are 1-based and shift down past each dropped transaction.
    renumber: dict[int, int] = {}
    kept: list[TemplateTx] = []
    for position, entry in enumerate(template.transactions, start=1):
        if position not in dropped:
            renumber[position] = len(kept) + 1
            kept.append(
                dataclasses.replace(entry, depends=tuple(renumber[d] for d in entry.depends))
            )
    fees = sum(e.fee for e in kept)
    return dataclasses.replace(
        template,
        transactions=tuple(kept),
        fees=fees,
        coinbase_value=template.coinbase_value - template.fees + fees,
        merkle_branch=coinbase_merkle_branch([e.txid for e in kept]),
    )


def _package(txid: bytes, relatives: dict[bytes, Relatives], included: set[bytes]) -> list[bytes]:
    """``txid`` and its ancestors not yet included."""
    found = {txid}
    stack = [txid]
    while stack:
        for parent in relatives[stack.pop()].parents:
            if parent not in included and parent not in found:
                found.add(parent)
                stack.append(parent)
    return list(found)


def _descendants(
    txid: bytes, relatives: dict[bytes, Relatives], included: set[bytes]
) -> set[bytes]:
    found: set[bytes] = set()
    stack = [txid]
    while stack:
        for child in relatives[stack.pop()].children:
            if child not in included and child not in found:
                found.add(child)
                stack.append(child)
    return found


def _check_extranonce(extranonce: int) -> None:
    if not 0 <= extranonce <= MAX_EXTRANONCE:
        raise ValueError(f"extranonce {extranonce} does not fit in {EXTRANONCE_SIZE} bytes")
