"""Attack strategies on real nodes (``node/lab/real_strategies.py``).

* what real nodes cannot run is refused with a reason per cause: a strategy sharing its node
  with another miner, blocks mined by hand on a strategy's node, a merchant watching from the
  attacker's own node; what they can run is not;
* on a devnet: a double-spending pool's node is cut off when the attack begins, and the
  scenario's own partition and heal while it mines in private do not reconnect it (the two
  compose); the merchant sees its confirmations, the pool reconnects its node with more work,
  the network reorganises and the merchant's node holds the attacker's refund;
* a censoring pool's mining policy is set on its node while the steps run and lifted after,
  so a devnet that outlives the run (the dashboard's) is left as it was;
* an orphaning censor's node, cut off and relayed, refuses the honest block that confirms the
  donation (sent through the censor's own node, so its relay passes it on), mines past it
  until the honest block goes stale, and never includes the donation; afterwards its links,
  policy and invalid marks are undone;
* a selfish pool, its blocks found by hand so every step is certain, follows Eyal and Sirer's
  state machine on real nodes: two blocks ahead, it keeps them until an honest block comes and
  then publishes both, orphaning it; one ahead, it answers an honest block with its own (a
  race) and wins the race by publishing the next block it finds.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from node.devnet import Devnet, Progress
from node.lab import real_strategies
from node.lab.runner_real import RealRunner, unsupported
from node.lab.scenario_toml import parse_scenario
from node.lab.strategies import AttackPhase

BLOCK_TIME = 0.5

NETWORK = """\
[scenario]
name = "{name}"
topology = "line"
nodes = ["a", "b", "c"]
wallets = ["merchant", "savings"]
"""

POOL = """
[[miner]]
name = "pool"
node = "{node}"
share = 0.6
strategy = "{strategy}"
{options}
"""

HONEST = """
[[miner]]
name = "honest"
node = "a"
share = 0.4
"""

CENSOR = 'addresses = ["dissident"]'
ATTACK = 'merchant = "merchant"\nmerchant_node = "a"\namount = 20\nstart_height = 104'


def scenario_text(strategy: str, options: str, *, node: str = "c", steps: str = "") -> str:
    pool = POOL.format(node=node, strategy=strategy, options=options)
    return NETWORK.format(name="pool") + pool + HONEST + steps


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (scenario_text("selfish", "", node="a"), "shares node a with honest"),
        (scenario_text("censoring", CENSOR, node="a"), "shares node a with honest"),
        (
            scenario_text("double-spend", ATTACK.replace('"a"', '"b"'), node="a"),
            "shares node a with honest",
        ),
        (
            scenario_text("censoring", CENSOR, steps='[[step]]\ndo = "mine"\nnode = "c"\n'),
            "step 1 (mine): blocks mined on c follow the censoring pool pool",
        ),
        (
            scenario_text("double-spend", ATTACK.replace('node = "a"', 'node = "c"')),
            "the merchant's node is the attacker's own",
        ),
    ],
    ids=["selfish-shares", "censor-shares", "attacker-shares", "mine-on-censor", "merchant"],
)
def test_what_real_nodes_cannot_run_is_refused_with_the_reason(text: str, reason: str) -> None:
    reasons = unsupported(parse_scenario(text))
    assert len(reasons) == 1 and reason in reasons[0], reasons


@pytest.mark.parametrize(
    ("strategy", "options"),
    [
        ("censoring", CENSOR),
        ("censoring", CENSOR + "\norphan = true"),
        ("double-spend", ATTACK),
        ("selfish", ""),
    ],
)
def test_a_pool_on_a_node_of_its_own_runs_on_real_nodes(strategy: str, options: str) -> None:
    text = scenario_text(strategy, options, steps='[[step]]\ndo = "mine"\nnode = "a"\n')
    assert unsupported(parse_scenario(text)) == []


@pytest.fixture
def devnet(tmp_path: Path) -> Iterator[Devnet]:
    devnet = Devnet(tmp_path / "devnet", Progress(interactive=False))
    try:
        yield devnet
    finally:
        devnet.down(wipe=True)


def run_passing(text: str, devnet: Devnet) -> RealRunner:
    """The scenario ``text`` run on ``devnet`` (made for it), every step of it passed."""
    runner = RealRunner(parse_scenario(text), devnet, block_time=BLOCK_TIME)
    runner.start(1)
    result = runner.run(1)
    failures = [f"step {s.index + 1}: {s.description}: {s.detail}" for s in result.failed_steps]
    assert result.passed, "\n".join(failures)
    return runner


DOUBLE_SPEND_THROUGH_A_PARTITION = scenario_text(
    "double-spend",
    ATTACK + "\nconfirmations = 2\ngive_up_behind = 50",
    steps="""
[[step]]
do = "send"
from = "savings"
to = "pool"
amount = 30

[[step]]
do = "wait"
until = "peers(c) == 0"
mining = true

[[step]]
do = "partition"
groups = [["a"], ["b", "c"]]

[[step]]
do = "heal"

[[step]]
do = "wait"
seconds = 1200

[[step]]
do = "assert"
that = "peers(c) == 0 and peers(b) == 1"
message = "the heal restored a-b, not the links of the attacker's node"

[[step]]
do = "wait"
until = "attack_succeeded(pool)"
timeout = 172800
mining = true

[[step]]
do = "wait"
until = "converged"

[[step]]
do = "assert"
that = "attack_succeeded(pool) and max_reorg_depth >= 2 and peers(c) == 1"
message = "the released branch took the merchant's confirmations away"
""",
)


def test_a_double_spend_on_real_nodes_keeps_its_node_apart_through_partition_and_heal(
    devnet: Devnet,
) -> None:
    runner = run_passing(DOUBLE_SPEND_THROUGH_A_PARTITION, devnet)

    attacker = runner.strategies["pool"]
    assert isinstance(attacker, real_strategies.DoubleSpender)
    assert attacker.phase is AttackPhase.RELEASED
    assert attacker.payment is not None and attacker.refund is not None
    merchant = runner.client("a")
    assert merchant is not None
    # The payment's coin went to the refund: the merchant's node knows no payment any more.
    assert merchant.call("gettxout", attacker.payment.txid_hex, 0) is None
    assert merchant.call("gettxout", attacker.refund.txid_hex, 0, False)["confirmations"] >= 1
    assert runner.links.isolated == set() and devnet.state().partition is None


CENSORSHIP = scenario_text(
    "censoring",
    CENSOR,
    steps="""
[[step]]
do = "send"
from = "savings"
to = "dissident"
amount = 5
label = "donation"

[[step]]
do = "mine"
miner = "pool"
blocks = 2

[[step]]
do = "mine"
blocks = 4
""",
)


def test_a_censoring_pool_sets_its_node_policy_for_the_run_only(devnet: Devnet) -> None:
    runner = RealRunner(parse_scenario(CENSORSHIP), devnet, block_time=BLOCK_TIME)
    runner.start(1)
    policies: list[object] = []
    runner.on_step = lambda _outcome: policies.append(_policy(runner))
    result = runner.run(1)
    assert result.passed
    dissident = runner.address("dissident")
    assert policies == [{"exclude_addresses": [dissident]}] * 3
    assert _policy(runner) == {"exclude_addresses": []}
    pools = [b for b in runner.blocks.values() if b.miner == "pool"]
    assert len(pools) >= 2
    assert all(runner.txids["donation"] not in block.txids for block in pools)


def _policy(runner: RealRunner) -> object:
    client = runner.client("c")
    assert client is not None
    return client.call("getminingpolicy")


ORPHANING = scenario_text(
    "censoring",
    CENSOR + "\norphan = true",
    steps="""
[[step]]
do = "send"
from = "savings"
to = "dissident"
amount = 5
via = "c"
label = "donation"

[[step]]
do = "wait"
until = "refused_blocks(pool) >= 1"
mining = true

[[step]]
do = "wait"
until = "stale_blocks >= 1"
mining = true
""",
)


def test_an_orphaning_censor_refuses_the_block_that_confirms_the_donation(devnet: Devnet) -> None:
    runner = run_passing(ORPHANING, devnet)

    censor = runner.strategies["pool"]
    assert isinstance(censor, real_strategies.OrphaningCensor)
    donation = runner.txids["donation"]
    refused = [runner.blocks[h] for h in censor.refused]
    assert refused and all(donation in b.txids and b.miner == "honest" for b in refused)
    assert all(donation not in b.txids for b in runner.blocks.values() if b.miner == "pool")
    assert _policy(runner) == {"exclude_addresses": []}
    assert runner.links.isolated == set() and devnet.state().partition is None
    own = runner.client("c")
    assert own is not None
    assert all(tip["status"] != "invalid" for tip in own.call("getchaintips"))


SELFISH = """\
[scenario]
name = "selfish"
topology = "mesh"
nodes = ["a", "b", "pool"]

[[miner]]
name = "selfish"
node = "pool"
share = 0.4
strategy = "selfish"

[[miner]]
name = "honest"
node = "a"
share = 0.6

[[step]]
do = "mine"
miner = "selfish"
blocks = 2

[[step]]
do = "assert"
that = "height(a) == 101 and height(pool) == -1"
message = "the pool keeps its two blocks; its node is private"

[[step]]
do = "mine"
node = "a"

[[step]]
do = "wait"
until = "height(a) == 103 and converged"

[[step]]
do = "assert"
that = "stale_blocks == 1 and max_reorg_depth == 1"
message = "two ahead, the pool published both when the honest block came: it went stale"

[[step]]
do = "mine"
miner = "selfish"

[[step]]
do = "mine"
node = "b"

[[step]]
do = "mine"
miner = "selfish"

[[step]]
do = "wait"
until = "height(a) == 105 and converged"

[[step]]
do = "assert"
that = "stale_blocks == 2 and main_blocks(selfish) == 4"
message = "the race the honest block started, the pool won with its next block"
"""


def test_a_selfish_pool_follows_the_state_machine_on_real_nodes(devnet: Devnet) -> None:
    runner = run_passing(SELFISH, devnet)
    pool = runner.strategies["selfish"]
    assert isinstance(pool, real_strategies.SelfishPool)
    assert len(pool.published) == 4 and pool.branch == []
    assert runner.links.isolated == set() and devnet.state().partition is None
