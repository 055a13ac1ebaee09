"""Simulated hash power that finds real blocks.

Each miner has a *share*: its fraction of a reference hash rate that finds one block every
``interval`` seconds. Finding blocks is then a Poisson process per miner; the simulation runs
them as one process at the summed rate and, at each event, picks the finder in proportion to
the shares, which is the same distribution (a superposition of Poisson processes is one, and
each event belongs to process *i* with probability rate_i / total). When the shares change
(a miner joins, leaves, or its node goes down), the time to the next block is drawn afresh:
exponential waits have no memory, so nothing is lost by forgetting the one in progress.

The block is real: the finder's strategy takes a template from a node
(:func:`node.core.template.build_template`, as ``getblocktemplate`` does), and :func:`grind`
searches nonces until the header meets the template's target. On regtest's easy target that
is about two hashes; what the network's rules check is the same as for any block.

What this module does not do: decide where a block goes or when (strategies do, in
:mod:`node.lab.strategies`), or keep the score (the simulation's block records do).
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from node.core.block import Block
from node.core.template import BlockTemplate

NONCE_SPACE = 1 << 32


def grind(template: BlockTemplate, extranonce: int, time: int) -> Block:
    """The block of ``template`` at ``extranonce`` and ``time`` with the first nonce that works.

    Rolls the extranonce on in the (on easy targets, never seen) case that no nonce of the 2^32
    meets the target.
    """
    target = template.target
    sha256 = hashlib.sha256
    pack = struct.Struct("<I").pack
    while True:
        prefix = template.header_for(extranonce, time, 0).serialize()[:76]
        base = sha256(prefix)
        for nonce in range(NONCE_SPACE):
            first = base.copy()
            first.update(pack(nonce))
            if int.from_bytes(sha256(first.digest()).digest(), "little") <= target:
                return template.block_for(extranonce, time, nonce)
        extranonce += 1


@dataclass
class Miner:
    """One miner: a name, a share of the reference hash rate, and the strategy that uses it."""

    name: str
    share: float
    payout: bytes
    """The public-key hash its coinbases pay."""
    blocks_found: int = 0
    _extranonce: int = 0

    def next_extranonce(self) -> int:
        """A fresh extranonce per block, so two blocks on one parent in one second differ."""
        self._extranonce += 1
        return self._extranonce


FoundCallback = Callable[[Miner], Awaitable[None]]


class HashScheduler:
    """Draws who finds the next block and when (see the module docstring).

    ``can_mine(miner)`` is asked at every draw: a miner whose node is down has no rate. ``run``
    finds blocks until ``budget`` is used up (None: forever); ``changed()`` makes it redraw.
    """

    def __init__(
        self,
        rng: random.Random,
        interval: float,
        on_found: FoundCallback,
        can_mine: Callable[[Miner], bool],
    ) -> None:
        if not interval > 0:
            raise ValueError(f"the block interval must be above 0 seconds, not {interval}")
        self.rng = rng
        self.interval = interval
        self.miners: dict[str, Miner] = {}
        self.found = 0
        self._on_found = on_found
        self._can_mine = can_mine
        self._wake: asyncio.Future[str] | None = None

    def add(self, miner: Miner) -> None:
        if miner.name in self.miners:
            raise ValueError(f"there is already a miner called {miner.name}")
        self.miners[miner.name] = miner
        self.changed()

    def set_share(self, name: str, share: float) -> None:
        if share < 0:
            raise ValueError(f"a hash share cannot be negative, got {share}")
        self.miners[name].share = share
        self.changed()

    def changed(self) -> None:
        """Shares or the miners' availability changed: draw the next block afresh."""
        if self._wake is not None:
            _resolve(self._wake, _CHANGED)

    def active(self) -> list[Miner]:
        return [m for m in self.miners.values() if m.share > 0 and self._can_mine(m)]

    async def run(self, budget: int | None = None) -> None:
        """Find blocks, one at a time, until ``budget`` blocks were found."""
        loop = asyncio.get_running_loop()
        target = None if budget is None else self.found + budget
        while target is None or self.found < target:
            miners = self.active()
            total = sum(m.share for m in miners)
            wake: asyncio.Future[str] = loop.create_future()
            self._wake = wake
            if total == 0:
                await wake  # nobody can mine until something changes
                continue
            wait = self.rng.expovariate(total / self.interval)
            timer = loop.call_later(wait, _resolve, wake, _FOUND)
            if await wake != _FOUND:
                timer.cancel()
                continue  # woken by a change: redraw
            finder = _pick(self.rng, miners, total)
            finder.blocks_found += 1
            self.found += 1
            await self._on_found(finder)


_FOUND = "found"
_CHANGED = "changed"


def _resolve(future: asyncio.Future[str], why: str) -> None:
    if not future.done():
        future.set_result(why)


def _pick(rng: random.Random, miners: list[Miner], total: float) -> Miner:
    point = rng.random() * total
    for miner in miners:
        point -= miner.share
        if point < 0:
            return miner
    return miners[-1]
