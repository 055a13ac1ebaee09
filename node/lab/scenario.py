"""Scenarios: a network, its miners, and a timeline of steps, to run in the simulator or on real
nodes.

A :class:`Scenario` is plain data, written as a TOML file (:mod:`node.lab.scenario_toml`) or
built in Python from the same classes; :func:`node.lab.runner_sim.run_scenario` runs it in the
simulator and :func:`node.lab.runner_real.run_real` on a devnet of real processes. The model
checks itself when built: every name a step, a miner or a condition uses must be declared, so a
typo is an error before anything runs, with the step it is in.

The parts:

- the network: the chain preset and, in the simulator, overrides of its constants (a short
  halving interval, a short coinbase maturity), the seconds between blocks at full hash power,
  the topology (``line``, ``ring``, ``mesh``, ``random:K``: the devnet's, so a scenario has the
  same links on both backends), a default link latency and per-link properties;
- wallets funded at the start as a devnet funds them: blocks 1 to W + maturity pay the W
  wallets in turn, mined on the first node (miner ``funding``);
- miners: a node, a share of the hash power, a strategy (honest, selfish, censoring,
  double-spend); a miner's coins go to the wallet named after it (nodes, links, miners and
  strategies are declared in :mod:`node.lab.declarations`, re-exported here);
- steps, run in order (:mod:`node.lab.steps`, re-exported here): :class:`Partition`,
  :class:`Heal`, :class:`Kill`, :class:`Restart`, :class:`SetLatency`, :class:`SetShare`,
  :class:`Send`, :class:`Mine`, :class:`Wait`, :class:`Assert`, :class:`Note`;
- invariants to check after the steps (the fuzzer's; :mod:`node.lab.invariants`).

Names of nodes, miners, wallets and labels are lower-case words (``[a-z][a-z0-9_-]*``, at most 32
characters), as devnet wallet names are, so the same file runs on a devnet.

::

    ForklabError                (node.core.errors)
    └── ScenarioError           a scenario that cannot run as written: says where and why

What this module does not do: read files (:mod:`node.lab.scenario_toml`) or run anything.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from node.core.address import decode_address
from node.core.errors import AddressError, ForklabError
from node.core.params import PRESETS, NetworkParams
from node.core.tx import MAX_MONEY
from node.devnet.state import DevnetError
from node.devnet.topology import Topology
from node.lab.conditions import Arg, Condition, suggest
from node.lab.declarations import (
    STRATEGIES,
    Censoring,
    DoubleSpend,
    Honest,
    LinkDecl,
    MinerDecl,
    NodeDecl,
    Selfish,
    StrategySpec,
)
from node.lab.steps import (
    STEPS,
    Assert,
    Heal,
    Kill,
    Mine,
    Note,
    Partition,
    Restart,
    Send,
    SetLatency,
    SetShare,
    Step,
    Wait,
    coins,
    format_coins,
    step_context,
)

__all__ = [
    "NAME",
    "PARAM_OVERRIDES",
    "STEPS",
    "STRATEGIES",
    "Assert",
    "Censoring",
    "DoubleSpend",
    "Heal",
    "Honest",
    "Kill",
    "LinkDecl",
    "Mine",
    "MinerDecl",
    "NodeDecl",
    "Note",
    "Partition",
    "Restart",
    "Scenario",
    "ScenarioError",
    "Selfish",
    "Send",
    "SetLatency",
    "SetShare",
    "Step",
    "StrategySpec",
    "Wait",
    "coins",
    "format_coins",
    "step_context",
]

NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")
SCENARIO_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")

PARAM_OVERRIDES = ("halving_interval", "coinbase_maturity")
"""Constants a scenario may change in the simulator. Others would change the genesis block or
the difficulty, which makes a chain that real nodes of the preset would not recognise."""

STEP_ERRORS = ("fail", "skip")


class ScenarioError(ForklabError):
    """A scenario that cannot run as written.

    ``section``, ``index`` and ``key`` say where (``("step", 2, "groups")``: the third step's
    ``groups``), so a loader can add the file's line; the message already names the step.
    """

    def __init__(
        self,
        message: str,
        *,
        section: str | None = None,
        index: int | None = None,
        key: str | None = None,
    ) -> None:
        super().__init__(message)
        self.section = section
        self.index = index
        self.key = key


# ------------------------------------------------------------------------------ scenario


@dataclass(frozen=True)
class Scenario:
    name: str
    nodes: tuple[NodeDecl, ...]
    title: str = ""
    explanation: str = ""
    """A few sentences for the reader (the dashboard shows them with the lesson)."""
    seed: int = 1
    network: str = "regtest"
    params: tuple[tuple[str, int], ...] = ()
    """Overrides of the preset's constants (:data:`PARAM_OVERRIDES`; simulator only)."""
    interval: float = 600.0
    """Seconds between blocks when the miners' shares add up to 1."""
    topology: str = "line"
    latency: float = 0.05
    """Default one-way latency of every link, seconds."""
    wallets: tuple[str, ...] = ()
    miners: tuple[MinerDecl, ...] = ()
    links: tuple[LinkDecl, ...] = ()
    steps: tuple[Step, ...] = ()
    invariants: tuple[str, ...] = ()
    """Invariants checked after the steps (:mod:`node.lab.invariants`)."""
    step_errors: str = "fail"
    """``fail``: a step that cannot be done (a node already down, a wallet without coins) fails
    the run; ``skip``: it is noted and skipped (the fuzzer's scenarios, whose steps are random)."""
    time_limit: float | None = None
    """Seconds of simulated time after which the run is stopped and reported as a hang
    (simulator only; the fuzzer sets it, so a case that never ends is a failure, not a wait)."""

    def __post_init__(self) -> None:
        _Checker(self).check()

    # -- derived

    @property
    def node_names(self) -> tuple[str, ...]:
        return tuple(n.name for n in self.nodes)

    @property
    def miner_names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.miners)

    def node(self, name: str) -> NodeDecl:
        return next(n for n in self.nodes if n.name == name)

    def network_params(self) -> NetworkParams:
        overrides: dict[str, Any] = dict(self.params)
        return dataclasses.replace(PRESETS[self.network], **overrides)

    def edges(self) -> tuple[tuple[str, str], ...]:
        """The topology's links as (earlier node, later node), in order."""
        names = self.node_names
        edges = Topology.parse(self.topology).edges(len(names), self.seed)
        return tuple((names[a], names[b]) for a, b in edges)

    def labels(self) -> tuple[str, ...]:
        return tuple(s.label for s in self.steps if isinstance(s, Send) and s.label)

    def with_steps(self, steps: Sequence[Step]) -> Scenario:
        return dataclasses.replace(self, steps=tuple(steps))

    def funding_blocks(self) -> int:
        """Blocks that fund the wallets at the start (none without wallets)."""
        if not self.wallets:
            return 0
        return len(self.wallets) + self.network_params().coinbase_maturity


class _Checker:
    """The cross-checks of a scenario; every error says where."""

    def __init__(self, scenario: Scenario) -> None:
        self.s = scenario

    def fail(
        self,
        message: str,
        section: str | None = None,
        index: int | None = None,
        key: str | None = None,
    ) -> ScenarioError:
        return ScenarioError(message, section=section, index=index, key=key)

    def check(self) -> None:
        s = self.s
        if not SCENARIO_NAME.fullmatch(s.name):
            raise self.fail(
                f"scenario name {s.name!r}: use lower-case letters, digits and '-'",
                "scenario",
                key="name",
            )
        self._network()
        self._nodes()
        self._wallets_and_miners()
        self._links()
        labels: set[str] = set()
        for index, step in enumerate(s.steps):
            self._step(index, step, labels)
        if s.time_limit is not None and not (math.isfinite(s.time_limit) and s.time_limit > 0):
            raise self.fail(
                f"time_limit is a number of seconds above 0, not {s.time_limit}",
                "scenario",
                key="time_limit",
            )
        if s.step_errors not in STEP_ERRORS:
            raise self.fail(
                f"step_errors is 'fail' or 'skip', not {s.step_errors!r}",
                "scenario",
                key="step_errors",
            )

    def _network(self) -> None:
        s = self.s
        if s.network not in PRESETS:
            raise self.fail(
                f"unknown network {s.network!r}; choose one of {', '.join(sorted(PRESETS))}",
                "scenario",
                key="network",
            )
        for key, value in s.params:
            if key not in PARAM_OVERRIDES:
                raise self.fail(
                    f"[params] cannot change {key!r}{suggest(key, PARAM_OVERRIDES)} "
                    f"(it may change: {', '.join(PARAM_OVERRIDES)})",
                    "params",
                    key=key,
                )
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise self.fail(
                    f"[params] {key} is a whole number >= 1, not {value!r}", "params", key=key
                )
        if not (math.isfinite(s.interval) and s.interval > 0):
            raise self.fail(
                f"interval is a number of seconds above 0, not {s.interval}",
                "scenario",
                key="interval",
            )
        if not (math.isfinite(s.latency) and s.latency >= 0):
            raise self.fail(
                f"latency is a number of seconds >= 0, not {s.latency}", "scenario", key="latency"
            )
        try:
            Topology.parse(s.topology)
        except DevnetError as exc:
            raise self.fail(str(exc), "scenario", key="topology") from None

    def _nodes(self) -> None:
        if not self.s.nodes:
            raise self.fail("a scenario needs at least one [[node]]", "scenario")
        seen: set[str] = set()
        for index, node in enumerate(self.s.nodes):
            self._name(node.name, f"node {index + 1}", "node", index)
            if node.name in seen:
                raise self.fail(f"node {node.name!r} is declared twice", "node", index, "name")
            seen.add(node.name)
            if not math.isfinite(node.clock_offset):
                raise self.fail(
                    f"node {node.name}: clock_offset is a number of seconds",
                    "node",
                    index,
                    "clock_offset",
                )

    def _wallets_and_miners(self) -> None:
        s = self.s
        for index, wallet in enumerate(s.wallets):
            self._name(wallet, "wallet", "scenario", None, "wallets")
            if s.wallets.index(wallet) != index:
                raise self.fail(f"wallet {wallet!r} is listed twice", "scenario", key="wallets")
        seen: set[str] = set()
        for index, miner in enumerate(s.miners):
            where = f"miner {miner.name!r}"
            self._name(miner.name, f"miner {index + 1}", "miner", index)
            if miner.name in seen:
                raise self.fail(f"miner {miner.name!r} is declared twice", "miner", index, "name")
            if miner.name in s.wallets:
                raise self.fail(
                    f"{where}: a miner's coins go to the wallet named after it; "
                    f"{miner.name!r} is already a funded wallet",
                    "miner",
                    index,
                    "name",
                )
            seen.add(miner.name)
            self._node_ref(miner.node, where, "miner", index, "node")
            if not (math.isfinite(miner.share) and miner.share >= 0):
                raise self.fail(
                    f"{where}: share is a number >= 0, not {miner.share}", "miner", index, "share"
                )
            self._strategy(index, miner)

    def _strategy(self, index: int, miner: MinerDecl) -> None:
        where = f"miner {miner.name!r} ({miner.strategy.kind})"
        strategy = miner.strategy
        if isinstance(strategy, Selfish):
            for node in strategy.publish_via:
                self._node_ref(node, where, "miner", index, "publish_via")
        elif isinstance(strategy, Censoring):
            if not strategy.addresses:
                raise self.fail(
                    f"{where}: list the addresses it censors", "miner", index, "addresses"
                )
            for target in strategy.addresses:
                self._payee(target, where, "miner", index, "addresses")
            if strategy.give_up_after is not None and strategy.give_up_after < 1:
                raise self.fail(
                    f"{where}: give_up_after is at least 1", "miner", index, "give_up_after"
                )
        elif isinstance(strategy, DoubleSpend):
            self._payee(strategy.merchant, where, "miner", index, "merchant")
            self._node_ref(strategy.merchant_node, where, "miner", index, "merchant_node")
            if strategy.amount <= 0:
                raise self.fail(f"{where}: amount is above 0", "miner", index, "amount")
            if strategy.start_height < 1:
                raise self.fail(
                    f"{where}: start_height is at least 1", "miner", index, "start_height"
                )
            for key in ("confirmations", "give_up_behind"):
                if getattr(strategy, key) < 1:
                    raise self.fail(f"{where}: {key} is at least 1", "miner", index, key)
            if strategy.fee_rate < 0:
                raise self.fail(f"{where}: fee_rate is >= 0", "miner", index, "fee_rate")

    def _links(self) -> None:
        for index, link in enumerate(self.s.links):
            where = f"link {link.a} - {link.b}"
            self._node_ref(link.a, where, "link", index, "a")
            self._node_ref(link.b, where, "link", index, "b")
            if link.a == link.b:
                raise self.fail(f"{where}: a link joins two different nodes", "link", index)
            for key in ("latency", "jitter", "bandwidth", "loss"):
                value = getattr(link, key)
                if value is None:
                    continue
                ok = math.isfinite(value) and value >= 0
                if key == "bandwidth":
                    ok = ok and value > 0
                if key == "loss":
                    ok = ok and value < 1
                if not ok:
                    raise self.fail(f"{where}: {key} {value} is out of range", "link", index, key)

    def _step(self, index: int, step: Step, labels: set[str]) -> None:
        where = step_context(index, step)

        def fail(message: str, key: str | None = None) -> ScenarioError:
            return self.fail(f"{where}: {message}", "step", index, key)

        def node(name: str | None, key: str) -> None:
            if name is not None:
                self._node_ref(name, where, "step", index, key)

        if isinstance(step, Partition):
            seen: set[str] = set()
            for group in step.groups:
                if not group:
                    raise fail("a group is empty", "groups")
                for name in group:
                    node(name, "groups")
                    if name in seen:
                        raise fail(f"node {name} is in two groups", "groups")
                    seen.add(name)
            rest = [n for n in self.s.node_names if n not in seen]
            if len(step.groups) + (1 if rest else 0) < 2:
                raise fail(
                    "a partition needs two groups (nodes named in no group form one)", "groups"
                )
        elif isinstance(step, Kill | Restart):
            node(step.node, "node")
        elif isinstance(step, SetLatency):
            node(step.a, "a")
            node(step.b, "b")
            if step.a == step.b:
                raise fail("a latency is between two different nodes", "b")
            if not (math.isfinite(step.seconds) and step.seconds >= 0):
                raise fail(f"seconds is a number >= 0, not {step.seconds}", "seconds")
        elif isinstance(step, SetShare):
            self._miner_ref(step.miner, where, index, "miner")
            if not (math.isfinite(step.share) and step.share >= 0):
                raise fail(f"share is a number >= 0, not {step.share}", "share")
        elif isinstance(step, Send):
            self._spender(step.sender, where, index)
            self._payee(step.to, where, "step", index, "to")
            node(step.via, "via")
            if step.amount <= 0 or step.amount > MAX_MONEY:
                raise fail("amount is above 0 and at most 21,000,000 coins", "amount")
            if step.fee_rate is not None and step.fee_rate < 0:
                raise fail("fee_rate is >= 0", "fee_rate")
            if step.conflicts is not None and step.conflicts not in labels:
                raise fail(
                    f"conflicts names {step.conflicts!r}, which no earlier send is labelled"
                    f"{suggest(step.conflicts, sorted(labels))}",
                    "conflicts",
                )
            if step.label is not None:
                self._name(step.label, f"{where}: label", "step", index, "label")
                if step.label in labels:
                    raise fail(f"label {step.label!r} is used twice", "label")
                labels.add(step.label)
        elif isinstance(step, Mine):
            if step.blocks < 1:
                raise fail(f"blocks is at least 1, not {step.blocks}", "blocks")
            if step.node is not None and step.miner is not None:
                raise fail("mine on a node or by a miner, not both", "miner")
            node(step.node, "node")
            if step.miner is not None:
                self._miner_ref(step.miner, where, index, "miner")
            if step.to is not None:
                if step.node is None:
                    raise fail("'to' goes with 'node' (a miner's blocks pay the miner)", "to")
                self._payee(step.to, where, "step", index, "to")
            if step.node is None and step.miner is None and not self.s.miners:
                raise fail("no miner is declared; mine on a node instead (node = ...)", "blocks")
        elif isinstance(step, Wait):
            if (step.seconds is None) == (step.until is None):
                raise fail("give either seconds or until", "seconds")
            if step.seconds is not None and not (math.isfinite(step.seconds) and step.seconds >= 0):
                raise fail(f"seconds is a number >= 0, not {step.seconds}", "seconds")
            if not (math.isfinite(step.timeout) and step.timeout > 0):
                raise fail(f"timeout is a number of seconds above 0, not {step.timeout}", "timeout")
            if step.mining and not self.s.miners:
                raise fail("mining = true, but no miner is declared", "mining")
            if step.until is not None:
                self._condition(step.until, where, index, "until", labels)
        elif isinstance(step, Assert):
            self._condition(step.that, where, index, "that", labels)

    def _condition(
        self, condition: Condition, where: str, index: int, key: str, labels: set[str]
    ) -> None:
        for metric in condition.metrics():
            for kind, name in metric.arguments():
                if kind is Arg.NODE:
                    self._node_ref(name, f"{where}: {metric}", "step", index, key)
                elif kind is Arg.MINER:
                    self._miner_ref(name, f"{where}: {metric}", index, key)
                elif kind is Arg.WALLET:
                    self._wallet_ref(name, f"{where}: {metric}", index, key)
                elif name not in labels:
                    raise self.fail(
                        f"{where}: {metric}: no earlier send is labelled {name!r}"
                        f"{suggest(name, sorted(labels))}",
                        "step",
                        index,
                        key,
                    )

    # -- references

    def _name(
        self, name: str, what: str, section: str, index: int | None, key: str = "name"
    ) -> None:
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise self.fail(
                f"{what}: {name!r} is not a name (lower-case letters, digits, '_' and '-', "
                "starting with a letter, at most 32 characters)",
                section,
                index,
                key,
            )

    def _node_ref(self, name: str, where: str, section: str, index: int | None, key: str) -> None:
        if name not in self.s.node_names:
            raise self.fail(
                f"{where}: there is no node {name!r}{suggest(name, self.s.node_names)} "
                f"(nodes: {', '.join(self.s.node_names)})",
                section,
                index,
                key,
            )

    def _miner_ref(self, name: str, where: str, index: int, key: str) -> None:
        if name not in self.s.miner_names:
            known = ", ".join(self.s.miner_names) or "none declared"
            raise self.fail(
                f"{where}: there is no miner {name!r}{suggest(name, self.s.miner_names)} "
                f"(miners: {known})",
                "step",
                index,
                key,
            )

    def _wallet_ref(self, name: str, where: str, index: int, key: str) -> None:
        """A wallet a condition may follow: funded, a miner's, or named by a ``send``."""
        s = self.s
        sends = [step for step in s.steps if isinstance(step, Send)]
        payees = {x.to for x in sends if NAME.fullmatch(x.to)}  # not addresses
        known = sorted({*s.wallets, *s.miner_names, *(x.sender for x in sends), *payees})
        if name not in known:
            raise self.fail(
                f"{where}: {name!r} is no wallet of this scenario{suggest(name, known)} "
                f"(funded, a miner's, or named by a send: {', '.join(known) or 'none'})",
                "step",
                index,
                key,
            )

    def _spender(self, name: str, where: str, index: int) -> None:
        owners = (*self.s.wallets, *self.s.miner_names)
        if name not in owners:
            raise self.fail(
                f"{where}: {name!r} has no coins here: it is neither a funded wallet nor a "
                f"miner{suggest(name, owners)} (wallets: {', '.join(owners) or 'none'})",
                "step",
                index,
                "from",
            )

    def _payee(self, target: str, where: str, section: str, index: int | None, key: str) -> None:
        """A wallet or miner of the scenario, any other name (a wallet with no coins yet), or
        an address of the scenario's network."""
        if NAME.fullmatch(target):
            return
        try:
            decode_address(target, PRESETS[self.s.network].address_version)
        except AddressError as exc:
            raise self.fail(
                f"{where}: {target!r} is neither a wallet name nor an address: {exc}",
                section,
                index,
                key,
            ) from None
