"""Attack strategies on real nodes: what a pool's operator does with its own node's interfaces.

In the simulator (:mod:`node.lab.strategies`) a pool that attacks keeps a private node the
network never sees. On a devnet, a pool is one of the devnet's paced miners, mining on the
templates of its node, and the runner acts as the pool's operator, with what a real operator
has and nothing more: the node's RPC and the devnet's link control (a node cut off from its
peers is an operator pulling the pool node's cable).

=======================  ==================================================================
:class:`PolicyCensor`    sets its node's mining policy (``setminingpolicy``): the node's
                         templates leave out transactions touching the listed addresses and
                         everything depending on them, as pools filter their templates
:class:`OrphaningCensor` the same, on a node cut off and relayed (:mod:`node.lab.real_relay`)
                         that marks every block including such a transaction invalid
                         (``invalidateblock``), so its miner mines the branch without it;
                         ``reconsiderblock`` after ``give_up_after`` blocks behind
:class:`DoubleSpender`   at ``start_height`` cuts its node off, pays the merchant through the
                         public nodes and a conflicting payment to itself through its own
                         node, lets its miner extend the private branch, and reconnects its
                         node once the merchant's node shows the confirmations and the branch
                         has more work (or gives up, ``give_up_behind`` blocks behind)
:class:`SelfishPool`     Eyal and Sirer's state machine on a node cut off and relayed: its
                         blocks stay on its node until the machine publishes them
                         (``submitblock`` to the node's neighbours and ``publish_via``)
=======================  ==================================================================

A strategy *reacts*: the runner calls :meth:`RealStrategy.react` every :data:`REACT` seconds
while the network runs (during waits and ``mine`` steps) and after every step. A reaction is a
few RPC calls, so an attacker notices the merchant's confirmations, or a selfish pool an honest
block, within tens of milliseconds, much less than a block interval. It is not the
milliseconds a block takes to cross a loopback network, though: a selfish pool that answers an
honest block with one of its own loses the race at nodes that already have the honest one,
which makes Eyal and Sirer's gamma close to 0 on real nodes (selfish mining still pays above a
third of the hash power).

A partition of the scenario and an attacker's isolation compose (:class:`Links`): a node kept
apart stays apart through the scenario's partitions and heals, until its strategy releases it.

What this module does not do: find blocks (the devnet's miners do) or judge the outcome (the
runner's analysis and the conditions do).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, ClassVar

from node.core.address import decode_address
from node.core.block import Block
from node.core.errors import WalletError
from node.core.hashing import hash_hex
from node.core.template import touches
from node.core.tx import Transaction
from node.devnet import Devnet
from node.devnet import wallets as devnet_wallets
from node.devnet.status import rest_get
from node.lab.analysis import BlockInfo
from node.lab.conditions import Value
from node.lab.real_relay import Relay, call_or
from node.lab.scenario import (
    Censoring,
    DoubleSpend,
    Honest,
    Mine,
    MinerDecl,
    Scenario,
    Selfish,
)
from node.lab.strategies import AttackPhase
from node.rpc.client import RpcClient
from node.wallet.payment import build_payment

if TYPE_CHECKING:
    from node.lab.runner_real import RealRunner

REACT = 0.05
"""Real seconds between two looks of a strategy at the network."""


class Links:
    """The devnet's partition: the scenario's groups, with the nodes attackers keep apart each
    in a group of its own. Names are the scenario's."""

    def __init__(self, devnet: Devnet, devnet_names: dict[str, str]) -> None:
        self.devnet = devnet
        self._names = devnet_names
        self.groups: tuple[tuple[str, ...], ...] | None = None
        """The partition the scenario's steps asked for (None: healed)."""
        self.isolated: set[str] = set()

    def partition(self, groups: Sequence[Sequence[str]]) -> None:
        self.groups = tuple(tuple(group) for group in groups)
        self._apply()

    def heal(self) -> None:
        self.groups = None
        self._apply()

    def isolate(self, node: str) -> None:
        self.isolated.add(node)
        self._apply()

    def release(self, node: str) -> None:
        """Let ``node`` rejoin the scenario's partition (nothing if it is not kept apart)."""
        if node in self.isolated:
            self.isolated.remove(node)
            self._apply()

    def apart(self, a: str, b: str) -> bool:
        """Whether the scenario's partition separates ``a`` and ``b`` (isolation aside)."""
        if self.groups is None:
            return False
        group_of = {n: i for i, group in enumerate(self.groups) for n in group}
        return group_of.get(a, -1) != group_of.get(b, -1)

    def _apply(self) -> None:
        groups = [[n for n in group if n not in self.isolated] for group in self.groups or ()] + [
            [n] for n in sorted(self.isolated)
        ]
        words = [",".join(self._names[n] for n in group) for group in groups if group]
        if words:
            self.devnet.partition(words)
        else:
            self.devnet.heal(wait=False)


class RealStrategy:
    """One miner's strategy on a devnet (the miner mines on its node's templates); the hooks
    do nothing unless a strategy needs them."""

    kind: ClassVar[str]

    def __init__(self, runner: RealRunner, miner: MinerDecl) -> None:
        self.runner = runner
        self.miner = miner.name
        self.node = miner.node

    def begin(self) -> None:
        """The steps begin."""

    def react(self) -> None:
        """Look at the network and act; called often while the network runs."""

    def restarted(self, node: str) -> None:
        """``node`` was restarted (it kept its chain, not what was set over RPC)."""

    def end(self) -> None:
        """The steps are over: undo what the strategy changed on the devnet."""

    def facts(self) -> dict[str, Value]:
        """What the strategy reports to conditions (``attack_succeeded``...)."""
        return {}

    def abandoned(self, node: str, tip: BlockInfo) -> bool:
        """Whether ``tip``, a branch ``node`` left, was a private branch the pool abandoned."""
        return False

    @property
    def private(self) -> str | None:
        """The pool's node while it is private (cut off): not one of the public nodes whose
        tips conditions read, as the simulator's private nodes are not."""
        return self.node if self.node in self.runner.links.isolated else None


class PolicyCensor(RealStrategy):
    """A pool that will not confirm transactions touching ``addresses``: its node's mining
    policy. Only a policy: every other miner still confirms them."""

    kind = "censoring"

    def __init__(self, runner: RealRunner, miner: MinerDecl, spec: Censoring) -> None:
        super().__init__(runner, miner)
        self.addresses = sorted({runner.address(a) for a in spec.addresses})

    def begin(self) -> None:
        self._set(self.addresses)

    def restarted(self, node: str) -> None:
        if node == self.node:
            self._set(self.addresses)

    def end(self) -> None:
        self._set([])

    def _set(self, addresses: list[str]) -> None:
        client = self.runner.client(self.node)
        if client is not None:
            client.call("setminingpolicy", addresses)


class OrphaningCensor(PolicyCensor):
    """A censoring pool that also refuses to build on blocks including a censored transaction:
    its node, cut off and relayed (:class:`~node.lab.real_relay.Relay`), marks each such block
    invalid (``invalidateblock``), so its miner keeps mining the branch without it;
    ``give_up_after`` blocks behind the public chain, it reconsiders them."""

    def __init__(self, runner: RealRunner, miner: MinerDecl, spec: Censoring) -> None:
        super().__init__(runner, miner, spec)
        self.give_up_after = spec.give_up_after
        params = runner.params
        self.censored = frozenset(decode_address(a, params.address_version) for a in self.addresses)
        self.relay = Relay(runner, self.node, runner.wallet(self.miner).change_pubkey_hash)
        self.refused: list[bytes] = []
        self._holding: list[bytes] = []

    def begin(self) -> None:
        super().begin()
        self.runner.links.isolate(self.node)
        own = self.runner.client(self.node)
        if own is not None:
            self.relay.start(own)

    def react(self) -> None:
        own = self.runner.client(self.node)
        if own is None:
            return
        for block, accepted in self.relay.pull(own):
            if accepted and any(touches(tx, self.censored) for tx in block.transactions[1:]):
                own.call("invalidateblock", block.hash_hex)
                self.refused.append(block.hash)
                self._holding.append(block.hash)
        self.relay.publish(self.relay.new_own(own))
        if self._holding and self.give_up_after is not None:
            public = [t.height for n, t in self.runner.tips().items() if n != self.node]
            height = call_or(own, "getblockcount", default=None)
            if public and height is not None and max(public) - height >= self.give_up_after:
                self._give_up(own)

    def _give_up(self, own: RpcClient) -> None:
        for block_hash in self._holding:
            own.call("reconsiderblock", hash_hex(block_hash))
        self._holding = []
        # Blocks built on the refused ones were turned away: hand them over again.
        for block in self.relay.turned_away:
            call_or(own, "submitblock", block.serialize().hex(), default=None)
        self.relay.turned_away = []

    def end(self) -> None:
        own = self.runner.client(self.node)
        if own is not None:
            for block_hash in self._holding:
                call_or(own, "reconsiderblock", hash_hex(block_hash), default=None)
        self.runner.links.release(self.node)
        super().end()

    def facts(self) -> dict[str, Value]:
        return {"refused_blocks": len(self.refused)}


class DoubleSpender(RealStrategy):
    """The classic double spend, by a pool whose node the operator cuts off and reconnects
    (see the module docstring; the phases are the simulator's)."""

    kind = "double-spend"

    def __init__(self, runner: RealRunner, miner: MinerDecl, spec: DoubleSpend) -> None:
        super().__init__(runner, miner)
        self.spec = spec
        self.phase = AttackPhase.WAITING
        self.payment: Transaction | None = None
        self.refund: Transaction | None = None
        self.delivered = False
        self.fork_height = 0
        """The height the private branch starts above."""
        self.note = ""
        """Why it gave up, if it did."""

    def react(self) -> None:
        if self.phase is AttackPhase.WAITING:
            own = self.runner.client(self.node)
            height = -1 if own is None else call_or(own, "getblockcount", default=-1)
            if own is not None and height >= self.spec.start_height:
                self._begin(own)
        elif self.phase is AttackPhase.MINING:
            self._watch()

    def _begin(self, own: RpcClient) -> None:
        runner, spec = self.runner, self.spec
        params = runner.params
        wallet = runner.wallet(self.miner)
        (pubkey_hash,) = wallet.pubkey_hashes
        state = runner.devnet.state()
        port = state.node(runner.names.node(self.node)).rpc_port
        answer = rest_get(port, f"/rest/address/{wallet.addresses()[0]}/utxos")
        coins, spent = devnet_wallets.coins_from_rest(answer["utxos"], pubkey_hash)
        next_height = int(answer["height"]) + 1
        key = wallet.key_for(pubkey_hash)
        assert key is not None  # the wallet's own address
        keys = {pubkey_hash: key}
        pay_to = decode_address(runner.address(spec.merchant), params.address_version)
        try:
            payment = build_payment(
                coins,
                next_height,
                params,
                keys=keys,
                pay_to=pay_to,
                amount=spec.amount,
                fee_rate=spec.fee_rate,
                change_to=pubkey_hash,
                spent=spent,
            )
            # The same largest coin comes first in both selections, so the two conflict.
            refund = build_payment(
                list(payment.inputs),
                next_height,
                params,
                keys=keys,
                pay_to=pubkey_hash,
                amount=spec.amount,
                fee_rate=spec.fee_rate,
                change_to=pubkey_hash,
            )
        except WalletError as exc:
            # No spendable coin: no attack (the simulator's attacker gives up the same way).
            self.phase, self.note = AttackPhase.ABANDONED, f"cannot pay the merchant: {exc}"
            return
        # Cut off first: the payment must never reach the private branch.
        self.phase = AttackPhase.MINING
        self.fork_height = next_height - 1
        runner.links.isolate(self.node)
        own.call("sendrawtransaction", refund.tx.serialize().hex())
        self.payment, self.refund = payment.tx, refund.tx
        public = runner.client(spec.merchant_node) or runner.client(
            next((n for n in runner.running() if n != self.node), "")
        )
        if public is None:
            self.phase, self.note = AttackPhase.ABANDONED, "no public node runs to pay through"
            runner.links.release(self.node)
            return
        public.call("sendrawtransaction", payment.tx.serialize().hex())

    def _watch(self) -> None:
        runner, spec = self.runner, self.spec
        assert self.payment is not None
        merchant = runner.client(spec.merchant_node)
        if merchant is not None and not self.delivered:
            coin = call_or(merchant, "gettxout", self.payment.txid_hex, 0, False, default=None)
            self.delivered = coin is not None and int(coin["confirmations"]) >= spec.confirmations
        tips = runner.tips()
        private = tips.get(self.node)
        public = [tip for name, tip in tips.items() if name != self.node]
        if private is None or not public:
            return  # its node, or every other, is down: wait
        if self.delivered and private.chain_work > max(t.chain_work for t in public):
            self.phase = AttackPhase.RELEASED
            runner.links.release(self.node)
        elif max(t.height for t in public) - private.height >= spec.give_up_behind:
            self.phase = AttackPhase.ABANDONED
            self.note = f"{spec.give_up_behind} blocks behind"
            runner.links.release(self.node)

    def end(self) -> None:
        self.runner.links.release(self.node)

    def abandoned(self, node: str, tip: BlockInfo) -> bool:
        return (
            self.phase is AttackPhase.ABANDONED
            and node == self.node
            and tip.miner == self.miner
            and tip.height > self.fork_height
        )

    def succeeded(self) -> bool:
        """Whether the merchant's node holds the refund and not the payment (after a release)."""
        merchant = self.runner.client(self.spec.merchant_node)
        if self.payment is None or self.refund is None or merchant is None:
            return False
        paid = call_or(merchant, "gettxout", self.payment.txid_hex, 0, False, default=None)
        refunded = call_or(merchant, "gettxout", self.refund.txid_hex, 0, False, default=None)
        return paid is None and refunded is not None

    def facts(self) -> dict[str, Value]:
        return {"attack_succeeded": self.succeeded()}


class SelfishPool(RealStrategy):
    """Eyal and Sirer's selfish mining (the simulator's :class:`~node.lab.strategies.Selfish`
    has the state machine), by a pool whose node is cut off and relayed: its blocks stay on its
    node until the machine publishes them, to the node's neighbours and ``publish_via``."""

    kind = "selfish"

    def __init__(self, runner: RealRunner, miner: MinerDecl, spec: Selfish) -> None:
        super().__init__(runner, miner)
        self.publish_via = spec.publish_via
        self.relay = Relay(runner, self.node, runner.wallet(self.miner).change_pubkey_hash)
        self.branch: list[Block] = []
        """The pool's blocks since the chains last agreed, oldest first."""
        self.published: set[bytes] = set()
        self.public_height = 0
        self.private_height = 0

    def begin(self) -> None:
        self.runner.links.isolate(self.node)
        own = self.runner.client(self.node)
        if own is not None:
            self.relay.start(own)
            self.private_height = self.public_height = int(own.call("getblockcount"))

    def react(self) -> None:
        own = self.runner.client(self.node)
        if own is None:
            return
        for block in self.relay.new_own(own):
            self._found(block)
        for block, _accepted in self.relay.pull(own):
            if _height(block) > self.public_height:  # others found a block
                before, self.public_height = self.public_height, _height(block)
                self._others_found(before)
        self.private_height = call_or(own, "getblockcount", default=self.private_height)

    def _found(self, block: Block) -> None:
        lead_before = _height(block) - 1 - self.public_height
        self.private_height = _height(block)
        self.branch.append(block)
        if lead_before == 0 and len(self.branch) == 2:
            self._publish(upto=None)
            self.branch = []

    def _others_found(self, public_before: int) -> None:
        lead_before = self.private_height - public_before
        if lead_before <= 0:
            self.branch = []  # they win: the pool's node has moved to their chain
        elif lead_before <= 2:
            self._publish(upto=None)
            if lead_before == 2:
                self.branch = []
        else:
            self._publish(upto=self.public_height)

    def _publish(self, *, upto: int | None) -> None:
        """Publish the unpublished blocks of the branch, up to height ``upto`` (None: all)."""
        blocks = [
            b
            for b in self.branch
            if b.hash not in self.published and (upto is None or _height(b) <= upto)
        ]
        self.published.update(b.hash for b in blocks)
        self.relay.publish(blocks, also=self.publish_via)
        if blocks:
            self.public_height = max(self.public_height, _height(blocks[-1]))

    def end(self) -> None:
        self.runner.links.release(self.node)


def _height(block: Block) -> int:
    return block.transactions[0].coinbase_height or 0


def unsupported(scenario: Scenario) -> list[str]:
    """Why the strategies of ``scenario`` cannot run on real nodes; empty if they can."""
    reasons = []
    for miner in scenario.miners:
        spec, where = miner.strategy, f"miner {miner.name}"
        if isinstance(spec, Honest):
            continue
        others = [m.name for m in scenario.miners if m.node == miner.node and m is not miner]
        if others:
            reasons.append(
                f"{where} ({spec.kind}) shares node {miner.node} with {', '.join(others)}: on "
                "real nodes a pool's strategy acts on its node, for every miner on it; give "
                "it a node of its own"
            )
        if isinstance(spec, DoubleSpend) and spec.merchant_node == miner.node:
            reasons.append(f"{where}: the merchant's node is the attacker's own")
        for index, step in enumerate(scenario.steps):
            if isinstance(step, Mine) and step.node == miner.node:
                reasons.append(
                    f"step {index + 1} (mine): blocks mined on {miner.node} follow the "
                    f"{spec.kind} pool {miner.name} there; mine on another node"
                )
    return reasons


def build(runner: RealRunner, miners: Sequence[MinerDecl]) -> dict[str, RealStrategy]:
    """The strategies of the miners that have one (honest miners need none), by miner."""
    built: dict[str, RealStrategy] = {}
    for miner in miners:
        spec = miner.strategy
        if isinstance(spec, Censoring):
            censor = OrphaningCensor if spec.orphan else PolicyCensor
            built[miner.name] = censor(runner, miner, spec)
        elif isinstance(spec, DoubleSpend):
            built[miner.name] = DoubleSpender(runner, miner, spec)
        elif isinstance(spec, Selfish):
            built[miner.name] = SelfishPool(runner, miner, spec)
    return built


def facts(
    strategies: Mapping[str, RealStrategy], wanted: Collection[tuple[str, str]]
) -> dict[tuple[str, str], Value]:
    """(miner, fact) -> value, for the ``wanted`` facts of miners with a strategy."""
    found: dict[tuple[str, str], Value] = {}
    for miner in {miner for miner, _fact in wanted}:
        strategy = strategies.get(miner)
        if strategy is not None:
            found.update({(miner, f): v for f, v in strategy.facts().items()})
    return found


class Stopped(Exception):  # noqa: N818 (it is the event, not an error)
    """The run's ``stop`` event was set during a :func:`pause`."""


def pause(
    seconds: float, strategies: Sequence[RealStrategy], stop: threading.Event | None = None
) -> None:
    """Let ``seconds`` pass, the strategies reacting every :data:`REACT` seconds meanwhile;
    :class:`Stopped` within one of those once ``stop`` is set (a pause of 0 only reacts)."""
    deadline = time.monotonic() + seconds
    while True:
        for strategy in strategies:
            strategy.react()
        left = deadline - time.monotonic()
        if left <= 0:
            return
        # Not stop.wait(): the event may be set by a signal handler on this very thread, and
        # set() would then wait for the lock wait() holds.
        if stop is not None and stop.is_set():
            raise Stopped
        time.sleep(min(REACT, left))
