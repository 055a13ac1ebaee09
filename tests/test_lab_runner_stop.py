"""Both runners' step callbacks and their cooperative stop.

* ``on_step_start`` is called as each step begins and ``on_step`` as it ends: for every step,
  in order, the start before the end, in the simulator and on real nodes;
* a simulated run of minutes (a year of blocks), stopped from another thread, ends within a second
  of the event being set: the step under way and the steps not begun say ``stopped``, the run
  did not pass, nothing crashed, the report says so, and the thread that watched the event is
  gone;
* a run whose event is set before it begins runs no step (none starts) and reports them all
  stopped;
* giving a simulated run a ``stop`` it never sets changes nothing: the same trace digest;
* a real run stopped in the middle of a long wait ends within seconds, its devnet taken down:
  no process of it left, no file.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from mining_harness import alive

from node.devnet.state import DevnetPaths, load
from node.lab import report
from node.lab.outcome import STOPPED_BEFORE, STOPPED_DURING, ScenarioResult, Status, StepOutcome
from node.lab.runner_real import run_real
from node.lab.runner_sim import run_scenario
from node.lab.scenario import Scenario, Step
from node.lab.scenario_toml import parse_scenario
from node.lab.scenarios import builtin

STOP_WITHIN = 1.0
"""Wall seconds a simulated run may take to end once its stop event is set."""


class Calls:
    """What the callbacks saw, in order: ("start", index) and ("end", index)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int]] = []

    def start(self, index: int, step: Step) -> None:
        self.seen.append(("start", index))

    def end(self, outcome: StepOutcome) -> None:
        self.seen.append(("end", outcome.index))


def each_step_in_order(scenario: Scenario) -> list[tuple[str, int]]:
    return [call for i in range(len(scenario.steps)) for call in (("start", i), ("end", i))]


def stop_later(stop: threading.Event, seconds: float, at: list[float]) -> threading.Thread:
    """A thread that sets ``stop`` after ``seconds`` and notes when in ``at``."""

    def later() -> None:
        time.sleep(seconds)
        at.append(time.perf_counter())
        stop.set()

    thread = threading.Thread(target=later)
    thread.start()
    return thread


def assert_stopped_at(result: ScenarioResult, index: int) -> None:
    """Steps before ``index`` ran, ``index`` was stopped during, the rest never began."""
    steps = result.scenario.steps
    assert [s.index for s in result.steps] == list(range(len(steps)))
    assert all(s.status is not Status.STOPPED for s in result.steps[:index])
    assert (result.steps[index].status, result.steps[index].detail) == (
        Status.STOPPED,
        STOPPED_DURING,
    )
    assert all(
        (s.status, s.detail) == (Status.STOPPED, STOPPED_BEFORE) for s in result.steps[index + 1 :]
    )
    assert result.stopped and not result.passed and result.crash is None


def test_step_callbacks_come_in_order_start_before_end_in_the_simulator() -> None:
    scenario = builtin("fork-and-converge")
    calls = Calls()
    result = run_scenario(scenario, on_step=calls.end, on_step_start=calls.start)
    assert result.passed and not result.stopped
    assert calls.seen == each_step_in_order(scenario)


LONG_MINING = """\
[scenario]
name = "long-mining"
topology = "mesh"
nodes = ["a", "b", "c"]

[[miner]]
name = "one"
node = "a"
share = 0.5

[[miner]]
name = "two"
node = "b"
share = 0.5

[[step]]
do = "note"
text = "a year of mining follows"

[[step]]
do = "wait"
seconds = 31536000
mining = true

[[step]]
do = "assert"
that = "height(c) > 0"
"""
"""A year of blocks (about 52,000) in step 2: minutes of simulation, however fast the machine."""


def test_a_long_simulated_run_stops_within_a_second_of_the_event() -> None:
    scenario = parse_scenario(LONG_MINING)
    stop = threading.Event()
    calls = Calls()
    at: list[float] = []
    setter = stop_later(stop, 0.5, at)
    result = run_scenario(scenario, on_step=calls.end, on_step_start=calls.start, stop=stop)
    ended = time.perf_counter()
    setter.join()
    assert ended - at[0] < STOP_WITHIN, f"the run ended {ended - at[0]:.2f} s after the stop"
    assert_stopped_at(result, 1)
    # Only the steps that began were narrated; the stopped one's end too.
    assert calls.seen == each_step_in_order(scenario)[:4]
    assert result.analysis.blocks, "the blocks found until the stop are analysed"
    text = report.as_text(result)
    assert f"(simulator, seed {result.seed}): stopped" in text
    assert f"[{STOPPED_DURING}]" in text and f"[{STOPPED_BEFORE}]" in text
    data = report.as_json(result)
    assert data["passed"] is False
    assert [s["status"] for s in data["steps"]] == ["ok", "stopped", "stopped"]
    assert not [t for t in threading.enumerate() if t.name == "forklab-sim-stop"]


def test_a_run_stopped_before_it_begins_runs_no_step() -> None:
    scenario = builtin("fork-and-converge")
    stop = threading.Event()
    stop.set()
    calls = Calls()
    result = run_scenario(scenario, on_step=calls.end, on_step_start=calls.start, stop=stop)
    assert calls.seen == []
    assert [(s.status, s.detail) for s in result.steps] == [(Status.STOPPED, STOPPED_BEFORE)] * len(
        scenario.steps
    )


def test_a_stop_never_set_leaves_the_simulation_as_it_was() -> None:
    scenario = builtin("double-spend")
    plain = run_scenario(scenario)
    watched = run_scenario(scenario, stop=threading.Event())
    assert plain.passed and watched.passed
    assert watched.trace_digest == plain.trace_digest


LONG_WAIT = """\
[scenario]
name = "long-wait"
nodes = ["a", "b"]

[[step]]
do = "mine"
node = "a"

[[step]]
do = "wait"
until = "converged"

[[step]]
do = "wait"
seconds = 36000

[[step]]
do = "assert"
that = "height(b) == 1"
"""
"""Ten hours of the scenario's time in step 3: two minutes of real time at 2 s a block."""


def test_a_real_run_stopped_mid_wait_takes_its_devnet_down(tmp_path: Path) -> None:
    scenario = parse_scenario(LONG_WAIT)
    stop = threading.Event()
    calls = Calls()
    pids: list[int] = []
    at: list[float] = []
    setters: list[threading.Thread] = []

    def on_step_start(index: int, step: Step) -> None:
        calls.start(index, step)
        if index == 2:  # the long wait: the devnet's processes, then a stop a second in
            state = load(DevnetPaths(tmp_path / "devnet"))
            assert state is not None
            found = [n.pid for n in state.nodes] + [m.pid for m in state.miners]
            pids.extend(pid for pid in found if pid is not None)
            setters.append(stop_later(stop, 1.0, at))

    started = time.perf_counter()
    result = run_real(
        scenario, workdir=tmp_path, on_step=calls.end, on_step_start=on_step_start, stop=stop
    )
    ended = time.perf_counter()
    for setter in setters:
        setter.join()
    assert_stopped_at(result, 2)
    assert calls.seen == each_step_in_order(scenario)[:6]
    assert ended - started < 60, "ten hours of the scenario at 2 s a block would take 2 min"
    # The wait notices within a look at the network; the rest is the devnet's teardown.
    assert ended - at[0] < 15, f"the run ended {ended - at[0]:.1f} s after the stop"
    assert pids and not any(alive(pid) for pid in pids)
    assert list(tmp_path.iterdir()) == [], "the devnet was taken down and wiped"
