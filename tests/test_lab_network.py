"""Simulated links: what a frame sent over a :class:`SimNetwork` experiences.

Each case opens a real connection between two in-memory transports on the virtual-time loop,
sends frames one way, and checks when (in virtual seconds) and in what order they arrive:

* latency: each frame arrives exactly ``latency`` after it was sent;
* jitter: delays spread over ``[latency, latency + jitter)``, yet frames never overtake each
  other (a link is a stream);
* bandwidth: frames queue behind each other, each occupying the link ``size / bandwidth``;
* loss: a lost transmission costs a retransmission timeout, never the frame;
* closing: frames already sent still arrive, then the reader sees the close; a reset drops
  them; a sender that fills the window waits until the reader takes a frame;
* partitions: a cut resets live connections at both ends at once and refuses new ones; after a
  heal, connections open again;
* a link spec with a meaningless value is refused with the reason.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

import pytest

from node.lab.network import MIN_RTO, LinkSpec, SimNetwork
from node.lab.vtime import VirtualClock, VirtualTimeLoop, run_virtual
from node.runtime import Connection, ConnectionClosed, TransportError

Received = list[tuple[float, bytes]]


def on_link(
    spec: LinkSpec, body: Callable[[SimNetwork, Connection, Connection], Awaitable[None]]
) -> None:
    """Run ``body(network, a_to_b, b_side)`` with ``a`` connected to ``b`` over ``spec``."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, VirtualTimeLoop)
        network = SimNetwork(VirtualClock(loop, 0.0), random.Random(7))
        network.set_link("a", "b", spec)
        accepted: asyncio.Queue[Connection] = asyncio.Queue()

        async def accept(conn: Connection) -> None:
            await accepted.put(conn)

        await network.transport("b").listen("b:1", accept)
        outbound = await network.transport("a").connect("b:1")
        inbound = await accepted.get()
        await body(network, outbound, inbound)

    run_virtual(VirtualTimeLoop(), main())


async def send_and_collect(
    sender: Connection, receiver: Connection, frames: list[bytes]
) -> Received:
    loop = asyncio.get_running_loop()
    for frame in frames:
        await sender.send(frame)
    received = []
    for _ in frames:
        frame = await receiver.recv()
        received.append((loop.time(), frame))
    return received


def test_a_frame_arrives_exactly_one_latency_later() -> None:
    async def body(network: SimNetwork, a: Connection, b: Connection) -> None:
        start = asyncio.get_running_loop().time()
        received = await send_and_collect(a, b, [b"one", b"two"])
        assert received == [(start + 0.25, b"one"), (start + 0.25, b"two")]

    on_link(LinkSpec(latency=0.25), body)


def test_jitter_spreads_delays_but_never_reorders() -> None:
    async def body(network: SimNetwork, a: Connection, b: Connection) -> None:
        start = asyncio.get_running_loop().time()
        frames = [bytes([i]) for i in range(200)]
        received = await send_and_collect(a, b, frames)
        assert [frame for _, frame in received] == frames
        times = [t - start for t, _ in received]
        assert times == sorted(times)
        assert min(times) >= 0.1 and max(times) < 0.1 + 0.5
        assert len(set(times)) > 5  # the jitter really spread them

    on_link(LinkSpec(latency=0.1, jitter=0.5), body)


def test_bandwidth_queues_frames_behind_each_other() -> None:
    async def body(network: SimNetwork, a: Connection, b: Connection) -> None:
        start = asyncio.get_running_loop().time()
        received = await send_and_collect(a, b, [bytes(1000), bytes(3000), bytes(500)])
        # 10 kB/s: 0.1 s, then 0.3 s more, then 0.05 s more; plus 0.01 s of latency each.
        assert [round(t - start, 9) for t, _ in received] == [0.11, 0.41, 0.46]

    on_link(LinkSpec(latency=0.01, bandwidth=10_000), body)


def test_loss_costs_retransmission_timeouts_never_frames() -> None:
    async def body(network: SimNetwork, a: Connection, b: Connection) -> None:
        start = asyncio.get_running_loop().time()
        frames = [bytes([i]) for i in range(200)]
        received = await send_and_collect(a, b, frames)
        assert [frame for _, frame in received] == frames
        delays = [round(t - start - 0.05, 9) for t, _ in received]
        retransmissions = [d / MIN_RTO for d in delays]
        assert all(abs(r - round(r)) < 1e-6 for r in retransmissions)
        assert max(retransmissions) >= 1  # some frames were lost at least once

    on_link(LinkSpec(latency=0.05, loss=0.3), body)


def test_frames_sent_before_a_close_still_arrive_then_the_close() -> None:
    async def body(network: SimNetwork, a: Connection, b: Connection) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        await a.send(b"one")
        await a.send(b"two")
        await a.close()
        assert await b.recv() == b"one"
        assert await b.recv() == b"two"
        assert loop.time() - start == 0.3
        with pytest.raises(ConnectionClosed, match="closed by the peer"):
            await b.recv()

    on_link(LinkSpec(latency=0.3), body)


def test_a_reset_drops_the_frames_in_flight() -> None:
    async def body(network: SimNetwork, a: Connection, b: Connection) -> None:
        await a.send(b"lost with the connection")
        network.reset("a", "b")
        with pytest.raises(ConnectionClosed, match="is cut"):
            await b.recv()

    on_link(LinkSpec(latency=0.3), body)


def test_a_sender_that_fills_the_window_waits_for_the_reader() -> None:
    async def body(network: SimNetwork, a: Connection, b: Connection) -> None:
        loop = asyncio.get_running_loop()
        window = network.window
        for i in range(window):
            await a.send(bytes([i % 256]))
        blocked = asyncio.ensure_future(a.send(b"one too many"))
        await asyncio.sleep(5.0)
        assert not blocked.done()  # every frame arrived, none was read
        await b.recv()
        await blocked
        read_at = loop.time()
        for _ in range(window - 1):
            await b.recv()
        assert await b.recv() == b"one too many"
        assert loop.time() == read_at + 0.01

    on_link(LinkSpec(latency=0.01), body)


def test_a_cut_resets_both_ends_and_refuses_new_connections_until_healed() -> None:
    async def body(network: SimNetwork, a: Connection, b: Connection) -> None:
        network.partition(["a"], ["b"])
        assert a.closed and b.closed
        with pytest.raises(ConnectionClosed):
            await b.recv()
        with pytest.raises(ConnectionClosed):
            await a.send(b"after the cut")
        with pytest.raises(TransportError, match="unreachable"):
            await network.transport("a").connect("b:1")
        network.heal()
        again = await network.transport("a").connect("b:1")
        assert not again.closed

    on_link(LinkSpec(latency=0.01), body)


def test_a_crashed_host_resets_its_connections() -> None:
    async def body(network: SimNetwork, a: Connection, b: Connection) -> None:
        network.reset_host("b")
        with pytest.raises(ConnectionClosed, match="b is gone"):
            await a.recv()

    on_link(LinkSpec(), body)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("latency", -1.0, "latency"),
        ("latency", float("inf"), "latency"),
        ("jitter", -0.1, "jitter"),
        ("bandwidth", 0.0, "bandwidth"),
        ("loss", 1.0, "loss"),
        ("loss", -0.5, "loss"),
    ],
)
def test_a_meaningless_link_spec_is_refused(field: str, value: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LinkSpec(**{field: value})
