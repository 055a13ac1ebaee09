"""Scenarios in the simulator: the built-in lessons, the timeline's rules, and the report.

* every built-in scenario runs in the simulator and every one of its asserts holds: each is
  the test of the lesson it teaches (a fork heals onto the most work, a majority reverses its
  payment and a minority cannot, censorship delays or orphans, selfish mining pays at 40%,
  latency makes stale blocks, the subsidy runs out at the cap);
* a run is a function of its seed: the same seed gives the same trace digest, another seed
  another run;
* a failed assert or wait is reported and the steps go on; a step that cannot be done fails the
  run, or is skipped if the scenario says so; a run longer than its time limit is a hang;
* the report tells the tree, the stale blocks, the reorganisations, each miner's share and the
  confirmation times, as text, JSON and SVG, and they agree with each other.
"""

from __future__ import annotations

import json
import textwrap
import time
import xml.etree.ElementTree as ET

import pytest

from node.lab import plot, report
from node.lab.outcome import Status
from node.lab.runner_sim import run_scenario
from node.lab.scenario_toml import parse_scenario
from node.lab.scenarios import builtin, names

SVG = "{http://www.w3.org/2000/svg}"


@pytest.mark.parametrize("name", names())
def test_every_built_in_scenario_passes_its_asserts_in_the_simulator(name: str) -> None:
    scenario = builtin(name)
    started = time.perf_counter()
    result = run_scenario(scenario)
    elapsed = time.perf_counter() - started
    failures = [f"step {s.index + 1}: {s.description}: {s.detail}" for s in result.failed_steps]
    assert result.passed, "\n".join(failures) or result.crash
    assert any(step.kind == "assert" for step in result.steps), "a lesson asserts its outcome"
    assert result.analysis.blocks, "every lesson mines"
    assert elapsed < 30, f"{name} took {elapsed:.1f} s"


def test_the_same_seed_gives_the_same_run_and_another_seed_another() -> None:
    scenario = builtin("concentration")
    first = run_scenario(scenario)
    again = run_scenario(scenario)
    other = run_scenario(scenario, seed=2)
    assert first.trace_digest == again.trace_digest
    assert report.as_json(first)["blocks"] == report.as_json(again)["blocks"]
    assert other.trace_digest != first.trace_digest
    assert other.seed == 2


FAILING = """\
[scenario]
name = "failing"
nodes = ["a", "b"]

[[step]]
do = "mine"
node = "a"

[[step]]
do = "wait"
until = "converged"

[[step]]
do = "assert"
that = "height(b) == 5"
message = "b cannot be at 5"

[[step]]
do = "kill"
node = "b"

[[step]]
do = "kill"
node = "b"

[[step]]
do = "wait"
until = "converged and height(b) == 1"
timeout = 30

[[step]]
do = "restart"
node = "b"

[[step]]
do = "wait"
until = "converged"
timeout = 600
"""


def test_failed_steps_are_reported_and_the_steps_go_on() -> None:
    result = run_scenario(parse_scenario(FAILING))
    statuses = [s.status for s in result.steps]
    assert statuses == [
        Status.OK,
        Status.OK,
        Status.FAILED,  # the assert
        Status.OK,
        Status.FAILED,  # killing a node that is down
        Status.FAILED,  # the wait: b is down, its height is -1
        Status.OK,
        Status.OK,  # b came back and caught up
    ]
    assert not result.passed
    assert result.steps[2].detail == "b cannot be at 5 (height(b) = 1)"
    assert "node b is down" in result.steps[4].detail
    assert result.steps[5].detail.startswith("not within 30 s")


def test_a_scenario_may_skip_the_steps_it_cannot_do() -> None:
    text = FAILING.replace('nodes = ["a", "b"]', 'nodes = ["a", "b"]\nstep_errors = "skip"')
    result = run_scenario(parse_scenario(text))
    assert result.steps[4].status is Status.SKIPPED
    assert result.steps[2].status is Status.FAILED  # asserts and waits still fail


def test_a_run_beyond_its_time_limit_is_reported_as_a_hang() -> None:
    text = textwrap.dedent(
        """\
        [scenario]
        name = "slow"
        nodes = ["a"]
        time_limit = 3600

        [[step]]
        do = "wait"
        seconds = 7200
        """
    )
    result = run_scenario(parse_scenario(text))
    again = run_scenario(parse_scenario(text))
    assert result.crash == "the run did not finish within 3600 s of simulated time (a hang)"
    assert result.duration == pytest.approx(3600)
    assert not result.passed
    assert again.trace_digest == result.trace_digest


def test_the_report_tells_the_fork_as_text_json_and_svg() -> None:
    result = run_scenario(builtin("fork-and-converge"))
    data = report.as_json(result)
    json.dumps(data)  # plain JSON all the way down
    assert data["scenario"] == "fork-and-converge" and data["passed"] is True
    assert data["backend"] == "simulator" and data["trace_digest"] == result.trace_digest
    assert data["reorgs"] == {"count": 2, "max_depth": 2, "by_depth": {"2": 2}}
    chain = data["chain"]
    assert chain["stale_blocks"] == 2
    assert chain["height"] == max(b["height"] for b in data["blocks"] if b["main"])
    stale = [b for b in data["blocks"] if not b["main"]]
    assert [b["miner"] for b in stale] == ["@n1", "@n1"]
    assert {t["height"] for t in data["tips"].values()} == {chain["height"]}
    (payment,) = data["transactions"]
    assert payment["label"] == "payment" and payment["confirmations"] == 1
    assert payment["delay"] == payment["confirmed_at"] - payment["sent_at"] >= 0
    assert chain["supply"] == f"{50 * chain['height']}.00000000"

    text = report.as_text(result)
    assert "fork-and-converge (simulator, seed 1): passed" in text
    assert "reorgs      2: depth 2 x2" in text
    for block in stale:
        assert block["hash"][:16] in text  # both stale blocks are drawn beside the best chain

    svg = ET.fromstring(plot.svg(result))
    circles = [c for c in svg.findall(f".//{SVG}circle") if c.find(f"{SVG}title") is not None]
    mined = [b for b in data["blocks"] if b["miner"] != "funding"]
    assert len(circles) == len(mined)  # every block after funding, each with its tooltip
    legend = [t.text for t in svg.findall(f".//{SVG}text")]
    assert {"@n1", "@n2", "@n4"} <= set(legend)  # who mined: the west, the east, the last block
    hollow = [c for c in circles if c.get("fill") == "white"]
    assert len(hollow) == len(stale)


def test_each_miners_share_of_the_chain_is_reported_beside_its_hash_power() -> None:
    result = run_scenario(builtin("selfish-mining"))
    miners = {m["name"]: m for m in report.as_json(result)["miners"]}
    assert miners["selfish"]["hash_share"] == pytest.approx(0.4)
    assert sum(m["main_share"] for m in miners.values()) == pytest.approx(1.0)
    for m in miners.values():
        assert m["main"] <= m["found"]
    bars = ET.fromstring(plot.svg(result)).findall(f".//{SVG}rect")
    assert len(bars) == 1 + 2 * len(miners)  # the background, and two bars per miner
