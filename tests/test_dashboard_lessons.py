"""The dashboard's lessons through its HTTP API, against a real dashboard and real devnets.

A class devnet of two nodes with one running miner is watched by a dashboard running in the
test's event loop. Through the API the tests:

* list the lessons: every built-in scenario, on real nodes exactly when the fork lab's real
  runner can run it (else simulated, with the runner's own reasons), with the form's
  parameters (a chosen share where a miner has a strategy, a number of runs for an attack);
* are refused, naming the field, for bad parameters, unknown lessons and bodies that are not
  JSON objects, and for cross-site requests;
* run a simulated lesson with a chosen share: its narration (numbered lines, pushed on the
  dashboard's stream as ``lesson`` messages), its summary (the report's numbers, the tree's
  picture) and how often the attack succeeded over more seeds; stop a simulated lesson in
  the middle: it ends at once and summarises what it saw until then;
* start a real lesson: a devnet of its own next to the class's, watched by the dashboard while
  it runs (the class's miner paused, actions refused), a second start refused, then stopped:
  its processes and files gone, the dashboard back on the class devnet, the miner resumed;
* stop a dashboard in the middle of a real lesson: nothing of the lesson is left running.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from mining_harness import alive

from node.dashboard import DashboardServer
from node.dashboard.lesson_runs import Backend
from node.dashboard.lessons import Lesson, LessonParams, catalogue, parse_params
from node.dashboard.sources import DevnetSource
from node.devnet import Devnet, UpOptions
from node.devnet.state import DevnetPaths, load
from node.lab import scenarios
from node.lab.runner_real import unsupported

pytestmark = pytest.mark.asyncio(loop_scope="module")

TIMEOUT = 60.0


@dataclass
class Dashboard:
    devnet: Devnet
    url: str
    http: aiohttp.ClientSession

    async def get(self, path: str) -> Any:
        async with self.http.get(self.url + path) as response:
            assert response.status == 200, await response.text()
            return await response.json()

    async def post(
        self, path: str, body: Any = None, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> tuple[int, dict[str, Any]]:
        async with self.http.post(
            self.url + path, json=body if body is not None else {}, headers=headers, **kwargs
        ) as response:
            return response.status, dict(await response.json())

    async def start(self, name: str, **params: Any) -> dict[str, Any]:
        status, reply = await self.post(f"/api/lessons/{name}/start", params)
        assert status == 200 and reply["ok"], reply
        return dict(reply["run"])

    async def wait_run(
        self, predicate: Callable[[dict[str, Any]], bool], what: str, timeout: float = TIMEOUT
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            run = (await self.get("/api/lessons/current"))["run"]
            if run is not None and predicate(run):
                return dict(run)
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; the run: {run}")
            await asyncio.sleep(0.1)

    async def wait_state(
        self, predicate: Callable[[dict[str, Any]], bool], what: str
    ) -> dict[str, Any]:
        deadline = time.monotonic() + TIMEOUT
        while True:
            state = await self.get("/api/state")
            if predicate(state):
                return dict(state)
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; the state: {state}")
            await asyncio.sleep(0.1)


def miner_running(devnet: Devnet, name: str = "m1") -> bool:
    return devnet.is_running(devnet.state(), name)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def class_devnet(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Devnet]:
    # A miner that runs but finds a block a day: paused and resumed, it never changes the chain.
    devnet = Devnet(tmp_path_factory.mktemp("lessons") / "devnet")
    options = UpOptions(nodes=2, block_time=86_400, base_port=0, dashboard=False)
    await asyncio.to_thread(devnet.up, options)
    try:
        yield devnet
    finally:
        await asyncio.to_thread(devnet.down, wipe=True)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def dash(class_devnet: Devnet) -> AsyncIterator[Dashboard]:
    server = DashboardServer(DevnetSource(class_devnet.root))
    try:
        url = await server.start("127.0.0.1", 0)
        async with aiohttp.ClientSession() as http:
            yield Dashboard(class_devnet, url, http)
    finally:
        await server.stop()


async def test_every_built_in_scenario_is_a_lesson_real_exactly_when_the_runner_can(
    dash: Dashboard,
) -> None:
    lessons = {entry["name"]: entry for entry in (await dash.get("/api/lessons"))["lessons"]}
    assert list(lessons) == list(scenarios.names())
    for name, entry in lessons.items():
        scenario = scenarios.builtin(name)
        reasons = unsupported(scenario)
        assert entry["backend"] == ("simulated" if reasons else "real"), name
        assert entry["reasons"] == reasons
        assert entry["title"] == scenario.title
        assert entry["explanation"] == " ".join(scenario.explanation.split())
        params = {p["name"]: p for p in entry["parameters"]}
        strategists = [m for m in scenario.miners if m.strategy.kind != "honest"]
        assert ("share" in params) == (len(strategists) == 1), name
        if "share" in params:
            assert params["share"]["default"] == pytest.approx(strategists[0].share)
        assert ("runs" in params) == any(m.strategy.kind == "double-spend" for m in strategists)
        assert ("block_time" in params) == (not reasons)
        assert "simulate" in params, "every lesson can be simulated"
        assert params["simulate"]["default"] is entry["simulate_by_default"]
        if not reasons:
            # The defaults keep a live run short enough for a class.
            block_time = params["block_time"]["default"]
            assert 0.5 <= block_time <= 2
            assert entry["live_seconds"] <= 180 or block_time == 0.5, name
            assert entry["simulate_by_default"] == (entry["live_seconds"] > 240), name
        assert params["seed"]["default"] == scenario.seed


# (lesson, body, status, words the error must contain)
REFUSALS = [
    ("no-such-lesson", {}, 404, "no lesson 'no-such-lesson'"),
    ("double-spend", {"shares": 0.5}, 400, "no parameter 'shares'"),
    ("double-spend", {"share": 1.5}, 400, "share must be from 0.01 to 0.99"),
    ("double-spend", {"share": 0}, 400, "share must be from 0.01 to 0.99"),
    ("double-spend", {"share": "half"}, 400, "share must be a number"),
    ("double-spend", {"share": True}, 400, "share must be a number"),
    ("double-spend", {"runs": 0}, 400, "runs must be from 1 to 40"),
    ("double-spend", {"runs": 2.5}, 400, "runs must be a whole number"),
    ("selfish-mining", {"seed": -1}, 400, "seed must be from 0"),
    ("selfish-mining", {"runs": 3}, 400, "no parameter 'runs'"),
    ("fork-and-converge", {"share": 0.3}, 400, "no parameter 'share'"),
    ("fork-and-converge", {"block_time": 0.1}, 400, "block_time must be from 0.5 to 10"),
    ("fork-and-converge", {"simulate": "yes"}, 400, "simulate must be true or false"),
    ("monetary-policy", {"block_time": 1}, 400, "no parameter 'block_time'"),
    ("fork-and-converge", [1, 2], 400, "must be a JSON object"),
]


@pytest.mark.parametrize(("lesson", "body", "status", "words"), REFUSALS)
async def test_bad_requests_are_refused_naming_what_is_wrong(
    dash: Dashboard, lesson: str, body: Any, status: int, words: str
) -> None:
    code, reply = await dash.post(f"/api/lessons/{lesson}/start", body)
    assert (code, reply["ok"]) == (status, False), reply
    assert words in reply["error"]


async def test_requests_that_are_not_json_or_from_another_site_are_refused(
    dash: Dashboard,
) -> None:
    path = f"{dash.url}/api/lessons/fork-and-converge/start"
    async with dash.http.post(path, data="seed=1") as response:
        assert response.status == 415
    async with dash.http.post(
        path, data="{", headers={"Content-Type": "application/json"}
    ) as response:
        assert response.status == 400
        assert "not JSON" in (await response.json())["error"]
    code, reply = await dash.post(
        "/api/lessons/fork-and-converge/start", {}, headers={"Origin": "http://evil.example"}
    )
    assert code == 403 and "Origin" in reply["error"]
    code, reply = await dash.post("/api/lessons/stop")
    assert (code, reply["error"]) == (409, "no lesson is running")
    assert (await dash.get("/api/lessons/current"))["run"] is None


async def test_a_simulated_lesson_narrates_on_the_stream_and_measures_the_chosen_share(
    dash: Dashboard,
) -> None:
    messages: list[dict[str, Any]] = []
    async with dash.http.ws_connect(f"{dash.url}/api/stream") as ws:

        async def collect() -> None:
            async for message in ws:
                data = message.json()
                if data["type"] == "lesson":
                    messages.append(data)

        collector = asyncio.create_task(collect())
        run = await dash.start("double-spend", share=0.7, runs=3, seed=5, simulate=True)
        assert run["backend"] == "simulated" and run["status"] == "starting"
        lesson = Lesson(scenarios.builtin("double-spend"))
        chosen = lesson.scenario_for(LessonParams(seed=5, share=0.7))
        assert run["reasons"] == (unsupported(chosen) or ["the simulator was chosen"])
        done = await dash.wait_run(lambda r: not r["active"], "the lesson's end")
        await asyncio.sleep(0.3)  # the last messages on their way
        collector.cancel()
    assert done["status"] == "done", done
    # Narration: numbered lines, each step's start, the observed outcome of each check.
    texts = [line["text"] for line in done["lines"]]
    assert [line["n"] for line in done["lines"]] == list(range(len(texts)))
    assert any(line["kind"] == "step" and "Waiting until" in line["text"] for line in done["lines"])
    assert any(line["kind"] == "sim" and "blocks found" in line["text"] for line in done["lines"])
    # The stream carried the same lines, in order, with the run's state.
    streamed = [line for m in messages for line in m["lines"] if m["run"]["id"] == run["id"]]
    assert [line["text"] for line in streamed] == texts
    assert messages[-1]["run"]["status"] == "done"
    # The summary: the chosen share, the report's numbers, the tree, and the attack.
    summary = done["summary"]
    attacker = next(m for m in summary["report"]["miners"] if m["name"] == "attacker")
    assert attacker["hash_share"] == pytest.approx(0.7)
    assert summary["report"]["seed"] == 5 and summary["report"]["backend"] == "simulator"
    assert summary["tree_svg"].startswith("<svg")
    assert isinstance(summary["attack_succeeded"], bool)
    assert not any("did the attack succeed" in c["expects"] for c in summary["checks"])
    rate = done["rate"]
    assert (rate["runs"], rate["seeds"], rate["complete"]) == (3, [6, 8], True)
    assert 0 <= rate["succeeded"] <= 3 and rate["share"] == pytest.approx(0.7)
    assert any(f"succeeded in {rate['succeeded']} of 3" in text for text in texts)


async def test_a_lesson_measuring_how_often_can_be_stopped(dash: Dashboard) -> None:
    # Forty more simulated attacks take far longer than a stop, which ends the one under way.
    await dash.start("double-spend", runs=40, simulate=True)
    await dash.wait_run(lambda r: r["status"] == "measuring", "the success-rate runs")
    started = time.monotonic()
    code, reply = await dash.post("/api/lessons/stop")
    assert time.monotonic() - started < 2
    assert code == 200 and reply["run"]["status"] == "stopped", reply
    rate = reply["run"]["rate"]
    assert rate["complete"] is False and rate["runs"] < 40


async def test_a_simulated_lesson_stopped_midway_says_so_and_sums_up_what_it_saw(
    dash: Dashboard,
) -> None:
    # 600 simulated blocks of selfish mining: seconds of simulation, stopped in the first.
    await dash.start("selfish-mining", simulate=True)
    started = time.monotonic()
    code, reply = await dash.post("/api/lessons/stop")
    assert time.monotonic() - started < 2
    run = reply["run"]
    assert code == 200 and run["status"] == "stopped", reply
    texts = [line["text"] for line in run["lines"]]
    assert "The lesson was stopped." in texts
    assert any(t.startswith("The run was stopped at step ") for t in texts)
    assert run["summary"]["passed"] is False
    statuses = [step["status"] for step in run["summary"]["report"]["steps"]]
    assert statuses[-1] == "stopped" and len(statuses) == len(
        scenarios.builtin("selfish-mining").steps
    )


async def test_a_real_lesson_gets_a_devnet_of_its_own_and_stops_cleanly(dash: Dashboard) -> None:
    class_nodes = [n["name"] for n in (await dash.get("/api/state"))["nodes"]]
    assert miner_running(dash.devnet)
    run = await dash.start("geography", block_time=1.0)
    assert run["backend"] == "real" and run["reasons"] == []
    code, reply = await dash.post("/api/lessons/fork-and-converge/start", {})
    assert code == 409 and "geography is running" in reply["error"]
    # The lesson's own devnet, next to the class's, shown by the dashboard while it runs.
    running = await dash.wait_run(lambda r: r["status"] == "running", "the lesson's devnet")
    lesson_dir = Path(running["devnet_dir"])
    assert lesson_dir == dash.devnet.root.with_name(dash.devnet.root.name + "-lesson")
    state = await dash.wait_state(
        lambda s: len(s["nodes"]) == 6 and all(n["up"] for n in s["nodes"]), "the lesson's nodes"
    )
    assert state["lesson"]["name"] == "geography"
    assert state["devnet_dir"] == str(lesson_dir)
    assert not miner_running(dash.devnet), "the class devnet's miner is paused"
    code, reply = await dash.post("/api/actions/heal", {})
    assert code == 409 and "geography is running on its own devnet" in reply["error"]
    lesson_state = load(DevnetPaths(lesson_dir))
    assert lesson_state is not None
    found = [n.pid for n in lesson_state.nodes] + [m.pid for m in lesson_state.miners]
    pids = [pid for pid in found if pid is not None]
    # A second dashboard on the same devnet finds the lesson's directory taken.
    second = DashboardServer(DevnetSource(dash.devnet.root))
    try:
        url = await second.start("127.0.0.1", 0)
        async with dash.http.post(f"{url}/api/lessons/fork-and-converge/start", json={}) as r:
            assert r.status == 409
            assert f"a lesson's devnet already runs in {lesson_dir}" in (await r.json())["error"]
    finally:
        await second.stop()
    # Stopped: its processes and files gone, the class devnet back on the page, its miner too.
    code, reply = await dash.post("/api/lessons/stop")
    assert code == 200 and reply["run"]["status"] == "stopped", reply
    assert not any(alive(pid) for pid in pids)
    assert not lesson_dir.exists()
    assert miner_running(dash.devnet)
    state = await dash.wait_state(lambda s: s["lesson"] is None, "the class devnet again")
    assert [n["name"] for n in state["nodes"]] == class_nodes
    assert state["devnet_dir"] == str(dash.devnet.root)
    texts = [line["text"] for line in reply["run"]["lines"]]
    assert "The lesson was stopped." in texts


async def test_a_dashboard_stopped_during_a_lesson_leaves_nothing_running(
    class_devnet: Devnet,
) -> None:
    server = DashboardServer(DevnetSource(class_devnet.root))
    lesson_dir = class_devnet.root.with_name(class_devnet.root.name + "-lesson")
    url = await server.start("127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as http:
            other = Dashboard(class_devnet, url, http)
            await other.start("concentration")
            await other.wait_run(lambda r: r["status"] == "running", "the lesson")
        lesson_state = load(DevnetPaths(lesson_dir))
    finally:
        await server.stop()
    assert lesson_state is not None
    found = [n.pid for n in lesson_state.nodes] + [m.pid for m in lesson_state.miners]
    pids = [pid for pid in found if pid is not None]
    assert pids and not any(alive(pid) for pid in pids)
    assert not lesson_dir.exists()
    assert miner_running(class_devnet)


async def test_a_long_lesson_is_simulated_by_default_and_live_one_untick_away() -> None:
    lessons = catalogue()
    selfish = lessons["selfish-mining"]
    assert not unsupported(selfish.scenario), "selfish mining can run on real nodes"
    # 600 blocks are five minutes of mining even at the shortest block time.
    assert selfish.default_block_time == 0.5 and selfish.live_seconds == pytest.approx(300)
    by_default = parse_params(selfish, {})
    backend, reasons = selfish.backend(selfish.scenario_for(by_default), by_default)
    assert backend is Backend.SIMULATED and "about 5 minutes" in reasons[0]
    live = parse_params(selfish, {"simulate": False})
    assert live.block_time == 0.5
    assert selfish.backend(selfish.scenario_for(live), live) == (Backend.REAL, [])
    # A short lesson keeps the devnet's block time and runs live.
    fork = lessons["fork-and-converge"]
    quick = parse_params(fork, {})
    assert quick.block_time == 2.0 and not quick.simulate
    assert fork.backend(fork.scenario, quick) == (Backend.REAL, [])
