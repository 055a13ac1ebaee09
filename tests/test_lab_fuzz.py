"""The fork fuzzer: random trouble, the invariants after it, and failures replayed exactly.

* delta debugging finds a 1-minimal failing sublist (a catalogue, and a property over random
  predicates);
* a fuzzer case is a function of its seed;
* 200 random cases of four nodes (partitions, heals, crashes, restarts, latency, double
  spends, selfish, censoring and double-spending miners) hold every invariant; this is the CI
  run, about 15 s on the 2-core test machine;
* ``--json`` gives per run its seed, the invariants checked and the trace digest, the same
  every time;
* a case written to a file replays in another process, under another hash seed, with the same
  trace digest;
* a failure is found, shrunk and replayed exactly: a test-only invariant (no reorganisation
  deeper than one block) fails on some seeds; the fuzzer shrinks the case to a scenario file
  from which removing any step makes the failure go away, and running that file gives the same
  violation with the same trace digest;
* cases the fuzzer once found are kept as scenarios that must now hold every invariant (each
  crashed the simulation before the strategy it names was fixed).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.commands import lab
from node.lab import invariants
from node.lab.fuzz import fuzz, generate, run_case, shrink
from node.lab.invariants import DEFAULT_INVARIANTS, Invariant
from node.lab.runner_sim import SimRunner
from node.lab.scenario import Scenario, Send
from node.lab.scenario_toml import dump_scenario, parse_scenario
from node.lab.shrink import ddmin

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("items", "needed", "minimal"),
    [
        (list(range(8)), {3}, [3]),
        (list(range(8)), {1, 6}, [1, 6]),
        (list(range(10)), {0, 4, 9}, [0, 4, 9]),
        (list(range(5)), set(), []),
        (list("abcdef"), {"f"}, ["f"]),
    ],
)
def test_ddmin_keeps_exactly_what_the_failure_needs(
    items: list[object], needed: set[object], minimal: list[object]
) -> None:
    assert ddmin(items, lambda candidate: needed <= set(candidate)) == minimal


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 30), max_size=20, unique=True), st.integers(1, 3))
def test_ddmin_finds_a_one_minimal_failing_subsequence(items: list[int], modulus: int) -> None:
    # Fails when the kept items hold at least two multiples of ``modulus``.
    def fails(candidate: list[int]) -> bool:
        return sum(1 for i in candidate if i % modulus == 0) >= 2

    if not fails(items):
        return
    result = ddmin(items, fails)
    assert fails(result)
    assert result == [i for i in items if i in result]  # a subsequence, in order
    for position in range(len(result)):
        assert not fails(result[:position] + result[position + 1 :])


def test_a_case_is_a_function_of_its_seed() -> None:
    assert generate(7) == generate(7)
    assert generate(7) != generate(8)
    assert len(generate(7, nodes=6).nodes) == 6
    case = generate(7)
    assert case.invariants == DEFAULT_INVARIANTS
    assert case.step_errors == "skip" and case.time_limit is not None
    with pytest.raises(ValueError, match="2 to 16 nodes"):
        generate(1, nodes=1)


def test_two_hundred_random_cases_hold_every_invariant() -> None:
    report = fuzz(1, 200)
    failed = [
        f"seed {run.seed}: {run.failure}: {run.violations or run.crash}"
        for run in report.runs
        if run.failed
    ]
    assert not failed, "\n".join(failed)
    assert [run.seed for run in report.runs] == list(range(1, 201))
    assert all(run.invariants == DEFAULT_INVARIANTS for run in report.runs)
    kinds = {type(step).__name__ for run in report.runs for step in run.scenario.steps}
    assert kinds >= {"Partition", "Heal", "Kill", "Restart", "SetLatency", "Send", "Mine", "Wait"}
    strategies = {m.strategy.kind for run in report.runs for m in run.scenario.miners}
    assert strategies == {"honest", "selfish", "censoring", "double-spend"}
    sends = [s for run in report.runs for s in run.scenario.steps if isinstance(s, Send)]
    assert any(s.conflicts for s in sends), "double spends were tried"
    assert sum(run.blocks for run in report.runs) > 1000


def test_json_gives_each_runs_seed_invariants_and_digest_the_same_every_time(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def run() -> dict[str, object]:
        parser = lab.argparse.ArgumentParser(prog="forklab")
        lab.register(parser.add_subparsers(dest="command", required=True))
        args = parser.parse_args(["fuzz", "--seed", "40", "--runs", "5", "--nodes", "3", "--json"])
        assert args.handler(args) == 0
        data: dict[str, object] = json.loads(capsys.readouterr().out)
        return data

    first, second = run(), run()
    runs = first["runs"]
    assert isinstance(runs, list) and [r["seed"] for r in runs] == [40, 41, 42, 43, 44]
    for entry in runs:
        assert entry["invariants"] == list(DEFAULT_INVARIANTS)
        assert len(entry["trace_digest"]) == 64 and entry["passed"] is True
    assert [r["trace_digest"] for r in runs] == [
        r["trace_digest"]
        for r in second["runs"]  # type: ignore[attr-defined]
    ]
    assert first["failures"] == [] and first["cases"] == 5


async def _no_deep_reorg(runner: SimRunner) -> list[str]:
    return [
        f"{count} reorganisations of depth {depth}"
        for depth, count in runner.reorgs.items()
        if depth > 1
    ]


@pytest.fixture
def no_deep_reorg() -> Iterator[str]:
    """A test-only invariant that fuzzer cases with a partition and mining on both sides break."""
    name = "test-no-deep-reorg"
    invariants.register(Invariant(name, "no reorganisation deeper than one block", _no_deep_reorg))
    yield name
    invariants.unregister(name)


def _with(case: Scenario, invariant: str) -> Scenario:
    return dataclasses.replace(case, invariants=(*case.invariants, invariant))


def test_a_failure_is_shrunk_to_a_file_that_replays_it_exactly(no_deep_reorg: str) -> None:
    failing = None
    for seed in range(1, 60):
        run = run_case(_with(generate(seed), no_deep_reorg))
        if run.failed:
            failing = run
            break
    assert failing is not None, "some early seed makes a reorganisation deeper than one block"
    assert failing.failure == no_deep_reorg

    failure = shrink(failing)
    minimal = failure.shrunk.scenario
    assert failure.shrunk.failure == no_deep_reorg
    assert len(minimal.steps) < len(failing.scenario.steps)

    replayed = run_case(parse_scenario(failure.reproduction))
    assert replayed.failure == no_deep_reorg
    assert replayed.violations == failure.shrunk.violations
    assert replayed.trace_digest == failure.shrunk.trace_digest
    assert f"--seed {failing.seed}" in failure.reproduction.splitlines()[0]

    for position in range(len(minimal.steps)):
        fewer = minimal.with_steps(minimal.steps[:position] + minimal.steps[position + 1 :])
        assert run_case(fewer).failure != no_deep_reorg, f"step {position + 1} is not needed"


def test_a_case_written_to_a_file_replays_in_another_process_with_the_same_digest(
    tmp_path: Path,
) -> None:
    case = generate(3)
    here = run_case(case)
    path = tmp_path / "fuzz-3.toml"
    path.write_text(dump_scenario(case))
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "node", "scenario", "run", str(path), "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    there = json.loads(done.stdout)
    assert there["trace_digest"] == here.trace_digest
    assert [i["name"] for i in there["invariants"]] == list(DEFAULT_INVARIANTS)


FOUND_BEFORE = {
    "an attacker without a mature coin": """\
        [scenario]
        name = "poor-attacker"
        seed = 5
        nodes = ["n1", "n2", "n3"]
        wallets = ["alice", "bob"]
        invariants = ["converge", "utxo-replay", "supply", "unique-tx", "no-crash"]

        [params]
        coinbase_maturity = 3

        [[miner]]
        name = "m1"
        node = "n1"
        share = 1.0

        [[miner]]
        name = "m2"
        node = "n3"
        share = 0.05
        strategy = "double-spend"
        merchant = "bob"
        amount = "4"
        start_height = 7
        merchant_node = "n2"

        [[step]]
        do = "mine"
        blocks = 6

        [[step]]
        do = "assert"
        that = "found(m2) == 0"
        """,
    "a censor whose node crashed while it judged a block": """\
        [scenario]
        name = "fallen-censor"
        seed = 1724
        topology = "mesh"
        latency = 1.0
        nodes = ["n1", "n2", "n3", "n4"]
        wallets = ["alice", "bob"]
        invariants = ["converge", "utxo-replay", "supply", "unique-tx", "no-crash"]

        [params]
        coinbase_maturity = 3

        [[miner]]
        name = "m2"
        node = "n3"
        share = 0.5
        strategy = "censoring"
        addresses = ["bob"]
        orphan = true
        give_up_after = 2

        [[step]]
        do = "mine"
        node = "n3"

        [[step]]
        do = "kill"
        node = "n3"
        """,
    "a selfish pool whose relay node crashed": """\
        [scenario]
        name = "lonely-pool"
        seed = 20
        topology = "mesh"
        nodes = ["n1", "n2", "n3", "n4"]
        invariants = ["converge", "utxo-replay", "supply", "unique-tx", "no-crash"]

        [[miner]]
        name = "m1"
        node = "n4"
        share = 0.5

        [[miner]]
        name = "m3"
        node = "n3"
        share = 0.5
        strategy = "selfish"
        publish_via = ["n2"]

        [[step]]
        do = "kill"
        node = "n2"

        [[step]]
        do = "mine"
        blocks = 12
        """,
}


@pytest.mark.parametrize("text", FOUND_BEFORE.values(), ids=FOUND_BEFORE.keys())
def test_cases_the_fuzzer_found_now_hold_every_invariant(text: str) -> None:
    run = run_case(parse_scenario(textwrap.dedent(text)))
    assert not run.failed, run.crash or run.violations
