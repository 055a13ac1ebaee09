"""Peers and the P2P network (bitcoind's ``rpc/net.cpp``).

``addnode ADDRESS add`` keeps a peer connected (reconnecting with backoff), ``remove`` stops
that, ``onetry`` connects once. ``setnetworkactive false`` drops every connection and refuses
new ones until ``true``, which reconnects to the configured peers.
"""

from __future__ import annotations

from typing import Any

from node import __version__
from node.config import Endpoint
from node.p2p.messages import PROTOCOL_VERSION
from node.p2p.peer import PeerInfo
from node.rpc.context import RpcContext
from node.rpc.errors import RpcCode, RpcError, invalid_parameter
from node.rpc.jsonfmt import Amount
from node.rpc.registry import Bool, Int, MethodTable, Param, Str

table = MethodTable("network")

USER_AGENT = f"/forklab:{__version__}/"


def version_number(version: str) -> int:
    """bitcoind's integer version: 0.1.0 is 100, 1.2.3 is 10203."""
    parts = [int(p) for p in version.split(".")[:3] if p.isdigit()]
    parts += [0] * (3 - len(parts))
    return parts[0] * 10_000 + parts[1] * 100 + parts[2]


def peer_json(peer: PeerInfo, now: float) -> dict[str, Any]:
    return {
        "id": peer.id,
        "addr": peer.address,
        "listen_addr": peer.listen_address,
        "inbound": peer.inbound,
        "connection_type": "inbound" if peer.inbound else "outbound-full-relay",
        "conntime": int(now - peer.connected_seconds),
        "pingtime": peer.ping_seconds,
        "bytessent": peer.bytes_sent,
        "bytesrecv": peer.bytes_received,
        "msgssent": peer.messages_sent,
        "msgsrecv": peer.messages_received,
        "version": peer.protocol_version,
        "subver": peer.user_agent,
        "startingheight": peer.start_height,
        "synced_blocks": peer.best_known_height,
        "misbehaviour": peer.misbehaviour,
        "blocks_in_flight": peer.blocks_in_flight,
        "bip152_hb_to": peer.high_bandwidth_to,
        "bip152_hb_from": peer.high_bandwidth_from,
    }


@table.method("getnetworkinfo")
async def getnetworkinfo(ctx: RpcContext) -> dict[str, Any]:
    """The node's version, connections and relay policy."""
    peers = ctx.node.peers()
    inbound = sum(1 for p in peers if p.inbound)
    min_fee_rate = ctx.node.config.min_fee_rate
    return {
        "version": version_number(__version__),
        "subversion": USER_AGENT,
        "protocolversion": PROTOCOL_VERSION,
        "networkactive": ctx.node.network_active,
        "connections": len(peers),
        "connections_in": inbound,
        "connections_out": len(peers) - inbound,
        "relayfee": Amount(min_fee_rate * 1000),
        "localaddresses": [ctx.node.listen_address] if ctx.node.listen_address else [],
        "warnings": "",
    }


@table.method("getpeerinfo")
async def getpeerinfo(ctx: RpcContext) -> list[dict[str, Any]]:
    """One object per connected peer: address, direction, traffic, ping, heights."""
    now = ctx.clock.time()
    return [peer_json(peer, now) for peer in sorted(ctx.node.peers(), key=lambda p: p.id)]


@table.method("getconnectioncount")
async def getconnectioncount(ctx: RpcContext) -> int:
    """Connected peers, inbound and outbound."""
    return len(ctx.node.peers())


def _address(text: str, name: str) -> str:
    try:
        return str(Endpoint.parse(text))
    except ValueError as exc:
        raise invalid_parameter(f"{name}: {exc}") from None


@table.method(
    "addnode",
    Param("node", Str(max_length=300), help="HOST:PORT of the peer"),
    Param("command", Str(["add", "remove", "onetry"]), help="add, remove or onetry"),
)
async def addnode(ctx: RpcContext, node: str, command: str) -> None:
    """Keep a peer connected (add), stop keeping it (remove), or connect once (onetry)."""
    address = _address(node, "node")
    if command == "onetry":
        await ctx.node.connect_once(address)
        return
    # Node.add_node does not say whether the address was added before, and bitcoind answers
    # -23/-24 by that; the address book's persistent entries are exactly the added nodes.
    added = address in ctx.node.manager.addrbook.persistent()
    if command == "add":
        if added:
            raise RpcError(RpcCode.CLIENT_NODE_ALREADY_ADDED, "Error: Node already added")
        ctx.node.add_node(address)
    else:
        if not added:
            raise RpcError(
                RpcCode.CLIENT_NODE_NOT_ADDED,
                "Error: Node could not be removed. It has not been added previously.",
            )
        ctx.node.remove_node(address)


@table.method(
    "disconnectnode",
    Param("address", Str(max_length=300), "", help="HOST:PORT of the peer"),
    Param("nodeid", Int(0), None, help="the peer's id (getpeerinfo)"),
)
async def disconnectnode(ctx: RpcContext, address: str, nodeid: int | None) -> None:
    """Drop the connection to one peer, named by address or by id (not both)."""
    if bool(address) == (nodeid is not None):
        raise RpcError(RpcCode.INVALID_PARAMS, "Only one of address and nodeid should be provided.")
    target = _address(address, "address") if address else None
    if not ctx.node.disconnect_node(address=target, peer_id=nodeid):
        raise RpcError(RpcCode.CLIENT_NODE_NOT_CONNECTED, "Node not found in connected nodes")


@table.method("setnetworkactive", Param("state", Bool(), help="true to enable networking"))
async def setnetworkactive(ctx: RpcContext, state: bool) -> bool:
    """Disable (false) or enable (true) all P2P activity; returns the new state."""
    ctx.node.set_network_active(state)
    return ctx.node.network_active
