"""``traceaddress``: where the coins paid to an address went (forklab only).

bitcoind has no such method: it keeps no address index, and tracing is what block explorers and
chain-analysis firms do with their own. forklab offers it because the lesson it teaches is the
point: an address is a pseudonym, and every coin it receives can be followed forward through
the public ledger. The model (haircut) and its bounds are :mod:`node.moneyflow`'s.

How the chain is read: the active chain from block 1 up, once, in slices of at most
:data:`BLOCKS_PER_TRIP` blocks (and :data:`TXS_PER_TRIP` transactions) per trip to the chain's
owner, so a long chain never holds the node's executor for long (blocks and transactions keep
being processed between slices). Undo data, which says what each spent output was worth, is
read only for blocks holding a transaction the trail reaches. If the active chain changes under
a trace (a reorganisation below the blocks read), the trace starts again, up to
:data:`RESTARTS` times. The mempool's
transactions come last, with the final slice, so they are read against the same tip.
"""

from __future__ import annotations

from typing import Any

from node.chainstate import ChainState
from node.core.address import decode_address, encode_address
from node.core.hashing import hash_hex
from node.core.mempool import Mempool
from node.core.tx import OutPoint
from node.moneyflow import (
    DEFAULT_MAX_HOPS,
    DEFAULT_MAX_TXS,
    MAX_HOPS,
    MAX_TXS,
    Trace,
    TracedTx,
    Tracer,
    ValueOf,
)
from node.rpc.context import RpcContext
from node.rpc.errors import RpcCode, RpcError
from node.rpc.jsonfmt import Amount
from node.rpc.registry import Bool, Int, MethodTable, Param, Str

table = MethodTable("tracing")

BLOCKS_PER_TRIP = 250
TXS_PER_TRIP = 10_000
"""A trip to the executor ends after this many blocks or transactions, whichever comes first:
tens of milliseconds of work, whether the blocks are empty or full."""

RESTARTS = 3


def _undo_values(chain: ChainState, block_hash: bytes) -> ValueOf:
    """The values of the coins a block spent, from its undo data, read on first use."""
    values: dict[OutPoint, int] | None = None

    def value_of(outpoint: OutPoint) -> int:
        nonlocal values
        if values is None:
            undo = chain.store.get_undo(block_hash)
            if undo is None:
                raise RpcError(RpcCode.MISC_ERROR, f"no undo data for {hash_hex(block_hash)}")
            values = {op: coin.value for op, coin in undo.spent}
        return values[outpoint]

    return value_of


def _mempool_values(chain: ChainState, mempool: Mempool) -> ValueOf:
    def value_of(outpoint: OutPoint) -> int:
        entry = mempool.get(outpoint.txid)
        if entry is not None:
            return entry.tx.outputs[outpoint.index].value
        coin = chain.get_coin(outpoint)
        if coin is None:
            raise RpcError(RpcCode.MISC_ERROR, f"mempool input {outpoint} is not in the chain")
        return coin.value

    return value_of


class ChainScan:
    """One attempt at a trace: where it has read up to, and the tracer it feeds."""

    def __init__(
        self, pubkey_hash: bytes, max_txs: int, max_hops: int, include_mempool: bool
    ) -> None:
        self.tracer = Tracer(pubkey_hash, max_txs=max_txs, max_hops=max_hops)
        self.include_mempool = include_mempool
        self.next_height = 1
        self.last_hash: bytes | None = None
        """The last block read: still on the active chain, or the scan starts again."""

    def slice(self, chain: ChainState, mempool: Mempool) -> tuple[str, int, bytes] | None:
        """Read the next slice; ``("done", height, tip)`` at the end, ``None`` if the chain
        changed under the blocks already read, else ``("more", ...)``."""
        if self.last_hash is not None and chain.block_hash_at(self.next_height - 1) != (
            self.last_hash
        ):
            return None
        end = min(chain.height, self.next_height + BLOCKS_PER_TRIP - 1)
        read = 0
        for height in range(self.next_height, end + 1):
            block_hash = chain.block_hash_at(height)
            assert block_hash is not None
            block = chain.get_block(block_hash)
            if block is None:
                raise RpcError(RpcCode.MISC_ERROR, f"block {hash_hex(block_hash)} is missing")
            self.tracer.add_block(block, height, _undo_values(chain, block_hash))
            self.last_hash = block_hash
            read += len(block.transactions)
            if read >= TXS_PER_TRIP:
                end = height
                break
        self.next_height = end + 1
        if end < chain.height:
            return "more", end, chain.tip.hash
        if self.include_mempool:
            value_of = _mempool_values(chain, mempool)
            for entry in mempool.entries():
                self.tracer.add_transaction(entry.tx, value_of)
        return "done", chain.height, chain.tip.hash


async def trace_address(
    ctx: RpcContext, pubkey_hash: bytes, max_txs: int, max_hops: int, include_mempool: bool
) -> tuple[Trace, int, bytes]:
    """The trace over the whole active chain (and the mempool), with the tip it was read at."""
    for _ in range(RESTARTS + 1):
        scan = ChainScan(pubkey_hash, max_txs, max_hops, include_mempool)
        while True:
            outcome = await ctx.node.query(scan.slice)
            if outcome is None:
                break
            state, height, tip = outcome
            if state == "done":
                return scan.tracer.result(), height, tip
    raise RpcError(RpcCode.MISC_ERROR, "the chain kept changing during the trace; try again")


def trace_json(
    trace: Trace, address: str, height: int, tip: bytes, address_version: int
) -> dict[str, Any]:
    return {
        "address": address,
        "pubkey_hash": trace.pubkey_hash.hex(),
        "height": height,
        "bestblock": hash_hex(tip),
        "received": Amount(trace.received),
        "recirculated": Amount(trace.recirculated),
        "traced": Amount(trace.traced),
        "unspent": Amount(trace.unspent),
        "fees": Amount(trace.fees),
        "hops": trace.hops,
        "truncated": trace.truncated,
        "max_txs": trace.max_txs,
        "max_hops": trace.max_hops,
        "blocks_scanned": trace.blocks_scanned,
        "txs": [_tx_json(tx, trace, height, address_version) for tx in trace.txs],
    }


def _tx_json(tx: TracedTx, trace: Trace, height: int, version: int) -> dict[str, Any]:
    confirmations = 0 if tx.height is None else height - tx.height + 1
    return {
        "txid": hash_hex(tx.txid),
        "hop": tx.hop,
        "height": tx.height,
        "blockhash": None if tx.block_hash is None else hash_hex(tx.block_hash),
        "confirmations": confirmations,
        "coinbase": tx.coinbase,
        "value_in": Amount(tx.value_in),
        "traced_in": Amount(tx.traced_in),
        "fraction": round(tx.fraction, 8),
        "fee": Amount(tx.fee),
        "traced_fee": Amount(tx.traced_fee),
        "spends": [{"txid": hash_hex(op.txid), "vout": op.index} for op in tx.spends],
        "vout": [
            {
                "n": out.index,
                "value": Amount(out.value),
                "traced": Amount(out.traced),
                "fraction": round(out.fraction, 8),
                "address": encode_address(out.pubkey_hash, version),
                "is_target": out.pubkey_hash == trace.pubkey_hash,
                "spent": out.spent_by is not None,
                "spentby": None if out.spent_by is None else hash_hex(out.spent_by),
                "height": tx.height,
                "confirmations": confirmations,
            }
            for out in tx.outputs
        ],
    }


@table.method(
    "traceaddress",
    Param("address", Str(max_length=200), help="the address whose coins are followed"),
    Param(
        "max_txs",
        Int(1, MAX_TXS),
        DEFAULT_MAX_TXS,
        help=f"transactions in the graph at most (1 to {MAX_TXS})",
    ),
    Param(
        "max_hops",
        Int(0, MAX_HOPS),
        DEFAULT_MAX_HOPS,
        help=f"hops from the address at most (0 to {MAX_HOPS})",
    ),
    Param("include_mempool", Bool(), True, help="follow unconfirmed transactions too"),
)
async def traceaddress(
    ctx: RpcContext, address: str, max_txs: int, max_hops: int, include_mempool: bool
) -> dict[str, Any]:
    """Follow the coins paid to ``address`` forward through every later transaction.

    Every output paying the address is a start; every transaction spending traced coins is a
    hop, and its outputs descend from the address in proportion to the traced value among its
    inputs (the haircut model; fees take their share). The result is the graph: ``txs`` in
    chain order, each with its ``hop``, ``traced_in`` and ``fraction``, and per output
    (``vout``) its ``value``, ``traced``, ``fraction``, ``address`` and ``spentby``. Totals:
    ``received`` by the address, of which ``recirculated`` was its own coins coming back,
    ``traced`` = received - recirculated = ``unspent`` + ``fees`` unless ``truncated``.
    """
    version = ctx.node.params.address_version
    # A bad address raises AddressError: the dispatcher answers it as -5 "Invalid address".
    pubkey_hash = decode_address(address, version)
    trace, height, tip = await trace_address(ctx, pubkey_hash, max_txs, max_hops, include_mempool)
    return trace_json(trace, address, height, tip, version)
