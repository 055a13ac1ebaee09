"""Blockchain and mempool queries, and invalidate/reconsider (bitcoind's ``rpc/blockchain.cpp``).

Every read is one trip to the chain's owner (``ctx.node.query``) that returns finished values,
so a reply never mixes two states of the chain.
"""

from __future__ import annotations

from typing import Any

from node.chainstate import ChainState
from node.core.address import encode_address
from node.core.chain import BlockEntry
from node.core.hashing import hash_hex
from node.core.header import bits_to_target, difficulty
from node.core.mempool import Mempool, MempoolEntry
from node.core.tx import OutPoint
from node.rpc.context import RpcContext
from node.rpc.errors import RpcCode, RpcError, invalid_parameter
from node.rpc.jsonfmt import Amount
from node.rpc.registry import Bool, HashHex, Int, IntOrBool, MethodTable, Param
from node.rpc.views import EntryFacts, block_json, entry_json

table = MethodTable("blockchain")

U32 = 0xFFFFFFFF


def entry_facts(chain: ChainState, entry: BlockEntry) -> EntryFacts:
    """What the JSON of a block needs from the chain (run on the chain's owner)."""
    active = entry in chain.active
    following = chain.active.next(entry)
    return EntryFacts(
        entry=entry,
        median_time_past=chain.tree.median_time_past(entry),
        confirmations=chain.height - entry.height + 1 if active else -1,
        next_hash=following.hash if following is not None else None,
    )


def block_not_found() -> RpcError:
    return RpcError(RpcCode.INVALID_ADDRESS_OR_KEY, "Block not found")


def known_entry(chain: ChainState, block_hash: bytes) -> BlockEntry:
    entry = chain.get_entry(block_hash)
    if entry is None:
        raise block_not_found()
    return entry


@table.method("getblockchaininfo")
async def getblockchaininfo(ctx: RpcContext) -> dict[str, Any]:
    """State of the active chain: height, best header, tip, difficulty, sync progress.

    ``initialblockdownload`` is true while headers with more work than the tip are known and
    their blocks are still being fetched; ``verificationprogress`` is blocks over headers.
    """

    def read(chain: ChainState, _mempool: Mempool) -> dict[str, Any]:
        tip = chain.tip
        best = chain.tree.best_header
        header = tip.header
        return {
            "chain": chain.params.name,
            "blocks": tip.height,
            "headers": max(best.height, tip.height),
            "bestblockhash": tip.hash_hex,
            "bits": f"{header.bits:08x}",
            "target": f"{bits_to_target(header.bits):064x}",
            "difficulty": difficulty(header.bits),
            "time": header.time,
            "mediantime": chain.median_time_past(),
            "verificationprogress": 1.0 if best.height <= tip.height else tip.height / best.height,
            "initialblockdownload": best.chain_work > tip.chain_work,
            "chainwork": f"{tip.chain_work:064x}",
            "pruned": False,
            "warnings": "",
        }

    return await ctx.node.query(read)


@table.method("getblockcount")
async def getblockcount(ctx: RpcContext) -> int:
    """Height of the active chain's tip (the genesis block is height 0)."""
    return await ctx.node.query(lambda chain, _m: chain.height)


@table.method("getbestblockhash")
async def getbestblockhash(ctx: RpcContext) -> str:
    """Hash of the active chain's tip."""
    return await ctx.node.query(lambda chain, _m: chain.tip.hash_hex)


@table.method("getblockhash", Param("height", Int(), help="height in the active chain"))
async def getblockhash(ctx: RpcContext, height: int) -> str:
    """Hash of the block at ``height`` in the active chain."""
    block_hash = await ctx.node.query(lambda chain, _m: chain.block_hash_at(height))
    if height < 0 or block_hash is None:
        raise invalid_parameter("Block height out of range")
    return hash_hex(block_hash)


@table.method(
    "getblock",
    Param("blockhash", HashHex(), help="the block's hash"),
    Param("verbosity", IntOrBool(0, 2), 1, help="0 hex, 1 JSON with txids, 2 with transactions"),
)
async def getblock(ctx: RpcContext, blockhash: bytes, verbosity: int) -> Any:
    """A block: hex of its encoding (0), JSON with txids (1), or with decoded transactions (2)."""

    def read(chain: ChainState, _mempool: Mempool) -> Any:
        entry = known_entry(chain, blockhash)
        block = chain.get_block(blockhash)
        if block is None:
            raise RpcError(RpcCode.MISC_ERROR, "Block not available (only its header is known)")
        if verbosity == 0:
            return block.serialize().hex()
        facts = entry_facts(chain, entry)
        return block_json(block, facts, verbosity, chain.params.address_version)

    return await ctx.node.query(read)


@table.method(
    "getblockheader",
    Param("blockhash", HashHex(), help="the block's hash"),
    Param("verbose", Bool(), True, help="true for JSON, false for the 80 bytes in hex"),
)
async def getblockheader(ctx: RpcContext, blockhash: bytes, verbose: bool) -> Any:
    """A block header: JSON with its place in the chain, or its 80 bytes in hex."""

    def read(chain: ChainState, _mempool: Mempool) -> Any:
        entry = known_entry(chain, blockhash)
        if not verbose:
            return entry.header.serialize().hex()
        return entry_json(entry_facts(chain, entry))

    return await ctx.node.query(read)


@table.method("getchaintips")
async def getchaintips(ctx: RpcContext) -> list[dict[str, Any]]:
    """Every branch tip of the block tree, the active one included.

    ``status`` is active, valid-fork, valid-headers, headers-only or invalid; ``branchlen`` is
    the branch's length from its fork point with the active chain.
    """

    def read(chain: ChainState, _mempool: Mempool) -> list[dict[str, Any]]:
        return [
            {
                "height": tip.height,
                "hash": hash_hex(tip.hash),
                "branchlen": tip.branch_len,
                "status": tip.status.value,
            }
            for tip in chain.chain_tips()
        ]

    return await ctx.node.query(read)


@table.method("getdifficulty")
async def getdifficulty(ctx: RpcContext) -> float:
    """The tip's difficulty: Bitcoin's difficulty-1 target over the tip's target."""
    return await ctx.node.query(lambda chain, _m: difficulty(chain.tip.header.bits))


@table.method(
    "gettxout",
    Param("txid", HashHex(), help="the transaction id"),
    Param("n", Int(0, U32), help="the output index"),
    Param("include_mempool", Bool(), True, help="see the mempool's spends and outputs too"),
)
async def gettxout(ctx: RpcContext, txid: bytes, n: int, include_mempool: bool) -> Any:
    """An unspent output, or null if it is spent or never existed.

    With ``include_mempool``, an output a mempool transaction spends is null and a mempool
    transaction's own outputs are shown with 0 confirmations.
    """

    def read(chain: ChainState, mempool: Mempool) -> Any:
        outpoint = OutPoint(txid, n)
        tip = chain.tip
        base = {"bestblock": tip.hash_hex}
        version = chain.params.address_version
        if include_mempool:
            if mempool.spender_of(outpoint) is not None:
                return None
            entry = mempool.get(txid)
            if entry is not None:
                if n >= len(entry.tx.outputs):
                    return None
                out = entry.tx.outputs[n]
                return base | {
                    "confirmations": 0,
                    "value": Amount(out.value),
                    "address": encode_address(out.pubkey_hash, version),
                    "pubkey_hash": out.pubkey_hash.hex(),
                    "coinbase": False,
                }
        coin = chain.get_coin(outpoint)
        if coin is None:
            return None
        return base | {
            "confirmations": tip.height - coin.height + 1,
            "value": Amount(coin.value),
            "address": encode_address(coin.pubkey_hash, version),
            "pubkey_hash": coin.pubkey_hash.hex(),
            "coinbase": coin.is_coinbase,
        }

    return await ctx.node.query(read)


@table.method("getmempoolinfo")
async def getmempoolinfo(ctx: RpcContext) -> dict[str, Any]:
    """Size of the mempool and its admission policy (fees in coins per 1,000 bytes)."""

    def read(_chain: ChainState, mempool: Mempool) -> dict[str, Any]:
        per_kb = Amount(mempool.min_fee_rate * 1000)
        return {
            "loaded": True,
            "size": len(mempool),
            "bytes": mempool.total_bytes,
            "total_fee": Amount(mempool.total_fees),
            "maxmempool": mempool.max_bytes,
            "mempoolminfee": per_kb,
            "minrelaytxfee": per_kb,
        }

    return await ctx.node.query(read)


def mempool_entry_json(mempool: Mempool, entry: MempoolEntry) -> dict[str, Any]:
    relatives = mempool.relatives(entry.txid)
    return {
        "size": entry.size,
        "fees": {
            "base": Amount(entry.fee),
            "ancestor": Amount(relatives.ancestor_fees),
            "descendant": Amount(relatives.descendant_fees),
        },
        "time": entry.time,
        "height": entry.height,
        "descendantcount": relatives.descendant_count,
        "descendantsize": relatives.descendant_size,
        "ancestorcount": relatives.ancestor_count,
        "ancestorsize": relatives.ancestor_size,
        "depends": sorted(hash_hex(t) for t in relatives.parents),
        "spentby": sorted(hash_hex(t) for t in relatives.children),
    }


@table.method("getrawmempool", Param("verbose", Bool(), False, help="true for an object per tx"))
async def getrawmempool(ctx: RpcContext, verbose: bool) -> Any:
    """The mempool's txids, or (verbose) an object per transaction with fees and relatives."""

    def read(_chain: ChainState, mempool: Mempool) -> Any:
        if not verbose:
            return [entry.tx.txid_hex for entry in mempool.entries()]
        return {e.tx.txid_hex: mempool_entry_json(mempool, e) for e in mempool.entries()}

    return await ctx.node.query(read)


@table.method("invalidateblock", Param("blockhash", HashHex(), help="the block to mark invalid"))
async def invalidateblock(ctx: RpcContext, blockhash: bytes) -> None:
    """Mark a block and its descendants invalid; the best remaining chain becomes active."""

    def check(chain: ChainState, _mempool: Mempool) -> None:
        if known_entry(chain, blockhash) is chain.tree.genesis:
            raise invalid_parameter("the genesis block cannot be invalidated")

    await ctx.node.query(check)
    await ctx.node.invalidate_block(blockhash)


@table.method("reconsiderblock", Param("blockhash", HashHex(), help="the block to reconsider"))
async def reconsiderblock(ctx: RpcContext, blockhash: bytes) -> None:
    """Clear the invalid marks of a block, its ancestors and descendants (undo invalidateblock)."""
    await ctx.node.query(lambda chain, _m: known_entry(chain, blockhash))
    await ctx.node.reconsider_block(blockhash)
