"""Sustained transaction gossip: payments per second accepted by every node of a network.

A random network of ``--nodes`` real node processes on loopback (the harness of
propagation.py) first shares a chain with ``--txs`` spendable coins; then the payments are
handed to the nodes round-robin, in batches, as fast as they take them, and the clock stops
when every node's mempool holds every payment. The figure is payments / elapsed seconds,
network-wide: each payment was validated (signature included) by every node.

Reported beside it: the rate one node reaches alone (the same payments submitted to a single
node with no peers), so the cost of relaying is visible as a ratio.

    python bench/gossip.py                    # 10 nodes, 2,000 payments, about a minute
    python bench/gossip.py --nodes 5 --txs 500
    python bench/gossip.py --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Run from a checkout without installing: the harness, the repository and the test helpers.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from propagation import (
    NodeProcess,
    build_chain,
    start_network,
    stop_network,
    wait_all,
)

from node.core.tx import Transaction

BATCH = 50


async def flood(nodes: list[NodeProcess], pays: list[Transaction]) -> float:
    """Hand out every payment; seconds until every node holds all of them."""
    before = [n.tx_count for n in nodes]
    started = time.time()
    batches = [pays[i : i + BATCH] for i in range(0, len(pays), BATCH)]

    async def feed(node: NodeProcess, mine: list[list[Transaction]]) -> None:
        for batch in mine:
            await node.call("txs", hex=[tx.serialize().hex() for tx in batch])

    await asyncio.gather(*(feed(node, batches[i :: len(nodes)]) for i, node in enumerate(nodes)))
    await wait_all(
        lambda: all(n.tx_count - b >= len(pays) for n, b in zip(nodes, before, strict=True))
    )
    return max(n.tx_times[-1] for n in nodes) - started


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    preload, pays, _big, _small = build_chain(args.txs)
    report: dict[str, Any] = {"nodes": args.nodes, "payments": args.txs, "cores": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="forklab-gossip-") as tmp:
        alone = await NodeProcess.start("alone", Path(tmp) / "alone", [], max_outbound=0, seed=999)
        try:
            await alone.submit_blocks(preload)
            seconds = await flood([alone], pays)
        finally:
            await alone.stop()
        report["one_node"] = {"seconds": seconds, "tx_per_s": len(pays) / seconds}
        nodes = await start_network(args.nodes, Path(tmp) / "net")
        try:
            await nodes[0].submit_blocks(preload)
            tip = preload[-1].hash.hex()
            await wait_all(lambda: all(tip in n.tip_times for n in nodes))
            seconds = await flood(nodes, pays)
        finally:
            await stop_network(nodes)
        report["network"] = {"seconds": seconds, "tx_per_s": len(pays) / seconds}
    report["network_over_one_node"] = report["network"]["tx_per_s"] / report["one_node"]["tx_per_s"]
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--txs", type=int, default=2000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    report = asyncio.run(main_async(args))
    if args.json:
        print(json.dumps(report))
        return
    print(f"{args.txs} payments, {args.nodes} nodes, {report['cores']} cores")
    print(f"{'':<28}{'seconds':>10}{'payments/s':>14}")
    for label in ("one_node", "network"):
        row = report[label]
        print(f"{label:<28}{row['seconds']:>10.2f}{row['tx_per_s']:>14.0f}")
    print(f"network / one node: {report['network_over_one_node']:.2f}")


if __name__ == "__main__":
    main()
