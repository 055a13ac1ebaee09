"""Mining against a node over its API: ``getblocktemplate`` with long polling, or ``getwork``.

Two sources (:class:`~miner.source.WorkSource`) on one small asynchronous JSON-RPC client
(:class:`NodeRpc`, aiohttp: a long poll in flight must be cancellable when the miner stops,
which a blocking client in a thread is not):

* :class:`GbtSource` (BIP 22). The miner writes the coinbase itself, paying ``--address``,
  from the template's ``coinbasevalue`` and ``height`` in forklab's coinbase layout
  (:func:`miner.work.template_from_gbt`), rolls its extranonce, and submits whole blocks with
  ``submitblock``, whose answer is the node's reason when it refuses one. News of a new tip is
  the long poll: ``getblocktemplate`` with the last template's ``longpollid`` returns as soon
  as the tip moves (or, after a minute, when the mempool changed), with the new template.
* :class:`GetworkSource` (the classic GPU miners' protocol, for nodes that offer only that).
  The node builds the block and hands out its header; the miner cannot roll anything and asks
  for a fresh unit when it has spent one. Its blocks pay the node's ``mining_address``, never
  the miner's. getwork has no long poll here, so the tip is followed on the node's ``/events``
  stream (:class:`EventStreamTips`), or by polling ``getbestblockhash`` where the node serves
  no stream (:class:`PolledTips`). A refused unit is answered ``false`` without a reason; the
  miner says ``stale`` when the tip has moved, ``rejected`` otherwise.

Credentials are read at every request (:func:`datadir_credentials`), so a node restarted with
a new cookie is called with it. Failures that pass with time (connection refused, a node still
downloading blocks, a cookie being rewritten) are :class:`~miner.source.NodeUnavailableError`.

What this module does not do: search nonces or decide when to switch work (:mod:`miner.loop`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from miner.source import NodeUnavailableError, SourceInfo, Submission, WorkSource
from miner.work import DEFAULT_MESSAGE, HeaderWork, Solution, TemplateWork, Work, template_from_gbt
from node.core.address import decode_address
from node.core.errors import AddressError, DecodeError, ForklabError
from node.core.hashing import hash_from_hex, hash_hex
from node.core.params import params_for
from node.rpc.auth import AuthError, basic_auth_header, read_cookie, read_cookie_file
from node.rpc.client import RpcCallError, RpcConnectionError, call_error
from node.rpc.errors import RpcCode
from node.rpc.jsonfmt import dumps, loads
from node.rpc.work import getwork_data, header_from_getwork

log = logging.getLogger("forklab.miner")

CALL_TIMEOUT = 30.0
"""Seconds for an ordinary call."""
LONGPOLL_TIMEOUT = 300.0
"""A long poll that lasts this long is simply asked again: the work is still current. The
bound only keeps a connection the network silently dropped from hanging the miner."""
POLL_EVERY = 0.25
"""Seconds between two ``getbestblockhash`` calls where the tip has to be polled."""

Credentials = Callable[[], tuple[str, str]]
"""Returns ``(user, password)``; called at every request."""


def fixed_credentials(user: str, password: str) -> Credentials:
    return lambda: (user, password)


def datadir_credentials(datadir: Path) -> Credentials:
    """The cookie of the node running in ``datadir``, read anew at every request."""
    return lambda: read_cookie(datadir)


def cookie_file_credentials(path: Path) -> Credentials:
    """The cookie in the file ``path`` (``user:password``), read anew at every request."""
    return lambda: read_cookie_file(path)


class RpcTimeoutError(RpcConnectionError):
    """The node did not answer in time."""


class RpcAuthError(RpcConnectionError):
    """The node refused the credentials."""


class NodeRpc:
    """An asynchronous JSON-RPC client of the node at ``url`` (``http://HOST:PORT``).

    Raises what :mod:`node.rpc.client` raises: RpcCallError for an error answer,
    RpcConnectionError (here :class:`RpcTimeoutError`, :class:`RpcAuthError`) otherwise.
    """

    def __init__(
        self, url: str, credentials: Credentials, *, timeout: float = CALL_TIMEOUT
    ) -> None:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme != "http" or not parts.hostname:
            raise RpcConnectionError(f"{url!r} is not an http://HOST:PORT URL")
        self.url = f"http://{parts.netloc}"
        self.credentials = credentials
        self.timeout = timeout
        self._ids = itertools.count(1)
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    def auth_header(self) -> str:
        return basic_auth_header(*self.credentials())

    async def call(self, method: str, *params: Any, timeout: float | None = None) -> Any:
        """Call ``method`` with positional ``params``; its result, or raise."""
        body = dumps({"method": method, "params": list(params), "id": next(self._ids)})
        seconds = self.timeout if timeout is None else timeout
        try:
            async with self.session.post(
                self.url + "/",
                data=body.encode(),
                headers={"Authorization": self.auth_header(), "Content-Type": "application/json"},
                timeout=aiohttp.ClientTimeout(total=seconds),
            ) as response:
                status = response.status
                raw = await response.read()
        except TimeoutError:
            raise RpcTimeoutError(
                f"{self.url}: no answer to {method} within {seconds:g} s"
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise RpcConnectionError(
                f"could not reach the node at {self.url} ({exc or type(exc).__name__})"
            ) from exc
        if status == 401:
            raise RpcAuthError(f"{self.url}: the node refused the RPC credentials")
        try:
            reply = loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise RpcConnectionError(
                f"{self.url}: HTTP {status} without a JSON-RPC reply: {raw[:200]!r}"
            ) from None
        if not isinstance(reply, dict):
            raise RpcConnectionError(f"{self.url}: the reply is not a JSON-RPC object")
        error = reply.get("error")
        if error:
            raise call_error(error)
        return reply.get("result")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


@contextlib.contextmanager
def node_errors() -> Iterator[None]:
    """Turn what passes with time into NodeUnavailableError."""
    try:
        yield
    except (RpcConnectionError, AuthError) as exc:
        raise NodeUnavailableError(str(exc)) from exc
    except RpcCallError as exc:
        if exc.code == RpcCode.CLIENT_IN_INITIAL_DOWNLOAD:
            raise NodeUnavailableError("the node is downloading blocks") from exc
        raise


async def _check_node(rpc: NodeRpc, method: str, *params: Any, hint: str = "") -> str:
    """The node's network, once it has shown it offers ``method``.

    ForklabError ends the run: credentials refused, a node that is not forklab's, one that
    does not offer ``method`` or refuses it. NodeUnavailableError (an unreachable node, one
    still downloading blocks) means: ask again later.
    """
    try:
        with node_errors():
            info = await rpc.call("getblockchaininfo")
            await rpc.call(method, *params)
    except NodeUnavailableError as exc:
        if isinstance(exc.__cause__, RpcAuthError):
            raise ForklabError(
                f"{exc} (check --rpc-user/--rpc-password, --datadir or --cookie)"
            ) from None
        raise
    except RpcCallError as exc:
        if exc.code == RpcCode.METHOD_NOT_FOUND:
            raise ForklabError(f"the node at {rpc.url} does not offer {method}{hint}") from None
        raise ForklabError(f"the node at {rpc.url} refused {method}: {exc.message}") from None
    try:
        network = str(info["chain"])
        params_for(network)
    except (KeyError, TypeError, ValueError) as exc:
        raise ForklabError(f"the node at {rpc.url} is not a forklab node: {exc}") from None
    return network


class GbtSource(WorkSource):
    """Block templates (BIP 22) with long polling; blocks pay ``address``."""

    def __init__(self, rpc: NodeRpc, address: str, *, message: bytes = DEFAULT_MESSAGE) -> None:
        self.rpc = rpc
        self.address = address
        self.message = message
        self._payout: bytes | None = None

    async def start(self) -> SourceInfo:
        network = await _check_node(
            self.rpc,
            "getblocktemplate",
            {"mode": "template"},
            hint="; mine with getwork instead (without --address: its blocks pay the node)",
        )
        try:
            self._payout = decode_address(self.address, params_for(network).address_version)
        except AddressError as exc:
            raise ForklabError(f"{self.address!r} is not a {network} address: {exc}") from None
        return SourceInfo("gbt", self.rpc.url, network, self.address)

    def _work(self, obj: Any) -> TemplateWork:
        if self._payout is None:
            raise RuntimeError("GbtSource.start() first")
        if not isinstance(obj, dict):
            raise DecodeError(f"getblocktemplate answered {obj!r}")
        template = template_from_gbt(obj, self._payout, self.message)
        longpollid = obj.get("longpollid")
        if not isinstance(longpollid, str):
            raise DecodeError("getblocktemplate answered without a longpollid")
        return TemplateWork(template, longpollid=longpollid)

    async def fetch(self) -> TemplateWork:
        with node_errors():
            return self._work(await self.rpc.call("getblocktemplate", {"mode": "template"}))

    async def next_change(self, work: Work) -> TemplateWork:
        if not isinstance(work, TemplateWork) or work.longpollid is None:
            raise ValueError("GbtSource follows the work it fetched itself")
        request = {"mode": "template", "longpollid": work.longpollid}
        while True:
            with node_errors():
                try:
                    answer = await self.rpc.call(
                        "getblocktemplate", request, timeout=LONGPOLL_TIMEOUT
                    )
                except RpcTimeoutError:
                    continue
                return self._work(answer)

    async def submit(self, solution: Solution) -> Submission:
        if solution.block is None:
            raise ValueError("getblocktemplate work is submitted as a whole block")
        with node_errors():
            result = await self.rpc.call("submitblock", solution.block.serialize().hex())
        return Submission(result is None, None if result is None else str(result))

    async def close(self) -> None:
        await self.rpc.close()


class GetworkSource(WorkSource):
    """getwork units (the node's coinbase, paying its mining address); the tip followed on the
    node's event stream, or polled."""

    def __init__(self, rpc: NodeRpc, *, tips: TipWatch | None = None) -> None:
        self.rpc = rpc
        self._tips = tips

    async def start(self) -> SourceInfo:
        # The probe costs the node one work unit: getwork hands out a fresh one at every call.
        network = await _check_node(self.rpc, "getwork")
        if self._tips is None:
            self._tips = await open_tip_watch(self.rpc)
        return SourceInfo("getwork", self.rpc.url, network, None)

    @property
    def tips(self) -> TipWatch:
        if self._tips is None:
            raise RuntimeError("GetworkSource.start() first")
        return self._tips

    async def fetch(self) -> HeaderWork:
        with node_errors():
            unit = await self.rpc.call("getwork")
            try:
                header = header_from_getwork(bytes.fromhex(unit["data"]))
                target = int.from_bytes(bytes.fromhex(unit["target"]), "little")
            except (KeyError, TypeError, ValueError, DecodeError) as exc:
                raise DecodeError(f"getwork answered a unit that is not one: {exc}") from None
            parent = await self.rpc.call("getblockheader", hash_hex(header.prev_hash))
        return HeaderWork(header, target, int(parent["height"]) + 1)

    async def next_change(self, work: Work) -> HeaderWork:
        await self.tips.wait_change(work.prev_hash)
        return await self.fetch()

    async def submit(self, solution: Solution) -> Submission:
        with node_errors():
            taken = await self.rpc.call("getwork", getwork_data(solution.header).hex())
            if taken is True:
                return Submission(True)
            best = hash_from_hex(await self.rpc.call("getbestblockhash"))
        stale = best != solution.header.prev_hash
        return Submission(False, "stale" if stale else "rejected (getwork gives no reason)")

    async def close(self) -> None:
        if self._tips is not None:
            await self._tips.close()
        await self.rpc.close()


class TipWatch(ABC):
    """Follows the node's tip for sources that get no long poll."""

    @abstractmethod
    async def wait_change(self, known: bytes) -> None:
        """Return once the node's tip is not ``known``; NodeUnavailableError if it cannot
        tell (the node went away)."""

    async def close(self) -> None:  # noqa: B027 (a polling watch holds nothing)
        """Release what the watch holds."""


class PolledTips(TipWatch):
    """``getbestblockhash`` every :data:`POLL_EVERY` seconds."""

    def __init__(self, rpc: NodeRpc, every: float = POLL_EVERY) -> None:
        self.rpc = rpc
        self.every = every

    async def wait_change(self, known: bytes) -> None:
        while True:
            with node_errors():
                best = hash_from_hex(await self.rpc.call("getbestblockhash"))
            if best != known:
                return
            await asyncio.sleep(self.every)


class EventStreamTips(TipWatch):
    """The node's ``/events`` WebSocket, ``new_tip`` events only; reconnected when it breaks."""

    def __init__(self, rpc: NodeRpc) -> None:
        self.rpc = rpc
        self.tip: bytes | None = None
        """The node's tip as last heard; None while unknown (after lost events)."""
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    @property
    def url(self) -> str:
        return self.rpc.url.replace("http://", "ws://", 1) + "/events?types=new_tip"

    async def connect(self) -> None:
        """Open the stream and read its ``hello``. aiohttp.WSServerHandshakeError when the node
        serves no stream; NodeUnavailableError when it cannot be reached."""
        try:
            ws = await self.rpc.session.ws_connect(
                self.url, headers={"Authorization": self.rpc.auth_header()}, heartbeat=30.0
            )
        except aiohttp.WSServerHandshakeError:
            raise
        except (aiohttp.ClientError, OSError, AuthError) as exc:
            raise NodeUnavailableError(f"the node's event stream: {exc}") from exc
        try:
            hello = loads(await ws.receive_str(timeout=CALL_TIMEOUT))
            self.tip = hash_from_hex(hello["hash"])
        except (TypeError, ValueError, KeyError, aiohttp.ClientError, TimeoutError) as exc:
            await ws.close()
            raise NodeUnavailableError(f"the node's event stream did not say hello: {exc}") from exc
        self._ws = ws
        self._reader = asyncio.create_task(self._read(ws))

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        try:
            async for message in ws:
                if message.type is not aiohttp.WSMsgType.TEXT:
                    continue
                try:
                    event = loads(message.data)
                    kind = event.get("type")
                    if kind == "new_tip":
                        self.tip = hash_from_hex(event["hash"])
                    elif kind == "events_lost":
                        self.tip = None  # a new_tip may be among them
                    else:
                        continue
                except (AttributeError, KeyError, TypeError, ValueError):
                    log.warning("the node's event stream sent %.200s", message.data)
                    continue
                self._wake()
        finally:
            self._ws = None
            self._wake()
            await ws.close()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_change(self, known: bytes) -> None:
        if self._ws is None:
            try:
                await self.connect()
            except aiohttp.WSServerHandshakeError as exc:
                raise NodeUnavailableError(f"the node's event stream: {exc.message}") from exc
        while self.tip == known:
            changed = self._changed
            await changed.wait()
            if self._ws is None:
                raise NodeUnavailableError("the node's event stream closed")

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        if self._ws is not None:
            await self._ws.close()
            self._ws = None


async def open_tip_watch(rpc: NodeRpc) -> TipWatch:
    """The node's event stream if it serves one, else polling."""
    stream = EventStreamTips(rpc)
    try:
        await stream.connect()
    except aiohttp.WSServerHandshakeError as exc:
        log.info(
            "the node serves no event stream (HTTP %d); polling its tip every %g s",
            exc.status,
            POLL_EVERY,
        )
        return PolledTips(rpc)
    return stream
