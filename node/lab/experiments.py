"""Experiments that reproduce known results with real nodes and real blocks.

Each experiment builds a small network whose shape is the model behind a published formula,
lets simulated hash power find real blocks on it, and reports the measured value beside the
formula's, with the run's standard error, so a reader can see whether they agree.

**Selfish mining** (Eyal and Sirer, "Majority is not enough", 2014). A pool with share alpha
follows :class:`~node.lab.strategies.Selfish`. Gamma is the share of honest hash power that, in
a race between the pool's block and an honest one, hears the pool's first. The network makes
that literal::

      honest miners "a" (gamma of the honest power) take work from view-a
      honest miners "b" (the rest)                  take work from view-b
      both announce their blocks at the hub

          view-b --0-- hub --0-- pool               pool-edge --0-- view-a
                        \\______________ L _______________________________/

The hub reaches the pool and view-b at once and view-a after ``L`` (1/600 of the block
interval); the pool publishes through its own node, its edge node (which reaches view-a at
once) and straight to the hub (so the hub holds every block view-a may build on). When an
honest block appears and the pool answers with its own, view-b saw the honest block first and
view-a the pool's: exactly gamma of the honest power mines on the pool's block, and every node
keeps the block it saw first, as nodes do. The pool's share of the final chain is compared with

    R = [a(1-a)^2 (4a + g(1-2a)) - a^3] / [1 - a(1 + (2-a)a)]

(equation 8 of the paper). Its standard error comes from batch means over the chain (blocks
near each other are correlated; 20 batches of consecutive blocks are nearly independent). What
``L`` adds, honest forks while view-a has not yet heard a block, is of the order of
L / interval = 1/600 of the honest blocks, well inside the error of any run of this size.

**Stale blocks.** Miners take work from region nodes and announce their blocks at a hub that
reaches every region ``delay`` seconds later, so every miner, the finder's neighbours included,
learns of a block ``delay`` after it was found: the model behind the textbook formula. At each
height the first block found wins (everyone saw it first); any other block found at that
height in the ``delay`` before the first one reached the miners goes stale. The number of those
is Poisson with mean d/T, so

- ``stale_rate``: the share of heights at which a competing block was found and went stale,
  the chance that another block is found while a block propagates: 1 - e^(-d/T);
- ``stale_fraction``: stale blocks among all blocks found: (d/T) / (1 + d/T) = d / (d + T).

The two agree to first order in d/T, which is why 1 - e^(-d/T) is quoted for both; beyond it
they differ, and both are measured. Heights are independent, so the standard errors are the
binomial one and the delta method's.

What this module does not do: print (the ``forklab experiment`` command does), or test (the
tests call these functions at several parameter values and compare within a few standard
errors).
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from node.lab.errors import SimulationError
from node.lab.network import LinkSpec
from node.lab.nodes import SIM_P2P
from node.lab.records import BlockRecord
from node.lab.sim import Simulation, simulate
from node.lab.strategies import Honest, Selfish
from node.lab.trace import Trace

BATCHES = 20
"""Batch means over this many consecutive stretches of the chain (a common choice: enough
batches for a stable variance estimate, long enough batches to be nearly independent)."""

EXPERIMENT_INTERVAL = 600.0
"""Block interval of the experiments' networks; the results do not depend on it (only on
delay/interval), but the cost of the run grows with it (timers tick in virtual time)."""


# -- the formulas


def selfish_revenue(alpha: float, gamma: float) -> float:
    """Eyal and Sirer's relative revenue of a selfish pool of share ``alpha``."""
    a, g = alpha, gamma
    return (a * (1 - a) ** 2 * (4 * a + g * (1 - 2 * a)) - a**3) / (1 - a * (1 + (2 - a) * a))


def selfish_threshold(gamma: float) -> float:
    """The share above which selfish mining pays: (1 - gamma) / (3 - 2 gamma)."""
    return (1 - gamma) / (3 - 2 * gamma)


def stale_rate(delay: float, interval: float) -> float:
    """Chance that another block is found while one propagates for ``delay``: 1 - e^(-d/T)."""
    return -math.expm1(-delay / interval)


def stale_fraction(delay: float, interval: float) -> float:
    """Share of all blocks that go stale when every block takes ``delay`` to reach every miner."""
    return delay / (delay + interval)


# -- statistics


def batch_means_error(values: Sequence[float], batches: int = BATCHES) -> float:
    """Standard error of the mean of a correlated sequence, by the method of batch means."""
    if len(values) < 2 * batches:
        raise SimulationError(
            f"{len(values)} values are too few for {batches} batches; run more blocks"
        )
    size = len(values) // batches
    means = [statistics.fmean(values[i * size : (i + 1) * size]) for i in range(batches)]
    return statistics.stdev(means) / math.sqrt(batches)


# -- selfish mining


@dataclass(frozen=True)
class SelfishMiningResult:
    alpha: float
    gamma: float
    blocks: int
    """Blocks found in the run, by everyone."""
    seed: int
    main_chain: int
    """Blocks of the final chain."""
    selfish_blocks: int
    """The pool's blocks in the final chain."""
    revenue_share: float
    """The pool's share of the final chain."""
    standard_error: float
    analytic: float
    """Eyal and Sirer's closed form for ``alpha`` and ``gamma``."""
    threshold: float
    """The share above which selfish mining beats honest mining, for this gamma."""
    stale_blocks: int
    trace_digest: str
    virtual_seconds: float
    wall_seconds: float

    @property
    def deviation(self) -> float:
        """(measured - analytic) in standard errors."""
        return (self.revenue_share - self.analytic) / self.standard_error

    def as_json(self) -> dict[str, object]:
        return {"experiment": "selfish-mining", **asdict(self), "deviation": self.deviation}


def run_selfish_mining(
    alpha: float,
    gamma: float,
    blocks: int,
    seed: int,
    *,
    interval: float = EXPERIMENT_INTERVAL,
) -> SelfishMiningResult:
    """Run the selfish-mining experiment (module docstring) for ``blocks`` blocks."""
    if not 0 < alpha < 0.5:
        raise SimulationError(f"alpha is the pool's share, between 0 and 0.5; got {alpha}")
    if not 0 <= gamma <= 1:
        raise SimulationError(f"gamma is a share of the honest miners, 0 to 1; got {gamma}")
    started = time.perf_counter()
    lag = interval / 600

    async def body(sim: Simulation) -> tuple[list[BlockRecord], int, float]:
        await sim.add_node("hub")
        await sim.add_node("view-b", connect=["hub"])
        await sim.add_node("pool", connect=["hub"])
        await sim.add_node("view-a", connect=["hub"])
        await sim.add_node("pool-edge", connect=["view-a"])
        sim.set_link("hub", "view-a", LinkSpec(latency=lag))
        await sim.wait_connected()
        await sim.add_miner(
            "selfish", node="pool", share=alpha, strategy=Selfish(publish_via=["pool-edge", "hub"])
        )
        honest = 1 - alpha
        for name, view, share in (("honest-a", "view-a", gamma), ("honest-b", "view-b", 1 - gamma)):
            if share > 0:
                strategy = Honest(work_node=view, submit_to="hub")
                await sim.add_miner(name, node="hub", share=honest * share, strategy=strategy)
        await sim.mine(blocks)
        await sim.settle()
        return sim.main_chain(sim.node("hub").tip), len(sim.blocks), sim.now

    trace = Trace(keep=False)
    chain, found, virtual = simulate(
        body, seed=seed, interval=interval, trace=trace, default_link=LinkSpec(latency=0.0)
    )
    mine = [1.0 if record.miner == "selfish" else 0.0 for record in chain]
    share = statistics.fmean(mine) if mine else 0.0
    return SelfishMiningResult(
        alpha=alpha,
        gamma=gamma,
        blocks=found,
        seed=seed,
        main_chain=len(chain),
        selfish_blocks=int(sum(mine)),
        revenue_share=share,
        standard_error=batch_means_error(mine),
        analytic=selfish_revenue(alpha, gamma),
        threshold=selfish_threshold(gamma),
        stale_blocks=found - len(chain),
        trace_digest=trace.digest,
        virtual_seconds=virtual,
        wall_seconds=time.perf_counter() - started,
    )


# -- stale blocks


@dataclass(frozen=True)
class StaleRateResult:
    delay: float
    interval: float
    blocks: int
    seed: int
    main_chain: int
    stale_blocks: int
    stale_rate: float
    """Share of heights at which a competing block went stale."""
    stale_rate_error: float
    analytic: float
    """1 - e^(-delay/interval)."""
    stale_fraction: float
    """Stale blocks among all blocks found."""
    stale_fraction_error: float
    stale_fraction_analytic: float
    """delay / (delay + interval)."""
    trace_digest: str
    virtual_seconds: float
    wall_seconds: float

    @property
    def deviation(self) -> float:
        return (self.stale_rate - self.analytic) / self.stale_rate_error

    @property
    def fraction_deviation(self) -> float:
        return (self.stale_fraction - self.stale_fraction_analytic) / self.stale_fraction_error

    def as_json(self) -> dict[str, object]:
        return {"experiment": "stale-rate", **asdict(self), "deviation": self.deviation}


def run_stale_rate(
    delay: float, interval: float, blocks: int, seed: int, *, regions: int = 2
) -> StaleRateResult:
    """Run the stale-block experiment (module docstring) for ``blocks`` blocks."""
    if not delay > 0 or not interval > 0:
        raise SimulationError("the delay and the interval are positive numbers of seconds")
    if regions < 1:
        raise SimulationError("at least one region takes part")
    started = time.perf_counter()

    async def body(sim: Simulation) -> tuple[list[BlockRecord], list[BlockRecord], float]:
        await sim.add_node("hub")
        names = [f"region-{i}" for i in range(1, regions + 1)]
        for name in names:
            await sim.add_node(name, connect=["hub"])
        await sim.wait_connected(timeout=60 + 10 * delay)
        for name in names:
            strategy = Honest(work_node=name, submit_to="hub")
            await sim.add_miner(f"miners-{name}", node="hub", share=1 / regions, strategy=strategy)
        await sim.mine(blocks)
        await sim.settle()
        return sim.main_chain(sim.node("hub").tip), list(sim.blocks.values()), sim.now

    trace = Trace(keep=False)
    # Every exchange over these links takes ``delay`` each way: give the timers room for it.
    p2p = dataclasses.replace(
        SIM_P2P,
        handshake_timeout=SIM_P2P.handshake_timeout + 4 * delay,
        block_timeout=SIM_P2P.block_timeout + 4 * delay,
        ping_timeout=SIM_P2P.ping_timeout + 4 * delay,
    )
    chain, found, virtual = simulate(
        body,
        seed=seed,
        interval=interval,
        trace=trace,
        default_link=LinkSpec(latency=delay),
        p2p=p2p,
    )
    # Blocks found above the final tip (none after settling, unless the run ended in a race)
    # have no height to compete at yet: leave them out.
    top = len(chain)
    at_height = Counter(record.height for record in found if record.height <= top)
    competitors = [at_height[h] - 1 for h in range(1, top + 1)]
    if top < 2:
        raise SimulationError("too few blocks to measure anything; run more")
    forked = [1.0 if c else 0.0 for c in competitors]
    rate = statistics.fmean(forked)
    mean = statistics.fmean(competitors)
    spread = statistics.stdev(competitors)
    stale = sum(competitors)
    return StaleRateResult(
        delay=delay,
        interval=interval,
        blocks=len(found),
        seed=seed,
        main_chain=top,
        stale_blocks=stale,
        stale_rate=rate,
        stale_rate_error=max(math.sqrt(rate * (1 - rate) / top), 1 / top),
        analytic=stale_rate(delay, interval),
        stale_fraction=stale / (top + stale),
        stale_fraction_error=max(spread / math.sqrt(top) / (1 + mean) ** 2, 1 / top),
        stale_fraction_analytic=stale_fraction(delay, interval),
        trace_digest=trace.digest,
        virtual_seconds=virtual,
        wall_seconds=time.perf_counter() - started,
    )
