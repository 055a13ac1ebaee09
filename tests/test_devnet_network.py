"""``forklab devnet`` end to end: real node and miner processes on loopback, driven by the
command line exactly as a user types it (``python -m node.devnet`` is ``forklab devnet``).

The story of a devnet of four nodes in a line and one miner:

1. ``up`` starts it, funds the wallets and returns with every node on one tip, and its
   dashboard serving the page and the devnet's state;
2. the miner mines on n1, at its pace, paying its own wallet;
3. n1 is killed (SIGKILL) while the others go on; restarted, it catches up, and the miner,
   whose node it is, finds it again (with its new cookie) and mines on;
4. a partition splits n1,n2 from n3,n4: each side goes its own way;
5. ``heal`` brings every node onto one tip, the side with more work;
6. ``down`` leaves no process behind (the dashboard's neither) and frees every port.

Then: a devnet that is taken down and brought up again resumes its chain (no second funding)
and its dashboard on the same port, payments between its wallets confirm, ``--wipe`` removes
it; the dashboard stops and restarts by name; a port in use (a node's or the dashboard's) is
named in the error; and commands on a directory without a devnet say so.

A process that exited but was not reaped (a zombie: where the system's init does not reap
orphans, as in some containers) counts as gone: it holds no port, no memory and no lock.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from rpc_harness import REPO, CliResult, wait_until

from node.devnet import procs
from node.rpc.client import RpcClient


def run(devnet_dir: Path, *args: str, timeout: float = 120) -> CliResult:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FORKLAB_")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["HOME"] = "/nonexistent/forklab-test-home"
    done = subprocess.run(
        [sys.executable, "-m", "node.devnet", *args, "--dir", str(devnet_dir)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=timeout,
        check=False,
    )
    return CliResult(done.returncode, done.stdout, done.stderr)


def ok(devnet_dir: Path, *args: str) -> str:
    result = run(devnet_dir, *args)
    assert result.status == 0, f"devnet {' '.join(args)}: {result.stderr}"
    return result.stdout


def status(devnet_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(ok(devnet_dir, "status", "--json"))
    return data


def node(data: dict[str, Any], name: str) -> dict[str, Any]:
    return next(n for n in data["nodes"] if n["name"] == name)


def client(data: dict[str, Any], name: str) -> RpcClient:
    entry = node(data, name)
    return RpcClient.from_datadir(entry["rpc_url"], Path(entry["datadir"]))


def tips(devnet_dir: Path, *names: str) -> set[str]:
    data = status(devnet_dir)
    return {node(data, name)["tip"] for name in names}


def balance(data: dict[str, Any], wallet: str) -> Decimal:
    return Decimal(next(w for w in data["wallets"] if w["name"] == wallet)["balance"])


def recorded_pids(devnet_dir: Path) -> list[int]:
    try:
        state = json.loads((devnet_dir / "devnet.json").read_text())
    except FileNotFoundError:
        return []
    entries = [*state["nodes"], *state["miners"], *filter(None, [state.get("dashboard")])]
    return [e["pid"] for e in entries if e["pid"] is not None]


def http_get(url: str) -> tuple[str, bytes]:
    """The content type and body of a GET that must answer 200."""
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200, url
        return response.headers.get_content_type(), response.read()


def dashboard_state(data: dict[str, Any]) -> dict[str, Any]:
    kind, body = http_get(data["dashboard"]["url"] + "/api/state")
    assert kind == "application/json"
    state: dict[str, Any] = json.loads(body)
    return state


def dashboard_answers(data: dict[str, Any]) -> bool:
    """Whether the devnet's dashboard serves its page and sees every running node up."""
    kind, page = http_get(data["dashboard"]["url"] + "/")
    assert kind == "text/html" and b"<html" in page.lower()
    state = dashboard_state(data)
    assert [n["name"] for n in state["nodes"]] == [n["name"] for n in data["nodes"]]
    assert state["network"] == data["network"] and state["source_error"] is None
    running = {n["name"] for n in data["nodes"] if n["running"]}
    return {n["name"] for n in state["nodes"] if n["up"]} == running


@pytest.fixture
def devnet_dir(tmp_path: Path) -> Iterator[Path]:
    """A devnet directory; whatever a test leaves running is stopped, and killed if need be."""
    path = tmp_path / "devnet"
    seen: set[int] = set()
    try:
        yield path
    finally:
        seen.update(recorded_pids(path))
        if (path / "devnet.json").exists():
            run(path, "down")
        for pid in seen:
            if procs.group_alive(pid):
                os.killpg(pid, signal.SIGKILL)


def test_a_devnet_survives_a_crash_and_a_partition(devnet_dir: Path) -> None:
    # 1. Up: four nodes in a line, one miner, wallets funded, one tip.
    started = time.monotonic()
    out = ok(
        devnet_dir,
        "up",
        "--nodes", "4",
        "--miners", "1",
        "--topology", "line",
        "--block-time", "0.5",
        "--base-port", "0",
    )  # fmt: skip
    up_seconds = time.monotonic() - started
    assert up_seconds < 30, f"up took {up_seconds:.1f} s"
    for name in ("n1", "n2", "n3", "n4", "m1", "alice", "bob", "carol"):
        assert re.search(rf"^{name}\s", out, re.MULTILINE), f"{name} missing from:\n{out}"
    data = status(devnet_dir)
    assert [n["running"] for n in data["nodes"]] == [True] * 4
    assert min(n["height"] for n in data["nodes"]) >= 103  # 3 wallets + 100 blocks to mature
    assert {n["name"]: n["peers"] for n in data["nodes"]} == {
        "n1": ["n2"],
        "n2": ["n1", "n3"],
        "n3": ["n2", "n4"],
        "n4": ["n3"],
    }
    assert data["links"] == [["n1", "n2"], ["n2", "n3"], ["n3", "n4"]]
    assert all(balance(data, w) >= 50 for w in ("alice", "bob", "carol"))
    for n in data["nodes"]:
        assert Path(n["cookie"]).is_file()
    first_pids = recorded_pids(devnet_dir)
    assert len(first_pids) == 6  # four nodes, a miner and the dashboard

    # 1b. The dashboard answers where up and status say, and follows the devnet.
    dashboard = data["dashboard"]
    assert dashboard["running"] and dashboard["url"] == f"http://127.0.0.1:{dashboard['port']}"
    assert re.search(rf"^dashboard: {re.escape(dashboard['url'])}$", out, re.MULTILINE), out
    wait_until(lambda: dashboard_answers(data))

    # 2. The miner mines on n1 at its pace, paying its own wallet.
    height = node(data, "n1")["height"]
    wait_until(lambda: node(status(devnet_dir), "n4")["height"] >= height + 2, timeout=30)
    wait_until(lambda: balance(status(devnet_dir), "m1") > 0)

    # 3. n1 crashes; the others go on; n1 comes back, catches up, and its miner with it.
    n1_pid = node(data, "n1")["pid"]
    assert ok(devnet_dir, "kill", "n1").strip() == "killed n1"
    assert not procs.running(n1_pid)
    data = status(devnet_dir)
    assert node(data, "n1")["running"] is False
    assert node(data, "n1")["height"] is None
    ok(devnet_dir, "mine", "n3", "5")
    ahead = node(status(devnet_dir), "n3")["height"]
    restarted = ok(devnet_dir, "restart", "n1")
    match = re.fullmatch(r"restarted n1 at height (\d+)\n", restarted)
    assert match and int(match[1]) >= ahead, restarted
    # The miner's old connection and cookie died with n1: a new block of m1 shows it is back.
    earned = balance(status(devnet_dir), "m1")
    wait_until(lambda: balance(status(devnet_dir), "m1") > earned, timeout=30)
    back_at = node(status(devnet_dir), "n1")["height"]
    wait_until(lambda: node(status(devnet_dir), "n4")["height"] >= back_at, timeout=30)

    # 4. A partition: n1,n2 (with the miner) and n3,n4 each go their own way.
    assert ok(devnet_dir, "partition", "n1,n2", "n3,n4").strip() == "partitioned: n1,n2 | n3,n4"
    wait_until(lambda: node(status(devnet_dir), "n2")["peers"] == ["n1"])
    assert node(status(devnet_dir), "n3")["peers"] == ["n4"]
    assert status(devnet_dir)["partition"] == [["n1", "n2"], ["n3", "n4"]]
    ok(devnet_dir, "mine", "n3", "50")  # far more work than the miner adds meanwhile
    wait_until(lambda: len(tips(devnet_dir, "n3", "n4")) == 1)
    isolated_tip = node(status(devnet_dir), "n3")["tip"]
    isolated_height = node(status(devnet_dir), "n3")["height"]
    wait_until(lambda: node(status(devnet_dir), "n1")["tip"] != isolated_tip)
    assert isolated_tip not in tips(devnet_dir, "n1", "n2")

    # 5. Healed: one tip everywhere, on the branch with more work.
    healed = ok(devnet_dir, "heal")
    assert healed.startswith("healed: every node on one tip")
    data = status(devnet_dir)
    assert data["partition"] is None
    assert client(data, "n1").call("getblockhash", isolated_height) == isolated_tip
    wait_until(lambda: len(tips(devnet_dir, "n1", "n2", "n3", "n4")) == 1, timeout=30)

    # 6. Down: no process left, every port free.
    pids = recorded_pids(devnet_dir)
    ports = [p for n in data["nodes"] for p in (n["p2p_port"], n["rpc_port"])]
    ports.append(data["dashboard"]["port"])
    assert ok(devnet_dir, "down").startswith("stopped: ")
    for pid in {*first_pids, *pids}:
        assert not procs.group_alive(pid), f"process group {pid} outlived down"
    assert recorded_pids(devnet_dir) == []
    assert not any(procs.port_in_use(port) for port in ports)
    data = status(devnet_dir)
    assert not any(n["running"] for n in data["nodes"] + data["miners"])
    assert data["dashboard"]["running"] is False and data["dashboard"]["pid"] is None


def test_a_devnet_resumes_its_chain_and_wipes_clean(devnet_dir: Path) -> None:
    ok(devnet_dir, "up", "--nodes", "2", "--miners", "0", "--base-port", "0")
    data = status(devnet_dir)
    assert data["miners"] == []
    bob_before = balance(data, "bob")

    txid = ok(devnet_dir, "send", "alice", "bob", "2.5", "--via", "n2").strip()
    assert re.fullmatch(r"[0-9a-f]{64}", txid)
    wait_until(lambda: txid in client(status(devnet_dir), "n1").call("getrawmempool"))
    mined = ok(devnet_dir, "mine", "n1", "2", "--to", "carol").split()
    assert len(mined) == 2
    wait_until(lambda: len(tips(devnet_dir, "n1", "n2")) == 1)
    data = status(devnet_dir)
    assert balance(data, "bob") == bob_before + Decimal("2.5")
    height = node(data, "n1")["height"]
    tip = node(data, "n1")["tip"]

    dashboard_url = data["dashboard"]["url"]
    ok(devnet_dir, "down")
    assert not any(n["running"] for n in status(devnet_dir)["nodes"])
    ok(devnet_dir, "up")
    data = status(devnet_dir)
    assert {n["tip"] for n in data["nodes"]} == {tip}  # resumed, not funded a second time
    assert node(data, "n1")["height"] == height
    assert balance(data, "bob") == bob_before + Decimal("2.5")
    assert ok(devnet_dir, "logs", "n1").count("forklab node ready:") == 2
    # The dashboard resumes too, on the port the system chose the first time.
    assert data["dashboard"]["running"] and data["dashboard"]["url"] == dashboard_url
    assert ok(devnet_dir, "logs", "dashboard").count("forklab dashboard ready:") == 2

    # It stops and starts by name, as a node or a miner does.
    assert ok(devnet_dir, "kill", "dashboard", "--term").strip() == "stopped dashboard"
    assert status(devnet_dir)["dashboard"]["running"] is False
    assert "dashboard: stopped" in ok(devnet_dir, "status")
    assert ok(devnet_dir, "restart", "dashboard").strip() == "restarted dashboard"
    data = status(devnet_dir)
    assert data["dashboard"]["url"] == dashboard_url
    assert dashboard_state(data)["devnet_dir"] == str(devnet_dir)

    refused = run(devnet_dir, "up", "--nodes", "3")
    assert refused.status == 1
    assert "was made with --nodes 2" in refused.stderr
    assert "down --wipe" in refused.stderr

    pids = recorded_pids(devnet_dir)
    stopped = ok(devnet_dir, "down", "--wipe").strip()
    assert stopped == f"stopped: n1, n2, dashboard; wiped {devnet_dir}"
    assert not devnet_dir.exists()
    assert not any(procs.group_alive(pid) for pid in pids)


@pytest.mark.parametrize(
    ("option", "named", "way_out"),
    [
        ("--base-port", "(P2P of n1)", "--base-port"),
        ("--dashboard-port", "(the dashboard's)", "--no-dashboard"),
    ],
)
def test_a_port_in_use_is_named(devnet_dir: Path, option: str, named: str, way_out: str) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        if port > 65535 - 4:
            pytest.skip("the system chose a port too close to the top")
        ports = ("--base-port", "0", option, str(port))
        result = run(devnet_dir, "up", "--nodes", "2", "--miners", "0", *ports)
    assert result.status == 1
    assert f"port {port} {named} is in use" in result.stderr
    assert way_out in result.stderr
    assert recorded_pids(devnet_dir) == []


@pytest.mark.parametrize(
    "args",
    [("status",), ("down", "--wipe"), ("kill", "n1"), ("mine", "n1"), ("logs", "n1")],
)
def test_commands_without_a_devnet_say_so(tmp_path: Path, args: tuple[str, ...]) -> None:
    result = run(tmp_path / "nothing-here", *args)
    assert result.status == 1
    assert "no devnet in" in result.stderr or "holds no devnet" in result.stderr


def test_commands_name_what_they_do_not_know(devnet_dir: Path) -> None:
    ok(devnet_dir, "up", "--nodes", "2", "--miners", "0", "--base-port", "0")
    for args, message in [
        (("kill", "n9"), "no node or miner 'n9'"),
        (("partition", "n1,n7"), "no node 'n7'"),
        (("latency", "n1", "n1", "10"), "two different nodes"),
        (("send", "mallory", "bob", "1"), "no devnet wallet 'mallory'"),
        (("send", "alice", "bob", "1e-9"), "eight decimals"),
        (("send", "alice", "bob", "100000"), "insufficient funds"),
        (("mine", "n1", "0"), "1 to 10000 blocks"),
        (("logs", "m1"), "no node or miner 'm1'"),
    ]:
        result = run(devnet_dir, *args)
        assert result.status == 1, args
        assert message in result.stderr, (args, result.stderr)


def test_a_miner_stops_and_restarts_alone(devnet_dir: Path) -> None:
    ok(devnet_dir, "up", "--nodes", "1", "--miners", "2", "--block-time", "0.2", "--base-port", "0",
       "--no-dashboard")  # fmt: skip
    assert status(devnet_dir)["dashboard"] is None
    miners = {m["name"]: m for m in status(devnet_dir)["miners"]}
    assert ok(devnet_dir, "kill", "m1", "--term").strip() == "stopped m1"
    after = {m["name"]: m for m in status(devnet_dir)["miners"]}
    assert (after["m1"]["running"], after["m2"]["pid"]) == (False, miners["m2"]["pid"])
    assert "m1: stopped after" in ok(devnet_dir, "logs", "m1")  # a clean stop, logged

    assert ok(devnet_dir, "restart", "m1").strip() == "restarted m1"
    again = {m["name"]: m for m in status(devnet_dir)["miners"]}
    assert again["m1"]["running"] and again["m1"]["pid"] != miners["m1"]["pid"]
    assert again["m2"]["pid"] == miners["m2"]["pid"]
    assert run(devnet_dir, "kill", "n2").stderr.strip().endswith("(n1, m1, m2)")


def test_the_devnet_waits_for_the_line_the_node_prints() -> None:
    from node.commands.node import READY_PREFIX
    from node.devnet.launch import NODE_READY, NODE_READY_PREFIX

    assert NODE_READY_PREFIX == READY_PREFIX
    line = f"{READY_PREFIX} network demo, height 7, p2p 127.0.0.1:1, rpc http://127.0.0.1:2"
    match = NODE_READY.match(line)
    assert match is not None
    assert (match["p2p"], match["rpc"]) == ("127.0.0.1:1", "127.0.0.1:2")


def test_the_devnet_waits_for_the_line_the_dashboard_prints() -> None:
    from node.dashboard.server import READY_PREFIX
    from node.devnet.launch import DASHBOARD_READY, DASHBOARD_READY_PREFIX

    assert DASHBOARD_READY_PREFIX == READY_PREFIX
    match = DASHBOARD_READY.match(f"{READY_PREFIX} http://127.0.0.1:18580 (devnet /tmp/d)")
    assert match is not None and match["port"] == "18580"
