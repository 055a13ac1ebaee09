"""The mempool's bookkeeping under a long random run, checked against a recomputation.

The pool keeps running totals (ancestor and descendant counts, sizes and fees per entry, total
bytes and fees, who spends which coin) updated incrementally on every admission, eviction,
confirmation and reorganisation. A seeded random walk mixes all of these in a small pool (so
eviction is frequent), mining blocks from the pool's own templates; after every step each total
is recomputed from scratch from the transactions alone and compared.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest
from blocktools import ChainBuilder, key, make_block, pkh, sign, solve

from node.core.block import Block
from node.core.errors import ErrorCode, RuleError
from node.core.mempool import Mempool, MempoolView
from node.core.params import REGTEST
from node.core.template import build_template
from node.core.tx import OutPoint, Transaction, TxIn, TxOut, make_coinbase
from node.core.utxo import CoinsCache
from node.core.validation import check_block, check_block_context, connect_block

EXPECTED_REFUSALS = {
    ErrorCode.TXN_MEMPOOL_CONFLICT,
    ErrorCode.MEMPOOL_FULL,
    ErrorCode.BAD_TXNS_INPUTS_MISSINGORSPENT,
}


def check_bookkeeping(pool: Mempool) -> None:
    entries = pool.entries()
    by_txid = {e.txid: e for e in entries}
    assert pool.total_bytes == sum(e.size for e in entries) <= pool.max_bytes
    assert pool.total_fees == sum(e.fee for e in entries)
    position = {e.txid: n for n, e in enumerate(entries)}
    parents = {
        e.txid: {i.prevout.txid for i in e.tx.inputs if i.prevout.txid in by_txid} for e in entries
    }
    children: dict[bytes, set[bytes]] = {txid: set() for txid in by_txid}
    for txid, ps in parents.items():
        for p in ps:
            children[p].add(txid)

    def closure(start: bytes, edges: dict[bytes, set[bytes]]) -> set[bytes]:
        found = {start}
        stack = [start]
        while stack:
            for nxt in edges[stack.pop()]:
                if nxt not in found:
                    found.add(nxt)
                    stack.append(nxt)
        return found

    for entry in entries:
        rel = pool.relatives(entry.txid)
        assert rel.parents == parents[entry.txid]
        assert rel.children == children[entry.txid]
        assert all(position[p] < position[entry.txid] for p in rel.parents)
        ancestors = closure(entry.txid, parents)
        descendants = closure(entry.txid, children)
        assert rel.ancestor_count == len(ancestors)
        assert rel.ancestor_size == sum(by_txid[t].size for t in ancestors)
        assert rel.ancestor_fees == sum(by_txid[t].fee for t in ancestors)
        assert rel.descendant_count == len(descendants)
        assert rel.descendant_size == sum(by_txid[t].size for t in descendants)
        assert rel.descendant_fees == sum(by_txid[t].fee for t in descendants)
        for txin in entry.tx.inputs:
            assert pool.spender_of(txin.prevout) == entry.txid


@dataclass
class Walk:
    """A chain of CoinsCache layers (one per block) and a pool, driven by one seeded RNG."""

    rng: random.Random
    chain: ChainBuilder
    views: list[CoinsCache]
    blocks: list[Block]
    pool: Mempool
    outputs: list[tuple[OutPoint, int]]
    """Every output ever created for the miner's key; spent or not, confirmed or not."""

    @property
    def view(self) -> CoinsCache:
        return self.views[-1]

    @property
    def next_height(self) -> int:
        return 110 + len(self.blocks) + 1

    def make_tx(self) -> Transaction:
        seen = MempoolView(self.view, self.pool)
        unspent = [o for o in self.outputs if seen.get_coin(o[0]) is not None]
        # Now and then an already spent coin, to produce conflicts and missing inputs.
        pick_from = self.outputs if self.rng.random() < 0.15 or not unspent else unspent
        inputs = self.rng.sample(pick_from, min(len(pick_from), self.rng.choice([1, 1, 2])))
        value = sum(v for _, v in inputs)
        fee = self.rng.randint(300, 6_000)
        parts = self.rng.choice([1, 2, 3])
        each = (value - fee) // parts
        outputs = tuple(TxOut(each, pkh(self.chain.miner)) for _ in range(parts))
        tx = Transaction(1, tuple(TxIn(op) for op, _ in inputs), outputs)
        return sign(tx, [self.chain.miner] * len(inputs), REGTEST)

    def accept(self) -> None:
        tx = self.make_tx()
        try:
            self.pool.accept(tx, self.view, self.next_height)
        except RuleError as err:
            assert err.code in EXPECTED_REFUSALS, err
            return
        self.outputs += [(OutPoint(tx.txid, n), o.value) for n, o in enumerate(tx.outputs)]

    def mine(self) -> None:
        parent = self.blocks[-1] if self.blocks else self.chain["b110"]
        template = build_template(
            REGTEST,
            parent_hash=parent.hash,
            height=self.next_height,
            bits=REGTEST.pow_limit_bits,
            median_time_past=parent.header.time,
            now=parent.header.time + 1,
            mempool=self.pool,
            payout_pubkey_hash=pkh(key("pool")),
            max_size=self.rng.choice([600, 1_500, 1_000_000]),
        )
        extranonce = self.rng.randrange(2**64)
        header = solve(template.header_for(extranonce, template.cur_time, 0))
        block = template.block_for(extranonce, header.time, header.nonce)
        check_block(block, REGTEST)
        check_block_context(block, self.next_height)
        layer = CoinsCache(self.view)
        connect_block(block, self.next_height, layer, REGTEST)
        self.views.append(layer)
        self.blocks.append(block)
        self.pool.remove_for_block(block)

    def reorg(self) -> None:
        """Disconnect the last block and connect an empty sibling and a child on top."""
        if not self.blocks:
            return
        dropped = self.blocks.pop()
        self.views.pop()
        parent = self.blocks[-1] if self.blocks else self.chain["b110"]
        for _ in range(2):
            height = self.next_height
            coinbase = make_coinbase(
                height,
                (TxOut(REGTEST.subsidy(height), pkh(key("fork"))),),
                extranonce=self.rng.randbytes(8),
            )
            block = make_block(
                parent.hash, [coinbase], time=parent.header.time + 1, bits=REGTEST.pow_limit_bits
            )
            layer = CoinsCache(self.view)
            connect_block(block, height, layer, REGTEST)
            self.views.append(layer)
            self.blocks.append(block)
            self.pool.remove_for_block(block)
            parent = block
        self.pool.readd_disconnected(dropped.transactions, self.view, self.next_height)


@pytest.mark.parametrize("seed", range(4))
def test_running_totals_match_a_recomputation_after_every_step(seed: int) -> None:
    chain = ChainBuilder()
    chain.extend(110)
    base = chain.connect_branch("b110")
    outputs = [(chain.coinbase_of(f"b{n}").outpoint, 50 * 10**8) for n in range(1, 11)]
    pool = Mempool(REGTEST, max_bytes=2_500)
    walk = Walk(random.Random(seed), chain, [base], [], pool, outputs)
    steps = {"accept": walk.accept, "mine": walk.mine, "reorg": walk.reorg}
    for _ in range(120):
        action = walk.rng.choices(list(steps), weights=[12, 2, 1])[0]
        steps[action]()
        check_bookkeeping(pool)
