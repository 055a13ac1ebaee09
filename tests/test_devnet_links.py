"""``getlinkpolicy`` and ``setlinkpolicy``: the partitions and latency the devnet drives, on
two real node processes.

* a blocked address is dropped at once and refused both ways; unblocked, the link comes back;
* a latency delays what the node sends to that peer, measured on a block's way across;
* each part given replaces that part, a part left out stays, addresses are normalised;
* a bad entry is refused with bitcoind's codes and changes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from rpc_harness import NodeProcess, node_factory, start_node, wait_until

from node.rpc.client import RpcCallError

EMPTY: dict[str, object] = {"blocked": [], "latency_ms": {}}


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[Callable[..., NodeProcess]]:
    yield from node_factory(tmp_path)


@pytest.fixture(scope="module")
def lone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    """A node without peers, for the checks of parameters; each test leaves its policy empty."""
    process = start_node(tmp_path_factory.mktemp("links") / "lone")
    try:
        yield process
    finally:
        process.terminate()


@pytest.fixture
def pair(nodes: Callable[..., NodeProcess]) -> tuple[NodeProcess, NodeProcess]:
    a = nodes("a")
    b = nodes("b")
    a.call("addnode", b.p2p_address, "add")
    wait_until(lambda: a.call("getconnectioncount") == 1 == b.call("getconnectioncount"))
    return a, b


def test_a_blocked_peer_is_cut_off_until_unblocked(pair: tuple[NodeProcess, NodeProcess]) -> None:
    a, b = pair
    assert a.call("getlinkpolicy") == EMPTY

    assert a.call("setlinkpolicy", [b.p2p_address]) == {
        "blocked": [b.p2p_address],
        "latency_ms": {},
    }
    wait_until(lambda: a.call("getconnectioncount") == 0 == b.call("getconnectioncount"))
    b.call("addnode", a.p2p_address, "onetry")  # b dials a: refused by a's policy
    a.call("generatetoaddress", 2, a.call("getnewaddress"))
    time.sleep(0.5)
    assert a.call("getconnectioncount") == 0
    assert b.call("getblockcount") == 0

    assert a.call("setlinkpolicy", []) == EMPTY
    wait_until(lambda: a.call("getconnectioncount") == 1)  # a keeps redialling b (addnode)
    wait_until(lambda: b.call("getblockcount") == 2)


def test_a_latency_delays_what_the_node_sends(pair: tuple[NodeProcess, NodeProcess]) -> None:
    a, b = pair
    address = a.call("getnewaddress")

    def relay_seconds() -> float:
        height = b.call("getblockcount")
        a.call("generatetoaddress", 1, address)
        started = time.monotonic()
        wait_until(lambda: b.call("getblockcount") > height)
        return time.monotonic() - started

    assert a.call("setlinkpolicy", None, {b.p2p_address: 600}) == {
        "blocked": [],
        "latency_ms": {b.p2p_address: 600},
    }
    assert relay_seconds() >= 0.55
    a.call("setlinkpolicy", None, {})
    assert relay_seconds() < 0.55


def test_each_part_replaces_only_itself(lone: NodeProcess) -> None:
    a = lone
    a.call("setlinkpolicy", ["127.0.0.1:1", ":2"], {"127.0.0.1:3": 5})
    assert a.call("getlinkpolicy") == {
        "blocked": ["127.0.0.1:1", "127.0.0.1:2"],
        "latency_ms": {"127.0.0.1:3": 5},
    }
    a.client().call_named("setlinkpolicy", {"blocked": ["127.0.0.1:2"]})
    assert a.call("getlinkpolicy") == {
        "blocked": ["127.0.0.1:2"],
        "latency_ms": {"127.0.0.1:3": 5},
    }
    a.client().call_named("setlinkpolicy", {"latency_ms": {"[::1]:4": 7}})
    assert a.call("getlinkpolicy") == {"blocked": ["127.0.0.1:2"], "latency_ms": {"[::1]:4": 7}}
    assert a.call("setlinkpolicy", [], {}) == EMPTY


@pytest.mark.parametrize(
    ("params", "code", "message"),
    [
        ([["nowhere"]], -8, "blocked\\[0\\]"),
        ([["127.0.0.1:1", "127.0.0.1:99999"]], -8, "blocked\\[1\\]"),
        ([[1]], -3, "string"),
        (["127.0.0.1:1"], -3, "array"),
        ([None, {"127.0.0.1:1": -1}], -8, "at least 0"),
        ([None, {"127.0.0.1:1": 600_001}], -8, "at most 600000"),
        ([None, {"127.0.0.1:1": "5"}], -3, "number"),
        ([None, {"127.0.0.1:1": 1.5}], -3, "number"),
        ([None, {"somewhere": 5}], -8, "latency_ms"),
        ([["127.0.0.1:5"], {"127.0.0.1:1": -1}], -8, "at least 0"),
    ],
)
def test_bad_entries_are_refused_and_change_nothing(
    lone: NodeProcess, params: list[object], code: int, message: str
) -> None:
    a = lone
    with pytest.raises(RpcCallError, match=message) as caught:
        a.call("setlinkpolicy", *params)
    assert caught.value.code == code
    assert a.call("getlinkpolicy") == EMPTY
