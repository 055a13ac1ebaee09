"""What a lesson says: its narration in plain words, and the summary of what was measured.

Pure functions of what the runners report, so the words are the same on real nodes and in the
simulator:

- each step as it starts (:func:`step_started`: "The network is cut in two...") and as it ends,
  with what was observed (:func:`step_ended`: the values a wait or a check saw);
- on real nodes, the nodes' own events as the dashboard's monitor receives them
  (:class:`EventNarrator`: a new block, a reorganisation, a payment back in a mempool);
- in the simulator, what happened during each step, read from the trace
  (:func:`trace_digest_line`: blocks found by each miner, reorganisations and their depth);
- at the end, :func:`summarise`: the numbers of the run's :class:`ScenarioResult` (stale
  blocks, reorganisation depths, each miner's share of the chain against its hash power,
  confirmation times, the supply against the cap, whether an attack succeeded), and
  headlines that say them in a sentence each.

What this module does not do: run anything (:mod:`node.dashboard.lesson_runs` does).
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from node.lab import plot
from node.lab.outcome import ScenarioResult, Status, StepOutcome
from node.lab.report import as_json, duration
from node.lab.scenario import (
    Assert,
    Heal,
    Kill,
    Mine,
    Note,
    Partition,
    Restart,
    Scenario,
    Send,
    SetLatency,
    SetShare,
    Step,
    Wait,
    format_coins,
)
from node.lab.trace import TraceEvent, TraceKind


def step_started(index: int, step: Step) -> str:
    """What a step is about to do, in plain words."""
    if isinstance(step, Note):
        return step.text
    if isinstance(step, Partition):
        sides = " | ".join(", ".join(group) for group in step.groups)
        return f"The network is cut: {sides} can no longer reach each other."
    if isinstance(step, Heal):
        return "The partition is lifted: the nodes reconnect and compare their chains."
    if isinstance(step, Kill):
        return f"{step.node} crashes."
    if isinstance(step, Restart):
        return f"{step.node} starts again and catches up."
    if isinstance(step, SetLatency):
        return f"The link {step.a} – {step.b} now takes {duration(step.seconds)} each way."
    if isinstance(step, SetShare):
        return f"{step.miner} now holds {step.share:.0%} of the hash power."
    if isinstance(step, Send):
        via = f" through {step.via}" if step.via else ""
        label = f" ({step.label})" if step.label else ""
        spend = f", spending the same coin as {step.conflicts}" if step.conflicts else ""
        return (
            f"{step.sender} pays {format_coins(step.amount)} coins to {step.to}{via}{label}{spend}."
        )
    if isinstance(step, Mine):
        blocks = "a block" if step.blocks == 1 else f"{step.blocks} blocks"
        if step.node is not None:
            return f"{step.node} mines {blocks} now."
        if step.miner is not None:
            return f"{step.miner} finds {blocks}."
        return f"The miners find {blocks}, each at its share of the hash power."
    if isinstance(step, Wait):
        mining = " while the miners mine" if step.mining else ""
        if step.until is None:
            return f"Time passes: {duration(step.seconds or 0.0)}{mining}."
        return f"Waiting until {step.until}{mining}."
    assert isinstance(step, Assert), f"step {index + 1}: {step.describe()}"
    return f"Check: {_sentence(step.message or str(step.that))}"


def _sentence(text: str) -> str:
    return text if text[-1:] in ".?!" else text + "."


def step_ended(step: Step, outcome: StepOutcome) -> str | None:
    """What a step's end showed; None when there is nothing to add (a note, a quiet step)."""
    if outcome.status is Status.STOPPED:
        return "The lesson was stopped during this step."
    if isinstance(step, Note):
        return None
    if isinstance(step, Assert):
        mark = "✓" if outcome.status is Status.OK else "✗"
        return f"{mark} {step.message or step.that}: {outcome.detail}"
    if outcome.status is Status.FAILED:
        return f"✗ {step.describe()} failed: {outcome.detail}"
    if outcome.status is Status.SKIPPED:
        return f"skipped ({outcome.detail})"
    waited = _AFTER.fullmatch(outcome.detail)
    if waited:
        return f"done after {duration(float(waited.group(1)))} of the scenario's time."
    if outcome.detail:
        return f"done: {outcome.detail}."
    return None


_AFTER = re.compile(r"after ([-+.0-9e]+) s")
"""A wait's detail (both runners): how long the condition took to hold."""


def trace_digest_line(events: Iterable[TraceEvent]) -> str | None:
    """What the simulator's trace shows happened during one step, in a sentence."""
    found: Counter[str] = Counter()
    switches = 0
    deepest = 0
    for event in events:
        if event.kind is TraceKind.BLOCK_FOUND:
            found[str(event.get("miner", "?"))] += 1
        elif event.kind is TraceKind.REORG:
            switches += 1
            deepest = max(deepest, int(event.get("depth", 0) or 0))
    parts = []
    if found:
        total = sum(found.values())
        by = ", ".join(f"{miner} {count}" for miner, count in found.most_common())
        parts.append(f"{total} block{'s' if total != 1 else ''} found ({by})")
    if switches:
        parts.append(
            f"{switches} reorganisation{'s' if switches != 1 else ''} across the nodes, "
            f"the deepest {deepest} block{'s' if deepest != 1 else ''}"
        )
    return "Meanwhile: " + "; ".join(parts) + "." if parts else None


class EventNarrator:
    """Node events (as the monitor forwards them) in plain words: each new block once, each
    reorganisation, each payment a reorganisation sent back to a mempool."""

    def __init__(self) -> None:
        self._blocks: set[str] = set()

    def line(self, node: str, event: dict[str, Any]) -> str | None:
        kind = event.get("type")
        if kind == "block_connected":
            block = str(event.get("hash", ""))
            if block in self._blocks:
                return None
            self._blocks.add(block)
            txs = int(event.get("txs", 1)) - 1
            payments = f", {txs} payment{'s' if txs != 1 else ''}" if txs > 0 else ""
            return (
                f"{node} has a new block at height {event.get('height')} ({block[:8]}{payments})."
            )
        if kind == "reorg":
            depth = int(event.get("depth", 0))
            return (
                f"{node} reorganised: {depth} block{'s' if depth != 1 else ''} above height "
                f"{event.get('fork_height')} replaced by {event.get('connected')} from the other "
                "branch."
            )
        if kind == "tx_accepted" and event.get("source") == "reorg":
            return f"{node}: payment {str(event.get('txid', ''))[:8]} is back in the mempool."
        return None


# ---------------------------------------------------------------------------------- summary


@dataclass(frozen=True)
class AttackRate:
    """How often a double spend succeeded over several simulated runs."""

    miner: str
    share: float
    runs: int
    succeeded: int
    seeds: tuple[int, int]
    """The first and last seed run."""
    wall_seconds: float
    complete: bool
    """False if the run was stopped or hit the time budget before every seed ran."""

    def as_json(self) -> dict[str, Any]:
        return {
            **dataclasses.asdict(self),
            "rate": self.succeeded / self.runs if self.runs else None,
        }

    def headline(self) -> str:
        seeds = f"seeds {self.seeds[0]}–{self.seeds[1]}"
        return (
            f"At {self.share:.0%} of the hash power, the attack succeeded in {self.succeeded} of "
            f"{self.runs} simulated runs ({seeds})."
        )


@dataclass(frozen=True)
class Summary:
    """What a lesson measured: the report's numbers and their headlines."""

    passed: bool
    backend: str
    headlines: tuple[str, ...]
    checks: tuple[tuple[str, bool, str], ...]
    """(what the lesson expects, whether it held, what was observed), for each assert."""
    report: dict[str, Any]
    """The fork lab's JSON report (node/lab/report.py) without the tree's block list."""
    tree_svg: str | None
    """The report's picture of the tree and the miners' shares (simulated runs)."""
    attack_succeeded: bool | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "backend": self.backend,
            "headlines": list(self.headlines),
            "checks": [
                {"expects": text, "ok": ok, "observed": observed}
                for text, ok, observed in self.checks
            ],
            "report": self.report,
            "tree_svg": self.tree_svg,
            "attack_succeeded": self.attack_succeeded,
        }


ATTACK_PROBE = "attack_succeeded({miner})"
"""The condition the runs append (as a last, quiet check) to learn whether an attack worked."""


def summarise(result: ScenarioResult, *, probe: str | None = None, svg: bool = False) -> Summary:
    """The summary of ``result``; ``probe`` is the appended check's condition, if any (its
    outcome is the attack's, and it is not counted among the lesson's own checks)."""
    steps = list(zip(result.scenario.steps, result.steps, strict=False))
    attack = None
    if probe is not None and steps and str(getattr(steps[-1][0], "that", "")) == probe:
        if steps[-1][1].status is not Status.STOPPED:
            attack = steps[-1][1].status is Status.OK
        steps = steps[:-1]
    checks = tuple(
        (step.message or str(step.that), outcome.status is Status.OK, outcome.detail)
        for step, outcome in steps
        if isinstance(step, Assert)
    )
    passed = result.crash is None and all(o.ok for _, o in steps) and not result.violations
    report = {k: v for k, v in as_json(result).items() if k != "blocks"}
    return Summary(
        passed=passed,
        backend=result.backend,
        headlines=tuple(headlines(result, attack)),
        checks=checks,
        report=report,
        tree_svg=plot.svg(result) if svg else None,
        attack_succeeded=attack,
    )


def headlines(result: ScenarioResult, attack: bool | None) -> list[str]:
    """The run's numbers, a sentence each."""
    a = result.analysis
    scenario: Scenario = result.scenario
    params = scenario.network_params()
    lines = []
    if result.crash:
        lines.append(f"The run ended early: {result.crash}")
    if result.stopped:
        first = next(s for s in result.steps if s.status is Status.STOPPED)
        lines.append(
            f"The run was stopped at step {first.index + 1} of {len(result.steps)}; "
            "what follows is what happened until then."
        )
    reorg_count = sum(n for _, n in a.reorgs)
    stale = len(a.stale)
    lines.append(
        f"{len(a.blocks)} blocks found, {stale} stale (stale rate {a.stale_rate:.1%} after "
        f"funding); the chain is {a.height} blocks high."
    )
    if reorg_count:
        lines.append(
            f"{reorg_count} reorganisation{'s' if reorg_count != 1 else ''}, "
            f"the deepest {a.max_reorg_depth} block{'s' if a.max_reorg_depth != 1 else ''}."
        )
    else:
        lines.append("No node ever had to reorganise.")
    for m in a.miners:
        if m.main_share is not None:
            lines.append(
                f"{m.name} ({m.strategy}) held {m.hash_share:.1%} of the hash power and found "
                f"{m.main_share:.1%} of the chain's blocks ({m.main} of them, {m.found} found)."
            )
    for t in a.transactions:
        if t.delay is not None:
            lines.append(
                f"The {t.label} was confirmed {duration(t.delay)} after it was sent "
                f"({t.confirmations} confirmation{'s' if t.confirmations != 1 else ''} now)."
            )
        else:
            lines.append(f"The {t.label} is not on the best chain at the end.")
    if a.supply is not None:
        cap = format_coins(params.supply_cap)
        lines.append(
            f"{format_coins(a.supply)} coins exist of a cap of {cap}; the next block may "
            f"create {format_coins(params.subsidy(a.height + 1))}."
        )
    if attack is not None:
        lines.append(
            "The attack succeeded: the merchant's node holds the attacker's refund, not the "
            "payment."
            if attack
            else "The attack failed: the merchant kept the payment."
        )
    wall = f"{result.wall_seconds:.1f} s of real time"
    where = "in the simulator" if result.backend == "simulator" else "on real nodes"
    lines.append(f"It took {duration(result.duration)} of the scenario's time, {wall} {where}.")
    return lines
