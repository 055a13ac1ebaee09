"""Crash test: a process writing to a chain store is killed with SIGKILL at random moments.

A child process (tests/store_crash_child.py) mines blocks and reorganisations into a store on
disk as fast as it can; the test kills it with SIGKILL after a random delay, twenty times, the
delays drawn from a fixed seed. Some kills land while the child is still opening the store (and
finishing the connection a previous kill interrupted); the others let it commit at least one
tip first, which after the first run is a reorganisation. After each kill the store must:

* open without error;
* hold a UTXO set equal to a replay from genesis of its active chain, computed here by the
  test's own replay and by ``ChainState.verify()``;
* have at least the work of the last tip the child reported as committed (nothing committed is
  lost).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from node.chainstate import ChainState
from node.core.params import REGTEST
from node.core.tx import OutPoint
from node.core.utxo import Coin

TESTS = Path(__file__).resolve().parent
CHILD = TESTS / "store_crash_child.py"
KILLS = 20
SEED = 20261125
WARM_UP = 110  # as in store_crash_child.py


def replay(chain: ChainState) -> dict[OutPoint, Coin]:
    """The UTXO set of the active chain, rebuilt from its stored blocks (genesis excluded)."""
    coins: dict[OutPoint, Coin] = {}
    for height in range(1, chain.height + 1):
        block_hash = chain.block_hash_at(height)
        assert block_hash is not None
        block = chain.get_block(block_hash)
        assert block is not None, f"active block at height {height} has no data"
        for tx in block.transactions:
            if not tx.is_coinbase():
                for txin in tx.inputs:
                    del coins[txin.prevout]
            for index, out in enumerate(tx.outputs):
                coins[OutPoint(tx.txid, index)] = Coin(
                    out.value, out.pubkey_hash, height, tx.is_coinbase()
                )
    return coins


def run_child_until_killed(datadir: Path, rng: random.Random, *, warm_up: bool) -> list[str]:
    """Start the child, kill it at a random moment, return the complete lines it printed.

    One kill in four lands anywhere from start-up through opening the store. The others wait
    for the child's first committed tip (during ``warm_up``, for the end of the warm-up: from
    then on a run's first tip is a reorganisation), then kill it a random moment later.
    """
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS.parent), str(TESTS)]))
    child = subprocess.Popen(
        [sys.executable, str(CHILD), str(datadir), str(rng.randrange(2**32))],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert child.stdout is not None
    seen: list[str] = []
    try:
        if not warm_up and rng.random() < 0.25:
            time.sleep(rng.uniform(0.0, 0.6))
        else:
            while True:
                line = child.stdout.readline().decode()
                assert line, (
                    "the child died: " + (child.stderr.read() if child.stderr else b"").decode()
                )
                seen.append(line)
                words = line.split()
                if words[0] == "tip" and (not warm_up or int(words[2]) >= WARM_UP):
                    break
            time.sleep(rng.uniform(0.0, 0.3))
        child.send_signal(signal.SIGKILL)
    finally:
        out, err = child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL, err.decode(errors="replace")
    text = "".join(seen) + out.decode()
    complete = text if text.endswith("\n") else text[: text.rfind("\n") + 1]
    return complete.splitlines()


def test_a_store_killed_at_random_moments_reopens_consistent(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    reorgs = 0
    reported_work = 0
    for round_ in range(KILLS):
        lines = run_child_until_killed(tmp_path, rng, warm_up=round_ == 0)
        tips = [line.split() for line in lines if line.startswith("tip ")]
        reorgs += sum(1 for t in tips if int(t[3]) > 0)
        with ChainState.open(tmp_path, REGTEST) as chain:
            if tips:
                last = chain.get_entry(bytes.fromhex(tips[-1][1]))
                assert last is not None, "a block reported committed is missing"
                reported_work = last.chain_work
            assert chain.tip.chain_work >= reported_work, "committed work was lost"
            assert dict(chain.store.iter_coins()) == replay(chain)
            report = chain.verify()
            assert report.ok, report.summary()
    assert reorgs > 0, "runs after the warm-up start with a reorganisation"
