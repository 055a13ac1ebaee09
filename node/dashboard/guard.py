"""Who may act on the dashboard, and the JSON replies of its POST routes.

The dashboard holds the nodes' cookies, so its POST routes (actions, lessons) can mine, pay,
start networks and kill processes. A page of another site open in the same browser must not be
able to do that, so a request that acts must be JSON (a cross-site form cannot send it without
a CORS preflight, which is never granted), and its ``Origin``, when sent, must be this
dashboard. Against DNS rebinding, a dashboard bound to loopback also requires the ``Host``
header to name loopback. Bound to another address, anyone who can reach it can act: that is
for a classroom network, on purpose.

What this module does not do: decide what an action means (:mod:`node.dashboard.actions`,
:mod:`node.dashboard.lessons`).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from aiohttp import web

from node.rpc.jsonfmt import dumps, loads


def json_response(value: Any, status: int = 200) -> web.Response:
    return web.Response(text=dumps(value), status=status, content_type="application/json")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def refusal(request: web.Request, *, loopback: bool) -> str | None:
    """None if ``request`` may act; else why not (answered with 403)."""
    host = request.host.rsplit(":", 1)[0] if not request.host.endswith("]") else request.host
    if loopback and not is_loopback(host):
        return f"Host {request.host!r} is not this dashboard's loopback address"
    origin = request.headers.get("Origin")
    if origin is not None and origin != f"{request.scheme}://{request.host}":
        return f"Origin {origin!r} is not this dashboard"
    return None


class BodyError(Exception):
    """A request body that cannot be used: the reply's status and message."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


async def json_object(
    request: web.Request, *, loopback: bool, allow_empty: bool = False
) -> dict[str, Any]:
    """The body of a request that acts, checked: BodyError (403, 415 or 400) if refused.

    ``allow_empty``: an empty body stands for ``{}`` (a lesson's defaults, a stop); an action
    always says what to do, so for it an empty body is not JSON."""
    refused = refusal(request, loopback=loopback)
    if refused is not None:
        raise BodyError(refused, 403)
    if request.content_type != "application/json":
        raise BodyError("send the request as application/json", 415)
    raw = await request.read()
    if allow_empty and not raw.strip():
        return {}
    try:
        body = loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BodyError("the body is not JSON", 400) from None
    if not isinstance(body, dict):
        raise BodyError("the body must be a JSON object", 400)
    return body
