"""``docker/``: the image, the compose file and the entry point, checked without a Docker engine.

No engine runs here, so the files are checked for what an engine would rely on:

* ``compose.yaml`` (parsed as YAML): several node services and miner services; each node with a
  data volume of its own, peers named by service name, the peer graph connected; each miner
  pointed at a node, the shares adding up to 1; only keys ``docker stack deploy`` honours, so
  the same file deploys to a Swarm; every ``FORKLAB_*`` variable one the program reads;
* ``Dockerfile``: the entry point is the script, the health check calls it, what it copies
  exists, the ports it exposes are the ones the node listens on;
* ``entrypoint.sh`` runs here, outside Docker, with the environment a container would get: it
  starts a node, its health check passes only while the node answers, a miner started by it
  mines on that node, and both stop cleanly on SIGTERM.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rpc_harness import REPO, wait_until

from node import config
from node.core.params import REGTEST
from node.devnet import wallets
from node.rpc.client import RpcClient

yaml = pytest.importorskip("yaml")

DOCKER = REPO / "docker"
ENTRYPOINT = DOCKER / "entrypoint.sh"
NODE_PORTS = ("28444", "28443")

MINER_VARIABLES = {
    "FORKLAB_ROLE",
    "FORKLAB_MINER_RPC",
    "FORKLAB_MINER_NAME",
    "FORKLAB_MINER_WALLET",
    "FORKLAB_MINER_ADDRESS",
    "FORKLAB_MINER_SHARE",
    "FORKLAB_MINER_SEED",
    "FORKLAB_MINER_BACKEND",
    "FORKLAB_BLOCK_TIME",
    "FORKLAB_RPC_USER",
    "FORKLAB_RPC_PASSWORD",
}
NODE_VARIABLES = {"FORKLAB_ROLE"} | {option.env for option in config.OPTIONS}
STACK_KEYS = {"image", "build", "environment", "volumes", "networks", "deploy", "ports"}
"""Service keys used; all honoured by `docker stack deploy` (build is ignored there, and the
image is pushed first, as the file's header says)."""


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    return data


def services(compose: dict[str, Any], role: str) -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in compose["services"].items()
        if service["environment"]["FORKLAB_ROLE"] == role
    }


def test_compose_keeps_the_legacy_version_stack_deploy_reads(compose: dict[str, Any]) -> None:
    assert re.fullmatch(r"3\.\d+", compose["version"])


def test_every_service_runs_the_image_under_swarm_rules(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        assert set(service) <= STACK_KEYS, name
        assert service["image"] == "${FORKLAB_IMAGE:-forklab:latest}"
        assert (
            REPO / "docker" / service["build"]["context"] / service["build"]["dockerfile"]
        ).is_file()
        assert service["deploy"]["replicas"] == 1
        assert service["deploy"]["restart_policy"]["condition"] == "on-failure"
        assert service["networks"] == ["forklab"]
    assert set(compose["networks"]) == {"forklab"}


def test_each_node_has_a_data_volume_of_its_own(compose: dict[str, Any]) -> None:
    nodes = services(compose, "node")
    assert len(nodes) >= 3
    mounts = []
    for service in nodes.values():
        (volume,) = service["volumes"]
        name, _, target = volume.partition(":")
        assert target == service["environment"]["FORKLAB_DATADIR"] == "/data"
        mounts.append(name)
    assert len(set(mounts)) == len(mounts)
    assert set(mounts) <= set(compose["volumes"])


def test_nodes_find_each_other_by_service_name(compose: dict[str, Any]) -> None:
    nodes = services(compose, "node")
    links = set()
    for name, service in nodes.items():
        env = service["environment"]
        assert env["FORKLAB_LISTEN"] == f"0.0.0.0:{NODE_PORTS[0]}"
        assert env["FORKLAB_RPC_LISTEN"] == f"0.0.0.0:{NODE_PORTS[1]}"
        assert set(env) <= NODE_VARIABLES, set(env) - NODE_VARIABLES
        config.load({}, {k: str(v) for k, v in env.items() if k != "FORKLAB_ROLE"})
        for peer in env["FORKLAB_CONNECT"].split(","):
            host, _, port = peer.partition(":")
            assert host in nodes and host != name and port == NODE_PORTS[0]
            links.add(frozenset((name, host)))
    reached = {next(iter(nodes))}
    for _ in nodes:
        reached |= {n for link in links if link & reached for n in link}
    assert reached == set(nodes)


def test_miners_mine_on_nodes_with_shares_adding_up(compose: dict[str, Any]) -> None:
    nodes = services(compose, "node")
    miners = services(compose, "miner")
    assert len(miners) >= 2
    shares = []
    for service in miners.values():
        env = service["environment"]
        assert set(env) <= MINER_VARIABLES, set(env) - MINER_VARIABLES
        host, _, port = env["FORKLAB_MINER_RPC"].removeprefix("http://").partition(":")
        assert host in nodes and port == NODE_PORTS[1]
        assert env["FORKLAB_RPC_USER"] == nodes[host]["environment"]["FORKLAB_RPC_USER"]
        assert env["FORKLAB_RPC_PASSWORD"] == nodes[host]["environment"]["FORKLAB_RPC_PASSWORD"]
        wallets.check_name(env["FORKLAB_MINER_NAME"])
        shares.append(float(env["FORKLAB_MINER_SHARE"]))
        assert "volumes" not in service  # a miner keeps nothing
    assert sum(shares) == pytest.approx(1.0)


def test_only_the_first_nodes_api_is_published(compose: dict[str, Any]) -> None:
    published = {name: s["ports"] for name, s in compose["services"].items() if "ports" in s}
    assert published == {"node1": [f"{NODE_PORTS[1]}:{NODE_PORTS[1]}"]}


def test_the_dockerfile_runs_the_entrypoint_and_checks_health() -> None:
    text = (DOCKER / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["forklab-entrypoint"]' in text
    assert re.search(r'HEALTHCHECK .*\n\s+CMD \["forklab-entrypoint", "healthcheck"\]', text)
    assert "COPY docker/entrypoint.sh /usr/local/bin/forklab-entrypoint" in text
    for source in re.findall(r"^COPY (\S+) \./", text, flags=re.MULTILINE):
        assert (REPO / source).exists(), source
    assert re.search(rf"^EXPOSE {' '.join(NODE_PORTS)}$", text, flags=re.MULTILINE)
    env = dict(re.findall(r"(FORKLAB_\w+)=(\S+)", text))
    assert set(env) - {"FORKLAB_PYTHON"} <= NODE_VARIABLES
    assert env["FORKLAB_LISTEN"].endswith(NODE_PORTS[0])
    assert env["FORKLAB_RPC_LISTEN"].endswith(NODE_PORTS[1])
    assert "USER forklab" in text
    ignore = (DOCKER / "Dockerfile.dockerignore").read_text().split()
    assert "!docker/entrypoint.sh" in ignore


# -- the entry point, outside Docker


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def entry_env(tmp_path: Path, port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FORKLAB_")}
    env.update(
        PYTHONPATH=str(REPO) + os.pathsep + env.get("PYTHONPATH", ""),
        HOME="/nonexistent/forklab-test-home",
        FORKLAB_PYTHON=sys.executable,
        FORKLAB_NETWORK="regtest",
        FORKLAB_DATADIR=str(tmp_path / "data"),
        FORKLAB_LISTEN="127.0.0.1:0",
        FORKLAB_RPC_LISTEN=f"127.0.0.1:{port}",
        FORKLAB_RPC_USER="forklab",
        FORKLAB_RPC_PASSWORD="test-password",
    )
    env.update(extra)
    return env


def entrypoint(env: dict[str, str], *args: str, log: Path | None = None) -> subprocess.Popen[bytes]:
    out = log.open("ab") if log is not None else subprocess.DEVNULL
    try:
        return subprocess.Popen(
            ["sh", str(ENTRYPOINT), *args], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    finally:
        if log is not None and not isinstance(out, int):
            out.close()


def healthy(env: dict[str, str]) -> bool:
    done = subprocess.run(["sh", str(ENTRYPOINT), "healthcheck"], env=env, timeout=30, check=False)
    return done.returncode == 0


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_the_entrypoint_runs_a_node_and_a_miner_outside_docker(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    port = free_port()
    env = entry_env(tmp_path, port)
    assert not healthy(env)  # nothing answers yet

    node = entrypoint(env, log=tmp_path / "node.log")
    processes.append(node)
    wait_until(lambda: healthy(env), timeout=30)
    rpc = RpcClient(f"http://127.0.0.1:{port}", "forklab", "test-password")
    assert rpc.call("getblockchaininfo")["chain"] == "regtest"

    miner_env = entry_env(
        tmp_path,
        port,
        FORKLAB_ROLE="miner",
        FORKLAB_MINER_RPC=f"http://127.0.0.1:{port}",
        FORKLAB_MINER_NAME="m1",
        FORKLAB_BLOCK_TIME="0.1",
        FORKLAB_MINER_SHARE="0.5",
    )
    miner = entrypoint(miner_env, log=tmp_path / "miner.log")
    processes.append(miner)
    wait_until(lambda: rpc.call("getblockcount") >= 3, timeout=30)
    tip = rpc.call("getblock", rpc.call("getbestblockhash"), 2)
    assert tip["tx"][0]["vout"][0]["address"] == wallets.address(REGTEST, "m1")
    assert healthy(miner_env)
    assert "test-password" not in " ".join(_cmdline(miner.pid))  # it stays in the environment

    for proc in (miner, node):
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0, (
            tmp_path / f"{'miner' if proc is miner else 'node'}.log"
        ).read_text()
    assert not healthy(env)
    assert "forklab node ready: network regtest" in (tmp_path / "node.log").read_text()
    assert "forklab devnet miner ready: m1" in (tmp_path / "miner.log").read_text()


def _cmdline(pid: int) -> list[str]:
    """The arguments of ``pid`` and of its exec'd program (the script execs Python)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            words = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return []
        if b"node.devnet" in words:
            break
        time.sleep(0.05)
    return [w.decode() for w in words]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"FORKLAB_ROLE": "pool"}, "FORKLAB_ROLE must be node or miner, not 'pool'"),
        ({"FORKLAB_ROLE": "miner"}, "set FORKLAB_MINER_RPC"),
        (
            {"FORKLAB_ROLE": "miner", "FORKLAB_MINER_RPC": "http://x:1", "FORKLAB_RPC_USER": ""},
            "set FORKLAB_RPC_USER and FORKLAB_RPC_PASSWORD",
        ),
        (
            {
                "FORKLAB_ROLE": "miner",
                "FORKLAB_MINER_RPC": "http://x:1",
                "FORKLAB_MINER_SHARE": "most",
            },
            "must be numbers",
        ),
    ],
)
def test_the_entrypoint_refuses_a_bad_role_or_miner_setup(
    tmp_path: Path, extra: dict[str, str], message: str
) -> None:
    env = entry_env(tmp_path, free_port(), **extra)
    done = subprocess.run(
        ["sh", str(ENTRYPOINT)], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 2
    assert message in done.stderr
