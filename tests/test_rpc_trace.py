"""``traceaddress`` and ``/rest/trace/ADDR`` against a real node: a payment trail followed.

One node, one story. Blocks 1-101 pay alice (devnet wallets: deterministic keys, signed here
and submitted with ``sendrawtransaction``), then::

    alice --60--> bob          (block 102; alice keeps her change)
    bob   --55--> carol        (block 103; bob's largest coin is alice's 60)
    carol --52--> dave         (mempool)

Traced from alice, the trail runs four hops deep, every coin of it alice's (minus fees), and
the totals balance; traced from bob, only what bob received from alice onwards.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from rpc_harness import NodeProcess, start_node

from node.core.params import REGTEST
from node.core.tx import COIN
from node.devnet import wallets
from node.rpc.client import RpcCallError


@dataclass(frozen=True)
class Trail:
    alice: str
    bob: str
    carol: str
    dave: str
    to_bob: str
    to_carol: str
    to_dave: str


def pay(node: NodeProcess, source: str, target: str, coins: int) -> str:
    address = wallets.address(REGTEST, source)
    answer = node.http("GET", f"/rest/address/{address}/utxos", auth=False).json()
    payment = wallets.payment(
        REGTEST,
        source,
        answer["utxos"],
        int(answer["height"]) + 1,
        pay_to=wallets.address(REGTEST, target),
        amount=coins * COIN,
        fee_rate=2,
    )
    txid: str = node.call("sendrawtransaction", payment.tx.serialize().hex())
    return txid


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    process = start_node(tmp_path_factory.mktemp("trace") / "node")
    try:
        yield process
    finally:
        process.terminate()


@pytest.fixture(scope="module")
def trail(node: NodeProcess) -> Trail:
    alice, bob, carol, dave = (
        wallets.address(REGTEST, n) for n in ("alice", "bob", "carol", "dave")
    )
    node.call("generatetoaddress", 101, alice)
    to_bob = pay(node, "alice", "bob", 60)
    node.call("generatetoaddress", 1, node.call("getnewaddress"))
    to_carol = pay(node, "bob", "carol", 55)
    node.call("generatetoaddress", 1, node.call("getnewaddress"))
    to_dave = pay(node, "carol", "dave", 52)
    return Trail(alice, bob, carol, dave, to_bob, to_carol, to_dave)


def by_txid(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {tx["txid"]: tx for tx in result["txs"]}


def test_the_trail_is_followed_hop_by_hop(node: NodeProcess, trail: Trail) -> None:
    result = node.call("traceaddress", trail.alice)
    assert result["address"] == trail.alice
    assert not result["truncated"]
    assert result["height"] == 103 and result["blocks_scanned"] == 103
    txs = by_txid(result)
    assert sum(1 for tx in result["txs"] if tx["coinbase"] and tx["hop"] == 0) == 101
    hops = [txs[t]["hop"] for t in (trail.to_bob, trail.to_carol, trail.to_dave)]
    assert hops == [1, 2, 3]
    assert result["hops"] == 3
    for txid, payee, amount in (
        (trail.to_bob, trail.bob, 60),
        (trail.to_carol, trail.carol, 55),
        (trail.to_dave, trail.dave, 52),
    ):
        paid = txs[txid]["vout"][0]
        assert (paid["address"], paid["value"]) == (payee, Decimal(amount))
        assert paid["traced"] == paid["value"] and paid["fraction"] == 1.0
    # Confirmations: the mempool payment has none and no height; the others count from the tip.
    assert (txs[trail.to_dave]["height"], txs[trail.to_dave]["confirmations"]) == (None, 0)
    assert txs[trail.to_bob]["vout"][0]["confirmations"] == 2
    # Spent outputs name their spender; the end of the trail is unspent.
    assert txs[trail.to_bob]["vout"][0]["spentby"] == trail.to_carol
    assert txs[trail.to_dave]["vout"][0]["spent"] is False
    # Alice's change comes back to her: counted as recirculated, not as new coins.
    assert txs[trail.to_bob]["vout"][1]["is_target"]
    assert result["recirculated"] == txs[trail.to_bob]["vout"][1]["value"]
    assert result["traced"] == result["received"] - result["recirculated"]
    assert result["traced"] == result["unspent"] + result["fees"]
    assert result["received"] == 101 * 50 + txs[trail.to_bob]["vout"][1]["value"]


def test_a_later_address_sees_only_its_part_of_the_trail(node: NodeProcess, trail: Trail) -> None:
    result = node.call("traceaddress", trail.bob)
    assert [tx["txid"] for tx in result["txs"]] == [trail.to_bob, trail.to_carol, trail.to_dave]
    assert [tx["hop"] for tx in result["txs"]] == [0, 1, 2]
    first = result["txs"][0]
    # Alice's change in the transaction that paid bob is not bob's.
    assert first["vout"][1]["traced"] == 0 and first["traced_in"] == 0
    assert result["received"] == 60 + result["txs"][1]["vout"][1]["value"]


def test_the_mempool_and_the_bounds(node: NodeProcess, trail: Trail) -> None:
    confirmed = node.call("traceaddress", trail.bob, 200, 100, False)
    assert trail.to_dave not in by_txid(confirmed)
    assert confirmed["txs"][-1]["vout"][0]["spent"] is False
    shallow = node.call("traceaddress", trail.bob, 200, 1)
    assert shallow["truncated"] and [tx["hop"] for tx in shallow["txs"]] == [0, 1]
    few = node.client().call_named("traceaddress", {"address": trail.alice, "max_txs": 3})
    assert few["truncated"] and len(few["txs"]) == 3 and few["max_txs"] == 3


def test_rest_mirrors_the_rpc(node: NodeProcess, trail: Trail) -> None:
    reply = node.http("GET", f"/rest/trace/{trail.bob}", auth=False)
    assert reply.status == 200
    assert reply.headers["Access-Control-Allow-Origin"] == "*"
    rpc = node.client().call("traceaddress", trail.bob)
    assert json.loads(reply.body, parse_float=Decimal) == rpc
    limited = node.http("GET", f"/rest/trace/{trail.bob}?max_hops=1&mempool=0", auth=False)
    assert [tx["hop"] for tx in limited.json()["txs"]] == [0, 1]


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/rest/trace/bogus", 404, -5),
        ("/rest/trace/1BoatSLRHtKNngkdXEeobR76b53LETtpyT", 404, -5),  # another network's
        ("/rest/trace/{alice}?max_txs=0", 400, -8),
        ("/rest/trace/{alice}?max_txs=many", 400, -8),
        ("/rest/trace/{alice}?mempool=2", 400, -8),
    ],
)
def test_rest_errors(node: NodeProcess, trail: Trail, path: str, status: int, code: int) -> None:
    reply = node.http("GET", path.format(alice=trail.alice), auth=False)
    assert reply.status == status
    assert reply.json()["error"]["code"] == code


def test_rpc_errors_are_bitcoinds(node: NodeProcess, trail: Trail) -> None:
    for params, code in (
        (["bogus"], -5),
        ([trail.alice, 2001], -8),
        ([trail.alice, 10, 10_001], -8),
        ([trail.alice, 10, 10, "yes"], -3),
    ):
        with pytest.raises(RpcCallError) as caught:
            node.call("traceaddress", *params)
        assert caught.value.code == code, params


def test_a_reorganisation_under_a_trace_makes_it_start_again() -> None:
    """The RPC reads the chain in slices; if the blocks already read leave the active chain
    between two slices, the slice says so (None) and the trace starts again."""
    from blocktools import ChainBuilder, pkh

    from node.chainstate import ChainState
    from node.core.mempool import Mempool
    from node.rpc.methods.tracing import BLOCKS_PER_TRIP, ChainScan

    builder = ChainBuilder(REGTEST)
    with ChainState.in_memory(REGTEST) as chain:
        for height in range(1, BLOCKS_PER_TRIP + 11):
            block = builder.block(f"b{height}")
            assert chain.process_block(block, block.header.time).accepted
        mempool = Mempool(REGTEST)
        miner = pkh(builder.miner)
        scan = ChainScan(miner, 10, 10, False)
        assert scan.slice(chain, mempool) == ("more", BLOCKS_PER_TRIP, chain.tip.hash)
        chain.invalidate_block(builder[f"b{BLOCKS_PER_TRIP - 5}"].hash)
        assert scan.slice(chain, mempool) is None
        fresh = ChainScan(miner, 10, 10, False)
        assert fresh.slice(chain, mempool) == ("done", BLOCKS_PER_TRIP - 6, chain.tip.hash)
        result = fresh.tracer.result()
        assert result.truncated and len(result.txs) == 10
        assert result.blocks_scanned == BLOCKS_PER_TRIP - 6
