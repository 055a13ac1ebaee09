"""The one-click lessons: the fork lab's built-in scenarios, offered by the dashboard.

A lesson is a built-in scenario (``node/lab/scenarios/*.toml``): its title and explanation, a
form of parameters, a start button. This module holds the catalogue (:class:`Lesson`), the
parameters and their checking (:func:`parse_params`), and the HTTP routes; running one is
:mod:`node.dashboard.lesson_runs`, and what is said about it :mod:`node.dashboard.lesson_story`.

=================================  ======  ================================================
path                               method  what
=================================  ======  ================================================
``/api/lessons``                   GET     ``{"lessons": [...]}``: each lesson's ``name``,
                                           ``title``, ``explanation``, ``backend`` (``real``
                                           or ``simulated``), ``reasons`` (why not real),
                                           ``parameters``, ``measures_rate``
``/api/lessons/current``           GET     ``{"run": ...}``: the lesson running or last run
                                           (null if none yet), with its whole narration
``/api/lessons/{name}/start``      POST    start it; JSON body of parameters (below);
                                           ``{"ok": true, "run": ...}``
``/api/lessons/stop``              POST    stop the lesson running (its devnet is taken down)
=================================  ======  ================================================

Refusals are ``{"ok": false, "error"}`` with 400 (a bad parameter, named), 404 (no such
lesson), 409 (a lesson is already running, or none is running to stop), 403 and 415 (as for
actions, :mod:`node.dashboard.guard`).

**Parameters** (all optional):

==============  =========================================================================
name            meaning
==============  =========================================================================
``seed``        the run's seed (default: the scenario's); the simulator's runs and the
                real devnet's miners' timing follow it
``share``       lessons with one miner of a strategy (attacker, selfish pool, censors):
                its share of the hash power, 0.01 to 0.99; the other miners keep their
                proportions and share the rest
``runs``        lessons with a double-spend attacker: how many seeds the simulator also
                runs to say how often the attack succeeds (1 to :data:`MAX_RUNS`)
``simulate``    true: run in the simulator even if real nodes could run it (accepted by
                every lesson, so a script need not know which can)
``block_time``  real nodes only: seconds between blocks (0.5 to 10; default 2, or less for
                a lesson whose blocks would take longer than :data:`LIVE_BUDGET` live)
==============  =========================================================================

**Live length.** A class waits for a real run, so each lesson's defaults aim at about
:data:`LIVE_BUDGET` seconds of mining: the block time is shortened for long lessons (down to
0.5 s), and a lesson that would still take longer than :data:`LONG_LIVE_RUN` (600 selfish-mining
blocks: about five minutes) is simulated by default, with a live run one untick away. The
estimate counts the hash power the steps ask for (``wait`` seconds and ``mine`` steps found by
hash power); waits for a condition and start-up come on top.

What this module does not do: run anything, or decide whether a scenario can run on real
nodes (:func:`node.lab.runner_real.unsupported` does, at each start).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from aiohttp import web

from node.dashboard.guard import BodyError, json_object, json_response
from node.dashboard.lesson_runs import LESSONS, Backend, LessonError
from node.lab import scenarios
from node.lab.runner_real import BLOCK_TIME, unsupported
from node.lab.scenario import Honest, Mine, MinerDecl, Scenario, Wait

MIN_SHARE = 0.01
MAX_SHARE = 0.99
MAX_RUNS = 40
DEFAULT_RUNS = 10
MIN_BLOCK_TIME = 0.5
MAX_BLOCK_TIME = 10.0
MAX_SEED = 2**32 - 1
LIVE_BUDGET = 180.0
"""Seconds of live mining a lesson's default block time aims at."""
LONG_LIVE_RUN = 240.0
"""Live mining seconds (at the shortest block time) beyond which a lesson is simulated by
default."""


@dataclass(frozen=True)
class Parameter:
    """One field of a lesson's form."""

    name: str
    label: str
    kind: str
    """``int``, ``share``, ``seconds`` or ``bool``: how the page draws it."""
    default: int | float | bool
    minimum: int | float | None = None
    maximum: int | float | None = None

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class LessonParams:
    """A lesson's parameters, checked (:func:`parse_params`)."""

    seed: int
    share: float | None = None
    runs: int = 0
    """Simulator runs over seeds ``seed + 1`` ... for the attack's success rate (0: none)."""
    simulate: bool = False
    block_time: float = BLOCK_TIME

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_STRATEGY_ROLE = {
    "double-spend": "the attacker's",
    "selfish": "the selfish pool's",
    "censoring": "the censors'",
}


@dataclass(frozen=True)
class Lesson:
    """A built-in scenario as a lesson."""

    scenario: Scenario

    @property
    def name(self) -> str:
        return self.scenario.name

    @property
    def title(self) -> str:
        return self.scenario.title or self.name

    @property
    def protagonist(self) -> MinerDecl | None:
        """The one miner with a strategy, whose share the form offers; None if not exactly one
        (or if it is the only miner: nobody would take up the rest)."""
        chosen = [m for m in self.scenario.miners if not isinstance(m.strategy, Honest)]
        if len(chosen) != 1 or len(self.scenario.miners) < 2:
            return None
        return chosen[0]

    @property
    def span(self) -> float:
        """Scenario seconds the steps spend with hash power working, at least."""
        found_per_second = self.total_share / self.scenario.interval
        seconds = 0.0
        for step in self.scenario.steps:
            if isinstance(step, Wait) and step.seconds is not None:
                seconds += step.seconds
            elif isinstance(step, Mine) and step.node is None and step.miner is None:
                seconds += step.blocks / found_per_second
        return seconds

    @property
    def default_block_time(self) -> float:
        """The longest block time (at most the devnet's 2 s) whose live run fits the budget."""
        at_default = self.span * BLOCK_TIME / self.scenario.interval
        if at_default <= LIVE_BUDGET:
            return BLOCK_TIME
        fitted = round(BLOCK_TIME * LIVE_BUDGET / at_default, 1)
        return max(MIN_BLOCK_TIME, fitted)

    @property
    def live_seconds(self) -> float:
        """Estimated seconds of live mining at the default block time."""
        return self.span * self.default_block_time / self.scenario.interval

    @property
    def simulate_by_default(self) -> bool:
        """Whether even the shortest block time makes the live run too long for a class (the
        page offers it one untick away); False where real nodes cannot run it anyway."""
        return not unsupported(self.scenario) and self.live_seconds > LONG_LIVE_RUN

    @property
    def measures_rate(self) -> bool:
        """Whether the lesson also says how often its attack succeeds (over seeds)."""
        miner = self.protagonist
        return miner is not None and miner.strategy.kind == "double-spend"

    def parameters(self) -> tuple[Parameter, ...]:
        params = [Parameter("seed", "seed", "int", self.scenario.seed, 0, MAX_SEED)]
        miner = self.protagonist
        if miner is not None:
            role = _STRATEGY_ROLE.get(miner.strategy.kind, f"{miner.name}'s")
            params.append(
                Parameter(
                    "share",
                    f"{role} share of the hash power",
                    "share",
                    miner.share / self.total_share,
                    MIN_SHARE,
                    MAX_SHARE,
                )
            )
        if self.measures_rate:
            params.append(
                Parameter("runs", "simulated runs, for how often", "int", DEFAULT_RUNS, 1, MAX_RUNS)
            )
        if not unsupported(self.scenario):
            params.append(
                Parameter(
                    "block_time",
                    "seconds between blocks (real nodes)",
                    "seconds",
                    self.default_block_time,
                    MIN_BLOCK_TIME,
                    MAX_BLOCK_TIME,
                )
            )
        params.append(
            Parameter("simulate", "run in the simulator instead", "bool", self.simulate_by_default)
        )
        return tuple(params)

    @property
    def total_share(self) -> float:
        return sum(m.share for m in self.scenario.miners) or 1.0

    def scenario_for(self, params: LessonParams) -> Scenario:
        """The scenario with the chosen share: the protagonist gets ``share`` of the total, the
        other miners keep their proportions of the rest."""
        miner = self.protagonist
        if params.share is None or miner is None:
            return self.scenario
        total = self.total_share
        others = total - miner.share
        wanted = params.share * total
        scale = (total - wanted) / others
        miners = tuple(
            dataclasses.replace(m, share=wanted if m.name == miner.name else m.share * scale)
            for m in self.scenario.miners
        )
        return dataclasses.replace(self.scenario, miners=miners)

    def backend(self, scenario: Scenario, params: LessonParams) -> tuple[Backend, list[str]]:
        """Where a run goes, and why not on real nodes (asked at each start: what real nodes
        can do grows)."""
        reasons = unsupported(scenario)
        if reasons:
            return Backend.SIMULATED, reasons
        if params.simulate:
            if self.simulate_by_default:
                minutes = self.live_seconds / 60
                return Backend.SIMULATED, [
                    f"the simulator was chosen: live, this lesson mines for about "
                    f"{minutes:.0f} minutes even at {self.default_block_time:g} s a block"
                ]
            return Backend.SIMULATED, ["the simulator was chosen"]
        return Backend.REAL, []

    def as_json(self) -> dict[str, Any]:
        reasons = unsupported(self.scenario)
        return {
            "name": self.name,
            "title": self.title,
            "explanation": " ".join(self.scenario.explanation.split()),
            "backend": (Backend.SIMULATED if reasons else Backend.REAL).value,
            "reasons": reasons,
            "parameters": [p.as_json() for p in self.parameters()],
            "measures_rate": self.measures_rate,
            "live_seconds": round(self.live_seconds),
            "simulate_by_default": self.simulate_by_default,
            "nodes": list(self.scenario.node_names),
            "miners": [
                {"name": m.name, "share": m.share, "strategy": m.strategy.kind}
                for m in self.scenario.miners
            ],
        }


def catalogue() -> dict[str, Lesson]:
    """Every built-in scenario as a lesson, by name (read once per dashboard)."""
    return {name: Lesson(scenarios.builtin(name)) for name in scenarios.names()}


def parse_params(lesson: Lesson, body: dict[str, Any]) -> LessonParams:
    """The parameters of ``body`` for ``lesson``; LessonError (400) naming the field."""
    known = {p.name for p in lesson.parameters()}
    for key in body:
        if key not in known:
            raise LessonError(
                f"{lesson.name} has no parameter {key!r} (it has: {', '.join(sorted(known))})"
            )
    seed = _integer(body, "seed", lesson.scenario.seed, 0, MAX_SEED)
    share = None
    if "share" in body:
        share = _number(body, "share", MIN_SHARE, MAX_SHARE)
    runs = _integer(body, "runs", DEFAULT_RUNS, 1, MAX_RUNS) if lesson.measures_rate else 0
    simulate = body.get("simulate", lesson.simulate_by_default)
    if not isinstance(simulate, bool):
        raise LessonError("simulate must be true or false")
    block_time = lesson.default_block_time
    if "block_time" in body:
        block_time = _number(body, "block_time", MIN_BLOCK_TIME, MAX_BLOCK_TIME)
    return LessonParams(seed, share, runs, simulate, block_time)


def _integer(body: dict[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise LessonError(f"{key} must be a whole number from {low} to {high}")
    if not low <= value <= high:
        raise LessonError(f"{key} must be from {low} to {high}, not {value}")
    return value


def _number(body: dict[str, Any], key: str, low: float, high: float) -> float:
    value = body[key]  # fractions arrive as Decimal (node.rpc.jsonfmt keeps them exact)
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise LessonError(f"{key} must be a number from {low:g} to {high:g}")
    if not low <= value <= high:
        raise LessonError(f"{key} must be from {low:g} to {high:g}, not {value:g}")
    return float(value)


# ---------------------------------------------------------------------------------- routes


def add_routes(app: web.Application) -> None:
    """The lessons' routes; the manager is ``app[LESSONS]`` (set by the application)."""
    app.router.add_get("/api/lessons", _list)
    app.router.add_get("/api/lessons/current", _current)
    app.router.add_post("/api/lessons/stop", _stop)
    app.router.add_post("/api/lessons/{name}/start", _start)
    app.on_shutdown.append(_shutdown)


async def _list(request: web.Request) -> web.StreamResponse:
    lessons = request.app[LESSONS].lessons.values()
    return json_response({"lessons": [lesson.as_json() for lesson in lessons]})


async def _current(request: web.Request) -> web.StreamResponse:
    return json_response({"run": request.app[LESSONS].current()})


async def _start(request: web.Request) -> web.StreamResponse:
    manager = request.app[LESSONS]
    try:
        body = await json_object(request, loopback=manager.loopback, allow_empty=True)
        name = request.match_info["name"]
        lesson = manager.lessons.get(name)
        if lesson is None:
            raise LessonError(
                f"no lesson {name!r} (lessons: {', '.join(manager.lessons)})", status=404
            )
        params = parse_params(lesson, body)
        run = await manager.start(lesson, params)
    except (BodyError, LessonError) as exc:
        return json_response({"ok": False, "error": str(exc)}, exc.status)
    return json_response({"ok": True, "run": run})


async def _stop(request: web.Request) -> web.StreamResponse:
    manager = request.app[LESSONS]
    try:
        await json_object(request, loopback=manager.loopback, allow_empty=True)
        run = await manager.stop()
    except (BodyError, LessonError) as exc:
        return json_response({"ok": False, "error": str(exc)}, exc.status)
    return json_response({"ok": True, "run": run})


async def _shutdown(app: web.Application) -> None:
    """Before the monitor stops: the lesson's processes go with the dashboard."""
    await app[LESSONS].shutdown()
