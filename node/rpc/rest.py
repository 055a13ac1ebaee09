"""The read-only REST API: JSON over GET, for dashboards, explorers and scripts.

Every route answers with the same JSON as the RPC method it mirrors (it calls that method),
so the two can never disagree. Like bitcoind's REST interface it changes nothing; unlike it,
errors are JSON too: ``{"error": {"code": N, "message": "..."}}`` with HTTP 404 when the thing
asked for does not exist (-5), 400 for a malformed request (-8, -3, -22), 500 otherwise.

When the routes are public they carry ``Access-Control-Allow-Origin: *``, so a dashboard
served from another origin (the devnet's) can read them from a browser; no credentials are
involved then.

==========================================  ==================================================
route                                       answer
==========================================  ==================================================
``/rest/status``                            a one-glance summary: network, height, tip,
                                            headers, peers, mempool, uptime, addresses
``/rest/chaininfo``                         getblockchaininfo
``/rest/chaintips``                         getchaintips
``/rest/block/HASH``                        getblock at verbosity 2 (``?verbosity=1`` for
                                            txids); ``HASH.hex`` for the raw block
``/rest/blockhashbyheight/HEIGHT``          ``{"blockhash": ...}`` (getblockhash)
``/rest/headers/HASH?count=N``              up to N (default 5, at most 2000) headers of the
                                            active chain from HASH upwards (getblockheader)
``/rest/tx/TXID``                           getrawtransaction verbose, from the mempool, or
                                            from ``?blockhash=HASH``
``/rest/address/ADDR/utxos``                the address's unspent outputs, confirmed and in
                                            the mempool, and whether a mempool tx spends them
``/rest/trace/ADDR``                        traceaddress: the coins paid to ADDR followed
                                            forward (``?max_txs=N&max_hops=H&mempool=0``)
``/rest/mempool``                           getmempoolinfo plus ``txids``
``/rest/mempool/contents``                  getrawmempool verbose
``/rest/peers``                             getpeerinfo
==========================================  ==================================================
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from node.chainstate import ChainState
from node.core.address import decode_address
from node.core.errors import AddressError
from node.core.hashing import hash_hex
from node.core.mempool import Mempool
from node.core.tx import OutPoint
from node.moneyflow import DEFAULT_MAX_HOPS, DEFAULT_MAX_TXS, MAX_HOPS, MAX_TXS
from node.rpc.context import RpcContext
from node.rpc.errors import RpcCode, RpcError
from node.rpc.jsonfmt import Amount, dumps
from node.rpc.jsonrpc import Dispatcher

Authorize = Callable[..., Awaitable[web.Response | None]]

MAX_HEADERS = 2000
DEFAULT_HEADERS = 5

_STATUS_FOR_CODE = {
    RpcCode.INVALID_ADDRESS_OR_KEY: 404,
    RpcCode.METHOD_NOT_FOUND: 404,
    RpcCode.INVALID_PARAMETER: 400,
    RpcCode.TYPE_ERROR: 400,
    RpcCode.DESERIALIZATION_ERROR: 400,
    RpcCode.INVALID_PARAMS: 400,
    RpcCode.MISC_ERROR: 500,
}


def json_response(value: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, text=dumps(value), content_type="application/json")


def error_response(error: RpcError) -> web.Response:
    return json_response({"error": error.to_json()}, _STATUS_FOR_CODE.get(error.code, 500))


def _int_query(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise RpcError(RpcCode.INVALID_PARAMETER, f"{name} must be an integer") from None
    if not low <= value <= high:
        raise RpcError(RpcCode.INVALID_PARAMETER, f"{name} must be from {low} to {high}")
    return value


class RestApi:
    def __init__(
        self, dispatcher: Dispatcher, ctx: RpcContext, authorize: Authorize, *, cors: bool
    ) -> None:
        self.dispatcher = dispatcher
        self.ctx = ctx
        self.authorize = authorize
        self.cors = cors

    def route(
        self, handler: Callable[[web.Request], Awaitable[Any]]
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        """Wrap a handler returning a JSON value: auth first, RpcError as a JSON error."""

        async def wrapped(request: web.Request) -> web.StreamResponse:
            refused = await self.authorize(request, always=False)
            if refused is not None:
                return refused
            try:
                result = await handler(request)
                response = result if isinstance(result, web.StreamResponse) else None
                if response is None:
                    response = json_response(result)
            except RpcError as exc:
                response = error_response(exc)
            if self.cors:
                response.headers["Access-Control-Allow-Origin"] = "*"
            return response

        return wrapped

    async def call(self, method: str, *params: Any) -> Any:
        return await self.dispatcher.call(method, list(params))

    async def status(self, _request: web.Request) -> Any:
        node = self.ctx.node
        tip = node.tip
        mempool_size, mempool_bytes = await node.query(
            lambda _chain, mempool: (len(mempool), mempool.total_bytes)
        )
        peers = node.peers()
        return {
            "network": node.params.name,
            "height": tip.height,
            "hash": hash_hex(tip.hash),
            "headers": tip.best_header_height,
            "syncing": tip.syncing,
            "peers": len(peers),
            "inbound": sum(1 for p in peers if p.inbound),
            "network_active": node.network_active,
            "mempool": {"size": mempool_size, "bytes": mempool_bytes},
            "uptime": int(node.uptime),
            "p2p_address": node.listen_address,
            "wallet": self.ctx.wallet_service is not None,
        }

    async def chaininfo(self, _request: web.Request) -> Any:
        return await self.call("getblockchaininfo")

    async def chaintips(self, _request: web.Request) -> Any:
        return await self.call("getchaintips")

    async def block(self, request: web.Request) -> Any:
        name = request.match_info["hash"]
        if name.endswith(".hex"):
            text = await self.call("getblock", name[:-4], 0)
            return web.Response(text=text + "\n", content_type="text/plain")
        name = name.removesuffix(".json")
        verbosity = _int_query(request, "verbosity", 2, 1, 2)
        return await self.call("getblock", name, verbosity)

    async def blockhash_by_height(self, request: web.Request) -> Any:
        try:
            height = int(request.match_info["height"])
        except ValueError:
            raise RpcError(RpcCode.INVALID_PARAMETER, "the height must be an integer") from None
        return {"blockhash": await self.call("getblockhash", height)}

    async def headers(self, request: web.Request) -> Any:
        count = _int_query(request, "count", DEFAULT_HEADERS, 1, MAX_HEADERS)
        first = await self.call("getblockheader", request.match_info["hash"], True)
        result = [first]
        while len(result) < count and "nextblockhash" in result[-1]:
            result.append(await self.call("getblockheader", result[-1]["nextblockhash"], True))
        return result

    async def tx(self, request: web.Request) -> Any:
        blockhash = request.query.get("blockhash")
        return await self.call("getrawtransaction", request.match_info["txid"], 1, blockhash)

    async def address_utxos(self, request: web.Request) -> Any:
        address = request.match_info["address"]
        params = self.ctx.node.params
        try:
            pubkey_hash = decode_address(address, params.address_version)
        except AddressError as exc:
            raise RpcError(RpcCode.INVALID_ADDRESS_OR_KEY, f"Invalid address: {exc}") from None

        def read(chain: ChainState, mempool: Mempool) -> Any:
            tip = chain.tip
            utxos: list[dict[str, Any]] = []
            for outpoint, coin in sorted(
                chain.coins_for([pubkey_hash]), key=lambda c: (c[1].height, c[0].txid, c[0].index)
            ):
                utxos.append(
                    {
                        "txid": hash_hex(outpoint.txid),
                        "vout": outpoint.index,
                        "amount": Amount(coin.value),
                        "height": coin.height,
                        "confirmations": tip.height - coin.height + 1,
                        "coinbase": coin.is_coinbase,
                        "spent_in_mempool": mempool.spender_of(outpoint) is not None,
                    }
                )
            for entry in mempool.entries():
                for n, out in enumerate(entry.tx.outputs):
                    if out.pubkey_hash == pubkey_hash:
                        outpoint = OutPoint(entry.txid, n)
                        utxos.append(
                            {
                                "txid": entry.tx.txid_hex,
                                "vout": n,
                                "amount": Amount(out.value),
                                "height": None,
                                "confirmations": 0,
                                "coinbase": False,
                                "spent_in_mempool": mempool.spender_of(outpoint) is not None,
                            }
                        )
            return {
                "address": address,
                "pubkey_hash": pubkey_hash.hex(),
                "height": tip.height,
                "hash": tip.hash_hex,
                "utxos": utxos,
            }

        return await self.ctx.node.query(read)

    async def trace(self, request: web.Request) -> Any:
        max_txs = _int_query(request, "max_txs", DEFAULT_MAX_TXS, 1, MAX_TXS)
        max_hops = _int_query(request, "max_hops", DEFAULT_MAX_HOPS, 0, MAX_HOPS)
        include_mempool = bool(_int_query(request, "mempool", 1, 0, 1))
        return await self.call(
            "traceaddress", request.match_info["address"], max_txs, max_hops, include_mempool
        )

    async def mempool(self, _request: web.Request) -> Any:
        info = await self.call("getmempoolinfo")
        return info | {"txids": await self.call("getrawmempool", False)}

    async def mempool_contents(self, _request: web.Request) -> Any:
        return await self.call("getrawmempool", True)

    async def peers(self, _request: web.Request) -> Any:
        return await self.call("getpeerinfo")


def add_rest_routes(
    app: web.Application,
    dispatcher: Dispatcher,
    ctx: RpcContext,
    authorize: Authorize,
    *,
    cors: bool,
) -> None:
    """Add the routes; ``cors`` lets pages of any origin read them (public REST only)."""
    api = RestApi(dispatcher, ctx, authorize, cors=cors)
    routes = {
        "/rest/status": api.status,
        "/rest/chaininfo": api.chaininfo,
        "/rest/chaintips": api.chaintips,
        "/rest/block/{hash}": api.block,
        "/rest/blockhashbyheight/{height}": api.blockhash_by_height,
        "/rest/headers/{hash}": api.headers,
        "/rest/tx/{txid}": api.tx,
        "/rest/address/{address}/utxos": api.address_utxos,
        "/rest/trace/{address}": api.trace,
        "/rest/mempool": api.mempool,
        "/rest/mempool/contents": api.mempool_contents,
        "/rest/peers": api.peers,
    }
    for path, handler in routes.items():
        app.router.add_get(path, api.route(handler))
