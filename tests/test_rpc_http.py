"""The API over HTTP, as a client sees it: authentication, JSON-RPC 1.0/2.0 replies and their
HTTP statuses (bitcoind's), batches, the REST routes, Prometheus metrics.

Real ``forklab node`` processes on loopback; requests are raw HTTP so status codes and headers
are checked exactly as sent.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from rpc_harness import NodeProcess, start_node

from node.core.address import encode_address
from node.core.params import REGTEST
from node.rpc.client import RpcCallError, RpcClient, RpcConnectionError


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    process = start_node(tmp_path_factory.mktemp("http") / "node")
    try:
        address = process.call("getnewaddress")
        process.call("generatetoaddress", 3, address)
        yield process
    finally:
        process.terminate()


def _sha256d(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# -- authentication


def test_rpc_without_credentials_is_401_with_a_challenge(node: NodeProcess) -> None:
    reply = node.post_json({"method": "getblockcount", "id": 1}, auth=None)
    assert reply.status == 401
    assert reply.headers["WWW-Authenticate"] == 'Basic realm="jsonrpc"'


@pytest.mark.parametrize(
    "header",
    [
        basic("__cookie__", "wrong"),
        basic("someone", "else"),
        "Basic not-base64!",
        "Bearer token",
        basic("__cookie__", ""),
    ],
    ids=["wrong-password", "wrong-user", "bad-base64", "not-basic", "empty-password"],
)
def test_rpc_with_wrong_credentials_is_401_after_a_delay(node: NodeProcess, header: str) -> None:
    started = time.monotonic()
    reply = node.post_json({"method": "getblockcount", "id": 1}, auth=header)
    assert reply.status == 401
    assert time.monotonic() - started >= 0.2 or not header.startswith("Basic ")


def test_cookie_is_private_and_names_the_cookie_user(node: NodeProcess) -> None:
    cookie = node.datadir / ".cookie"
    assert cookie.stat().st_mode & 0o777 == 0o600
    user, _, secret = cookie.read_text().partition(":")
    assert user == "__cookie__"
    assert re.fullmatch("[0-9a-f]{64}", secret)


def test_client_reports_refused_credentials(node: NodeProcess) -> None:
    with pytest.raises(RpcConnectionError, match="authorization failed"):
        RpcClient(node.rpc_url, "__cookie__", "wrong").call("getblockcount")


def test_client_reports_a_node_that_is_not_there(tmp_path: Path) -> None:
    with pytest.raises(RpcConnectionError, match="could not connect"):
        RpcClient("http://127.0.0.1:9", "u", "p", timeout=2).call("getblockcount")


def test_read_only_routes_are_open_by_default(node: NodeProcess) -> None:
    for path in ("/rest/chaininfo", "/rest/status", "/metrics"):
        assert node.http("GET", path, auth=None).status == 200, path
    # Public REST may be read by pages of any origin (a dashboard elsewhere).
    reply = node.http("GET", "/rest/status", auth=None)
    assert reply.headers["Access-Control-Allow-Origin"] == "*"


def test_private_rest_explicit_user_and_no_wallet(tmp_path: Path) -> None:
    miner = encode_address(bytes(range(20)), REGTEST.address_version)
    process = start_node(
        tmp_path / "private",
        "--no-rest-public",
        "--rpc-user",
        "alice",
        "--rpc-password",
        "s3cret",
        "--no-wallet",
        "--mining-address",
        miner,
    )
    try:
        with pytest.raises(RpcCallError) as caught:
            process.call("getnewaddress")
        assert caught.value.code == -32601
        assert not (process.datadir / "wallet.json").exists()
        # getwork pays the configured address: solve one unit and look at its coinbase.
        work = process.call("getwork")
        data = bytes.fromhex(work["data"])
        header = b"".join(data[i : i + 4][::-1] for i in range(0, 80, 4))
        target = int.from_bytes(bytes.fromhex(work["target"]), "little")
        nonce = next(
            n
            for n in range(1 << 32)
            if int.from_bytes(_sha256d(header[:76] + n.to_bytes(4, "little")), "little") <= target
        )
        solved = header[:76] + nonce.to_bytes(4, "little")
        submission = b"".join(solved[i : i + 4][::-1] for i in range(0, 80, 4)) + data[80:]
        assert process.call("getwork", submission.hex()) is True
        block = process.call("getblock", process.call("getbestblockhash"), 2)
        assert block["tx"][0]["vout"][0]["address"] == miner
        for path in ("/rest/chaininfo", "/metrics", "/events"):
            assert process.http("GET", path, auth=None).status == 401, path
        private = process.http("GET", "/rest/chaininfo", auth=basic("alice", "s3cret"))
        assert private.status == 200
        assert "Access-Control-Allow-Origin" not in private.headers
        assert process.http("GET", "/rest/chaininfo").status == 200  # the cookie works too
        alice = RpcClient(process.rpc_url, "alice", "s3cret")
        assert alice.call("getblockcount") == 1
    finally:
        assert process.terminate() == 0


# -- JSON-RPC replies and statuses


def test_legacy_success_has_result_error_and_id(node: NodeProcess) -> None:
    reply = node.post_json({"method": "getblockcount", "params": [], "id": "a"})
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("application/json")
    assert reply.json() == {"result": 3, "error": None, "id": "a"}


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"method": "nosuch", "id": 1}, 404, -32601),
        ({"method": 5, "id": 1}, 400, -32600),
        ({"method": "getblockcount", "params": "x", "id": 1}, 400, -32600),
        ({"method": "getblockcount", "jsonrpc": "3.0", "id": 1}, 400, -32600),
        ({"method": "getblockhash", "params": [-1], "id": 1}, 500, -8),
        ({"method": "getblockhash", "params": ["x"], "id": 1}, 500, -3),
        ("{not json", 500, -32700),
        ("[1", 500, -32700),
        ("5", 500, -32700),
    ],
    ids=[
        "method-not-found",
        "method-not-a-string",
        "params-not-array-or-object",
        "unknown-version",
        "invalid-parameter",
        "type-error",
        "parse-error",
        "truncated",
        "top-level-number",
    ],
)
def test_legacy_errors_use_bitcoinds_http_statuses(
    node: NodeProcess, body: object, status: int, code: int
) -> None:
    reply = node.post_json(body)
    assert reply.status == status
    answer = reply.json()
    assert answer["error"]["code"] == code
    assert "result" in answer and answer["result"] is None


def test_jsonrpc_2_errors_are_http_200_without_result(node: NodeProcess) -> None:
    reply = node.post_json({"jsonrpc": "2.0", "method": "nosuch", "id": 7})
    assert reply.status == 200
    assert reply.json() == {
        "jsonrpc": "2.0",
        "error": {"code": -32601, "message": "Method not found"},
        "id": 7,
    }
    ok = node.post_json({"jsonrpc": "2.0", "method": "getblockcount", "id": 8}).json()
    assert ok == {"jsonrpc": "2.0", "result": 3, "id": 8}


def test_jsonrpc_2_notification_gets_204(node: NodeProcess) -> None:
    reply = node.post_json({"jsonrpc": "2.0", "method": "getblockcount"})
    assert reply.status == 204
    assert reply.body == b""


def test_batch_answers_each_request_in_order(node: NodeProcess) -> None:
    reply = node.post_json(
        [
            {"method": "getblockcount", "id": 1},
            {"method": "nosuch", "id": 2},
            {"jsonrpc": "2.0", "method": "getblockcount"},
            {"jsonrpc": "2.0", "method": "getblockhash", "params": [0], "id": 3},
            "junk",
        ]
    )
    assert reply.status == 200
    answers = reply.json()
    assert [a["id"] for a in answers] == [1, 2, 3, None]
    assert answers[0]["result"] == 3
    assert answers[1]["error"]["code"] == -32601
    assert len(answers[2]["result"]) == 64 and "error" not in answers[2]
    assert answers[3]["error"]["code"] == -32600


def test_empty_batch_is_an_invalid_request(node: NodeProcess) -> None:
    reply = node.post_json([])
    assert reply.status == 400
    assert reply.json()["error"]["code"] == -32600


def test_rpc_is_post_only(node: NodeProcess) -> None:
    assert node.http("GET", "/rpc").status == 405
    assert node.http("GET", "/").status == 405


def test_root_path_serves_json_rpc_like_bitcoind(node: NodeProcess) -> None:
    reply = node.http("POST", "/", json.dumps({"method": "getblockcount", "id": 1}))
    assert reply.json()["result"] == 3


# -- REST


def test_rest_mirrors_the_rpc(node: NodeProcess) -> None:
    tip = node.call("getbestblockhash")
    block = node.http("GET", f"/rest/block/{tip}", auth=None).json()
    assert block["hash"] == tip and isinstance(block["tx"][0], dict)
    assert (
        node.http("GET", f"/rest/block/{tip}?verbosity=1", auth=None).json()["tx"]
        == (node.call("getblock", tip)["tx"])
    )
    raw = node.http("GET", f"/rest/block/{tip}.hex", auth=None)
    assert raw.body.decode().strip() == node.call("getblock", tip, 0)
    assert node.http("GET", "/rest/blockhashbyheight/3", auth=None).json() == {"blockhash": tip}
    assert node.http("GET", "/rest/chaininfo", auth=None).json()["blocks"] == 3
    tips = node.http("GET", "/rest/chaintips", auth=None).json()
    assert tips[0]["hash"] == tip
    status = node.http("GET", "/rest/status", auth=None).json()
    assert status["height"] == 3 and status["hash"] == tip and status["network"] == "regtest"


def test_rest_headers_walk_up_the_chain(node: NodeProcess) -> None:
    genesis = node.call("getblockhash", 0)
    headers = node.http("GET", f"/rest/headers/{genesis}?count=10", auth=None).json()
    assert [h["height"] for h in headers] == [0, 1, 2, 3]
    assert node.http("GET", f"/rest/headers/{genesis}?count=0", auth=None).status == 400


def test_rest_address_utxos_mempool_and_tx(node: NodeProcess) -> None:
    payee = node.call("getnewaddress")
    address = node.call("validateaddress", payee)["address"]
    funder = node.call("getnewaddress")
    node.call("generatetoaddress", 101, funder)
    txid = node.call("sendtoaddress", payee, "2")
    utxos = node.http("GET", f"/rest/address/{address}/utxos", auth=None).json()
    assert [(u["txid"], u["confirmations"], u["amount"]) for u in utxos["utxos"]] == [
        (txid, 0, 2.0)
    ]
    mempool = node.http("GET", "/rest/mempool", auth=None).json()
    assert txid in mempool["txids"] and mempool["size"] == len(mempool["txids"])
    contents = node.http("GET", "/rest/mempool/contents", auth=None).json()
    assert txid in contents
    tx = node.http("GET", f"/rest/tx/{txid}", auth=None).json()
    assert tx["txid"] == txid and tx["hex"]
    node.call("generatetoaddress", 1, funder)
    utxos = node.http("GET", f"/rest/address/{address}/utxos", auth=None).json()
    assert [u["confirmations"] for u in utxos["utxos"]] == [1]
    assert node.http("GET", "/rest/peers", auth=None).json() == []


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/rest/block/" + "11" * 32, 404, -5),
        ("/rest/block/xyz", 400, -8),
        ("/rest/block/" + "11" * 32 + "?verbosity=7", 400, -8),
        ("/rest/tx/" + "11" * 32, 404, -5),
        ("/rest/blockhashbyheight/99999", 400, -8),
        ("/rest/blockhashbyheight/x", 400, -8),
        ("/rest/address/bogus/utxos", 404, -5),
    ],
)
def test_rest_errors_are_json(node: NodeProcess, path: str, status: int, code: int) -> None:
    reply = node.http("GET", path, auth=None)
    assert reply.status == status
    assert reply.json()["error"]["code"] == code


def test_rest_is_read_only(node: NodeProcess) -> None:
    assert node.http("POST", "/rest/chaininfo", "{}").status == 405


# -- metrics


def test_metrics_are_prometheus_text(node: NodeProcess) -> None:
    node.call("getblockcount")
    reply = node.http("GET", "/metrics", auth=None)
    assert reply.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = reply.body.decode()
    height = node.call("getblockcount")
    assert f"forklab_block_height {height}\n" in text
    assert "# TYPE forklab_rpc_requests_total counter" in text
    assert re.search(r'forklab_rpc_requests_total\{method="getblockcount"\} [1-9]', text)
    assert 'forklab_peers{direction="inbound"} 0' in text
    docs = (Path(__file__).resolve().parent.parent / "docs" / "api.md").read_text()
    for name in re.findall(r"^# TYPE (\S+) ", text, flags=re.MULTILINE):
        assert f"`{name}" in docs, f"{name} is not in docs/api.md"
    for line in text.splitlines():
        assert line.startswith("#") or re.fullmatch(r"[a-z_][a-z0-9_]*(\{[^}]*\})? \S+", line), line
