"""The dashboard server's HTTP API against real nodes: state, stream, actions, refusals, CLI.

Three real ``forklab node`` processes in a line (n1 - n2 - n3), started by hand (no devnet),
watched by a dashboard running in the test's event loop. Through its API the tests:

* read the state: every node with its height, tip, peers and mempool; the links seen; the block
  tree; the money supply from the network's own constants;
* mine with an action, get the equivalent ``forklab rpc`` command back, and see the block
  arrive in the merged event stream from every node, with its spread;
* partition the line with ``setlinkpolicy`` (what the dashboard does without a devnet), mine on
  both sides, see two live branches and cut links, heal, and see one side turn stale;
* are refused, with the right status, for cross-site requests, non-JSON bodies, unknown or
  malformed actions and actions that need a devnet;
* read a node whose REST is private with its cookie; see a node that stops drawn as down,
  and a node whose cookie it lacks offer no actions;
* run ``forklab dashboard`` as a process: ready line, state, a clean stop on SIGTERM (an open
  page is told), and one clear line when its port is taken.

A dashboard started before its devnet follows it from its state file as it comes up (topology,
hash shares, wallets, partitions) and goes down.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from rpc_harness import REPO, NodeProcess, start_node

from node.core.params import REGTEST
from node.dashboard import DashboardServer, NodeEndpoint, StaticSource
from node.dashboard.sources import DevnetSource
from node.devnet import Devnet, UpOptions

pytestmark = pytest.mark.asyncio(loop_scope="module")

TIMEOUT = 10.0


@dataclass
class Network:
    nodes: list[NodeProcess]
    url: str
    http: aiohttp.ClientSession

    async def state(self, depth: int = 40) -> dict[str, Any]:
        async with self.http.get(f"{self.url}/api/state?depth={depth}") as response:
            assert response.status == 200
            return dict(await response.json())

    async def act(
        self, name: str, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, Any]]:
        async with self.http.post(
            f"{self.url}/api/actions/{name}", json=body, headers=headers
        ) as response:
            return response.status, dict(await response.json())

    async def wait_state(
        self, predicate: Callable[[dict[str, Any]], bool], what: str
    ) -> dict[str, Any]:
        deadline = time.monotonic() + TIMEOUT
        while True:
            state = await self.state()
            if predicate(state):
                return state
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; last state: {state}")
            await asyncio.sleep(0.05)


def node_named(state: dict[str, Any], name: str) -> dict[str, Any]:
    return next(n for n in state["nodes"] if n["name"] == name)


def link_state(state: dict[str, Any], a: str, b: str) -> str | None:
    return next((x["state"] for x in state["links"] if (x["a"], x["b"]) == (a, b)), None)


def all_on(state: dict[str, Any], height: int) -> bool:
    return all(n["up"] and n["height"] == height for n in state["nodes"])


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def network(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Network]:
    base = tmp_path_factory.mktemp("dashboard-api")
    nodes: list[NodeProcess] = []
    server: DashboardServer | None = None
    try:
        # Started side by side (each takes most of a second), then wired: n1 - n2 - n3.
        nodes += await asyncio.gather(
            *(asyncio.to_thread(start_node, base / f"n{i}") for i in (1, 2, 3))
        )
        for node, peer in ((nodes[1], nodes[0]), (nodes[2], nodes[1])):
            await asyncio.to_thread(node.call, "addnode", peer.p2p_address, "add")
        endpoints = [NodeEndpoint(f"n{i + 1}", n.rpc_url, n.datadir) for i, n in enumerate(nodes)]
        server = DashboardServer(StaticSource(endpoints))
        url = await server.start("127.0.0.1", 0)
        async with aiohttp.ClientSession() as http:
            net = Network(nodes, url, http)
            await net.wait_state(
                lambda s: (
                    all(n["up"] and n["peers"] >= 1 for n in s["nodes"])
                    and link_state(s, "n1", "n2") == "up"
                    and link_state(s, "n2", "n3") == "up"
                ),
                "three connected nodes",
            )
            yield net
    finally:
        if server is not None:
            await server.stop()
        await stop_nodes(nodes)


async def stop_nodes(nodes: list[NodeProcess]) -> None:
    """SIGTERM to all, then wait for each (a node takes a moment to close its store)."""
    for node in nodes:
        if node.proc.poll() is None:
            node.proc.send_signal(signal.SIGTERM)
    await asyncio.gather(*(asyncio.to_thread(node.terminate) for node in nodes))


async def test_the_state_shows_every_node_the_links_the_tree_and_the_money_supply(
    network: Network,
) -> None:
    # The dashboard polls each node once a second and the nodes may still be finding each other
    # by address gossip: wait for one poll in which the wired links are up and every node's peer
    # count agrees with the links drawn, then check that snapshot.
    deadline = time.monotonic() + 15
    while True:
        state = await network.state()
        links_now = {(x["a"], x["b"]) for x in state["links"] if x["state"] == "up"}
        settled = {("n1", "n2"), ("n2", "n3")} <= links_now and all(
            n["peers"] == sum(n["name"] in (x["a"], x["b"]) for x in state["links"])
            for n in state["nodes"]
        )
        if settled or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert [n["name"] for n in state["nodes"]] == ["n1", "n2", "n3"]
    height = state["tree"]["best_height"]
    for node, process in zip(state["nodes"], network.nodes, strict=True):
        assert node["up"] and node["rpc_url"] == process.rpc_url
        assert node["height"] == height
        assert node["tip"] == state["tree"]["best"]
        touching = [x for x in state["links"] if node["name"] in (x["a"], x["b"])]
        assert node["peers"] == len(touching) >= 1
        assert node["mempool"] == {"size": 0, "bytes": 0}
        assert node["hash_share"] is None, "nodes started by hand: no known hash power"
    assert state["network"] == "regtest"
    # n1 - n2 - n3 as wired; the nodes may also have found each other by address gossip.
    links = {(x["a"], x["b"]): x["state"] for x in state["links"]}
    assert links.items() >= {("n1", "n2"): "up", ("n2", "n3"): "up"}.items()
    assert set(links) <= {("n1", "n2"), ("n2", "n3"), ("n1", "n3")}
    assert state["tree"]["tips"] == {name: state["tree"]["best"] for name in ("n1", "n2", "n3")}
    chain = state["chain"]
    assert chain["cap"] == REGTEST.supply_cap
    assert chain["supply"] == REGTEST.supply_at(height)
    assert chain["subsidy"] == REGTEST.subsidy(height + 1)
    assert chain["blocks_to_halving"] == REGTEST.halving_interval - height % 150
    assert sorted(state["capabilities"]) == ["heal", "latency", "mine", "partition", "send"]


async def test_mining_returns_the_rpc_command_and_the_block_streams_from_every_node(
    network: Network,
) -> None:
    start = (await network.state())["tree"]["best_height"]
    async with network.http.ws_connect(f"{network.url}/api/stream?depth=10") as ws:
        first = json.loads((await ws.receive(TIMEOUT)).data)
        assert first["type"] == "state"
        status, reply = await network.act("mine", {"node": "n3", "blocks": 2})
        assert status == 200, reply
        address = await asyncio.to_thread(network.nodes[2].call, "getnewaddress")
        assert reply["ok"] and len(reply["result"]) == 2
        assert reply["message"] == "n3 mined 2 block(s)"
        assert re.fullmatch(
            rf"forklab rpc --rpc {network.nodes[2].rpc_url} --datadir \S+/n3 "
            rf"generatetoaddress 2 (?!{address})\w+",
            reply["command"],
        ), reply["command"]
        connected: dict[str, set[str]] = {h: set() for h in reply["result"]}
        actions = []
        deadline = time.monotonic() + TIMEOUT
        while any(len(nodes) < 3 for nodes in connected.values()):
            assert time.monotonic() < deadline, connected
            message = json.loads((await ws.receive(TIMEOUT)).data)
            if message["type"] == "event" and message["event"]["type"] == "block_connected":
                connected.setdefault(message["event"]["hash"], set()).add(message["node"])
            elif message["type"] == "action":
                actions.append(message)
        assert [a["command"] for a in actions] == [reply["command"]]
    state = await network.wait_state(lambda s: all_on(s, start + 2), "every node on the new tip")
    last = reply["result"][-1]
    assert state["tree"]["best"] == last
    spread = state["spread"]
    assert spread["hash"] == last and spread["origin"] == "n3"
    # Each hop comes from a neighbour that had the block before.
    links = {(x["a"], x["b"]) for x in state["links"] if x["state"] == "up"}
    had = {"n3": 0}
    for hop in spread["hops"]:
        assert tuple(sorted((hop["from"], hop["to"]))) in links, hop
        assert had[hop["from"]] <= hop["ms"], hop
        had[hop["to"]] = hop["ms"]
    assert sorted(had) == ["n1", "n2", "n3"]
    blocks = {b["hash"]: b for b in state["tree"]["blocks"]}
    assert blocks[last]["first_node"] == "n3" and blocks[last]["status"] == "main"
    assert node_named(state, "n3")["found"] >= 2


async def test_a_dry_run_only_returns_the_command(network: Network) -> None:
    before = (await network.state())["tree"]["best_height"]
    status, reply = await network.act("mine", {"node": "n1", "blocks": 5, "dry_run": True})
    assert status == 200 and reply["dry_run"] is True
    assert "generatetoaddress 5" in reply["command"]
    status, reply = await network.act("heal", {"dry_run": True})
    assert status == 200 and reply["command"].count("setlinkpolicy '[]'") == 3
    await asyncio.sleep(0.3)
    assert (await network.state())["tree"]["best_height"] == before


async def test_a_partition_cuts_links_grows_two_branches_and_healing_leaves_one_stale(
    network: Network,
) -> None:
    start = (await network.state())["tree"]["best_height"]
    status, reply = await network.act("partition", {"groups": [["n1"], ["n2", "n3"]]})
    assert status == 200, reply
    assert reply["message"] == "partitioned: n1 | n2,n3"
    try:
        state = await network.wait_state(
            lambda s: link_state(s, "n1", "n2") == "cut", "the link n1 - n2 drawn as cut"
        )
        assert state["partition"] == [["n1"], ["n2", "n3"]]
        assert link_state(state, "n2", "n3") == "up"
        # n1 alone mines 1 block, the other side 2: both branches live until the heal.
        for body in ({"node": "n1", "blocks": 1}, {"node": "n3", "blocks": 2}):
            status, reply = await network.act("mine", body)
            assert status == 200, reply
        state = await network.wait_state(
            lambda s: (
                node_named(s, "n1")["height"] == start + 1
                and node_named(s, "n2")["height"] == start + 2
            ),
            "each side on its own branch",
        )
        statuses = {b["height"]: [] for b in state["tree"]["blocks"]}
        for block in state["tree"]["blocks"]:
            statuses[block["height"]].append(block["status"])
        assert sorted(statuses[start + 1]) == ["fork", "main"]
        assert state["tree"]["lanes"] == 2
    finally:
        status, reply = await network.act("heal", {})
    assert status == 200 and reply["message"] == "the partition is healed"
    state = await network.wait_state(lambda s: all_on(s, start + 2), "one tip after healing")
    assert link_state(state, "n1", "n2") == "up" and state["partition"] is None
    lost = [b for b in state["tree"]["blocks"] if b["height"] == start + 1 and b["lane"] == 1]
    assert [b["status"] for b in lost] == ["stale"]
    assert lost[0]["first_node"] == "n1"


async def test_after_a_tie_each_side_keeps_the_other_sides_block_and_the_tree_shows_it_arrive(
    network: Network,
) -> None:
    """Equal work: after the heal each node stays on the block it saw first, stores the other
    side's block (``side_block`` on its event stream) and the tree records when it got it."""
    start = (await network.state())["tree"]["best_height"]
    status, reply = await network.act("partition", {"groups": [["n1"], ["n2", "n3"]]})
    assert status == 200, reply
    try:
        await network.wait_state(lambda s: link_state(s, "n1", "n2") == "cut", "the cut")
        for body in ({"node": "n1", "blocks": 1}, {"node": "n3", "blocks": 1}):
            status, reply = await network.act("mine", body)
            assert status == 200, reply
        await network.wait_state(
            lambda s: node_named(s, "n1")["height"] == node_named(s, "n2")["height"] == start + 1,
            "a block on each side",
        )
    finally:
        status, reply = await network.act("heal", {})
    assert status == 200, reply

    def tie_seen_across(s: dict[str, Any]) -> bool:
        blocks = [b for b in s["tree"]["blocks"] if b["height"] == start + 1]
        return len(blocks) == 2 and all(len(b["seen_ms"]) == 3 for b in blocks)

    state = await network.wait_state(tie_seen_across, "both tie blocks reach every node")
    tips = {n["name"]: n["tip"] for n in state["nodes"]}
    assert tips["n1"] != tips["n3"], "first seen stays the tip on a tie"
    # Break the tie so the next test starts from one chain.
    status, reply = await network.act("mine", {"node": "n3", "blocks": 1})
    assert status == 200, reply
    await network.wait_state(lambda s: all_on(s, start + 2), "one tip after the tie is broken")


async def test_latency_is_set_on_both_ends_and_shown_on_the_link(network: Network) -> None:
    status, reply = await network.act("latency", {"a": "n2", "b": "n3", "ms": 150})
    assert status == 200, reply
    try:
        policy = await asyncio.to_thread(network.nodes[1].call, "getlinkpolicy")
        assert policy["latency_ms"] == {network.nodes[2].p2p_address: 150}
        state = await network.state()
        (link,) = [x for x in state["links"] if (x["a"], x["b"]) == ("n2", "n3")]
        assert link["latency_ms"] == 150
    finally:
        status, reply = await network.act("latency", {"a": "n2", "b": "n3", "ms": 0})
    assert status == 200
    policy = await asyncio.to_thread(network.nodes[2].call, "getlinkpolicy")
    assert policy["latency_ms"] == {}


@pytest.mark.parametrize(
    ("name", "body", "headers", "status", "error"),
    [
        pytest.param(
            "mine",
            {"node": "n1"},
            {"Origin": "http://evil.example"},
            403,
            "Origin",
            id="another site's page",
        ),
        pytest.param(
            "mine",
            {"node": "n1"},
            {"Host": "evil.example"},
            403,
            "Host",
            id="a rebound DNS name",
        ),
        pytest.param("mine", {"node": "n9"}, None, 400, "node", id="an unknown node"),
        pytest.param("explode", {}, None, 404, "no action", id="an unknown action"),
        pytest.param("kill", {"node": "n1"}, None, 409, "needs a devnet", id="kill needs a devnet"),
    ],
)
async def test_refused_actions(
    network: Network,
    *,
    name: str,
    body: dict[str, Any],
    headers: dict[str, str] | None,
    status: int,
    error: str,
) -> None:
    got, reply = await network.act(name, body, headers)
    assert got == status
    assert reply["ok"] is False and error in reply["error"]


async def test_a_dry_run_of_a_form_not_yet_valid_says_why_without_failing(
    network: Network,
) -> None:
    for name, body in (("mine", {"node": ""}), ("latency", {"a": "n1", "b": "n1", "ms": 5})):
        status, reply = await network.act(name, {**body, "dry_run": True})
        assert status == 200 and reply["ok"] is False and reply["dry_run"] is True
        assert reply["error"]
    status, reply = await network.act("explode", {"dry_run": True})
    assert status == 404


async def test_bodies_that_are_not_json_objects_are_refused(network: Network) -> None:
    for data, content_type, status in (
        ("node=n1", "application/x-www-form-urlencoded", 415),
        ("{not json", "application/json", 400),
        ("[1, 2]", "application/json", 400),
    ):
        async with network.http.post(
            f"{network.url}/api/actions/mine", data=data, headers={"Content-Type": content_type}
        ) as response:
            assert response.status == status, data
    # An action always says what to do: an empty body is not an empty object, even for heal.
    async with network.http.post(
        f"{network.url}/api/actions/heal", data="", headers={"Content-Type": "application/json"}
    ) as response:
        assert response.status == 400
        assert (await response.json())["error"] == "the body is not JSON"


async def test_the_page_and_its_files_are_served_from_the_package(network: Network) -> None:
    async with network.http.get(f"{network.url}/") as response:
        assert response.status == 200 and response.content_type == "text/html"
        page = await response.text()
    referenced = re.findall(r'(?:src|href)="(/static/[^"]+)"', page)
    assert "/static/js/main.js" in referenced
    modules = ["/static/js/main.js"]
    seen: set[str] = set()
    while modules:  # every module the page imports, transitively, is there
        path = modules.pop()
        if path in seen:
            continue
        seen.add(path)
        async with network.http.get(f"{network.url}{path}") as response:
            assert response.status == 200, path
            assert response.content_type == "text/javascript"
            source = await response.text()
        modules += [f"/static/js/{m}" for m in re.findall(r'from "\./([\w.]+)"', source)]
    for path in referenced:
        async with network.http.get(f"{network.url}{path}") as response:
            assert response.status == 200, path
    for missing in ("/static/nothing.js", "/static/../app.py", "/static/%2e%2e/app.py"):
        async with network.http.get(f"{network.url}{missing}") as response:
            assert response.status == 404, missing


async def test_private_nodes_are_read_with_their_cookie_a_stopped_one_is_shown_down(
    tmp_path: Path,
) -> None:
    # a keeps its REST and events private: the dashboard reads them with a's cookie.
    a, b = await asyncio.gather(
        asyncio.to_thread(start_node, tmp_path / "a", "--no-rest-public"),
        asyncio.to_thread(start_node, tmp_path / "b"),
    )
    server = DashboardServer(
        StaticSource([NodeEndpoint("a", a.rpc_url, a.datadir), NodeEndpoint("b", b.rpc_url)])
    )
    try:
        url = await server.start("127.0.0.1", 0)
        async with aiohttp.ClientSession() as http:
            net = Network([a, b], url, http)
            state = await net.wait_state(
                lambda s: all(n["up"] and n["streaming"] for n in s["nodes"]), "both up"
            )
            assert [n["can_act"] for n in state["nodes"]] == [True, False]
            genesis = REGTEST.genesis.hash_hex
            assert state["tree"]["tips"] == {"a": genesis, "b": genesis}
            b.terminate()
            state = await net.wait_state(lambda s: not node_named(s, "b")["up"], "b shown down")
            assert "not reachable" in node_named(state, "b")["error"]
            assert node_named(state, "a")["up"]
            status, reply = await net.act("mine", {"node": "b"})
            assert status == 502 and "given no data directory" in reply["error"]
    finally:
        await server.stop()
        await stop_nodes([a, b])


async def test_a_dashboard_started_before_its_devnet_follows_it_from_its_state_file(
    tmp_path: Path,
) -> None:
    devnet = Devnet(tmp_path / "devnet")
    server = DashboardServer(DevnetSource(devnet.root))
    url = await server.start("127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as http:
            net = Network([], url, http)
            state = await net.state()
            assert state["nodes"] == [] and "no devnet in" in state["source_error"]
            assert state["capabilities"] == [
                "mine",
                "send",
                "partition",
                "heal",
                "kill",
                "restart",
                "latency",
            ]
            options = UpOptions(
                nodes=3,
                miner_shares=(0.75, 0.25),
                topology="line",
                base_port=0,
                block_time=86_400,
            )
            await asyncio.to_thread(devnet.up, options)
            try:
                state = await net.wait_state(
                    lambda s: len(s["nodes"]) == 3 and all(n["up"] for n in s["nodes"]),
                    "the devnet's nodes, up",
                )
                assert state["source_error"] is None
                assert [n["hash_share"] for n in state["nodes"]] == [0.75, 0.25, 0.0]
                assert state["miners"] == [
                    {"name": "m1", "node": "n1", "share": 0.75},
                    {"name": "m2", "node": "n2", "share": 0.25},
                ]
                assert set(state["wallets"]) == {"alice", "bob", "carol", "m1", "m2"}
                assert all(n["can_act"] for n in state["nodes"])
                # The topology is known, so a link the partition cuts is drawn as cut.
                assert {(x["a"], x["b"]) for x in state["links"]} == {("n1", "n2"), ("n2", "n3")}
                await asyncio.to_thread(devnet.partition, ["n1"])
                state = await net.wait_state(
                    lambda s: link_state(s, "n1", "n2") == "cut", "n1 - n2 drawn as cut"
                )
                assert state["partition"] == [["n1"], ["n2", "n3"]]
                assert link_state(state, "n2", "n3") == "up"
            finally:
                await asyncio.to_thread(devnet.down, wipe=True)
            await net.wait_state(
                lambda s: "no devnet in" in (s["source_error"] or ""), "the devnet gone"
            )
            await net.wait_state(lambda s: not any(n["up"] for n in s["nodes"]), "nodes down")
    finally:
        await server.stop()


# -- the command

LAUNCH = (
    "import sys\n"
    "from node import cli\n"
    "entry = ('node.commands.dashboard', 'register')\n"
    "if entry not in cli._COMMAND_MODULES:\n"
    "    cli._COMMAND_MODULES += (entry,)\n"
    "sys.exit(cli.main(sys.argv[1:]))\n"
)
"""``forklab`` (its real ``main``), with the dashboard's command registered if it is not yet."""


def launch_dashboard(*args: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FORKLAB_")}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.Popen(
        [sys.executable, "-c", LAUNCH, "dashboard", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=REPO,
    )


def ready_line(proc: subprocess.Popen[bytes]) -> str:
    assert proc.stdout is not None
    line = b""
    deadline = time.monotonic() + TIMEOUT
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while not line.endswith(b"\n"):
            assert time.monotonic() < deadline and proc.poll() is None, proc.stderr
            if selector.select(0.1):
                line += os.read(proc.stdout.fileno(), 4096)
    return line.decode().strip()


async def test_the_command_serves_until_sigterm_and_refuses_a_taken_port(
    network: Network,
) -> None:
    node_args = [
        arg
        for i, n in enumerate(network.nodes)
        for arg in ("--node", f"n{i + 1}", n.rpc_url, str(n.datadir))
    ]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # Both at once: each process takes a second to start.
        serving = launch_dashboard(*node_args, "--port", "0")
        refused = launch_dashboard(*node_args, "--port", str(port))
        try:
            line = await asyncio.to_thread(ready_line, serving)
            match = re.fullmatch(r"forklab dashboard ready: (http://127\.0\.0\.1:\d+)", line)
            assert match, line
            async with network.http.get(f"{match[1]}/api/state") as response:
                state = await response.json()
            assert [n["name"] for n in state["nodes"]] == ["n1", "n2", "n3"]
            assert all(n["up"] for n in state["nodes"])
            _out, err = await asyncio.to_thread(refused.communicate, timeout=TIMEOUT)
            assert refused.returncode == 1
            assert err.decode().strip().splitlines() == [
                f"forklab dashboard: error: 127.0.0.1:{port} is already in use "
                "(another dashboard?); choose another with --port"
            ]
            # A page still open is told the dashboard is going, and nothing holds the exit up.
            async with network.http.ws_connect(f"{match[1]}/api/stream") as page:
                assert json.loads((await page.receive(TIMEOUT)).data)["type"] == "state"
                serving.send_signal(signal.SIGTERM)
                while (message := await page.receive(TIMEOUT)).type is aiohttp.WSMsgType.TEXT:
                    pass
                assert message.type is aiohttp.WSMsgType.CLOSE
                assert message.data == aiohttp.WSCloseCode.GOING_AWAY
            assert await asyncio.to_thread(serving.wait, TIMEOUT) == 0
        finally:
            for proc in (serving, refused):
                if proc.poll() is None:
                    proc.kill()
                proc.wait()
                for stream in (proc.stdout, proc.stderr):
                    if stream is not None:
                        stream.close()
