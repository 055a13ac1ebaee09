"""The dashboard's web application: the page, its live state, and the actions behind its buttons.

=============================  ======  ====================================================
path                           method  what
=============================  ======  ====================================================
``/``                          GET     the page (``static/index.html``)
``/static/FILE``               GET     the page's scripts, styles and images (shipped in
                                       the package: no CDN, no build step, works offline)
``/api/state?depth=N``         GET     everything the page draws (:meth:`NetworkMonitor.
                                       snapshot`), the block tree's last N heights
``/api/stream?depth=N``        GET     WebSocket: ``state`` messages (whole, at most
                                       ``STATE_RATE`` a second), node ``event`` messages as
                                       they happen (with the node's name), ``action``
                                       messages when anyone acts
``/api/actions/NAME``          POST    an action (:mod:`node.dashboard.actions`); the JSON
                                       reply holds ``message`` and ``command``, the
                                       equivalent terminal command. ``{"dry_run": true}``
                                       only returns the command (or why there is none,
                                       with status 200: a form being filled in)
``/api/lessons...``            both    the lessons (:mod:`node.dashboard.lessons`); their
                                       progress goes out on the stream as ``lesson``
                                       messages
=============================  ======  ====================================================

Who may act: the dashboard holds the nodes' cookies, so its POST routes can mine, pay and kill
processes; :mod:`node.dashboard.guard` says which requests may. While a lesson runs, the page
shows the lesson's own devnet, and actions are refused (409): the buttons would act on the
class's devnet, which the page is not showing, or disturb the lesson.

State lives on the application under typed keys, and the monitor runs in ``cleanup_ctx``, so
it runs if and only if the application started.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from importlib import resources
from typing import Any

import aiohttp
from aiohttp import web

from node.dashboard import lessons, money
from node.dashboard.actions import (
    ACTION_NAMES,
    ActionError,
    Controller,
    RpcController,
    action_name,
    parse_action,
)
from node.dashboard.devnet_control import DevnetController
from node.dashboard.guard import BodyError, json_object, json_response
from node.dashboard.lesson_runs import LESSONS, LessonManager
from node.dashboard.monitor import NetworkMonitor
from node.dashboard.sources import DevnetSource, NodeSource, StaticSource
from node.rpc.jsonfmt import dumps

log = logging.getLogger("forklab.dashboard")

DEFAULT_DEPTH = 40
MAX_DEPTH = 1_000
STATE_RATE = 5.0
"""Whole-state messages per second, at most, to each page."""

STATIC_TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
}


@dataclass(frozen=True)
class DashboardSettings:
    poll_interval: float = 1.0
    keep_heights: int = 2_000
    loopback: bool = True
    """Whether the dashboard listens on loopback only (then ``Host`` must name loopback)."""


class Dashboard:
    """The monitor and the controller, created when the application starts.

    Built before the application starts (application state cannot change once it runs) and
    filled in by :func:`_run_dashboard` in ``cleanup_ctx``.
    """

    def __init__(self, source: NodeSource, settings: DashboardSettings) -> None:
        self.source = source
        self.settings = settings
        self._monitor: NetworkMonitor | None = None
        self._controller: Controller | None = None
        self.pages: set[web.WebSocketResponse] = set()
        """The pages' open streams, closed when the dashboard stops."""
        self.acting = asyncio.Lock()
        """Actions run one at a time, in the order they were asked for: a block mined while a
        partition is still being applied would otherwise cross it."""

    @property
    def monitor(self) -> NetworkMonitor:
        if self._monitor is None:
            raise RuntimeError("the dashboard has not started")
        return self._monitor

    @property
    def controller(self) -> Controller:
        if self._controller is None:
            raise RuntimeError("the dashboard has not started")
        return self._controller

    async def start(self, session: aiohttp.ClientSession) -> None:
        monitor = NetworkMonitor(
            self.source,
            session,
            poll_interval=self.settings.poll_interval,
            keep_heights=self.settings.keep_heights,
        )
        await monitor.start()
        self._monitor = monitor
        self._controller = controller_for(self.source, monitor)

    async def stop(self) -> None:
        if self._monitor is not None:
            await self._monitor.stop()


DASHBOARD = web.AppKey("dashboard", Dashboard)


async def _run_dashboard(app: web.Application) -> AsyncIterator[None]:
    async with aiohttp.ClientSession() as session:
        dashboard = app[DASHBOARD]
        await dashboard.start(session)
        try:
            yield
        finally:
            await dashboard.stop()


def static_files() -> dict[str, bytes]:
    """The page's files by name, read once from the package (works from a wheel or a zip)."""
    root = resources.files("node.dashboard") / "static"
    files: dict[str, bytes] = {}

    def walk(folder: Any, prefix: str) -> None:
        for entry in folder.iterdir():
            name = prefix + entry.name
            if entry.is_dir():
                walk(entry, name + "/")
            elif any(name.endswith(ext) for ext in STATIC_TYPES):
                files[name] = entry.read_bytes()

    walk(root, "")
    return files


def _depth(request: web.Request) -> int:
    try:
        depth = int(request.query.get("depth", DEFAULT_DEPTH))
    except ValueError:
        raise web.HTTPBadRequest(text="depth must be a whole number") from None
    return max(1, min(MAX_DEPTH, depth))


class Handlers:
    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files

    async def index(self, _request: web.Request) -> web.StreamResponse:
        return self._file("index.html")

    async def static(self, request: web.Request) -> web.StreamResponse:
        return self._file(request.match_info["name"])

    def _file(self, name: str) -> web.StreamResponse:
        body = self.files.get(name)
        if body is None:
            raise web.HTTPNotFound()
        content_type = next(t for ext, t in STATIC_TYPES.items() if name.endswith(ext))
        return web.Response(
            body=body,
            content_type=content_type,
            charset="utf-8",
            headers={"Cache-Control": "no-cache"},
        )

    async def state(self, request: web.Request) -> web.StreamResponse:
        return json_response(_state(request.app, _depth(request)))

    async def stream(self, request: web.Request) -> web.StreamResponse:
        depth = _depth(request)
        ws = web.WebSocketResponse(heartbeat=30.0)
        await ws.prepare(request)
        monitor = request.app[DASHBOARD].monitor
        feed = monitor.subscribe()

        async def pump() -> None:
            loop = asyncio.get_running_loop()
            # The whole state first: events only make sense on top of it.
            feed.state_changed = False
            await ws.send_str(dumps({"type": "state", **_state(request.app, depth)}))
            last_state = loop.time()
            while not feed.closed:
                events = await feed.wait()
                if feed.lost:
                    await ws.send_str(dumps({"type": "events_lost", "count": feed.lost}))
                    feed.lost = 0
                for message in events:
                    await ws.send_str(dumps(message))
                if feed.state_changed:
                    # Whole states are rate-limited; events in between still go out at once.
                    wait = last_state + 1 / STATE_RATE - loop.time()
                    if wait > 0:
                        await asyncio.sleep(wait)
                    feed.state_changed = False
                    last_state = loop.time()
                    await ws.send_str(dumps({"type": "state", **_state(request.app, depth)}))

        sender = asyncio.create_task(pump())
        pages = request.app[DASHBOARD].pages
        pages.add(ws)
        try:
            async for message in ws:
                if message.type is aiohttp.WSMsgType.ERROR:
                    break
        finally:
            pages.discard(ws)
            monitor.unsubscribe(feed)
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError, RuntimeError):
                await sender
        return ws

    async def action(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await json_object(request, loopback=request.app[DASHBOARD].settings.loopback)
        except BodyError as exc:
            return json_response({"ok": False, "error": str(exc)}, exc.status)
        monitor = request.app[DASHBOARD].monitor
        controller = request.app[DASHBOARD].controller
        name = request.match_info["name"]
        dry_run = body.get("dry_run") is True
        command: str | None = None
        lesson = request.app[LESSONS].watching()
        try:
            if lesson is not None:
                raise ActionError(
                    f"the lesson {lesson['name']} is running on its own devnet; "
                    "stop it (or let it finish) to act on this one",
                    status=409,
                )
            action = parse_action(name, body, list(monitor.endpoints()), monitor.miners())
            if not controller.supports(type(action)):
                raise ActionError(f"{name} needs a devnet (forklab devnet up)", status=409)
            command = await controller.command(action)
            if dry_run:
                return json_response({"ok": True, "command": command, "dry_run": True})
            async with request.app[DASHBOARD].acting:
                outcome = await controller.perform(action)
        except ActionError as exc:
            entry = {"action": name, "ok": False, "message": str(exc), "command": command}
            if dry_run and exc.status != 404:
                # A form being filled in is often not valid yet: the answer to "what would the
                # command be?" is then "none, because...", not a failed request.
                return json_response({**entry, "error": str(exc), "dry_run": True})
            if not dry_run:
                monitor.record_action(entry)
            return json_response({**entry, "error": str(exc)}, exc.status)
        entry = {
            "action": action_name(action),
            "ok": True,
            "message": outcome.message,
            "command": outcome.command,
        }
        monitor.record_action(entry)
        monitor.poll_soon()
        return json_response({**entry, "result": outcome.result})


def _state(app: web.Application, depth: int) -> dict[str, Any]:
    dashboard = app[DASHBOARD]
    state = dashboard.monitor.snapshot(depth)
    state["capabilities"] = [
        name for cls, name in ACTION_NAMES.items() if dashboard.controller.supports(cls)
    ]
    state["lesson"] = app[LESSONS].watching()
    return state


def build_app(source: NodeSource, settings: DashboardSettings | None = None) -> web.Application:
    """The dashboard as an aiohttp application, watching the nodes ``source`` names."""
    app = web.Application()
    dashboard = Dashboard(source, settings or DashboardSettings())
    app[DASHBOARD] = dashboard
    app[LESSONS] = LessonManager(
        dashboard, lessons.catalogue(), loopback=dashboard.settings.loopback
    )
    handlers = Handlers(static_files())
    app.router.add_get("/", handlers.index)
    app.router.add_get("/static/{name:.+}", handlers.static)
    app.router.add_get("/api/state", handlers.state)
    app.router.add_get("/api/stream", handlers.stream)
    app.router.add_post("/api/actions/{name}", handlers.action)
    lessons.add_routes(app)
    money.add_routes(app)
    app.cleanup_ctx.append(_run_dashboard)
    app.on_shutdown.append(_close_pages)
    return app


async def _close_pages(app: web.Application) -> None:
    """Tell open pages the dashboard is going (they reconnect when it is back)."""
    for ws in tuple(app[DASHBOARD].pages):
        await ws.close(code=aiohttp.WSCloseCode.GOING_AWAY, message=b"dashboard stopping")


def controller_for(source: NodeSource, monitor: NetworkMonitor) -> Controller:
    """Who carries out actions: the devnet for a devnet, the nodes' RPC otherwise."""
    if isinstance(source, DevnetSource):
        return DevnetController(source.paths.root)
    if isinstance(source, StaticSource):
        return RpcController(monitor, source)
    raise TypeError(f"no controller for a {type(source).__name__}")
