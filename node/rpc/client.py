"""A small synchronous JSON-RPC client: what ``forklab rpc``, ``forklab wallet``, the devnet
and the tests use to talk to a node.

It speaks the legacy (1.0-style) protocol bitcoin-cli speaks, authenticates with HTTP basic auth
(from the node's cookie file or an explicit user/password), and turns every failure into one
exception with a clear message:

* :class:`RpcCallError`: the node answered with a JSON-RPC error (``code``, ``message``).
* :class:`RpcConnectionError`: no node answered, credentials were refused, or the reply was
  not JSON-RPC.

Amounts in results arrive as :class:`~decimal.Decimal` (exact, as the node wrote them). The
client is blocking on purpose: its callers are command-line tools and tests. Code on an event
loop uses the node's API in-process or aiohttp.
"""

from __future__ import annotations

import http.client
import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from node.core.errors import ForklabError
from node.rpc.auth import basic_auth_header, read_cookie
from node.rpc.jsonfmt import dumps, loads

DEFAULT_TIMEOUT = 60.0


class RpcConnectionError(ForklabError):
    """The node could not be reached, refused the credentials, or did not answer JSON-RPC."""


class RpcCallError(ForklabError):
    """The node answered the call with a JSON-RPC error."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"error code {code}: {message}")
        self.code = code
        self.message = message


class RpcClient:
    """Calls one node at ``url`` (``http://host:port``) as ``user``:``password``."""

    def __init__(
        self, url: str, user: str, password: str, *, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme != "http" or not parts.hostname:
            raise RpcConnectionError(f"{url!r} is not an http://HOST:PORT URL")
        self.url = f"http://{parts.netloc}"
        self._host = parts.hostname
        self._port = parts.port or 80
        self._path = parts.path or "/rpc"
        if self._path == "/":
            self._path = "/rpc"
        self._auth = basic_auth_header(user, password)
        self.timeout = timeout
        self._ids = itertools.count(1)

    @classmethod
    def from_datadir(
        cls, url: str, datadir: Path, *, timeout: float = DEFAULT_TIMEOUT
    ) -> RpcClient:
        """A client authenticated by the cookie file of the node running in ``datadir``."""
        user, password = read_cookie(datadir)
        return cls(url, user, password, timeout=timeout)

    def call(self, method: str, *params: Any, timeout: float | None = None) -> Any:
        """Call ``method`` with positional ``params``; return its result or raise."""
        return self._call(method, list(params), timeout)

    def call_named(self, method: str, params: dict[str, Any], timeout: float | None = None) -> Any:
        return self._call(method, params, timeout)

    def batch(self, calls: Sequence[tuple[str, list[Any]]]) -> list[Any]:
        """Several calls in one request; results in order, each a value or an RpcCallError."""
        requests = [
            {"method": method, "params": params, "id": n}
            for n, (method, params) in enumerate(calls)
        ]
        status, body = self._post(dumps(requests), None)
        replies = self._decode(status, body)
        if not isinstance(replies, list):
            raise RpcConnectionError(f"{self.url}: a batch was answered with {replies!r}")
        by_id = {reply.get("id"): reply for reply in replies if isinstance(reply, dict)}
        results: list[Any] = []
        for n in range(len(calls)):
            reply = by_id.get(n)
            if reply is None:
                raise RpcConnectionError(f"{self.url}: no reply for batch item {n}")
            error = reply.get("error")
            results.append(call_error(error) if error else reply.get("result"))
        return results

    def _call(self, method: str, params: list[Any] | dict[str, Any], timeout: float | None) -> Any:
        request = {"method": method, "params": params, "id": next(self._ids)}
        status, body = self._post(dumps(request), timeout)
        reply = self._decode(status, body)
        if not isinstance(reply, dict):
            raise RpcConnectionError(f"{self.url}: the reply is not a JSON-RPC object")
        error = reply.get("error")
        if error:
            raise call_error(error)
        return reply.get("result")

    def _post(self, body: str, timeout: float | None) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection(
            self._host, self._port, timeout=self.timeout if timeout is None else timeout
        )
        try:
            conn.request(
                "POST",
                self._path,
                body=body.encode("utf-8"),
                headers={"Authorization": self._auth, "Content-Type": "application/json"},
            )
            response = conn.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise RpcConnectionError(
                f"could not connect to the node at {self.url} ({exc}); is it running?"
            ) from exc
        finally:
            conn.close()

    def _decode(self, status: int, body: bytes) -> Any:
        if status == 401:
            raise RpcConnectionError(
                f"{self.url}: authorization failed: incorrect RPC user or password "
                "(or a cookie from another node)"
            )
        try:
            return loads(body)
        except (ValueError, UnicodeDecodeError):
            snippet = body[:200].decode("utf-8", "replace")
            raise RpcConnectionError(
                f"{self.url}: HTTP {status} without a JSON-RPC reply: {snippet!r}"
            ) from None


def call_error(error: Any) -> RpcCallError:
    """A JSON-RPC reply's ``error`` member as the exception a client raises."""
    if isinstance(error, dict):
        code = error.get("code")
        return RpcCallError(code if isinstance(code, int) else -1, str(error.get("message")))
    return RpcCallError(-1, str(error))
