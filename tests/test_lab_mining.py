"""Simulated hash power: who finds the next block, when, and the real block they find.

* the finder is drawn in proportion to the shares, and the time between blocks is exponential
  with mean ``interval / total share`` (checked against the binomial and exponential standard
  errors of a long seeded run);
* a change of shares takes effect at once (the wait is redrawn), a miner with no share or
  whose node is down never finds a block, and nobody finding anything just waits;
* :func:`grind` gives a block whose proof of work and merkle root pass the consensus checks;
* :func:`without` drops a censored transaction and everything that depends on it, and the
  block built from what is left is valid on a real chain state; :func:`touches` recognises a
  payment to an address and a spend of its coins.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections import Counter

from blocktools import ChainBuilder, key, outputs_of, pkh

from node.chainstate import ChainState, template_on_tip
from node.core.mempool import Mempool
from node.core.params import REGTEST
from node.core.template import touches, without
from node.core.tx import OutPoint, TxOut
from node.core.validation import check_block
from node.lab.mining import HashScheduler, Miner, grind
from node.lab.vtime import VirtualTimeLoop, run_virtual


def schedule(
    shares: dict[str, float],
    blocks: int,
    *,
    interval: float = 600.0,
    down: frozenset[str] = frozenset(),
) -> list[tuple[float, str]]:
    """Run a scheduler alone for ``blocks`` blocks: (virtual time, finder) of each."""
    found: list[tuple[float, str]] = []

    async def body() -> None:
        loop = asyncio.get_running_loop()

        async def on_found(miner: Miner) -> None:
            found.append((loop.time(), miner.name))

        scheduler = HashScheduler(
            random.Random(42), interval, on_found, lambda m: m.name not in down
        )
        for name, share in shares.items():
            scheduler.add(Miner(name, share, bytes(20)))
        await scheduler.run(blocks)

    run_virtual(VirtualTimeLoop(), body())
    return found


def test_finders_are_drawn_in_proportion_to_their_shares() -> None:
    shares = {"big": 0.5, "mid": 0.3, "small": 0.2}
    n = 4000
    counts = Counter(name for _, name in schedule(shares, n))
    for name, share in shares.items():
        error = math.sqrt(share * (1 - share) / n)
        assert abs(counts[name] / n - share) < 4 * error, (name, counts[name])


def test_blocks_come_as_a_poisson_process_at_the_summed_rate() -> None:
    n = 4000
    # Shares summing to 0.5: half the reference rate, one block every 1200 s on average.
    times = [t for t, _ in schedule({"a": 0.2, "b": 0.3}, n, interval=600.0)]
    gaps = [later - earlier for earlier, later in zip([0.0, *times], times, strict=False)]
    mean = sum(gaps) / n
    assert abs(mean - 1200.0) < 4 * 1200.0 / math.sqrt(n)
    # Exponential: the share of gaps longer than the mean is 1/e.
    longer = sum(gap > 1200.0 for gap in gaps) / n
    assert abs(longer - math.exp(-1)) < 4 * math.sqrt(math.exp(-1) * (1 - math.exp(-1)) / n)


def test_miners_without_share_or_node_never_find_blocks() -> None:
    found = schedule(
        {"idle": 0.0, "offline": 0.5, "working": 0.1}, 200, down=frozenset({"offline"})
    )
    assert {name for _, name in found} == {"working"}


def test_a_change_of_shares_takes_effect_at_once() -> None:
    found: list[tuple[float, str]] = []

    async def body() -> None:
        loop = asyncio.get_running_loop()

        async def on_found(miner: Miner) -> None:
            found.append((loop.time(), miner.name))

        scheduler = HashScheduler(random.Random(1), 600.0, on_found, lambda m: True)
        scheduler.add(Miner("first", 1.0, bytes(20)))
        scheduler.add(Miner("second", 0.0, bytes(20)))
        run = asyncio.ensure_future(scheduler.run(None))
        await asyncio.sleep(100_000)
        scheduler.set_share("first", 0.0)
        scheduler.set_share("second", 1.0)
        switched = loop.time()
        await asyncio.sleep(100_000)
        scheduler.set_share("second", 0.0)
        await asyncio.sleep(100_000)  # nobody can mine: the scheduler waits, time goes on
        run.cancel()
        assert all(name == "first" for t, name in found if t < switched)
        assert all(name == "second" for t, name in found if t > switched)
        assert {name for _, name in found} == {"first", "second"}
        assert not [t for t, _ in found if t > switched + 100_000]

    run_virtual(VirtualTimeLoop(), body())


def funded_chain() -> tuple[ChainBuilder, ChainState]:
    builder = ChainBuilder()
    builder.extend(110)
    chain = ChainState.in_memory(REGTEST)
    for name in builder.branch(builder.tip):
        assert chain.process_block(builder[name], 2**32 - 1).accepted
    return builder, chain


def test_grind_gives_a_block_that_passes_the_consensus_checks() -> None:
    _, chain = funded_chain()
    template = template_on_tip(chain, Mempool(REGTEST), pkh(key("pool")), 2**31)
    block = grind(template, extranonce=7, time=template.cur_time)
    check_block(block, REGTEST)
    assert chain.process_block(block, 2**32 - 1).accepted
    assert chain.tip.hash == block.hash


def test_without_drops_the_censored_and_their_descendants_and_stays_valid() -> None:
    builder, chain = funded_chain()
    carol, dave = key("carol"), key("dave")
    to_carol = builder.spend([builder.coinbase_of("b1")], to=carol, fee=5_000)
    carol_pays_on = builder.spend(
        outputs_of(to_carol, carol), [TxOut(to_carol.outputs[0].value - 5_000, pkh(dave))]
    )
    unrelated = builder.spend([builder.coinbase_of("b2")], to=dave, fee=7_000)
    mempool = Mempool(REGTEST)
    for tx in (to_carol, carol_pays_on, unrelated):
        mempool.accept(tx, chain, chain.height + 1)
    template = template_on_tip(chain, mempool, pkh(key("pool")), 2**31)
    assert len(template.transactions) == 3

    censored = frozenset({pkh(carol)})
    assert touches(to_carol, censored) and touches(carol_pays_on, censored)
    assert not touches(unrelated, censored)
    kept = without(template, lambda tx: touches(tx, censored))
    assert [t.tx for t in kept.transactions] == [unrelated]
    assert kept.fees == 7_000
    assert kept.coinbase_value == REGTEST.subsidy(chain.height + 1) + 7_000
    assert without(template, lambda tx: False) is template

    block = grind(kept, extranonce=1, time=kept.cur_time)
    result = chain.process_block(block, 2**32 - 1)
    assert result.accepted and result.reject is None
    assert chain.get_coin(OutPoint(unrelated.txid, 0)) is not None
