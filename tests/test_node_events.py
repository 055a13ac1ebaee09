"""Node events: what a subscriber sees, and that a slow one never holds the node back.

The bus is checked on its own (bounded queues, the lost-events notice arriving in order), then
on a real node through a reorganisation: block connected and disconnected events, a competing
block stored on a side branch, the new tip with its reorg depth, and the transactions leaving
and re-entering the mempool.
"""

from __future__ import annotations

from pathlib import Path

from p2p_harness import extend, mine, start_node, submit_all

from node.events import (
    BlockConnected,
    BlockDisconnected,
    Event,
    EventBus,
    EventsLost,
    NewTip,
    PeerConnected,
    PeerDisconnected,
    Reorg,
    SideBlock,
    TxAccepted,
    TxRemoved,
)


def _tip(n: int) -> NewTip:
    return NewTip(bytes([n]) * 32, n, bytes(32), 0, 0)


def drain(sub: object) -> list[Event]:
    events = []
    while (event := sub.get_nowait()) is not None:  # type: ignore[attr-defined]
        events.append(event)
    return events


def test_every_subscriber_gets_every_event_in_order() -> None:
    bus = EventBus()
    first, second = bus.subscribe(), bus.subscribe()
    for n in range(5):
        bus.publish(_tip(n))
    assert drain(first) == drain(second) == [_tip(n) for n in range(5)]


def test_a_slow_subscriber_loses_events_and_is_told_in_order() -> None:
    bus = EventBus()
    slow = bus.subscribe(maxsize=3)
    fast = bus.subscribe(maxsize=100)
    for n in range(10):
        bus.publish(_tip(n))  # never waits, whatever the subscribers do
    # The slow one kept what fitted, then learns how many it missed ...
    assert drain(slow) == [_tip(0), _tip(1), _tip(2), EventsLost(7)]
    # ... and once it has room again, events flow after the notice, never before it.
    bus.publish(_tip(10))
    assert drain(slow) == [_tip(10)]
    assert drain(fast) == [_tip(n) for n in range(11)]


def test_notice_comes_before_the_first_event_after_a_loss() -> None:
    bus = EventBus()
    sub = bus.subscribe(maxsize=3)
    for n in range(5):
        bus.publish(_tip(n))
    assert sub.get_nowait() == _tip(0)
    assert sub.get_nowait() == _tip(1)
    bus.publish(_tip(5))  # room for the notice and the event: both go in, notice first
    assert drain(sub) == [_tip(2), EventsLost(2), _tip(5)]


def test_subscribing_to_some_kinds_only() -> None:
    bus = EventBus()
    sub = bus.subscribe(kinds=[PeerConnected])
    bus.publish(_tip(1))
    bus.publish(PeerConnected(1, "127.0.0.1:1", False, "/x/"))
    assert drain(sub) == [PeerConnected(1, "127.0.0.1:1", False, "/x/")]


async def test_closed_subscription_ends_iteration() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    bus.publish(_tip(1))
    bus.close()
    assert [event async for event in sub] == [_tip(1)]


async def test_a_reorg_is_told_as_events(tmp_path: Path) -> None:
    from blocktools import ChainBuilder

    node = await start_node(tmp_path, "a")
    try:
        chain = ChainBuilder()
        shared = await mine(node, chain, 101)
        tx = chain.spend([chain.coinbase_of("b1")], fee=10_000)
        sub = node.subscribe()
        await node.submit_tx(tx)
        losing = chain.block("x102", parent=shared, txs=[tx], time=chain[shared].header.time + 1)
        await submit_all(node, [losing])
        winning = extend(chain, 2, prefix="y", parent=shared)
        await submit_all(node, [chain[n] for n in winning])
        events = drain(sub)
    finally:
        await node.stop()
    kinds = [type(e).__name__ for e in events]
    assert kinds == [
        "TxAccepted",  # the payment enters the mempool
        "BlockConnected",  # x102 confirms it
        "NewTip",
        "TxRemoved",
        "SideBlock",  # y102 has x102's work: stored beside it, x102 stays the tip
        "BlockDisconnected",  # y103 beats x102: x102 goes,
        "BlockConnected",  # y102 and y103 come
        "BlockConnected",
        "NewTip",
        "Reorg",
        "TxAccepted",  # the payment is back, unconfirmed
    ], kinds
    assert isinstance(events[3], TxRemoved) and events[3].reason == "block"
    side = events[4]
    assert isinstance(side, SideBlock) and side.block == chain[winning[0]]
    assert (side.height, side.fork_height, side.source) == (102, 101, "local")
    disconnected = events[5]
    assert isinstance(disconnected, BlockDisconnected) and disconnected.block == losing
    assert [e.height for e in events if isinstance(e, BlockConnected)] == [102, 102, 103]
    new_tip, reorg, back = events[8], events[9], events[10]
    assert isinstance(new_tip, NewTip) and new_tip.reorg_depth == 1
    assert new_tip.hash == chain[winning[-1]].hash
    assert isinstance(reorg, Reorg) and (reorg.depth, reorg.connected) == (1, 2)
    assert reorg.fork_height == 101
    assert isinstance(back, TxAccepted) and back.tx == tx and back.source == "reorg"


async def test_peers_coming_and_going_are_told(tmp_path: Path) -> None:
    from p2p_harness import FakePeer, wait_until

    node = await start_node(tmp_path, "a")
    sub = node.subscribe(kinds=[PeerConnected, PeerDisconnected])
    try:
        async with FakePeer(user_agent="/visitor/") as peer:
            await peer.connect(node.listen_address)
            await peer.sync_with_ping()
        await wait_until(lambda: node.peers() == [])
        connected, disconnected = drain(sub)
    finally:
        await node.stop()
    assert isinstance(connected, PeerConnected)
    assert (connected.inbound, connected.user_agent) == (True, "/visitor/")
    assert isinstance(disconnected, PeerDisconnected)
    assert disconnected.peer_id == connected.peer_id
    assert disconnected.reason


def test_a_side_block_on_the_event_stream_names_its_fork_and_its_source() -> None:
    from blocktools import ChainBuilder

    from node.rpc.stream import EVENT_TYPES, event_json

    chain = ChainBuilder()
    chain.extend(3)
    block = chain.block("c3", parent="b2")
    message = event_json(SideBlock(block, 3, 2, "127.0.0.1:18444"))
    assert message == {
        "type": "side_block",
        "hash": block.hash_hex,
        "height": 3,
        "previous_hash": chain["b2"].hash_hex,
        "time": block.header.time,
        "txs": 1,
        "size": block.size,
        "fork_height": 2,
        "source": "127.0.0.1:18444",
    }
    assert EVENT_TYPES["side_block"] is SideBlock
