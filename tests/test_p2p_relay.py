"""Relay and connection rules, checked with scripted peers against a real node.

Relay: a transaction announced by two peers is asked of one at a time, and of the other after
a timeout or a ``notfound``; a child arriving before its parent waits as an orphan while the
parent is fetched; nothing is announced back to the peer it came from.

Connections: dialling oneself is detected by the nonce and never retried; the inbound limit
holds; ``set_network_active(False)`` drops everyone and refuses newcomers, ``True`` reconnects;
at most three peers are asked to push compact blocks; a ban refuses a known address.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from blocktools import ChainBuilder, outputs_of, split
from p2p_harness import FakePeer, chain_of, start_node, submit_all, wait_until

from node.core.tx import Transaction
from node.node import Node
from node.p2p.messages import (
    GetData,
    GetHeaders,
    Headers,
    Inv,
    InvItem,
    InvType,
    NotFound,
    SendCmpct,
    TxMsg,
)


class TxServer(FakePeer):
    """A peer that holds some transactions and answers getdata for them (or not)."""

    def __init__(self, txs: list[Transaction], *, answer: str = "tx") -> None:
        super().__init__()
        self.txs = {tx.txid: tx for tx in txs}
        self.answer = answer

    async def on_getdata(self, message: GetData) -> None:
        for item in message.items:
            tx = self.txs.get(item.hash)
            if self.answer == "tx" and tx is not None:
                await self.send(TxMsg(tx))
            elif self.answer == "notfound":
                await self.send(NotFound((item,)))
            # answer == "silent": let the request time out


def asked(peer: FakePeer, txid: bytes) -> int:
    return sum(
        1 for m in peer.received if isinstance(m, GetData) and any(i.hash == txid for i in m.items)
    )


@pytest.fixture
async def funded(tmp_path: Path) -> AsyncIterator[tuple[Node, ChainBuilder]]:
    node = await start_node(tmp_path, "node", tx_timeout=0.5)
    chain = chain_of(101)
    await submit_all(node, [chain[n] for n in chain.branch(chain.tip)])
    yield node, chain
    await node.stop()


async def in_mempool(node: Node, tx: Transaction) -> bool:
    return await node.query(lambda c, m: tx.txid in m)


async def test_one_request_at_a_time_then_the_next_announcer_after_a_timeout(
    funded: tuple[Node, ChainBuilder],
) -> None:
    node, chain = funded
    tx = chain.spend([chain.coinbase_of("b1")], fee=10_000)
    inv = Inv((InvItem(InvType.TX, tx.txid),))
    async with TxServer([tx], answer="silent") as slow, TxServer([tx]) as good:
        await slow.connect(node.listen_address)
        await good.connect(node.listen_address)
        await slow.send(inv)
        await slow.sync_with_ping()
        await good.send(inv)
        await good.sync_with_ping()
        # Asked of the first announcer only: never of two peers at once.
        assert (asked(slow, tx.txid), asked(good, tx.txid)) == (1, 0)
        # The first does not answer; after the timeout the second is asked and delivers.
        await wait_until(lambda: asked(good, tx.txid) == 1, timeout=5)
        await good.sync_with_ping()
        assert await in_mempool(node, tx)


async def test_more_announcements_than_request_slots_are_all_fetched(
    funded: tuple[Node, ChainBuilder],
) -> None:
    node, chain = funded
    slots = node.manager.config.max_txs_in_flight
    fan = split(chain.coinbase_of("b1"), 2 * slots + 50, fee=100_000)
    await submit_all(node, [chain.block("fan", txs=[fan], time=chain[chain.tip].header.time + 1)])
    pays = [chain.spend([coin], fee=1_000) for coin in outputs_of(fan, chain.miner)]
    async with TxServer(pays) as peer:
        await peer.connect(node.listen_address)
        await peer.send(Inv(tuple(InvItem(InvType.TX, tx.txid) for tx in pays)))
        # Never more than the slots at once, but every one of them in the end.
        await wait_until(lambda: sum(asked(peer, tx.txid) for tx in pays) == len(pays))
        assert max(len(m.items) for m in peer.received if isinstance(m, GetData)) <= slots
        await peer.sync_with_ping()
    assert await node.query(lambda c, m: len(m)) == len(pays)


async def test_notfound_moves_the_request_to_the_next_announcer(
    funded: tuple[Node, ChainBuilder],
) -> None:
    node, chain = funded
    tx = chain.spend([chain.coinbase_of("b1")], fee=10_000)
    inv = Inv((InvItem(InvType.TX, tx.txid),))
    async with TxServer([tx], answer="notfound") as empty, TxServer([tx]) as good:
        await empty.connect(node.listen_address)
        await good.connect(node.listen_address)
        await empty.send(inv)
        await empty.sync_with_ping()
        await good.send(inv)
        await good.sync_with_ping()
        await wait_until(lambda: asked(good, tx.txid) == 1, timeout=1)
        await good.sync_with_ping()
        assert await in_mempool(node, tx)


async def test_a_child_before_its_parent_waits_as_an_orphan(
    funded: tuple[Node, ChainBuilder],
) -> None:
    node, chain = funded
    parent = chain.spend([chain.coinbase_of("b1")], fee=10_000)
    child = chain.spend(outputs_of(parent, chain.miner), fee=10_000)
    async with TxServer([parent, child]) as peer:
        await peer.connect(node.listen_address)
        await peer.send(TxMsg(child))
        # The node cannot place the child, so it asks the sender for the missing parent ...
        await wait_until(lambda: asked(peer, parent.txid) == 1)
        await peer.sync_with_ping()
        # ... and once the parent is in, the child follows.
        assert await in_mempool(node, parent)
        assert await in_mempool(node, child)


async def test_a_transaction_is_not_announced_back_to_its_sender(
    funded: tuple[Node, ChainBuilder],
) -> None:
    node, chain = funded
    tx = chain.spend([chain.coinbase_of("b1")], fee=10_000)
    async with FakePeer() as sender, FakePeer() as listener:
        await sender.connect(node.listen_address)
        await listener.connect(node.listen_address)
        await sender.send(TxMsg(tx))
        await wait_until(
            lambda: any(
                isinstance(m, Inv) and m.items[0].hash == tx.txid for m in listener.received
            )
        )
        await sender.sync_with_ping()
        announced_to_sender = [
            m for m in sender.received if isinstance(m, Inv) and m.items[0].hash == tx.txid
        ]
        assert announced_to_sender == []


async def test_dialling_oneself_is_detected_and_not_repeated(tmp_path: Path) -> None:
    node = await start_node(tmp_path, "narcissus")
    try:
        await node.connect_once(node.listen_address)
        await wait_until(lambda: node.manager.peers == {})
        assert node.listen_address in node.manager.addrbook.own_addresses
        assert node.peers() == []
    finally:
        await node.stop()


async def test_inbound_connections_are_limited(tmp_path: Path) -> None:
    node = await start_node(tmp_path, "busy", max_inbound=2)
    peers = [FakePeer(nonce=n) for n in range(3)]
    try:
        await peers[0].connect(node.listen_address)
        await peers[1].connect(node.listen_address)
        third = peers[2]
        await third.connect(node.listen_address, handshake=False)
        await third.wait_closed()
        assert len(node.peers()) == 2
    finally:
        for peer in peers:
            await peer.close()
        await node.stop()


async def test_network_inactive_drops_and_refuses_then_reconnects(tmp_path: Path) -> None:
    a = await start_node(tmp_path, "a")
    b = await start_node(tmp_path, "b", connect=[a.listen_address])
    try:
        await wait_until(lambda: len(b.peers()) == 1)
        b.set_network_active(False)
        await wait_until(lambda: a.peers() == [] and b.peers() == [])
        async with FakePeer() as stranger:
            await stranger.connect(b.listen_address, handshake=False)
            await stranger.wait_closed()
        b.set_network_active(True)
        await wait_until(lambda: len(b.peers()) == 1 and len(a.peers()) == 1)
    finally:
        await b.stop()
        await a.stop()


async def test_at_most_three_peers_are_asked_to_push_compact_blocks(tmp_path: Path) -> None:
    node = await start_node(tmp_path, "hub")
    peers = [FakePeer(nonce=n) for n in range(5)]
    try:
        for peer in peers:
            await peer.connect(node.listen_address)
            await peer.send(SendCmpct(False, 1))
            await peer.sync_with_ping()
        pushes = [
            any(isinstance(m, SendCmpct) and m.high_bandwidth for m in p.received) for p in peers
        ]
        assert sum(pushes) == 3
        # When one of the three leaves, another peer takes its place.
        leaving = pushes.index(True)
        await peers[leaving].close()
        await wait_until(
            lambda: (
                sum(
                    any(isinstance(m, SendCmpct) and m.high_bandwidth for m in p.received)
                    for i, p in enumerate(peers)
                    if i != leaving
                )
                == 3
            )
        )
    finally:
        for peer in peers:
            await peer.close()
        await node.stop()


async def test_ban_drops_a_peer_and_unban_lets_it_back(tmp_path: Path) -> None:
    a = await start_node(tmp_path, "a")
    b = await start_node(tmp_path, "b", connect=[a.listen_address])
    try:
        await wait_until(lambda: len(b.peers()) == 1)
        key = b.ban(a.listen_address)
        assert key == a.listen_address  # loopback: the exact address, not the host
        await wait_until(lambda: b.peers() == [])
        assert key in b.banned()
        assert b.unban(key)
        await wait_until(lambda: len(b.peers()) == 1, timeout=15)
    finally:
        await b.stop()
        await a.stop()


class Staller(FakePeer):
    """Shows the headers of a longer chain, then never delivers a block."""

    def __init__(self, headers: Headers) -> None:
        super().__init__()
        self.headers = headers

    async def on_getheaders(self, message: GetHeaders) -> None:
        await self.send(self.headers)


async def test_blocks_a_peer_withholds_are_fetched_from_another_and_it_is_dropped(
    tmp_path: Path,
) -> None:
    chain = chain_of(20)
    blocks = [chain[n] for n in chain.branch(chain.tip)]
    seed = await start_node(tmp_path, "seed")
    await submit_all(seed, blocks)
    node = await start_node(tmp_path, "node", block_timeout=0.5)
    try:
        async with Staller(Headers(tuple(b.header for b in blocks))) as staller:
            await staller.connect(node.listen_address)
            await staller.wait_for("getdata")
            node.add_node(seed.listen_address)
            await wait_until(lambda: node.tip.hash == blocks[-1].hash, timeout=10)
            await staller.wait_closed()
            # Each block was asked of the staller once, never twice.
            requested = [
                i.hash for m in staller.received if isinstance(m, GetData) for i in m.items
            ]
            assert len(requested) == len(set(requested))
    finally:
        await node.stop()
        await seed.stop()
