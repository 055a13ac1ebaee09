"""Initial sync: blocks per second for a new node catching up on ``--blocks`` blocks.

A chain of coinbase-only blocks (10,000 by default) is written once into a data directory in
process, then copied to one and to three seed nodes. A fresh node is started with ``--connect``
to the seeds, and the clock runs from the moment it is ready until its tip reaches the seeds'
tip. Nodes are real processes on loopback (the harness of propagation.py).

With one seed the download is one pipeline (16 blocks in flight); with three, the moving
window spans the three peers. On a 2-core machine the syncing node's own validation and
storage are the bottleneck, so the two figures show what parallel download costs or buys on
top of that, not the speed of a real network.

    python bench/sync.py                  # 10,000 blocks, about 2 minutes
    python bench/sync.py --blocks 2000
    python bench/sync.py --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Run from a checkout without installing: the harness, the repository and the test helpers.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from blocktools import ChainBuilder
from propagation import NodeProcess, dense_extend, stop_network, wait_all

from node.chainstate import ChainState
from node.core.params import REGTEST


def write_seed(datadir: Path, blocks: int) -> str:
    """A data directory holding ``blocks`` blocks; returns the tip's hash (hex)."""
    chain = ChainBuilder()
    dense_extend(chain, blocks)
    now = int(time.time())
    with ChainState.open(datadir, REGTEST) as state:
        for name in chain.branch(chain.tip):
            result = state.process_block(chain[name], now)
            assert result.accepted, result
    return chain[chain.tip].hash.hex()


async def sync_from(seed_dirs: list[Path], workdir: Path, tip: str) -> float:
    seeds = []
    try:
        for i, source in enumerate(seed_dirs):
            target = workdir / f"seed{i}"
            shutil.copytree(source, target)
            seeds.append(
                await NodeProcess.start(f"seed{i}", target, [], max_outbound=0, seed=100 + i)
            )
        started = time.time()
        # Seeds differ per node: equal seeds would give equal version nonces, and a node
        # takes a peer with its own nonce for itself.
        fresh = await NodeProcess.start(
            "fresh", workdir / "fresh", [s.listen for s in seeds], seed=999
        )
        try:
            await wait_all(lambda: tip in fresh.tip_times, timeout=1800)
            return fresh.tip_times[tip] - started
        finally:
            await fresh.stop()
    finally:
        await stop_network(seeds)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {"blocks": args.blocks, "cores": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="forklab-sync-") as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        tip = write_seed(root / "source", args.blocks)
        report["seed_written_s"] = time.perf_counter() - started
        for peers in (1, 3):
            work = root / f"run{peers}"
            work.mkdir()
            seconds = await sync_from([root / "source"] * peers, work, tip)
            report[f"from_{peers}_peer{'s' if peers > 1 else ''}"] = {
                "seconds": seconds,
                "blocks_per_s": args.blocks / seconds,
            }
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=10_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    report = asyncio.run(main_async(args))
    if args.json:
        print(json.dumps(report))
        return
    print(f"{args.blocks} blocks, {report['cores']} cores")
    print(f"{'':<16}{'seconds':>10}{'blocks/s':>12}")
    for label in ("from_1_peer", "from_3_peers"):
        row = report[label]
        print(f"{label:<16}{row['seconds']:>10.2f}{row['blocks_per_s']:>12.0f}")


if __name__ == "__main__":
    main()
