"""Following the money: how long ``traceaddress`` takes on a chain with many transactions.

A regtest chain of ``--blocks`` blocks (default 2,000) is built on disk: from block 101 each
block splits a matured coinbase among twenty keys and carries ``--payments`` payments (default
20), each spending a coin of the chain (mostly a recent one) and paying two random keys, so
coins mix more with every block. Alice receives one output of the first split; her coins are
then spent, split and merged by everyone. The trace from her address reads the whole active
chain (the RPC's :class:`~node.rpc.methods.tracing.ChainScan`, in its slices, without the
async trips) with ``max_txs`` 200 (the default) and 2,000 (the most allowed); so does the
trace from the miner's address, which every coinbase pays: a huge request, which the bound
truncates. Beside it: the time to only read every block from the store, the floor any one-pass
trace stands on.

    python bench/trace.py                    # about a minute to build, seconds to measure
    python bench/trace.py --blocks 500 --payments 5
    python bench/trace.py --json

Figures are medians of ``--rounds`` runs, all on the same chain.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Run from a checkout without installing: the repository root and the tests' block builder.
ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from blocktools import ChainBuilder, Spendable, key, pkh  # noqa: E402

from node.chainstate import ChainState  # noqa: E402
from node.core.mempool import Mempool  # noqa: E402
from node.core.params import REGTEST  # noqa: E402
from node.core.tx import OutPoint, TxOut  # noqa: E402
from node.moneyflow import Trace  # noqa: E402
from node.rpc.methods.tracing import ChainScan  # noqa: E402

OWNERS = 20
SPLIT = 20


def build(
    blocks: int, payments: int, datadir: Path, seed: int
) -> tuple[ChainState, dict[str, bytes], int]:
    """The chain, the public-key hashes traced (alice's, the miner's), and how many
    transactions the chain holds."""
    rng = random.Random(seed)
    owners = [key(f"owner{n}") for n in range(OWNERS)]
    alice = key("alice")
    builder = ChainBuilder(REGTEST)
    chain = ChainState.open(datadir, REGTEST)
    pool: list[Spendable] = []
    count = 0
    maturity = REGTEST.coinbase_maturity
    for height in range(1, blocks + 1):
        txs = []
        if height > maturity:
            coin = builder.coinbase_of(f"b{height - maturity}")
            payees = [
                alice if height == maturity + 1 and n == 0 else rng.choice(owners)
                for n in range(SPLIT)
            ]
            share = coin.value // SPLIT
            txs.append(builder.spend([coin], [TxOut(share, pkh(p)) for p in payees]))
        for _ in range(min(payments, len(pool))):
            # Mostly recent coins, as people spend what they were just paid: trails grow long.
            recent = rng.random() < 0.7
            index = len(pool) - 1 - rng.randrange(min(len(pool), 60)) if recent else None
            coin = pool.pop(index if index is not None else rng.randrange(len(pool)))
            if coin.value < 2:
                continue
            part = rng.randrange(1, coin.value)
            outputs = [
                TxOut(part, pkh(rng.choice(owners))),
                TxOut(coin.value - part, pkh(rng.choice(owners))),
            ]
            txs.append(builder.spend([coin], outputs))
        block = builder.block(f"b{height}", txs=txs)
        result = chain.process_block(block, block.header.time)
        if not result.accepted:
            raise AssertionError(f"block {height} refused: {result.reject}")
        count += len(block.transactions)
        owner_of = {pkh(k): k for k in [*owners, alice]}
        for tx in txs:
            for n, out in enumerate(tx.outputs):
                pool.append(Spendable(OutPoint(tx.txid, n), out.value, owner_of[out.pubkey_hash]))
    return chain, {"alice": pkh(alice), "miner": pkh(builder.miner)}, count


def trace(chain: ChainState, pubkey_hash: bytes, max_txs: int) -> tuple[float, Trace]:
    mempool = Mempool(REGTEST)
    scan = ChainScan(pubkey_hash, max_txs, 100, False)
    start = time.perf_counter()
    while True:
        outcome = scan.slice(chain, mempool)
        assert outcome is not None
        if outcome[0] == "done":
            return time.perf_counter() - start, scan.tracer.result()


def read_only(chain: ChainState) -> float:
    start = time.perf_counter()
    for height in range(1, chain.height + 1):
        block_hash = chain.block_hash_at(height)
        assert block_hash is not None and chain.get_block(block_hash) is not None
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blocks", type=int, default=2000)
    parser.add_argument("--payments", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="forklab-bench-trace-") as tmp:
        t0 = time.perf_counter()
        chain, targets, txs = build(args.blocks, args.payments, Path(tmp), args.seed)
        built = time.perf_counter() - t0
        cases = [(name, max_txs) for name in targets for max_txs in (200, 2000)]
        times: dict[str, list[float]] = {
            key: [] for key in ["read", *(f"{n}/{m}" for n, m in cases)]
        }
        results: dict[str, Trace] = {}
        try:
            read_only(chain)  # warm the store's pages once, for every case alike
            for _ in range(args.rounds):
                # Interleaved, so a slow moment of the machine hits every case alike.
                times["read"].append(read_only(chain))
                for name, max_txs in cases:
                    seconds, result = trace(chain, targets[name], max_txs)
                    times[f"{name}/{max_txs}"].append(seconds)
                    results[f"{name}/{max_txs}"] = result
        finally:
            chain.close()
    rows: list[dict[str, Any]] = [
        {"what": "read every block", "seconds": statistics.median(times["read"])}
    ]
    for name, max_txs in cases:
        result = results[f"{name}/{max_txs}"]
        rows.append(
            {
                "what": f"trace {name}, max_txs {max_txs}",
                "seconds": statistics.median(times[f"{name}/{max_txs}"]),
                "graph_txs": len(result.txs),
                "hops": result.hops,
                "truncated": result.truncated,
            }
        )
    report = {
        "blocks": args.blocks,
        "transactions": txs,
        "build_seconds": built,
        "rounds": args.rounds,
        "rows": rows,
    }
    if args.json:
        print(json.dumps(report))
        return
    print(f"chain: {args.blocks} blocks, {txs} transactions (built in {built:.0f} s)")
    print(f"{'':26} {'median s':>9} {'ms/block':>9} {'graph txs':>10} {'hops':>5}")
    for row in rows:
        per_block = row["seconds"] * 1e3 / args.blocks
        extra = (
            f"{row['graph_txs']:>10} {row['hops']:>5}"
            + ("  (truncated)" if row["truncated"] else "")
            if "graph_txs" in row
            else ""
        )
        print(f"{row['what']:26} {row['seconds']:>9.3f} {per_block:>9.3f} {extra}")


if __name__ == "__main__":
    main()
