"""``forklab mine`` busy on a block it cannot find, over the node's real API: stale work and
stopping.

The node is the harness's ``HARD`` one (:mod:`mining_harness`): its next block needs about 2^41
hashes, so the miner is caught mid-search, with its CPU worker processes running, when

* the tip changes elsewhere (``invalidateblock``): the miner, told by the long poll
  (getblocktemplate) or by the ``/events`` stream (getwork), drops the stale work within a
  second, measured from the change to the line announcing the new work, and mines block 1 on
  the new tip, paying the right address;
* it is told to stop: Ctrl-C (SIGINT to its process group, as a terminal sends it) or SIGTERM
  ends it with status 0 and a summary, and none of its worker processes outlives it.

Along the way the status reports are checked: the JSON records' keys and values, and the
human lines on a pipe; and a getwork unit whose nonces are spent is replaced by a fresh one.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

from blocktools import key, pkh
from mining_harness import (
    HARD,
    NODE_PAYEE,
    RPC_PASSWORD,
    RPC_USER,
    MinerProcess,
    alive,
    children_of,
    hard_node,
    serve_api,
)

from miner import CpuBackend
from miner.loop import Miner
from miner.rpc import GetworkSource, NodeRpc, fixed_credentials
from miner.work import HeaderWork
from node.core.address import encode_address
from node.core.hashing import hash_hex
from node.core.header import bits_to_target, difficulty
from node.node import Node

PAYEE = encode_address(pkh(key("stale test miner")), HARD.address_version)


def credentials(url: str) -> list[str]:
    return ["--rpc", url, "--rpc-user", RPC_USER, "--rpc-password", RPC_PASSWORD]


async def next_bits(node: Node) -> int:
    bits: int = await node.query(lambda chain, _mempool: chain.next_bits())
    return bits


async def abandon_stale_work(node: Node, miner: MinerProcess) -> float:
    """Wait until ``miner`` searches block 2 at full speed, invalidate the tip, and return how
    long the miner took to announce new work on the genesis block."""
    # Two status reports with a rate: the workers run and the backend calls are sized.
    for _ in range(2):
        _, status = await miner.until(lambda r: r["event"] == "status" and r["hashrate"] > 0)
    assert status["height"] == 2 and status["accepted"] == status["rejected"] == 0
    hard_bits = await next_bits(node)
    assert status["bits"] == f"{hard_bits:08x}"
    assert status["target"] == f"{bits_to_target(hard_bits):064x}"
    assert status["hashes"] > 0 and status["seconds"] > 0

    changed = time.monotonic()
    await node.invalidate_block(node.tip.hash)
    noticed, work = await miner.until(lambda r: r["event"] == "work", timeout=5)
    assert work["reason"] == "new_tip" and work["height"] == 1
    assert work["prev"] == hash_hex(HARD.genesis_hash)
    assert work["abandoned_after"] < 1.0
    return noticed - changed


async def test_gbt_long_poll_abandons_stale_work_and_ctrl_c_leaves_no_worker(
    tmp_path: Path,
) -> None:
    node = await hard_node(tmp_path)
    try:
        async with serve_api(node) as url:
            miner = await MinerProcess.start(
                *credentials(url),
                "--address",
                PAYEE,
                "--backend",
                "cpu",
                "--threads",
                "2",
                "--json",
                "--status-interval",
                "0.2",
                stderr=tmp_path / "miner.err",
            )
            try:
                _, started = await miner.until(lambda r: r["event"] == "started")
                assert started["protocol"] == "gbt" and started["payout"] == PAYEE
                assert started["backend"] == "cpu" and started["network"] == "regtest"
                assert await abandon_stale_work(node, miner) < 1.0

                _, found = await miner.until(lambda r: r["event"] == "block")
                assert found["accepted"] and found["height"] == 1 and found["reason"] is None
                block = await node.get_block(node.tip.hash)
                assert block is not None and block.hash_hex == found["hash"]
                assert block.header.prev_hash == HARD.genesis_hash
                assert block.transactions[0].outputs[0].pubkey_hash == pkh(key("stale test miner"))
                assert block.transactions[0].inputs[0].signature.endswith(b"forklab mine")

                # The CPU backend's two workers, and multiprocessing's resource tracker.
                workers = children_of(miner.proc.pid)
                assert len(workers) >= 2
                miner.signal_group(signal.SIGINT)
                assert await miner.finish() == 0
                # The workers are joined before the miner exits; the tracker leaves when it
                # reads the end of its pipe, a moment later.
                deadline = time.monotonic() + 2
                while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
                    await asyncio.sleep(0.02)
                assert not [pid for pid in workers if alive(pid)]
            finally:
                await miner.kill()
    finally:
        await node.stop()
    stopped = miner.records()[-1]
    assert stopped["event"] == "stopped" and stopped["why"] == "stop"
    assert stopped["accepted"] == 1 and stopped["rejected"] == 0
    assert stopped["hashes"] > 0 and stopped["hashrate"] > 0
    assert "Traceback" not in (tmp_path / "miner.err").read_text()


async def test_getwork_follows_the_event_stream_and_sigterm_prints_the_summary(
    tmp_path: Path,
) -> None:
    node = await hard_node(tmp_path)
    try:
        async with serve_api(node) as url:
            miner = await MinerProcess.start(
                *credentials(url),
                "--protocol",
                "getwork",
                "--backend",
                "cpu",
                "--threads",
                "1",
                "--json",
                "--status-interval",
                "0.2",
                stderr=tmp_path / "miner.err",
            )
            try:
                _, started = await miner.until(lambda r: r["event"] == "started")
                assert started["protocol"] == "getwork" and started["payout"] is None
                assert await abandon_stale_work(node, miner) < 1.0
                _, found = await miner.until(lambda r: r["event"] == "block")
                assert found["accepted"] and found["height"] == 1
                block = await node.get_block(node.tip.hash)
                assert block is not None and block.hash_hex == found["hash"]
                payee = block.transactions[0].outputs[0].pubkey_hash
                assert encode_address(payee, HARD.address_version) == NODE_PAYEE
                miner.proc.send_signal(signal.SIGTERM)
                assert await miner.finish() == 0
            finally:
                await miner.kill()
    finally:
        await node.stop()
    assert miner.records()[-1]["event"] == "stopped"


async def test_a_pipe_gets_the_status_as_lines_of_their_own(tmp_path: Path) -> None:
    node = await hard_node(tmp_path)
    try:
        async with serve_api(node) as url:
            miner = await MinerProcess.start(
                *credentials(url),
                "--address",
                PAYEE,
                "--backend",
                "cpu",
                "--threads",
                "1",
                "--status-interval",
                "0.2",
                stderr=tmp_path / "miner.err",
            )
            try:
                tip = hash_hex(node.tip.hash)
                lines = [await miner.next_line(20) for _ in range(2)]
                status = await miner.next_line(20)
                while " 0.00 H/s " in status:  # the first call includes the workers' start
                    status = await miner.next_line(20)
                miner.proc.send_signal(signal.SIGTERM)
                assert await miner.finish() == 0
            finally:
                await miner.kill()
            hard_bits = await next_bits(node)
    finally:
        await node.stop()
    assert lines[0].startswith(f"mining on {url} (regtest, gbt) with the cpu backend on 1 ")
    assert lines[0].endswith(f", paying {PAYEE}\n")
    assert lines[1].startswith(f"mining block 2 on {tip[:16]}…")
    shown = f"target {hard_bits:08x} (difficulty {difficulty(hard_bits):.3g})"
    assert status.startswith(f"block 2 | {shown} | ")
    assert status.endswith("H/s | accepted 0, rejected 0\n")
    summary = miner.lines[-1][1]
    assert summary.startswith("stopped after ")
    assert ": 0 blocks accepted, 0 rejected, " in summary and " on average" in summary
    assert "\r" not in "".join(line for _, line in miner.lines)


async def test_a_node_that_goes_away_pauses_the_miner_until_it_is_back(tmp_path: Path) -> None:
    """Not a stale-work case, but the same machinery: the long poll breaks, the miner says once
    that the node is unreachable, asks again every second, and mines again when it answers."""
    node = await hard_node(tmp_path)
    miner: MinerProcess | None = None
    try:
        async with serve_api(node) as url:
            miner = await MinerProcess.start(
                *credentials(url),
                "--address",
                PAYEE,
                "--backend",
                "cpu",
                "--threads",
                "1",
                "--json",
                stderr=tmp_path / "miner.err",
            )
            await miner.until(lambda r: r["event"] == "work")
        # The API has stopped (the block above has ended), the node has not.
        _, lost = await miner.until(lambda r: r["event"] == "node", timeout=10)
        assert lost["reachable"] is False and url in lost["detail"]
        await asyncio.sleep(1.5)  # retries meanwhile are not reported again
        async with serve_api(node, port=int(url.rsplit(":", 1)[1])):
            _, back = await miner.until(lambda r: r["event"] == "node", timeout=10)
            assert back["reachable"] is True
            _, work = await miner.until(lambda r: r["event"] == "work")
            assert work["reason"] == "reconnected" and work["height"] == 2
            miner.proc.send_signal(signal.SIGTERM)
            assert await miner.finish() == 0
    finally:
        if miner is not None:
            await miner.kill()
        await node.stop()
    assert miner is not None
    kinds = [r["event"] for r in miner.records()]
    assert kinds.count("node") == 2 and kinds[-1] == "stopped"


async def test_a_spent_getwork_unit_is_replaced_by_a_fresh_one(tmp_path: Path) -> None:
    """getwork's header cannot roll: when its nonces are spent (here a range of 4,096, as if
    2^32), the loop asks the node for another unit, which the node builds with the next
    extranonce."""
    node = await hard_node(tmp_path)
    works: list[HeaderWork] = []
    try:
        async with serve_api(node) as url:
            source = GetworkSource(NodeRpc(url, fixed_credentials(RPC_USER, RPC_PASSWORD)))
            with CpuBackend(1) as backend:
                miner = Miner(source, backend, nonce_space=4096, status_interval=None)
                run = asyncio.create_task(miner.run())
                try:
                    while len(works) < 4:
                        await asyncio.sleep(0.001)
                        work = miner.work
                        if isinstance(work, HeaderWork) and work not in works:
                            works.append(work)
                finally:
                    miner.stop()
                    summary = await run
                    await source.close()
    finally:
        await node.stop()
    assert len({w.header.merkle_root for w in works}) == len(works)
    assert {w.prev_hash for w in works} == {works[0].prev_hash} and works[0].height == 2
    assert summary.hashes >= 3 * 4096 and summary.accepted == summary.rejected == 0
