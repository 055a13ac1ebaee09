"""Conditions of a scenario: what ``wait until`` waits for and what ``assert`` checks.

A condition is a line of text, the same for the simulator and for real nodes::

    converged
    height(b) >= 5 and stale_blocks >= 1
    share(pool) > hash_share(pool)
    confirmations(payment, merchant) == 0

Grammar: comparisons joined by ``and``; a comparison is ``OPERAND OP OPERAND`` with ``OP`` one
of ``== != < <= > >=``, or a lone boolean metric (``converged``). An operand is a number,
``true``/``false``, or a metric, with its arguments in parentheses: names of nodes, miners or
labelled transactions. :data:`METRICS` lists every metric; the scenario checks each name and
each argument when it is loaded, so a typo is an error before anything runs.

Evaluation is pure: a runner gathers the :class:`Facts` a condition :meth:`~Condition.needs`
(a block tree is only built when a metric reads it, so ``wait until = "converged"``, polled
every second of a simulation, stays cheap) and :meth:`Condition.evaluate` reads them. Metrics
that count blocks read the :class:`~node.lab.analysis.Analysis` of the run so far.

What this module does not do: gather facts (the runners do), or decide what a failed
condition means (a wait that times out and a failed assert are both recorded by the runner).
"""

from __future__ import annotations

import difflib
import enum
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from node.core.errors import ForklabError
from node.core.params import NetworkParams
from node.core.tx import COIN
from node.lab.analysis import Analysis, TipView

Value = bool | int | float


class ConditionError(ForklabError):
    """A condition that does not parse, or names a metric that does not exist."""


class Arg(enum.Enum):
    """What a metric's argument names."""

    NODE = "node"
    MINER = "miner"
    LABEL = "label"
    """A transaction labelled by a ``send`` step."""
    WALLET = "wallet"
    """A wallet or miner: one the scenario funds or declares, or one a ``send`` names."""


@dataclass(frozen=True)
class Facts:
    """What a runner observed at one moment; each condition reads what it needs."""

    time: float
    """Seconds since the scenario started (virtual in the simulator)."""
    params: NetworkParams
    tips: Mapping[str, TipView]
    """Each running public node's tip."""
    reorgs: Mapping[int, int]
    """Reorganisation depth -> how many times a public node went through one."""
    errors: int
    """Errors the nodes logged (failures they survived)."""
    hash_shares: Mapping[str, float]
    analysis: Analysis | None = None
    """The block tree so far, when :attr:`Needs.tree`."""
    peers: Mapping[str, int] = field(default_factory=dict)
    confirmations: Mapping[tuple[str, str], int] = field(default_factory=dict)
    """(label, node) -> confirmations of the labelled transaction on that node's chain."""
    strategy: Mapping[tuple[str, str], Value] = field(default_factory=dict)
    """(miner, fact) -> what a miner's strategy reports (``attack_succeeded``...)."""

    def require_analysis(self) -> Analysis:
        if self.analysis is None:
            raise ConditionError("the runner gathered no block tree for this condition")
        return self.analysis


@dataclass(frozen=True)
class Needs:
    """What a runner must gather before a condition can be evaluated."""

    tree: bool = False
    peers: frozenset[str] = frozenset()
    confirmations: frozenset[tuple[str, str]] = frozenset()
    strategy: frozenset[tuple[str, str]] = frozenset()

    def __or__(self, other: Needs) -> Needs:
        return Needs(
            self.tree or other.tree,
            self.peers | other.peers,
            self.confirmations | other.confirmations,
            self.strategy | other.strategy,
        )


Compute = Callable[[Facts, tuple[str, ...]], Value]


@dataclass(frozen=True)
class MetricSpec:
    name: str
    args: tuple[Arg, ...]
    """Required arguments, in order."""
    optional: tuple[Arg, ...]
    """Arguments that may follow the required ones."""
    help: str
    compute: Compute
    tree: bool = False
    """Whether it reads the block tree."""
    boolean: bool = False
    """A truth value (stands alone, or compares with == or != only), not a number."""
    gather: Callable[[tuple[str, ...]], Needs] | None = None
    """What else a runner must gather for it, given its arguments."""

    @property
    def signature(self) -> str:
        parts = [a.value for a in self.args] + [f"[{a.value}]" for a in self.optional]
        return f"{self.name}({', '.join(parts)})" if parts else self.name

    def needs(self, args: tuple[str, ...]) -> Needs:
        needs = Needs(tree=self.tree)
        return needs if self.gather is None else needs | self.gather(args)


def _coins(units: int) -> float:
    return units / COIN


def _converged(facts: Facts, _args: tuple[str, ...]) -> bool:
    return len({tip.hash for tip in facts.tips.values()}) <= 1


def _height(facts: Facts, args: tuple[str, ...]) -> int:
    if args:
        tip = facts.tips.get(args[0])
        return tip.height if tip is not None else -1
    return max((tip.height for tip in facts.tips.values()), default=0)


def _confirmations_key(args: tuple[str, ...]) -> tuple[str, str]:
    """(label, node) for ``confirmations(label[, node])``; node "" for the best chain."""
    return args[0], args[1] if len(args) > 1 else ""


def _confirmations(facts: Facts, args: tuple[str, ...]) -> int:
    label, node = _confirmations_key(args)
    if node:
        return facts.confirmations.get((label, node), 0)
    return facts.require_analysis().confirmations_of(label)


def _miner(facts: Facts, name: str) -> tuple[int, int, float]:
    summary = facts.require_analysis().miner(name)
    if summary is None:
        return 0, 0, 0.0
    return summary.found, summary.main, summary.main_share


def _halvings(facts: Facts, _args: tuple[str, ...]) -> int:
    return (_height(facts, ()) + 1) // facts.params.halving_interval


def _subsidy(facts: Facts, _args: tuple[str, ...]) -> float:
    return _coins(facts.params.subsidy(_height(facts, ()) + 1))


def _supply(facts: Facts, _args: tuple[str, ...]) -> float:
    supply = facts.require_analysis().supply
    if supply is None:
        raise ConditionError("the supply is unknown: a block of the main chain was never seen")
    return _coins(supply)


def _traced(facts: Facts, args: tuple[str, ...]) -> float:
    units = facts.require_analysis().traced(args[0], args[1])
    if units is None:
        raise ConditionError("the money cannot be followed: a block of the main chain is unknown")
    return _coins(units)


def _strategy_fact(name: str, help: str, default: Value) -> MetricSpec:
    """A metric a miner's strategy reports (:attr:`Facts.strategy`)."""
    return MetricSpec(
        name,
        (Arg.MINER,),
        (),
        help,
        lambda f, a: f.strategy.get((a[0], name), default),
        boolean=isinstance(default, bool),
        gather=lambda a: Needs(strategy=frozenset({(a[0], name)})),
    )


_N, _M, _L, _W = Arg.NODE, Arg.MINER, Arg.LABEL, Arg.WALLET

METRICS: dict[str, MetricSpec] = {
    spec.name: spec
    for spec in (
        MetricSpec(
            "converged", (), (), "every running node is on one tip", _converged, boolean=True
        ),
        MetricSpec(
            "height", (), (_N,), "height of the best tip, or of a node's tip (-1: down)", _height
        ),
        MetricSpec("nodes_up", (), (), "running nodes", lambda f, _a: len(f.tips)),
        MetricSpec(
            "peers",
            (_N,),
            (),
            "a node's connections",
            lambda f, a: f.peers.get(a[0], 0),
            gather=lambda a: Needs(peers=frozenset(a)),
        ),
        MetricSpec(
            "blocks",
            (),
            (),
            "blocks found so far, funding included",
            lambda f, _a: len(f.require_analysis().blocks),
            tree=True,
        ),
        MetricSpec(
            "stale_blocks",
            (),
            (),
            "blocks found that are not on the best chain",
            lambda f, _a: len(f.require_analysis().stale),
            tree=True,
        ),
        MetricSpec(
            "stale_rate",
            (),
            (),
            "stale blocks among the blocks found after funding",
            lambda f, _a: f.require_analysis().stale_rate,
            tree=True,
        ),
        MetricSpec(
            "reorgs", (), (), "reorganisations, all nodes", lambda f, _a: sum(f.reorgs.values())
        ),
        MetricSpec(
            "max_reorg_depth",
            (),
            (),
            "the deepest reorganisation any node went through",
            lambda f, _a: max((d for d, n in f.reorgs.items() if n), default=0),
        ),
        MetricSpec(
            "found", (_M,), (), "blocks a miner found", lambda f, a: _miner(f, a[0])[0], tree=True
        ),
        MetricSpec(
            "main_blocks",
            (_M,),
            (),
            "a miner's blocks on the best chain",
            lambda f, a: _miner(f, a[0])[1],
            tree=True,
        ),
        MetricSpec(
            "share",
            (_M,),
            (),
            "a miner's share of the best chain's blocks found by hash power",
            lambda f, a: _miner(f, a[0])[2],
            tree=True,
        ),
        MetricSpec(
            "hash_share",
            (_M,),
            (),
            "a miner's share of the hash power",
            lambda f, a: f.hash_shares.get(a[0], 0.0),
        ),
        MetricSpec(
            "confirmations",
            (_L,),
            (_N,),
            "confirmations of a labelled transaction on the best chain, or a node's",
            _confirmations,
            tree=True,
            gather=lambda a: Needs(confirmations=frozenset({_confirmations_key(a)})),
        ),
        MetricSpec(
            "supply",
            (),
            (),
            "coins in existence on the best chain (its unspent outputs), in coins",
            _supply,
            tree=True,
        ),
        MetricSpec(
            "traced",
            (_W, _W),
            (),
            "coins the second wallet holds that descend from the first's (haircut model)",
            _traced,
            tree=True,
        ),
        MetricSpec(
            "supply_cap",
            (),
            (),
            "every coin the subsidy schedule will ever create",
            lambda f, _a: _coins(f.params.supply_cap),
        ),
        MetricSpec("subsidy", (), (), "the next block's subsidy, in coins", _subsidy),
        MetricSpec("halvings", (), (), "halvings before the next block", _halvings),
        MetricSpec("errors", (), (), "errors the nodes logged", lambda f, _a: f.errors),
        _strategy_fact(
            "attack_succeeded", "a double-spend attacker's merchant lost the payment", False
        ),
        _strategy_fact("refused_blocks", "blocks a censoring miner refused to build on", 0),
        MetricSpec("time", (), (), "seconds since the scenario started", lambda f, _a: f.time),
    )
}


@dataclass(frozen=True)
class Metric:
    name: str
    args: tuple[str, ...] = ()

    @property
    def spec(self) -> MetricSpec:
        return METRICS[self.name]

    def __str__(self) -> str:
        return f"{self.name}({', '.join(self.args)})" if self.args else self.name

    def value(self, facts: Facts) -> Value:
        return self.spec.compute(facts, self.args)

    def arguments(self) -> Iterator[tuple[Arg, str]]:
        """Each argument with what it names."""
        kinds = self.spec.args + self.spec.optional
        return zip(kinds, self.args, strict=False)


@dataclass(frozen=True)
class Literal:
    value: Value

    def __str__(self) -> str:
        if isinstance(self.value, bool):
            return "true" if self.value else "false"
        return repr(self.value)


Operand = Metric | Literal

_OPS: dict[str, Callable[[Value, Value], bool]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<=": lambda a, b: a <= b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    ">": lambda a, b: a > b,
}


@dataclass(frozen=True)
class Comparison:
    left: Operand
    op: str | None = None
    """None: ``left`` alone, a boolean metric."""
    right: Operand | None = None

    def __str__(self) -> str:
        if self.op is None or self.right is None:
            return str(self.left)
        return f"{self.left} {self.op} {self.right}"


@dataclass(frozen=True)
class Evaluation:
    passed: bool
    observed: tuple[tuple[str, Value], ...]
    """Each metric of the condition and its value, in order of appearance."""

    def describe(self) -> str:
        return ", ".join(f"{name} = {_show(value)}" for name, value in self.observed)


def _show(value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


@dataclass(frozen=True)
class Condition:
    """A parsed condition; ``text`` is what was written (and what is written back)."""

    text: str
    terms: tuple[Comparison, ...]

    @classmethod
    def parse(cls, text: str) -> Condition:
        """ConditionError with the offending word for anything but the grammar above."""
        tokens = _tokenize(text)
        terms = []
        position = 0
        while True:
            comparison, position = _comparison(tokens, position, text)
            terms.append(comparison)
            if position == len(tokens):
                break
            if tokens[position] != "and":
                raise ConditionError(
                    f"{text!r}: expected 'and' or the end, found {tokens[position]!r}"
                )
            position += 1
            if position == len(tokens):
                raise ConditionError(f"{text!r}: nothing after 'and'")
        return cls(text.strip(), tuple(terms))

    def metrics(self) -> Iterator[Metric]:
        for term in self.terms:
            for operand in (term.left, term.right):
                if isinstance(operand, Metric):
                    yield operand

    def needs(self) -> Needs:
        needs = Needs()
        for metric in self.metrics():
            needs = needs | metric.spec.needs(metric.args)
        return needs

    def evaluate(self, facts: Facts) -> Evaluation:
        observed: dict[str, Value] = {}

        def value(operand: Operand) -> Value:
            if isinstance(operand, Literal):
                return operand.value
            result = operand.value(facts)
            observed[str(operand)] = result
            return result

        passed = True
        for term in self.terms:
            left = value(term.left)
            if term.op is None or term.right is None:
                passed = passed and bool(left)
            else:
                passed = passed and _OPS[term.op](left, value(term.right))
        return Evaluation(passed, tuple(observed.items()))

    def __str__(self) -> str:
        return self.text


_TOKEN = re.compile(
    r"\s*(?:(?P<op>==|!=|<=|>=|<|>)|(?P<punct>[(),])"
    r"|(?P<number>-?\d+(?:\.\d*)?(?:[eE][+-]?\d+)?)|(?P<word>[A-Za-z_@][A-Za-z0-9_.@-]*))"
)


def _tokenize(text: str) -> list[str]:
    tokens = []
    position = 0
    text = text.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            rest = text[position:].strip()
            raise ConditionError(f"{text!r}: cannot read {rest[:20]!r}")
        position = match.end()
        tokens.append(match.group(match.lastgroup or "word"))
    if not tokens:
        raise ConditionError("an empty condition")
    return tokens


def _comparison(tokens: list[str], position: int, text: str) -> tuple[Comparison, int]:
    left, position = _operand(tokens, position, text)
    if position < len(tokens) and tokens[position] in _OPS:
        op = tokens[position]
        right, position = _operand(tokens, position + 1, text)
        _check_types(left, right, op, text)
        return Comparison(left, op, right), position
    if isinstance(left, Literal) or not left.spec.boolean:
        raise ConditionError(
            f"{text!r}: {left} alone is not true or false; compare it (for example {left} >= 1)"
        )
    return Comparison(left), position


def _check_types(left: Operand, right: Operand, op: str, text: str) -> None:
    def boolean(operand: Operand) -> bool:
        if isinstance(operand, Literal):
            return isinstance(operand.value, bool)
        return operand.spec.boolean

    if boolean(left) != boolean(right):
        raise ConditionError(f"{text!r}: {left} {op} {right} compares a truth value with a number")
    if boolean(left) and op not in ("==", "!="):
        raise ConditionError(f"{text!r}: truth values compare with == or != only")


def _operand(tokens: list[str], position: int, text: str) -> tuple[Operand, int]:
    if position >= len(tokens):
        raise ConditionError(f"{text!r}: ends where a value or a metric was expected")
    token = tokens[position]
    if token in ("true", "false"):
        return Literal(token == "true"), position + 1
    if token[0].isdigit() or token[0] == "-":
        number = float(token)
        return Literal(int(number) if re.fullmatch(r"-?\d+", token) else number), position + 1
    if token in _OPS or token in "(),":
        raise ConditionError(f"{text!r}: expected a value or a metric, found {token!r}")
    spec = METRICS.get(token)
    if spec is None:
        raise ConditionError(f"{text!r}: no metric {token!r}{suggest(token, METRICS)}")
    position += 1
    args: list[str] = []
    if position < len(tokens) and tokens[position] == "(":
        position += 1
        while True:
            if position >= len(tokens):
                raise ConditionError(f"{text!r}: a '(' is not closed")
            word = tokens[position]
            if word in "(),":
                raise ConditionError(
                    f"{text!r}: expected a name in {spec.name}(...), found {word!r}"
                )
            args.append(word)
            position += 1
            if position < len(tokens) and tokens[position] == ",":
                position += 1
                continue
            if position < len(tokens) and tokens[position] == ")":
                position += 1
                break
            raise ConditionError(f"{text!r}: expected ',' or ')' in {spec.name}(...)")
    if not len(spec.args) <= len(args) <= len(spec.args) + len(spec.optional):
        raise ConditionError(f"{text!r}: write {spec.signature}")
    return Metric(token, tuple(args)), position


def suggest(word: str, choices: Iterable[str]) -> str:
    """``; did you mean 'x'?`` for the closest of ``choices``, or nothing."""
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""
