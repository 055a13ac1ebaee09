"""The same scenario file on real node processes: ``forklab scenario run --real``.

* fork-and-converge runs on a devnet of four real node processes on loopback, made for the run
  in a temporary directory: the partition forks the chain, the heal reorganises the west side
  onto the east's branch, the payment goes back to the mempools and is confirmed again; every
  assert of the lesson holds, as in the simulator, and the report reads the tree from the
  nodes (two stale blocks, two reorganisations of depth two); each step is reported as it
  begins and as it ends, in order;
* censorship-policy: the censoring pool's node leaves the donation out of its templates, the
  honest minority confirms it, later than the ordinary payment (a few seconds at half a second
  a block);
* double-spend: the attacker's node is cut off, pays the merchant through the public nodes,
  mines in private, and is reconnected once the merchant saw three confirmations: the network
  reorganises at least three blocks deep and the merchant loses the payment;
* afterwards nothing is left: no process, no file;
* a scenario real nodes cannot run (changed constants) is refused with the reasons, before
  any process starts.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from node.lab import report
from node.lab.runner_real import run_real, unsupported
from node.lab.scenario import ScenarioError
from node.lab.scenarios import builtin


def test_fork_and_converge_passes_on_real_nodes(tmp_path: Path) -> None:
    narrated: list[tuple[str, int]] = []
    result = run_real(
        builtin("fork-and-converge"),
        workdir=tmp_path,
        on_step_start=lambda index, _step: narrated.append(("start", index)),
        on_step=lambda outcome: narrated.append(("end", outcome.index)),
    )
    failures = [f"step {s.index + 1}: {s.description}: {s.detail}" for s in result.failed_steps]
    assert result.passed, "\n".join(failures)
    assert result.backend == "real" and result.trace_digest is None
    steps = range(len(builtin("fork-and-converge").steps))
    assert narrated == [call for i in steps for call in (("start", i), ("end", i))]

    data = report.as_json(result)
    assert data["reorgs"]["max_depth"] == 2
    assert data["chain"]["stale_blocks"] == 2
    stale = [b for b in data["blocks"] if not b["main"]]
    assert [b["miner"] for b in stale] == ["@n1", "@n1"]
    assert set(data["tips"]) == {"n1", "n2", "n3", "n4"}
    (payment,) = data["transactions"]
    assert payment["confirmations"] == 1

    assert list(tmp_path.iterdir()) == [], "the devnet was taken down and wiped"


ATTACK_BLOCK_TIME = 0.5
"""Real seconds between blocks for the attack lessons: a run of a few seconds."""


@pytest.mark.parametrize("name", ["censorship-policy", "double-spend"])
def test_an_attack_lesson_passes_on_real_nodes(name: str, tmp_path: Path) -> None:
    started = time.monotonic()
    result = run_real(builtin(name), workdir=tmp_path, block_time=ATTACK_BLOCK_TIME)
    elapsed = time.monotonic() - started
    failures = [f"step {s.index + 1}: {s.description}: {s.detail}" for s in result.failed_steps]
    assert result.passed, "\n".join(failures)
    assert elapsed < 60, f"{name} took {elapsed:.1f} s"
    data = report.as_json(result)
    shares = {m["name"]: m for m in data["miners"]}
    if name == "double-spend":
        assert data["reorgs"]["max_depth"] >= 3
        assert data["chain"]["stale_blocks"] >= 3  # the honest blocks that confirmed the payment
        assert shares["attacker"]["main"] >= 4
    else:
        donation = next(t for t in data["transactions"] if t["label"] == "donation")
        (holder,) = [b for b in data["blocks"] if b["main"] and b["height"] == donation["height"]]
        assert holder["miner"] == "honest", "only the honest minority confirms the donation"
    assert list(tmp_path.iterdir()) == []


def test_a_scenario_real_nodes_cannot_run_is_refused_before_anything_starts(
    tmp_path: Path,
) -> None:
    reasons = unsupported(builtin("monetary-policy"))
    assert reasons
    with pytest.raises(ScenarioError, match="cannot run on real nodes") as caught:
        run_real(builtin("monetary-policy"), workdir=tmp_path)
    assert reasons[0] in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_which_built_ins_run_on_real_nodes() -> None:
    for name in (
        "fork-and-converge",
        "concentration",
        "geography",
        "censorship-policy",
        "censorship-orphan",
        "double-spend",
        "double-spend-minority",
        "selfish-mining",
    ):
        assert unsupported(builtin(name)) == [], name
    assert any("[params]" in r for r in unsupported(builtin("monetary-policy")))
