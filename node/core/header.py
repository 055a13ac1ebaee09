"""Block headers: Bitcoin's exact 80-byte layout, compact targets and proof of work.

Because the layout is Bitcoin's, any real Bitcoin header is a test vector for this module and for
the miner's kernels.

=========  ============  =====  ==========================================================
offset     field         size   meaning
=========  ============  =====  ==========================================================
0          version       4      u32 little-endian
4          prev_hash     32     SHA-256d of the parent header, internal byte order
36         merkle_root   32     merkle root of the block's txids, internal byte order
68         time          4      u32 little-endian, seconds since the Unix epoch
72         bits          4      u32 little-endian, the target in compact form
76         nonce         4      u32 little-endian, what miners vary
=========  ============  =====  ==========================================================

The block id is SHA-256d of these 80 bytes, shown byte-reversed in hex. A header meets its proof of
work iff the id read as a little-endian integer is <= the target decoded from ``bits``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import cached_property

from node.core.errors import DecodeError, ErrorCode, RuleError
from node.core.hashing import hash_hex, sha256d

HEADER_SIZE = 80
_LAYOUT = struct.Struct("<I32s32sIII")
_U32 = 0xFFFFFFFF


@dataclass(frozen=True)
class BlockHeader:
    """An immutable block header; its hash is computed once, on first use."""

    version: int
    prev_hash: bytes
    merkle_root: bytes
    time: int
    bits: int
    nonce: int

    def __post_init__(self) -> None:
        for name in ("version", "time", "bits", "nonce"):
            value = getattr(self, name)
            if not 0 <= value <= _U32:
                raise ValueError(f"header {name} {value} does not fit in 32 bits")
        if len(self.prev_hash) != 32 or len(self.merkle_root) != 32:
            raise ValueError("prev_hash and merkle_root must be 32 bytes")

    def serialize(self) -> bytes:
        return _LAYOUT.pack(
            self.version, self.prev_hash, self.merkle_root, self.time, self.bits, self.nonce
        )

    @classmethod
    def deserialize(cls, data: bytes) -> BlockHeader:
        if len(data) != HEADER_SIZE:
            raise DecodeError(f"a block header is {HEADER_SIZE} bytes, got {len(data)}")
        return cls(*_LAYOUT.unpack(data))

    @cached_property
    def hash(self) -> bytes:
        """SHA-256d of the 80 bytes, internal byte order (safe to cache: the header is frozen)."""
        return sha256d(self.serialize())

    @property
    def hash_hex(self) -> str:
        return hash_hex(self.hash)

    def with_nonce(self, nonce: int) -> BlockHeader:
        return BlockHeader(
            self.version, self.prev_hash, self.merkle_root, self.time, self.bits, nonce
        )


def bits_to_target(bits: int) -> int:
    """Decode Bitcoin's compact target: a 1-byte exponent and a 3-byte mantissa.

    A set sign bit (0x00800000) or an overflow makes the target invalid; we return 0 then, which no
    hash can meet, instead of raising, so a hostile ``bits`` simply fails the proof-of-work check.
    """
    exponent = bits >> 24
    mantissa = bits & 0x007FFFFF
    if bits & 0x00800000:
        return 0
    if exponent <= 3:
        return mantissa >> (8 * (3 - exponent))
    target = mantissa << (8 * (exponent - 3))
    return target if target < (1 << 256) else 0


def target_to_bits(target: int) -> int:
    """Encode a target in compact form, rounding down as Bitcoin's GetCompact does."""
    if target <= 0:
        return 0
    size = (target.bit_length() + 7) // 8
    mantissa = target << (8 * (3 - size)) if size <= 3 else target >> (8 * (size - 3))
    # The mantissa's top bit is a sign bit in this format; move one byte into the exponent.
    if mantissa & 0x00800000:
        mantissa >>= 8
        size += 1
    return (size << 24) | mantissa


def block_work(bits: int) -> int:
    """Expected number of hashes to find a block at ``bits``: 2^256 / (target + 1).

    Cumulative work, not chain length, decides the best chain; this is the per-block term of that
    sum (Bitcoin's GetBlockProof).
    """
    target = bits_to_target(bits)
    if target <= 0:
        return 0
    return (1 << 256) // (target + 1)


def hash_meets_target(block_hash: bytes, target: int) -> bool:
    return int.from_bytes(block_hash, "little") <= target


def check_proof_of_work(header: BlockHeader, pow_limit: int) -> None:
    """Raise ``high-hash`` unless the header's hash meets its own, in-range target.

    Whether ``bits`` is the *right* target for its place in the chain is a contextual check
    (``bad-diffbits``) made once the parent is known.
    """
    target = bits_to_target(header.bits)
    if target <= 0 or target > pow_limit:
        raise RuleError(ErrorCode.BAD_DIFFBITS, f"bits {header.bits:#010x} out of range")
    if not hash_meets_target(header.hash, target):
        raise RuleError(ErrorCode.HIGH_HASH, f"proof of work failed for {header.hash_hex}")


DIFFICULTY_1_BITS = 0x1D00FFFF


def difficulty(bits: int) -> float:
    """Difficulty as bitcoind reports it: Bitcoin's difficulty-1 target over this one.

    Relative to Bitcoin's 0x1d00ffff on every network, as bitcoind does, so regtest shows its
    familiar 4.6e-10.
    """
    target = bits_to_target(bits)
    if target <= 0:
        return 0.0
    return bits_to_target(DIFFICULTY_1_BITS) / target
