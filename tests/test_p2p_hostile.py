"""Hostile and broken peers: each one ends disconnected (or banned), and the node goes on serving
with its chain unchanged.

Every case runs against a real node on a loopback socket, holding a chain of 20 blocks. The fake
peer does one bad thing; then we check (1) the fake peer's connection was closed by the node,
(2) a well-behaved peer can still connect and get answers, (3) the tip did not move.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from blocktools import ChainBuilder, make_block
from p2p_harness import FakePeer, extend, mine, start_node, wait_until

from node.core.encoding import pack
from node.core.params import DEMO
from node.core.tx import TxOut, make_coinbase
from node.node import Node
from node.p2p.messages import (
    MAX_FRAME_SIZE,
    MAX_INV_ITEMS,
    BlockMsg,
    GetData,
    GetHeaders,
    Headers,
    Inv,
    InvItem,
    InvType,
    Reject,
)

HEIGHT = 20


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[Node, ChainBuilder]]:
    node = await start_node(tmp_path, "target")
    chain = ChainBuilder()
    await mine(node, chain, HEIGHT)
    yield node, chain
    await node.stop()


async def assert_still_serving(node: Node, tip: bytes) -> None:
    async with FakePeer() as honest:
        await honest.connect(node.listen_address)
        await honest.sync_with_ping()
        await honest.send(GetHeaders((node.params.genesis_hash,), bytes(32)))
        headers = await honest.wait_for("headers", count=1)
        assert isinstance(headers, Headers)
        assert len(headers.headers) == HEIGHT
    assert node.tip.hash == tip


async def test_oversized_frame(served: tuple[Node, ChainBuilder]) -> None:
    node, _ = served
    tip = node.tip.hash
    async with FakePeer() as peer:
        await peer.connect(node.listen_address)
        await peer.send_frame(b"\x00" * (MAX_FRAME_SIZE + 1))
        await peer.wait_closed()
    await wait_until(lambda: len(node.banned()) == 1)
    await assert_still_serving(node, tip)


@pytest.mark.parametrize(
    ("case", "frame"),
    [
        ("garbage bytes", b"\xc1\xffnot msgpack at all"),
        ("valid msgpack of the wrong shape", pack(["inv", "not a list"])),
        ("a map instead of an array", pack({"inv": []})),
        ("non-canonical encoding", b"\x92\xa4ping\xcd\x00\x07"),
    ],
)
async def test_malformed_frame_bans(
    served: tuple[Node, ChainBuilder], case: str, frame: bytes
) -> None:
    node, _ = served
    tip = node.tip.hash
    async with FakePeer() as peer:
        await peer.connect(node.listen_address)
        await peer.send_frame(frame)
        await peer.wait_closed()
    assert len(node.banned()) == 1, case
    await assert_still_serving(node, tip)


async def test_wrong_network_is_refused_with_a_reason(served: tuple[Node, ChainBuilder]) -> None:
    node, _ = served
    tip = node.tip.hash
    async with FakePeer(genesis_hash=DEMO.genesis_hash) as peer:
        await peer.connect(node.listen_address, handshake=False)
        await peer.send(peer.version)
        reject = await peer.wait_for("reject")
        await peer.wait_closed()
    assert isinstance(reject, Reject)
    assert (reject.message, reject.reason) == ("version", "wrong-network")
    assert "verack" not in peer.message_count
    await assert_still_serving(node, tip)


async def test_message_before_handshake_disconnects(served: tuple[Node, ChainBuilder]) -> None:
    node, _ = served
    async with FakePeer() as peer:
        await peer.connect(node.listen_address, handshake=False)
        await peer.send(Inv((InvItem(InvType.TX, bytes(32)),)))
        await peer.wait_closed()
    await assert_still_serving(node, node.tip.hash)


async def test_unknown_message_types_get_a_peer_banned(served: tuple[Node, ChainBuilder]) -> None:
    node, _ = served
    tip = node.tip.hash
    async with FakePeer() as peer:
        await peer.connect(node.listen_address)
        await peer.send_frame(pack(["mempool"]))
        await peer.sync_with_ping()  # one unknown message is tolerated (a newer client)
        for _ in range(4):
            await peer.send_frame(pack(["mempool"]))
        await peer.wait_closed()
    assert len(node.banned()) == 1
    await assert_still_serving(node, tip)


async def test_inv_flood(tmp_path: Path) -> None:
    # Requests never time out here, so every one counted is in flight at once, however slowly
    # a loaded machine gets through the flood (a timed-out request frees a slot for the next).
    node = await start_node(tmp_path, "target", tx_timeout=600.0)
    await mine(node, ChainBuilder(), HEIGHT)
    try:
        await _flood(node)
    finally:
        await node.stop()


async def _flood(node: Node) -> None:
    tip = node.tip.hash
    async with FakePeer() as peer:
        await peer.connect(node.listen_address)
        for n in range(60):
            items = tuple(
                InvItem(InvType.TX, (n * MAX_INV_ITEMS + i).to_bytes(32, "little"))
                for i in range(MAX_INV_ITEMS)
            )
            if peer.is_closed:
                break
            await peer.send(Inv(items))
        await peer.wait_closed()
        requested = sum(len(m.items) for m in peer.received if isinstance(m, GetData))
    # The node asked for no more than its in-flight limit, however much was announced.
    assert 0 < requested <= node.manager.config.max_txs_in_flight
    assert len(node.banned()) == 1
    await assert_still_serving(node, tip)


class LowWorkPeer(FakePeer):
    """Answers getheaders with a short fork from genesis: valid headers, less work."""

    def __init__(self, fork: list[bytes], headers: Headers) -> None:
        super().__init__()
        self.fork = fork
        self.fork_headers = headers

    async def on_getheaders(self, message: GetHeaders) -> None:
        await self.send(self.fork_headers)


async def test_low_work_headers_are_not_stored_and_pushing_them_bans(
    served: tuple[Node, ChainBuilder],
) -> None:
    node, chain = served
    tip = node.tip.hash
    names = extend(chain, 5, prefix="weak", parent="genesis")
    fork = [chain[n].hash for n in names]
    headers = Headers(tuple(chain[n].header for n in names))
    async with LowWorkPeer(fork, headers) as peer:
        await peer.connect(node.listen_address)
        await peer.sync_with_ping()
        # As an answer to the node's getheaders, they are simply not stored: an honest peer on
        # a losing branch sends exactly this.
        assert not peer.is_closed
        stored = await node.query(lambda c, m: [h for h in fork if c.get_entry(h) is not None])
        assert stored == []
        # Pushed without being asked, they are a flood.
        for _ in range(5):
            if peer.is_closed:
                break
            await peer.send(headers)
        await peer.wait_closed()
    assert len(node.banned()) == 1
    await assert_still_serving(node, tip)


async def test_invalid_block_bans(served: tuple[Node, ChainBuilder]) -> None:
    node, chain = served
    tip = node.tip.hash
    parent = chain[chain.tip]
    greedy = make_coinbase(HEIGHT + 1, (TxOut(node.params.subsidy(HEIGHT + 1) + 1, bytes(20)),))
    bad = make_block(
        parent.hash,
        [greedy],
        time=parent.header.time + 1,
        bits=parent.header.bits,
    )
    async with FakePeer() as peer:
        await peer.connect(node.listen_address)
        await peer.send(BlockMsg(bad))
        await peer.wait_closed()
    reject = peer.last_message.get("reject")
    assert isinstance(reject, Reject)
    assert reject.reason == "bad-cb-amount"
    assert len(node.banned()) == 1
    await assert_still_serving(node, tip)
    # A banned address is refused at once when it comes back (loopback bans are per address,
    # so a fresh connection from a new port is a new peer; banning by host is for real IPs).
    assert node.peers() == []


async def test_a_peer_that_stops_reading_stalls_nobody_and_is_dropped(tmp_path: Path) -> None:
    node = await start_node(
        tmp_path, "target", ping_interval=0.3, ping_timeout=1.0, max_send_bytes=50_000
    )
    chain = ChainBuilder()
    await mine(node, chain, 300)
    blocks = tuple(InvItem(InvType.BLOCK, chain[n].hash) for n in chain.branch(chain.tip))
    try:
        async with FakePeer() as stuck:
            await stuck.connect(node.listen_address)
            # Stop reading, then ask for every block, many times over.
            stuck.stop_reading()
            for _ in range(20):
                await stuck.send(GetData(blocks))
            # Meanwhile an honest peer is served at once.
            async with FakePeer() as honest:
                await honest.connect(node.listen_address)
                await honest.send(GetHeaders((node.params.genesis_hash,), bytes(32)))
                headers = await honest.wait_for("headers", timeout=3)
                assert isinstance(headers, Headers) and len(headers.headers) == 300
                # The stuck one is dropped (its pongs never come), the honest one stays.
                await wait_until(lambda: len(node.peers()) == 1, timeout=10)
                await honest.sync_with_ping()
    finally:
        await node.stop()
