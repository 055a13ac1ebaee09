"""What RPC methods are given: the node, its wallet, and the state the API server keeps.

Methods drive :class:`node.node.Node` through its public API. Chain state and mempool have one
owner (the node's executor); a method reads them in one trip, ``await ctx.node.query(fn)``,
where ``fn(chain, mempool)`` runs on the owner and returns finished values, so a reply never
mixes two states of the chain. Changes go through the node's coroutines (``submit_block``,
``submit_tx``, ``invalidate_block``...), which also relay them and publish their events; the
API never changes chain state behind the node's back.

Besides the node, a method gets the wallet (:class:`~node.rpc.wallet_service.NodeWallet`, or
None when the node runs without one), the registry (for ``help``), a way to ask the process to
stop, the clock, getwork's board, the long-poll watcher and the mining policy (state that
belongs to the API, not to the node: they shape the work it hands out, never what it accepts),
and the metrics counters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from node.core.template import NO_POLICY, MiningPolicy
from node.rpc.errors import RpcCode, RpcError
from node.rpc.metrics import Counters
from node.runtime import Clock

if TYPE_CHECKING:
    from node.node import Node
    from node.rpc.registry import Registry
    from node.rpc.wallet_service import NodeWallet
    from node.rpc.work import TemplateWatcher, WorkBoard


@dataclass
class RpcContext:
    node: Node
    registry: Registry
    clock: Clock
    request_stop: Callable[[], None]
    """Ask the process to shut down cleanly (after the current reply is sent)."""
    work: WorkBoard
    templates: TemplateWatcher
    wallet_service: NodeWallet | None = None
    mining_address: bytes | None = None
    """The public-key hash getwork's blocks pay (configured), else the wallet's first key."""
    mining_policy: MiningPolicy = NO_POLICY
    """What the node's templates leave out (``mining_exclude_addresses``, ``setminingpolicy``)."""
    counters: Counters = field(default_factory=Counters)

    @property
    def wallet(self) -> NodeWallet:
        if self.wallet_service is None:
            raise RpcError(
                RpcCode.METHOD_NOT_FOUND, "Method not found (this node runs without a wallet)"
            )
        return self.wallet_service

    def mining_pubkey_hash(self) -> bytes:
        if self.mining_address is not None:
            return self.mining_address
        if self.wallet_service is None:
            raise RpcError(
                RpcCode.MISC_ERROR,
                "getwork needs somewhere to pay: configure mining_address or enable the wallet",
            )
        return self.wallet_service.mining_pubkey_hash
