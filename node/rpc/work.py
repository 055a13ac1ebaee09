"""Mining work handed out by the API: templates, getwork's classic format, in-process mining.

Three ways to mine against a node share this module:

* ``getblocktemplate`` (BIP 22/23): the miner builds the block itself. The template's
  ``longpollid`` names the tip and the mempool revision it was built from; a request carrying it
  waits in :class:`TemplateWatcher` until the tip changes or, after
  :data:`LONGPOLL_MEMPOOL_AFTER` seconds, the mempool did (bitcoind's rule, which spares miners
  a new template for every transaction).
* ``getwork`` (legacy): the node builds the block and hands out only its header, in the
  format of the classic GPU miners (below). Each call rolls the coinbase extranonce, so every
  piece of work is distinct; :class:`WorkBoard` remembers the templates behind the work it
  gave out until the tip moves, so a solved header can be turned back into its block.
* ``generatetoaddress``: the node mines in-process with :func:`search_nonces`, a hashlib loop
  over the header nonce from a copied midstate, a slice at a time on the node's executor so the
  event loop never hashes.

getwork's ``data`` is the 80-byte header followed by SHA-256 padding to two 64-byte blocks
(``0x80``, zeros, the bit length 640 as a big-endian integer), with every 32-bit word
byte-swapped, as bitcoind's ``FormatHashBuffers`` wrote it::

    bytes     0..79   header (version, prev, merkle root, time, bits, nonce), words swapped
    bytes    80..83   0x00000080            (0x80000000 swapped)
    bytes    84..123  zeros
    bytes   124..127  0x80020000            (640 = 0x00000280 swapped)

``target`` is the 256-bit target in little-endian byte order; ``midstate`` (SHA-256 state
after the first 64 header bytes, words little-endian) and ``hash1`` are the deprecated fields
early miners still read.
"""

from __future__ import annotations

import asyncio
import hashlib
import struct
from collections import OrderedDict
from dataclasses import dataclass

from miner.midstate import midstate
from node.core.block import Block
from node.core.hashing import hash_hex
from node.core.header import HEADER_SIZE, BlockHeader
from node.core.template import MAX_EXTRANONCE, BlockTemplate

LONGPOLL_MEMPOOL_AFTER = 60.0
"""A long poll also returns for a changed mempool, but only after this many seconds."""

LONGPOLL_MEMPOOL_EVERY = 10.0
"""...and then checks the mempool again this often."""

GETWORK_DATA_SIZE = 128
GETWORK_HASH1 = (
    "00000000000000000000000000000000000000000000000000000000000000000000008000000000"
    "000000000000000000000000000000000000000000000000000000010000"
)
MAX_GETWORK_TEMPLATES = 200
"""Work units remembered per tip; older ones are forgotten (a solution for them is stale)."""

SEARCH_SLICE = 65_536
"""Nonces hashed per trip to the executor: tens of milliseconds, so the chain is never held
up for long by in-process mining."""


def swap_words(data: bytes) -> bytes:
    """Byte-swap every 32-bit word (getwork's byte order)."""
    count = len(data) // 4
    return struct.pack(f">{count}I", *struct.unpack(f"<{count}I", data))


def getwork_data(header: BlockHeader) -> bytes:
    raw = header.serialize()
    padded = raw + b"\x80" + bytes(GETWORK_DATA_SIZE - HEADER_SIZE - 1 - 8)
    padded += (HEADER_SIZE * 8).to_bytes(8, "big")
    return swap_words(padded)


def header_from_getwork(data: bytes) -> BlockHeader:
    """The header inside getwork ``data`` (128 bytes); ValueError when it is not that."""
    if len(data) != GETWORK_DATA_SIZE:
        raise ValueError(f"getwork data is {GETWORK_DATA_SIZE} bytes, got {len(data)}")
    return BlockHeader.deserialize(swap_words(data)[:HEADER_SIZE])


def getwork_json(header: BlockHeader, target: int) -> dict[str, str]:
    state = midstate(header.serialize())
    return {
        "midstate": struct.pack("<8I", *state).hex(),
        "data": getwork_data(header).hex(),
        "hash1": GETWORK_HASH1,
        "target": target.to_bytes(32, "little").hex(),
    }


def search_nonces(header: BlockHeader, target: int, start: int, count: int) -> int | None:
    """The first nonce in ``[start, start + count)`` whose header hash meets ``target``."""
    prefix = header.serialize()[:76]
    base = hashlib.sha256(prefix)
    sha256 = hashlib.sha256
    pack = struct.Struct("<I").pack
    for nonce in range(start, min(start + count, 1 << 32)):
        first = base.copy()
        first.update(pack(nonce))
        if int.from_bytes(sha256(first.digest()).digest(), "little") <= target:
            return nonce
    return None


class WorkBoard:
    """The templates behind getwork's outstanding work, by merkle root, for the current tip."""

    def __init__(self, first_extranonce: int = 0) -> None:
        """``first_extranonce`` should be random per node: two nodes mining on one parent in
        the same second to the same address would otherwise build the very same block, and a
        fork a class is meant to see would silently not happen."""
        self._tip: bytes | None = None
        self._by_root: OrderedDict[bytes, tuple[BlockTemplate, int]] = OrderedDict()
        self._next_extranonce = first_extranonce % (MAX_EXTRANONCE + 1)

    def next_extranonce(self, tip: bytes) -> int:
        """A fresh extranonce for work on ``tip`` (the board resets when the tip moves)."""
        if tip != self._tip:
            self._tip = tip
            self._by_root.clear()
        extranonce = self._next_extranonce
        self._next_extranonce = (extranonce + 1) % (MAX_EXTRANONCE + 1)
        return extranonce

    def remember(self, template: BlockTemplate, extranonce: int) -> BlockHeader:
        header = template.header_for(extranonce, template.cur_time, 0)
        self._by_root[header.merkle_root] = (template, extranonce)
        while len(self._by_root) > MAX_GETWORK_TEMPLATES:
            self._by_root.popitem(last=False)
        return header

    def block_for(self, solved: BlockHeader) -> Block | None:
        """The block a solved getwork header completes, or None for unknown or stale work."""
        found = self._by_root.get(solved.merkle_root)
        if found is None:
            return None
        template, extranonce = found
        if solved.prev_hash != template.prev_hash or solved.bits != template.bits:
            return None
        try:
            block = template.block_for(extranonce, solved.time, solved.nonce)
        except ValueError:
            return None
        return block if block.header == solved else None


@dataclass(frozen=True)
class PollState:
    tip: bytes
    mempool_revision: int

    @property
    def longpollid(self) -> str:
        return f"{hash_hex(self.tip)}{self.mempool_revision}"


class TemplateWatcher:
    """Wakes long-polling ``getblocktemplate`` calls when the tip changes.

    Mempool changes need no wake-up: a long poll only looks at them at its timed checks.
    """

    def __init__(self) -> None:
        self._tip_changed = asyncio.Event()
        self.closing = False

    def close(self) -> None:
        """Release every waiting long poll (the server is stopping)."""
        self.closing = True
        self.tip_changed()

    def tip_changed(self) -> None:
        self._tip_changed.set()
        self._tip_changed = asyncio.Event()

    def tip_event(self) -> asyncio.Event:
        """An event set at the next tip change (take it before reading the current tip)."""
        return self._tip_changed
