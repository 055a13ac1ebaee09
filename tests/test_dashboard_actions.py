"""The dashboard's actions: what the page may ask for, and the terminal command shown for it.

* a catalogue of good requests and the action each becomes;
* a catalogue of bad requests, each refused with a message naming the field;
* the ``forklab devnet`` command of every action, which must parse with the devnet's own
  command line (so the class can paste it);
* without a devnet, the ``forklab rpc``/``forklab wallet`` commands, which must parse with
  forklab's own command line too.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from node.commands.devnet import register as register_devnet
from node.commands.rpc import register as register_rpc
from node.commands.wallet import register as register_wallet
from node.dashboard.actions import (
    Action,
    ActionError,
    Heal,
    Kill,
    Latency,
    Mine,
    Partition,
    Restart,
    RpcController,
    Send,
    parse_action,
)
from node.dashboard.devnet_control import devnet_argv
from node.dashboard.nodes import NodeApi, NodeEndpoint
from node.dashboard.sources import StaticSource

NODES = ("n1", "n2", "n3", "n4")
MINERS = ("m1",)


@pytest.mark.parametrize(
    ("name", "body", "action"),
    [
        ("mine", {"node": "n2"}, Mine("n2", 1)),
        ("mine", {"node": "n1", "blocks": 6}, Mine("n1", 6)),
        ("mine", {"node": "n1", "blocks": "3"}, Mine("n1", 3)),
        ("send", {"from": "alice", "to": "bob", "amount": "1.5"}, Send("alice", "bob", "1.5")),
        ("send", {"from": "alice", "to": "bob", "amount": 2}, Send("alice", "bob", "2")),
        (
            "send",
            {"from": "n1", "to": "n2", "amount": "0.00000001"},
            Send("n1", "n2", "0.00000001"),
        ),
        ("partition", {"groups": [["n1", "n2"]]}, Partition((("n1", "n2"), ("n3", "n4")))),
        (
            "partition",
            {"groups": [["n1"], ["n2", "n3"]]},
            Partition((("n1",), ("n2", "n3"), ("n4",))),
        ),
        (
            "partition",
            {"groups": [["n1", "n2"], ["n3", "n4"]]},
            Partition((("n1", "n2"), ("n3", "n4"))),
        ),
        ("heal", {}, Heal()),
        ("kill", {"node": "n3"}, Kill("n3")),
        ("kill", {"node": "m1"}, Kill("m1")),
        ("restart", {"node": "m1"}, Restart("m1")),
        ("latency", {"a": "n1", "b": "n4", "ms": 250}, Latency("n1", "n4", 250)),
        ("latency", {"a": "n1", "b": "n4", "ms": 0}, Latency("n1", "n4", 0)),
    ],
)
def test_good_requests_become_actions(name: str, body: dict[str, Any], action: Action) -> None:
    assert parse_action(name, body, NODES, MINERS) == action


@pytest.mark.parametrize(
    ("name", "body", "message"),
    [
        ("mine", {}, "node"),
        ("mine", {"node": "n9"}, "node"),
        ("mine", {"node": "m1"}, "node"),
        ("mine", {"node": "n1", "blocks": 0}, "blocks"),
        ("mine", {"node": "n1", "blocks": 1001}, "blocks"),
        ("mine", {"node": "n1", "blocks": True}, "blocks"),
        ("mine", {"node": "n1", "blocks": 1.5}, "blocks"),
        ("send", {"from": "alice", "to": "bob"}, "amount"),
        ("send", {"from": "alice", "to": "bob", "amount": "0"}, "amount"),
        ("send", {"from": "alice", "to": "bob", "amount": "-1"}, "amount"),
        ("send", {"from": "alice", "to": "bob", "amount": "1.000000001"}, "amount"),
        ("send", {"from": "alice", "to": "bob", "amount": "NaN"}, "amount"),
        ("send", {"from": "alice", "to": "bob", "amount": "lots"}, "amount"),
        ("send", {"from": "alice", "to": "bob", "amount": True}, "amount"),
        ("send", {"from": "al ice", "to": "bob", "amount": "1"}, "from"),
        ("send", {"from": "alice", "to": "", "amount": "1"}, "to"),
        ("partition", {}, "groups"),
        ("partition", {"groups": "n1,n2"}, "groups"),
        ("partition", {"groups": [["n1", "n9"]]}, "no node"),
        ("partition", {"groups": [["n1"], ["n1"]]}, "two groups"),
        ("partition", {"groups": [list(NODES)]}, "two sides"),
        ("partition", {"groups": [[]]}, "two sides"),
        ("kill", {"node": "n0"}, "node"),
        ("latency", {"a": "n1", "b": "n1", "ms": 10}, "different"),
        ("latency", {"a": "n1", "b": "n2", "ms": -1}, "ms"),
        ("latency", {"a": "n1", "b": "n2", "ms": 60_001}, "ms"),
        ("latency", {"a": "n1", "ms": 10}, "b"),
    ],
)
def test_bad_requests_are_refused_naming_the_field(
    name: str, body: dict[str, Any], message: str
) -> None:
    with pytest.raises(ActionError, match=message) as refused:
        parse_action(name, body, NODES, MINERS)
    assert refused.value.status == 400


def test_an_unknown_action_is_not_found() -> None:
    with pytest.raises(ActionError, match="no action 'explode'") as refused:
        parse_action("explode", {}, NODES)
    assert refused.value.status == 404


def _parse(register: Any, argv: list[str]) -> Any:
    import argparse

    parser = argparse.ArgumentParser(prog="forklab")
    register(parser.add_subparsers(dest="command", required=True))
    assert argv[0] == "forklab"
    return parser.parse_args(argv[1:])


@pytest.mark.parametrize(
    ("action", "command", "parsed"),
    [
        (
            Mine("n1", 3),
            "forklab devnet mine n1 3 --dir /tmp/my devnet",
            {"node": "n1", "count": 3},
        ),
        (
            Send("alice", "bob", "1.5"),
            "forklab devnet send alice bob 1.5 --dir /tmp/my devnet",
            {"source": "alice", "target": "bob", "amount": "1.5"},
        ),
        (
            Partition((("n1", "n2"), ("n3", "n4"))),
            "forklab devnet partition n1,n2 n3,n4 --dir /tmp/my devnet",
            {"groups": ["n1,n2", "n3,n4"]},
        ),
        (Heal(), "forklab devnet heal --no-wait --dir /tmp/my devnet", {"no_wait": True}),
        (Kill("n2"), "forklab devnet kill n2 --dir /tmp/my devnet", {"name": "n2"}),
        (Restart("m1"), "forklab devnet restart m1 --dir /tmp/my devnet", {"name": "m1"}),
        (
            Latency("n1", "n3", 120),
            "forklab devnet latency n1 n3 120 --dir /tmp/my devnet",
            {"a": "n1", "b": "n3", "ms": 120},
        ),
    ],
)
def test_each_action_shows_the_devnet_command_that_does_the_same(
    action: Action, command: str, parsed: dict[str, Any]
) -> None:
    argv = devnet_argv(action, Path("/tmp/my devnet"))
    assert shlex.split(shlex.join(argv)) == argv
    assert " ".join(argv) == command
    args = _parse(register_devnet, argv)
    assert args.dir == Path("/tmp/my devnet")
    for key, value in parsed.items():
        assert getattr(args, key) == value


class FixedNodes:
    """Four nodes as the monitor would list them, each with a known payout address."""

    def __init__(self) -> None:
        self._endpoints = {
            name: NodeEndpoint(
                name,
                f"http://127.0.0.1:{18443 + 100 * i}",
                Path(f"/data/{name}"),
                address=f"addr-{name}",
            )
            for i, name in enumerate(NODES)
        }

    def endpoints(self) -> Mapping[str, NodeEndpoint]:
        return self._endpoints

    def api(self, name: str) -> NodeApi:
        raise AssertionError("building a command must not call a node")

    def p2p_address(self, name: str) -> str | None:
        return f"127.0.0.1:{18444 + 100 * NODES.index(name)}"


@pytest.mark.parametrize(
    ("action", "commands"),
    [
        (
            Mine("n2", 2),
            [
                "forklab rpc --rpc http://127.0.0.1:18543 --datadir /data/n2 "
                "generatetoaddress 2 addr-n2"
            ],
        ),
        (
            Send("n1", "n3", "0.5"),
            ["forklab wallet send --rpc http://127.0.0.1:18443 --datadir /data/n1 addr-n3 0.5"],
        ),
        (
            Partition((("n1", "n2"), ("n3", "n4"))),
            [
                "forklab rpc --rpc http://127.0.0.1:18443 --datadir /data/n1 setlinkpolicy "
                '\'["127.0.0.1:18644", "127.0.0.1:18744"]\'',
                "forklab rpc --rpc http://127.0.0.1:18543 --datadir /data/n2 setlinkpolicy "
                '\'["127.0.0.1:18644", "127.0.0.1:18744"]\'',
                "forklab rpc --rpc http://127.0.0.1:18643 --datadir /data/n3 setlinkpolicy "
                '\'["127.0.0.1:18444", "127.0.0.1:18544"]\'',
                "forklab rpc --rpc http://127.0.0.1:18743 --datadir /data/n4 setlinkpolicy "
                '\'["127.0.0.1:18444", "127.0.0.1:18544"]\'',
            ],
        ),
        (
            Heal(),
            [
                f"forklab rpc --rpc http://127.0.0.1:{18443 + 100 * i} --datadir /data/{n} "
                "setlinkpolicy '[]'"
                for i, n in enumerate(NODES)
            ],
        ),
        (
            Latency("n1", "n2", 80),
            [
                "forklab rpc --rpc http://127.0.0.1:18443 --datadir /data/n1 --named setlinkpolicy "
                "'latency_ms={\"127.0.0.1:18544\": 80}'",
                "forklab rpc --rpc http://127.0.0.1:18543 --datadir /data/n2 --named setlinkpolicy "
                "'latency_ms={\"127.0.0.1:18444\": 80}'",
            ],
        ),
    ],
)
async def test_without_a_devnet_the_commands_are_the_nodes_own_rpc_calls(
    action: Action, commands: list[str]
) -> None:
    controller = RpcController(FixedNodes(), StaticSource(list(FixedNodes().endpoints().values())))
    text = await controller.command(action)
    assert text.split("\n") == commands
    for line in commands:
        argv = shlex.split(line)
        register = register_wallet if argv[1] == "wallet" else register_rpc
        _parse(register, argv)


async def test_without_a_devnet_kill_and_restart_are_refused() -> None:
    controller = RpcController(FixedNodes(), StaticSource(list(FixedNodes().endpoints().values())))
    assert not controller.supports(Kill) and not controller.supports(Restart)
    with pytest.raises(ActionError, match="needs a devnet") as refused:
        await controller.command(Kill("n1"))
    assert refused.value.status == 409
