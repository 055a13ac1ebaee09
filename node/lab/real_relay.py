"""The operator's relay: a pool's node cut off from its peers, linked to its neighbours by RPC.

A pool whose strategy needs a node of its own that the network does not see (the simulator's
*private node*: an orphaning censor, a selfish pool) runs on a devnet node that the runner
cuts off (:class:`~node.lab.real_strategies.Links`), and :class:`Relay` does what its links
did, the operator's way:

- blocks the node's neighbours in the scenario's topology connect are handed to it with
  ``submitblock``, so it knows the public chain and judges it by the rules every node uses;
- their mempools' transactions with ``sendrawtransaction``, and its own (its users'
  payments) to them;
- the pool's own blocks go out with ``submitblock`` when its strategy says so.

Nothing passes over a P2P link, so a block the pool's node refuses (one built on a block it
marked invalid) is an RPC answer, not a peer's offence: a node linked to its peers would ban
each of them for relaying it. The relay respects the scenario's partitions, and adds up to a
look's interval (:data:`node.lab.real_strategies.REACT`) to the pool's links.

What this module does not do: decide anything (the strategies do), or find blocks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from node.core.block import Block
from node.core.hashing import hash_from_hex, hash_hex
from node.rpc.client import RpcCallError, RpcClient, RpcConnectionError

if TYPE_CHECKING:
    from node.lab.runner_real import RealRunner


def call_or(client: RpcClient, method: str, *params: Any, default: Any) -> Any:
    """``method``'s answer, or ``default`` if the node cannot answer now (it may be down)."""
    try:
        return client.call(method, *params)
    except (RpcCallError, RpcConnectionError):
        return default


class Relay:
    """The operator's relay between a pool's node, cut off from its peers, and the nodes it
    would be linked to: the pool's node is then the simulator's *private node*.

    Blocks its neighbours connect are handed to it with ``submitblock`` (so it knows the public
    chain and judges it by the rules every node uses), their mempools' transactions with
    ``sendrawtransaction``, and the pool's own blocks go out to the neighbours with
    ``submitblock``. Nothing passes over a P2P link, so a block the pool's node refuses costs it
    no peer.
    """

    def __init__(self, runner: RealRunner, node: str, payout: bytes) -> None:
        """Relay for ``node``, whose pool's coinbases pay ``payout``."""
        self.runner = runner
        self.node = node
        self.payout = payout
        self.neighbours = sorted(
            {a if b == node else b for a, b in runner.scenario.edges() if node in (a, b)}
        )
        self.known: set[bytes] = set()
        """Blocks the pool's node was given, or found itself."""
        self.turned_away: list[Block] = []
        """Public blocks the pool's node refused (built on a block it marked invalid)."""
        self._tips: dict[str, str] = {}
        self._txids: set[str] = set()

    def start(self, own: RpcClient) -> None:
        """Everything the pool's node holds now is known (not the pool's to publish)."""
        tip = call_or(own, "getbestblockhash", default=None)
        if tip is not None:
            self.known.add(hash_from_hex(tip))

    def reachable(self) -> list[str]:
        """The neighbours the scenario's partition leaves the pool's node linked to."""
        return [n for n in self.neighbours if not self.runner.links.apart(self.node, n)]

    def pull(self, own: RpcClient) -> list[tuple[Block, bool]]:
        """Hand the neighbours' new blocks to the pool's node, oldest first; each with whether
        it was accepted."""
        handed = []
        for name in self.reachable():
            client = self.runner.client(name)
            tip = None if client is None else call_or(client, "getbestblockhash", default=None)
            if client is None or tip is None or self._tips.get(name) == tip:
                continue
            self._tips[name] = tip
            for block in self._missing(client, own, hash_from_hex(tip)):
                answer = call_or(own, "submitblock", block.serialize().hex(), default="")
                self.known.add(block.hash)
                accepted = answer in (None, "inconclusive", "duplicate")
                if answer == "bad-prevblk":
                    self.turned_away.append(block)
                handed.append((block, accepted))
        neighbours = [c for c in map(self.runner.client, self.reachable()) if c is not None]
        for client in neighbours:
            self._relay_transactions(client, [own])
        self._relay_transactions(own, neighbours)  # its users' payments go out too
        return handed

    def _relay_transactions(self, source: RpcClient, targets: Sequence[RpcClient]) -> None:
        for txid in call_or(source, "getrawmempool", default=[]):
            if txid not in self._txids:
                self._txids.add(txid)
                raw = call_or(source, "getrawtransaction", txid, default=None)
                for target in targets if raw is not None else ():
                    # Refused (a conflict, a missing parent...) as a peer's relay would be.
                    call_or(target, "sendrawtransaction", raw, default=None)

    def _missing(self, source: RpcClient, own: RpcClient, tip: bytes) -> list[Block]:
        """Blocks of ``source``'s chain up to ``tip`` that the pool's node was not given."""
        blocks: list[Block] = []
        walk = tip
        while walk not in self.known and walk != self.runner.params.genesis_hash:
            if call_or(own, "getblockheader", hash_hex(walk), default=None) is not None:
                self.known.add(walk)  # it has it: so it has every block below
                break
            raw = call_or(source, "getblock", hash_hex(walk), 0, default=None)
            if raw is None:
                break
            block = Block.deserialize(bytes.fromhex(raw))
            blocks.append(block)
            walk = block.header.prev_hash
        return blocks[::-1]

    def new_own(self, own: RpcClient) -> list[Block]:
        """The blocks the pool found since the last look, oldest first (on its node's chain)."""
        found = []
        tip = call_or(own, "getbestblockhash", default=None)
        walk = None if tip is None else hash_from_hex(tip)
        while walk is not None and walk not in self.known:
            raw = call_or(own, "getblock", hash_hex(walk), 0, default=None)
            if raw is None:
                break
            block = Block.deserialize(bytes.fromhex(raw))
            self.known.add(walk)
            if block.transactions[0].outputs[0].pubkey_hash == self.payout:
                found.append(block)
            walk = block.header.prev_hash
        return found[::-1]

    def publish(self, blocks: Sequence[Block], also: Sequence[str] = ()) -> None:
        """Hand ``blocks`` (oldest first) to the neighbours and to nodes ``also``."""
        targets = [*self.reachable(), *(n for n in also if n not in self.neighbours)]
        for block in blocks:
            raw = block.serialize().hex()
            for name in targets:
                client = self.runner.client(name)
                if client is not None:
                    call_or(client, "submitblock", raw, default=None)
