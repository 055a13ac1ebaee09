"""The mining loop against an in-process Node (no HTTP), with the real CPU backend.

* blocks mined through ``NodeSource`` are accepted, their coinbase pays the miner's address the
  whole subsidy and carries its message, and the JSON log tells the story in order;
* when a header's nonce range is spent the coinbase extranonce rolls: with a tiny range on the
  demo network's target, the block found is the first hit in the loop's order (every earlier
  roll and nonce checked by brute force, with hashlib, outside the miner's code);
* a new tip from elsewhere (``invalidateblock`` of the tip while the miner is deep in a search
  it cannot finish) makes it abandon the stale work in well under a second, then mine on the
  new tip; the status line shows the search meanwhile;
* a block the node refuses is reported with the node's reason (``bad-prevblk``) and counted;
* a stop ends the run within one backend call, with the summary.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from blocktools import ChainBuilder, key, pkh
from mining_harness import HARD, hard_node, records
from p2p_harness import start_node, wait_until

from miner import CpuBackend
from miner.inprocess import NodeSource
from miner.loop import Miner
from miner.search import search_work
from miner.source import WorkSource
from miner.status import (
    BlockFound,
    JsonReporter,
    MinerEvent,
    NewWork,
    Reporter,
    TextReporter,
    WorkReason,
    status_line,
)
from node.chainstate import ChainState
from node.core.address import encode_address
from node.core.block import Block
from node.core.errors import ForklabError
from node.core.hashing import hash_from_hex, sha256d
from node.core.header import bits_to_target
from node.core.mempool import Mempool
from node.core.params import DEMO, REGTEST, NetworkParams
from node.core.tx import TxOut, make_coinbase
from node.node import Node

MINER_KEY = key("in-process miner")


def address_on(params: NetworkParams) -> str:
    return encode_address(pkh(MINER_KEY), params.address_version)


class Recorder(Reporter):
    """Every event with the monotonic time it was reported at."""

    def __init__(self) -> None:
        self.events: list[tuple[float, MinerEvent]] = []

    def report(self, event: MinerEvent) -> None:
        self.events.append((time.monotonic(), event))

    def of(self, kind: type[MinerEvent]) -> list[MinerEvent]:
        return [e for _, e in self.events if isinstance(e, kind)]


@pytest.fixture(scope="module")
def backend() -> Iterator[CpuBackend]:
    with CpuBackend(2) as cpu:
        yield cpu


async def block_at(node: Node, height: int) -> Block:
    def read(chain: ChainState, _mempool: Mempool) -> Block | None:
        block_hash = chain.block_hash_at(height)
        return None if block_hash is None else chain.get_block(block_hash)

    block = await node.query(read)
    assert block is not None
    return block


# -- blocks


async def test_blocks_pay_the_address_and_the_log_tells_the_story(
    tmp_path: Path, backend: CpuBackend
) -> None:
    node = await start_node(tmp_path, "n")
    stream = io.StringIO()
    source = NodeSource(node, address_on(REGTEST), message=b"in-process test")
    try:
        summary = await Miner(
            source, backend, reporter=JsonReporter(stream), status_interval=None
        ).run(blocks=3)
        assert node.height == 3
        for height in (1, 2, 3):
            block = await block_at(node, height)
            coinbase = block.transactions[0]
            assert coinbase.outputs == (TxOut(REGTEST.subsidy(height), pkh(MINER_KEY)),)
            assert coinbase.coinbase_height == height
            assert coinbase.inputs[0].signature.endswith(b"in-process test")
    finally:
        await source.close()
        await node.stop()

    log = records(stream.getvalue())
    assert [r["event"] for r in log] == ["started"] + ["work", "block"] * 3 + ["stopped"]
    assert log[0]["protocol"] == "in-process" and log[0]["payout"] == address_on(REGTEST)
    assert log[0]["backend"] == "cpu" and log[0]["network"] == "regtest"
    works, blocks = log[1:-1:2], log[2:-1:2]
    assert [w["reason"] for w in works] == ["start", "after_block", "after_block"]
    assert [w["height"] for w in works] == [b["height"] for b in blocks] == [1, 2, 3]
    assert all(b["accepted"] and b["reason"] is None for b in blocks)
    assert [w["prev"] for w in works[1:]] == [b["hash"] for b in blocks[:-1]]
    assert log[-1]["why"] == "blocks" and log[-1]["accepted"] == summary.accepted == 3
    assert log[-1]["rejected"] == 0 and log[-1]["hashes"] > 0


async def test_the_extranonce_rolls_when_a_nonce_range_is_spent(
    tmp_path: Path, backend: CpuBackend
) -> None:
    """64 nonces per header on the demo network's first target (about 65,536 hashes a block):
    each block takes about a thousand extranonces. Every (extranonce, nonce) the loop tried
    before its find is checked to miss, so the find is the first hit in the loop's order."""
    node = await start_node(tmp_path, "demo", params=DEMO)
    recorder = Recorder()
    source = NodeSource(node, address_on(DEMO), message=b"")
    miner = Miner(
        source,
        backend,
        reporter=recorder,
        nonce_space=64,
        roll_time=False,
        rng=random.Random(4),
        status_interval=None,
    )
    try:
        await miner.run(blocks=2)
        blocks = [await block_at(node, height) for height in (1, 2)]
    finally:
        await source.close()
        await node.stop()

    works = recorder.of(NewWork)
    finds = recorder.of(BlockFound)
    rolled = 0
    for work, found, block in zip(works, finds, blocks, strict=True):
        assert isinstance(work, NewWork) and isinstance(found, BlockFound)
        assert found.accepted and found.hash == block.hash_hex
        header = block.header
        coinbase = block.transactions[0]
        extranonce = int.from_bytes(coinbase.inputs[0].signature[4:12], "little")
        assert extranonce == found.roll and header.nonce == found.nonce < 64
        target = bits_to_target(header.bits)
        for roll in range(work.first_roll, found.roll + 1):
            variant = make_coinbase(
                work.height, coinbase.outputs, extranonce=roll.to_bytes(8, "little")
            )
            tried = dataclasses.replace(header, merkle_root=variant.txid)
            last = found.nonce if roll == found.roll else 64
            assert all(
                int.from_bytes(sha256d(tried.with_nonce(n).serialize()), "little") > target
                for n in range(last)
            ), f"roll {roll} had an earlier hit"
        rolled += found.roll - work.first_roll
    assert rolled > 0, "two blocks without a single roll: about one chance in a million"


# -- stale work


async def test_a_new_tip_from_elsewhere_abandons_stale_work_within_a_second(
    tmp_path: Path, backend: CpuBackend
) -> None:
    node = await hard_node(tmp_path)
    recorder = Recorder()
    source = NodeSource(node, address_on(HARD))
    miner = Miner(source, backend, reporter=recorder, status_interval=None)
    run = asyncio.create_task(miner.run())
    try:
        # The miner is deep in block 2: several backend calls of a quarter second done.
        await wait_until(lambda: miner.meter.total > 3 * backend.preferred_count, timeout=20)
        busy = miner.status()
        assert busy.height == 2 and busy.bits != f"{HARD.genesis_bits:08x}"
        assert busy.hashrate > 0 and busy.accepted == busy.rejected == 0
        assert status_line(busy).startswith(f"block 2 | target {busy.bits} (difficulty ")

        a1 = node.tip.hash
        changed = time.monotonic()
        await node.invalidate_block(a1)  # the tip is now the genesis block
        await wait_until(lambda: len(recorder.of(NewWork)) >= 2, timeout=5)
        noticed, switched = [(t, e) for t, e in recorder.events if isinstance(e, NewWork)][1]
        assert isinstance(switched, NewWork)
        assert switched.reason is WorkReason.NEW_TIP and switched.height == 1
        assert hash_from_hex(switched.prev) == HARD.genesis_hash
        assert noticed - changed < 1.0
        assert switched.abandoned_after is not None and switched.abandoned_after < 1.0

        # On the new tip, block 1 is easy again: the miner finds it, on the genesis block.
        await wait_until(lambda: miner.accepted == 1, timeout=10)
        block = await block_at(node, 1)
        assert block.header.prev_hash == HARD.genesis_hash and block.hash != a1
        assert block.transactions[0].outputs[0].pubkey_hash == pkh(MINER_KEY)
    finally:
        stopping = time.monotonic()
        miner.stop()
        summary = await run
        stopped_in = time.monotonic() - stopping
        await source.close()
        await node.stop()
    assert stopped_in < 1.0
    assert summary.why == "stop" and summary.accepted >= 1 and summary.hashes > 0


# -- rejections


async def test_a_block_the_node_refuses_is_reported_with_its_reason(
    tmp_path: Path, backend: CpuBackend
) -> None:
    node = await start_node(tmp_path, "n")
    b1 = ChainBuilder().block("b1")
    assert (await node.submit_block(b1)).accepted
    stream = io.StringIO()
    source = NodeSource(node, address_on(REGTEST))
    miner = Miner(source, backend, reporter=TextReporter(stream, interactive=False))
    try:
        await source.start()
        work = await source.fetch()
        assert work.prev_hash == b1.hash
        await node.invalidate_block(b1.hash)  # the work's parent is now invalid
        result = await asyncio.to_thread(search_work, work, backend)
        assert result.solution is not None
        verdict = await miner.submit(work, result.solution)
    finally:
        await source.close()
        await node.stop()
    assert not verdict.accepted and verdict.reason == "bad-prevblk"
    assert miner.rejected == 1 and miner.accepted == 0
    assert stream.getvalue() == f"block 2 {result.solution.hash_hex} rejected: bad-prevblk\n"
    assert "accepted 0, rejected 1" in status_line(miner.status())


async def test_an_address_of_another_network_is_refused_before_mining(
    tmp_path: Path, backend: CpuBackend
) -> None:
    node = await start_node(tmp_path, "n")
    source: WorkSource = NodeSource(node, address_on(DEMO))
    try:
        with pytest.raises(ForklabError, match="is not a regtest address"):
            await Miner(source, backend).run()
    finally:
        await source.close()
        await node.stop()
