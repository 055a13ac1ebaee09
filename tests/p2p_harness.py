"""Helpers for P2P and node tests: real nodes in temporary data dirs, and a scripted fake peer.

* ``start_node(tmp_path, "a", connect=[...])``: a real :class:`~node.node.Node` with its own
  data dir, listening on a free loopback port, with short timers so tests run fast.
* ``FakePeer``: a peer we script by hand over a real WebSocket, in the style of Bitcoin Core's
  ``P2PInterface``: ``on_<msgtype>`` hooks (it answers pings by default), ``last_message``,
  ``message_count``, ``send``/``send_frame`` for anything, well-formed or not, and
  ``sync_with_ping`` to know the node has handled everything sent before.
* ``wait_until(predicate)``: poll until true or fail with the predicate's source.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from blocktools import ChainBuilder

from node.core.block import Block
from node.core.errors import DecodeError
from node.core.params import REGTEST, NetworkParams
from node.node import Node, NodeConfig
from node.p2p.manager import P2PConfig
from node.p2p.messages import (
    PROTOCOL_VERSION,
    GetHeaders,
    Headers,
    Message,
    Ping,
    Pong,
    Verack,
    Version,
    decode_message,
)
from node.p2p.transport import WebSocketTransport
from node.runtime import Connection, ConnectionClosed, real_runtime

FAST = {
    "tick": 0.05,
    "handshake_timeout": 5.0,
    "ping_interval": 5.0,
    "block_timeout": 5.0,
    "tx_timeout": 2.0,
}
"""Timer settings that keep tests quick (the defaults suit real networks)."""

_seeds = itertools.count(1)
_nonces = itertools.count(1_000_001)
"""Each fake peer is a distinct node unless a test says otherwise (a node keeps one
connection per peer nonce)."""


async def wait_until(
    predicate: Callable[[], bool], *, timeout: float = 10.0, interval: float = 0.02
) -> None:
    """Poll ``predicate`` until it holds; fail with its source after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            try:
                source = inspect.getsource(predicate).strip()
            except (OSError, TypeError):
                source = repr(predicate)
            raise AssertionError(f"timed out after {timeout} s waiting for: {source}")
        await asyncio.sleep(interval)


async def eventually(
    check: Callable[[], Awaitable[bool]], *, timeout: float = 10.0, interval: float = 0.02
) -> None:
    """Like :func:`wait_until` for a check that must itself await (a node query)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {check.__name__}")
        await asyncio.sleep(interval)


async def in_every_mempool(nodes: Iterable[Node], txid: bytes, *, timeout: float = 10.0) -> None:
    nodes = list(nodes)

    async def every_mempool_holds_it() -> bool:
        for node in nodes:
            if not await node.query(lambda chain, mempool: txid in mempool):
                return False
        return True

    await eventually(every_mempool_holds_it, timeout=timeout)


def node_config(
    tmp_path: Path,
    name: str,
    *,
    params: NetworkParams = REGTEST,
    connect: Iterable[str] = (),
    **p2p: Any,
) -> NodeConfig:
    settings = {"listen": "127.0.0.1:0", **FAST, **p2p}
    return NodeConfig(
        params,
        tmp_path / name,
        P2PConfig(connect=tuple(connect), user_agent=f"/{name}/", **settings),
    )


async def start_node(
    tmp_path: Path,
    name: str,
    *,
    params: NetworkParams = REGTEST,
    connect: Iterable[str] = (),
    **p2p: Any,
) -> Node:
    node = Node(
        node_config(tmp_path, name, params=params, connect=connect, **p2p),
        real_runtime(next(_seeds)),
    )
    await node.start()
    return node


async def submit_all(node: Node, blocks: Iterable[Block]) -> None:
    for block in blocks:
        outcome = await node.submit_block(block)
        assert outcome.accepted, outcome


def extend(
    chain: ChainBuilder, count: int, *, prefix: str = "b", parent: str | None = None
) -> list[str]:
    """``count`` blocks of coinbase only, one second apart, named ``{prefix}{height}``.

    One second, not the target spacing: the regtest genesis is dated today, and a node refuses
    blocks more than two hours ahead of its clock, so a long test chain must be dense.
    """
    names = []
    tip = parent if parent is not None else chain.tip
    for _ in range(count):
        name = f"{prefix}{chain.height(tip) + 1}"
        chain.block(name, parent=tip, time=chain[tip].header.time + 1)
        names.append(name)
        tip = name
    return names


def chain_of(count: int) -> ChainBuilder:
    chain = ChainBuilder()
    extend(chain, count)
    return chain


async def mine(node: Node, chain: ChainBuilder, count: int, *, parent: str | None = None) -> str:
    """Build ``count`` blocks on ``parent`` (default: the builder's tip), submit them to ``node``;
    returns the name of the last."""
    names = extend(chain, count, parent=parent)
    await submit_all(node, (chain[n] for n in names))
    return names[-1]


async def all_at(nodes: Iterable[Node], block_hash: bytes, *, timeout: float = 20.0) -> None:
    nodes = list(nodes)
    await wait_until(lambda: all(n.tip.hash == block_hash for n in nodes), timeout=timeout)


class FakePeer:
    """A hand-scripted peer over a real WebSocket connection to a node."""

    def __init__(
        self,
        *,
        params: NetworkParams = REGTEST,
        genesis_hash: bytes | None = None,
        best_height: int = 0,
        listen_address: str = "",
        user_agent: str = "/fake-peer/",
        nonce: int | None = None,
    ) -> None:
        self.version = Version(
            PROTOCOL_VERSION,
            genesis_hash if genesis_hash is not None else params.genesis_hash,
            best_height,
            listen_address,
            user_agent,
            nonce if nonce is not None else next(_nonces),
            1_764_028_800,
        )
        self.transport = WebSocketTransport()
        self.conn: Connection | None = None
        self.received: list[Message] = []
        self.last_message: dict[str, Message] = {}
        self.message_count: Counter[str] = Counter()
        self.decode_errors = 0
        self.closed = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None
        self._ping_nonce = itertools.count(1)

    # -- connection

    async def connect(self, address: str, *, handshake: bool = True) -> FakePeer:
        self.conn = await self.transport.connect(address)
        self._reader = asyncio.ensure_future(self._read())
        if handshake:
            await self.send(self.version)
            await self.wait_for("version")
            await self.wait_for("verack")
            await self.send(Verack())
        return self

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        await self.transport.close()

    async def __aenter__(self) -> FakePeer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def stop_reading(self) -> None:
        """Leave everything the node sends unread from now on (a stuck or slow peer)."""
        if self._reader is not None:
            self._reader.cancel()

    @property
    def is_closed(self) -> bool:
        return self.closed.is_set()

    # -- sending

    async def send(self, message: Message) -> None:
        await self.send_frame(message.encode())

    async def send_frame(self, frame: bytes) -> None:
        assert self.conn is not None, "connect first"
        await self.conn.send(frame)

    # -- receiving

    async def _read(self) -> None:
        assert self.conn is not None
        try:
            while True:
                frame = await self.conn.recv()
                try:
                    message = decode_message(frame)
                except DecodeError:
                    self.decode_errors += 1
                    continue
                self.received.append(message)
                self.last_message[message.msgtype] = message
                self.message_count[message.msgtype] += 1
                hook = getattr(self, f"on_{message.msgtype}", None)
                if hook is not None:
                    await hook(message)
        except ConnectionClosed:
            pass
        finally:
            self.closed.set()

    async def on_ping(self, message: Ping) -> None:
        await self.send(Pong(message.nonce))

    async def on_getheaders(self, message: GetHeaders) -> None:
        """By default a fake peer has no blocks to offer."""
        await self.send(Headers(()))

    async def wait_for(self, msgtype: str, count: int = 1, timeout: float = 10.0) -> Message:
        await wait_until(
            lambda: self.message_count[msgtype] >= count or self.is_closed, timeout=timeout
        )
        if self.message_count[msgtype] < count:
            raise AssertionError(f"connection closed before {msgtype} arrived")
        return self.last_message[msgtype]

    async def wait_closed(self, timeout: float = 10.0) -> None:
        await wait_until(self.closed.is_set, timeout=timeout)

    async def sync_with_ping(self, timeout: float = 10.0) -> None:
        """Return once the node answered a ping sent after everything sent so far."""
        nonce = next(self._ping_nonce) + 1_000_000
        await self.send(Ping(nonce))
        await wait_until(
            lambda: (
                any(isinstance(m, Pong) and m.nonce == nonce for m in self.received)
                or self.is_closed
            ),
            timeout=timeout,
        )
        if self.is_closed:
            raise AssertionError("connection closed before the pong")
