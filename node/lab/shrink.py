"""Shrinking a failing scenario to a minimal one that fails the same way.

:func:`ddmin` is Zeller's delta debugging ("Simplifying and isolating failure-inducing input",
2002): it tries ever smaller pieces of the step list, and the complements of those pieces,
keeping any that still fail, until removing any single step makes the failure go away (the
result is *1-minimal*). It needs O(n²) runs at worst and about O(n log n) in practice; a run of
a small fuzzer scenario takes a tenth of a second.

:func:`shrink_scenario` applies it to the steps, then tries removing each miner and each link
property that no remaining step needs. "Fails the same way" is the caller's predicate: the
fuzzer asks for the same violated invariant (or a crash again), so a shrunk case is not a
different bug that happened to appear on the way.

What this module does not do: run scenarios (the predicate does) or decide what a failure is.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from node.lab.scenario import Mine, Scenario, ScenarioError, SetShare, Step

T = TypeVar("T")


def ddmin(items: Sequence[T], fails: Callable[[list[T]], bool]) -> list[T]:
    """A 1-minimal sublist of ``items`` (order kept) for which ``fails`` still holds.

    ``fails(items)`` itself is assumed true; each distinct candidate is tried once.
    """
    tried: dict[tuple[int, ...], bool] = {}
    indexes = list(range(len(items)))

    def check(candidate: list[int]) -> bool:
        key = tuple(candidate)
        if key not in tried:
            tried[key] = fails([items[i] for i in candidate])
        return tried[key]

    if check([]):
        return []
    granularity = 2
    while len(indexes) >= 2:
        size = -(-len(indexes) // granularity)
        chunks = [indexes[i : i + size] for i in range(0, len(indexes), size)]
        reduced = False
        for chunk in chunks:
            if check(chunk):
                indexes, granularity, reduced = chunk, 2, True
                break
        if not reduced and len(chunks) > 2:
            for chunk in chunks:
                complement = [i for i in indexes if i not in chunk]
                if check(complement):
                    indexes, granularity, reduced = complement, max(granularity - 1, 2), True
                    break
        if not reduced:
            if granularity >= len(indexes):
                break
            granularity = min(len(indexes), 2 * granularity)
    return [items[i] for i in indexes]


def shrink_scenario(scenario: Scenario, fails: Callable[[Scenario], bool]) -> Scenario:
    """The smallest variant of ``scenario`` found that still ``fails`` (module docstring)."""

    def attempt(base: Scenario, **changes: Any) -> Scenario | None:
        try:
            candidate = dataclasses.replace(base, **changes)
        except ScenarioError:
            return None  # e.g. a condition naming a send that was removed with the rest
        return candidate if fails(candidate) else None

    def steps_fail(steps: list[Step]) -> bool:
        return attempt(scenario, steps=tuple(steps)) is not None

    best = scenario.with_steps(ddmin(list(scenario.steps), steps_fail))
    for miner in best.miners:
        if len(best.miners) > 1 and not _needed(best, miner.name):
            found = attempt(best, miners=tuple(m for m in best.miners if m != miner))
            best = found if found is not None else best
    for link in best.links:
        found = attempt(best, links=tuple(x for x in best.links if x != link))
        best = found if found is not None else best
    return best


def _needed(scenario: Scenario, miner: str) -> bool:
    """Whether a step names ``miner`` (a condition naming it keeps it too: the model checks)."""
    return any(isinstance(step, Mine | SetShare) and step.miner == miner for step in scenario.steps)
