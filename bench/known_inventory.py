"""Memory and speed of a peer's known-inventory set: the old ordered dict against the filter.

Each peer remembers the hashes it is known to have (:mod:`node.p2p.known`). This fills one of
each with 20,000 random 32-byte hashes (a full set: what a long-connected peer holds) and
reports the bytes allocated for it (``tracemalloc``, the hashes themselves excluded), then the
time per ``add`` of a new hash and per lookup of a present and of an absent one. Rounds of the
two are interleaved, and each figure is the median of the rounds, so the ratios stay fair on a
noisy machine.

    python bench/known_inventory.py           # human table, a few seconds
    python bench/known_inventory.py --json    # one JSON object
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
import tracemalloc
from collections import OrderedDict
from pathlib import Path
from typing import Protocol

# Run from a checkout without installing: put the repository root first on the path.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from node.p2p.known import InventoryFilter
from node.p2p.peer import KNOWN_INVENTORY

ROUNDS = 5


class KnownSet(Protocol):
    def add(self, item_hash: bytes) -> None: ...
    def __contains__(self, item_hash: object) -> bool: ...


class OrderedKnown:
    """The set as it was: an ordered dict of whole hashes, the oldest dropped past the cap."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.items: OrderedDict[bytes, None] = OrderedDict()

    def add(self, item_hash: bytes) -> None:
        self.items[item_hash] = None
        self.items.move_to_end(item_hash)
        if len(self.items) > self.capacity:
            self.items.popitem(last=False)

    def __contains__(self, item_hash: object) -> bool:
        return item_hash in self.items


def make(kind: str) -> KnownSet:
    if kind == "ordered dict":
        return OrderedKnown(KNOWN_INVENTORY)
    return InventoryFilter(KNOWN_INVENTORY, random.getrandbits(64))


def measure(kind: str, hashes: list[bytes], fresh: list[bytes]) -> dict[str, float]:
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    known = make(kind)
    for h in hashes:
        known.add(h)
    size = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    start = time.perf_counter()
    hits = sum(1 for h in hashes if h in known)
    hit_ns = (time.perf_counter() - start) / len(hashes) * 1e9
    start = time.perf_counter()
    misses = sum(1 for h in fresh if h in known)
    miss_ns = (time.perf_counter() - start) / len(fresh) * 1e9
    start = time.perf_counter()
    for h in fresh:
        known.add(h)
    add_ns = (time.perf_counter() - start) / len(fresh) * 1e9
    assert hits >= KNOWN_INVENTORY * 0.99 and misses == 0, (kind, hits, misses)
    return {"bytes": size, "add_ns": add_ns, "hit_ns": hit_ns, "miss_ns": miss_ns}


def run() -> dict[str, dict[str, float]]:
    rng = random.Random(1)
    kinds = ("ordered dict", "filter")
    rounds: dict[str, list[dict[str, float]]] = {k: [] for k in kinds}
    for _ in range(ROUNDS):
        hashes = [rng.randbytes(32) for _ in range(KNOWN_INVENTORY)]
        fresh = [rng.randbytes(32) for _ in range(KNOWN_INVENTORY // 2)]
        for kind in kinds:
            rounds[kind].append(measure(kind, hashes, fresh))
    return {
        kind: {key: statistics.median(r[key] for r in results) for key in results[0]}
        for kind, results in rounds.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    result = run()
    old, new = result["ordered dict"], result["filter"]
    if args.json:
        print(
            json.dumps(
                {"items": KNOWN_INVENTORY, **result, "memory_ratio": old["bytes"] / new["bytes"]}
            )
        )
        return
    print(f"known inventory of one peer, {KNOWN_INVENTORY:,} hashes, median of {ROUNDS} rounds")
    print(f"{'':14}{'memory':>12}{'add':>10}{'hit':>10}{'miss':>10}")
    for kind, r in result.items():
        print(
            f"{kind:14}{r['bytes'] / 1e6:>9.2f} MB{r['add_ns']:>7.0f} ns"
            f"{r['hit_ns']:>7.0f} ns{r['miss_ns']:>7.0f} ns"
        )
    print(f"memory: {old['bytes'] / new['bytes']:.1f}x smaller")


if __name__ == "__main__":
    main()
