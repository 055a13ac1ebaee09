"""The fork lab's simulator at scale: 100 real nodes, 1,000 blocks, on two cores.

Builds a network of ``--nodes`` real nodes (the node code unchanged, each with an in-memory
chain) in a ``random:K`` topology (each node dials K random others; Bitcoin dials 8), links of
50 ms one way with up to 20 ms of jitter, and ten equal honest miners on nodes spread over the
network. Then:

* ``quiet hour``: one hour of network time with nobody mining: what the nodes' own timers
  (maintenance ticks, pings, headers polls) cost, which grows with simulated time, not blocks;
* ``mining``: ``--blocks`` blocks at one per ``--interval`` seconds, in ten steps, each step's
  wall time and resident memory printed, so growth with the chain length shows (time per block
  should stay flat; memory grows with the chains every node stores, and nothing else);
* ``settle``: until every node has the same tip;
* ``quiet after``: six more hours of network time without blocks, to show that memory grows
  with the chain and with nothing else: timers, pings and polls must not add to it.

Reported: wall time, virtual time and their ratio, microseconds per block per node, stale
blocks, reorganisations, trace events and digest (the same arguments give the same digest),
resident memory (after start-up, at each step, after the quiet hours, and the peak) and its
growth per node per block in the first and the second half of the blocks (equal if only the
chains grow; larger in the second half if something accumulates), and the time the garbage
collector took. One run per invocation; the machine is noisy, so compare ratios within a run,
or medians of several.

    python bench/simulation.py                         # 100 nodes, 1,000 blocks, 600 s apart
    python bench/simulation.py --interval 60           # the same blocks, a tenth of the time
    python bench/simulation.py --nodes 20 --blocks 200 # a quick look
    python bench/simulation.py --json                  # one JSON object
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Run from a checkout without installing: put the repository root first on the path.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from node.lab import LinkSpec, Simulation, Trace, derive_rng, simulate, topology

MINERS = 10
STEPS = 10
QUIET_SECONDS = 3600.0
QUIET_AFTER_SECONDS = 6 * 3600.0
LINK = LinkSpec(latency=0.05, jitter=0.02)


def rss_mb() -> float:
    """Resident memory now (Linux), else the peak so far."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class CollectorTimer:
    """Wall time the cyclic garbage collector spends, from ``gc.callbacks``."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.collections = 0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started
            self.collections += 1


def growth_kb(steps: list[dict[str, float]], first: int, last: int, nodes: int) -> float:
    """Resident memory added per node per block between two steps, kilobytes."""
    blocks = steps[last]["blocks"] - steps[first]["blocks"]
    return (steps[last]["rss_mb"] - steps[first]["rss_mb"]) * 1024 / blocks / nodes


def run(
    nodes: int,
    blocks: int,
    interval: float,
    degree: int,
    seed: int,
    *,
    progress: Callable[[str], None] = lambda line: None,
) -> dict[str, Any]:
    async def body(sim: Simulation) -> dict[str, Any]:
        names = [f"n{i}" for i in range(nodes)]
        dials = topology(f"random:{degree}", names, derive_rng(seed, "topology"))
        started = time.perf_counter()
        for name in names:
            await sim.add_node(name, connect=dials[name])
        await sim.wait_connected()
        setup = time.perf_counter() - started
        rss_setup = rss_mb()
        progress(f"start and connect        {setup:8.1f} s, {rss_setup:.0f} MB")

        started = time.perf_counter()
        await sim.run_for(QUIET_SECONDS)
        quiet = time.perf_counter() - started
        progress(f"a quiet hour (timers)    {quiet:8.1f} s")
        progress(f"{'blocks':>10} {'step s':>8} {'ms/block':>9} {'RSS MB':>8}")

        for i in range(MINERS):
            await sim.add_miner(f"pool{i}", node=names[i * nodes // MINERS], share=1 / MINERS)
        steps: list[dict[str, float]] = [{"blocks": 0, "seconds": 0.0, "rss_mb": rss_mb()}]
        mined = 0
        started = time.perf_counter()
        virtual_start = sim.now
        for step in range(STEPS):
            count = blocks * (step + 1) // STEPS - mined
            step_start = time.perf_counter()
            await sim.mine(count)
            mined += count
            seconds = time.perf_counter() - step_start
            steps.append({"blocks": mined, "seconds": seconds, "rss_mb": rss_mb()})
            progress(
                f"{mined:>10,} {seconds:>8.1f} {seconds / count * 1000:>9.1f} {rss_mb():>8.0f}"
            )
        mining = time.perf_counter() - started
        settle_start = time.perf_counter()
        converged = await sim.settle()
        settle = time.perf_counter() - settle_start
        rss_settled = rss_mb()
        await sim.run_for(QUIET_AFTER_SECONDS)
        rss_quiet = rss_mb()
        progress(
            f"{QUIET_AFTER_SECONDS / 3600:.0f} quiet hours after    {rss_settled:8.0f} -> "
            f"{rss_quiet:.0f} MB"
        )
        chain = sim.main_chain()
        half = STEPS // 2
        return {
            "rss_after_setup_mb": rss_setup,
            "rss_before_mining_mb": steps[0]["rss_mb"],
            "kb_per_node_per_block_first_half": growth_kb(steps, 0, half, nodes),
            "kb_per_node_per_block_second_half": growth_kb(steps, half, STEPS, nodes),
            "rss_settled_mb": rss_settled,
            "rss_after_quiet_hours_mb": rss_quiet,
            "setup_seconds": setup,
            "quiet_hour_seconds": quiet,
            "mining_seconds": mining,
            "settle_seconds": settle,
            "virtual_seconds": sim.now - virtual_start,
            "steps": steps[1:],
            "converged": converged,
            "height": sim.node(names[0]).height,
            "main_chain": len(chain),
            "stale_blocks": len(sim.blocks) - len(chain),
            "reorgs": sum(sim.reorgs.values()),
            "deepest_reorg": max(sim.reorgs, default=0),
        }

    trace = Trace(keep=False)
    collector = CollectorTimer()
    gc.callbacks.append(collector)
    started = time.perf_counter()
    try:
        report = simulate(body, seed=seed, interval=interval, default_link=LINK, trace=trace)
    finally:
        gc.callbacks.remove(collector)
    total = time.perf_counter() - started
    per_block = report["mining_seconds"] / blocks
    return {
        "benchmark": "simulation",
        "python": platform.python_version(),
        "nodes": nodes,
        "blocks": blocks,
        "interval": interval,
        "topology": f"random:{degree}",
        "seed": seed,
        **report,
        "total_seconds": total,
        "speedup": report["virtual_seconds"] / report["mining_seconds"],
        "ms_per_block": per_block * 1000,
        "us_per_block_per_node": per_block / nodes * 1e6,
        "trace_events": len(trace),
        "trace_digest": trace.digest,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "gc_seconds": collector.seconds,
        "gc_collections": collector.collections,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=100, help="nodes (default 100)")
    parser.add_argument("--blocks", type=int, default=1000, help="blocks to mine (default 1000)")
    parser.add_argument(
        "--interval", type=float, default=600.0, help="seconds between blocks (default 600)"
    )
    parser.add_argument("--degree", type=int, default=8, help="peers each node dials (default 8)")
    parser.add_argument("--seed", type=int, default=1, help="run seed (default 1)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if args.nodes < MINERS or args.blocks < STEPS:
        parser.error(f"at least {MINERS} nodes and {STEPS} blocks")
    if not args.json:
        print(
            f"fork lab simulator: {args.nodes} nodes (random:{args.degree}, 50 ms links), "
            f"{args.blocks} blocks {args.interval:g} s apart, {MINERS} miners, seed {args.seed}"
        )
    show = (lambda line: None) if args.json else (lambda line: print(line, flush=True))
    r = run(args.nodes, args.blocks, args.interval, args.degree, args.seed, progress=show)
    if args.json:
        print(json.dumps(r))
        return
    days = r["virtual_seconds"] / 86400
    print(
        f"mining                   {r['mining_seconds']:8.1f} s for {days:.1f} days of network "
        f"time ({r['speedup']:,.0f}x real time)"
    )
    print(
        f"per block                {r['ms_per_block']:8.1f} ms "
        f"({r['us_per_block_per_node']:.0f} us per node)"
    )
    print(
        f"settle                   {r['settle_seconds']:8.1f} s; converged {r['converged']}, "
        f"height {r['height']}, {r['stale_blocks']} stale, {r['reorgs']} reorgs "
        f"(deepest {r['deepest_reorg']})"
    )
    print(f"trace                    {r['trace_events']:,} events, {r['trace_digest']}")
    print(
        f"memory                   {r['rss_before_mining_mb']:.0f} MB before mining, peak "
        f"{r['peak_rss_mb']:.0f} MB; per node per block "
        f"{r['kb_per_node_per_block_first_half']:.2f} KB (first half), "
        f"{r['kb_per_node_per_block_second_half']:.2f} KB (second half); "
        f"quiet hours after: {r['rss_settled_mb']:.0f} -> {r['rss_after_quiet_hours_mb']:.0f} MB"
    )
    print(
        f"garbage collector        {r['gc_seconds']:8.1f} s in {r['gc_collections']:,} "
        f"collections; took {r['total_seconds']:.0f} s"
    )


if __name__ == "__main__":
    main()
