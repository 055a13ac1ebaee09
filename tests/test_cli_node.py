"""``forklab node`` as a process: ready line, clean shutdown on signals and on ``stop``, crash
and restart, clear errors for ports and data directories in use, configuration from a TOML
file and the environment, and two nodes syncing over ``--connect``.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import pytest
from rpc_harness import NodeProcess, node_factory, run_cli, wait_until

from node.rpc.auth import read_cookie
from node.rpc.client import RpcClient, RpcConnectionError

Nodes = Callable[..., NodeProcess]


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[Nodes]:
    yield from node_factory(tmp_path)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_cleanly(nodes: Nodes, signum: int) -> None:
    node = nodes()
    cookie = node.datadir / ".cookie"
    assert cookie.exists()
    node.proc.send_signal(signum)
    assert node.wait() == 0
    assert not cookie.exists(), "a clean stop removes the cookie"
    assert "Traceback" not in node.log()


def test_stop_rpc_replies_then_stops(nodes: Nodes) -> None:
    node = nodes()
    assert node.call("stop") == "forklab stopping"
    assert node.wait() == 0
    assert not (node.datadir / ".cookie").exists()


def test_kill_9_loses_nothing_committed(nodes: Nodes, tmp_path: Path) -> None:
    node = nodes("n")
    address = node.call("getnewaddress")
    hashes = node.call("generatetoaddress", 20, address)
    _, old_secret = read_cookie(node.datadir)
    node.kill()
    assert (node.datadir / ".cookie").exists(), "kill -9 leaves the stale cookie behind"
    again = nodes("n")
    assert again.call("getblockcount") == 20
    assert again.call("getbestblockhash") == hashes[-1]
    assert again.call("getnewaddress") != address
    assert again.call("validateaddress", address)["isvalid"]
    # The restart wrote a new cookie: the old secret no longer opens the node.
    _, new_secret = read_cookie(again.datadir)
    assert new_secret != old_secret
    with pytest.raises(RpcConnectionError, match="authorization failed"):
        RpcClient(again.rpc_url, "__cookie__", old_secret).call("getblockcount")
    assert again.call("getbalances")["mine"]["immature"] > 0, "the wallet survived too"


def test_rpc_port_in_use_is_one_clear_line(nodes: Nodes, tmp_path: Path) -> None:
    first = nodes("first")
    result = run_cli(
        "node",
        "--datadir",
        str(tmp_path / "second"),
        "--listen",
        "127.0.0.1:0",
        "--rpc-listen",
        f"127.0.0.1:{first.rpc_port}",
    )
    assert result.status == 1
    assert "already in use" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "second" / ".cookie").exists()


def test_p2p_port_in_use_is_one_clear_line(nodes: Nodes, tmp_path: Path) -> None:
    first = nodes("first")
    result = run_cli("node", "--datadir", str(tmp_path / "second"), "--listen", first.p2p_address)
    assert result.status == 1
    assert "P2P" in result.stderr and "Traceback" not in result.stderr


def test_datadir_of_a_running_node_is_refused(nodes: Nodes) -> None:
    first = nodes("shared")
    result = run_cli("node", "--datadir", str(first.datadir), "--rpc-listen", "127.0.0.1:0")
    assert result.status == 1
    assert "Traceback" not in result.stderr
    assert first.call("getblockcount") == 0, "the running node is unharmed"
    assert (first.datadir / ".cookie").exists()


def test_config_file_environment_and_flags(nodes: Nodes, tmp_path: Path) -> None:
    config = tmp_path / "forklab.toml"
    config.write_text(
        'network = "demo"\nrpc_user = "fromfile"\nrpc_password = "filepw"\nrest_public = false\n'
    )
    node = nodes(
        "configured",
        "--config",
        str(config),
        "--rest-public",
        env={"FORKLAB_RPC_USER": "fromenv", "FORKLAB_RPC_PASSWORD": "envpw"},
    )
    # File: demo network. Environment beats the file: the user is "fromenv". Flags beat both:
    # REST is public after all.
    assert node.call("getblockchaininfo")["chain"] == "demo"
    assert RpcClient(node.rpc_url, "fromenv", "envpw").call("getblockcount") == 0
    with pytest.raises(RpcConnectionError):
        RpcClient(node.rpc_url, "fromfile", "filepw").call("getblockcount")
    assert node.http("GET", "/rest/chaininfo", auth=None).status == 200


def test_bad_configuration_is_one_clear_line(tmp_path: Path) -> None:
    for args in (
        ["--network", "moon"],
        ["--rpc-listen", "localhost:99999"],
        ["--rpc-user", "only-a-user"],
        ["--mining-address", "bogus"],
        ["--config", str(tmp_path / "missing.toml")],
    ):
        result = run_cli("node", "--datadir", str(tmp_path / "d"), *args)
        assert result.status == 1, args
        assert result.stderr.startswith("forklab node: error:"), result.stderr
        assert "Traceback" not in result.stderr


async def test_two_nodes_sync_over_connect(nodes: Nodes) -> None:
    a = nodes("a")
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(a.rpc_url + "/events?types=peer_connected,peer_disconnected") as ws,
    ):
        assert (await ws.receive_json(timeout=10))["type"] == "hello"
        b = await asyncio.to_thread(nodes, "b", "--connect", a.p2p_address)
        connected = await ws.receive_json(timeout=20)
        assert connected["type"] == "peer_connected" and connected["inbound"] is True
        [peer] = await asyncio.to_thread(a.call, "getpeerinfo")
        assert peer["id"] == connected["id"] and peer["subver"].startswith("/forklab:")
        hashes = await asyncio.to_thread(a.call, "generatetoaddress", 12, a.call("getnewaddress"))
        await asyncio.to_thread(wait_until, lambda: b.call("getbestblockhash") == hashes[-1])
        # And the other way: a block mined on b reaches a.
        [tip] = await asyncio.to_thread(b.call, "generatetoaddress", 1, b.call("getnewaddress"))
        await asyncio.to_thread(wait_until, lambda: a.call("getbestblockhash") == tip)
        assert await asyncio.to_thread(b.terminate) == 0
        disconnected = await ws.receive_json(timeout=20)
        assert disconnected["type"] == "peer_disconnected"
        assert disconnected["id"] == connected["id"]


async def test_stop_releases_open_streams_and_long_polls(nodes: Nodes) -> None:
    node = nodes()
    template = node.call("getblocktemplate")
    poll = asyncio.create_task(
        asyncio.to_thread(
            node.client(timeout=30).call,
            "getblocktemplate",
            {"longpollid": template["longpollid"]},
        )
    )
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(node.rpc_url + "/events") as ws,
    ):
        assert (await ws.receive_json(timeout=10))["type"] == "hello"
        await asyncio.sleep(0.3)
        assert not poll.done()
        started = asyncio.get_running_loop().time()
        node.proc.send_signal(signal.SIGTERM)
        closing = await ws.receive(timeout=10)
        assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        released = await asyncio.wait_for(poll, 10)
        assert released["previousblockhash"] == template["previousblockhash"]
        assert await asyncio.to_thread(node.wait) == 0
        assert asyncio.get_running_loop().time() - started < 5
