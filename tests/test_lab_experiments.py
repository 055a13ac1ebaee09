"""Known results, reproduced by real nodes: each measurement agrees with its formula within
four standard errors of the run, at several parameter values, and shows the effect it is about.

Selfish mining (Eyal and Sirer 2014), pool share alpha, gamma of the honest power on the pool's
block in a race:

==========  =====  =====================================================================
alpha       gamma  what the formula says
==========  =====  =====================================================================
0.10        0      0.036: far less than the pool's 10% share; selfish mining does not pay
0.25        0.5    0.25 exactly: the threshold (1 - gamma) / (3 - 2 gamma) for gamma 1/2
0.40        1      0.567: far more than its 40%
==========  =====  =====================================================================

Stale blocks when every block takes ``delay`` to reach every miner, at delay/interval of 1/60,
1/10 and 1/2: the share of heights with a stale block is 1 - e^(-d/T), the stale share of all
blocks d / (d + T); at 1/2 the two differ by many standard errors, which is why both are
measured.

Runs use a 60-second block interval to keep them short: the results depend only on the ratio
of the delays to the interval, which the networks keep.
"""

from __future__ import annotations

import math
import random

import pytest

from node.lab.experiments import (
    batch_means_error,
    run_selfish_mining,
    run_stale_rate,
    selfish_revenue,
    selfish_threshold,
    stale_fraction,
    stale_rate,
)

SIGMAS = 4.0
BLOCKS = 2000
INTERVAL = 60.0


@pytest.mark.parametrize("gamma", [0.0, 0.25, 0.5, 0.75, 1.0])
def test_the_revenue_formula_meets_the_threshold_and_the_extremes(gamma: float) -> None:
    threshold = selfish_threshold(gamma)
    assert selfish_revenue(threshold, gamma) == pytest.approx(threshold)
    assert selfish_revenue(0.5, gamma) == pytest.approx(1.0)  # half the power takes everything
    assert selfish_revenue(threshold + 0.05, gamma) > threshold + 0.05
    if threshold > 0.05:  # with gamma 1 any pool gains: there is no share below the threshold
        assert selfish_revenue(threshold - 0.05, gamma) < threshold - 0.05


def test_the_stale_formulas_agree_to_first_order_only() -> None:
    for x in (1e-4, 1e-3):
        assert stale_rate(x, 1.0) == pytest.approx(x, rel=x)
        assert stale_fraction(x, 1.0) == pytest.approx(x, rel=2 * x)
    assert stale_rate(1.0, 2.0) - stale_fraction(1.0, 2.0) > 0.05


def test_batch_means_estimate_the_error_of_independent_values() -> None:
    rng = random.Random(1)
    values = [float(rng.random() < 0.5) for _ in range(20_000)]
    assert batch_means_error(values) == pytest.approx(math.sqrt(0.25 / 20_000), rel=0.4)


@pytest.mark.parametrize(
    ("alpha", "gamma", "effect"),
    [(0.1, 0.0, "loses"), (0.25, 0.5, "breaks even"), (0.4, 1.0, "gains")],
)
def test_a_selfish_pools_share_of_the_chain_is_eyal_and_sirers(
    alpha: float, gamma: float, effect: str
) -> None:
    result = run_selfish_mining(alpha, gamma, BLOCKS, seed=1, interval=INTERVAL)
    error = result.standard_error
    assert abs(result.deviation) < SIGMAS, result
    assert result.blocks == BLOCKS
    assert result.main_chain + result.stale_blocks == BLOCKS
    if effect == "loses":
        assert result.revenue_share < alpha - SIGMAS * error
    elif effect == "gains":
        assert result.revenue_share > alpha + SIGMAS * error


@pytest.mark.parametrize("delay", [1.0, 6.0, 30.0])
def test_stale_blocks_match_the_propagation_formulas(delay: float) -> None:
    result = run_stale_rate(delay, INTERVAL, BLOCKS, seed=2)
    assert abs(result.deviation) < SIGMAS, result
    assert abs(result.fraction_deviation) < SIGMAS, result
    assert result.stale_blocks > 0
    assert result.main_chain + result.stale_blocks == result.blocks == BLOCKS
    if delay / INTERVAL >= 0.5:
        apart = result.stale_fraction - result.analytic
        assert abs(apart) > SIGMAS * result.stale_fraction_error


def test_the_same_seed_gives_the_same_experiment_and_another_seed_another() -> None:
    first = run_stale_rate(6.0, INTERVAL, 200, seed=9)
    again = run_stale_rate(6.0, INTERVAL, 200, seed=9)
    other = run_stale_rate(6.0, INTERVAL, 200, seed=10)
    assert (again.trace_digest, again.stale_rate) == (first.trace_digest, first.stale_rate)
    assert other.trace_digest != first.trace_digest
