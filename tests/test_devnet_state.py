"""The devnet's state file: what every ``forklab devnet`` command reads and writes.

* a state survives the round trip to JSON and back, field for field;
* a file of another format, or malformed in any field, is refused with a DevnetError naming
  the problem, and arbitrary JSON never raises anything else;
* the default directory follows XDG and never the current directory;
* latency entries are per link, in either order of its ends;
* the dashboard is a process like the nodes and miners, found by its name; a state file written
  before devnets had one reads as a devnet without one.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.devnet.state import (
    DashboardEntry,
    DevnetError,
    DevnetPaths,
    DevnetState,
    Latency,
    MinerEntry,
    NodeEntry,
    default_dir,
    load,
    save,
)

STATE = DevnetState(
    network="demo",
    seed=7,
    topology="random:2",
    block_time=2.5,
    wallets=("alice", "bob"),
    nodes=(NodeEntry("n1", 18600, 18601, 4242), NodeEntry("n2", 18602, 18603, None)),
    miners=(MinerEntry("m1", "n2", 0.75, 4343), MinerEntry("m2", "n1", 0.25, None)),
    miner_backend="auto",
    funded=True,
    partition=(("n1",), ("n2",)),
    latency=(Latency("n1", "n2", 150),),
    dashboard=DashboardEntry(18580, 4444),
)


def test_a_state_survives_the_round_trip(tmp_path: Path) -> None:
    assert DevnetState.from_json(json.loads(json.dumps(STATE.to_json()))) == STATE
    paths = DevnetPaths(tmp_path)
    assert load(paths) is None
    save(paths, STATE)
    assert load(paths) == STATE
    assert not list(tmp_path.glob("*.tmp"))


def broken(**changes: Any) -> dict[str, Any]:
    data = STATE.to_json()
    data.update(changes)
    return data


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ([], "not a forklab-devnet/1 state file"),
        (broken(format="forklab-devnet/2"), "not a forklab-devnet/1"),
        (broken(network="main"), "network"),
        (broken(seed="7"), "seed"),
        (broken(seed=True), "seed"),
        (broken(block_time=None), "block_time"),
        (broken(wallets="alice"), "wallets"),
        (broken(funded=1), "funded"),
        (broken(nodes=[{"name": "n1", "p2p_port": 1, "rpc_port": 2}]), "lacks 'pid'"),
        (broken(nodes=[{"name": "n1", "p2p_port": "1", "rpc_port": 2, "pid": None}]), "p2p"),
        (broken(miners=[["m1"]]), "miners"),
        (broken(partition=[["n1"], "n2"]), "partition"),
        (broken(latency=[{"a": "n1", "b": "n2"}]), "lacks 'ms'"),
        (broken(dashboard=18580), "dashboard"),
        (broken(dashboard={"port": "18580", "pid": None}), "dashboard port"),
        (broken(dashboard={"port": 18580}), "lacks 'pid'"),
    ],
)
def test_malformed_states_are_refused_with_the_reason(data: Any, reason: str) -> None:
    with pytest.raises(DevnetError, match=reason):
        DevnetState.from_json(data)


def test_a_file_that_is_not_json_is_refused(tmp_path: Path) -> None:
    paths = DevnetPaths(tmp_path)
    paths.state_file.write_text("{nope")
    with pytest.raises(DevnetError, match="not JSON"):
        load(paths)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)


@given(st.dictionaries(st.sampled_from(list(STATE.to_json())), JSON))
def test_arbitrary_json_raises_only_devnet_errors(changes: dict[str, Any]) -> None:
    with contextlib.suppress(DevnetError):
        DevnetState.from_json(broken(**changes))


def test_the_default_directory_follows_xdg() -> None:
    assert default_dir({"XDG_STATE_HOME": "/x/state"}) == Path("/x/state/forklab/devnet")
    assert default_dir({}) == Path.home() / ".local" / "state" / "forklab" / "devnet"
    assert default_dir({"XDG_STATE_HOME": ""}).is_absolute()


def test_a_latency_belongs_to_a_link_whichever_end_is_named_first() -> None:
    state = STATE.with_latency("n2", "n1", 40)
    assert state.latency == (Latency("n2", "n1", 40),)
    assert state.latency_between("n1", "n2") == 40
    assert state.with_latency("n1", "n2", 0).latency == ()


def test_unknown_names_are_refused_with_the_known_ones() -> None:
    with pytest.raises(DevnetError, match="nodes: n1, n2"):
        STATE.node("n3")
    with pytest.raises(DevnetError, match="miners: m1, m2"):
        STATE.miner("m9")


def test_a_state_file_from_before_the_dashboard_has_none() -> None:
    data = STATE.to_json()
    del data["dashboard"]
    assert DevnetState.from_json(data) == replace(STATE, dashboard=None)
    without = replace(STATE, dashboard=None)
    assert "dashboard" not in [p.name for p in without.processes]
    with pytest.raises(DevnetError, match="no dashboard; add one with: forklab devnet up --dash"):
        without.process("dashboard")


def test_the_dashboard_is_a_process_found_by_its_name() -> None:
    assert [p.name for p in STATE.processes] == ["n1", "n2", "m1", "m2", "dashboard"]
    assert STATE.process("dashboard") == DashboardEntry(18580, 4444)
    assert STATE.dashboard is not None and STATE.dashboard.url == "http://127.0.0.1:18580"
    assert DashboardEntry(0).url is None  # a port the system will choose: not known yet
    with pytest.raises(DevnetError, match=r"\(n1, n2, m1, m2, dashboard\)"):
        STATE.process("n9")


def test_pids_are_set_and_cleared_by_name() -> None:
    state = STATE.with_pid("dashboard", 99).with_pid("n2", 98).with_pid("m2", 97)
    assert [p.pid for p in state.processes] == [4242, 98, 4343, 97, 99]
    assert [p.pid for p in state.without_pids([98, 99]).processes] == [4242, None, 4343, 97, None]
    assert {p.pid for p in state.without_pids().processes} == {None}
