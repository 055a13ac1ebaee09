"""The in-memory transport, the link policy and compact-block rebuilding: the pieces the
fork-lab simulator builds on.

* frames cross a MemoryNetwork whole and in order, latency delays without reordering, a cut
  link drops frames and refuses connections, an oversized frame drops the connection with
  FrameTooLarge on the receiving side; a subclass's wires carry every frame, and it is told of
  each connection before the acceptor runs;
* nodes with in-memory chains and inline execution (the simulator's runtime) form a network
  over it: a block propagates, a partition of the wires splits the chain, healing joins it;
* the link policy delays a real node's frames by the latency it is given;
* PartialBlock rebuilds a block from candidates and never trusts a short id blindly.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence

import pytest
from blocktools import ChainBuilder
from p2p_harness import FAST, all_at, chain_of, extend, start_node, submit_all, wait_until

from node.core.params import REGTEST
from node.core.tx import Transaction
from node.node import Node, NodeConfig
from node.p2p.compact import PartialBlock, make_compact, short_id, short_id_key
from node.p2p.manager import P2PConfig
from node.p2p.memory import MemoryConnection, MemoryNetwork, Wire
from node.p2p.messages import CmpctBlock
from node.p2p.transport import FrameTooLarge
from node.runtime import (
    Connection,
    ConnectionClosed,
    InlineExecutor,
    Runtime,
    SystemClock,
    TransportError,
)

# -- the transport


async def _pair(network: MemoryNetwork) -> tuple[Connection, Connection]:
    accepted: asyncio.Queue[Connection] = asyncio.Queue()

    async def accept(conn: Connection) -> None:
        await accepted.put(conn)

    await network.transport("server").listen("server:1", accept)
    client = await network.transport("client").connect("server:1")
    return client, await accepted.get()


async def test_frames_arrive_whole_and_in_order() -> None:
    network = MemoryNetwork(SystemClock())
    client, server = await _pair(network)
    assert server.remote.startswith("client:")
    frames = [bytes([n]) * n for n in range(1, 50)]
    for frame in frames:
        await client.send(frame)
    assert [await server.recv() for _ in frames] == frames
    await client.close()
    with pytest.raises(ConnectionClosed):
        await server.recv()


async def test_latency_delays_frames_without_reordering() -> None:
    clock = SystemClock()
    network = MemoryNetwork(clock)
    network.set_latency("client", "server", 0.05)
    client, server = await _pair(network)
    start = clock.monotonic()
    for n in range(20):
        await client.send(bytes([n]))
    received = [await server.recv() for _ in range(20)]
    elapsed = clock.monotonic() - start
    assert received == [bytes([n]) for n in range(20)]
    # One latency for the whole stream: frames pipeline, they do not queue behind each other.
    assert 0.05 <= elapsed < 0.5


async def test_cut_link_drops_frames_and_refuses_connections() -> None:
    network = MemoryNetwork(SystemClock())
    client, server = await _pair(network)
    network.cut("client", "server")
    await client.send(b"lost")
    with pytest.raises(TransportError):
        await network.transport("client").connect("server:1")
    network.heal()
    await client.send(b"kept")
    assert await server.recv() == b"kept"


async def test_oversized_frame_drops_the_connection() -> None:
    network = MemoryNetwork(SystemClock(), max_frame=100)
    client, server = await _pair(network)
    with pytest.raises(ConnectionClosed):
        await client.send(bytes(101))
    with pytest.raises(FrameTooLarge):
        await server.recv()


class _TappedNetwork(MemoryNetwork):
    """A subclass through the documented hooks only: its wires log what they carry, and it
    notes each connection as it is told of it (with whether the acceptor has run yet)."""

    def __init__(self) -> None:
        super().__init__(SystemClock())
        self.carried: list[bytes] = []
        self.told: list[tuple[str, str, bool]] = []
        self.accepted = False

    def wire(self) -> Wire:
        network, inner = self, super().wire()

        class Tapped:
            async def put(self, delay: float, frame: bytes) -> None:
                network.carried.append(frame)
                await inner.put(delay, frame)

            async def get(self) -> bytes:
                return await inner.get()

            def close(self, error: ConnectionClosed, *, discard: bool) -> None:
                inner.close(error, discard=discard)

        return Tapped()

    def connected(self, dialer: str, conn: MemoryConnection) -> None:
        self.told.append((dialer, conn.remote, self.accepted))


async def test_a_subclass_moves_every_frame_on_its_own_wires_and_is_told_of_connections() -> None:
    network = _TappedNetwork()
    accepted: asyncio.Queue[Connection] = asyncio.Queue()

    async def accept(conn: Connection) -> None:
        network.accepted = True
        await accepted.put(conn)

    await network.transport("server").listen("server:1", accept)
    client = await network.transport("client").connect("server:1")
    server = await accepted.get()
    assert network.told == [("client", "server:1", False)]
    await client.send(b"ping")
    assert await server.recv() == b"ping"
    await server.send(b"pong")
    assert await client.recv() == b"pong"
    assert network.carried == [b"ping", b"pong"]


# -- a simulated network: in-memory chains, inline execution


def sim_node(
    network: MemoryNetwork, name: str, connect: Sequence[str] = (), **settings: float
) -> Node:
    """A node as the simulator runs it: in-memory chain, inline execution, seeded choices."""
    runtime = Runtime(SystemClock(), random.Random(name), network.transport(name), InlineExecutor())
    timers = {**FAST, **settings}
    p2p = P2PConfig(listen=f"{name}:1", connect=tuple(connect), **timers)  # type: ignore[arg-type]
    return Node(NodeConfig(REGTEST, None, p2p), runtime)


async def test_nodes_over_memory_partition_and_heal() -> None:
    network = MemoryNetwork(SystemClock())
    names = ["n0", "n1", "n2", "n3"]
    nodes = []
    for i, name in enumerate(names):
        node = sim_node(network, name, [f"{n}:1" for n in names[:i]])
        await node.start()
        nodes.append(node)
    try:
        await wait_until(lambda: all(len(n.peers()) == 3 for n in nodes))
        chain = chain_of(5)
        await submit_all(nodes[0], [chain[n] for n in chain.branch(chain.tip)])
        await all_at(nodes, chain[chain.tip].hash)

        network.partition(["n0", "n1"], ["n2", "n3"])
        for node in nodes:  # a black hole: the peers notice by their pings (here: at once)
            for other in ("n0", "n1", "n2", "n3"):
                if network.is_cut(node.listen_address.split(":")[0], other):
                    node.disconnect_node(address=f"{other}:1")
        shared = chain.tip
        left = extend(chain, 1, prefix="l", parent=shared)
        right = extend(chain, 3, prefix="r", parent=shared)
        await submit_all(nodes[0], [chain[n] for n in left])
        await submit_all(nodes[3], [chain[n] for n in right])
        await all_at(nodes[:2], chain[left[-1]].hash)
        await all_at(nodes[2:], chain[right[-1]].hash)

        network.heal()
        await all_at(nodes, chain[right[-1]].hash, timeout=20)
    finally:
        for node in nodes:
            await node.stop()


async def test_lost_announcements_are_caught_up_by_the_headers_poll() -> None:
    network = MemoryNetwork(SystemClock())
    a = sim_node(network, "a", headers_poll_interval=0.3)
    b = sim_node(network, "b", ["a:1"], headers_poll_interval=0.3)
    await a.start()
    await b.start()
    try:
        await wait_until(lambda: len(a.peers()) == 1 and len(b.peers()) == 1)
        network.cut("a", "b")  # a black hole: frames vanish, the connection stays
        chain = chain_of(3)
        await submit_all(a, [chain[n] for n in chain.branch(chain.tip)])
        network.heal()
        # No new block will be announced; the periodic getheaders brings b up to date.
        await all_at([b], chain[chain.tip].hash, timeout=10)
        assert len(b.peers()) == 1
    finally:
        await b.stop()
        await a.stop()


# -- the link policy on real sockets


async def test_link_latency_delays_a_real_nodes_frames(tmp_path: object) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    a = await start_node(tmp_path, "a")
    b = await start_node(tmp_path, "b", connect=[a.listen_address])
    try:
        await wait_until(lambda: len(a.peers()) == 1 and len(b.peers()) == 1)
        chain = ChainBuilder()
        a.links.set_latency(b.listen_address, 0.3)
        clock = SystemClock()
        start = clock.monotonic()
        await submit_all(a, [chain.block("b1", time=chain["genesis"].header.time + 1)])
        await all_at([b], chain["b1"].hash)
        assert clock.monotonic() - start >= 0.3
    finally:
        await b.stop()
        await a.stop()


# -- compact blocks


def _block_with(txs: list[Transaction]) -> tuple[ChainBuilder, CmpctBlock]:
    chain = chain_of(101)
    block = chain.block("c", txs=txs, time=chain[chain.tip].header.time + 1)
    return chain, make_compact(block, nonce=7)


def _payments(count: int) -> list[Transaction]:
    chain = chain_of(101)
    coins = [chain.coinbase_of(f"b{h}") for h in range(1, count + 1)]
    return [chain.spend([coin], fee=1000) for coin in coins]


def test_a_block_is_rebuilt_from_the_mempool() -> None:
    txs = _payments(5)
    chain, compact = _block_with(txs)
    partial = PartialBlock(compact)
    assert partial.missing() == (1, 2, 3, 4, 5)
    partial.fill_from(reversed(txs + _payments(2)))  # any order, with strangers
    assert partial.missing() == ()
    assert partial.block() == chain["c"]


def test_missing_transactions_are_filled_from_a_blocktxn_reply() -> None:
    txs = _payments(4)
    chain, compact = _block_with(txs)
    partial = PartialBlock(compact)
    partial.fill_from([txs[0], txs[2]])
    assert partial.missing() == (2, 4)
    with pytest.raises(ValueError):
        partial.fill_missing([txs[1]])
    partial.fill_missing([txs[1], txs[3]])
    assert partial.block() == chain["c"]


def test_colliding_short_ids_in_a_cmpctblock_mean_fetch_the_block() -> None:
    _chain, compact = _block_with(_payments(2))
    doubled = CmpctBlock(
        compact.header, compact.nonce, (compact.short_ids[0],) * 2, compact.prefilled
    )
    with pytest.raises(ValueError, match="collision"):
        PartialBlock(doubled)


def test_a_wrong_transaction_in_a_slot_is_caught_by_the_merkle_root() -> None:
    txs = _payments(2)
    _chain, compact = _block_with(txs)
    partial = PartialBlock(compact)
    partial.fill_from(txs)
    partial.slots[1] = txs[1]  # as if a chance short-id match had put the wrong one here
    assert partial.block() is None


def test_short_ids_are_keyed_per_block_and_nonce() -> None:
    txid = bytes(32)
    header = chain_of(1)["b1"].header.serialize()
    ids = {short_id(short_id_key(header, nonce), txid) for nonce in range(50)}
    assert len(ids) == 50
    assert all(len(i) == 6 for i in ids)
