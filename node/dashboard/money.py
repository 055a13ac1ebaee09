"""The money panel's routes: follow an address's coins, as a running node of the network sees them.

The tracing itself is the node's (``traceaddress``, ``/rest/trace/ADDR``: the haircut model of
:mod:`node.moneyflow`); the dashboard asks one running node of the network it shows, the one
with the highest chain, and adds what only it knows: the names of the devnet's wallets, so the
page can offer them in a pick list and label the outputs that pay them. While a lesson runs,
the network shown is the lesson's devnet, so the panel follows the lesson's trail.

===============================  ======  ==============================================
path                             method  what
===============================  ======  ==============================================
``/api/money``                   GET     ``{"network", "wallets": [{"name",
                                         "address"}]}``: the wallets of the devnet shown
                                         (none for nodes started by hand)
``/api/money/{address}``         GET     the node's ``/rest/trace/ADDR`` answer, plus
                                         ``node`` (who answered) and ``name`` (the
                                         wallet's, or null); ``address`` may be a wallet's
                                         name; ``?max_txs=N`` (1 to 2,000, default 200)
===============================  ======  ==============================================

Refusals are ``{"error"}``: 400 for something that is neither an address of the network nor a
wallet's name, or a bad ``max_txs``; 503 when no node is up; 502 when the node failed to answer.

What this module does not do: trace anything itself (a dashboard holds no chain), or act: both
routes only read, so they need none of the guards the actions have.
"""

from __future__ import annotations

from aiohttp import web

from node.core.address import decode_address
from node.core.errors import AddressError
from node.core.params import PRESETS, NetworkParams
from node.dashboard import app as dashboard_app
from node.dashboard.guard import json_response
from node.dashboard.monitor import NetworkMonitor
from node.dashboard.nodes import NodeApi, NodeUnavailableError
from node.devnet import wallets as devnet_wallets
from node.moneyflow import DEFAULT_MAX_TXS, MAX_TXS


class MoneyError(Exception):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def add_routes(app: web.Application) -> None:
    """Add the money panel's routes to the dashboard application."""
    app.router.add_get("/api/money", _wallets)
    app.router.add_get("/api/money/{address}", _trace)


def _monitor(request: web.Request) -> NetworkMonitor:
    # The application's key is read when a request comes, not at import: the application
    # module imports this one to add its routes.
    return request.app[dashboard_app.DASHBOARD].monitor


def _params(monitor: NetworkMonitor) -> NetworkParams | None:
    network = monitor.network()
    return PRESETS.get(network) if network is not None else None


def wallet_addresses(monitor: NetworkMonitor) -> list[dict[str, str]]:
    """The devnet's wallets (funded ones, then the miners'), each with its address."""
    params = _params(monitor)
    if params is None:
        return []
    return [
        {"name": name, "address": devnet_wallets.address(params, name)}
        for name in monitor.layout.wallets
    ]


async def _wallets(request: web.Request) -> web.StreamResponse:
    monitor = _monitor(request)
    return json_response({"network": monitor.network(), "wallets": wallet_addresses(monitor)})


async def _trace(request: web.Request) -> web.StreamResponse:
    monitor = _monitor(request)
    try:
        max_txs = _max_txs(request)
        address, name = _resolve(monitor, request.match_info["address"])
        api = _best_node(monitor)
        try:
            answer = await api.rest(f"trace/{address}?max_txs={max_txs}")
        except NodeUnavailableError as exc:
            raise MoneyError(str(exc), 502) from None
    except MoneyError as exc:
        return json_response({"error": str(exc)}, exc.status)
    if not isinstance(answer, dict):
        return json_response({"error": f"{api.endpoint.name}: not a trace"}, 502)
    return json_response({**answer, "node": api.endpoint.name, "name": name})


def _max_txs(request: web.Request) -> int:
    text = request.query.get("max_txs", str(DEFAULT_MAX_TXS))
    try:
        value = int(text)
    except ValueError:
        raise MoneyError("max_txs must be a whole number", 400) from None
    if not 1 <= value <= MAX_TXS:
        raise MoneyError(f"max_txs must be from 1 to {MAX_TXS}", 400)
    return value


def _resolve(monitor: NetworkMonitor, text: str) -> tuple[str, str | None]:
    """(address, wallet name or None) for an address or a devnet wallet's name."""
    known = wallet_addresses(monitor)
    for wallet in known:
        if text in (wallet["name"], wallet["address"]):
            return wallet["address"], wallet["name"]
    params = _params(monitor)
    if params is None:
        raise MoneyError("no node has said which network it is on yet", 503)
    try:
        decode_address(text, params.address_version)
    except AddressError as exc:
        names = ", ".join(w["name"] for w in known)
        hint = f" or a wallet's name ({names})" if names else ""
        raise MoneyError(
            f"{text[:100]!r} is not an address of {params.name}{hint}: {exc}", 400
        ) from None
    return text, None


def _best_node(monitor: NetworkMonitor) -> NodeApi:
    """The running node with the highest chain (the first listed, on a tie)."""
    best: tuple[int, str] | None = None
    for name in monitor.endpoints():
        status = monitor.status(name)
        if status is None or not status.up:
            continue
        height = status.height if status.height is not None else -1
        if best is None or height > best[0]:
            best = (height, name)
    if best is None:
        raise MoneyError("no node is up to ask", 503)
    return monitor.api(best[1])
