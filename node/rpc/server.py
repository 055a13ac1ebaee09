"""The API server: JSON-RPC, REST, the event stream and metrics on one aiohttp application.

==================  ======  =====================================================  ===========
path                method  what                                                   credentials
==================  ======  =====================================================  ===========
``/`` and ``/rpc``  POST    JSON-RPC (:mod:`node.rpc.jsonrpc`)                     always
``/rest/...``       GET     read-only JSON (:mod:`node.rpc.rest`)                  if private
``/events``         GET     WebSocket event stream (:mod:`node.rpc.stream`)        if private
``/metrics``        GET     Prometheus metrics (:mod:`node.rpc.metrics`)           if private
==================  ======  =====================================================  ===========

Credentials are HTTP basic auth checked against the cookie and the configured user/password
(:mod:`node.rpc.auth`). JSON-RPC can change the node (send, mine, stop), so it always needs
them; the read-only routes need them only when ``rest_public`` is false. A wrong password is
answered after a quarter of a second, as bitcoind does, to slow down guessing.

State lives on the application under typed keys (:data:`CONTEXT`, :data:`SETTINGS`...), not in
globals, and the background task that feeds long polls and counters from the node's events is
started and stopped by ``cleanup_ctx``, so it runs if and only if the server started.
:class:`ApiServer` binds the address (a port already in use is a clear
:class:`~node.config.ConfigError`) and stops cleanly: long polls are released and event streams
closed before the listener goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import WSCloseCode, WSMsgType, web

from node import __version__
from node.config import ConfigError, Endpoint
from node.core.hashing import hash_hex
from node.core.header import difficulty
from node.events import BlockConnected, BlockDisconnected, Event, NewTip, TxAccepted, TxRemoved
from node.rpc.auth import Credentials
from node.rpc.context import RpcContext
from node.rpc.jsonfmt import dumps
from node.rpc.jsonrpc import Dispatcher
from node.rpc.metrics import CONTENT_TYPE, Family, gauge, labelled, render
from node.rpc.rest import add_rest_routes
from node.rpc.stream import STREAM_QUEUE, event_json, parse_types

log = logging.getLogger("forklab.rpc")

MAX_BODY = 8 * 1024 * 1024
"""Largest request body: a full block in hex is 2 MB; batches get room too."""

AUTH_FAILURE_DELAY = 0.25
WS_HEARTBEAT = 30.0


@dataclass(frozen=True)
class ApiSettings:
    credentials: Credentials
    rest_public: bool = True


CONTEXT = web.AppKey("context", RpcContext)
DISPATCHER = web.AppKey("dispatcher", Dispatcher)
SETTINGS = web.AppKey("settings", ApiSettings)
STREAMS = web.AppKey("streams", set[web.WebSocketResponse])


def _unauthorized() -> web.Response:
    return web.Response(
        status=401,
        text="401 Unauthorized: pass the cookie (or rpc_user/rpc_password) by HTTP basic auth\n",
        headers={"WWW-Authenticate": 'Basic realm="jsonrpc"'},
    )


async def authorize(request: web.Request, *, always: bool) -> web.Response | None:
    """None if the request may proceed, else the 401 to answer."""
    settings = request.app[SETTINGS]
    if not always and settings.rest_public:
        return None
    header = request.headers.get("Authorization")
    if header is None:
        return _unauthorized()
    if not settings.credentials.check_header(header):
        log.warning("wrong RPC credentials from %s", request.remote)
        await asyncio.sleep(AUTH_FAILURE_DELAY)
        return _unauthorized()
    return None


async def handle_rpc(request: web.Request) -> web.StreamResponse:
    if request.method != "POST":
        return web.Response(status=405, text="JSONRPC server handles only POST requests")
    refused = await authorize(request, always=True)
    if refused is not None:
        return refused
    body = await request.read()
    reply = await request.app[DISPATCHER].handle(body)
    if reply.body is None:
        return web.Response(status=204)
    return web.Response(status=reply.status, text=reply.body, content_type="application/json")


async def handle_events(request: web.Request) -> web.StreamResponse:
    refused = await authorize(request, always=False)
    if refused is not None:
        return refused
    try:
        kinds = parse_types(request.query.get("types"))
    except ValueError as exc:
        return web.json_response({"error": str(exc)}, status=400)
    ctx = request.app[CONTEXT]
    ws = web.WebSocketResponse(heartbeat=WS_HEARTBEAT)
    await ws.prepare(request)
    streams = request.app[STREAMS]
    streams.add(ws)
    subscription = ctx.node.subscribe(maxsize=STREAM_QUEUE, kinds=kinds)
    tip = ctx.node.tip
    hello = {
        "type": "hello",
        "network": ctx.node.params.name,
        "height": tip.height,
        "hash": hash_hex(tip.hash),
        "types": [k.kind for k in kinds] if kinds is not None else "all",
    }

    async def pump() -> None:
        await ws.send_str(dumps(hello))
        async for event in subscription:
            await ws.send_str(dumps(event_json(event)))

    sender = asyncio.create_task(pump())
    try:
        async for message in ws:
            if message.type is WSMsgType.ERROR:
                break
    finally:
        subscription.close()
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError, RuntimeError):
            await sender
        streams.discard(ws)
    return ws


async def handle_metrics(request: web.Request) -> web.StreamResponse:
    refused = await authorize(request, always=False)
    if refused is not None:
        return refused
    ctx = request.app[CONTEXT]
    families = await gather_metrics(ctx, len(request.app[STREAMS]))
    return web.Response(body=render(families).encode(), headers={"Content-Type": CONTENT_TYPE})


async def gather_metrics(ctx: RpcContext, subscribers: int) -> list[Family]:
    node = ctx.node
    tip = node.tip
    bits, mempool_count, mempool_bytes, mempool_fees = await node.query(
        lambda chain, mempool: (
            chain.tip.header.bits,
            len(mempool),
            mempool.total_bytes,
            mempool.total_fees,
        )
    )
    peers = node.peers()
    inbound = sum(1 for p in peers if p.inbound)
    return [
        gauge("forklab_info", "What runs here.", 1, network=node.params.name, version=__version__),
        gauge("forklab_uptime_seconds", "Seconds since the node started.", node.uptime),
        gauge("forklab_block_height", "Height of the active tip.", tip.height),
        gauge("forklab_header_height", "Height of the best known header.", tip.best_header_height),
        gauge(
            "forklab_chain_work_log2",
            "log2 of the active chain's cumulative work.",
            math.log2(tip.chain_work) if tip.chain_work > 0 else 0.0,
        ),
        gauge("forklab_difficulty", "Difficulty of the tip.", difficulty(bits)),
        gauge("forklab_mempool_transactions", "Transactions in the mempool.", mempool_count),
        gauge("forklab_mempool_bytes", "Encoded bytes in the mempool.", mempool_bytes),
        gauge("forklab_mempool_fees", "Fees in the mempool, in coins.", mempool_fees / 1e8),
        labelled(
            "forklab_peers",
            "gauge",
            "Connected peers by direction.",
            {"inbound": inbound, "outbound": len(peers) - inbound},
            "direction",
        ),
        gauge(
            "forklab_network_active", "1 unless networking is disabled.", int(node.network_active)
        ),
        gauge("forklab_event_subscribers", "Open /events streams.", subscribers),
        *ctx.counters.families(),
    ]


def _count(ctx: RpcContext, event: Event) -> None:
    counters = ctx.counters
    if isinstance(event, BlockConnected):
        counters.blocks_connected += 1
    elif isinstance(event, BlockDisconnected):
        counters.blocks_disconnected += 1
    elif isinstance(event, NewTip):
        if event.reorg_depth:
            counters.reorgs += 1
            counters.reorg_depth_max = max(counters.reorg_depth_max, event.reorg_depth)
    elif isinstance(event, TxAccepted):
        counters.txs_accepted += 1
    elif isinstance(event, TxRemoved):
        counters.txs_removed[event.reason] += 1


async def _watch_events(app: web.Application) -> AsyncIterator[None]:
    """Feed long polls and counters from the node's events while the server runs."""
    ctx = app[CONTEXT]
    subscription = ctx.node.subscribe(
        maxsize=STREAM_QUEUE,
        kinds=(BlockConnected, BlockDisconnected, NewTip, TxAccepted, TxRemoved),
    )

    async def watch() -> None:
        async for event in subscription:
            _count(ctx, event)
            if isinstance(event, NewTip):
                ctx.templates.tip_changed()

    task = asyncio.create_task(watch())
    yield
    subscription.close()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _close_streams(app: web.Application) -> None:
    app[CONTEXT].templates.close()
    streams = app[STREAMS]
    for ws in tuple(streams):
        await ws.close(code=WSCloseCode.GOING_AWAY, message=b"node stopping")


def build_app(ctx: RpcContext, settings: ApiSettings) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY)
    dispatcher = Dispatcher(ctx.registry, ctx, ctx.counters)
    app[CONTEXT] = ctx
    app[DISPATCHER] = dispatcher
    app[SETTINGS] = settings
    streams: set[web.WebSocketResponse] = set()
    app[STREAMS] = streams
    app.router.add_route("*", "/", handle_rpc)
    app.router.add_route("*", "/rpc", handle_rpc)
    app.router.add_get("/events", handle_events)
    app.router.add_get("/metrics", handle_metrics)
    add_rest_routes(app, dispatcher, ctx, authorize, cors=settings.rest_public)
    app.cleanup_ctx.append(_watch_events)
    app.on_shutdown.append(_close_streams)
    return app


class ApiServer:
    """The API on one address; ``start`` binds it, ``stop`` releases everything."""

    def __init__(self, ctx: RpcContext, settings: ApiSettings) -> None:
        self.app = build_app(ctx, settings)
        self._runner = web.AppRunner(
            self.app, handler_cancellation=True, shutdown_timeout=5.0, access_log=None
        )
        self.address: Endpoint | None = None

    async def start(self, endpoint: Endpoint) -> Endpoint:
        """Listen on ``endpoint`` (port 0: any free port); returns the address bound."""
        await self._runner.setup()
        site = web.TCPSite(self._runner, endpoint.host, endpoint.port)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(
                    f"the API address {endpoint} is already in use (another node?); "
                    "choose another with --rpc-listen"
                ) from None
            raise ConfigError(f"cannot listen for the API on {endpoint}: {exc}") from None
        host, port = self._runner.addresses[0][:2]
        self.address = Endpoint(str(host), int(port))
        return self.address

    async def stop(self) -> None:
        await self._runner.cleanup()
