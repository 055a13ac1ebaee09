"""The server itself: help, uptime, stop; and address validation (bitcoind's ``rpc/server.cpp``
and ``rpc/misc.cpp``)."""

from __future__ import annotations

from typing import Any

from node.core.address import decode_address
from node.core.errors import AddressError
from node.rpc.context import RpcContext
from node.rpc.registry import MethodTable, Param, Str

table = MethodTable("control")
util = MethodTable("util")


@table.method("help", Param("command", Str(max_length=100), None, help="a method's name"))
async def help_(ctx: RpcContext, command: str | None) -> str:
    """Every method's usage by category, or one method's full help."""
    return ctx.registry.help(command)


@table.method("uptime")
async def uptime(ctx: RpcContext) -> int:
    """Seconds since the node started."""
    return int(ctx.node.uptime)


@table.method("stop")
async def stop(ctx: RpcContext) -> str:
    """Shut the node down cleanly (after this reply is sent)."""
    ctx.request_stop()
    return "forklab stopping"


@util.method("validateaddress", Param("address", Str(max_length=200), help="the address"))
async def validateaddress(ctx: RpcContext, address: str) -> dict[str, Any]:
    """Whether ``address`` is a valid address of this node's network, and what it pays."""
    try:
        pubkey_hash = decode_address(address, ctx.node.params.address_version)
    except AddressError as exc:
        return {"isvalid": False, "error": str(exc)}
    return {
        "isvalid": True,
        "address": address,
        "pubkey_hash": pubkey_hash.hex(),
        "isscript": False,
        "iswitness": False,
    }
