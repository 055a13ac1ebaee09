"""What running a scenario gives back, the same from the simulator and from real nodes.

A :class:`ScenarioResult` holds the outcome of every step (an assert that failed, a wait that
timed out, a step that could not be done), the invariants checked after the steps, the
:class:`~node.lab.analysis.Analysis` of the chain at the end, and how long it all took. A run
*passed* when no step failed, no invariant was violated and nothing crashed. A run that was
stopped lists every step of its scenario: those done, then the one it stopped in and the ones
it never began, as ``stopped`` (it did not pass).

What this module does not do: run (the runners do) or render (:mod:`node.lab.report`).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from node.lab.analysis import Analysis
from node.lab.conditions import Evaluation
from node.lab.scenario import Assert, Scenario, Step


class Status(enum.Enum):
    OK = "ok"
    FAILED = "failed"
    """An assert that did not hold, a wait that timed out, a step that could not be done."""
    SKIPPED = "skipped"
    """A step that could not be done, in a scenario whose ``step_errors`` is ``skip``."""
    STOPPED = "stopped"
    """The run was stopped (its ``stop`` event set) during the step or before it began."""


@dataclass(frozen=True)
class StepOutcome:
    index: int
    """0-based; people see it plus one."""
    kind: str
    description: str
    started_at: float
    """Seconds since the scenario started."""
    status: Status
    detail: str = ""
    """Why it failed or was skipped; for asserts and waits, the values observed."""

    @property
    def ok(self) -> bool:
        """Whether the step went as the scenario says (a skipped step did, by its rule)."""
        return self.status in (Status.OK, Status.SKIPPED)


StepCallback = Callable[[StepOutcome], None]
"""Called by a runner as each step ends, with its outcome."""
StepStartCallback = Callable[[int, Step], None]
"""Called by a runner as each step begins, with its index (0-based) and the step."""


@dataclass(frozen=True)
class InvariantOutcome:
    name: str
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class ScenarioResult:
    scenario: Scenario
    backend: str
    """``simulator`` or ``real``."""
    seed: int
    steps: tuple[StepOutcome, ...]
    invariants: tuple[InvariantOutcome, ...]
    analysis: Analysis
    duration: float
    """Seconds of the scenario's time the run took (virtual in the simulator)."""
    wall_seconds: float
    trace_digest: str | None
    """SHA-256 of the simulator's event trace (None for real nodes)."""
    events: int
    crash: str | None = None
    """A failure that ended the run early: a strategy or a node that raised."""

    @property
    def failed_steps(self) -> tuple[StepOutcome, ...]:
        return tuple(s for s in self.steps if not s.ok)

    @property
    def violations(self) -> tuple[InvariantOutcome, ...]:
        return tuple(i for i in self.invariants if not i.ok)

    @property
    def stopped(self) -> bool:
        """Whether the run was stopped before its steps were over (they say ``stopped``)."""
        return any(s.status is Status.STOPPED for s in self.steps)

    @property
    def passed(self) -> bool:
        return self.crash is None and not self.failed_steps and not self.violations


STOPPED_DURING = "the run was stopped during this step"
STOPPED_BEFORE = "the run was stopped before this step began"


def stopped_steps(scenario: Scenario, first: int, at: float) -> list[StepOutcome]:
    """The steps from ``first`` on, which a run stopped at ``at`` never began."""
    return [
        StepOutcome(index, step.kind, step.describe(), at, Status.STOPPED, STOPPED_BEFORE)
        for index, step in enumerate(scenario.steps[first:], first)
    ]


def assert_outcome(step: Assert, evaluation: Evaluation) -> tuple[Status, str]:
    """An ``assert`` step's status and detail (the values observed, after the step's message
    if it failed): the same in both runners."""
    detail = evaluation.describe()
    if step.message and not evaluation.passed:
        detail = f"{step.message} ({detail})"
    return (Status.OK if evaluation.passed else Status.FAILED), detail
