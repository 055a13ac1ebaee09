"""Running a lesson: one at a time, on a devnet of its own or in the simulator, stoppable.

**Where a lesson runs.** On real nodes whenever the fork lab's real runner can run its scenario
(:func:`node.lab.runner_real.unsupported` is asked at each start, so strategies that become
possible on real nodes are used without a change here); otherwise in the simulator, in a worker
thread (virtual time: a few seconds at most), and the page says so, with the reasons.

**A devnet of its own.** The devnet the dashboard watches rarely has a lesson's shape (its
nodes, topology, miners and funded wallets), and a lesson must not wreck the class's chain. So
a real lesson makes its own devnet with :class:`~node.lab.runner_real.RealRunner`, as
``forklab scenario run --real`` does, in a directory next to the watched one
(``DIR-lesson``; a temporary directory when the dashboard watches nodes started by hand), on
ports the system chooses. While it runs:

- the monitor watches the lesson's nodes instead (:meth:`NetworkMonitor.watch`), so the block
  tree, the network graph and the node table show the lesson live; it switches back after;
- the watched devnet's miners are paused (on a 2-core machine they would compete with the
  lesson's nodes for the processor, and their blocks would be drawn on nothing) and resumed
  after; the page's actions are refused meanwhile (they would act on the devnet not shown);
- the lesson's devnet is taken down and wiped at the end, when stopped, when it fails, and
  when the dashboard stops (``on_shutdown``), so nothing is left running.

**Narration** (:mod:`node.dashboard.lesson_story`) goes to every page on the dashboard's stream
as ``lesson`` messages: ``{"type": "lesson", "run": {...}, "lines": [new lines]}``, where each
line has ``n`` (its place in the run's narration), so a page that missed one reads
``/api/lessons/current``.

Threads: runners are blocking code and run in worker threads; everything they report is handed
to the event loop (``call_soon_threadsafe``), which alone changes a run's state. A stop sets the
run's event, which both runners take as their ``stop``: the step under way ends at once (a
real one within a look at the network), the run reports what it saw until then, and a real
lesson's devnet is taken down as at any end.

What this module does not do: parse requests (:mod:`node.dashboard.lessons`), choose words
(:mod:`node.dashboard.lesson_story`) or handle a devnet's processes
(:mod:`node.dashboard.lesson_devnet`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import web

from node.core.errors import ForklabError
from node.dashboard import lesson_story
from node.dashboard.lesson_devnet import (
    LineStream,
    lesson_dir,
    pause_miners,
    resume_miners,
    still_running,
    take_down,
)
from node.dashboard.lesson_story import ATTACK_PROBE, AttackRate, EventNarrator, Summary
from node.dashboard.monitor import NetworkMonitor
from node.dashboard.sources import DevnetSource, NodeSource
from node.devnet import Devnet, Progress
from node.lab.conditions import Condition
from node.lab.outcome import ScenarioResult, StepOutcome
from node.lab.runner_real import RealRunner
from node.lab.runner_sim import run_scenario
from node.lab.scenario import Assert, Scenario, Step
from node.lab.trace import Trace

if TYPE_CHECKING:
    from node.dashboard.lessons import Lesson, LessonParams

log = logging.getLogger("forklab.dashboard")

MAX_LINES = 400
"""Narration lines a run keeps (the earliest are dropped, and counted)."""
RATE_BUDGET = 90.0
"""Wall seconds the simulated runs for an attack's success rate may take at most."""
STREAM_WAIT = 5.0
"""Seconds a real lesson waits, once its devnet is up, for the dashboard to hear every node."""
SHUTDOWN_WAIT = 10.0
"""Seconds a stopping dashboard waits for a lesson's thread before it stops waiting."""


class LessonStopped(Exception):  # noqa: N818 (it is the event, not an error)
    """The lesson was stopped before its steps began."""


class Backend(enum.Enum):
    REAL = "real"
    """Real node processes: a devnet of the lesson's own."""
    SIMULATED = "simulated"
    """The fork lab's simulator: virtual time, in a worker thread."""


class LessonError(ForklabError):
    """A lesson request refused: the reply's status and message."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class RunStatus(enum.Enum):
    STARTING = "starting"
    RUNNING = "running"
    MEASURING = "measuring"
    """The main run is over; the simulator runs more seeds (an attack's success rate)."""
    STOPPING = "stopping"
    DONE = "done"
    STOPPED = "stopped"
    FAILED = "failed"

    @property
    def active(self) -> bool:
        return self in (
            RunStatus.STARTING,
            RunStatus.RUNNING,
            RunStatus.MEASURING,
            RunStatus.STOPPING,
        )


@dataclass(frozen=True)
class Line:
    """One line of narration."""

    n: int
    t: float
    """Wall seconds since the lesson started."""
    kind: str
    """``setup``, ``step``, ``result`` (a step's end), ``event`` (a node's), ``sim`` (the
    trace), ``summary``, ``error``."""
    text: str
    ok: bool | None = None
    """For a step's end: whether it went as the scenario says."""


class LessonHost(Protocol):
    """What a run needs of the dashboard."""

    source: NodeSource

    @property
    def monitor(self) -> NetworkMonitor: ...


class LessonRun:
    """One lesson's run, owned by the event loop."""

    def __init__(
        self,
        run_id: int,
        *,
        lesson: Lesson,
        params: LessonParams,
        scenario: Scenario,
        backend: Backend,
        reasons: list[str],
        publish: Callable[[dict[str, Any]], None],
    ) -> None:
        self.id = run_id
        self.lesson = lesson
        self.params = params
        self.probe = _probe(lesson)
        """The check appended to learn whether the attack worked (None: no attack to judge)."""
        self.scenario = _with_probe(scenario, self.probe)
        """What runs: the lesson's scenario with the chosen share, and the probe last."""
        self.backend = backend
        self.reasons = reasons
        self.status = RunStatus.STARTING
        self.error: str | None = None
        self.summary: Summary | None = None
        self.rate: AttackRate | None = None
        self.rate_progress: tuple[int, int] | None = None
        self.devnet_dir: Path | None = None
        self.lines: list[Line] = []
        self.dropped = 0
        self.stop_flag = threading.Event()
        self.started = time.monotonic()
        self.ended: float | None = None
        self.task: asyncio.Task[None] | None = None
        self._publish = publish
        self._count = 0

    # -- changes (on the event loop only)

    def say(self, kind: str, text: str, ok: bool | None = None) -> None:
        line = Line(self._count, round(time.monotonic() - self.started, 3), kind, text, ok)
        self._count += 1
        self.lines.append(line)
        if len(self.lines) > MAX_LINES:
            self.dropped += len(self.lines) - MAX_LINES
            del self.lines[: len(self.lines) - MAX_LINES]
        self._publish({"type": "lesson", "run": self.as_json(lines=False), "lines": [_line(line)]})

    def set_status(self, status: RunStatus, error: str | None = None) -> None:
        if self.status is RunStatus.STOPPING and status.active:
            status = RunStatus.STOPPING  # a stop asked for is not undone by progress after it
        self.status = status
        self.error = error
        if not status.active:
            self.ended = time.monotonic()
        self._publish({"type": "lesson", "run": self.as_json(lines=False), "lines": []})

    def teller(self, loop: asyncio.AbstractEventLoop) -> Callable[[str, str, bool | None], None]:
        """:meth:`say` for a worker thread."""

        def tell(kind: str, text: str, ok: bool | None = None) -> None:
            loop.call_soon_threadsafe(self.say, kind, text, ok)

        return tell

    # -- views

    def as_json(self, *, lines: bool = True) -> dict[str, Any]:
        end = self.ended if self.ended is not None else time.monotonic()
        out: dict[str, Any] = {
            "id": self.id,
            "lesson": self.lesson.name,
            "title": self.lesson.title,
            "backend": self.backend.value,
            "reasons": self.reasons,
            "params": self.params.as_json(),
            "status": self.status.value,
            "active": self.status.active,
            "error": self.error,
            "elapsed": round(end - self.started, 3),
            "devnet_dir": str(self.devnet_dir) if self.devnet_dir else None,
            "summary": self.summary.as_json() if self.summary else None,
            "rate": self.rate.as_json() if self.rate else None,
            "rate_progress": list(self.rate_progress) if self.rate_progress else None,
            "line_count": self._count,
        }
        if lines:
            out["lines"] = [_line(line) for line in self.lines]
            out["dropped"] = self.dropped
        return out


def _line(line: Line) -> dict[str, Any]:
    return dataclasses.asdict(line)


class LessonManager:
    """The dashboard's lessons: at most one running; start, stop, the current one."""

    def __init__(self, host: LessonHost, lessons: dict[str, Lesson], *, loopback: bool) -> None:
        self.host = host
        self.lessons = lessons
        self.loopback = loopback
        self.run: LessonRun | None = None
        self._ids = 0
        self._starting = asyncio.Lock()

    def current(self) -> dict[str, Any] | None:
        return self.run.as_json() if self.run is not None else None

    def watching(self) -> dict[str, Any] | None:
        """The lesson whose devnet the monitor shows, if any (part of the page's state)."""
        run = self.run
        if run is None or not run.status.active or run.backend is not Backend.REAL:
            return None
        return {
            "name": run.lesson.name,
            "title": run.lesson.title,
            "devnet_dir": str(run.devnet_dir) if run.devnet_dir else None,
        }

    def _home(self) -> Path | None:
        """The watched devnet's directory (None: nodes started by hand)."""
        source = self.host.source
        return source.paths.root if isinstance(source, DevnetSource) else None

    def _publish(self, message: dict[str, Any]) -> None:
        with contextlib.suppress(RuntimeError):  # the dashboard is not running (yet, or still)
            self.host.monitor.broadcast(message)

    async def start(self, lesson: Lesson, params: LessonParams) -> dict[str, Any]:
        async with self._starting:
            if self.run is not None and self.run.status.active:
                raise LessonError(
                    f"the lesson {self.run.lesson.name} is running; stop it first "
                    "(POST /api/lessons/stop) or wait for its summary",
                    status=409,
                )
            scenario = lesson.scenario_for(params)
            backend, reasons = lesson.backend(scenario, params)
            home = self._home()
            if backend is Backend.REAL and home is not None:
                busy = await asyncio.to_thread(still_running, lesson_dir(home))
                if busy is not None:
                    raise LessonError(busy, status=409)
            self._ids += 1
            run = LessonRun(
                self._ids,
                lesson=lesson,
                params=params,
                scenario=scenario,
                backend=backend,
                reasons=reasons,
                publish=self._publish,
            )
            self.run = run
            run.task = asyncio.create_task(self._execute(run))
            return run.as_json()

    async def stop(self) -> dict[str, Any]:
        run = self.run
        if run is None or not run.status.active:
            raise LessonError("no lesson is running", status=409)
        if run.status is not RunStatus.STOPPING:
            run.stop_flag.set()
            run.set_status(RunStatus.STOPPING)
            run.say("setup", "Stopping the lesson…")
        assert run.task is not None
        await asyncio.shield(run.task)
        return run.as_json()

    async def shutdown(self) -> None:
        run = self.run
        if run is None or run.task is None or run.task.done():
            return
        run.stop_flag.set()
        try:
            await asyncio.wait_for(asyncio.shield(run.task), SHUTDOWN_WAIT)
        except TimeoutError:
            run.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await run.task

    # -- a run

    async def _execute(self, run: LessonRun) -> None:
        try:
            if run.backend is Backend.REAL:
                result = await self._run_real(run)
            else:
                result = await self._run_simulated(run)
            if result.stopped:
                run.say("setup", "The lesson was stopped.")
            run.summary = lesson_story.summarise(
                result, probe=run.probe, svg=run.backend is Backend.SIMULATED
            )
            for headline in run.summary.headlines:
                run.say("summary", headline)
            if run.params.runs and run.probe is not None and not run.stop_flag.is_set():
                run.set_status(RunStatus.MEASURING)
                run.rate = await self._measure_rate(run)
                run.say("summary", run.rate.headline())
            run.set_status(RunStatus.STOPPED if run.stop_flag.is_set() else RunStatus.DONE)
        except LessonStopped:
            run.say("setup", "The lesson was stopped.")
            run.set_status(RunStatus.STOPPED)
        except Exception as exc:  # the page must hear of any failure, whatever it is
            log.exception("lesson %s failed", run.lesson.name)
            run.say("error", f"The lesson failed: {exc}")
            run.set_status(RunStatus.FAILED, str(exc))

    async def _run_simulated(self, run: LessonRun) -> ScenarioResult:
        why = "; ".join(run.reasons)
        run.say("setup", f"Simulated (virtual time, seed {run.params.seed}): {why}.")
        run.set_status(RunStatus.RUNNING)
        tell = run.teller(asyncio.get_running_loop())
        trace = Trace(keep=True)
        story = _StepStory(run.scenario, tell, trace)
        return await asyncio.to_thread(
            run_scenario,
            run.scenario,
            seed=run.params.seed,
            trace=trace,
            on_step=story.on_step,
            on_step_start=story.on_step_start,
            stop=run.stop_flag,
        )

    async def _run_real(self, run: LessonRun) -> ScenarioResult:
        loop = asyncio.get_running_loop()
        tell = run.teller(loop)
        monitor = self.host.monitor
        original = self.host.source
        home = self._home()
        workdir = lesson_dir(home) if home else Path(tempfile.mkdtemp(prefix="forklab-lesson-"))
        run.devnet_dir = workdir
        devnet = Devnet(
            workdir,
            Progress(LineStream(lambda text: tell("setup", text, None)), interactive=False),
        )
        run.say("setup", f"Real nodes: a devnet of the lesson's own in {workdir}.")
        paused = await asyncio.to_thread(pause_miners, home) if home else []
        if paused:
            run.say("setup", f"The class devnet's miners ({', '.join(paused)}) are paused.")
        narrator = None
        try:
            await asyncio.to_thread(take_down, devnet)  # stopped leftovers (start() checked)
            await monitor.watch(DevnetSource(workdir))
            narrator = asyncio.create_task(self._narrate(run))
            story = _StepStory(run.scenario, tell, None)
            runner = RealRunner(
                run.scenario,
                devnet,
                block_time=run.params.block_time,
                on_step=story.on_step,
                on_step_start=story.on_step_start,
                stop=run.stop_flag,
            )

            await asyncio.to_thread(runner.start, run.params.seed)
            # The class should see every step: wait (a little) until the dashboard hears every
            # node's events; the first steps of a lesson take well under a second.
            deadline = loop.time() + STREAM_WAIT
            while not monitor.streaming() and loop.time() < deadline:
                await asyncio.sleep(0.05)
            if run.stop_flag.is_set():
                raise LessonStopped  # while its devnet came up: nothing to tell of
            run.say("setup", "The devnet is up; the lesson begins.")
            run.set_status(RunStatus.RUNNING)
            return await asyncio.to_thread(runner.run, run.params.seed)
        finally:
            if narrator is not None:
                narrator.cancel()
            # Back to the class's devnet first: the page should not report the lesson's nodes
            # going down as if they were the class's.
            await monitor.watch(original)
            await asyncio.to_thread(take_down, devnet)
            if home is None:
                shutil.rmtree(workdir, ignore_errors=True)
            if paused:
                assert home is not None
                await asyncio.to_thread(resume_miners, home, paused)
                run.say("setup", f"The class devnet's miners ({', '.join(paused)}) are back.")

    async def _narrate(self, run: LessonRun) -> None:
        """The lesson's nodes' events, in words, while it runs."""
        monitor = self.host.monitor
        feed = monitor.subscribe()
        narrator = EventNarrator()
        try:
            while not feed.closed:
                for message in await feed.wait():
                    if message.get("type") != "event" or run.status is not RunStatus.RUNNING:
                        continue
                    text = narrator.line(message["node"], message["event"])
                    if text is not None:
                        run.say("event", text)
        finally:
            monitor.unsubscribe(feed)

    async def _measure_rate(self, run: LessonRun) -> AttackRate:
        """The same scenario over more seeds in the simulator: how often the attack works."""
        assert run.probe is not None  # the last step's outcome is the attack's
        scenario = run.scenario
        miner = run.lesson.protagonist
        assert miner is not None
        share = next(m.share for m in scenario.miners if m.name == miner.name)
        share /= sum(m.share for m in scenario.miners)
        first = run.params.seed + 1
        run.say("setup", f"Now the same attack over {run.params.runs} more seeds, simulated…")
        started = time.monotonic()
        succeeded = done = 0
        while done < run.params.runs and not run.stop_flag.is_set():
            if time.monotonic() - started > RATE_BUDGET:
                run.say("setup", f"The time budget ({RATE_BUDGET:g} s) is spent.")
                break
            result = await asyncio.to_thread(
                run_scenario, scenario, seed=first + done, stop=run.stop_flag
            )
            if result.stopped:
                break
            done += 1
            succeeded += result.steps[-1].ok
            run.rate_progress = (done, run.params.runs)
            run.set_status(run.status)
        return AttackRate(
            miner=miner.name,
            share=share,
            runs=done,
            succeeded=succeeded,
            seeds=(first, first + max(done, 1) - 1),
            wall_seconds=round(time.monotonic() - started, 3),
            complete=done == run.params.runs,
        )


LESSONS = web.AppKey("lessons", LessonManager)


def _probe(lesson: Lesson) -> str | None:
    """The check appended to learn whether an attack succeeded (double-spend lessons)."""
    miner = lesson.protagonist
    if miner is None or miner.strategy.kind != "double-spend":
        return None
    return ATTACK_PROBE.format(miner=miner.name)


def _with_probe(scenario: Scenario, probe: str | None) -> Scenario:
    if probe is None:
        return scenario
    check = Assert(Condition.parse(probe), "did the attack succeed?")
    return dataclasses.replace(scenario, steps=(*scenario.steps, check))


class _StepStory:
    """The runners' step callbacks, in words: each step as it begins, and what its end showed
    (with, in the simulator, what the trace shows happened meanwhile)."""

    def __init__(
        self,
        scenario: Scenario,
        tell: Callable[[str, str, bool | None], None],
        trace: Trace | None,
    ) -> None:
        self.steps = scenario.steps
        self.tell = tell
        self.trace = trace
        self._seen = 0

    def on_step_start(self, index: int, step: Step) -> None:
        self.tell("step", lesson_story.step_started(index, step), None)

    def on_step(self, outcome: StepOutcome) -> None:
        step = self.steps[outcome.index]
        if self.trace is not None:
            events = self.trace.events[self._seen :]
            self._seen += len(events)
            digest = lesson_story.trace_digest_line(events)
            if digest is not None:
                self.tell("sim", digest, None)
        ended = lesson_story.step_ended(step, outcome)
        if ended is not None:
            self.tell("result", ended, outcome.ok)
