"""What ``forklab devnet up`` builds from its options, and what a second ``up`` may change.

* a new devnet takes the defaults (4 nodes in a ring, 1 miner, regtest, ports from 18600) and
  any option given, each checked with the reason when out of range;
* miners get equal shares unless told, and nodes n1, n2... in turn;
* a resumed devnet keeps its network, node count, wallets and ports (asking for others is
  refused, naming the way out), may change its topology at any time, and its miners only when
  none is running, while asking again for what it already has changes nothing;
* the dashboard listens 20 below the base port (18580: ``forklab dashboard``'s own default), on
  a free port with ``--base-port 0``, or where told; it can be left out, and changes at a resume
  only while it is stopped.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from node.devnet.plan import UpOptions, default_dashboard_port, new_state, resumed_state
from node.devnet.state import DashboardEntry, DevnetError, MinerEntry, NodeEntry

ROOT = Path("/devnets/d")


def test_a_new_devnet_takes_the_defaults() -> None:
    state = new_state(UpOptions())
    assert state.network == "regtest"
    assert state.topology == "ring"
    assert state.block_time == 5.0
    assert state.wallets == ("alice", "bob", "carol")
    assert state.nodes == tuple(
        NodeEntry(f"n{i + 1}", 18600 + 2 * i, 18601 + 2 * i) for i in range(4)
    )
    assert state.miners == (MinerEntry("m1", "n1", 1.0),)
    assert not state.funded
    assert state.partition is None
    assert state.dashboard == DashboardEntry(18580)


def test_miners_share_equally_and_take_the_nodes_in_turn() -> None:
    state = new_state(UpOptions(nodes=2, miners=3, base_port=0))
    assert [(m.name, m.node) for m in state.miners] == [("m1", "n1"), ("m2", "n2"), ("m3", "n1")]
    assert [m.share for m in state.miners] == pytest.approx([1 / 3] * 3)
    assert {(n.p2p_port, n.rpc_port) for n in state.nodes} == {(0, 0)}
    chosen = new_state(UpOptions(miner_shares=(0.7, 0.3), miner_nodes=("n3", "n3")))
    assert [(m.node, m.share) for m in chosen.miners] == [("n3", 0.7), ("n3", 0.3)]
    assert new_state(UpOptions(miners=0)).miners == ()


def test_the_dashboard_listens_below_the_nodes_or_where_told() -> None:
    assert new_state(UpOptions(base_port=20000)).dashboard == DashboardEntry(19980)
    assert new_state(UpOptions(base_port=0)).dashboard == DashboardEntry(0)
    assert new_state(UpOptions(dashboard_port=9000)).dashboard == DashboardEntry(9000)
    assert new_state(UpOptions(base_port=0, dashboard_port=0)).dashboard == DashboardEntry(0)
    assert new_state(UpOptions(dashboard=True)).dashboard == DashboardEntry(18580)
    assert new_state(UpOptions(dashboard=False)).dashboard is None
    # Ports the system chose are not a base port's: the dashboard takes a free one too.
    chosen = (NodeEntry("n1", 41234, 39871), NodeEntry("n2", 45120, 40002))
    assert default_dashboard_port(chosen) == 0


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        (UpOptions(nodes=0), "--nodes must be from 1 to 64"),
        (UpOptions(nodes=65), "--nodes must be from 1 to 64"),
        (UpOptions(miners=-1), "--miners must be from 0 to 64"),
        (UpOptions(network="main"), "--network must be one of regtest, demo"),
        (UpOptions(topology="star"), "unknown topology"),
        (UpOptions(block_time=0), "--block-time must be from 0.05"),
        (UpOptions(base_port=80), "--base-port 80"),
        (UpOptions(nodes=4, base_port=65530), "ports 65530 to 65537"),
        (UpOptions(wallets=()), "--wallets needs at least one name"),
        (UpOptions(wallets=("alice", "alice")), "names a wallet twice"),
        (UpOptions(wallets=("Alice",)), "wallet name 'Alice'"),
        (UpOptions(miners=2, miner_shares=(1.0,)), "gives 1 shares for 2 miners"),
        (UpOptions(miner_nodes=("n1", "n2")), "names 2 nodes for 1 miners"),
        (UpOptions(miner_nodes=("n9",)), "no node 'n9'"),
        (UpOptions(miner_shares=(1.0, 0.0)), "every share must be a positive number"),
        (UpOptions(dashboard_port=80), "--dashboard-port must be from 1024 to 65535"),
        (UpOptions(dashboard_port=65536), "--dashboard-port must be from 1024 to 65535"),
        (UpOptions(dashboard_port=18602), "18602 is the P2P port of n2"),
        (UpOptions(base_port=1030), "port 1010 .* below 1024; choose one with --dashboard-port"),
        (UpOptions(dashboard=False, dashboard_port=9000), "contradict each other"),
    ],
)
def test_bad_options_are_refused_with_the_reason(options: UpOptions, reason: str) -> None:
    with pytest.raises(DevnetError, match=reason):
        new_state(options)


OLD = replace(
    new_state(UpOptions(nodes=3, miners=2, block_time=2.0)),
    funded=True,
    miners=(MinerEntry("m1", "n1", 0.5, 101), MinerEntry("m2", "n2", 0.5, 102)),
)


def resume(options: UpOptions, *, running: bool = True) -> object:
    return resumed_state(options, OLD, root=ROOT, miners_running=running)


def test_asking_for_nothing_resumes_as_recorded() -> None:
    assert resume(UpOptions()) == OLD
    same = UpOptions(nodes=3, miners=2, block_time=2.0, network="regtest", base_port=18600)
    assert resume(same) == OLD  # the same values again change nothing, not even the pids


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        (UpOptions(network="demo"), "was made with --network regtest"),
        (UpOptions(nodes=4), "was made with --nodes 3"),
        (UpOptions(wallets=("dave",)), "was made with --wallets alice,bob,carol"),
        (UpOptions(base_port=20000), "was made with --base-port 18600"),
    ],
)
def test_what_a_devnet_was_made_with_cannot_change(options: UpOptions, reason: str) -> None:
    with pytest.raises(DevnetError, match=reason) as caught:
        resume(options)
    assert f"forklab devnet down --wipe --dir {ROOT}" in str(caught.value)


def test_the_topology_changes_at_any_time() -> None:
    assert resumed_state(UpOptions(topology="mesh"), OLD, root=ROOT, miners_running=True) == (
        replace(OLD, topology="mesh")
    )


@pytest.mark.parametrize(
    "options",
    [
        UpOptions(miners=1),
        UpOptions(miner_shares=(0.9, 0.1)),
        UpOptions(miner_nodes=("n3", "n3")),
        UpOptions(block_time=1.0),
        UpOptions(miner_backend="opencl"),
        UpOptions(seed=9),
    ],
)
def test_miners_change_only_while_none_runs(options: UpOptions) -> None:
    with pytest.raises(DevnetError, match="the miners are running"):
        resume(options)
    changed = resumed_state(options, OLD, root=ROOT, miners_running=False)
    assert changed != OLD
    assert all(m.pid is None for m in changed.miners)


def test_a_resumed_devnet_keeps_the_miner_settings_not_asked_for() -> None:
    moved = resumed_state(UpOptions(miner_nodes=("n3", "n3")), OLD, root=ROOT, miners_running=False)
    assert [(m.node, m.share) for m in moved.miners] == [("n3", 0.5), ("n3", 0.5)]
    reshared = resumed_state(UpOptions(miner_shares=(3, 1)), OLD, root=ROOT, miners_running=False)
    assert [(m.node, m.share) for m in reshared.miners] == [("n1", 0.75), ("n2", 0.25)]
    fewer = resumed_state(UpOptions(miners=1), OLD, root=ROOT, miners_running=False)
    assert fewer.miners == (MinerEntry("m1", "n1", 1.0),)


def test_the_dashboard_resumes_as_recorded_and_changes_only_while_stopped() -> None:
    running = replace(OLD, dashboard=DashboardEntry(18580, 103))
    for options in (UpOptions(), UpOptions(dashboard=True), UpOptions(dashboard_port=18580)):
        assert resumed_state(options, running, root=ROOT, miners_running=True) == running
    # 0 asks for any free port: the one recorded is one, so nothing changes.
    kept = resumed_state(UpOptions(dashboard_port=0), running, root=ROOT, miners_running=True)
    assert kept == running
    for options in (UpOptions(dashboard=False), UpOptions(dashboard_port=9000)):
        with pytest.raises(DevnetError, match="the dashboard is running on port 18580"):
            resumed_state(options, running, root=ROOT, miners_running=True, dashboard_running=True)
    stopped = resumed_state(UpOptions(dashboard_port=9000), running, root=ROOT, miners_running=True)
    assert stopped.dashboard == DashboardEntry(9000)
    off = resumed_state(UpOptions(dashboard=False), running, root=ROOT, miners_running=True)
    assert off.dashboard is None
    assert resumed_state(UpOptions(), off, root=ROOT, miners_running=True).dashboard is None
    back = resumed_state(UpOptions(dashboard=True), off, root=ROOT, miners_running=True)
    assert back.dashboard == DashboardEntry(18580)
    with pytest.raises(DevnetError, match="18601 is the RPC port of n1"):
        resumed_state(UpOptions(dashboard_port=18601), off, root=ROOT, miners_running=True)
