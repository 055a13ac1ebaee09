"""Running the dashboard: bind an address, say where it is, stop cleanly.

:class:`DashboardServer` is for code that already runs an event loop (tests, a devnet that
embeds it); :func:`serve_dashboard` is the blocking entry point behind ``forklab dashboard``,
and what a devnet can start as its own process. When it listens it prints one line on stdout,
which scripts wait for, as they wait for a node's::

    forklab dashboard ready: http://127.0.0.1:18580 (devnet /home/ada/.local/state/forklab/devnet)

SIGINT and SIGTERM stop it: page streams are closed, the monitor's connections to the nodes
are released, exit status 0. It never stops a node.
"""

from __future__ import annotations

import asyncio
import errno
import signal
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web

from node.core.errors import ForklabError
from node.dashboard.app import DashboardSettings, build_app
from node.dashboard.nodes import NodeEndpoint
from node.dashboard.sources import DevnetSource, NodeSource, StaticSource

DEFAULT_PORT = 18580
"""Just below the devnet's default ports (18600 and up), so both fit side by side."""
READY_PREFIX = "forklab dashboard ready:"


class DashboardError(ForklabError):
    """The dashboard cannot start (a port in use, nothing to watch)."""


class DashboardServer:
    """The dashboard on one address: ``start`` binds it, ``stop`` releases everything."""

    def __init__(self, source: NodeSource, settings: DashboardSettings | None = None) -> None:
        self.source = source
        self.settings = settings
        self._runner: web.AppRunner | None = None
        self.url: str | None = None

    async def start(self, host: str = "127.0.0.1", port: int = DEFAULT_PORT) -> str:
        """Listen on ``host:port`` (port 0: any free port); returns the page's URL."""
        settings = self.settings or DashboardSettings(loopback=_is_loopback_host(host))
        runner = web.AppRunner(
            build_app(self.source, settings),
            handler_cancellation=True,
            access_log=None,
            shutdown_timeout=2.0,
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as exc:
            await runner.cleanup()
            if exc.errno == errno.EADDRINUSE:
                raise DashboardError(
                    f"{host}:{port} is already in use (another dashboard?); "
                    "choose another with --port"
                ) from None
            raise DashboardError(f"cannot listen on {host}:{port}: {exc}") from None
        self._runner = runner
        bound_host, bound_port = runner.addresses[0][:2]
        shown = f"[{bound_host}]" if ":" in str(bound_host) else str(bound_host)
        self.url = f"http://{shown}:{bound_port}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def _is_loopback_host(host: str) -> bool:
    return host in ("localhost", "127.0.0.1", "::1") or host.startswith("127.")


def source_for(devnet_dir: Path | None, nodes: Sequence[NodeEndpoint]) -> NodeSource:
    if nodes and devnet_dir is not None:
        raise DashboardError("watch a devnet (--dir) or a list of nodes (--node), not both")
    if nodes:
        try:
            return StaticSource(nodes)
        except ValueError as exc:
            raise DashboardError(str(exc)) from None
    if devnet_dir is None:
        raise DashboardError("nothing to watch: give a devnet directory or some nodes")
    return DevnetSource(devnet_dir)


async def run_until_stopped(
    source: NodeSource, host: str, port: int, settings: DashboardSettings | None = None
) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    server = DashboardServer(source, settings)
    url = await server.start(host, port)
    where = f" (devnet {source.paths.root})" if isinstance(source, DevnetSource) else ""
    print(f"{READY_PREFIX} {url}{where}", flush=True)
    try:
        await stop.wait()
    finally:
        await server.stop()
    return 0


def serve_dashboard(
    devnet_dir: Path | None = None,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    *,
    nodes: Sequence[NodeEndpoint] = (),
    poll_interval: float = 1.0,
) -> int:
    """Serve the dashboard of a devnet (or of ``nodes``) until SIGINT or SIGTERM; exit status."""
    source = source_for(devnet_dir, nodes)
    settings = DashboardSettings(poll_interval=poll_interval, loopback=_is_loopback_host(host))
    return asyncio.run(run_until_stopped(source, host, port, settings))
