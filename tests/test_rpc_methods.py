"""Every RPC method against a real ``forklab node`` process: good calls and their result
shapes, and a catalogue of bad parameters with the error code bitcoind gives for each.

One node serves the whole module (starting a process per case would cost more than the cases):
it has a wallet with mature coins (101 blocks mined to it) and one payment in its mempool.
Cases only read, or restore what they change, so they hold in any order.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from rpc_harness import NodeProcess, start_node

from node.rpc.client import RpcCallError
from node.rpc.methods import build_registry

ZERO_HASH = "00" * 32


@dataclass(frozen=True)
class Facts:
    """What the cases refer to, fixed when the module's node is set up."""

    address: str
    tip: str
    genesis: str
    block1: str
    coinbase1: str
    mempool_txid: str
    mempool_hex: str
    coinbase1_hex: str
    block1_hex: str


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    process = start_node(tmp_path_factory.mktemp("methods") / "node")
    try:
        yield process
    finally:
        process.terminate()


@pytest.fixture(scope="module")
def facts(node: NodeProcess) -> Facts:
    address = node.call("getnewaddress")
    hashes = node.call("generatetoaddress", 101, address)
    block1 = node.call("getblock", hashes[0], 2)
    payee = node.call("getnewaddress")
    txid = node.call("sendtoaddress", payee, "1.25")
    return Facts(
        address=address,
        tip=hashes[-1],
        genesis=node.call("getblockhash", 0),
        block1=hashes[0],
        coinbase1=block1["tx"][0]["txid"],
        mempool_txid=txid,
        mempool_hex=node.call("getrawtransaction", txid),
        coinbase1_hex=node.call("getrawtransaction", block1["tx"][0]["txid"], False, hashes[0]),
        block1_hex=node.call("getblock", hashes[0], 0),
    )


Params = Callable[[Facts], list[Any] | dict[str, Any]]
Check = Callable[[Any, Facts], bool]


def has(*keys: str) -> Check:
    return lambda result, _facts: isinstance(result, dict) and set(keys) <= set(result)


def is_hash(result: Any, _facts: Facts) -> bool:
    return isinstance(result, str) and len(result) == 64 and int(result, 16) >= 0


# (method, params from the facts, check on the result)
GOOD: list[tuple[str, Params, Check]] = [
    (
        "getblockchaininfo",
        lambda f: [],
        lambda r, f: r["chain"] == "regtest" and r["blocks"] >= 101,
    ),
    ("getminingpolicy", lambda f: [], lambda r, f: r == {"exclude_addresses": []}),
    ("getblockcount", lambda f: [], lambda r, f: isinstance(r, int) and r >= 101),
    ("getbestblockhash", lambda f: [], is_hash),
    ("getblockhash", lambda f: [0], lambda r, f: r == f.genesis),
    ("getblockhash", lambda f: {"height": 1}, lambda r, f: r == f.block1),
    ("getblock", lambda f: [f.block1], lambda r, f: r["height"] == 1 and r["tx"] == [f.coinbase1]),
    ("getblock", lambda f: [f.block1, 0], lambda r, f: isinstance(r, str) and len(r) > 160),
    ("getblock", lambda f: [f.block1, 2], lambda r, f: r["tx"][0]["vin"][0]["height"] == 1),
    ("getblock", lambda f: [f.block1, True], lambda r, f: r["tx"] == [f.coinbase1]),
    ("getblock", lambda f: [f.genesis], lambda r, f: "previousblockhash" not in r),
    (
        "getblockheader",
        lambda f: [f.block1],
        lambda r, f: r["previousblockhash"] == f.genesis and r["confirmations"] >= 101,
    ),
    ("getblockheader", lambda f: [f.block1, False], lambda r, f: len(r) == 160),
    ("getchaintips", lambda f: [], lambda r, f: any(t["status"] == "active" for t in r)),
    ("getdifficulty", lambda f: [], lambda r, f: 0 < r < 1e-9),
    (
        "gettxout",
        lambda f: [f.coinbase1, 0, False],
        lambda r, f: r["value"] == Decimal("50") and r["coinbase"] and r["address"] == f.address,
    ),
    ("gettxout", lambda f: [f.mempool_txid, 0], lambda r, f: r["confirmations"] == 0),
    ("gettxout", lambda f: [f.mempool_txid, 0, False], lambda r, f: r is None),
    ("gettxout", lambda f: [ZERO_HASH, 0], lambda r, f: r is None),
    ("getmempoolinfo", lambda f: [], lambda r, f: r["size"] >= 1 and r["loaded"] is True),
    ("getrawmempool", lambda f: [], lambda r, f: f.mempool_txid in r),
    ("getrawmempool", lambda f: [True], lambda r, f: r[f.mempool_txid]["fees"]["base"] > 0),
    ("getrawtransaction", lambda f: [f.mempool_txid], lambda r, f: r == f.mempool_hex),
    (
        "getrawtransaction",
        lambda f: [f.coinbase1, 1, f.block1],
        lambda r, f: r["blockhash"] == f.block1 and r["in_active_chain"],
    ),
    ("decoderawtransaction", lambda f: [f.mempool_hex], lambda r, f: r["txid"] == f.mempool_txid),
    ("sendrawtransaction", lambda f: [f.mempool_hex], lambda r, f: r == f.mempool_txid),
    ("getnetworkinfo", lambda f: [], has("version", "subversion", "connections", "relayfee")),
    ("getpeerinfo", lambda f: [], lambda r, f: r == []),
    ("getconnectioncount", lambda f: [], lambda r, f: r == 0),
    ("getmininginfo", lambda f: [], lambda r, f: r["blocks"] >= 101 and r["pooledtx"] >= 1),
    ("getnetworkhashps", lambda f: [], lambda r, f: r > 0),
    ("getnetworkhashps", lambda f: [10, 50], lambda r, f: r > 0),
    (
        "getblocktemplate",
        lambda f: [],
        lambda r, f: r["coinbasevalue"] > 5_000_000_000 - 1 and len(r["transactions"]) >= 1,
    ),
    ("getblocktemplate", lambda f: [{"mode": "template"}], has("longpollid", "bits", "height")),
    ("getwork", lambda f: [], lambda r, f: len(r["data"]) == 256 and len(r["target"]) == 64),
    ("getwork", lambda f: ["00" * 128], lambda r, f: r is False),
    ("submitblock", lambda f: [f.block1_hex], lambda r, f: r == "duplicate"),
    ("getnewaddress", lambda f: [], lambda r, f: isinstance(r, str) and r[0] in "mn"),
    ("getbalance", lambda f: [], lambda r, f: r > 0),
    ("getbalance", lambda f: ["*", 1], lambda r, f: r > 0),
    ("getbalances", lambda f: [], lambda r, f: r["mine"]["immature"] > 0),
    ("listunspent", lambda f: [], lambda r, f: all(u["confirmations"] >= 1 for u in r)),
    ("listunspent", lambda f: [0, 9_999_999, [f.address]], lambda r, f: r != []),
    ("validateaddress", lambda f: [f.address], lambda r, f: r["isvalid"] is True),
    (
        "validateaddress",
        lambda f: ["1BoatSLRHtKNngkdXEeobR76b53LETtpyT"],
        lambda r, f: not r["isvalid"],
    ),
    ("help", lambda f: [], lambda r, f: "getblockcount" in r and "== Mining ==" in r),
    ("help", lambda f: ["getblock"], lambda r, f: r.startswith('getblock "blockhash"')),
    ("uptime", lambda f: [], lambda r, f: isinstance(r, int) and r >= 0),
    ("getlinkpolicy", lambda f: [], lambda r, f: r == {"blocked": [], "latency_ms": {}}),
    (
        "traceaddress",
        lambda f: [f.address, 5],
        lambda r, f: r["truncated"] and len(r["txs"]) == 5 and r["txs"][0]["coinbase"],
    ),
]

# Methods whose good path changes the node; each has its own test below.
CHANGING = {
    "setminingpolicy",  # tests/test_rpc_mining_policy.py
    "generatetoaddress",
    "sendtoaddress",
    "invalidateblock",
    "reconsiderblock",
    "addnode",
    "disconnectnode",
    "setnetworkactive",
    "stop",
    "setlinkpolicy",  # tests/test_devnet_links.py
}

A_HASH = "11" * 32
BAD: list[tuple[str, Params, int]] = [
    ("nosuchmethod", lambda f: [], -32601),
    ("getblockcount", lambda f: [1], -1),
    ("getblockhash", lambda f: [], -1),
    ("getblockhash", lambda f: ["1"], -3),
    ("getblockhash", lambda f: [1.5], -3),
    ("getblockhash", lambda f: [-1], -8),
    ("getblockhash", lambda f: [10**9], -8),
    ("getblockhash", lambda f: {"heigth": 1}, -8),
    ("getblock", lambda f: ["00"], -8),
    ("getblock", lambda f: ["zz" * 32], -8),
    ("getblock", lambda f: [A_HASH], -5),
    ("getblock", lambda f: [f.block1, 3], -8),
    ("getblock", lambda f: [f.block1, "1"], -3),
    ("getblock", lambda f: [7], -3),
    ("getblockheader", lambda f: [A_HASH], -5),
    ("getblockheader", lambda f: [f.block1, 1], -3),
    ("gettxout", lambda f: [ZERO_HASH, -1], -8),
    ("gettxout", lambda f: [ZERO_HASH, 2**32], -8),
    ("gettxout", lambda f: [ZERO_HASH], -1),
    ("getrawmempool", lambda f: ["yes"], -3),
    ("getrawtransaction", lambda f: [A_HASH], -5),
    ("getrawtransaction", lambda f: [f.coinbase1], -5),
    ("getrawtransaction", lambda f: [A_HASH, 1, A_HASH], -5),
    ("getrawtransaction", lambda f: [A_HASH, 1, f.block1], -5),
    ("getrawtransaction", lambda f: [f.coinbase1, 2], -8),
    ("decoderawtransaction", lambda f: ["zz"], -8),
    ("decoderawtransaction", lambda f: ["abc"], -8),
    ("decoderawtransaction", lambda f: ["00"], -22),
    ("decoderawtransaction", lambda f: [f.mempool_hex + "00"], -22),
    ("sendrawtransaction", lambda f: ["00"], -22),
    ("sendrawtransaction", lambda f: [f.coinbase1_hex], -26),
    ("sendrawtransaction", lambda f: [f.mempool_hex, -1], -3),
    ("submitblock", lambda f: ["00"], -22),
    ("submitblock", lambda f: [f.coinbase1_hex], -22),
    ("getblocktemplate", lambda f: ["template"], -3),
    ("getblocktemplate", lambda f: [{"mode": "bogus"}], -8),
    ("getblocktemplate", lambda f: [{"mode": "proposal", "data": "00"}], -8),
    ("getblocktemplate", lambda f: [{"longpollid": 5}], -3),
    ("getwork", lambda f: ["00"], -8),
    ("getwork", lambda f: [128], -3),
    ("getnetworkhashps", lambda f: ["120"], -3),
    ("generatetoaddress", lambda f: [1, "bogus"], -5),
    ("generatetoaddress", lambda f: [1, "1BoatSLRHtKNngkdXEeobR76b53LETtpyT"], -5),
    ("generatetoaddress", lambda f: [-1, f.address], -8),
    ("generatetoaddress", lambda f: ["1", f.address], -3),
    ("generatetoaddress", lambda f: [1, f.address, 0], -8),
    ("invalidateblock", lambda f: [A_HASH], -5),
    ("invalidateblock", lambda f: [f.genesis], -8),
    ("reconsiderblock", lambda f: [A_HASH], -5),
    ("addnode", lambda f: ["127.0.0.1:1", "bogus"], -8),
    ("addnode", lambda f: ["not an address", "add"], -8),
    ("addnode", lambda f: ["127.0.0.1:1", "remove"], -24),
    ("addnode", lambda f: ["127.0.0.1:1"], -1),
    ("disconnectnode", lambda f: [], -32602),
    ("disconnectnode", lambda f: ["127.0.0.1:1", 3], -32602),
    ("disconnectnode", lambda f: ["127.0.0.1:1"], -29),
    ("disconnectnode", lambda f: {"nodeid": 12345}, -29),
    ("setnetworkactive", lambda f: ["yes"], -3),
    ("setnetworkactive", lambda f: [], -1),
    ("getnewaddress", lambda f: [1], -3),
    ("getbalance", lambda f: ["x"], -8),
    ("getbalance", lambda f: ["*", -1], -8),
    ("listunspent", lambda f: [0, 10, ["bogus"]], -5),
    ("listunspent", lambda f: [0, 10, "bogus"], -3),
    ("sendtoaddress", lambda f: ["bogus", 1], -5),
    ("sendtoaddress", lambda f: [f.address, -1], -3),
    ("sendtoaddress", lambda f: [f.address, 0], -3),
    ("sendtoaddress", lambda f: [f.address, "0.000000001"], -3),
    ("sendtoaddress", lambda f: [f.address, 21_000_001], -3),
    ("sendtoaddress", lambda f: [f.address, 20_000_000], -6),
    ("sendtoaddress", lambda f: [f.address, True], -3),
    ("validateaddress", lambda f: [], -1),
    ("help", lambda f: [5], -3),
    ("traceaddress", lambda f: ["bogus"], -5),
    ("traceaddress", lambda f: [f.address, 0], -8),
    ("traceaddress", lambda f: [f.address, 10, -1], -8),
    ("traceaddress", lambda f: [f.address, "10"], -3),
    ("uptime", lambda f: {"verbose": True}, -8),
]


def _id(case: tuple[Any, ...]) -> str:
    return str(case[0])


def _call(node: NodeProcess, method: str, params: list[Any] | dict[str, Any]) -> Any:
    if isinstance(params, dict):
        return node.client().call_named(method, params)
    return node.call(method, *params)


@pytest.mark.parametrize(("method", "params", "check"), GOOD, ids=[_id(c) for c in GOOD])
def test_good_call(
    node: NodeProcess, facts: Facts, method: str, params: Params, check: Check
) -> None:
    result = _call(node, method, params(facts))
    assert check(result, facts), result


@pytest.mark.parametrize(("method", "params", "code"), BAD, ids=[_id(c) for c in BAD])
def test_bad_call(node: NodeProcess, facts: Facts, method: str, params: Params, code: int) -> None:
    with pytest.raises(RpcCallError) as caught:
        _call(node, method, params(facts))
    assert caught.value.code == code, caught.value.message
    # Whatever was wrong, the node still serves.
    assert node.call("getblockcount") >= 101


def test_catalogue_covers_every_method() -> None:
    registry = build_registry()
    covered = {m for m, _, _ in GOOD} | CHANGING
    assert covered == {m.name for m in registry}
    assert {m for m, _, _ in BAD} - {"nosuchmethod"} <= {m.name for m in registry}


def test_every_method_declares_what_its_handler_takes() -> None:
    for method in build_registry():
        names = list(inspect.signature(method.handler).parameters)[1:]
        assert names == [p.name for p in method.params], method.name
        assert method.summary, f"{method.name} has no help text"


def test_amounts_have_eight_decimals_on_the_wire(node: NodeProcess, facts: Facts) -> None:
    reply = node.post_json({"method": "gettxout", "params": [facts.coinbase1, 0, False], "id": 1})
    assert b'"value":50.00000000' in reply.body


def test_generate_send_and_confirm(node: NodeProcess, facts: Facts) -> None:
    height = node.call("getblockcount")
    payee = node.call("getnewaddress")
    txid = node.call("sendtoaddress", payee, Decimal("0.5"))
    assert txid in node.call("getrawmempool")
    [block_hash] = node.call("generatetoaddress", 1, facts.address)
    block = node.call("getblock", block_hash)
    assert block["height"] == height + 1
    assert txid in block["tx"]
    assert txid not in node.call("getrawmempool")
    assert node.call("gettxout", txid, 0)["value"] == Decimal("0.5")
    assert node.call("listunspent", 1, 9_999_999, [payee])[0]["amount"] == Decimal("0.5")


def test_invalidate_and_reconsider(node: NodeProcess, facts: Facts) -> None:
    tip = node.call("getbestblockhash")
    height = node.call("getblockcount")
    assert node.call("invalidateblock", tip) is None
    assert node.call("getblockcount") == height - 1
    assert {"hash": tip, "status": "invalid"}.items() <= _tip(node, tip).items()
    assert node.call("reconsiderblock", tip) is None
    assert node.call("getbestblockhash") == tip


def _tip(node: NodeProcess, block_hash: str) -> dict[str, Any]:
    return next(t for t in node.call("getchaintips") if t["hash"] == block_hash)


def test_network_switch_and_added_nodes(node: NodeProcess) -> None:
    assert node.call("setnetworkactive", False) is False
    assert node.call("getnetworkinfo")["networkactive"] is False
    assert node.call("setnetworkactive", True) is True
    assert node.call("addnode", "127.0.0.1:9", "add") is None
    with pytest.raises(RpcCallError) as caught:
        node.call("addnode", "127.0.0.1:9", "add")
    assert caught.value.code == -23
    assert node.call("addnode", "127.0.0.1:9", "remove") is None
    assert node.call("addnode", "127.0.0.1:9", "onetry") is None


def test_named_and_positional_agree(node: NodeProcess, facts: Facts) -> None:
    client = node.client()
    named = client.call_named("getblock", {"blockhash": facts.block1, "verbosity": 1})
    assert named == node.call("getblock", facts.block1, 1)
    assert client.call_named("getblock", {"blockhash": facts.block1, "verbosity": None}) == named
