"""Child process of the crash test (tests/test_store_crash.py): write to a chain store forever.

Usage: ``python tests/store_crash_child.py DATADIR SEED``

Opens the store in DATADIR (resuming wherever the last, killed, run left it) and then, until it
is killed, mines regtest blocks on top of what the store holds: mostly on the tip, with
transactions spending mature coins; sometimes a competing branch from a few blocks back that
overtakes the tip (a reorganisation), always first thing after the 110-block warm-up. Every
choice comes from ``random.Random(SEED)``.

It reports on stdout, one flushed line each:

* ``ready HEIGHT`` once the store is open;
* ``tip HASH HEIGHT REORG_DEPTH`` after each block that moved the tip, once its transaction
  committed. The parent checks that a store reopened after SIGKILL has at least that much work:
  a commit it was told about is never lost.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

from blocktools import Spendable, key, make_block, pkh, spend

from node.chainstate import ChainState, TipChanged
from node.core.block import Block
from node.core.chain import BlockEntry
from node.core.params import REGTEST
from node.core.tx import Transaction, TxOut, make_coinbase

NOW = 2**31
"""Far past every block time built here (each block is 600 s after its parent)."""

MINER = key("crash-miner")
WARM_UP = 110
"""Blocks on the tip before any fork: coinbases mature at 100, so spends start at 101."""


def spendable_coins(chain: ChainState, below_height: int) -> list[Spendable]:
    """The miner's coins of the active chain created at or below ``below_height`` and mature
    for a block at ``below_height + 1``; unspent now, so unspent on any branch forking above."""
    coins = []
    for outpoint, coin in chain.coins_for([pkh(MINER)]):
        if coin.height > below_height:
            continue
        if coin.is_coinbase and below_height + 1 - coin.height < REGTEST.coinbase_maturity:
            continue
        coins.append(Spendable(outpoint, coin.value, MINER))
    return coins


FEE = 1_000


def build_block(
    chain: ChainState, parent: BlockEntry, txs: list[Transaction], rng: random.Random
) -> Block:
    height = parent.height + 1
    coinbase = make_coinbase(
        height,
        (TxOut(REGTEST.subsidy(height) + FEE * len(txs), pkh(MINER)),),
        extranonce=rng.randbytes(8),
    )
    return make_block(
        parent.hash,
        [coinbase, *txs],
        time=parent.header.time + 600,
        bits=chain.tree.expected_bits(parent, REGTEST),
    )


def pick_spends(chain: ChainState, below_height: int, rng: random.Random) -> list[Transaction]:
    coins = spendable_coins(chain, below_height)
    rng.shuffle(coins)
    txs = []
    for coin in coins[: rng.randint(0, 3)]:
        half = coin.value // 2
        outputs = [TxOut(half, pkh(MINER)), TxOut(coin.value - half - FEE, pkh(MINER))]
        txs.append(spend([coin], outputs))
    return txs


def main(datadir: Path, seed: int) -> None:
    rng = random.Random(seed)
    chain = ChainState.open(datadir, REGTEST)
    print(f"ready {chain.height}", flush=True)
    # Once past the warm-up, a run starts with a reorganisation, so every run that is let
    # commit one tip line has committed a reorganisation.
    fork_next = chain.height >= WARM_UP
    while True:
        tip = chain.tip
        if tip.height < WARM_UP or not (fork_next or rng.random() < 0.25):
            parent, count = tip, 1
        else:
            parent = chain.active[tip.height - rng.randint(1, 4)]
            # One block more than the branch it competes with: it wins once complete.
            count = tip.height - parent.height + 1
            fork_next = False
        txs = pick_spends(chain, parent.height, rng)
        for n in range(count):
            block = build_block(chain, parent, txs if n == 0 else [], rng)
            result = chain.process_block(block, NOW)
            if not result.accepted:
                raise SystemExit(f"block refused: {result.reject}")
            for event in result.events:
                if isinstance(event, TipChanged):
                    new = event.new_tip
                    print(f"tip {new.hash.hex()} {new.height} {event.reorg_depth}", flush=True)
            entry = chain.get_entry(block.hash)
            assert entry is not None
            parent = entry


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
