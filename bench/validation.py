"""Pure block validation throughput: the rules alone, no store, no network.

For blocks of 1, 100 and 2,000 signed transactions (one input, two outputs each, every input
owned by a different key, plus the coinbase), and for one transaction of 1,000 inputs (which
shows that checking a transaction's signatures is linear in its inputs), measures:

* ``decode``: ``Block.deserialize`` of the block's bytes, as a block arrives from a peer;
* ``check``: ``check_block`` (proof of work, merkle root, size, every transaction's shape);
* ``connect``: ``connect_block`` into a fresh ``CoinsCache`` over an in-memory UTXO set:
  coin lookups, maturity and amounts, public-key hashes and one ECDSA check per input;
* ``connect, cached``: the same with every signature already in a ``SignatureCache``, as when
  the transactions passed the mempool first;
* ``disconnect``: ``disconnect_block`` with the block's undo data (a reorganisation's step);
* ``ecdsa only``: the bare ``verify`` calls of the block, to show what share of ``connect`` is
  signature checking (the rest is Python overhead this benchmark exists to keep small).

Transactions per second are counted over check + connect, the work a node does per new block.
Each round decodes a fresh copy of the block, so no cached txid or encoding flatters it; the
public keys, though, are parsed once and then found in node.core.crypto's key cache, as for
transactions that passed through the mempool (a first sight costs about 1/8 more per check). The
figures are medians of several rounds; steps of one round run back to back, so their ratios
hold on a noisy machine even when absolute numbers wobble.

    python bench/validation.py              # human table, about 10 seconds
    python bench/validation.py --json       # one JSON object
    python bench/validation.py --rounds 9   # steadier

Store-backed figures (a chain of 1,000 to 100,000 blocks on disk) are in bench/store.py.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# Run from a checkout without installing: the repository root and the tests' block builder.
ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from blocktools import ChainBuilder, Spendable, key, pkh, spend  # noqa: E402

from node.core import crypto  # noqa: E402
from node.core.block import Block  # noqa: E402
from node.core.params import REGTEST  # noqa: E402
from node.core.sigcache import SignatureCache  # noqa: E402
from node.core.tx import COIN, OutPoint, TxOut  # noqa: E402
from node.core.utxo import CoinsCache  # noqa: E402
from node.core.validation import check_block, connect_block, disconnect_block  # noqa: E402

BLOCK_SIZES = (1, 100, 2000)
MANY_INPUTS = 1000
STEPS = ("decode", "check", "connect", "connect_cached", "disconnect", "ecdsa_only")
LABELS = {
    "decode": "decode",
    "check": "check",
    "connect": "connect",
    "connect_cached": "connect, cached",
    "disconnect": "disconnect",
    "ecdsa_only": "ecdsa only",
}


@dataclass(frozen=True)
class Workload:
    name: str
    n_txs: int
    n_inputs: int
    raw: bytes
    height: int


def build(sizes: tuple[int, ...], many_inputs: int) -> tuple[CoinsCache, list[Workload]]:
    """A regtest chain whose UTXO set funds every workload, and the workload blocks on its tip.

    b102 splits b1's coinbase into one coin per owner, so every benchmark input has its own key.
    """
    chain = ChainBuilder(REGTEST, miner=key("bench-miner"))
    chain.extend(101)
    owners_needed = max(*sizes, many_inputs)
    owners = [key(f"bench-owner-{n}") for n in range(owners_needed)]
    each = (50 * COIN - COIN) // owners_needed
    funding = spend([chain.coinbase_of("b1")], [TxOut(each, pkh(k)) for k in owners])
    chain.block("b102", txs=[funding])
    coins = [Spendable(OutPoint(funding.txid, n), each, k) for n, k in enumerate(owners)]
    view = chain.connect_branch("b102")

    workloads = []
    for size in sizes:
        txs = [
            spend([coin], [TxOut(coin.value // 2, pkh(coin.key))] * 2, fee=coin.value % 2)
            for coin in coins[:size]
        ]
        block = chain.block(f"txs{size}", parent="b102", txs=txs)
        workloads.append(
            Workload(f"{size:,} tx" + ("s" if size > 1 else ""), size, size, block.serialize(), 103)
        )
    big = spend(coins[:many_inputs], fee=1000, to=key("bench-sink"))
    block = chain.block("inputs", parent="b102", txs=[big])
    workloads.append(
        Workload(f"1 tx of {many_inputs:,} inputs", 1, many_inputs, block.serialize(), 103)
    )
    return view, workloads


def timed(operation: Callable[[], object]) -> float:
    start = time.perf_counter()
    operation()
    return time.perf_counter() - start


def measure_round(work: Workload, base: CoinsCache) -> dict[str, float]:
    times: dict[str, float] = {}
    decoded: list[Block] = []
    times["decode"] = timed(lambda: decoded.append(Block.deserialize(work.raw)))
    block = decoded[0]
    times["check"] = timed(lambda: check_block(block, REGTEST))

    view = CoinsCache(base)
    undo = []
    times["connect"] = timed(lambda: undo.append(connect_block(block, work.height, view, REGTEST)))
    times["disconnect"] = timed(lambda: disconnect_block(block, undo[0], view))
    assert view.changes().is_empty(), "disconnect did not undo connect: the benchmark is wrong"

    cache = SignatureCache(max(1, work.n_inputs))
    connect_block(
        Block.deserialize(work.raw), work.height, CoinsCache(base), REGTEST, sig_cache=cache
    )
    fresh = Block.deserialize(work.raw)
    times["connect_cached"] = timed(
        lambda: connect_block(fresh, work.height, CoinsCache(base), REGTEST, sig_cache=cache)
    )

    checks = [
        (txin.pubkey, tx.sighash(n, REGTEST.genesis_hash), txin.signature)
        for tx in block.transactions[1:]
        for n, txin in enumerate(tx.inputs)
    ]
    verify = crypto.verify
    times["ecdsa_only"] = timed(lambda: all(verify(*check) for check in checks))
    return times


def measure(rounds: int) -> tuple[list[Workload], dict[str, dict[str, float]]]:
    base, workloads = build(BLOCK_SIZES, MANY_INPUTS)
    results: dict[str, dict[str, float]] = {}
    for work in workloads:
        measure_round(work, base)  # warm-up: imports, allocator, first-use caches
        samples = [measure_round(work, base) for _ in range(rounds)]
        medians = {step: statistics.median(s[step] for s in samples) for step in STEPS}
        per_block = medians["check"] + medians["connect"]
        medians["txs_per_second"] = work.n_txs / per_block
        medians["inputs_per_second"] = work.n_inputs / per_block
        medians["ecdsa_share_of_connect"] = medians["ecdsa_only"] / medians["connect"]
        medians["block_bytes"] = len(work.raw)
        results[work.name] = medians
    return workloads, results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per workload")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")

    workloads, results = measure(args.rounds)
    report = {
        "benchmark": "validation",
        "unit": "seconds per block (median of rounds), one core; rates per second",
        "rounds": args.rounds,
        "backend": crypto.best_backend().value,
        "python": platform.python_version(),
        "results": results,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0

    print(
        f"validation: pure rules, in-memory UTXO set, {args.rounds} rounds, median, one core "
        f"(Python {report['python']}, backend {report['backend']})"
    )
    header = (
        f"{'block':<24}{'bytes':>9}"
        + "".join(f"{LABELS[step] + ' ms':>20}" for step in STEPS)
        + f"{'txs/s':>10}{'inputs/s':>10}{'ecdsa share':>13}"
    )
    print(header)
    print("-" * len(header))
    for work in workloads:
        r = results[work.name]
        print(
            f"{work.name:<24}{int(r['block_bytes']):>9,}"
            + "".join(f"{r[step] * 1000:>20.2f}" for step in STEPS)
            + f"{r['txs_per_second']:>10,.0f}{r['inputs_per_second']:>10,.0f}"
            + f"{r['ecdsa_share_of_connect']:>12.0%}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
