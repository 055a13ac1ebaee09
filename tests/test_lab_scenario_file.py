"""Scenario files: what a valid one means, and what a wrong one is told.

* a file and the same scenario built in Python are equal; every built-in, and every scenario
  the fuzzer makes, writes back to a file that loads as an equal scenario (a shrunk fuzzer case
  is replayed from such a file, so this is what "exactly" rests on);
* arbitrary text never raises anything but ScenarioError;
* a catalogue of mistakes, each with the sentence and the line it is reported at: TOML syntax,
  unknown tables and keys (with the closest known key), wrong types, unknown nodes, miners,
  labels and metrics, steps that contradict themselves;
* conditions: what parses, what each metric reads, and what is refused.
"""

from __future__ import annotations

import contextlib
import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.core.params import REGTEST
from node.lab.analysis import TipView
from node.lab.conditions import Condition, ConditionError, Facts
from node.lab.fuzz import generate
from node.lab.scenario import (
    Assert,
    Heal,
    Honest,
    Mine,
    MinerDecl,
    NodeDecl,
    Partition,
    Scenario,
    ScenarioError,
    Selfish,
    Send,
    Wait,
    coins,
)
from node.lab.scenario_toml import dump_scenario, parse_scenario
from node.lab.scenarios import builtin, names

BASE = """\
[scenario]
name = "small"
nodes = ["a", "b", "c"]
wallets = ["alice"]

[[miner]]
name = "pool"
node = "a"
share = 0.5
"""


def scenario_text(extra: str) -> str:
    return BASE + textwrap.dedent(extra)


def test_a_file_and_the_same_scenario_built_in_python_are_equal() -> None:
    text = scenario_text(
        """
        [[miner]]
        name = "shady"
        node = "c"
        share = 0.25
        strategy = "selfish"
        publish_via = ["b"]

        [[step]]
        do = "partition"
        groups = [["a"], ["b", "c"]]

        [[step]]
        do = "send"
        from = "alice"
        to = "bob"
        amount = "2.5"
        label = "pay"

        [[step]]
        do = "mine"
        blocks = 3

        [[step]]
        do = "heal"

        [[step]]
        do = "wait"
        until = "converged"
        timeout = 600

        [[step]]
        do = "assert"
        that = "confirmations(pay) >= 1 and share(pool) > 0.2"
        """
    )
    built = Scenario(
        name="small",
        nodes=(NodeDecl("a"), NodeDecl("b"), NodeDecl("c")),
        wallets=("alice",),
        miners=(
            MinerDecl("pool", "a", 0.5, Honest()),
            MinerDecl("shady", "c", 0.25, Selfish(publish_via=("b",))),
        ),
        steps=(
            Partition((("a",), ("b", "c"))),
            Send("alice", "bob", 250_000_000, label="pay"),
            Mine(blocks=3),
            Heal(),
            Wait(until=Condition.parse("converged"), timeout=600.0),
            Assert(Condition.parse("confirmations(pay) >= 1 and share(pool) > 0.2")),
        ),
    )
    assert parse_scenario(text) == built


@pytest.mark.parametrize("name", names())
def test_every_built_in_writes_back_to_an_equal_scenario(name: str) -> None:
    scenario = builtin(name)
    assert scenario.name == name
    assert scenario.title and scenario.explanation.strip()
    assert parse_scenario(dump_scenario(scenario)) == scenario


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=0, max_value=2**32), st.integers(min_value=2, max_value=8))
def test_every_fuzzer_scenario_writes_back_to_an_equal_scenario(seed: int, nodes: int) -> None:
    scenario = generate(seed, nodes)
    assert parse_scenario(dump_scenario(scenario)) == scenario


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_text_raises_only_scenario_errors(text: str) -> None:
    with contextlib.suppress(ScenarioError):
        parse_scenario(text)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="[]=\"'abcdefghijklmnopqrstuvwxyz_.,0123456789 \n", max_size=200))
def test_arbitrary_toml_like_text_raises_only_scenario_errors(text: str) -> None:
    with contextlib.suppress(ScenarioError):
        parse_scenario(BASE + text)


# (what is wrong, the snippet added to BASE, the snippet's line it is reported at, a fragment)
MISTAKES = [
    ("not TOML", "[[step]\ndo = 'heal'\n", 1, "not valid TOML"),
    (
        "an unknown table",
        "[[stepz]]\ndo = 'heal'\n",
        1,
        "unknown table or key 'stepz'; did you mean 'step'?",
    ),
    ("a misspelt key", "[[step]]\ndo = 'mine'\nblock = 3\n", 3, "did you mean 'blocks'?"),
    ("a step with no do", "[[step]]\nnode = 'a'\n", 1, "'do' says what it does"),
    ("an unknown step", "[[step]]\ndo = 'explode'\n", 2, "got 'explode'"),
    ("a missing key", "[[step]]\ndo = 'kill'\n", 1, "step 1 (kill) needs node"),
    ("a string for a number", "[[step]]\ndo = 'mine'\nblocks = 'three'\n", 3, "expected a whole"),
    ("an unknown node", "[[step]]\ndo = 'kill'\nnode = 'd'\n", 3, "there is no node 'd'"),
    (
        "a partition of one group",
        "[[step]]\ndo = 'partition'\ngroups = [['a', 'b', 'c']]\n",
        3,
        "two groups",
    ),
    (
        "a node in two groups",
        "[[step]]\ndo = 'partition'\ngroups = [['a'], ['a', 'b']]\n",
        3,
        "in two groups",
    ),
    ("an unknown miner", "[[step]]\ndo = 'mine'\nminer = 'poool'\n", 3, "did you mean 'pool'?"),
    (
        "a spender with no coins",
        "[[step]]\ndo = 'send'\nfrom = 'bob'\nto = 'alice'\namount = 1\n",
        3,
        "'bob' has no coins here",
    ),
    (
        "too many decimals",
        "[[step]]\ndo = 'send'\nfrom = 'alice'\nto = 'bob'\namount = 0.000000001\n",
        5,
        "eight decimals",
    ),
    (
        "a double spend of nothing",
        "[[step]]\ndo = 'send'\nfrom = 'alice'\nto = 'bob'\namount = 1\nconflicts = 'pay'\n",
        6,
        "no earlier send is labelled",
    ),
    (
        "an unknown metric",
        "[[step]]\ndo = 'assert'\nthat = 'hieght >= 1'\n",
        3,
        "did you mean 'height'?",
    ),
    ("a metric of a typo", "[[step]]\ndo = 'assert'\nthat = 'height(x) > 1'\n", 3, "no node 'x'"),
    (
        "money followed from no wallet",
        "[[step]]\ndo = 'assert'\nthat = 'traced(alise, pool) > 1'\n",
        3,
        "'alise' is no wallet of this scenario; did you mean 'alice'?",
    ),
    (
        "money followed to an address",
        "[[step]]\ndo = 'assert'\nthat = 'traced(alice, mfobmgpZXfywpSRrhXXJjBzpT34k2EzMtS) > 1'\n",
        3,
        "is no wallet of this scenario",
    ),
    ("a number alone", "[[step]]\ndo = 'assert'\nthat = 'height'\n", 3, "is not true or false"),
    (
        "a truth value against a number",
        "[[step]]\ndo = 'assert'\nthat = 'converged > 1'\n",
        3,
        "truth value",
    ),
    (
        "a label used before it exists",
        "[[step]]\ndo = 'assert'\nthat = 'confirmations(pay) == 1'\n",
        3,
        "no earlier send is labelled 'pay'",
    ),
    (
        "a wait for both",
        "[[step]]\ndo = 'wait'\nseconds = 5\nuntil = 'converged'\n",
        3,
        "seconds or until",
    ),
    (
        "mining on a node by a miner",
        "[[step]]\ndo = 'mine'\nnode = 'a'\nminer = 'pool'\n",
        4,
        "not both",
    ),
    (
        "an unknown strategy",
        "[[miner]]\nname = 'x'\nnode = 'a'\nshare = 1\nstrategy = 'greedy'\n",
        5,
        "unknown strategy",
    ),
    (
        "another strategy's option",
        "[[miner]]\nname = 'x'\nnode = 'a'\nshare = 1\norphan = true\n",
        5,
        "unknown key 'orphan'",
    ),
    (
        "a negative share",
        "[[miner]]\nname = 'x'\nnode = 'a'\nshare = -1\n",
        4,
        "share is a number >= 0",
    ),
    ("a link to itself", "[[link]]\na = 'a'\nb = 'a'\nlatency = 1\n", 1, "two different nodes"),
    (
        "a constant that cannot change",
        "[params]\ngenesis_bits = 1\n",
        2,
        "cannot change 'genesis_bits'",
    ),
]


@pytest.mark.parametrize(
    ("extra", "line", "fragment"), [m[1:] for m in MISTAKES], ids=[m[0] for m in MISTAKES]
)
def test_a_mistake_is_reported_with_its_line_and_a_sentence(
    extra: str, line: int, fragment: str
) -> None:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(BASE + "\n" + extra, source="small.toml")
    message = str(caught.value)
    # The snippet starts after BASE and one blank line.
    assert message.startswith(f"small.toml:{len(BASE.splitlines()) + 1 + line}: "), message
    assert fragment in message


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("name = 'x'", "unknown table or key 'name'"),
        ("[scenario]\nnodes = ['a']\n[[stepz]]\ndo = 1", "did you mean 'step'?"),
        ("[[node]]\nname = 'a'", "starts with a [scenario] table"),
        ("[scenario]\nnodes = ['a']", "needs a name"),
        ("[scenario]\nname = 'x'", "at least one [[node]]"),
        ("[scenario]\nname = 'Bad Name'\nnodes = ['a']", "lower-case letters"),
        ("[scenario]\nname = 'x'\nnodes = ['a', 'a']", "declared twice"),
        ("[scenario]\nname = 'x'\nnodes = ['A']", "is not a name"),
        ("[scenario]\nname = 'x'\nnodes = ['a']\ntopology = 'star'", "unknown topology"),
        ("[scenario]\nname = 'x'\nnodes = ['a']\nnetwork = 'testnet'", "unknown network"),
        ("[scenario]\nname = 'x'\nnodes = ['a']\n[[node]]\nname = 'b'", "choose one"),
    ],
)
def test_mistakes_in_the_scenario_table(text: str, fragment: str) -> None:
    with pytest.raises(ScenarioError, match=None) as caught:
        parse_scenario(text, source="x.toml")
    assert fragment in str(caught.value)
    assert str(caught.value).startswith("x.toml")


def test_an_unknown_invariant_is_refused_before_anything_runs() -> None:
    from node.lab.runner_sim import run_scenario

    text = BASE.replace('wallets = ["alice"]', 'wallets = ["alice"]\ninvariants = ["nonsense"]')
    with pytest.raises(ScenarioError, match="no invariant 'nonsense'"):
        run_scenario(parse_scenario(text))


def test_amounts_are_exact_coins() -> None:
    assert coins("2.5") == 250_000_000
    assert coins(1) == 100_000_000
    assert coins(0.1) == 10_000_000  # the float 0.1 as written, not as stored
    for bad in ("0", "-1", "1e9", "0.123456789", "abc", "nan"):
        with pytest.raises(ValueError):
            coins(bad)


# -- conditions


def facts(**overrides: object) -> Facts:
    tips = {
        "a": TipView(b"\x01" * 32, 10, 100),
        "b": TipView(b"\x01" * 32, 10, 100),
    }
    base: dict[str, object] = {
        "time": 30.0,
        "params": REGTEST,
        "tips": tips,
        "reorgs": {1: 2, 3: 1},
        "errors": 0,
        "hash_shares": {"pool": 0.7},
        "peers": {"a": 2},
    }
    base.update(overrides)
    return Facts(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "passed"),
    [
        ("converged", True),
        ("converged == false", False),
        ("height >= 10 and height(a) == 10", True),
        ("height(a) == height(b)", True),
        ("height(c) == -1", True),  # a node that is down (or unknown here) has no height
        ("reorgs == 3 and max_reorg_depth == 3", True),
        ("hash_share(pool) > 0.69 and hash_share(nobody) == 0", True),
        ("peers(a) == 2 and nodes_up == 2", True),
        ("subsidy == 50 and halvings == 0", True),
        ("supply_cap > 14949.99 and supply_cap < 14950", True),
        ("time >= 30", True),
        ("errors == 0", True),
        ("height > 10", False),
    ],
)
def test_conditions_read_the_facts(text: str, passed: bool) -> None:
    assert Condition.parse(text).evaluate(facts()).passed is passed


def test_an_evaluation_shows_every_value_it_read() -> None:
    evaluation = Condition.parse("height(a) >= 11 and converged").evaluate(facts())
    assert not evaluation.passed
    assert evaluation.describe() == "height(a) = 10, converged = true"


def test_a_condition_asks_only_for_what_it_reads() -> None:
    assert not Condition.parse("converged and height(a) > 3").needs().tree
    needs = Condition.parse("stale_blocks == 0 and confirmations(pay, b) >= 1").needs()
    assert needs.tree and needs.confirmations == {("pay", "b")}
    assert Condition.parse("attack_succeeded(x)").needs().strategy == {("x", "attack_succeeded")}


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty"),
        ("height >=", "ends where a value"),
        ("height(", "not closed"),
        ("height(a", "expected ',' or ')'"),
        ("height(a b)", "expected ',' or ')'"),
        ("height(a, b)", "write height([node])"),
        ("share", "write share(miner)"),
        ("converged or height > 1", "expected 'and'"),
        ("height > 1 and", "nothing after 'and'"),
        ("height > 1 $", "cannot read"),
        ("3", "3 alone is not true or false"),
        ("converged >= true", "compare with == or != only"),
    ],
)
def test_bad_conditions_say_what_is_wrong(text: str, fragment: str) -> None:
    with pytest.raises(ConditionError) as caught:
        Condition.parse(text)
    assert fragment in str(caught.value)


def test_money_may_be_followed_between_any_wallets_the_scenario_names() -> None:
    scenario = parse_scenario(
        BASE
        + "[[step]]\ndo = 'send'\nfrom = 'alice'\nto = 'bob'\namount = 1\n\n"
        + "[[step]]\ndo = 'assert'\nthat = 'traced(alice, bob) > 0.5 and traced(pool, bob) == 0'\n"
    )
    that = scenario.steps[-1]
    assert isinstance(that, Assert)
    assert that.that.needs().tree  # it reads the best chain's blocks
