"""The same seed gives the same trace, byte for byte: in one process, and across processes.

One busy run exercises everything that could make a simulation drift: a ring of six nodes
with jitter, loss and limited bandwidth on some links, a node whose clock is off, honest,
selfish and censoring miners, payments (signatures, mempools, compact blocks), a partition
and its heal, a crash and a restart from disk. Its trace digest must be

* the same when the run is repeated in this process,
* different for another seed (the digest really depends on what happened),
* the same in two fresh interpreters with different hash seeds (``PYTHONHASHSEED``): nothing
  in the simulation or the node code it runs may depend on the order of a set of strings or
  bytes.

Run as a script, this file prints the digest of the run for a seed (``python
tests/test_lab_determinism.py 3``), which is how the cross-process case runs it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from node.core.tx import COIN
from node.lab import Censoring, LinkSpec, Selfish, Simulation, simulate, topology

ROOT = Path(__file__).resolve().parents[1]


async def busy_run(sim: Simulation) -> str:
    names = ["a", "b", "c", "d", "e", "f"]
    dials = topology("ring", names, sim.network.rng)
    for name in names:
        await sim.add_node(
            name,
            connect=dials[name],
            persistent=name == "e",
            clock_offset=30.0 if name == "f" else 0.0,
        )
    sim.set_link("a", "b", LinkSpec(latency=0.2, jitter=0.1, loss=0.05))
    sim.set_link("c", "d", LinkSpec(latency=0.05, bandwidth=50_000))
    await sim.wait_connected()
    await sim.add_miner("alice", node="a", share=0.4)
    await sim.add_miner("sam", node="c", share=0.3, strategy=Selfish())
    await sim.add_miner("cora", node="e", share=0.3, strategy=Censoring(["carol"]))
    for _ in range(3):
        await sim.mine_on("alice")  # coins for the payments, whatever the seed
    while sim.node("b").height < 104:
        await sim.mine(1)
    await sim.pay("alice", "carol", 5 * COIN, node="b")
    await sim.pay("alice", "dave", 2 * COIN, node="f")
    await sim.mine(10)
    sim.partition(["a", "b", "c"], ["d", "e", "f"])
    await sim.mine(8)
    sim.heal()
    await sim.kill("e")
    await sim.mine(4)
    await sim.restart("e")
    await sim.settle()
    return sim.trace.digest


def digest(seed: int) -> str:
    return simulate(busy_run, seed=seed)


def test_the_same_seed_gives_the_same_digest_and_another_seed_another() -> None:
    first = digest(3)
    assert digest(3) == first
    assert digest(4) != first


def test_the_digest_is_the_same_in_fresh_processes_whatever_their_hash_seed() -> None:
    expected = digest(3)
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(ROOT)}
        result = subprocess.run(
            [sys.executable, __file__, "3"],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=120,
            check=True,
        )
        assert result.stdout.strip() == expected, f"PYTHONHASHSEED={hash_seed}"


if __name__ == "__main__":
    print(digest(int(sys.argv[1])))
