"""Mining: templates for external miners, block submission, getwork, in-process generation
(bitcoind's ``rpc/mining.cpp``).

``getblocktemplate`` follows BIP 22: the miner builds the coinbase itself from
``coinbasevalue`` and the template's ``height`` (forklab's coinbase layout is in
:mod:`node.core.template`), and long polls with ``longpollid``. ``submitblock`` answers null
for a block that became the tip, else a BIP 22 reason: ``duplicate``, ``duplicate-invalid``,
``inconclusive`` (stored, but not on the active chain: a side branch, or its parent is still
missing) or the reject reason of the rule it broke.

A node's *mining policy* (``getminingpolicy``, ``setminingpolicy``; configured with
``mining_exclude_addresses``) is what every template it builds leaves out: transactions paying
or spending listed addresses, and everything depending on them, as pools filter their
templates. It shapes only the work this node hands out (getblocktemplate, getwork,
generatetoaddress); the node still accepts, relays and validates such transactions and the
blocks of other miners that include them.

BIP 23 block proposals (``"mode": "proposal"``) are not offered: checking a block without its
proof of work needs a rule entry point the consensus core does not expose.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from node.chainstate import ChainState, template_on_tip
from node.core.address import decode_address, encode_address
from node.core.block import MAX_BLOCK_SIZE, Block
from node.core.errors import AddressError, DecodeError
from node.core.hashing import hash_hex
from node.core.header import BlockHeader, bits_to_target, difficulty
from node.core.mempool import Mempool
from node.core.template import NO_POLICY, BlockTemplate, MiningPolicy
from node.p2p.peer import with_timeout
from node.rpc.context import RpcContext
from node.rpc.errors import RpcCode, RpcError, invalid_parameter
from node.rpc.registry import Arr, Hex, Int, MethodTable, Obj, Param, Str
from node.rpc.work import (
    GETWORK_DATA_SIZE,
    LONGPOLL_MEMPOOL_AFTER,
    LONGPOLL_MEMPOOL_EVERY,
    SEARCH_SLICE,
    PollState,
    getwork_json,
    header_from_getwork,
    search_nonces,
)

table = MethodTable("mining")

NONCE_SPACE = 1 << 32
NO_PAYOUT = bytes(20)
"""getblocktemplate builds no coinbase for the miner; the template's own pays nobody."""
MAX_EXCLUDED = 10_000
"""Addresses a mining policy lists at most."""


def new_template(
    chain: ChainState,
    mempool: Mempool,
    payout: bytes,
    now: int,
    policy: MiningPolicy = NO_POLICY,
) -> tuple[BlockTemplate, PollState]:
    """A template on the current tip, and the state it was built from (on the chain's owner)."""
    template = template_on_tip(chain, mempool, payout, now, policy=policy)
    return template, PollState(chain.tip.hash, mempool.revision)


def _template_job(
    ctx: RpcContext, payout: bytes, now: int
) -> Callable[[ChainState, Mempool], tuple[BlockTemplate, PollState]]:
    policy = ctx.mining_policy  # the policy at the call, whatever a later call changes
    return lambda chain, mempool: new_template(chain, mempool, payout, now, policy)


def _search_job(
    header: BlockHeader, target: int, start: int, count: int
) -> Callable[[ChainState, Mempool], int | None]:
    return lambda _chain, _mempool: search_nonces(header, target, start, count)


def _refuse_while_syncing(chain: ChainState, _mempool: Mempool) -> None:
    if chain.tree.best_header.chain_work > chain.tip.chain_work:
        raise RpcError(
            RpcCode.CLIENT_IN_INITIAL_DOWNLOAD,
            "forklab is downloading blocks: work on the current tip would be stale",
        )


def network_hashps(chain: ChainState, nblocks: int, height: int) -> float:
    """Hashes per second over the ``nblocks`` blocks before ``height`` (bitcoind's estimate)."""
    tip = chain.tip if height < 0 or height > chain.height else chain.active[height]
    if nblocks <= 0:
        interval = chain.params.retarget_interval
        nblocks = tip.height % interval + 1 if interval else 120
    nblocks = min(nblocks, tip.height)
    if nblocks == 0:
        return 0.0
    first = tip.ancestor(tip.height - nblocks)
    times = [first.header.time]
    walk = tip
    while walk is not first:
        times.append(walk.header.time)
        assert walk.parent is not None
        walk = walk.parent
    span = max(times) - min(times)
    if span <= 0:
        return 0.0
    return (tip.chain_work - first.chain_work) / span


@table.method("getmininginfo")
async def getmininginfo(ctx: RpcContext) -> dict[str, Any]:
    """The tip, its difficulty and target, the estimated network hash rate, mempool size."""

    def read(chain: ChainState, mempool: Mempool) -> dict[str, Any]:
        bits = chain.next_bits()
        return {
            "blocks": chain.height,
            "bits": f"{bits:08x}",
            "difficulty": difficulty(bits),
            "target": f"{bits_to_target(bits):064x}",
            "networkhashps": network_hashps(chain, 120, -1),
            "pooledtx": len(mempool),
            "chain": chain.params.name,
            "warnings": "",
        }

    return await ctx.node.query(read)


@table.method(
    "getnetworkhashps",
    Param("nblocks", Int(), 120, help="blocks to average over; <= 0: since the last retarget"),
    Param("height", Int(), -1, help="estimate at this height; -1 for the tip"),
)
async def getnetworkhashps(ctx: RpcContext, nblocks: int, height: int) -> float:
    """Estimated hashes per second of the whole network, from the work and times of blocks."""
    return await ctx.node.query(lambda chain, _m: network_hashps(chain, nblocks, height))


def template_json(template: BlockTemplate, poll: PollState) -> dict[str, Any]:
    return {
        "capabilities": [],
        "version": template.version,
        "rules": [],
        "vbavailable": {},
        "vbrequired": 0,
        "previousblockhash": hash_hex(template.prev_hash),
        "transactions": [
            {
                "data": t.tx.serialize().hex(),
                "txid": t.tx.txid_hex,
                "hash": t.tx.txid_hex,
                "depends": list(t.depends),
                "fee": t.fee,
                "size": t.size,
            }
            for t in template.transactions
        ],
        "coinbaseaux": {},
        "coinbasevalue": template.coinbase_value,
        "longpollid": poll.longpollid,
        "target": f"{template.target:064x}",
        "mintime": template.min_time,
        "mutable": ["time", "transactions", "prevblock"],
        "noncerange": "00000000ffffffff",
        "sizelimit": template.max_size,
        "curtime": template.cur_time,
        "bits": f"{template.bits:08x}",
        "height": template.height,
    }


async def _current_state(ctx: RpcContext) -> PollState:
    return await ctx.node.query(lambda chain, mempool: PollState(chain.tip.hash, mempool.revision))


async def wait_longpoll(ctx: RpcContext, longpollid: str) -> None:
    """Return once the state ``longpollid`` names is out of date (BIP 22 long polling).

    A new tip ends the wait at once. A changed mempool ends it only after
    LONGPOLL_MEMPOOL_AFTER seconds, then at LONGPOLL_MEMPOOL_EVERY-second checks.
    """
    watched_tip, watched_revision = longpollid[:64], longpollid[64:]
    clock = ctx.clock
    check_mempool_at = clock.monotonic() + LONGPOLL_MEMPOOL_AFTER
    while True:
        tip_event = ctx.templates.tip_event()
        state = await _current_state(ctx)
        if hash_hex(state.tip) != watched_tip or ctx.templates.closing:
            return
        now = clock.monotonic()
        if now >= check_mempool_at:
            if str(state.mempool_revision) != watched_revision:
                return
            check_mempool_at = now + LONGPOLL_MEMPOOL_EVERY
        with contextlib.suppress(TimeoutError):
            await with_timeout(clock, check_mempool_at - now, tip_event.wait())


@table.method(
    "getblocktemplate",
    Param("template_request", Obj(), None, help='{"mode": "template", "longpollid": ...}'),
)
async def getblocktemplate(ctx: RpcContext, template_request: dict[str, Any] | None) -> Any:
    """A block template for external miners (BIP 22), with long polling.

    Pass the ``longpollid`` of the last template to wait until it is out of date: a new tip at
    once, a changed mempool after a minute.
    """
    request = template_request or {}
    mode = request.get("mode", "template")
    if mode == "proposal":
        raise invalid_parameter("block proposals (BIP 23) are not supported by this node")
    if mode != "template":
        raise invalid_parameter("Invalid mode")
    longpollid = request.get("longpollid")
    if longpollid is not None:
        if not isinstance(longpollid, str):
            raise RpcError(RpcCode.TYPE_ERROR, "longpollid must be a string")
        await wait_longpoll(ctx, longpollid)
    await ctx.node.query(_refuse_while_syncing)
    template, poll = await ctx.node.query(_template_job(ctx, NO_PAYOUT, int(ctx.clock.time())))
    return template_json(template, poll)


def decode_block(data: bytes) -> Block:
    try:
        block = Block.deserialize(data)
    except DecodeError as exc:
        raise RpcError(RpcCode.DESERIALIZATION_ERROR, f"Block decode failed: {exc}") from None
    if not block.transactions or not block.transactions[0].is_coinbase():
        raise RpcError(RpcCode.DESERIALIZATION_ERROR, "Block does not start with a coinbase")
    return block


async def submit(ctx: RpcContext, block: Block) -> str | None:
    """Submit ``block``; None if it became the tip, else a BIP 22 result string."""
    return await ctx.node.mine_block(block)


@table.method(
    "submitblock",
    Param("hexdata", Hex(MAX_BLOCK_SIZE), help="the block's canonical encoding in hex"),
    Param("dummy", Str(), "", help="ignored (BIP 22's workid/parameters)"),
)
async def submitblock(ctx: RpcContext, hexdata: bytes, dummy: str) -> str | None:
    """Submit a solved block: null if it became the tip, else why not (BIP 22)."""
    return await submit(ctx, decode_block(hexdata))


@table.method(
    "getwork",
    Param("data", Hex(GETWORK_DATA_SIZE), None, help="a solved work unit's data, to submit"),
)
async def getwork(ctx: RpcContext, data: bytes | None) -> Any:
    """Legacy mining: without ``data``, work for the classic getwork miners; with the ``data``
    of a solved unit, submit it (true when its block was accepted).

    Work pays the node's mining address (the wallet's first address unless configured) and
    rolls the coinbase extranonce on every call, so no two units are alike.
    """
    if data is not None:
        try:
            header = header_from_getwork(data)
        except (ValueError, DecodeError) as exc:
            raise invalid_parameter(f"data: {exc}") from None
        block = ctx.work.block_for(header)
        if block is None or header.prev_hash != ctx.node.tip.hash:
            return False  # unknown, or stale: work for a tip that is gone
        return await submit(ctx, block) is None
    await ctx.node.query(_refuse_while_syncing)
    payout = ctx.mining_pubkey_hash()
    now = int(ctx.clock.time())

    template, _ = await ctx.node.query(_template_job(ctx, payout, now))
    header = ctx.work.remember(template, ctx.work.next_extranonce(template.prev_hash))
    return getwork_json(header, template.target)


@table.method(
    "generatetoaddress",
    Param("nblocks", Int(0, 10_000), help="blocks to mine"),
    Param("address", Str(max_length=64), help="the address the coinbases pay"),
    Param("maxtries", Int(1), 1_000_000, help="hashes to try in all before giving up"),
)
async def generatetoaddress(
    ctx: RpcContext, nblocks: int, address: str, maxtries: int
) -> list[str]:
    """Mine ``nblocks`` blocks now, paying ``address``; returns their hashes.

    Hashing runs on the node's executor a slice at a time. Fewer blocks are returned if
    ``maxtries`` hashes run out first (only on networks harder than regtest).
    """
    try:
        payout = decode_address(address, ctx.node.params.address_version)
    except AddressError:
        raise RpcError(RpcCode.INVALID_ADDRESS_OR_KEY, "Error: Invalid address") from None
    hashes: list[str] = []
    tries = maxtries
    while len(hashes) < nblocks and tries > 0:
        template, _ = await ctx.node.query(_template_job(ctx, payout, int(ctx.clock.time())))
        block, tries = await _solve(ctx, template, tries)
        if block is None:
            break
        reason = await submit(ctx, block)
        # "inconclusive": another block took the tip meanwhile; ours is stored on a side
        # branch, as bitcoind's generate also reports it.
        if reason not in (None, "inconclusive"):
            raise RpcError(RpcCode.MISC_ERROR, f"ProcessNewBlock, block not accepted: {reason}")
        hashes.append(block.hash_hex)
    return hashes


async def _solve(ctx: RpcContext, template: BlockTemplate, tries: int) -> tuple[Block | None, int]:
    """Search nonces (and extranonces) for ``template``; the block and the tries left."""
    target = template.target
    extranonce = ctx.work.next_extranonce(template.prev_hash)
    while tries > 0:
        header = template.header_for(extranonce, template.cur_time, 0)
        start = 0
        while start < NONCE_SPACE and tries > 0:
            count = min(SEARCH_SLICE, tries, NONCE_SPACE - start)
            nonce = await ctx.node.query(_search_job(header, target, start, count))
            if nonce is not None:
                tries -= nonce - start + 1
                return template.block_for(extranonce, header.time, nonce), tries
            tries -= count
            start += count
        extranonce += 1
    return None, 0


def policy_json(ctx: RpcContext) -> dict[str, Any]:
    version = ctx.node.params.address_version
    return {
        "exclude_addresses": sorted(
            encode_address(pubkey_hash, version) for pubkey_hash in ctx.mining_policy.excluded
        )
    }


@table.method("getminingpolicy")
async def getminingpolicy(ctx: RpcContext) -> dict[str, Any]:
    """What this node's block templates leave out: ``exclude_addresses``, the addresses whose
    payments and spends (and everything depending on them) it does not mine."""
    return policy_json(ctx)


@table.method(
    "setminingpolicy",
    Param(
        "exclude_addresses",
        Arr(Str(max_length=64), max_items=MAX_EXCLUDED),
        None,
        help="addresses whose transactions templates leave out, replacing the list ([] for none)",
    ),
)
async def setminingpolicy(ctx: RpcContext, exclude_addresses: list[str] | None) -> dict[str, Any]:
    """Change what this node's templates leave out; returns the policy now in force.

    Templates built after the call follow it (work already handed out is not recalled: a
    long-polling miner gets the new policy with its next template). Transactions stay in the
    mempool and are relayed; blocks of other miners that include them are accepted.
    """
    if exclude_addresses is not None:
        version = ctx.node.params.address_version
        excluded = set()
        for n, address in enumerate(exclude_addresses):
            try:
                excluded.add(decode_address(address, version))
            except AddressError as exc:
                raise RpcError(
                    RpcCode.INVALID_ADDRESS_OR_KEY,
                    f"Invalid address: exclude_addresses[{n}] {address!r}: {exc}",
                ) from None
        ctx.mining_policy = MiningPolicy(frozenset(excluded))
    return policy_json(ctx)
