"""The fork fuzzer: random networks, random trouble, and the invariants after each run.

Run ``seed`` builds a random scenario from ``seed`` alone (:func:`generate`) and runs it in the
simulator with the same seed, so ``forklab fuzz --seed S --runs N`` runs seeds S to S+N-1 and
any of them can be run again by itself. A scenario has:

- a few nodes (``--nodes``, 4 by default) in a random topology (line, ring, mesh, random:2),
  some persistent and some not (a restart then starts from genesis), a few with skewed clocks;
- a random default latency, and a few links with their own latency, jitter, loss, bandwidth;
- two funded wallets, with a short coinbase maturity (so funding takes a few blocks), and
  sometimes a short halving interval (so the subsidy runs out within the run);
- one to three miners: an honest one, and others that are honest, selfish, censoring (with or
  without orphaning) or double-spending;
- 3 to 12 random steps: partitions, heals, crashes and restarts, latency and hash power
  changes, payments, double spends of earlier payments (sent on the other side of a partition
  they confirm on both), blocks by hash power or on a node, and waits.

Steps that cannot be done when their turn comes (restarting a running node, paying without
coins) are skipped (``step_errors = "skip"``). After the steps, the invariants of
:mod:`node.lab.invariants` are checked.

A failing run is shrunk (:mod:`node.lab.shrink`) to a minimal scenario violating the same
invariant (or crashing again), and written as a scenario file; running that file with
``forklab scenario run`` runs exactly the shrunk case again: same steps, same seed, same trace
digest, same violation.

Cost: a run of four nodes, a dozen steps and a few dozen blocks takes about a tenth of a second
on one core, so a few hundred runs fit in CI.

What this module does not do: print (``forklab fuzz`` does) or decide what an invariant is.
"""

from __future__ import annotations

import random
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from node.lab.invariants import DEFAULT_INVARIANTS
from node.lab.outcome import ScenarioResult
from node.lab.runner_sim import run_scenario
from node.lab.scenario import (
    Censoring,
    DoubleSpend,
    Heal,
    Honest,
    Kill,
    LinkDecl,
    Mine,
    MinerDecl,
    NodeDecl,
    Partition,
    Restart,
    Scenario,
    Selfish,
    Send,
    SetLatency,
    SetShare,
    Step,
    StrategySpec,
    Wait,
)
from node.lab.scenario_toml import dump_scenario
from node.lab.shrink import shrink_scenario
from node.lab.sim import derive_rng

WALLETS = ("alice", "bob")
MIN_NODES = 2
MAX_NODES = 16
TIME_LIMIT = 7 * 86400.0
"""Simulated seconds a case may take: ten times what the longest ones need, so a case that
would never end (a node that cannot stop, miners waiting forever) is a failure to shrink."""
CRASH = "crash"
"""The failure of a run that raised instead of finishing."""


@dataclass(frozen=True)
class FuzzRun:
    seed: int
    scenario: Scenario
    violations: tuple[tuple[str, tuple[str, ...]], ...]
    """(invariant, problems) for each invariant that did not hold."""
    crash: str | None
    trace_digest: str | None
    blocks: int
    wall_seconds: float

    @property
    def invariants(self) -> tuple[str, ...]:
        return self.scenario.invariants

    @property
    def failed(self) -> bool:
        return self.crash is not None or bool(self.violations)

    @property
    def failure(self) -> str | None:
        """What failed first: ``crash``, or the first violated invariant's name."""
        if self.crash is not None:
            return CRASH
        return self.violations[0][0] if self.violations else None

    def as_json(self) -> dict[str, object]:
        return {
            "seed": self.seed,
            "invariants": list(self.invariants),
            "passed": not self.failed,
            "violations": [{"invariant": n, "problems": list(p)} for n, p in self.violations],
            "crash": self.crash,
            "trace_digest": self.trace_digest,
            "steps": len(self.scenario.steps),
            "blocks": self.blocks,
            "wall_seconds": self.wall_seconds,
        }


@dataclass(frozen=True)
class FuzzFailure:
    run: FuzzRun
    shrunk: FuzzRun
    """The minimal scenario's own run: what replaying it gives."""

    @property
    def reproduction(self) -> str:
        """The shrunk scenario as a file, with how it was found and how to replay it."""
        shrunk = (
            f"# shrunk from {len(self.run.scenario.steps)} steps "
            f"to {len(self.shrunk.scenario.steps)}"
            if self.shrunk is not self.run
            else "# not shrunk"
        )
        header = [
            f"# forklab fuzz --seed {self.run.seed} --runs 1 --nodes "
            f"{len(self.run.scenario.nodes)}: {self.run.failure}",
            shrunk,
            f"# replay: forklab scenario run fuzz-{self.run.seed}.toml "
            f"(trace {self.shrunk.trace_digest})",
        ]
        return "\n".join(header) + "\n" + dump_scenario(self.shrunk.scenario)

    def as_json(self) -> dict[str, object]:
        return {
            "seed": self.run.seed,
            "failure": self.run.failure,
            "original_steps": len(self.run.scenario.steps),
            "shrunk_steps": len(self.shrunk.scenario.steps),
            "shrunk": self.shrunk.as_json(),
            "reproduction": self.reproduction,
        }


# ------------------------------------------------------------------------------ generate


def generate(seed: int, nodes: int = 4) -> Scenario:
    """The random scenario of run ``seed`` (see the module docstring)."""
    if not MIN_NODES <= nodes <= MAX_NODES:
        raise ValueError(f"a fuzzer network has {MIN_NODES} to {MAX_NODES} nodes, not {nodes}")
    rng = derive_rng(seed, "fuzz")
    names = [f"n{i}" for i in range(1, nodes + 1)]
    node_decls = tuple(
        NodeDecl(
            name,
            clock_offset=rng.choice((0.0, 0.0, 0.0, rng.uniform(-900.0, 900.0))),
            persistent=rng.random() < 0.7,
        )
        for name in names
    )
    params = [("coinbase_maturity", rng.randint(1, 4))]
    if rng.random() < 0.3:
        params.insert(0, ("halving_interval", rng.randint(2, 12)))
    funding = len(WALLETS) + dict(params)["coinbase_maturity"]
    miners = _miners(rng, names, funding)
    links = tuple(_link(rng, names) for _ in range(rng.randint(0, 2)))
    topologies = ["line", "ring", "mesh"] + (["random:2"] if nodes > 3 else [])
    steps = _Steps(rng, names, [m.name for m in miners]).generate(rng.randint(3, 12))
    return Scenario(
        name=f"fuzz-{seed}",
        title=f"fuzzer case {seed}",
        seed=seed,
        nodes=node_decls,
        params=tuple(params),
        topology=rng.choice(topologies),
        latency=rng.choice((0.01, 0.05, 0.2, 1.0)),
        wallets=WALLETS,
        miners=miners,
        links=links,
        steps=steps,
        invariants=DEFAULT_INVARIANTS,
        step_errors="skip",
        time_limit=TIME_LIMIT,
    )


def _link(rng: random.Random, names: Sequence[str]) -> LinkDecl:
    a, b = rng.sample(names, 2)
    return LinkDecl(
        a,
        b,
        latency=rng.choice((0.0, 0.5, 5.0, 30.0)),
        jitter=rng.choice((0.0, 0.0, 0.2)),
        bandwidth=rng.choice((None, None, 20_000.0)),
        loss=rng.choice((0.0, 0.0, 0.1)),
    )


def _miners(rng: random.Random, names: Sequence[str], funding: int) -> tuple[MinerDecl, ...]:
    miners = [MinerDecl("m1", rng.choice(names), round(rng.uniform(0.2, 1.0), 3))]
    for number in range(2, rng.randint(1, 3) + 1):
        kind = rng.choice(("honest", "selfish", "censoring", "double-spend"))
        strategy: StrategySpec
        if kind == "selfish":
            strategy = Selfish(publish_via=tuple(rng.sample(names, rng.randint(0, 1))))
        elif kind == "censoring":
            strategy = Censoring(
                addresses=(rng.choice(WALLETS),),
                orphan=rng.random() < 0.5,
                give_up_after=rng.choice((None, 2, 4)),
            )
        elif kind == "double-spend":
            strategy = DoubleSpend(
                merchant=rng.choice(WALLETS),
                amount=rng.randint(1, 5) * 100_000_000,
                start_height=funding + rng.randint(2, 6),
                merchant_node=rng.choice(names),
                confirmations=rng.randint(1, 3),
                give_up_behind=rng.randint(2, 4),
            )
        else:
            strategy = Honest()
        share = round(rng.uniform(0.1, 0.8), 3)
        miners.append(MinerDecl(f"m{number}", rng.choice(names), share, strategy))
    return tuple(miners)


class _Steps:
    """Random steps that are mostly possible when their turn comes (a kill picks a running
    node, a restart a killed one), tracking what the earlier steps did."""

    def __init__(self, rng: random.Random, names: Sequence[str], miners: Sequence[str]) -> None:
        self.rng = rng
        self.names = list(names)
        self.miners = list(miners)
        self.down: set[str] = set()
        self.labels: list[str] = []
        self.generators: list[tuple[int, Callable[[], Step | None]]] = [
            (15, self.partition),
            (10, Heal),
            (7, self.kill),
            (7, self.restart),
            (6, self.latency),
            (4, self.share),
            (12, self.send),
            (8, self.double_spend),
            (20, lambda: Mine(blocks=self.rng.randint(1, 4))),
            (8, lambda: Mine(blocks=self.rng.randint(1, 3), node=self.rng.choice(self.up()))),
            (10, lambda: Wait(seconds=self.rng.choice((10.0, 60.0, 600.0)))),
            (4, lambda: Wait(seconds=self.rng.choice((600.0, 1800.0)), mining=True)),
        ]

    def up(self) -> list[str]:
        return [n for n in self.names if n not in self.down] or self.names

    def generate(self, count: int) -> tuple[Step, ...]:
        steps: list[Step] = []
        weights = [w for w, _ in self.generators]
        while len(steps) < count:
            ((_, make),) = self.rng.choices(self.generators, weights=weights)
            step = make()
            if step is not None:
                steps.append(step)
        return tuple(steps)

    def partition(self) -> Step:
        shuffled = self.rng.sample(self.names, len(self.names))
        cut = self.rng.randint(1, len(shuffled) - 1)
        return Partition((tuple(sorted(shuffled[:cut])), tuple(sorted(shuffled[cut:]))))

    def kill(self) -> Step | None:
        running = [n for n in self.names if n not in self.down]
        if len(running) < 2:
            return None
        node = self.rng.choice(running)
        self.down.add(node)
        return Kill(node)

    def restart(self) -> Step | None:
        if not self.down:
            return None
        node = self.rng.choice(sorted(self.down))
        self.down.discard(node)
        return Restart(node)

    def latency(self) -> Step:
        a, b = self.rng.sample(self.names, 2)
        return SetLatency(a, b, self.rng.choice((0.0, 0.1, 2.0, 20.0)))

    def share(self) -> Step:
        return SetShare(self.rng.choice(self.miners), round(self.rng.uniform(0.0, 1.0), 3))

    def send(self) -> Step:
        sender, recipient = self.rng.sample(WALLETS, 2)
        label = f"tx{len(self.labels) + 1}"
        self.labels.append(label)
        amount = self.rng.randint(1, 20) * 10_000_000
        return Send(sender, recipient, amount, via=self.rng.choice(self.up()), label=label)

    def double_spend(self) -> Step | None:
        if not self.labels:
            return None
        label = f"tx{len(self.labels) + 1}"
        conflicts = self.rng.choice(self.labels)
        self.labels.append(label)
        sender = "alice" if conflicts else "bob"
        return Send(
            sender,
            self.rng.choice((*WALLETS, "carol")),
            self.rng.randint(1, 10) * 10_000_000,
            via=self.rng.choice(self.up()),
            label=label,
            conflicts=conflicts,
        )


# ----------------------------------------------------------------------------------- run


def run_case(scenario: Scenario, seed: int | None = None) -> FuzzRun:
    """Run ``scenario`` and report its invariants; a run that raises is a crash, reported."""
    started = time.perf_counter()
    run_seed = scenario.seed if seed is None else seed
    try:
        result: ScenarioResult | None = run_scenario(scenario, seed=run_seed)
        crash = None
    except Exception as exc:  # the fuzzer's job is to find these, and report them
        result = None
        crash = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}".rstrip()
    if result is not None and result.crash is not None:
        crash = result.crash
    return FuzzRun(
        seed=run_seed,
        scenario=scenario,
        violations=tuple((i.name, i.problems) for i in result.violations) if result else (),
        crash=crash,
        trace_digest=result.trace_digest if result else None,
        blocks=len(result.analysis.mined) if result else 0,
        wall_seconds=time.perf_counter() - started,
    )


def shrink(run: FuzzRun) -> FuzzFailure:
    """The minimal scenario that fails as ``run`` did, and its own run."""
    wanted = run.failure

    def fails(candidate: Scenario) -> bool:
        return run_case(candidate, run.seed).failure == wanted

    minimal = shrink_scenario(run.scenario, fails)
    return FuzzFailure(run, run_case(minimal, run.seed))


@dataclass(frozen=True)
class FuzzReport:
    seed: int
    nodes: int
    runs: tuple[FuzzRun, ...]
    failures: tuple[FuzzFailure, ...]
    wall_seconds: float

    @property
    def cases_per_second(self) -> float:
        return len(self.runs) / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def as_json(self) -> dict[str, object]:
        return {
            "seed": self.seed,
            "nodes": self.nodes,
            "cases": len(self.runs),
            "passed": not self.failures,
            "runs": [run.as_json() for run in self.runs],
            "failures": [failure.as_json() for failure in self.failures],
            "wall_seconds": self.wall_seconds,
            "cases_per_second": self.cases_per_second,
        }


def fuzz(
    seed: int,
    runs: int,
    *,
    nodes: int = 4,
    shrink_failures: bool = True,
    on_run: Callable[[FuzzRun], None] | None = None,
) -> FuzzReport:
    """Runs ``seed`` .. ``seed + runs - 1``; failures shrunk unless ``shrink_failures`` is off."""
    started = time.perf_counter()
    done: list[FuzzRun] = []
    failures: list[FuzzFailure] = []
    for run_seed in range(seed, seed + runs):
        run = run_case(generate(run_seed, nodes))
        done.append(run)
        if on_run is not None:
            on_run(run)
        if run.failed and shrink_failures:
            failures.append(shrink(run))
        elif run.failed:
            failures.append(FuzzFailure(run, run))
    return FuzzReport(seed, nodes, tuple(done), tuple(failures), time.perf_counter() - started)
