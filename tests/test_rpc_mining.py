"""Mining against a real node: getblocktemplate with long polling, submitblock's BIP 22
answers, getwork's classic byte order end to end, generatetoaddress on a network harder than
regtest; and the /events WebSocket stream seeing what mining does.

The external-miner side is written here from the formats' descriptions (word-swapped getwork
data, little-endian targets, the template's fields), not with the node's own helpers, so the
node's encoding is checked against an independent reading of it.
"""

from __future__ import annotations

import asyncio
import hashlib
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from rpc_harness import NodeProcess, start_node

from node.core.address import decode_address
from node.core.block import Block
from node.core.header import BlockHeader
from node.core.merkle import merkle_root
from node.core.params import REGTEST
from node.core.tx import Transaction, TxOut, make_coinbase


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    process = start_node(tmp_path_factory.mktemp("mining") / "node")
    try:
        yield process
    finally:
        process.terminate()


@pytest.fixture(scope="module")
def address(node: NodeProcess) -> str:
    address = node.call("getnewaddress")
    node.call("generatetoaddress", 101, address)
    return address


def solve(header: bytes, target: int) -> bytes:
    """An 80-byte header with a nonce meeting ``target`` (regtest: a few tries)."""
    for nonce in range(1 << 32):
        candidate = header[:76] + struct.pack("<I", nonce)
        digest = hashlib.sha256(hashlib.sha256(candidate).digest()).digest()
        if int.from_bytes(digest, "little") <= target:
            return candidate
    raise AssertionError("no nonce")


def block_from_template(template: dict[str, Any], payout: str, *, extra: bytes = b"") -> Block:
    """What an external miner does with a BIP 22 template: coinbase, merkle root, header."""
    pubkey_hash = decode_address(payout, REGTEST.address_version)
    coinbase = make_coinbase(
        template["height"], (TxOut(template["coinbasevalue"], pubkey_hash),), extra
    )
    txs = [coinbase] + [
        Transaction.deserialize(bytes.fromhex(t["data"])) for t in template["transactions"]
    ]
    root, _ = merkle_root([tx.txid for tx in txs])
    header = struct.pack(
        "<I32s32sIII",
        template["version"],
        bytes.fromhex(template["previousblockhash"])[::-1],
        root,
        template["curtime"],
        int(template["bits"], 16),
        0,
    )
    solved = solve(header, int(template["target"], 16))
    return Block(BlockHeader.deserialize(solved), tuple(txs))


def test_template_block_is_accepted_once(node: NodeProcess, address: str) -> None:
    payee = node.call("getnewaddress")
    txid = node.call("sendtoaddress", payee, 1)
    template = node.call("getblocktemplate")
    assert [t["txid"] for t in template["transactions"]] == [txid]
    fee = template["transactions"][0]["fee"]
    assert template["coinbasevalue"] == REGTEST.subsidy(template["height"]) + fee
    assert template["previousblockhash"] == node.call("getbestblockhash")
    block = block_from_template(template, address)
    assert node.call("submitblock", block.serialize().hex()) is None
    assert node.call("getbestblockhash") == block.hash_hex
    assert node.call("submitblock", block.serialize().hex()) == "duplicate"
    assert txid not in node.call("getrawmempool")


def test_submitblock_answers_with_the_reject_reason(node: NodeProcess, address: str) -> None:
    template = node.call("getblocktemplate")
    good = block_from_template(template, address)
    # Pay the miner one unit too much: a valid block in every other respect.
    greedy = dict(template, coinbasevalue=template["coinbasevalue"] + 1)
    bad = block_from_template(greedy, address)
    assert node.call("submitblock", bad.serialize().hex()) == "bad-cb-amount"
    assert node.call("submitblock", bad.serialize().hex()) == "duplicate-invalid"
    assert node.call("submitblock", good.serialize().hex()) is None


def test_side_branch_block_is_inconclusive(node: NodeProcess, address: str) -> None:
    template = node.call("getblocktemplate")
    first = block_from_template(template, address)
    rival = block_from_template(template, address, extra=b"rival")
    assert node.call("submitblock", first.serialize().hex()) is None
    assert node.call("submitblock", rival.serialize().hex()) == "inconclusive"
    statuses = {t["hash"]: t["status"] for t in node.call("getchaintips")}
    assert statuses[rival.hash_hex] == "valid-headers"


def test_long_poll_returns_when_the_tip_changes(node: NodeProcess, address: str) -> None:
    template = node.call("getblocktemplate")
    answer: dict[str, Any] = {}

    def poll() -> None:
        client = node.client(timeout=30)
        answer["template"] = client.call("getblocktemplate", {"longpollid": template["longpollid"]})
        answer["at"] = time.monotonic()

    waiter = threading.Thread(target=poll)
    waiter.start()
    time.sleep(0.5)
    assert waiter.is_alive(), "the long poll returned before anything changed"
    [new_tip] = node.call("generatetoaddress", 1, address)
    mined_at = time.monotonic()
    waiter.join(10)
    assert not waiter.is_alive()
    assert answer["template"]["previousblockhash"] == new_tip
    assert answer["at"] - mined_at < 2.0


def test_stale_longpollid_returns_at_once(node: NodeProcess, address: str) -> None:
    stale = "00" * 32 + "0"
    started = time.monotonic()
    node.call("getblocktemplate", {"longpollid": stale})
    assert time.monotonic() - started < 2.0


def swap_words(data: bytes) -> bytes:
    return b"".join(data[i : i + 4][::-1] for i in range(0, len(data), 4))


def test_getwork_in_the_classic_byte_order(node: NodeProcess, address: str) -> None:
    height = node.call("getblockcount")
    work = node.call("getwork")
    data = bytes.fromhex(work["data"])
    assert len(data) == 128
    # SHA-256 padding of an 80-byte message, word-swapped: 0x80 after the header, length 640.
    assert data[80:84] == bytes.fromhex("00000080")
    assert data[84:124] == bytes(40)
    assert data[124:128] == bytes.fromhex("80020000")
    header = swap_words(data)[:80]
    assert header[4:36] == bytes.fromhex(node.call("getbestblockhash"))[::-1]
    target = int.from_bytes(bytes.fromhex(work["target"]), "little")
    assert target == int(node.call("getblocktemplate")["target"], 16)
    assert work["hash1"].endswith("00010000")
    other = node.call("getwork")
    assert other["data"] != work["data"], "each unit rolls the extranonce"
    solved = solve(header, target)
    submission = swap_words(solved + bytes(48))[:80] + data[80:]
    assert node.call("getwork", submission.hex()) is True
    assert node.call("getblockcount") == height + 1
    # The other unit is for a tip that is gone now: stale.
    assert node.call("getwork", other["data"]) is False


def test_generate_on_a_network_that_needs_hashing(tmp_path_factory: pytest.TempPathFactory) -> None:
    demo = start_node(tmp_path_factory.mktemp("demo") / "node", "--network", "demo")
    try:
        address = demo.call("getnewaddress")
        assert address.startswith("D")
        # One hash in all cannot mine three blocks: what maxtries allows is what comes back.
        assert len(demo.call("generatetoaddress", 3, address, 1)) <= 1
        hashes = demo.call("generatetoaddress", 2, address)
        assert len(hashes) == 2
        for block_hash in hashes:
            header = demo.call("getblockheader", block_hash)
            assert int(block_hash, 16) <= int(header["target"], 16)
    finally:
        assert demo.terminate() == 0


async def _receive_until(ws: aiohttp.ClientWebSocketResponse, kind: str) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    while not seen or seen[-1]["type"] != kind:
        seen.append(await ws.receive_json(timeout=10))
    return seen


async def test_event_stream_follows_the_chain_and_mempool(node: NodeProcess, address: str) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(node.rpc_url + "/events") as ws,
    ):
        hello = await ws.receive_json(timeout=10)
        assert hello["type"] == "hello"
        assert hello["height"] == await asyncio.to_thread(node.call, "getblockcount")

        [mined] = await asyncio.to_thread(node.call, "generatetoaddress", 1, address)
        events = await _receive_until(ws, "new_tip")
        assert [e["type"] for e in events] == ["block_connected", "new_tip"]
        assert events[-1]["hash"] == mined and events[-1]["reorg_depth"] == 0
        assert events[0]["hash"] == mined and events[0]["height"] == hello["height"] + 1

        payee = await asyncio.to_thread(node.call, "getnewaddress")
        txid = await asyncio.to_thread(node.call, "sendtoaddress", payee, "0.1")
        accepted = await _receive_until(ws, "tx_accepted")
        assert accepted[-1]["txid"] == txid and accepted[-1]["source"] == "local"

        await asyncio.to_thread(node.call, "invalidateblock", mined)
        events = await _receive_until(ws, "reorg")
        kinds = [e["type"] for e in events]
        assert "block_disconnected" in kinds and "new_tip" in kinds
        assert events[-1]["depth"] == 1 and events[-1]["old_tip"] == mined
        await asyncio.to_thread(node.call, "reconsiderblock", mined)
        events = await _receive_until(ws, "new_tip")
        assert events[-1]["hash"] == mined


async def test_event_stream_filters_by_type(node: NodeProcess, address: str) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(node.rpc_url + "/events?types=new_tip") as ws,
    ):
        assert (await ws.receive_json(timeout=10))["types"] == ["new_tip"]
        await asyncio.to_thread(node.call, "generatetoaddress", 2, address)
        first = await ws.receive_json(timeout=10)
        second = await ws.receive_json(timeout=10)
        assert [first["type"], second["type"]] == ["new_tip", "new_tip"]
        assert second["height"] == first["height"] + 1


def test_event_stream_refuses_unknown_types(node: NodeProcess) -> None:
    reply = node.http("GET", "/events?types=bogus", auth=None)
    assert reply.status == 400
    assert b"bogus" in reply.body


def test_two_nodes_mining_on_one_parent_build_different_blocks(
    tmp_path_factory: pytest.TempPathFactory, address: str
) -> None:
    """Same genesis, same payee, same second: without a per-node extranonce the two blocks would
    be identical and a partition lesson would show no fork at all."""
    first = start_node(tmp_path_factory.mktemp("twin") / "a")
    second = start_node(tmp_path_factory.mktemp("twin") / "b")
    try:
        (hash_a,) = first.call("generatetoaddress", 1, address)
        (hash_b,) = second.call("generatetoaddress", 1, address)
    finally:
        first.terminate()
        second.terminate()
    assert hash_a != hash_b
