"""``forklab mine`` and its RPC sources against real ``forklab node`` processes on regtest.

* with getblocktemplate, the miner's blocks become the tip and their coinbase pays
  ``--address`` the whole ``coinbasevalue`` with the miner's message; the JSON log says so;
* with getwork, the blocks pay the node's ``mining_address``;
* a long poll (gbt), the ``/events`` stream or polling (getwork) brings new work within a second
  of a block mined elsewhere (``generatetoaddress``);
* blocks the node refuses are reported with its reason: ``bad-prevblk`` for a parent
  invalidated meanwhile (``submitblock``), ``stale`` for getwork, which says only ``false``;
* mistakes are one line and a status, before any mining: an address of another network,
  credentials the node refuses, ``--address`` with getwork, gbt without an address.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Callable, Iterator
from decimal import Decimal

import pytest
from blocktools import key, pkh
from mining_harness import records
from rpc_harness import NodeProcess, run_cli, start_node

from miner import CpuBackend
from miner.loop import Miner
from miner.rpc import (
    EventStreamTips,
    GbtSource,
    GetworkSource,
    NodeRpc,
    PolledTips,
    datadir_credentials,
    fixed_credentials,
)
from miner.search import search_work
from miner.source import WorkSource
from miner.status import JsonReporter
from miner.work import HeaderWork, TemplateWork, Work
from node.core.address import encode_address
from node.core.hashing import hash_from_hex
from node.core.params import DEMO, REGTEST

PAYEE = encode_address(pkh(key("rpc test miner")), REGTEST.address_version)
NODE_PAYEE = encode_address(pkh(key("rpc test node")), REGTEST.address_version)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    process = start_node(
        tmp_path_factory.mktemp("mining-rpc") / "node", "--mining-address", NODE_PAYEE
    )
    try:
        yield process
    finally:
        process.terminate()


@pytest.fixture(scope="module")
def backend() -> Iterator[CpuBackend]:
    with CpuBackend(1) as cpu:
        yield cpu


def mine(node: NodeProcess, *args: str) -> tuple[int, list[dict[str, object]], str]:
    result = run_cli(
        "mine", "--rpc", node.rpc_url, "--datadir", str(node.datadir), "--backend", "cpu", *args
    )
    return result.status, records(result.stdout) if result.status == 0 else [], result.stderr


def rpc(node: NodeProcess) -> NodeRpc:
    return NodeRpc(node.rpc_url, datadir_credentials(node.datadir))


# -- blocks


def test_getblocktemplate_blocks_pay_the_address(node: NodeProcess) -> None:
    start = node.call("getblockcount")
    status, log, stderr = mine(node, "--address", PAYEE, "--blocks", "3", "--json")
    assert status == 0, stderr
    assert [r["event"] for r in log] == ["started"] + ["work", "block"] * 3 + ["stopped"]
    started = log[0]
    assert started["protocol"] == "gbt" and started["payout"] == PAYEE
    assert started["node"] == node.rpc_url and started["network"] == "regtest"
    found = [r for r in log if r["event"] == "block"]
    assert [r["height"] for r in found] == [start + 1, start + 2, start + 3]
    assert all(r["accepted"] for r in found)
    assert node.call("getbestblockhash") == found[-1]["hash"]
    for record in found:
        block = node.call("getblock", record["hash"], 2)
        coinbase = block["tx"][0]
        assert [out["address"] for out in coinbase["vout"]] == [PAYEE]
        subsidy = Decimal(REGTEST.subsidy(block["height"])) / 100_000_000
        assert coinbase["vout"][0]["value"] == subsidy
        assert bytes.fromhex(coinbase["vin"][0]["coinbase"]).endswith(b"forklab mine")
    assert log[-1]["why"] == "blocks" and log[-1]["accepted"] == 3


def test_getwork_blocks_pay_the_nodes_mining_address(node: NodeProcess) -> None:
    status, log, stderr = mine(node, "--protocol", "getwork", "--blocks", "2", "--json")
    assert status == 0, stderr
    assert log[0]["protocol"] == "getwork" and log[0]["payout"] is None
    found = [r for r in log if r["event"] == "block"]
    assert len(found) == 2 and all(r["accepted"] for r in found)
    for record in found:
        coinbase = node.call("getblock", record["hash"], 2)["tx"][0]
        assert [out["address"] for out in coinbase["vout"]] == [NODE_PAYEE]


def test_a_message_goes_into_the_coinbase(node: NodeProcess) -> None:
    status, log, stderr = mine(
        node, "--address", PAYEE, "--blocks", "1", "--json", "--message", "hello from a test"
    )
    assert status == 0, stderr
    block_hash = next(r["hash"] for r in log if r["event"] == "block")
    coinbase = node.call("getblock", block_hash, 2)["tx"][0]
    assert bytes.fromhex(coinbase["vin"][0]["coinbase"]).endswith(b"hello from a test")


# -- news of a new tip


async def new_work_latency(node: NodeProcess, source: WorkSource) -> tuple[float, Work, Work]:
    """Seconds from a block mined elsewhere to the source's new work; the old and new work."""
    await source.start()
    work = await source.fetch()
    change = asyncio.create_task(source.next_change(work))
    await asyncio.sleep(0.3)  # the long poll, stream or poll is under way
    assert not change.done()
    await asyncio.to_thread(node.call, "generatetoaddress", 1, PAYEE)
    mined = time.monotonic()
    new = await asyncio.wait_for(change, 5)
    return time.monotonic() - mined, work, new


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda r: GbtSource(r, PAYEE), id="gbt-long-poll"),
        pytest.param(GetworkSource, id="getwork-event-stream"),
        pytest.param(lambda r: GetworkSource(r, tips=PolledTips(r)), id="getwork-polling"),
    ],
)
async def test_a_block_from_elsewhere_brings_new_work_within_a_second(
    node: NodeProcess, make: Callable[[NodeRpc], WorkSource]
) -> None:
    source = make(rpc(node))
    try:
        latency, old, new = await new_work_latency(node, source)
    finally:
        await source.close()
    assert latency < 1.0
    assert new.height == old.height + 1
    assert new.prev_hash == hash_from_hex(node.call("getbestblockhash"))
    assert (
        type(new)
        is type(old)
        is (HeaderWork if isinstance(source, GetworkSource) else TemplateWork)
    )


async def test_getwork_uses_the_event_stream_when_the_node_serves_one(node: NodeProcess) -> None:
    source = GetworkSource(rpc(node))
    try:
        await source.start()
        watch = source.tips
        assert isinstance(watch, EventStreamTips)
        assert watch.tip == hash_from_hex(node.call("getbestblockhash"))  # from its hello
    finally:
        await source.close()


# -- refusals


async def test_submitblock_refusals_are_reported_with_the_nodes_reason(
    node: NodeProcess, backend: CpuBackend
) -> None:
    node.call("generatetoaddress", 1, PAYEE)
    parent = node.call("getbestblockhash")
    stream = io.StringIO()
    source = GbtSource(rpc(node), PAYEE)
    miner = Miner(source, backend, reporter=JsonReporter(stream))
    try:
        await source.start()
        work = await source.fetch()
        await asyncio.to_thread(node.call, "invalidateblock", parent)
        result = await asyncio.to_thread(search_work, work, backend)
        assert result.solution is not None
        verdict = await miner.submit(work, result.solution)
    finally:
        await source.close()
        node.call("reconsiderblock", parent)
    assert not verdict.accepted and verdict.reason == "bad-prevblk"
    [report] = records(stream.getvalue())
    assert report["event"] == "block" and report["accepted"] is False
    assert report["reason"] == "bad-prevblk" and report["hash"] == result.solution.hash_hex
    assert miner.rejected == 1


async def test_a_refused_getwork_unit_is_reported_stale(
    node: NodeProcess, backend: CpuBackend
) -> None:
    source = GetworkSource(rpc(node), tips=PolledTips(rpc(node)))
    try:
        await source.start()
        work = await source.fetch()
        await asyncio.to_thread(node.call, "generatetoaddress", 1, PAYEE)
        result = await asyncio.to_thread(search_work, work, backend)
        assert result.solution is not None
        verdict = await source.submit(result.solution)
    finally:
        await source.close()
    assert not verdict.accepted and verdict.reason == "stale"


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (
            ["--address", encode_address(pkh(key("x")), DEMO.address_version)],
            1,
            "is not a regtest address",
        ),
        (["--address", "not-an-address"], 1, "is not a regtest address"),
        (["--protocol", "getwork", "--address", PAYEE], 2, "pay the node's own mining address"),
        (["--protocol", "gbt"], 2, "--address is required"),
        (["--address", PAYEE, "--message", "x" * 89], 2, "at most 88 bytes"),
    ],
)
def test_mistakes_are_one_line_before_any_mining(
    node: NodeProcess, args: list[str], status: int, message: str
) -> None:
    height = node.call("getblockcount")
    code, _, stderr = mine(node, *args)
    assert code == status and message in stderr
    assert "Traceback" not in stderr
    assert node.call("getblockcount") == height


def test_refused_credentials_end_the_run(node: NodeProcess) -> None:
    result = run_cli(
        "mine", "--rpc", node.rpc_url, "--rpc-user", "who", "--rpc-password", "guess",
        "--address", PAYEE, "--backend", "cpu",
    )  # fmt: skip
    assert result.status == 1
    assert "refused the RPC credentials" in result.stderr and "Traceback" not in result.stderr


async def test_fixed_credentials_reach_the_node(node: NodeProcess) -> None:
    """The cookie's pair given as a user and password: what ``--rpc-user`` sends."""
    user, password = datadir_credentials(node.datadir)()
    client = NodeRpc(node.rpc_url, fixed_credentials(user, password))
    try:
        assert await client.call("getblockcount") == node.call("getblockcount")
    finally:
        await client.close()
