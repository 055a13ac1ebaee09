"""``forklab rpc`` and ``forklab wallet`` against a running node, printed as bitcoin-cli prints:
strings bare, null as nothing, JSON indented with amounts' eight decimals kept, errors as
``error code`` / ``error message`` on stderr with the code as exit status.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from rpc_harness import NodeProcess, run_cli, start_node


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    process = start_node(tmp_path_factory.mktemp("cli") / "node")
    try:
        yield process
    finally:
        process.terminate()


def rpc(node: NodeProcess, *args: str) -> tuple[int, str, str]:
    result = run_cli("rpc", "--datadir", str(node.datadir), "--rpc", node.rpc_url, *args)
    return result.status, result.stdout, result.stderr


def test_numbers_and_strings_print_bare(node: NodeProcess) -> None:
    assert rpc(node, "getblockcount") == (0, "0\n", "")
    status, out, _ = rpc(node, "getblockhash", "0")
    assert status == 0 and out.strip() == node.call("getblockhash", 0)


def test_objects_print_as_indented_json_with_exact_amounts(node: NodeProcess) -> None:
    address = node.call("getnewaddress")
    [block_hash] = node.call("generatetoaddress", 1, address)
    coinbase = node.call("getblock", block_hash)["tx"][0]
    status, out, _ = rpc(node, "gettxout", coinbase, "0")
    assert status == 0
    assert '\n  "value": 50.00000000,\n' in out
    assert json.loads(out)["address"] == address


def test_null_prints_nothing(node: NodeProcess) -> None:
    assert rpc(node, "gettxout", "00" * 32, "0") == (0, "", "")


def test_errors_print_like_bitcoin_cli(node: NodeProcess) -> None:
    status, out, err = rpc(node, "getblockhash", "-1")
    assert (status, out) == (8, "")
    assert err == "error code: -8\nerror message:\nBlock height out of range\n"
    status, _, err = rpc(node, "nosuchmethod")
    assert status == 1 and err.startswith("error code: -32601\n")


def test_named_parameters(node: NodeProcess) -> None:
    genesis = node.call("getblockhash", 0)
    status, out, _ = rpc(node, "--named", "getblockheader", f"blockhash={genesis}", "verbose=false")
    assert status == 0 and len(out.strip()) == 160
    status, _, err = rpc(node, "--named", "getblockheader", "nonsense")
    assert status == 2 and "NAME=VALUE" in err


def test_string_parameters_are_not_parsed_as_json(node: NodeProcess) -> None:
    # "1e3" would be a number if parsed as JSON; validateaddress takes a string.
    status, out, _ = rpc(node, "validateaddress", "1e3")
    assert status == 0 and json.loads(out)["isvalid"] is False


def test_help_lists_methods(node: NodeProcess) -> None:
    status, out, _ = rpc(node, "help")
    assert status == 0 and "== Blockchain ==" in out and "getblocktemplate" in out


def test_no_cookie_is_one_clear_line(tmp_path_factory: pytest.TempPathFactory) -> None:
    empty = tmp_path_factory.mktemp("nocookie")
    result = run_cli("rpc", "--datadir", str(empty), "getblockcount")
    assert result.status == 1
    assert result.stderr.startswith("forklab rpc: error: no RPC cookie")


def test_no_node_is_one_clear_line(tmp_path_factory: pytest.TempPathFactory) -> None:
    result = run_cli(
        "rpc", "--rpc", "http://127.0.0.1:9", "--rpc-user", "u", "--rpc-password", "p", "uptime"
    )
    assert result.status == 1
    assert "could not connect" in result.stderr and "Traceback" not in result.stderr


def wallet(node: NodeProcess, *args: str) -> tuple[int, str, str]:
    result = run_cli(
        "wallet", args[0], "--datadir", str(node.datadir), "--rpc", node.rpc_url, *args[1:]
    )
    return result.status, result.stdout, result.stderr


def test_wallet_commands(node: NodeProcess) -> None:
    status, address, _ = wallet(node, "new-address")
    address = address.strip()
    assert status == 0 and node.call("validateaddress", address)["isvalid"]
    node.call("generatetoaddress", 101, address)
    status, out, _ = wallet(node, "balance")
    assert status == 0 and out.strip().endswith(".00000000") and float(out) >= 50
    payee = node.call("getnewaddress")
    status, txid, _ = wallet(node, "send", payee, "0.3")
    assert status == 0 and txid.strip() in node.call("getrawmempool")
    status, out, _ = wallet(node, "balance", "--json")
    assert json.loads(out)["mine"]["untrusted_pending"] > 0
    status, out, _ = wallet(node, "unspent")
    assert status == 0 and any(u["amount"] == 0.3 for u in json.loads(out))
    status, _, err = wallet(node, "send", payee, "20000000")
    assert status == 1 and "insufficient funds" in err
