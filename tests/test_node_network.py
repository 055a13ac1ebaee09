"""Networks of real nodes on loopback: relay, partitions, late joiners and restarts.

Each test starts 2 to 5 nodes in their own data dirs, wired by ``--connect`` style
configuration, and drives them through the Node API the way a user's RPC calls would:

* a block mined at one end reaches every node, and a transaction every mempool;
* a block whose transactions every node holds travels as a compact block, rebuilt from the
  mempool without fetching a single transaction;
* two halves partitioned by the nodes' own link policy both mine; healed, every node ends on the
  most-work tip and the losing side's transaction is back in the mempools;
* a node started late syncs a few hundred blocks, from several peers at once;
* a node stopped mid-sync resumes from its last committed block, not from genesis.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from blocktools import ChainBuilder
from p2p_harness import (
    all_at,
    chain_of,
    extend,
    in_every_mempool,
    mine,
    start_node,
    submit_all,
    wait_until,
)

from node.node import Node
from node.runtime import TransportError


async def stop_all(nodes: list[Node]) -> None:
    for node in nodes:
        await node.stop()


async def line_of(tmp_path: Path, count: int) -> list[Node]:
    """``count`` nodes, each told to connect to the one before it (address gossip may then
    add shortcuts, as it would on a real network)."""
    nodes: list[Node] = []
    for i in range(count):
        connect = [nodes[-1].listen_address] if nodes else []
        nodes.append(await start_node(tmp_path, f"n{i}", connect=connect))
    await wait_until(
        lambda: all(
            len(n.peers()) >= (1 if i in (0, count - 1) else 2) for i, n in enumerate(nodes)
        )
    )
    return nodes


async def test_a_block_reaches_every_node(tmp_path: Path) -> None:
    nodes = await line_of(tmp_path, 10)
    try:
        chain = ChainBuilder()
        last = await mine(nodes[0], chain, 3)
        await all_at(nodes, chain[last].hash)
        last = await mine(nodes[-1], chain, 1)
        await all_at(nodes, chain[last].hash)
    finally:
        await stop_all(nodes)


async def test_a_transaction_reaches_every_mempool_and_its_block_travels_compact(
    tmp_path: Path,
) -> None:
    nodes = await line_of(tmp_path, 4)
    try:
        chain = ChainBuilder()
        await mine(nodes[0], chain, 101)
        await all_at(nodes, chain[chain.tip].hash)

        tx = chain.spend([chain.coinbase_of("b1")], fee=10_000)
        await nodes[-1].submit_tx(tx)
        await in_every_mempool(nodes, tx.txid)

        before = [_received(n, "block") for n in nodes]
        name = f"b{chain.height(chain.tip) + 1}"
        block = chain.block(name, txs=[tx], time=chain[chain.tip].header.time + 1)
        await submit_all(nodes[0], [block])
        await all_at(nodes, block.hash)
        # Every hop rebuilt the block from its mempool: no full block, no missing transaction.
        assert [_received(n, "block") for n in nodes] == before
        assert all(_received(n, "cmpctblock") > 0 for n in nodes[1:])
        assert sum(_received(n, "blocktxn") for n in nodes) == 0
        for node in nodes:
            assert not await node.query(lambda c, m: tx.txid in m)
    finally:
        await stop_all(nodes)


def _received(node: Node, msgtype: str) -> int:
    return sum(p.received_per_msg.get(msgtype, 0) for p in node.peers())


async def test_partitioned_halves_converge_on_the_most_work_tip_after_healing(
    tmp_path: Path,
) -> None:
    a = await start_node(tmp_path, "a")
    b = await start_node(tmp_path, "b", connect=[a.listen_address])
    c = await start_node(tmp_path, "c", connect=[a.listen_address, b.listen_address])
    d = await start_node(
        tmp_path, "d", connect=[a.listen_address, b.listen_address, c.listen_address]
    )
    nodes = [a, b, c, d]
    try:
        await wait_until(lambda: all(len(n.peers()) == 3 for n in nodes))
        chain = ChainBuilder()
        shared = await mine(a, chain, 101)
        await all_at(nodes, chain[shared].hash)

        # Cut the network in two: {a, b} | {c, d}, each node refusing the other side.
        left, right = [a, b], [c, d]
        for side, other in ((left, right), (right, left)):
            for node in side:
                node.links.block(*(n.listen_address for n in other))
        await wait_until(lambda: all(len(n.peers()) == 1 for n in nodes))

        # The left side confirms a payment in a short branch; the right mines a longer one.
        tx = chain.spend([chain.coinbase_of("b1")], fee=10_000)
        await a.submit_tx(tx)
        await wait_until(lambda: len(b.peers()) == 1)
        left_tip = chain.block(
            "left102", parent=shared, txs=[tx], time=chain[shared].header.time + 1
        )
        await submit_all(a, [left_tip])
        left_names = extend(chain, 1, prefix="left", parent="left102")
        await submit_all(a, [chain[left_names[-1]]])
        right_names = extend(chain, 4, prefix="right", parent=shared)
        await submit_all(c, [chain[n] for n in right_names])
        await all_at(left, chain[left_names[-1]].hash)
        await all_at(right, chain[right_names[-1]].hash)

        # Heal: everyone follows the right side's chain (more work), and the payment the
        # left side had confirmed is unconfirmed again, waiting in every mempool.
        for node in nodes:
            node.links.heal()
        await all_at(nodes, chain[right_names[-1]].hash, timeout=30)
        await wait_until(lambda: all(len(n.peers()) == 3 for n in nodes), timeout=20)
        await in_every_mempool(nodes, tx.txid)
    finally:
        await stop_all(nodes)


async def test_a_late_node_syncs_from_several_peers(tmp_path: Path) -> None:
    chain = chain_of(400)
    blocks = [chain[n] for n in chain.branch(chain.tip)]
    seeds = [await start_node(tmp_path, f"seed{i}") for i in range(3)]
    for seed in seeds:
        await submit_all(seed, blocks)
    late = await start_node(
        tmp_path, "late", connect=[s.listen_address for s in seeds], max_blocks_in_flight=8
    )
    try:
        await all_at([late], chain[chain.tip].hash, timeout=60)
        served = [p.received_per_msg.get("block", 0) for p in late.peers()]
        assert sum(served) >= 400 - 1
        # The download window spans the peers: more than one of them delivered blocks.
        assert sum(1 for count in served if count > 0) >= 2, served
    finally:
        await stop_all([late, *seeds])


async def test_a_node_restarted_mid_sync_resumes(tmp_path: Path) -> None:
    chain = chain_of(600)
    seed = await start_node(tmp_path, "seed")
    await submit_all(seed, [chain[n] for n in chain.branch(chain.tip)])
    follower = await start_node(tmp_path, "follower", connect=[seed.listen_address])
    # A slow link (20 ms each way, applied by the seed) keeps the sync going for a while.
    seed.links.set_latency(follower.listen_address, 0.02)
    try:
        await wait_until(lambda: follower.height >= 150, timeout=30)
        await follower.stop()
        stopped_at = follower.height if follower.running else None
        assert stopped_at is None
        follower = await start_node(tmp_path, "follower", connect=[seed.listen_address])
        # Resumed from its committed blocks, not from genesis, and not yet done.
        assert 150 <= follower.height < 600
        await all_at([follower], chain[chain.tip].hash, timeout=60)
    finally:
        await stop_all([follower, seed])


@pytest.mark.slow
async def test_a_node_started_after_two_thousand_blocks_syncs_them(tmp_path: Path) -> None:
    chain = chain_of(2000)
    seed = await start_node(tmp_path, "seed")
    await submit_all(seed, [chain[n] for n in chain.branch(chain.tip)])
    late = await start_node(tmp_path, "late", connect=[seed.listen_address])
    try:
        await all_at([late], chain[chain.tip].hash, timeout=120)
    finally:
        await stop_all([late, seed])


async def test_a_taken_port_fails_start_and_leaves_nothing_open(tmp_path: Path) -> None:
    first = await start_node(tmp_path, "first")
    try:
        with pytest.raises(TransportError, match="cannot listen"):
            await start_node(tmp_path, "second", listen=first.listen_address)
        # The data dir was released: a node can open it right away.
        second = await start_node(tmp_path, "second")
        await second.stop()
    finally:
        await first.stop()


async def test_peers_find_each_other_by_address_gossip(tmp_path: Path) -> None:
    hub = await start_node(tmp_path, "hub")
    b = await start_node(tmp_path, "b", connect=[hub.listen_address])
    await wait_until(lambda: len(hub.peers()) == 1)
    c = await start_node(tmp_path, "c", connect=[hub.listen_address])
    try:
        # Nobody told b and c about each other; the hub's addr answers did.
        await wait_until(
            lambda: (
                any(p.listen_address == b.listen_address for p in c.peers())
                or any(p.listen_address == c.listen_address for p in b.peers())
            )
        )
    finally:
        await stop_all([c, b, hub])


async def test_a_lost_peer_is_redialled_when_it_comes_back(tmp_path: Path) -> None:
    a = await start_node(tmp_path, "a")
    address = a.listen_address
    b = await start_node(tmp_path, "b", connect=[address])
    try:
        await wait_until(lambda: len(b.peers()) == 1)
        await a.stop()
        await wait_until(lambda: b.peers() == [])
        a = await start_node(tmp_path, "a", listen=address)
        await wait_until(lambda: len(b.peers()) == 1, timeout=15)
    finally:
        await stop_all([b, a])
