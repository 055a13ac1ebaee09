"""JSON-RPC over HTTP as bitcoind speaks it: 1.0-style replies, 2.0 when asked, batches.

One HTTP body holds one request object or an array of them (a batch). Replies follow the
version the request asked for, as Bitcoin Core 28 does:

===========================  ==========================================  =======================
request                      reply body                                  HTTP status
===========================  ==========================================  =======================
legacy (no ``jsonrpc``, or   ``{"result", "error", "id"}``, both keys    200; on error 400 for
``"1.0"``/``"1.1"``)         always present                              -32600, 404 for -32601,
                                                                         500 otherwise
``"jsonrpc": "2.0"``         ``{"jsonrpc", "result" | "error", "id"}``   200, even for errors
2.0 without ``id``           nothing (a notification)                    204
batch (array)                array of the replies, notifications left    200
                             out
not JSON                     legacy error -32700 ``Parse error``         500
===========================  ==========================================  =======================

A method never crashes the server: an :class:`~node.rpc.errors.RpcError` is answered as is, a
forklab error is mapped by :func:`~node.rpc.errors.from_forklab_error`, and anything else is
logged with its traceback and answered as -1 ``internal error``.

HTTP itself (methods, auth, sizes) is :mod:`node.rpc.server`'s; this module maps a request
body to a reply body and a status, so it can be read (and reasoned about) without a socket.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from node.core.errors import ForklabError
from node.rpc.errors import RpcCode, RpcError, from_forklab_error
from node.rpc.jsonfmt import dumps, loads
from node.rpc.metrics import Counters
from node.rpc.registry import Registry

log = logging.getLogger(__name__)

MAX_BATCH = 1000
"""Requests in one batch; a larger batch is refused whole (-32600)."""

_LEGACY_VERSIONS = ("1.0", "1.1")


@dataclass(frozen=True)
class Reply:
    status: int
    body: str | None
    """None for 204 No Content (a 2.0 notification, or a batch of them only)."""


@dataclass(frozen=True)
class _Request:
    method: str
    params: Any
    id: Any
    v2: bool
    notification: bool


def _http_status(error: RpcError | None) -> int:
    if error is None:
        return 200
    if error.code is RpcCode.INVALID_REQUEST:
        return 400
    if error.code is RpcCode.METHOD_NOT_FOUND:
        return 404
    return 500


def _reply_object(result: Any, error: RpcError | None, request_id: Any, v2: bool) -> dict[str, Any]:
    if not v2:
        return {
            "result": None if error is not None else result,
            "error": error.to_json() if error is not None else None,
            "id": request_id,
        }
    reply: dict[str, Any] = {"jsonrpc": "2.0"}
    if error is not None:
        reply["error"] = error.to_json()
    else:
        reply["result"] = result
    reply["id"] = request_id
    return reply


def _parse_request(obj: Any) -> _Request:
    if not isinstance(obj, dict):
        raise RpcError(RpcCode.INVALID_REQUEST, "Invalid Request object")
    version = obj.get("jsonrpc")
    if version is not None and version != "2.0" and version not in _LEGACY_VERSIONS:
        raise RpcError(RpcCode.INVALID_REQUEST, "JSON-RPC version not supported")
    v2 = version == "2.0"
    method = obj.get("method")
    if not isinstance(method, str):
        raise RpcError(RpcCode.INVALID_REQUEST, "Method must be a string")
    params = obj.get("params")
    if params is None:
        params = []
    if not isinstance(params, list | dict):
        raise RpcError(RpcCode.INVALID_REQUEST, "Params must be an array or object")
    return _Request(method, params, obj.get("id"), v2, v2 and "id" not in obj)


class Dispatcher:
    """Runs JSON-RPC bodies against a registry; ``context`` is handed to every method."""

    def __init__(
        self, registry: Registry, context: object, counters: Counters | None = None
    ) -> None:
        self.registry = registry
        self.context = context
        self.counters = counters if counters is not None else Counters()

    async def call(self, method: str, params: Any) -> Any:
        """Run one method; raises RpcError (mapped from any failure) instead of a reply."""
        spec = self.registry.get(method)
        # Counted by registered name only: a caller cannot grow the metrics with junk names.
        self.counters.rpc_requests[spec.name] += 1
        try:
            return await spec.handler(self.context, **spec.bind(params))
        except RpcError:
            self.counters.rpc_errors[spec.name] += 1
            raise
        except ForklabError as exc:
            self.counters.rpc_errors[spec.name] += 1
            raise from_forklab_error(exc) from exc
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.counters.rpc_errors[spec.name] += 1
            log.exception("RPC %s failed", method)
            raise RpcError(RpcCode.MISC_ERROR, f"internal error: {type(exc).__name__}") from exc

    async def _one(self, obj: Any) -> tuple[dict[str, Any] | None, RpcError | None]:
        """The reply object for one request (None for a notification) and its error."""
        request_id = obj.get("id") if isinstance(obj, dict) else None
        v2 = isinstance(obj, dict) and obj.get("jsonrpc") == "2.0"
        try:
            request = _parse_request(obj)
        except RpcError as exc:
            return _reply_object(None, exc, request_id, v2), exc
        result: Any = None
        error: RpcError | None = None
        try:
            result = await self.call(request.method, request.params)
        except RpcError as exc:
            error = exc
        if request.notification:
            return None, error
        return _reply_object(result, error, request.id, request.v2), error

    async def handle(self, body: bytes | str) -> Reply:
        try:
            message = loads(body)
        except (ValueError, RecursionError):
            parse_error = RpcError(RpcCode.PARSE_ERROR, "Parse error")
            return Reply(500, dumps(_reply_object(None, parse_error, None, False)))
        if isinstance(message, dict):
            reply, error = await self._one(message)
            if reply is None:
                return Reply(204, None)
            v2 = "jsonrpc" in reply
            return Reply(200 if v2 else _http_status(error), dumps(reply))
        if isinstance(message, list):
            if not message or len(message) > MAX_BATCH:
                bad_batch = RpcError(
                    RpcCode.INVALID_REQUEST,
                    f"a batch holds 1 to {MAX_BATCH} requests, got {len(message)}",
                )
                return Reply(400, dumps(_reply_object(None, bad_batch, None, False)))
            replies = []
            for item in message:
                reply, _ = await self._one(item)
                if reply is not None:
                    replies.append(reply)
            if not replies:
                return Reply(204, None)
            return Reply(200, dumps(replies))
        top_level = RpcError(RpcCode.PARSE_ERROR, "Top-level object parse error")
        return Reply(500, dumps(_reply_object(None, top_level, None, False)))
