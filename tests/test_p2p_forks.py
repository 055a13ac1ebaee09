"""Competing blocks: a node stores what its peers hold at its own tip's work, and no less.

A fork can only be seen if nodes know the competing block, so, as Bitcoin Core does, a node
fetches and stores a block whose chain has *as much* work as its tip (a side branch) and keeps
the tip it saw first; every such block is published on its event bus as ``SideBlock``. Less
work is neither stored nor fetched, announced or pushed: that is what keeps cheap blocks on an
old fork off the disk.

The tree every case starts from (a node holding ``b1`` .. ``b5``)::

    genesis ── b1 ── b2 ── b3 ── b4 ── b5            the node's tip
                                  ├── c5             equal work: fetched, stored, reported
                                  │                  (announced by inv, or pushed unasked)
                            └── w4                   less work: never fetched nor stored

Then two real nodes that each mined their own block at the same height exchange them, keep
their own tips, and both move to whichever branch grows first, having already stored it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from blocktools import ChainBuilder
from p2p_harness import FakePeer, all_at, eventually, extend, mine, start_node, submit_all

from node.chainstate import ChainState
from node.core.block import Block
from node.core.mempool import Mempool
from node.events import SideBlock, Subscription
from node.node import Node
from node.p2p.messages import (
    BlockMsg,
    GetData,
    GetHeaders,
    Headers,
    Inv,
    InvItem,
    InvType,
)

HEIGHT = 5


class BranchPeer(FakePeer):
    """Offers one branch: answers getheaders with its headers and getdata with its blocks."""

    def __init__(self, blocks: list[Block]) -> None:
        super().__init__()
        self.blocks = {b.hash: b for b in blocks}
        self.headers = Headers(tuple(b.header for b in blocks))

    async def on_getheaders(self, message: GetHeaders) -> None:
        await self.send(self.headers)

    async def on_getdata(self, message: GetData) -> None:
        for item in message.items:
            block = self.blocks.get(item.hash)
            if block is not None:
                await self.send(BlockMsg(block))

    def asked_for(self, block_hash: bytes) -> bool:
        return any(
            isinstance(m, GetData) and any(i.hash == block_hash for i in m.items)
            for m in self.received
        )


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[Node, ChainBuilder]]:
    node = await start_node(tmp_path, "target")
    chain = ChainBuilder()
    await mine(node, chain, HEIGHT)
    yield node, chain
    await node.stop()


async def stored(node: Node, block_hash: bytes) -> bool:
    def has_data(chain: ChainState, mempool: Mempool) -> bool:
        entry = chain.get_entry(block_hash)
        return entry is not None and entry.has_data

    return await node.query(has_data)


def side_blocks(sub: Subscription) -> list[SideBlock]:
    """The side-branch events published so far (the subscription is left empty)."""
    events = []
    while (event := sub.get_nowait()) is not None:
        assert isinstance(event, SideBlock), event
        events.append(event)
    return events


async def test_an_equal_work_block_announced_by_inv_is_fetched_and_stored_beside_the_tip(
    served: tuple[Node, ChainBuilder],
) -> None:
    node, chain = served
    tip = node.tip.hash
    (c5,) = extend(chain, 1, prefix="c", parent="b4")
    competing = chain[c5]
    sub = node.subscribe(kinds=[SideBlock])
    async with BranchPeer([competing]) as peer:
        await peer.connect(node.listen_address)
        await peer.send(Inv((InvItem(InvType.BLOCK, competing.hash),)))
        await eventually(lambda: stored(node, competing.hash))
        assert peer.asked_for(competing.hash)
        assert not peer.is_closed
        (address,) = [p.address for p in node.peers()]
    (event,) = side_blocks(sub)
    assert (event.block.hash, event.height, event.fork_height) == (competing.hash, HEIGHT, 4)
    assert event.source == address
    assert node.tip.hash == tip, "first seen stays the tip"


async def test_a_less_work_block_announced_by_inv_is_not_fetched(
    served: tuple[Node, ChainBuilder],
) -> None:
    node, chain = served
    (w4,) = extend(chain, 1, prefix="w", parent="b3")
    weaker = chain[w4]
    sub = node.subscribe(kinds=[SideBlock])
    async with BranchPeer([weaker]) as peer:
        await peer.connect(node.listen_address)
        await peer.send(Inv((InvItem(InvType.BLOCK, weaker.hash),)))
        await peer.wait_for("getheaders", count=2)  # the handshake's, then the inv's
        await peer.sync_with_ping()  # our headers answer is handled
        await peer.sync_with_ping()  # and whatever it scheduled
        assert not peer.asked_for(weaker.hash)
        assert not peer.is_closed, "an honest peer on a losing branch is not punished"
    assert await node.query(lambda c, m: c.get_entry(weaker.hash)) is None
    assert side_blocks(sub) == []


@pytest.mark.parametrize(
    ("case", "parent", "kept"),
    [
        ("equal work: stored beside the tip", "b4", True),
        ("less work: dropped, the disk is not the peer's to fill", "b3", False),
    ],
)
async def test_an_unrequested_block_is_stored_only_with_at_least_the_tips_work(
    served: tuple[Node, ChainBuilder], case: str, parent: str, kept: bool
) -> None:
    node, chain = served
    tip = node.tip.hash
    (name,) = extend(chain, 1, prefix="u", parent=parent)
    block = chain[name]
    sub = node.subscribe(kinds=[SideBlock])
    async with FakePeer() as peer:
        await peer.connect(node.listen_address)
        await peer.send(BlockMsg(block))
        await peer.sync_with_ping()
        assert not peer.is_closed, case
    assert await stored(node, block.hash) is kept, case
    assert [e.block.hash for e in side_blocks(sub)] == ([block.hash] if kept else []), case
    assert node.tip.hash == tip, case


async def test_two_nodes_that_found_blocks_at_the_same_height_store_each_others(
    tmp_path: Path,
) -> None:
    a = await start_node(tmp_path, "a")
    b = await start_node(tmp_path, "b")
    try:
        chain = ChainBuilder()
        common = extend(chain, HEIGHT)
        for node in (a, b):
            await submit_all(node, (chain[n] for n in common))
        (a6,) = extend(chain, 1, prefix="a", parent=common[-1])
        (b6,) = extend(chain, 1, prefix="b", parent=common[-1])
        await submit_all(a, [chain[a6]])
        await submit_all(b, [chain[b6]])
        subs = {node: node.subscribe(kinds=[SideBlock]) for node in (a, b)}
        b.add_node(a.listen_address)
        for node, theirs in ((a, b6), (b, a6)):
            await eventually(lambda node=node, theirs=theirs: stored(node, chain[theirs].hash))
        assert (a.tip.hash, b.tip.hash) == (chain[a6].hash, chain[b6].hash), "each keeps its own"
        for node, theirs in ((a, b6), (b, a6)):
            (event,) = side_blocks(subs[node])
            assert (event.block.hash, event.fork_height) == (chain[theirs].hash, HEIGHT)
        # The first block on either branch decides; the other node already holds its parent.
        last = await mine(b, chain, 1, parent=b6)
        await all_at([a, b], chain[last].hash)
        assert side_blocks(subs[a]) == [] and side_blocks(subs[b]) == []
    finally:
        await a.stop()
        await b.stop()
