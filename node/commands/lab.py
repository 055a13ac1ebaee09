"""``forklab experiment``: reproduce known results in the fork lab's simulator.

::

    forklab experiment selfish-mining --alpha 0.35 --gamma 0.5 --blocks 2000 --seed 1
    forklab experiment stale-rate --delay 60 --interval 600 --blocks 2000 --seed 1 --json

Each prints the measured value beside the published formula, with the run's standard error and
how many standard errors apart they are, then the size of the run and its trace digest (the same
seed gives the same digest on any machine). ``--json`` prints one object instead; its keys are
the fields of :class:`~node.lab.experiments.SelfishMiningResult` and
:class:`~node.lab.experiments.StaleRateResult` (``revenue_share`` and ``stale_rate`` among them).
The experiments themselves, and why their networks look as they do, are described in
:mod:`node.lab.experiments`.
"""

from __future__ import annotations

import argparse
import json
import math

from node.lab.experiments import (
    EXPERIMENT_INTERVAL,
    SelfishMiningResult,
    StaleRateResult,
    run_selfish_mining,
    run_stale_rate,
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
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
