"""Chain store speed as the chain grows from 1,000 to 100,000 blocks on disk.

Grows one regtest chain of coinbase-only blocks (cheap to mine: about two hashes each) through
``ChainState.process_block`` into a data directory in a temporary folder, and at 1,000, 10,000
and 100,000 blocks measures:

* ``connect``: milliseconds per block for the last 1,000 blocks (median of windows of 100):
  every check, one SQLite transaction to store the block, one to connect it;
* ``disconnect`` / ``reconnect``: milliseconds per block when ``invalidateblock`` walks the
  tip back 100 blocks through undo data, and ``reconsiderblock`` connects them again from the
  store (a 100-block reorganisation, each block one transaction);
* ``open``: seconds to reopen the store: load the whole block index, restore the active chain;
* ``get_coin``: UTXO lookups per second of random coins (the validation hot path);
* ``size``: megabytes of the database and its write-ahead log.

Then, at the end, ``utxo batch``: coins per second written by one ``connect`` transaction that
adds 1,000 coins and spends 1,000 (the store's share of a large block, signatures excluded).

Figures are medians; the machine is noisy, so compare the growth ratios within one run.

    python bench/store.py                  # to 100,000 blocks: about 2 minutes on 2 cores
    python bench/store.py --blocks 10000   # to 10,000 blocks: about 10 seconds
    python bench/store.py --json           # one JSON object
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import resource
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Run from a checkout without installing: put the repository root first on the path.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from node.chainstate import ChainState
from node.core.block import Block
from node.core.chain import BlockEntry, BlockTree
from node.core.header import BlockHeader, bits_to_target, hash_meets_target
from node.core.params import REGTEST
from node.core.tx import OutPoint, TxOut, make_coinbase
from node.core.utxo import BlockUndo, Coin, UtxoChanges
from node.store import DB_FILENAME, ChainStore

CHECKPOINTS = (1_000, 10_000, 100_000)
WINDOW = 100
REORG_DEPTH = 100
ROUNDS = 3
LOOKUPS = 10_000
BATCH = 1_000
NOW = 2**32 - 1
PAYEE = bytes(range(20))
TARGET = bits_to_target(REGTEST.genesis_bits)


def mine_next(parent: BlockHeader, height: int, payee: bytes = PAYEE) -> Block:
    """A coinbase-only regtest block on ``parent``: about two hashes of mining."""
    coinbase = make_coinbase(height, (TxOut(REGTEST.subsidy(height), payee),))
    header = BlockHeader(1, parent.hash, coinbase.txid, parent.time + 600, parent.bits, 0)
    while not hash_meets_target(header.hash, TARGET):
        header = header.with_nonce(header.nonce + 1)
    return Block(header, (coinbase,))


def db_megabytes(datadir: Path) -> float:
    files = [datadir / DB_FILENAME, datadir / (DB_FILENAME + "-wal")]
    return sum(f.stat().st_size for f in files if f.exists()) / 1e6


def measure_reorg(chain: ChainState, rng: random.Random) -> float:
    """ms per block moved in a reorganisation of REORG_DEPTH blocks.

    A competing branch of REORG_DEPTH + 1 blocks is built from REORG_DEPTH blocks below the tip;
    its blocks are stored as they come (not timed), and the last one, which has more work,
    makes the chain disconnect REORG_DEPTH blocks and connect REORG_DEPTH + 1: that is timed.
    """
    fork = chain.active[chain.height - REORG_DEPTH]
    parent = fork.header
    payee = rng.randbytes(20)
    blocks = []
    for height in range(fork.height + 1, fork.height + REORG_DEPTH + 2):
        # A payee of its own, so the branch differs from every block already stored.
        blocks.append(mine_next(parent, height, payee=payee))
        parent = blocks[-1].header
    for block in blocks[:-1]:
        chain.process_block(block, NOW)
    start = time.perf_counter()
    result = chain.process_block(blocks[-1], NOW)
    elapsed = time.perf_counter() - start
    if chain.tip.hash != blocks[-1].hash or len(result.events) != 2 * REORG_DEPTH + 2:
        raise AssertionError("the competing branch did not win")
    return elapsed * 1e3 / (2 * REORG_DEPTH + 1)


def measure_invalidate(chain: ChainState) -> tuple[float, float]:
    """ms for invalidateblock REORG_DEPTH blocks below the tip, then reconsiderblock.

    Both also rescan the whole block index for candidates, as bitcoind does: linear in its size.
    """
    target = chain.active[chain.height - REORG_DEPTH + 1].hash
    start = time.perf_counter()
    chain.invalidate_block(target)
    middle = time.perf_counter()
    chain.reconsider_block(target)
    return (middle - start) * 1e3, (time.perf_counter() - middle) * 1e3


def measure_lookups(chain: ChainState, rng: random.Random) -> float:
    """Random coins of the UTXO set looked up one by one, as validation does."""
    outpoints = [outpoint for outpoint, _ in chain.store.iter_coins()]
    sample = [rng.choice(outpoints) for _ in range(LOOKUPS)]
    start = time.perf_counter()
    for outpoint in sample:
        if chain.get_coin(outpoint) is None:
            raise AssertionError(f"coin {outpoint} missing")
    return LOOKUPS / (time.perf_counter() - start)


def grow(total: int, datadir: Path) -> list[dict[str, Any]]:
    rng = random.Random(1)
    checkpoints = sorted({c for c in CHECKPOINTS if c <= total} | {total})
    results: list[dict[str, Any]] = []
    chain = ChainState.open(datadir, REGTEST)
    window_ms: list[float] = []
    window_start = time.perf_counter()
    generating = 0.0
    blocks_in_window = 0
    try:
        while checkpoints:
            g0 = time.perf_counter()
            block = mine_next(chain.tip.header, chain.height + 1)
            generating += time.perf_counter() - g0
            result = chain.process_block(block, NOW)
            if not result.accepted:
                raise AssertionError(f"block {chain.height + 1} refused: {result.reject}")
            blocks_in_window += 1
            if blocks_in_window == WINDOW:
                elapsed = time.perf_counter() - window_start - generating
                window_ms.append(elapsed * 1e3 / WINDOW)
                window_start, generating, blocks_in_window = time.perf_counter(), 0.0, 0
            if chain.height < checkpoints[0]:
                continue
            checkpoints.pop(0)
            row: dict[str, Any] = {
                "blocks": chain.height,
                "connect_ms": statistics.median(window_ms[-(1_000 // WINDOW) :]),
                "get_coin_per_s": statistics.median(
                    measure_lookups(chain, rng) for _ in range(ROUNDS)
                ),
            }
            row["reorg_ms"] = statistics.median(measure_reorg(chain, rng) for _ in range(ROUNDS))
            invalidates, reconsiders = zip(
                *(measure_invalidate(chain) for _ in range(ROUNDS)), strict=True
            )
            row["invalidate_ms"] = statistics.median(invalidates)
            row["reconsider_ms"] = statistics.median(reconsiders)
            tip_hash = chain.tip.hash
            opens = []
            for _ in range(ROUNDS):
                chain.close()
                start = time.perf_counter()
                chain = ChainState.open(datadir, REGTEST)
                opens.append(time.perf_counter() - start)
            if chain.tip.hash != tip_hash:
                raise AssertionError("reopened at another tip")
            row["open_s"] = statistics.median(opens)
            row["size_mb"] = db_megabytes(datadir)
            results.append(row)
            window_start, generating, blocks_in_window = time.perf_counter(), 0.0, 0
    finally:
        chain.close()
    return results


def utxo_batch(datadir: Path | None) -> float:
    """Coins per second for connect transactions that spend BATCH coins and add BATCH."""
    store = ChainStore.memory(REGTEST) if datadir is None else ChainStore.open(datadir, REGTEST)
    tree = BlockTree(REGTEST.genesis.header)
    parent = REGTEST.genesis.header
    previous: list[OutPoint] = []
    rates = []
    try:
        for height in range(1, 2 * ROUNDS + 2):
            block = mine_next(parent, height)
            parent = block.header
            entry: BlockEntry = tree.add_header(block.header)
            txid = block.transactions[0].txid
            added = tuple(
                (OutPoint(txid, n), Coin(1_000 + n, PAYEE, height, False)) for n in range(BATCH)
            )
            changes = UtxoChanges(added, tuple(previous))
            undo = BlockUndo(tuple((op, Coin(1, PAYEE, height, False)) for op in previous))
            start = time.perf_counter()
            store.connect(entry, changes, undo)
            if previous:
                rates.append((len(added) + len(previous)) / (time.perf_counter() - start))
            previous = [op for op, _ in added]
    finally:
        store.close()
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--blocks", type=int, default=CHECKPOINTS[-1], help="chain length")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if args.blocks < REORG_DEPTH + 1:
        parser.error(f"--blocks must be at least {REORG_DEPTH + 1}")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="forklab-bench-store-") as tmp:
        growth = grow(args.blocks, Path(tmp) / "grow")
        batch_disk = utxo_batch(Path(tmp) / "batch")
    batch_memory = utxo_batch(None)
    report = {
        "benchmark": "store",
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "blocks": args.blocks,
        "growth": growth,
        "utxo_batch_coins_per_s": {"disk": batch_disk, "memory": batch_memory},
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "seconds": time.perf_counter() - started,
    }
    if args.json:
        print(json.dumps(report))
        return
    print(f"chain store, regtest coinbase-only blocks, SQLite {sqlite3.sqlite_version}")
    columns = [
        ("blocks", "", "{:,}"),
        ("connect_ms", "ms/block", "{:.3f}"),
        ("reorg_ms", "ms/block", "{:.3f}"),
        ("invalidate_ms", "ms", "{:.1f}"),
        ("reconsider_ms", "ms", "{:.1f}"),
        ("open_s", "s", "{:.3f}"),
        ("get_coin_per_s", "/s", "{:,.0f}"),
        ("size_mb", "MB", "{:.1f}"),
    ]
    names = ["blocks", "connect", "reorg", "invalidate", "reconsider", "open", "get_coin", "size"]
    print(" ".join(f"{n:>11}" for n in names))
    print(" ".join(f"{unit:>11}" for _, unit, _ in columns))
    for row in growth:
        print(" ".join(f"{fmt.format(row[key]):>11}" for key, _, fmt in columns))
    print(
        f"utxo batch (spend {BATCH:,} + add {BATCH:,} in one transaction): "
        f"{batch_disk:,.0f} coins/s on disk, {batch_memory:,.0f} in memory"
    )
    print(f"peak RSS {report['peak_rss_mb']:.0f} MB; took {report['seconds']:.0f} s")


if __name__ == "__main__":
    main()
