"""Raw transactions: look up, decode and broadcast (bitcoind's ``rpc/rawtransaction.cpp``).

Raw hex is forklab's canonical transaction encoding (:mod:`node.core.tx`), not Bitcoin's.
Like bitcoind without ``-txindex``, the node keeps no index of confirmed transactions:
``getrawtransaction`` finds mempool transactions, or confirmed ones when told their block.
"""

from __future__ import annotations

from typing import Any

from node.chainstate import ChainState
from node.core.block import MAX_BLOCK_SIZE
from node.core.errors import DecodeError
from node.core.mempool import Mempool, MempoolView
from node.core.tx import MAX_TX_SIZE, Transaction
from node.rpc.context import RpcContext
from node.rpc.errors import RpcCode, RpcError
from node.rpc.jsonfmt import parse_amount
from node.rpc.methods.blockchain import entry_facts
from node.rpc.registry import AmountParam, HashHex, Hex, IntOrBool, MethodTable, Param
from node.rpc.views import tx_json

table = MethodTable("rawtransactions")

DEFAULT_MAX_FEE_RATE = parse_amount("0.10")
"""bitcoind's default ``maxfeerate`` for sendrawtransaction: 0.10 coins per 1,000 bytes."""


def decode_tx(data: bytes) -> Transaction:
    try:
        return Transaction.deserialize(data)
    except DecodeError as exc:
        raise RpcError(RpcCode.DESERIALIZATION_ERROR, f"TX decode failed: {exc}") from None


@table.method(
    "getrawtransaction",
    Param("txid", HashHex(), help="the transaction id"),
    Param("verbose", IntOrBool(0, 1), 0, help="0/false for hex, 1/true for JSON"),
    Param("blockhash", HashHex(), None, help="the block to look in (else the mempool)"),
)
async def getrawtransaction(
    ctx: RpcContext, txid: bytes, verbose: int, blockhash: bytes | None
) -> Any:
    """A transaction from the mempool, or from the block ``blockhash``: hex, or JSON (verbose).

    Verbose JSON of a confirmed transaction adds ``blockhash``, ``confirmations``, ``time``,
    ``blocktime`` and ``in_active_chain``.
    """

    def read(chain: ChainState, mempool: Mempool) -> Any:
        version = chain.params.address_version
        if blockhash is None:
            entry = mempool.get(txid)
            if entry is None:
                raise RpcError(
                    RpcCode.INVALID_ADDRESS_OR_KEY,
                    "No such mempool transaction. This node keeps no transaction index: "
                    "give the hash of the block that holds it",
                )
            if not verbose:
                return entry.tx.serialize().hex()
            return tx_json(entry.tx, version) | {"hex": entry.tx.serialize().hex()}
        block_entry = chain.get_entry(blockhash)
        if block_entry is None:
            raise RpcError(RpcCode.INVALID_ADDRESS_OR_KEY, "Block hash not found")
        block = chain.get_block(blockhash)
        if block is None:
            raise RpcError(RpcCode.MISC_ERROR, "Block not available (only its header is known)")
        for tx in block.transactions:
            if tx.txid == txid:
                break
        else:
            raise RpcError(
                RpcCode.INVALID_ADDRESS_OR_KEY, "No such transaction found in the provided block"
            )
        if not verbose:
            return tx.serialize().hex()
        facts = entry_facts(chain, block_entry)
        return tx_json(tx, version) | {
            "hex": tx.serialize().hex(),
            "in_active_chain": facts.confirmations > 0,
            "blockhash": block_entry.hash_hex,
            "confirmations": max(facts.confirmations, 0),
            "time": block.header.time,
            "blocktime": block.header.time,
        }

    return await ctx.node.query(read)


@table.method(
    "decoderawtransaction",
    Param("hexstring", Hex(MAX_TX_SIZE), help="the transaction's canonical encoding in hex"),
)
async def decoderawtransaction(ctx: RpcContext, hexstring: bytes) -> dict[str, Any]:
    """A transaction's JSON, decoded from hex without looking anything up."""
    return tx_json(decode_tx(hexstring), ctx.node.params.address_version)


@table.method(
    "sendrawtransaction",
    Param("hexstring", Hex(MAX_BLOCK_SIZE), help="the signed transaction in hex"),
    Param(
        "maxfeerate",
        AmountParam(allow_zero=True),
        DEFAULT_MAX_FEE_RATE,
        help="refuse fees above this many coins per 1,000 bytes (0: no limit)",
    ),
)
async def sendrawtransaction(ctx: RpcContext, hexstring: bytes, maxfeerate: int) -> str:
    """Submit a signed transaction to the mempool and relay it; returns its txid.

    A transaction already in the mempool is not an error (its txid is returned), as in
    bitcoind. Refusals: -25 for missing or spent inputs and fees above ``maxfeerate``, -26 with
    the reject reason for every other rule, -27 when it is already confirmed.
    """
    tx = decode_tx(hexstring)

    def fee_and_known(chain: ChainState, mempool: Mempool) -> tuple[int | None, bool]:
        if tx.txid in mempool:
            return None, True
        view = MempoolView(chain, mempool)
        total_in = 0
        for txin in tx.inputs:
            coin = view.get_coin(txin.prevout)
            if coin is None:
                return None, False
            total_in += coin.value
        return total_in - tx.total_out(), False

    fee, known = await ctx.node.query(fee_and_known)
    if known:
        return tx.txid_hex
    if fee is not None and maxfeerate and fee * 1000 > maxfeerate * tx.size:
        raise RpcError(
            RpcCode.VERIFY_ERROR,
            f"Fee exceeds maximum configured by user (maxfeerate): {fee} units for {tx.size} bytes",
        )
    await ctx.node.submit_tx(tx)
    return tx.txid_hex
