"""The JSON shapes of blocks, headers and transactions, shared by RPC, REST and events.

Field names and meanings are bitcoind's wherever the concept exists, so a reader who knows
``getblock`` knows these. Where forklab has no such thing the field is left out rather than
faked: there are no scripts (an output pays a public-key hash; an input carries a signature
and a public key), no witness data, and no weight (sizes are bytes of the canonical encoding).

==================  ========================================================================
object              fields
==================  ========================================================================
header              hash, confirmations, height, version, versionHex, merkleroot, time,
                    mediantime, nonce, bits, target, difficulty, chainwork,
                    previousblockhash, nextblockhash (the last two when they exist)
block               the header's fields and size, nTx, tx (txids at verbosity 1, decoded
                    transactions at verbosity 2)
transaction         txid, hash, version, size, locktime, vin, vout
input               txid, vout, pubkey, signature; a coinbase input: coinbase (data hex),
                    height (the BIP 34 commitment)
output              value (coins), n, address, pubkey_hash
==================  ========================================================================

``confirmations`` is -1 for a block that is not on the active chain, as in bitcoind. Hashes
are byte-reversed hex; ``bits`` is 8 hex digits; ``chainwork`` and ``target`` 64 hex digits.

These are pure functions of their arguments: whoever calls them reads the chain first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from node.core.address import encode_address
from node.core.block import Block
from node.core.chain import BlockEntry
from node.core.hashing import hash_hex
from node.core.header import BlockHeader, bits_to_target, difficulty
from node.core.tx import Transaction
from node.rpc.jsonfmt import Amount


@dataclass(frozen=True)
class EntryFacts:
    """What the JSON of a block needs beyond the block itself, read from the chain."""

    entry: BlockEntry
    median_time_past: int
    confirmations: int
    """-1 when the block is not on the active chain."""
    next_hash: bytes | None


def header_json(header: BlockHeader) -> dict[str, Any]:
    """The fields of a header alone (no chain context)."""
    return {
        "hash": header.hash_hex,
        "version": header.version,
        "versionHex": f"{header.version:08x}",
        "merkleroot": hash_hex(header.merkle_root),
        "time": header.time,
        "nonce": header.nonce,
        "bits": f"{header.bits:08x}",
        "target": f"{bits_to_target(header.bits):064x}",
        "difficulty": difficulty(header.bits),
    }


def entry_json(facts: EntryFacts) -> dict[str, Any]:
    """``getblockheader``'s verbose result."""
    entry = facts.entry
    header = entry.header
    result: dict[str, Any] = {
        "hash": entry.hash_hex,
        "confirmations": facts.confirmations,
        "height": entry.height,
    }
    fields = header_json(header)
    del fields["hash"]
    result.update(fields)
    result["mediantime"] = facts.median_time_past
    result["chainwork"] = f"{entry.chain_work:064x}"
    if entry.height > 0:
        result["previousblockhash"] = hash_hex(header.prev_hash)
    if facts.next_hash is not None:
        result["nextblockhash"] = hash_hex(facts.next_hash)
    return result


def block_json(
    block: Block, facts: EntryFacts, verbosity: int, address_version: int
) -> dict[str, Any]:
    """``getblock`` at verbosity 1 (txids) or 2 (decoded transactions)."""
    result = entry_json(facts)
    result["size"] = block.size
    result["nTx"] = len(block.transactions)
    if verbosity >= 2:
        result["tx"] = [tx_json(tx, address_version) for tx in block.transactions]
    else:
        result["tx"] = [tx.txid_hex for tx in block.transactions]
    # bitcoind puts the txids before time/nonce; order is cosmetic, keys are what matter.
    return result


def tx_json(tx: Transaction, address_version: int) -> dict[str, Any]:
    """``decoderawtransaction``'s result."""
    vin: list[dict[str, Any]] = []
    if tx.is_coinbase():
        vin.append({"coinbase": tx.inputs[0].signature.hex(), "height": tx.coinbase_height})
    else:
        for txin in tx.inputs:
            vin.append(
                {
                    "txid": hash_hex(txin.prevout.txid),
                    "vout": txin.prevout.index,
                    "pubkey": txin.pubkey.hex(),
                    "signature": txin.signature.hex(),
                }
            )
    vout = [
        {
            "value": Amount(out.value),
            "n": n,
            "address": encode_address(out.pubkey_hash, address_version),
            "pubkey_hash": out.pubkey_hash.hex(),
        }
        for n, out in enumerate(tx.outputs)
    ]
    return {
        "txid": tx.txid_hex,
        "hash": tx.txid_hex,
        "version": tx.version,
        "size": tx.size,
        "locktime": tx.locktime,
        "vin": vin,
        "vout": vout,
    }
