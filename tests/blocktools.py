"""Build keys, coinbases, signed transactions and mined blocks for tests and benchmarks.

The pieces, smallest first:

* ``key("alice")``: a deterministic private key per name (never a random one, so every run
  builds the same chain); ``pkh(k)`` its public-key hash.
* ``Spendable``: a coin a test may spend, with the key that owns it.
* ``spend(coins, ...)``: a transaction spending those coins, signed for the network.
* ``make_block(prev_hash, txs, ...)``: a block over transactions, merkle root filled in and
  mined. On ``regtest`` (target 0x207fffff) about every second nonce meets the target, so
  mining is a loop of a few hashes.
* ``ChainBuilder``: a named tree of blocks, in the spirit of btcd's fullblocktests::

      chain = ChainBuilder()
      chain.extend(100)                        # b1 .. b100 on genesis; coinbases to the miner
      tx = chain.spend([chain.coinbase_of("b1")], fee=1000)
      chain.block("b101", txs=[tx])            # coinbase claims subsidy + fee by default
      chain.block("b101a", parent="b100")      # a fork: any named block may be a parent

  Every block has a name, a parent and a height; ``full_check`` runs every rule of
  :mod:`node.core.validation` on one of them, with the expected ``bits`` and median time
  computed from the builder's own tree, the way the chain will.

Nothing here is a rule; the rules are what the tests check these blocks against.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from types import SimpleNamespace

from node.core.address import hash160
from node.core.block import Block
from node.core.crypto import PrivateKey
from node.core.header import BlockHeader, bits_to_target, hash_meets_target
from node.core.merkle import merkle_root as compute_merkle_root
from node.core.params import MEDIAN_TIME_SPAN, REGTEST, NetworkParams
from node.core.tx import (
    MAX_MONEY,
    MAX_SIGNATURE_FIELD,
    PUBKEY_HASH_SIZE,
    OutPoint,
    Transaction,
    TxIn,
    TxOut,
    make_coinbase,
)
from node.core.utxo import BlockUndo, Coin, CoinsCache
from node.core.validation import (
    SignatureCache,
    check_block,
    check_block_context,
    check_header_context,
    connect_block,
)

# -- keys and transactions


@functools.cache
def key(name: str) -> PrivateKey:
    """The key called ``name``: the same in every run (``PrivateKey.from_seed``)."""
    return PrivateKey.from_seed(name.encode())


def pkh(k: PrivateKey) -> bytes:
    """The public-key hash an output names to be spendable by ``k``."""
    return hash160(k.public_key)


@dataclass(frozen=True)
class Spendable:
    """A coin and the key that can spend it."""

    outpoint: OutPoint
    value: int
    key: PrivateKey


def outputs_of(tx: Transaction, owner: PrivateKey) -> list[Spendable]:
    """Every output of ``tx`` as a Spendable owned by ``owner`` (who must own them all)."""
    return [Spendable(OutPoint(tx.txid, n), out.value, owner) for n, out in enumerate(tx.outputs)]


def sign(tx: Transaction, keys: Sequence[PrivateKey], params: NetworkParams) -> Transaction:
    """``tx`` with input ``n`` signed by ``keys[n]``.

    Public keys go in first, because the digest commits to them; the signatures go in last, as
    the digest blanks every one of them.
    """
    inputs = tuple(
        dataclasses.replace(txin, pubkey=k.public_key, signature=b"")
        for txin, k in zip(tx.inputs, keys, strict=True)
    )
    unsigned = dataclasses.replace(tx, inputs=inputs)
    signed = tuple(
        dataclasses.replace(txin, signature=k.sign(unsigned.sighash(n, params.genesis_hash)))
        for n, (txin, k) in enumerate(zip(inputs, keys, strict=True))
    )
    return dataclasses.replace(unsigned, inputs=signed)


def spend(
    coins: Sequence[Spendable],
    outputs: Sequence[TxOut] | None = None,
    *,
    params: NetworkParams = REGTEST,
    fee: int = 0,
    to: PrivateKey | None = None,
    locktime: int = 0,
) -> Transaction:
    """A signed transaction spending ``coins``.

    Without ``outputs`` it pays everything but ``fee`` to ``to`` (default: the first coin's
    owner) in one output.
    """
    if outputs is None:
        owner = to if to is not None else coins[0].key
        outputs = [TxOut(sum(c.value for c in coins) - fee, pkh(owner))]
    tx = Transaction(1, tuple(TxIn(c.outpoint) for c in coins), tuple(outputs), locktime)
    return sign(tx, [c.key for c in coins], params)


def split(
    coin: Spendable, parts: int, *, params: NetworkParams = REGTEST, fee: int = 0
) -> Transaction:
    """A transaction splitting ``coin`` into ``parts`` equal outputs to its owner."""
    each = (coin.value - fee) // parts
    return spend([coin], [TxOut(each, pkh(coin.key))] * parts, params=params)


# -- blocks


def solve(header: BlockHeader, *, valid: bool = True) -> BlockHeader:
    """``header`` with the first nonce whose hash does (or, with ``valid=False``, does not)
    meet the header's own target."""
    target = bits_to_target(header.bits)
    nonce = header.nonce
    while True:
        candidate = header.with_nonce(nonce)
        if hash_meets_target(candidate.hash, target) == valid:
            return candidate
        nonce += 1


def make_block(
    prev_hash: bytes,
    txs: Sequence[Transaction],
    *,
    time: int,
    bits: int,
    version: int = 1,
    merkle_root: bytes | None = None,
    mine: bool = True,
) -> Block:
    """A block over ``txs`` (coinbase included) with its merkle root, mined unless ``mine``
    is False (then the nonce is one that fails the target)."""
    if merkle_root is None:
        merkle_root = compute_merkle_root([tx.txid for tx in txs])[0]
    header = BlockHeader(version, prev_hash, merkle_root, time, bits, 0)
    return Block(solve(header, valid=mine), tuple(txs))


# -- named chains


class ChainBuilder:
    """A named tree of blocks rooted at the network's genesis block.

    Blocks are immutable and names never reused, so ``copy()`` is cheap: it lets each test
    case grow its own branches from a shared prefix.
    """

    def __init__(self, params: NetworkParams = REGTEST, *, miner: PrivateKey | None = None) -> None:
        self.params = params
        self.miner = miner if miner is not None else key("miner")
        genesis = params.genesis
        self.blocks: dict[str, Block] = {"genesis": genesis}
        self.heights: dict[str, int] = {"genesis": 0}
        self.parents: dict[str, str | None] = {"genesis": None}
        self.names: dict[bytes, str] = {genesis.hash: "genesis"}
        self.tip = "genesis"
        # Every output of every block built here, whatever its branch: an outpoint's value
        # does not depend on the branch, so fees can be computed without a UTXO set.
        self._values: dict[OutPoint, int] = {}
        self._counter = 0

    def copy(self) -> ChainBuilder:
        other = ChainBuilder.__new__(ChainBuilder)
        other.__dict__.update(
            {k: (dict(v) if isinstance(v, dict) else v) for k, v in self.__dict__.items()}
        )
        return other

    def __getitem__(self, name: str) -> Block:
        return self.blocks[name]

    def height(self, name: str) -> int:
        return self.heights[name]

    def ancestors(self, name: str) -> Iterable[str]:
        """``name`` and its ancestors, newest first."""
        current: str | None = name
        while current is not None:
            yield current
            current = self.parents[current]

    def branch(self, name: str) -> list[str]:
        """The blocks from height 1 to ``name``, oldest first (genesis excluded)."""
        return list(self.ancestors(name))[::-1][1:]

    def median_time_past(self, name: str) -> int:
        """Median time of ``name`` and its ancestors, at most MEDIAN_TIME_SPAN of them."""
        times = []
        for ancestor in self.ancestors(name):
            times.append(self.blocks[ancestor].header.time)
            if len(times) == MEDIAN_TIME_SPAN:
                break
        # Bitcoin's GetMedianTimePast: the upper median when there are fewer than 11 and even.
        return sorted(times)[len(times) // 2]

    def expected_bits(self, parent: str) -> int:
        """The ``bits`` a child of ``parent`` must carry under the network's retarget rule."""
        height = self.heights[parent] + 1
        parent_header = self.blocks[parent].header
        interval = self.params.retarget_interval
        first_time = parent_header.time
        if interval and height % interval == 0:
            first = list(self.ancestors(parent))[interval - 1]
            first_time = self.blocks[first].header.time
        return self.params.next_bits(height, parent_header.bits, first_time, parent_header.time)

    def coinbase_of(self, name: str) -> Spendable:
        """The first output of ``name``'s coinbase, which pays the miner."""
        coinbase = self.blocks[name].transactions[0]
        return Spendable(OutPoint(coinbase.txid, 0), coinbase.outputs[0].value, self.miner)

    def fee_of(self, tx: Transaction) -> int:
        """Inputs minus outputs, from the values of outputs built here (unknown inputs: 0)."""
        value_in = sum(self._values.get(txin.prevout, 0) for txin in tx.inputs)
        return max(0, value_in - tx.total_out())

    def spend(
        self,
        coins: Sequence[Spendable],
        outputs: Sequence[TxOut] | None = None,
        *,
        fee: int = 0,
        to: PrivateKey | None = None,
        locktime: int = 0,
    ) -> Transaction:
        """:func:`spend` on this builder's network."""
        return spend(coins, outputs, params=self.params, fee=fee, to=to, locktime=locktime)

    def block(
        self,
        name: str,
        *,
        parent: str | None = None,
        txs: Sequence[Transaction] = (),
        coinbase: Transaction | None = None,
        coinbase_value: int | None = None,
        coinbase_height: int | None = None,
        time: int | None = None,
        bits: int | None = None,
        mine: bool = True,
        munge: Callable[[list[Transaction]], list[Transaction]] | None = None,
    ) -> Block:
        """Build, mine and record block ``name`` on ``parent`` (default: the last one built).

        By default the coinbase commits to the right height and claims subsidy plus fees,
        the time is the parent's plus the target spacing and the bits are what the retarget
        rule expects; each keyword breaks exactly one of these for a test. ``munge`` may edit
        the full transaction list (coinbase first) before the merkle root is computed.
        """
        if name in self.blocks:
            raise ValueError(f"block name {name!r} is taken")
        parent = parent if parent is not None else self.tip
        height = self.heights[parent] + 1
        parent_header = self.blocks[parent].header
        if coinbase is None:
            value = coinbase_value
            if value is None:
                value = self.params.subsidy(height) + sum(self.fee_of(tx) for tx in txs)
            # The extranonce keeps coinbases of sibling blocks apart (distinct txids).
            self._counter += 1
            coinbase = make_coinbase(
                height if coinbase_height is None else coinbase_height,
                (TxOut(value, pkh(self.miner)),),
                extranonce=self._counter.to_bytes(4, "little"),
            )
        all_txs = [coinbase, *txs]
        if munge is not None:
            all_txs = munge(all_txs)
        block = make_block(
            self.blocks[parent].hash,
            all_txs,
            time=time if time is not None else parent_header.time + self.params.target_spacing,
            bits=bits if bits is not None else self.expected_bits(parent),
            mine=mine,
        )
        self.add(name, block, parent)
        return block

    def add(self, name: str, block: Block, parent: str) -> None:
        """Record an already built ``block`` as ``name``, child of ``parent``."""
        if name in self.blocks:
            raise ValueError(f"block name {name!r} is taken")
        self.blocks[name] = block
        self.heights[name] = self.heights[parent] + 1
        self.parents[name] = parent
        self.names.setdefault(block.hash, name)
        self.tip = name
        for tx in block.transactions:
            for n, out in enumerate(tx.outputs):
                self._values[OutPoint(tx.txid, n)] = out.value

    def extend(self, count: int, *, prefix: str = "b", parent: str | None = None) -> list[str]:
        """``count`` blocks of coinbase only, named ``{prefix}{height}``; returns the names."""
        names: list[str] = []
        for _ in range(count):
            tip = parent if parent is not None and not names else self.tip
            name = f"{prefix}{self.heights[tip] + 1}"
            self.block(name, parent=tip)
            names.append(name)
        return names

    def full_check(
        self,
        name: str,
        view: CoinsCache,
        *,
        now: int | None = None,
        sig_cache: SignatureCache | None = None,
    ) -> BlockUndo:
        """Run every rule on block ``name`` and connect it to ``view``; return its undo data.

        ``view`` must hold the UTXO set as of the parent. ``now`` defaults to the block's own
        time (so it is never too new).
        """
        block = self.blocks[name]
        parent = self.parents[name]
        assert parent is not None, "the genesis block is not checked, it is given"
        height = self.heights[name]
        check_block(block, self.params)
        check_header_context(
            block.header,
            expected_bits=self.expected_bits(parent),
            median_time_past=self.median_time_past(parent),
            now=now if now is not None else block.header.time,
        )
        check_block_context(block, height)
        return connect_block(block, height, view, self.params, sig_cache=sig_cache)

    def connect_branch(self, name: str, view: CoinsCache | None = None) -> CoinsCache:
        """A view with every block from height 1 to ``name`` fully checked and connected.

        The genesis coinbase is not connected: as in Bitcoin, it is never spendable.
        """
        view = view if view is not None else CoinsCache()
        for ancestor in self.branch(name):
            self.full_check(ancestor, view)
        return view


# -- hypothesis strategies for every encoded object (any values the decoders accept)


def _strategies() -> SimpleNamespace:
    from hypothesis import strategies as st

    u32 = st.integers(0, 0xFFFFFFFF)
    hash32 = st.binary(min_size=32, max_size=32)
    pubkey_hash = st.binary(min_size=PUBKEY_HASH_SIZE, max_size=PUBKEY_HASH_SIZE)
    outpoints = st.builds(OutPoint, hash32, u32)
    txins = st.builds(
        TxIn,
        outpoints,
        st.binary(max_size=MAX_SIGNATURE_FIELD),
        st.one_of(st.just(b""), st.binary(min_size=33, max_size=33), st.binary(max_size=33)),
    )
    txouts = st.builds(TxOut, st.integers(0, MAX_MONEY), pubkey_hash)
    transactions = st.builds(
        Transaction,
        u32,
        st.lists(txins, max_size=4).map(tuple),
        st.lists(txouts, max_size=4).map(tuple),
        u32,
    )
    headers = st.builds(BlockHeader, u32, hash32, hash32, u32, u32, u32)
    blocks = st.builds(Block, headers, st.lists(transactions, max_size=3).map(tuple))
    coins = st.builds(Coin, st.integers(0, MAX_MONEY), pubkey_hash, u32, st.booleans())
    undos = st.builds(BlockUndo, st.lists(st.tuples(outpoints, coins), max_size=5).map(tuple))
    return SimpleNamespace(
        outpoints=outpoints,
        txins=txins,
        txouts=txouts,
        transactions=transactions,
        headers=headers,
        blocks=blocks,
        coins=coins,
        undos=undos,
    )


strategies = _strategies()
"""``strategies.transactions``, ``.blocks``, ``.headers``, ``.coins``, ``.undos`` and parts."""
