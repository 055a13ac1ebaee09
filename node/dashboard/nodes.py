"""The nodes a dashboard watches, and an asynchronous client for each node's API.

A node is named (``n1``) and reached at its API URL; its data directory, when known, holds the
cookie that JSON-RPC needs (mining, sending). The read-only routes (REST and ``/events``) are
public by default, so a dashboard can watch nodes whose cookie it cannot read; it then offers
no actions for them.

The cookie is read again whenever a node refuses it, because a restarted node writes a new one.
Every call has a short timeout: a node that hangs must not hang the page.

Errors are one exception, :class:`NodeUnavailableError`, with a message fit for the page; JSON-RPC
errors keep bitcoind's code (:class:`NodeCallError`).

What this module does not do: decide which nodes exist (the devnet's state file or the
command line does, see :mod:`node.dashboard.sources`) or retry; the monitor retries.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from node.core.errors import ForklabError
from node.rpc.auth import AuthError, basic_auth_header, read_cookie
from node.rpc.jsonfmt import dumps, loads

REQUEST_TIMEOUT = 10.0
"""Seconds for one REST or RPC call; mining a few regtest blocks fits easily."""


@dataclass(frozen=True)
class NodeEndpoint:
    """One node as the dashboard knows it."""

    name: str
    rpc_url: str
    """``http://HOST:PORT`` of the node's API."""
    datadir: Path | None = None
    """Where the node's ``.cookie`` is; None if the dashboard may only read."""
    hash_share: float | None = None
    """The share of the network's hash power its miners hold, if the devnet says."""
    address: str | None = None
    """A wallet address of the node's (the devnet's funded one), used as the mining reward
    and payment destination; None: the dashboard asks the node's wallet for one."""

    @property
    def events_url(self) -> str:
        return self.rpc_url.replace("http://", "ws://", 1) + "/events"


class NodeUnavailableError(ForklabError):
    """The node did not answer, or answered something that is not its API."""


class NodeCallError(ForklabError):
    """The node answered a JSON-RPC call with an error."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class NodeApi:
    """REST reads and JSON-RPC calls to one node, over a shared aiohttp session."""

    def __init__(self, endpoint: NodeEndpoint, session: aiohttp.ClientSession) -> None:
        self.endpoint = endpoint
        self._session = session
        self._auth: str | None = None
        self._ids = itertools.count(1)

    async def rest(self, path: str) -> Any:
        """GET ``/rest/PATH``; the decoded JSON.

        The cookie goes along when the dashboard has it, for nodes whose REST is private (a
        public node ignores it); a refused cookie is read again once, as a restart renews it.
        """
        url = f"{self.endpoint.rpc_url}/rest/{path}"
        for attempt in range(2):
            headers = await self._headers(refresh=attempt > 0, required=False)
            try:
                async with self._session.get(
                    url, headers=headers, timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
                ) as response:
                    body = await response.read()
                    status = response.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise NodeUnavailableError(f"{self.endpoint.name}: {_describe(exc)}") from exc
            if status != 401:
                break
        else:
            raise NodeUnavailableError(
                f"{self.endpoint.name}: its REST is private and the cookie was refused "
                "(give the dashboard its data directory)"
            )
        reply = _decode(self.endpoint.name, body)
        if status != 200:
            message = reply.get("error", {}).get("message") if isinstance(reply, dict) else None
            raise NodeUnavailableError(
                f"{self.endpoint.name}: /rest/{path}: HTTP {status} {message}"
            )
        return reply

    async def call(self, method: str, *params: Any, timeout: float = REQUEST_TIMEOUT) -> Any:
        """A JSON-RPC call with the node's cookie; NodeCallError for an error reply."""
        body = dumps({"method": method, "params": list(params), "id": next(self._ids)})
        for attempt in range(2):
            headers = await self._headers(refresh=attempt > 0, required=True)
            headers["Content-Type"] = "application/json"
            try:
                async with self._session.post(
                    f"{self.endpoint.rpc_url}/rpc",
                    data=body,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=timeout),
                ) as response:
                    status = response.status
                    raw = await response.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise NodeUnavailableError(f"{self.endpoint.name}: {_describe(exc)}") from exc
            if status != 401:
                break
        else:
            raise NodeUnavailableError(f"{self.endpoint.name}: the node refused its cookie")
        reply = _decode(self.endpoint.name, raw)
        if not isinstance(reply, dict):
            raise NodeUnavailableError(f"{self.endpoint.name}: not a JSON-RPC reply")
        error = reply.get("error")
        if error:
            code = error.get("code") if isinstance(error, dict) else None
            message = error.get("message") if isinstance(error, dict) else str(error)
            raise NodeCallError(code if isinstance(code, int) else -1, str(message))
        return reply.get("result")

    async def auth_header(self) -> dict[str, str]:
        """The header that opens ``/events`` when the node's REST is private (else empty).

        The cookie is read afresh: this is asked once per (re)connection, and a node that
        restarted has a new one.
        """
        return await self._headers(refresh=True, required=False)

    async def _headers(self, *, refresh: bool, required: bool) -> dict[str, str]:
        datadir = self.endpoint.datadir
        if datadir is None:
            if required:
                raise NodeUnavailableError(
                    f"{self.endpoint.name}: the dashboard was given no data directory, "
                    "so it cannot read the node's cookie"
                )
            return {}
        if self._auth is None or refresh:
            try:
                user, password = await asyncio.to_thread(read_cookie, datadir)
            except AuthError as exc:
                if required:
                    raise NodeUnavailableError(f"{self.endpoint.name}: {exc}") from exc
                return {}
            self._auth = basic_auth_header(user, password)
        return {"Authorization": self._auth}


def _decode(name: str, body: bytes) -> Any:
    try:
        return loads(body)
    except (ValueError, UnicodeDecodeError):
        raise NodeUnavailableError(f"{name}: the reply is not JSON: {body[:120]!r}") from None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "not reachable (is it running?)"
    return str(exc) or type(exc).__name__
