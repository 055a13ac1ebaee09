"""Mining against a :class:`~node.node.Node` in the same process: no HTTP, the same backends.

For local networks, simulations and tests, where the miner and the node share an event loop:
templates are built on the node's executor from its chain and mempool
(:func:`~node.core.template.build_template`, as ``getblocktemplate`` builds them, but paying the
miner and carrying its message), news of a new tip is the node's own ``NewTip`` event, and a
solution goes to :meth:`Node.submit_block <node.node.Node.submit_block>`. Its verdict is worded
as ``submitblock`` words it (BIP 22), so a rejected block reads the same in-process or over RPC.

What this module does not do: start or stop the node, or watch the mempool (a new template
is made only for a new tip; over RPC the long poll also refreshes it for new transactions).
"""

from __future__ import annotations

from miner.source import NodeUnavailableError, SourceInfo, Submission, WorkSource
from miner.work import DEFAULT_MESSAGE, Solution, TemplateWork, Work
from node.chainstate import ChainState, template_on_tip
from node.core.address import decode_address
from node.core.errors import AddressError, ForklabError, InternalError
from node.core.mempool import Mempool
from node.core.template import BlockTemplate
from node.events import NewTip, Subscription
from node.node import Node

TIP_EVENTS_QUEUE = 100
"""Tip events held for the miner; more are summarised as lost, which also means a new tip."""


class NodeSource(WorkSource):
    """Work from ``node``; blocks pay ``address`` (an address of the node's network)."""

    def __init__(self, node: Node, address: str, *, message: bytes = DEFAULT_MESSAGE) -> None:
        self.node = node
        self.address = address
        self.message = message
        self._payout: bytes | None = None
        self._tips: Subscription | None = None

    async def start(self) -> SourceInfo:
        params = self.node.params
        try:
            self._payout = decode_address(self.address, params.address_version)
        except AddressError as exc:
            raise ForklabError(f"{self.address!r} is not a {params.name} address: {exc}") from None
        self._tips = self.node.subscribe(maxsize=TIP_EVENTS_QUEUE, kinds=(NewTip,))
        return SourceInfo(
            "in-process", f"in-process node ({params.name})", params.name, self.address
        )

    async def fetch(self) -> TemplateWork:
        payout = self._payout
        if payout is None:
            raise RuntimeError("NodeSource.start() first")
        message = self.message
        now = int(self.node.runtime.clock.time())

        def template(chain: ChainState, mempool: Mempool) -> BlockTemplate:
            return template_on_tip(chain, mempool, payout, now, message)

        try:
            return TemplateWork(await self.node.query(template))
        except InternalError as exc:  # the node is not running
            raise NodeUnavailableError(str(exc)) from exc

    async def next_change(self, work: Work) -> TemplateWork:
        tips = self._tips
        if tips is None:
            raise RuntimeError("NodeSource.start() first")
        while self._tip() == work.prev_hash:
            try:
                await tips.get()  # a new tip, or lost events that may hide one
            except EOFError:
                raise NodeUnavailableError("the node stopped") from None
        return await self.fetch()

    def _tip(self) -> bytes:
        try:
            return self.node.tip.hash
        except InternalError as exc:
            raise NodeUnavailableError(str(exc)) from exc

    async def submit(self, solution: Solution) -> Submission:
        block = solution.block
        if block is None:
            raise ValueError("in-process work is submitted as a whole block")
        try:
            reason = await self.node.mine_block(block)
        except InternalError as exc:  # the node closed under the miner
            raise NodeUnavailableError(str(exc)) from exc
        return Submission(True) if reason is None else Submission(False, reason)

    async def close(self) -> None:
        if self._tips is not None:
            self._tips.close()
            self._tips = None
