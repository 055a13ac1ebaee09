"""Miner strategies: what a miner builds on when it finds a block, and who it tells.

A strategy is attached to a miner and a *public* node (the node the pool runs on the network).
When the hash scheduler says the miner found a block, :meth:`Strategy.on_found` builds it from
a node's template and decides where it goes. Strategies that need a chain of their own run a
*private* node: a real node the simulation starts with no peers, whose tip is where the pool
mines. Blocks the public node connects are handed to the private node by the strategy, so the
private node knows the public chain and chooses between it and the pool's own blocks by the
rules every node uses.

Reactions run to completion at the instant of the event that caused them: node operations in
the simulation are inline (no thread, no wait), so nothing interleaves with a reaction.

=================  ==========================================================================
:class:`Honest`    builds on its node's tip, publishes at once
:class:`Selfish`   Eyal and Sirer's selfish mining: keeps a private branch and releases it to
                   win races and orphan honest blocks
:class:`Censoring` leaves out transactions touching listed addresses; with ``orphan`` it also
                   refuses to build on blocks that include them (for ``give_up_after`` blocks)
:class:`DoubleSpend` pays a merchant, mines a private branch holding a conflicting payment,
                   and releases it once the merchant saw enough confirmations and the branch
                   has more work
=================  ==========================================================================

What this module does not do: decide when blocks are found (:mod:`node.lab.mining`) or judge
the outcome (the simulation's records and :mod:`node.lab.experiments` do).
"""

from __future__ import annotations

import abc
import contextlib
import enum
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, ClassVar

from node.chainstate import ChainState
from node.core.block import Block
from node.core.errors import RuleError, WalletError
from node.core.mempool import Mempool
from node.core.template import BlockTemplate, touches, without
from node.core.tx import OutPoint, Transaction
from node.events import BlockConnected, BlockDisconnected, Event, TxAccepted
from node.lab.errors import SimulationError
from node.lab.mining import Miner
from node.wallet.payment import build_payment

if TYPE_CHECKING:
    from node.lab.nodes import SimNode
    from node.lab.sim import Simulation


class Strategy(abc.ABC):
    """How one miner uses its hash power; attached once, to one miner and its public node."""

    kind: ClassVar[str]

    def __init__(self) -> None:
        self.node = ""
        """The miner's public node."""

    async def attach(self, sim: Simulation, miner: Miner, node: str) -> None:
        """Called once when the miner is added; set up private nodes and listeners here."""
        self.node = node

    def can_mine(self, sim: Simulation) -> bool:
        """Whether the miner has work now (its node is up)."""
        return sim.node(self.node).up

    @abc.abstractmethod
    async def on_found(self, sim: Simulation, miner: Miner) -> None:
        """The miner found a block now: build it and do with it what the strategy does."""


class Honest(Strategy):
    """Build on the tip of ``work_node`` (default: its node), publish to ``submit_to`` at once.

    A pool takes its work from one node and submits blocks to the same one; the two are kept
    apart only to model miners who learn of every block with a delay (experiments).
    """

    kind = "honest"

    def __init__(self, *, work_node: str | None = None, submit_to: str | None = None) -> None:
        super().__init__()
        self._work_node = work_node
        self._submit_to = submit_to

    @property
    def work_node(self) -> str:
        return self._work_node or self.node

    def can_mine(self, sim: Simulation) -> bool:
        return sim.node(self.work_node).up and sim.node(self._submit_to or self.node).up

    async def on_found(self, sim: Simulation, miner: Miner) -> None:
        block = await sim.build_block(self.work_node, miner)
        await sim.publish(miner, block, self._submit_to or self.node)


class _PrivateChain:
    """A pool's private node and the bookkeeping of which blocks are its own."""

    def __init__(self, node: SimNode) -> None:
        self.sim_node = node
        self.own: set[bytes] = set()

    @property
    def name(self) -> str:
        return self.sim_node.name

    @property
    def height(self) -> int:
        return self.sim_node.height

    async def add(self, block: Block) -> None:
        """Submit to the private node; RuleError is not expected for blocks of the network."""
        outcome = await self.sim_node.require().submit_block(block)
        if outcome.error is not None and not outcome.duplicate:
            raise SimulationError(
                f"the private node {self.name} refused block {block.hash_hex}: {outcome.error}"
            )


async def _private_node(sim: Simulation, miner: Miner, public: str) -> _PrivateChain:
    """Start ``miner``'s private node, synchronised with ``public`` up to now.

    It shares the public node's clock, so it judges block times as the public node does.
    """
    offset = sim.node(public).spec.clock_offset
    private = await sim.add_node(f"{miner.name}.private", private=True, clock_offset=offset)
    chain = _PrivateChain(private)
    for block in await _active_blocks(sim.node(public), 1):
        await chain.add(block)
    return chain


async def _active_blocks(node: SimNode, start: int) -> list[Block]:
    """``node``'s active chain from ``start`` up to its tip."""

    def read(chain: ChainState, _mempool: Mempool) -> list[Block]:
        blocks = []
        for height in range(start, chain.height + 1):
            block_hash = chain.block_hash_at(height)
            block = chain.get_block(block_hash) if block_hash is not None else None
            if block is None:
                raise SimulationError(f"{node.name} has no block at height {height}")
            blocks.append(block)
        return blocks

    return await node.query(read)


async def _fork_height(node: SimNode, other: SimNode) -> int:
    """Height of the last block of ``node``'s active chain that ``other``'s also holds."""
    locator = await node.query(lambda chain, _m: chain.locator())
    return await other.query(lambda chain, _m: chain.find_fork(locator).height)


def _height(block: Block) -> int:
    height = block.transactions[0].coinbase_height
    return height if height is not None else 0


class Selfish(Strategy):
    """Eyal and Sirer's selfish mining (Algorithm 1 of "Majority is not enough", 2014).

    The pool mines on its private node's tip. With ``lead`` = private length - public length
    just before the event:

    - the pool finds a block: keep it private; but if the lead was 0 and a race was on (its
      branch has two blocks: one published, one new), publish, and win the race;
    - others find a block: lead 0: adopt the public chain (the private node does, as it has
      more work); lead 1: publish the private block, starting a race; lead 2: publish the
      whole branch, which wins by one; more: publish the block at the public height, keeping
      the rest.

    Blocks are published to the pool's public node and to ``publish_via``: nodes close to the
    pool that reach some honest miners first. The share of honest hash power that hears the
    pool's block first in a race is Eyal and Sirer's gamma; the experiment builds a network
    where it is exactly the chosen value (:mod:`node.lab.experiments`).
    """

    kind = "selfish"

    def __init__(self, *, publish_via: Sequence[str] = ()) -> None:
        super().__init__()
        self.publish_via = tuple(publish_via)
        self.branch: list[Block] = []
        """The pool's blocks since the chains last agreed, oldest first."""
        self.published: set[bytes] = set()
        self.public_height = 0
        self._private: _PrivateChain | None = None
        self._miner: Miner | None = None

    async def attach(self, sim: Simulation, miner: Miner, node: str) -> None:
        await super().attach(sim, miner, node)
        self._miner = miner
        self._private = await _private_node(sim, miner, node)
        self.public_height = sim.node(node).height
        sim.listen(lambda name, event: self._on_event(sim, name, event))

    @property
    def private(self) -> _PrivateChain:
        if self._private is None:
            raise SimulationError("the selfish strategy is not attached to a miner")
        return self._private

    def can_mine(self, sim: Simulation) -> bool:
        return self.private.sim_node.up and sim.node(self.node).up

    @property
    def lead(self) -> int:
        return self.private.height - self.public_height

    async def on_found(self, sim: Simulation, miner: Miner) -> None:
        lead_before = self.lead
        block = await sim.build_block(self.private.name, miner)
        self.private.own.add(block.hash)
        await self.private.add(block)
        self.branch.append(block)
        if lead_before == 0 and len(self.branch) == 2:
            await self._publish(sim, upto=None)
            self.branch = []

    def _on_event(self, sim: Simulation, name: str, event: Event) -> None:
        if name != self.node or not isinstance(event, BlockConnected):
            return
        before = self.public_height
        self.public_height = max(before, event.height)
        if event.block.hash not in self.private.own:
            # Every public block goes to the private node; only one that makes the public
            # chain longer is "others found a block" in the state machine.
            longer = event.height > before
            sim.spawn(self._others_found(sim, event.block, before if longer else None))

    async def _others_found(self, sim: Simulation, block: Block, public_before: int | None) -> None:
        lead_before = None if public_before is None else self.private.height - public_before
        await self.private.add(block)
        if lead_before is None:
            return
        if lead_before <= 0:
            self.branch = []  # they win: the private node has moved to their chain
        elif lead_before <= 2:
            await self._publish(sim, upto=None)
            if lead_before == 2:
                self.branch = []
        else:
            await self._publish(sim, upto=self.public_height)

    async def _publish(self, sim: Simulation, *, upto: int | None) -> None:
        """Publish the unpublished blocks of the branch, up to height ``upto`` (None: all)."""
        assert self._miner is not None
        for block in self.branch:
            if block.hash in self.published or (upto is not None and _height(block) > upto):
                continue
            self.published.add(block.hash)
            for node in (self.node, *self.publish_via):
                if sim.node(node).up:  # a relay that crashed gets nothing, as on a network
                    await sim.publish(self._miner, block, node)


class Censoring(Strategy):
    """A pool that will not confirm transactions touching ``addresses``.

    ``addresses`` are addresses of the network or names of the simulation's wallets. A
    transaction is censored if it pays one of them or spends one of their coins, and so is any
    transaction that depends on it. Policy alone only delays such a transaction: others mine it.

    With ``orphan``, the pool also refuses to build on any block that includes one: its private
    node marks such a block invalid (``invalidateblock``), so the pool keeps mining the branch
    without it, and so does anyone its blocks outpace. After ``give_up_after`` blocks behind
    the public chain it accepts the block after all (None: never).
    """

    kind = "censoring"

    def __init__(
        self,
        addresses: Iterable[str],
        *,
        orphan: bool = False,
        give_up_after: int | None = None,
    ) -> None:
        super().__init__()
        self.addresses = tuple(addresses)
        self.orphan = orphan
        self.give_up_after = give_up_after
        self.refused: list[bytes] = []
        """Every block the pool refused to build on (orphan mode), oldest first."""
        self._holding: list[bytes] = []
        """Refused blocks still marked invalid on the private node."""
        self._censored: frozenset[bytes] = frozenset()
        self._private: _PrivateChain | None = None
        self._miner: Miner | None = None

    async def attach(self, sim: Simulation, miner: Miner, node: str) -> None:
        await super().attach(sim, miner, node)
        self._miner = miner
        self._censored = frozenset(sim.pubkey_hash(a) for a in self.addresses)
        if self.orphan:
            self._private = await _private_node(sim, miner, node)
            sim.listen(lambda name, event: self._on_event(sim, name, event))

    def censors(self, tx: Transaction) -> bool:
        return touches(tx, self._censored)

    def _select(self, template: BlockTemplate) -> BlockTemplate:
        return without(template, self.censors)

    def can_mine(self, sim: Simulation) -> bool:
        private_up = self._private is None or self._private.sim_node.up
        return private_up and sim.node(self.node).up

    async def on_found(self, sim: Simulation, miner: Miner) -> None:
        work = self._private.name if self._private is not None else self.node
        block = await sim.build_block(work, miner, select=self._select)
        if self._private is not None:
            self._private.own.add(block.hash)
            await self._private.add(block)
        await sim.publish(miner, block, self.node)

    def _on_event(self, sim: Simulation, name: str, event: Event) -> None:
        if name != self.node or self._private is None:
            return
        if isinstance(event, BlockConnected) and event.block.hash not in self._private.own:
            sim.spawn(self._follow(sim, event.block))
        elif isinstance(event, TxAccepted):
            sim.spawn(self._offer(event.tx))

    async def _follow(self, sim: Simulation, block: Block) -> None:
        private = self._private
        assert private is not None
        outcome = await private.sim_node.require().submit_block(block)
        if outcome.accepted and any(self.censors(tx) for tx in block.transactions):
            self.refused.append(block.hash)
            self._holding.append(block.hash)
            await private.sim_node.require().invalidate_block(block.hash)
            sim.note("censor refuses a block", miner=self.miner_name, hash=block.hash_hex)
        if not sim.node(self.node).up:
            return  # its node crashed meanwhile: the next block it connects brings it back here
        behind = sim.node(self.node).height - private.height
        if self._holding and self.give_up_after is not None and behind >= self.give_up_after:
            await self._give_up(sim)

    async def _give_up(self, sim: Simulation) -> None:
        private = self._private
        assert private is not None
        for block_hash in self._holding:
            await private.sim_node.require().reconsider_block(block_hash)
        self._holding = []
        # Blocks built on the refused ones were turned away by the private node: replay them.
        fork = await _fork_height(private.sim_node, sim.node(self.node))
        for block in await _active_blocks(sim.node(self.node), fork + 1):
            await private.add(block)
        sim.note("censor gives up and builds on the longer chain", miner=self.miner_name)

    async def _offer(self, tx: Transaction) -> None:
        private = self._private
        assert private is not None
        # Not valid on the pool's branch (yet)? As any node would, it waits for a block.
        with contextlib.suppress(RuleError):
            await private.sim_node.require().submit_tx(tx)

    @property
    def miner_name(self) -> str:
        return self._miner.name if self._miner is not None else ""


class AttackPhase(enum.Enum):
    WAITING = "waiting"
    """Mining honestly until the public chain reaches ``start_height``."""
    MINING = "mining"
    """The payment is out; the private branch with the conflicting one grows."""
    RELEASED = "released"
    """The private branch was published (it had more work, after the merchant delivered)."""
    ABANDONED = "abandoned"
    """The public chain got ``give_up_behind`` blocks ahead; the attacker mines honestly again."""


class DoubleSpend(Strategy):
    """The classic double spend against a merchant who waits for ``confirmations`` blocks.

    Until the public chain reaches ``start_height`` the attacker mines honestly (it needs a
    mature coin). Then it sends ``amount`` to ``merchant`` (a wallet name or address) through
    its public node, and mines privately on a branch that instead pays the same coins back to
    itself. When the merchant's node (``merchant_node``) shows ``confirmations`` for the payment
    and the private branch has more work than the public chain, it releases the branch; if the
    public chain gets ``give_up_behind`` blocks ahead first, it gives up.
    """

    kind = "double-spend"

    def __init__(
        self,
        *,
        merchant: str,
        amount: int,
        start_height: int,
        merchant_node: str,
        confirmations: int = 6,
        give_up_behind: int = 6,
        fee_rate: int = 2,
    ) -> None:
        super().__init__()
        if confirmations < 1 or give_up_behind < 1:
            raise SimulationError("confirmations and give_up_behind are at least 1")
        self.merchant = merchant
        self.amount = amount
        self.start_height = start_height
        self.merchant_node = merchant_node
        self.confirmations = confirmations
        self.give_up_behind = give_up_behind
        self.fee_rate = fee_rate
        self.phase = AttackPhase.WAITING
        self.payment: Transaction | None = None
        """What the merchant is paid (and should lose)."""
        self.refund: Transaction | None = None
        """The conflicting transaction on the private branch."""
        self.delivered_at: float | None = None
        """When the merchant saw ``confirmations`` for the payment (and delivered)."""
        self.released_at: float | None = None
        self._confirmed_height: int | None = None
        self._fork_height = 0
        self._private: _PrivateChain | None = None
        self._miner: Miner | None = None

    async def attach(self, sim: Simulation, miner: Miner, node: str) -> None:
        await super().attach(sim, miner, node)
        sim.node(self.merchant_node)
        self._miner = miner
        self._private = await _private_node(sim, miner, node)
        sim.listen(lambda name, event: self._on_event(sim, name, event))

    @property
    def private(self) -> _PrivateChain:
        if self._private is None:
            raise SimulationError("the double-spend strategy is not attached to a miner")
        return self._private

    def can_mine(self, sim: Simulation) -> bool:
        if self.phase is AttackPhase.MINING:
            return self.private.sim_node.up
        return sim.node(self.node).up

    async def on_found(self, sim: Simulation, miner: Miner) -> None:
        if self.phase is not AttackPhase.MINING:
            block = await sim.build_block(self.node, miner)
            await sim.publish(miner, block, self.node)
            return
        block = await sim.build_block(self.private.name, miner)
        self.private.own.add(block.hash)
        await self.private.add(block)
        await self._maybe_release(sim)

    def _on_event(self, sim: Simulation, name: str, event: Event) -> None:
        if name == self.merchant_node and self.payment is not None:
            self._watch_payment(sim, event)
        if name != self.node or not isinstance(event, BlockConnected):
            return
        if self.phase is AttackPhase.WAITING:
            sim.spawn(self.private.add(event.block))
            if event.height >= self.start_height:
                self.phase = AttackPhase.MINING  # at once, so no second block starts it again
                sim.spawn(self._begin(sim))
        elif self.phase is AttackPhase.MINING:
            sim.spawn(self._check_behind(sim))

    async def _begin(self, sim: Simulation) -> None:
        wallet = sim.wallet(self.miner_name)
        pay_to = sim.pubkey_hash(self.merchant)
        public = sim.node(self.node)
        if not public.up:
            self.phase = AttackPhase.WAITING  # its node crashed meanwhile: start once it is back
            return
        next_height, coins = await public.query(
            lambda chain, _m: (chain.height + 1, chain.coins_for(wallet.pubkey_hashes))
        )
        keys = {}
        for _outpoint, coin in coins:
            key = wallet.key_for(coin.pubkey_hash)
            if key is not None:
                keys[coin.pubkey_hash] = key
        try:
            payment = build_payment(
                coins,
                next_height,
                sim.params,
                keys=keys,
                pay_to=pay_to,
                amount=self.amount,
                fee_rate=self.fee_rate,
                change_to=wallet.change_pubkey_hash,
            )
            # The same largest coin comes first in both selections, so the two conflict.
            refund = build_payment(
                list(payment.inputs),
                next_height,
                sim.params,
                keys=keys,
                pay_to=wallet.change_pubkey_hash,
                amount=self.amount,
                fee_rate=self.fee_rate,
                change_to=wallet.change_pubkey_hash,
            )
        except WalletError as exc:
            # No mature coin to spend yet (a small share finds few blocks): no attack.
            self.phase = AttackPhase.ABANDONED
            sim.note("attacker cannot pay the merchant and gives up", reason=str(exc))
            return
        self.payment, self.refund = payment.tx, refund.tx
        self._fork_height = self.private.height
        await self.private.sim_node.require().submit_tx(refund.tx)
        await public.require().submit_tx(payment.tx)
        sim.note(
            "attacker pays the merchant and starts a private branch",
            miner=self.miner_name,
            payment=payment.tx.txid_hex,
            refund=refund.tx.txid_hex,
            fork_height=self._fork_height,
        )

    def _watch_payment(self, sim: Simulation, event: Event) -> None:
        payment = self.payment
        assert payment is not None
        if isinstance(event, BlockConnected):
            if payment.txid in event.block.txids:
                self._confirmed_height = event.height
            if self._confirmed_height is not None and self.delivered_at is None:
                depth = event.height - self._confirmed_height + 1
                if depth >= self.confirmations:
                    self.delivered_at = sim.now
                    sim.note("merchant delivers", confirmations=depth)
                    sim.spawn(self._maybe_release(sim))
        elif isinstance(event, BlockDisconnected) and payment.txid in event.block.txids:
            self._confirmed_height = None

    async def _maybe_release(self, sim: Simulation) -> None:
        if self.phase is not AttackPhase.MINING or self.delivered_at is None:
            return
        if not sim.node(self.node).up:
            return  # released when its node is back and the next block is found
        public = sim.node(self.node).require().tip
        private = self.private.sim_node.require().tip
        if private.chain_work <= public.chain_work:
            return
        self.phase = AttackPhase.RELEASED
        self.released_at = sim.now
        assert self._miner is not None
        blocks = await _active_blocks(self.private.sim_node, self._fork_height + 1)
        sim.note("attacker releases its branch", blocks=len(blocks))
        for block in blocks:
            await sim.publish(self._miner, block, self.node)

    async def _check_behind(self, sim: Simulation) -> None:
        if self.phase is not AttackPhase.MINING or not sim.node(self.node).up:
            return
        behind = sim.node(self.node).height - self.private.height
        if behind >= self.give_up_behind:
            self.phase = AttackPhase.ABANDONED
            sim.note("attacker gives up", behind=behind)

    async def succeeded(self, sim: Simulation) -> bool:
        """Whether the merchant's node holds the refund and not the payment (after a release)."""
        if self.payment is None or self.refund is None:
            return False
        paid = OutPoint(self.payment.txid, 0)
        refunded = OutPoint(self.refund.txid, 0)
        return await sim.node(self.merchant_node).query(
            lambda chain, _m: chain.get_coin(paid) is None and chain.get_coin(refunded) is not None
        )

    @property
    def miner_name(self) -> str:
        return self._miner.name if self._miner is not None else ""
