"""A node's mining policy: the transactions its block templates leave out.

* the template builder leaves out every transaction that pays a listed address or spends one of
  its coins, and every transaction depending on one (even one that touches no listed address),
  and the block built from what is left is valid; the room they would have taken goes to
  others; an empty policy refuses nothing;
* ``mining_exclude_addresses`` is read from flags, the environment (comma-separated) and the
  file, and a bad address is refused naming where it came from;
* on a real node process: the configured policy is in force from the start;
  ``getminingpolicy``/``setminingpolicy`` read and replace it; bad input is refused (-5 an
  invalid address, -3 a wrong type, -8 too many) and leaves it as it was; getblocktemplate and
  generatetoaddress leave the censored transactions out while the mempool keeps them, and
  confirm them once the policy is lifted.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from blocktools import ChainBuilder, Spendable, key, outputs_of, pkh, spend
from rpc_harness import NodeProcess, start_node

from node import config
from node.chainstate import ChainState, template_on_tip
from node.core.address import encode_address
from node.core.block import Block
from node.core.mempool import Mempool
from node.core.params import REGTEST
from node.core.template import MiningPolicy, build_template
from node.core.tx import COIN, OutPoint, Transaction, TxOut
from node.lab.mining import grind

FEE = 10_000


def address_of(name: str) -> str:
    return encode_address(pkh(key(name)), REGTEST.address_version)


# ------------------------------------------------------------------------------ the builder


def funded_chain() -> tuple[ChainBuilder, ChainState]:
    builder = ChainBuilder()
    builder.extend(110)
    chain = ChainState.in_memory(REGTEST)
    for name in builder.branch(builder.tip):
        assert chain.process_block(builder[name], 2**32 - 1).accepted
    return builder, chain


def test_a_policy_leaves_out_payments_spends_and_their_descendants() -> None:
    builder, chain = funded_chain()
    carol, dave = key("carol"), key("dave")
    coin = builder.coinbase_of("b1")
    # The miner pays carol and keeps the change; then spends that change (touching no carol).
    to_carol = builder.spend(
        [coin], [TxOut(10 * COIN, pkh(carol)), TxOut(coin.value - 10 * COIN - FEE, pkh(coin.key))]
    )
    change_spent = builder.spend(
        [Spendable(OutPoint(to_carol.txid, 1), to_carol.outputs[1].value, coin.key)],
        to=dave,
        fee=FEE,
    )
    carol_spends = builder.spend(outputs_of(to_carol, carol)[:1], to=dave, fee=FEE)
    unrelated = builder.spend([builder.coinbase_of("b2")], to=dave, fee=FEE)
    mempool = Mempool(REGTEST)
    for tx in (to_carol, change_spent, carol_spends, unrelated):
        mempool.accept(tx, chain, chain.height + 1)
    payout = pkh(key("pool"))

    everything = template_on_tip(chain, mempool, payout, 2**31)
    assert len(everything.transactions) == 4
    assert template_on_tip(chain, mempool, payout, 2**31, policy=MiningPolicy()) == everything

    policy = MiningPolicy(frozenset({pkh(carol)}))
    assert policy.refuses(to_carol) and policy.refuses(carol_spends)
    assert not policy.refuses(change_spent) and not policy.refuses(unrelated)
    censored = template_on_tip(chain, mempool, payout, 2**31, policy=policy)
    assert [t.tx for t in censored.transactions] == [unrelated]
    assert censored.coinbase_value == REGTEST.subsidy(chain.height + 1) + FEE

    block = grind(censored, extranonce=1, time=censored.cur_time)
    result = chain.process_block(block, 2**32 - 1)
    assert result.accepted and result.reject is None
    assert chain.get_coin(OutPoint(unrelated.txid, 0)) is not None


def test_the_room_a_refused_transaction_leaves_goes_to_another() -> None:
    builder, chain = funded_chain()
    carol, dave = key("carol"), key("dave")
    rich = builder.spend([builder.coinbase_of("b1")], to=carol, fee=5 * FEE)
    poor = builder.spend([builder.coinbase_of("b2")], to=dave, fee=FEE)
    mempool = Mempool(REGTEST)
    for tx in (rich, poor):
        mempool.accept(tx, chain, chain.height + 1)

    empty = template_on_tip(chain, Mempool(REGTEST), pkh(key("pool")), 2**31)

    def template(policy: MiningPolicy) -> list[Transaction]:
        # Room for one of the two (they are the same size), not both.
        built = build_template(
            REGTEST,
            parent_hash=chain.tip.hash,
            height=chain.height + 1,
            bits=chain.next_bits(),
            median_time_past=chain.median_time_past(),
            now=2**31,
            mempool=mempool,
            payout_pubkey_hash=pkh(key("pool")),
            max_size=empty.size + rich.size + 16,
            policy=policy,
        )
        return [t.tx for t in built.transactions]

    assert template(MiningPolicy()) == [rich]
    assert template(MiningPolicy(frozenset({pkh(carol)}))) == [poor]


# ------------------------------------------------------------------------- configuration


def test_the_excluded_addresses_come_from_flags_environment_and_file(tmp_path: Path) -> None:
    carol, dave = address_of("carol"), address_of("dave")
    from_flags = config.load({"mining_exclude_addresses": [carol, dave]}, {})
    assert from_flags.mining_exclude_addresses == (carol, dave)
    from_env = config.load({}, {"FORKLAB_MINING_EXCLUDE_ADDRESSES": f"{carol}, {dave}"})
    assert from_env.mining_exclude_addresses == (carol, dave)
    file = tmp_path / "node.toml"
    file.write_text(f'mining_exclude_addresses = ["{carol}"]\n')
    assert config.load({"config": file}, {}).mining_exclude_addresses == (carol,)
    assert config.load({}, {}).mining_exclude_addresses == ()


@pytest.mark.parametrize(
    ("args", "environ", "source"),
    [
        ({"mining_exclude_addresses": ["nonsense"]}, {}, "--mining-exclude-addresses"),
        ({}, {"FORKLAB_MINING_EXCLUDE_ADDRESSES": "x1,y2"}, "FORKLAB_MINING_EXCLUDE_ADDRESSES"),
        # An address of another network is not one of this network's.
        (
            {"mining_exclude_addresses": [encode_address(pkh(key("c")), 0x1E)]},
            {},
            "--mining-exclude-addresses",
        ),
    ],
)
def test_a_bad_excluded_address_is_refused_naming_its_source(
    args: dict[str, object], environ: dict[str, str], source: str
) -> None:
    with pytest.raises(config.ConfigError, match=f"^{source}: "):
        config.load(args, environ)


# ---------------------------------------------------------------------- on a real node


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    process = start_node(
        tmp_path_factory.mktemp("policy") / "node",
        "--mining-exclude-addresses",
        address_of("erin"),
    )
    try:
        yield process
    finally:
        process.terminate()


def coinbase(node: NodeProcess, height: int, owner: str) -> Spendable:
    raw = node.call("getblock", node.call("getblockhash", height), 0)
    tx = Block.deserialize(bytes.fromhex(raw)).transactions[0]
    return Spendable(OutPoint(tx.txid, 0), tx.outputs[0].value, key(owner))


def test_the_configured_policy_is_in_force_from_the_start(node: NodeProcess) -> None:
    assert node.call("getminingpolicy") == {"exclude_addresses": [address_of("erin")]}


def test_setminingpolicy_replaces_the_list_and_refuses_bad_input(node: NodeProcess) -> None:
    carol, dave = address_of("carol"), address_of("dave")
    replaced = node.client().call_named("setminingpolicy", {"exclude_addresses": [dave, carol]})
    assert replaced == {"exclude_addresses": sorted([carol, dave])}
    assert node.call("getminingpolicy") == replaced
    assert node.call("setminingpolicy") == replaced  # nothing given: nothing changes

    for bad, code in (
        ([carol, "not-an-address"], -5),
        ([address_of("x")[:-1] + "1"], -5),  # a broken checksum
        ("carol", -3),
        ([carol, 7], -3),
        (["x"] * 10_001, -8),
    ):
        reply = node.post_json({"method": "setminingpolicy", "params": [bad], "id": 1}).json()
        assert reply["error"]["code"] == code, (bad, reply)
        assert node.call("getminingpolicy") == replaced
    reply = node.post_json({"method": "setminingpolicy", "params": [["bad"]], "id": 1}).json()
    assert reply["error"]["message"].startswith("Invalid address: exclude_addresses[0] 'bad'")

    assert node.call("setminingpolicy", []) == {"exclude_addresses": []}


def test_templates_leave_out_what_the_policy_refuses_until_it_is_lifted(
    node: NodeProcess,
) -> None:
    payer, carol = "payer", address_of("carol")
    start = node.call("getblockcount")
    node.call("generatetoaddress", 102, address_of(payer))
    first, second = coinbase(node, start + 1, payer), coinbase(node, start + 2, payer)
    to_carol = spend(
        [first],
        [
            TxOut(10 * COIN, pkh(key("carol"))),
            TxOut(first.value - 10 * COIN - FEE, pkh(key(payer))),
        ],
    )
    change_spent = spend(
        [Spendable(OutPoint(to_carol.txid, 1), to_carol.outputs[1].value, key(payer))],
        to=key("dave"),
        fee=FEE,
    )
    unrelated = spend([second], to=key("dave"), fee=FEE)
    for tx in (to_carol, change_spent, unrelated):
        node.call("sendrawtransaction", tx.serialize().hex())
    node.call("setminingpolicy", [carol])

    template = node.call("getblocktemplate")
    assert [t["txid"] for t in template["transactions"]] == [unrelated.txid_hex]
    (mined,) = node.call("generatetoaddress", 1, address_of("pool"))
    assert node.call("getblock", mined)["tx"][1:] == [unrelated.txid_hex]
    assert sorted(node.call("getrawmempool")) == sorted([to_carol.txid_hex, change_spent.txid_hex])

    node.call("setminingpolicy", [])
    (mined,) = node.call("generatetoaddress", 1, address_of("pool"))
    assert node.call("getblock", mined)["tx"][1:] == [to_carol.txid_hex, change_spent.txid_hex]
    assert node.call("getrawmempool") == []
