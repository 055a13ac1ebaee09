"""Link control: the partitions and latency a node imposes on its own links (forklab only).

bitcoind has nothing like these: they exist so that ``forklab devnet partition``, ``heal`` and
``latency`` work on loopback as an ordinary user, with no firewall rule or ``tc`` qdisc. Each
node is told which peer addresses to refuse and how long to hold frames to a peer, and applies
that in its own transport (:class:`~node.p2p.links.LinkPolicy`, where the semantics are
described: a blocked address is a cut cable both ways, a latency is one-way and applied by the
sender).

``setlinkpolicy`` *replaces* what it is given (the whole blocked set, the whole latency map),
so a controller can send the full policy again after a restart or a retry without tracking
what the node held before; a part left out stays as it was.
"""

from __future__ import annotations

from typing import Any

from node.config import Endpoint
from node.p2p.links import LinkPolicy
from node.rpc.context import RpcContext
from node.rpc.errors import invalid_parameter
from node.rpc.registry import Arr, Int, MethodTable, Obj, Param, Str

table = MethodTable("network")

MAX_LATENCY_MS = 600_000
"""Ten minutes: beyond that a peer's pings time out and the link is dropped anyway."""
MAX_ADDRESSES = 10_000


def _address(text: str, name: str) -> str:
    try:
        return str(Endpoint.parse(text))
    except ValueError as exc:
        raise invalid_parameter(f"{name}: {exc}") from None


def policy_json(policy: LinkPolicy) -> dict[str, Any]:
    return {
        "blocked": sorted(policy.blocked()),
        "latency_ms": {
            address: round(seconds * 1000)
            for address, seconds in sorted(policy.latencies().items())
        },
    }


@table.method("getlinkpolicy")
async def getlinkpolicy(ctx: RpcContext) -> dict[str, Any]:
    """The peer addresses this node refuses (``blocked``) and the one-way delay it adds to
    frames for each peer address (``latency_ms``)."""
    return policy_json(ctx.node.links)


@table.method(
    "setlinkpolicy",
    Param(
        "blocked",
        Arr(Str(max_length=300), max_items=MAX_ADDRESSES),
        None,
        help="HOST:PORT addresses to refuse, replacing the blocked set",
    ),
    Param(
        "latency_ms",
        Obj(),
        None,
        help='{"HOST:PORT": milliseconds} one-way delays, replacing the latency map',
    ),
)
async def setlinkpolicy(
    ctx: RpcContext, blocked: list[str] | None, latency_ms: dict[str, Any] | None
) -> dict[str, Any]:
    """Replace the blocked set and/or the latency map; returns the policy now in force.

    Connections to newly blocked addresses are dropped at once and new ones refused both ways;
    unblocked peers are redialled at once if the node keeps a connection to them.
    """
    wanted_blocked = None
    if blocked is not None:
        wanted_blocked = {_address(a, f"blocked[{n}]") for n, a in enumerate(blocked)}
    wanted_latency = None
    if latency_ms is not None:
        if len(latency_ms) > MAX_ADDRESSES:
            raise invalid_parameter(f"latency_ms holds more than {MAX_ADDRESSES} addresses")
        wanted_latency = {}
        for key, value in latency_ms.items():
            ms = Int(0, MAX_LATENCY_MS).convert(value, f"latency_ms[{key}]")
            wanted_latency[_address(key, "latency_ms")] = ms
    # Everything is checked before anything changes: a bad entry leaves the policy untouched.
    policy = ctx.node.links
    if wanted_blocked is not None:
        current = set(policy.blocked())
        if current - wanted_blocked:
            policy.unblock(*sorted(current - wanted_blocked))
        if wanted_blocked - current:
            policy.block(*sorted(wanted_blocked - current))
    if wanted_latency is not None:
        for address in policy.latencies():
            if address not in wanted_latency:
                policy.set_latency(address, 0)
        for address, ms in wanted_latency.items():
            policy.set_latency(address, ms / 1000)
    return policy_json(policy)
