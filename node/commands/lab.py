"""``forklab experiment``, ``forklab scenario``, ``forklab fuzz``: the fork lab's commands.

::

    forklab experiment selfish-mining --alpha 0.35 --gamma 0.5 --blocks 2000 --seed 1
    forklab experiment stale-rate --delay 60 --interval 600 --blocks 2000 --seed 1 --json

    forklab scenario list [--json]              the built-in scenarios
    forklab scenario show NAME                  a built-in's file, to copy and change
    forklab scenario run FILE|NAME [--real] [--seed S] [--json] [--report-dir D]

    forklab fuzz --seed S --runs N [--nodes K] [--json] [--save DIR]

**Experiments** print the measured value beside the published formula, with the run's standard
error and how many standard errors apart they are, then the size of the run and its trace digest
(the same seed gives the same digest on any machine). ``--json`` prints one object instead; its
keys are the fields of :class:`~node.lab.experiments.SelfishMiningResult` and
:class:`~node.lab.experiments.StaleRateResult` (``revenue_share`` and ``stale_rate`` among them).
The experiments themselves, and why their networks look as they do, are described in
:mod:`node.lab.experiments`.

**Scenarios** run in the simulator, or with ``--real`` on a devnet of real node processes made
for the run and taken down after (``--block-time`` sets its pace; steps are narrated on stderr
as they finish). The report goes to stdout as text, or with ``--json`` as one object
(:mod:`node.lab.report`); ``--report-dir`` also writes ``report.txt``, ``report.json``,
``tree.svg`` and, from the simulator, the trace (``trace.jsonl``). Exit status 1 if an assert,
a wait or an invariant failed. Ctrl-C stops a run cleanly: the step under way ends, the report
says which steps were ``stopped`` (a real run's devnet is taken down as usual), and the exit
status is 130; a second Ctrl-C interrupts at once.

**Fuzz** runs seeds S to S+N-1 (:mod:`node.lab.fuzz`) and prints a summary; each failure with
its seed and a minimal scenario file that reproduces it (``--save`` writes them as
``fuzz-SEED.toml``). ``--json`` prints one object: ``runs`` holds, per run, its ``seed``, the
``invariants`` checked and its ``trace_digest``. Exit status 1 if any run failed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import TypeAlias

from node.lab import plot, report
from node.lab.experiments import (
    EXPERIMENT_INTERVAL,
    SelfishMiningResult,
    StaleRateResult,
    run_selfish_mining,
    run_stale_rate,
)
from node.lab.fuzz import MAX_NODES, MIN_NODES, FuzzReport, FuzzRun, fuzz
from node.lab.outcome import ScenarioResult, Status, StepOutcome
from node.lab.runner_real import BLOCK_TIME, run_real, unsupported
from node.lab.runner_sim import run_scenario
from node.lab.scenario import ScenarioError
from node.lab.scenarios import builtin, find, names, text
from node.lab.trace import Trace

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def register(subparsers: Subparsers) -> None:
    _register_experiment(subparsers)
    _register_scenario(subparsers)
    _register_fuzz(subparsers)


def _register_experiment(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "experiment",
        help="reproduce a known result (selfish mining, stale blocks) in the simulator",
        description="Run an experiment of the fork lab: real nodes, simulated time and hash power.",
    )
    kinds = parser.add_subparsers(dest="experiment", metavar="EXPERIMENT", required=True)

    selfish = kinds.add_parser(
        "selfish-mining",
        help="a selfish pool's share of the chain against Eyal and Sirer's formula",
        description=(
            "A pool with hash share A mines selfishly (Eyal and Sirer, 2014); a share G of the "
            "honest hash power hears the pool's block first in a race. Prints the pool's share "
            "of the final chain beside the closed-form value."
        ),
    )
    selfish.add_argument(
        "--alpha", type=_share, required=True, metavar="A", help="the pool's share of hash power"
    )
    selfish.add_argument(
        "--gamma",
        type=_fraction,
        required=True,
        metavar="G",
        help="share of honest hash power that mines on the pool's block in a race",
    )
    _common(selfish, interval_help="seconds between blocks; the result does not depend on it")
    selfish.set_defaults(handler=_run_selfish)

    stale = kinds.add_parser(
        "stale-rate",
        help="stale blocks when blocks take a while to reach the miners",
        description=(
            "Every block reaches every miner --delay seconds after it is found. Prints the share "
            "of heights with a stale block beside 1 - e^(-delay/interval), and the stale share "
            "of all blocks beside delay / (delay + interval)."
        ),
    )
    stale.add_argument(
        "--delay",
        type=_seconds,
        required=True,
        metavar="SECONDS",
        help="how long a block takes to reach every miner",
    )
    _common(stale, interval_help="seconds between blocks")
    stale.set_defaults(handler=_run_stale)


def _common(parser: argparse.ArgumentParser, *, interval_help: str) -> None:
    parser.add_argument(
        "--interval",
        type=_seconds,
        default=EXPERIMENT_INTERVAL,
        metavar="SECONDS",
        help=f"{interval_help} (default {EXPERIMENT_INTERVAL:g})",
    )
    parser.add_argument(
        "--blocks", type=_count, default=2000, metavar="N", help="blocks to find (default 2000)"
    )
    parser.add_argument("--seed", type=int, default=1, metavar="S", help="run seed (default 1)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _run_selfish(args: argparse.Namespace) -> int:
    result = run_selfish_mining(
        args.alpha, args.gamma, args.blocks, args.seed, interval=args.interval
    )
    print(json.dumps(result.as_json()) if args.json else _selfish_text(result))
    return 0


def _run_stale(args: argparse.Namespace) -> int:
    result = run_stale_rate(args.delay, args.interval, args.blocks, args.seed)
    print(json.dumps(result.as_json()) if args.json else _stale_text(result))
    return 0


def _selfish_text(r: SelfishMiningResult) -> str:
    verdict = "pays" if r.analytic > r.alpha else "does not pay"
    return "\n".join(
        [
            f"selfish mining: alpha {r.alpha:g}, gamma {r.gamma:g}, {r.blocks} blocks, "
            f"seed {r.seed}",
            "",
            f"  pool's share of the chain   {r.revenue_share:.4f} ± {r.standard_error:.4f}",
            f"  Eyal and Sirer              {r.analytic:.4f}   ({_apart(r.deviation)})",
            f"  its share of hash power     {r.alpha:.4f}   (what honest mining earns)",
            f"  selfish mining {verdict} here: it pays above alpha {r.threshold:.4f} "
            f"when gamma is {r.gamma:g}",
            "",
            _footer(
                r.main_chain, r.stale_blocks, r.virtual_seconds, r.wall_seconds, r.trace_digest
            ),
        ]
    )


def _stale_text(r: StaleRateResult) -> str:
    return "\n".join(
        [
            f"stale blocks: delay {r.delay:g} s, interval {r.interval:g} s, {r.blocks} blocks, "
            f"seed {r.seed}",
            "",
            f"  heights with a stale block   {r.stale_rate:.4f} ± {r.stale_rate_error:.4f}",
            f"  1 - e^(-delay/interval)      {r.analytic:.4f}   ({_apart(r.deviation)})",
            f"  stale share of all blocks    {r.stale_fraction:.4f} ± {r.stale_fraction_error:.4f}",
            f"  delay / (delay + interval)   {r.stale_fraction_analytic:.4f}   "
            f"({_apart(r.fraction_deviation)})",
            "",
            _footer(
                r.main_chain, r.stale_blocks, r.virtual_seconds, r.wall_seconds, r.trace_digest
            ),
        ]
    )


def _apart(deviation: float) -> str:
    return f"{deviation:+.2f} standard errors"


def _footer(chain: int, stale: int, virtual: float, wall: float, digest: str) -> str:
    days = virtual / 86400
    return (
        f"  chain of {chain} blocks, {stale} stale; {days:.1f} days of network time "
        f"in {wall:.1f} s\n  trace {digest}"
    )


# -- scenarios


def _register_scenario(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "scenario",
        help="run a scenario file or a built-in lesson, in the simulator or on real nodes",
        description="Scenarios: a network, miners and a timeline of steps (docs/forklab.md).",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser(
        "list", help="the built-in scenarios", description="The built-in scenarios."
    )
    listing.add_argument("--json", action="store_true", help="print one JSON object")
    listing.set_defaults(handler=_list)
    show = actions.add_parser(
        "show",
        help="print a built-in scenario's file",
        description="Print a built-in scenario's file, to copy and change.",
    )
    show.add_argument("name", metavar="NAME", help="a built-in scenario")
    show.set_defaults(handler=_show)
    run = actions.add_parser(
        "run",
        help="run a scenario and print its report",
        description=(
            "Run a scenario file (or a built-in, by name) in the simulator, or with --real on a "
            "devnet of real node processes made for the run; print the report."
        ),
    )
    run.add_argument("scenario", metavar="FILE|NAME", help="a scenario file or a built-in's name")
    run.add_argument("--real", action="store_true", help="run on real node processes (a devnet)")
    run.add_argument("--seed", type=int, metavar="S", help="run seed (default: the scenario's own)")
    run.add_argument("--json", action="store_true", help="print the report as one JSON object")
    run.add_argument(
        "--report-dir",
        type=Path,
        metavar="D",
        help="also write report.txt, report.json, tree.svg (and trace.jsonl) there",
    )
    run.add_argument(
        "--block-time",
        type=_seconds,
        metavar="SECONDS",
        help=f"with --real: real seconds between blocks (default {BLOCK_TIME:g}); every "
        "duration of the scenario is scaled by block time / interval",
    )
    run.set_defaults(handler=_run_scenario)


def _list(args: argparse.Namespace) -> int:
    scenarios = [builtin(name) for name in names()]
    if args.json:
        print(
            json.dumps(
                {
                    "scenarios": [
                        {
                            "name": s.name,
                            "title": s.title,
                            "explanation": s.explanation.strip(),
                            "real": not unsupported(s),
                        }
                        for s in scenarios
                    ]
                }
            )
        )
        return 0
    width = max(len(s.name) for s in scenarios)
    print(f"{'name':<{width}}  real  title")
    for s in scenarios:
        real = "yes" if not unsupported(s) else "no"
        print(f"{s.name:<{width}}  {real:<4}  {s.title}")
    print(
        "\nrun one with: forklab scenario run NAME [--real]; "
        "see its file with: forklab scenario show NAME"
    )
    return 0


def _show(args: argparse.Namespace) -> int:
    sys.stdout.write(text(args.name))
    return 0


def _run_scenario(args: argparse.Namespace) -> int:
    if args.block_time is not None and not args.real:
        raise ScenarioError("--block-time paces real nodes: it goes with --real")
    scenario = find(args.scenario)
    trace = Trace(keep=args.report_dir is not None)
    stop = threading.Event()
    with _stop_on_interrupt(stop):
        if args.real:
            print(f"running {scenario.name} on a devnet of real nodes", file=sys.stderr, flush=True)
            block_time = BLOCK_TIME if args.block_time is None else args.block_time
            result = run_real(
                scenario, seed=args.seed, block_time=block_time, on_step=_narrate, stop=stop
            )
        else:
            result = run_scenario(scenario, seed=args.seed, trace=trace, stop=stop)
    if args.report_dir is not None:
        _write_report(result, args.report_dir, None if args.real else trace)
    print(json.dumps(report.as_json(result)) if args.json else report.as_text(result))
    if result.stopped:
        return 130  # as a shell reports a command ended by SIGINT
    return 0 if result.passed else 1


@contextlib.contextmanager
def _stop_on_interrupt(stop: threading.Event) -> Iterator[None]:
    """SIGINT sets ``stop`` (the run ends cleanly and reports); a second one interrupts."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers belong to the main thread; a caller elsewhere has its own
        return

    def on_interrupt(_signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        print("stopping the run (Ctrl-C again to interrupt it)", file=sys.stderr, flush=True)
        stop.set()

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _narrate(outcome: StepOutcome) -> None:
    mark = "" if outcome.status is Status.OK else f" ({outcome.status.value}: {outcome.detail})"
    print(f"  step {outcome.index + 1}: {outcome.description}{mark}", file=sys.stderr, flush=True)


def _write_report(result: ScenarioResult, folder: Path, trace: Trace | None) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "report.txt").write_text(report.as_text(result) + "\n", encoding="utf-8")
        (folder / "report.json").write_text(
            json.dumps(report.as_json(result), indent=2) + "\n", encoding="utf-8"
        )
        (folder / "tree.svg").write_text(plot.svg(result), encoding="utf-8")
        if trace is not None:
            trace.dump(folder / "trace.jsonl")
    except OSError as exc:
        raise ScenarioError(f"cannot write the report to {folder}: {exc}") from exc


# -- fuzz


def _register_fuzz(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "fuzz",
        help="random forks, crashes and attacks in the simulator, checking the invariants",
        description=(
            "Run random scenarios (seeds S to S+N-1) in the simulator and check the invariants "
            "after each; shrink every failure to a minimal scenario file that reproduces it."
        ),
    )
    parser.add_argument("--seed", type=int, default=1, metavar="S", help="first seed (default 1)")
    parser.add_argument(
        "--runs", type=_runs, default=100, metavar="N", help="how many runs (default 100)"
    )
    parser.add_argument(
        "--nodes",
        type=_nodes,
        default=4,
        metavar="K",
        help=f"nodes per network, {MIN_NODES} to {MAX_NODES} (default 4)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--save", type=Path, metavar="DIR", help="write each failure's scenario as fuzz-SEED.toml"
    )
    parser.add_argument(
        "--no-shrink", action="store_true", help="report failures as found, without shrinking"
    )
    parser.set_defaults(handler=_run_fuzz)


def _run_fuzz(args: argparse.Namespace) -> int:
    def on_run(run: FuzzRun) -> None:
        if run.failed and not args.json:
            print(f"seed {run.seed}: {run.failure}; shrinking...", file=sys.stderr, flush=True)

    result = fuzz(
        args.seed, args.runs, nodes=args.nodes, shrink_failures=not args.no_shrink, on_run=on_run
    )
    if args.save is not None:
        try:
            args.save.mkdir(parents=True, exist_ok=True)
            for failure in result.failures:
                path = args.save / f"fuzz-{failure.run.seed}.toml"
                path.write_text(failure.reproduction, encoding="utf-8")
        except OSError as exc:
            raise ScenarioError(f"cannot save the failures in {args.save}: {exc}") from exc
    print(json.dumps(result.as_json()) if args.json else _fuzz_text(result))
    return 0 if not result.failures else 1


def _fuzz_text(result: FuzzReport) -> str:
    last = result.seed + len(result.runs) - 1
    invariants = len(result.runs[0].invariants) if result.runs else 0
    lines = [
        f"fuzz: seeds {result.seed} to {last}, {result.nodes} nodes: {len(result.runs)} runs, "
        f"{invariants} invariants each, {result.cases_per_second:.1f} runs/s "
        f"({result.wall_seconds:.1f} s)",
    ]
    if not result.failures:
        lines.append("every invariant held in every run")
    for failure in result.failures:
        run = failure.run
        problems = (
            [f"crash: {run.crash}"]
            if run.crash
            else [f"{name}: {problem}" for name, found in run.violations for problem in found]
        )
        lines += ["", f"seed {run.seed} failed: {run.failure}"]
        lines += [f"  {p.splitlines()[0]}" for p in problems]
        what = (
            f"minimal scenario ({len(failure.shrunk.scenario.steps)} of "
            f"{len(run.scenario.steps)} steps)"
            if failure.shrunk is not run
            else "scenario (not shrunk)"
        )
        lines += [
            f"{what}, fuzz-{run.seed}.toml:",
            "",
            failure.reproduction,
        ]
    return "\n".join(lines)


# -- argument types: one clear sentence for a bad value


def _share(text: str) -> float:
    value = _number(text)
    if not 0 < value < 0.5:
        raise argparse.ArgumentTypeError(f"a pool's share is above 0 and below 0.5, not {text}")
    return value


def _fraction(text: str) -> float:
    value = _number(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a fraction from 0 to 1, not {text}")
    return value


def _seconds(text: str) -> float:
    value = _number(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, not {text}")
    return value


def _runs(text: str) -> int:
    value = _whole(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"at least one run, not {value}")
    return value


def _nodes(text: str) -> int:
    value = _whole(text)
    if not MIN_NODES <= value <= MAX_NODES:
        raise argparse.ArgumentTypeError(
            f"a fuzzed network has {MIN_NODES} to {MAX_NODES} nodes, not {value}"
        )
    return value


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None


def _count(text: str) -> int:
    value = _whole(text)
    if value < 100:
        raise argparse.ArgumentTypeError(f"at least 100 blocks make a measurement, not {value}")
    return value


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, not {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, not {text}")
    return value
