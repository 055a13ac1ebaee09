"""The devnet's paced miner: its timing, and real blocks a real node accepts.

* the waits between a miner's blocks are exponential with the configured mean (Poisson block
  arrivals at its hash power share), and repeat exactly for a seed;
* shares given as weights are normalised; bad ones are refused;
* a template from ``getblocktemplate``, with mempool transactions (a parent and its child),
  becomes a block the node takes as its tip, paying the miner and carrying its name;
* a search on work that went stale stops instead of finishing;
* the miner loop mines on a running node, paying its wallet, and stops when told;
* on a network harder than regtest the search is short and the block still valid.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from rpc_harness import NodeProcess, start_node, wait_until

from miner import CpuBackend
from miner.work import template_from_gbt
from node.core.address import decode_address
from node.core.block import Block
from node.core.params import REGTEST
from node.devnet import wallets
from node.devnet.miner import MinerSettings, PacedMiner, Pacer, solve
from node.devnet.plan import parse_shares
from node.devnet.state import DevnetError


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    process = start_node(tmp_path_factory.mktemp("devnet-miner") / "node")
    try:
        process.call("generatetoaddress", 101, process.call("getnewaddress"))
        yield process
    finally:
        process.terminate()


@pytest.fixture(scope="module")
def backend() -> Iterator[CpuBackend]:
    with CpuBackend(1) as cpu:
        yield cpu


# -- pacing


def test_waits_are_exponential_with_the_configured_mean() -> None:
    waits = [Pacer(2.0, seed=5).next_wait() for _ in range(1)]
    pacer = Pacer(2.0, seed=5)
    sample = [pacer.next_wait() for _ in range(20_000)]
    assert sample[0] == waits[0]
    # Mean and standard deviation of an exponential are both its mean; 20,000 draws put the
    # estimate within about 0.7% (one standard error), so 3% is a wide margin.
    assert statistics.fmean(sample) == pytest.approx(2.0, rel=0.03)
    assert statistics.pstdev(sample) == pytest.approx(2.0, rel=0.03)
    assert min(sample) >= 0
    assert Pacer(2.0, seed=6).next_wait() != waits[0]
    with pytest.raises(ValueError, match="positive"):
        Pacer(0, seed=1)


@pytest.mark.parametrize(
    ("text", "shares"),
    [("1", (1.0,)), ("0.6,0.4", (0.6, 0.4)), ("3,1", (0.75, 0.25)), ("1,1,2", (0.25, 0.25, 0.5))],
)
def test_shares_are_normalised_weights(text: str, shares: tuple[float, ...]) -> None:
    assert parse_shares(text) == pytest.approx(shares)


@pytest.mark.parametrize("text", ["", "0.5,0", "-1,2", "a,b", "1,,1", "inf"])
def test_bad_shares_are_refused(text: str) -> None:
    with pytest.raises(DevnetError, match="miner shares"):
        parse_shares(text)


# -- blocks


def pay(node: NodeProcess, amount: str) -> str:
    txid: str = node.call("sendtoaddress", node.call("getnewaddress"), amount)
    return txid


def test_a_template_becomes_the_tip(node: NodeProcess, backend: CpuBackend) -> None:
    parent = pay(node, "10")
    child = pay(node, "39")  # spends the parent's change: a dependency inside the template
    raw = node.call("getblocktemplate")
    assert {t["txid"] for t in raw["transactions"]} == {parent, child}
    payout = wallets.address(REGTEST, "m1")
    pubkey_hash = decode_address(payout, REGTEST.address_version)

    template = template_from_gbt(raw, pubkey_hash, b"forklab devnet m1")
    block = solve(template, backend)

    assert block is not None
    assert node.call("submitblock", block.serialize().hex()) is None
    assert node.call("getbestblockhash") == block.hash_hex
    shown = node.call("getblock", block.hash_hex, 2)
    assert [tx["txid"] for tx in shown["tx"][1:]] == [t["txid"] for t in raw["transactions"]]
    coinbase = shown["tx"][0]
    assert coinbase["vout"][0]["address"] == payout
    assert int(coinbase["vout"][0]["value"] * 100_000_000) == raw["coinbasevalue"]
    assert b"forklab devnet m1" in block.transactions[0].inputs[0].signature


def test_a_stale_search_stops(node: NodeProcess, backend: CpuBackend) -> None:
    raw = node.call("getblocktemplate")
    raw["bits"] = "1c00ffff"  # about 2^40 hashes: never found in this test
    template = template_from_gbt(raw, bytes(20), b"")
    started = time.monotonic()
    assert solve(template, backend, stale=lambda: True) is None
    assert time.monotonic() - started < 10


def test_the_miner_mines_on_its_node_until_stopped(node: NodeProcess, tmp_path: Path) -> None:
    start = node.call("getblockcount")
    settings = MinerSettings(
        name="m7",
        rpc_url=node.rpc_url,
        interval=0.05,
        seed=1,
        payout_wallet="m7",
        datadir=node.datadir,
    )
    with CpuBackend(1) as cpu:
        miner = PacedMiner(settings, cpu)
        params = miner.connect()
        payout = miner.payout_pubkey_hash(params)
        thread = threading.Thread(target=miner.run, args=(payout,))
        thread.start()
        try:
            wait_until(lambda: node.call("getblockcount") >= start + 5)
        finally:
            miner.stop()
            thread.join(10)
    assert not thread.is_alive()
    assert miner.blocks >= 5
    tip = node.call("getblock", node.call("getbestblockhash"), 2)
    assert tip["tx"][0]["vout"][0]["address"] == wallets.address(REGTEST, "m7")
    stopped_at = node.call("getblockcount")
    time.sleep(0.3)
    assert node.call("getblockcount") == stopped_at


def test_a_harder_network_still_gets_valid_blocks(tmp_path: Path, backend: CpuBackend) -> None:
    demo = start_node(tmp_path / "demo", "--network", "demo")
    try:
        raw = demo.call("getblocktemplate")
        assert raw["bits"] != "207fffff"  # demo's genesis difficulty: about 65,536 hashes
        payout = decode_address(demo.call("getnewaddress"), 0x1E)
        block = solve(template_from_gbt(raw, payout, b""), backend)
        assert isinstance(block, Block)
        assert demo.call("submitblock", block.serialize().hex()) is None
        assert demo.call("getblockcount") == 1
    finally:
        demo.terminate()
