"""The real Transport: aiohttp WebSockets at ``ws://HOST:PORT/p2p``, one binary frame per message.

Why WebSockets rather than raw TCP: framing, a close handshake and keep-alive pings come for free,
the frame limit is enforced by aiohttp before a frame is buffered (``max_msg_size``), and a
browser or any HTTP tool can talk to a node.

- Only binary frames carry messages; a text frame closes the connection.
- A frame over ``max_frame`` makes aiohttp close the connection with code 1009; the reader then
  raises :class:`FrameTooLarge`, so the node can score the peer for it.
- WebSocket-level heartbeat pings (``heartbeat``) detect dead TCP connections even when the P2P
  layer is idle; the protocol's own ping/pong measures latency and liveness on top.

This module moves bytes; it knows nothing of messages (see :mod:`node.p2p.messages`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp import WSCloseCode, WSMsgType, web

from node.p2p.messages import MAX_FRAME_SIZE
from node.runtime import AcceptCallback, Connection, ConnectionClosed, TransportError

P2P_PATH = "/p2p"
CONNECT_TIMEOUT = 5.0
HEARTBEAT = 30.0
CLOSE_TIMEOUT = 1.0
"""Seconds a closing connection waits for the peer's close frame before dropping the socket."""
SHUTDOWN_TIMEOUT = 2.0
"""Seconds a closing listener waits for its connections' handlers to finish."""


class FrameTooLarge(ConnectionClosed):
    """The peer sent a frame over our limit; the transport dropped the connection."""

    def __init__(self, size: int | None, limit: int) -> None:
        self.size = size
        self.limit = limit
        told = f"{size} bytes" if size is not None else "a frame"
        super().__init__(f"{told} exceeds the frame limit of {limit}")


def host_of(address: str) -> str:
    """The host part of "host:port" (or "[v6]:port"); the whole string if it has no port."""
    if address.startswith("["):
        return address[1 : address.find("]")] if "]" in address else address
    host, sep, _port = address.rpartition(":")
    return host if sep and host else address


def split_address(address: str) -> tuple[str, int]:
    """("host", port) of "host:port"; ValueError if the port is missing or out of range."""
    host = host_of(address)
    _before, sep, port_text = address.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"expected HOST:PORT, got {address!r}")
    return host, int(port_text)


def is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


class WebSocketConnection:
    """A Connection over either end of an aiohttp WebSocket."""

    def __init__(
        self,
        ws: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
        remote: str,
        limit: int,
        forget: Callable[[WebSocketConnection], None] | None = None,
    ) -> None:
        self._ws = ws
        self._remote = remote
        self._limit = limit
        self._forget = forget
        self._done = asyncio.Event()

    @property
    def remote(self) -> str:
        return self._remote

    @property
    def closed(self) -> bool:
        return self._ws.closed

    async def send(self, frame: bytes) -> None:
        if self._ws.closed:
            raise ConnectionClosed("connection closed")
        try:
            await self._ws.send_bytes(frame)
        except (ConnectionError, aiohttp.ClientError, RuntimeError) as exc:
            raise ConnectionClosed(f"send failed: {exc}") from exc

    async def recv(self) -> bytes:
        try:
            msg = await self._ws.receive()
        except (ConnectionError, aiohttp.ClientError, RuntimeError) as exc:
            self._done.set()
            raise ConnectionClosed(f"receive failed: {exc}") from exc
        if msg.type == WSMsgType.BINARY:
            data: bytes = msg.data
            return data
        if msg.type == WSMsgType.TEXT:
            await self.close()
            raise ConnectionClosed("text frame on a binary protocol")
        self._done.set()
        if msg.type == WSMsgType.ERROR:
            error: Any = msg.data
            if getattr(error, "code", None) == WSCloseCode.MESSAGE_TOO_BIG:
                raise FrameTooLarge(None, self._limit)
            raise ConnectionClosed(f"connection failed: {error}")
        raise ConnectionClosed("connection closed")

    async def close(self) -> None:
        with contextlib.suppress(ConnectionError, aiohttp.ClientError, RuntimeError):
            await self._ws.close()
        self._done.set()
        if self._forget is not None:
            self._forget(self)

    async def wait_closed(self) -> None:
        await self._done.wait()


class WebSocketListener:
    """A listening socket and the connections it accepted."""

    def __init__(self) -> None:
        self._runner: web.AppRunner | None = None
        self._server: asyncio.AbstractServer | None = None
        self._address = ""
        self.connections: dict[WebSocketConnection, None] = {}
        """Accepted and open, in the order they came (closed in that order)."""
        self.closing = False

    @property
    def address(self) -> str:
        return self._address

    async def close(self) -> None:
        """Stop accepting at the socket, close what was accepted, then stop the server.

        In that order: aiohttp's clean-up waits for open connections, and a connection that
        arrives while it runs can outlive it.
        """
        self.closing = True
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            await conn.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


class WebSocketTransport:
    """Transport over aiohttp: a small web server per listener, one client session to dial."""

    def __init__(
        self,
        *,
        max_frame: int = MAX_FRAME_SIZE,
        connect_timeout: float = CONNECT_TIMEOUT,
        heartbeat: float = HEARTBEAT,
    ) -> None:
        self.max_frame = max_frame
        self.connect_timeout = connect_timeout
        self.heartbeat = heartbeat
        self._session: aiohttp.ClientSession | None = None
        self._listeners: list[WebSocketListener] = []
        self._open: dict[WebSocketConnection, None] = {}

    async def listen(self, address: str, accept: AcceptCallback) -> WebSocketListener:
        host, port = split_address(address)

        listener = WebSocketListener()

        async def handler(request: web.Request) -> web.StreamResponse:
            ws = web.WebSocketResponse(
                max_msg_size=self.max_frame, heartbeat=self.heartbeat, compress=False
            )
            await ws.prepare(request)
            peername = request.transport.get_extra_info("peername") if request.transport else None
            remote = _format_address(peername) if peername else "unknown:0"
            conn = WebSocketConnection(ws, remote, self.max_frame)
            listener.connections[conn] = None
            try:
                if not listener.closing:
                    await accept(conn)
                    await conn.wait_closed()
            finally:
                listener.connections.pop(conn, None)
                # A server shutting down cancels this handler; the close must still happen,
                # and quickly, or the socket outlives the listener.
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.close(), CLOSE_TIMEOUT)
                # An upgraded connection never serves HTTP again; release the socket now
                # rather than trusting the server's keep-alive bookkeeping to (it does not
                # always, when the client closed first).
                if request.transport is not None:
                    request.transport.close()
            return ws

        app = web.Application()
        app.router.add_get(P2P_PATH, handler)
        runner = web.AppRunner(
            app, handle_signals=False, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT
        )
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise TransportError(f"cannot listen on {address}: {exc.strerror or exc}") from exc
        bound = address
        server = site._server
        if server is not None and getattr(server, "sockets", None):
            bound = _format_address(server.sockets[0].getsockname())  # type: ignore[attr-defined]
        listener._runner, listener._server, listener._address = runner, server, bound
        self._listeners.append(listener)
        return listener

    async def connect(self, address: str) -> Connection:
        try:
            split_address(address)
        except ValueError as exc:
            raise TransportError(str(exc)) from exc
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, connect=self.connect_timeout)
            )
        try:
            ws = await self._session.ws_connect(
                f"ws://{address}{P2P_PATH}",
                max_msg_size=self.max_frame,
                heartbeat=self.heartbeat,
                autoclose=True,
            )
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise TransportError(f"cannot connect to {address}: {exc}") from exc
        conn = WebSocketConnection(ws, address, self.max_frame, self._forget)
        self._open[conn] = None
        return conn

    def _forget(self, conn: WebSocketConnection) -> None:
        self._open.pop(conn, None)

    async def close(self) -> None:
        for conn in list(self._open):
            await conn.close()
        self._open.clear()
        for listener in self._listeners:
            await listener.close()
        self._listeners.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None


def _format_address(sockname: Any) -> str:
    host, port = sockname[0], sockname[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
