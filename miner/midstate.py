"""SHA-256 on the host: the midstate and the folded constants a nonce search starts from.

A header is 80 bytes, so its first SHA-256 takes two 64-byte blocks. Only the second block holds
the nonce, so the first block's compression (the *midstate*) is the same for every nonce and is
done once here. The second block is also mostly fixed::

    word  bytes of the header       value
    ====  ========================  ===============================================
    W0    64..67                    last 4 bytes of the merkle root      fixed
    W1    68..71                    time                                 fixed
    W2    72..75                    bits                                 fixed
    W3    76..79                    nonce                                varies
    W4                              0x80000000 (padding)                 constant
    W5-14                           0                                    constant
    W15                             640 (message length in bits)         constant

so rounds 0-2 of that block, the nonce-free part of round 3 and the nonce-free parts of several
message-schedule words are also computed here, once per header, and handed to the kernel as
arguments (:class:`SearchWork`). Words are big-endian, as SHA-256 reads them; the nonce is stored
little-endian in the header, so the kernel byte-swaps it into ``W3``.

This module deliberately computes nothing per nonce: that is the backends' job. It exists because
``hashlib`` does not expose its internal state, and it is checked against ``hashlib`` by the tests.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

HEADER_SIZE = 80
MASK = 0xFFFFFFFF

IV = (
    0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A,
    0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19,
)  # fmt: skip

K = (
    0x428A2F98, 0x71374491, 0xB5C0FBCF, 0xE9B5DBA5, 0x3956C25B, 0x59F111F1, 0x923F82A4, 0xAB1C5ED5,
    0xD807AA98, 0x12835B01, 0x243185BE, 0x550C7DC3, 0x72BE5D74, 0x80DEB1FE, 0x9BDC06A7, 0xC19BF174,
    0xE49B69C1, 0xEFBE4786, 0x0FC19DC6, 0x240CA1CC, 0x2DE92C6F, 0x4A7484AA, 0x5CB0A9DC, 0x76F988DA,
    0x983E5152, 0xA831C66D, 0xB00327C8, 0xBF597FC7, 0xC6E00BF3, 0xD5A79147, 0x06CA6351, 0x14292967,
    0x27B70A85, 0x2E1B2138, 0x4D2C6DFC, 0x53380D13, 0x650A7354, 0x766A0ABB, 0x81C2C92E, 0x92722C85,
    0xA2BFE8A1, 0xA81A664B, 0xC24B8B70, 0xC76C51A3, 0xD192E819, 0xD6990624, 0xF40E3585, 0x106AA070,
    0x19A4C116, 0x1E376C08, 0x2748774C, 0x34B0BCB5, 0x391C0CB3, 0x4ED8AA4A, 0x5B9CCA4F, 0x682E6FF3,
    0x748F82EE, 0x78A5636F, 0x84C87814, 0x8CC70208, 0x90BEFFFA, 0xA4506CEB, 0xBEF9A3F7, 0xC67178F2,
)  # fmt: skip

PADDING_WORD = 0x80000000
HEADER_BITS = HEADER_SIZE * 8

_BLOCK_WORDS = struct.Struct(">16I")
_TAIL_WORDS = struct.Struct(">3I")

State = tuple[int, int, int, int, int, int, int, int]


def _rotr(x: int, n: int) -> int:
    return ((x >> n) | (x << (32 - n))) & MASK


def big_sigma0(a: int) -> int:
    return _rotr(a, 2) ^ _rotr(a, 13) ^ _rotr(a, 22)


def big_sigma1(e: int) -> int:
    return _rotr(e, 6) ^ _rotr(e, 11) ^ _rotr(e, 25)


def small_sigma0(x: int) -> int:
    return _rotr(x, 7) ^ _rotr(x, 18) ^ (x >> 3)


def small_sigma1(x: int) -> int:
    return _rotr(x, 17) ^ _rotr(x, 19) ^ (x >> 10)


def _ch(e: int, f: int, g: int) -> int:
    return (e & f) ^ (~e & g)


def _maj(a: int, b: int, c: int) -> int:
    return (a & b) ^ (a & c) ^ (b & c)


def _round(state: State, k_plus_w: int) -> State:
    a, b, c, d, e, f, g, h = state
    t1 = (h + big_sigma1(e) + _ch(e, f, g) + k_plus_w) & MASK
    t2 = (big_sigma0(a) + _maj(a, b, c)) & MASK
    return ((t1 + t2) & MASK, a, b, c, (d + t1) & MASK, e, f, g)


def compress(state: State, block: bytes) -> State:
    """One SHA-256 compression of a 64-byte block into ``state`` (FIPS 180-4, section 6.2.2)."""
    w = list(_BLOCK_WORDS.unpack(block))
    for i in range(16, 64):
        w.append((small_sigma1(w[i - 2]) + w[i - 7] + small_sigma0(w[i - 15]) + w[i - 16]) & MASK)
    working = state
    for i in range(64):
        working = _round(working, (K[i] + w[i]) & MASK)
    return tuple((s + x) & MASK for s, x in zip(state, working, strict=True))  # type: ignore[return-value]


def midstate(header: bytes) -> State:
    """The SHA-256 state after the header's first 64 bytes: the same for every nonce."""
    return compress(IV, header[:64])


@dataclass(frozen=True)
class SearchWork:
    """Everything about one header that a nonce search needs, computed once.

    Field names follow the kernel's arguments (``kernels/sha256d.cl``), in the same order.
    """

    midstate: State
    """State after the first 64-byte block; added back after the second block's rounds."""
    state2: State
    """Working variables a..h after rounds 0-2 of the second block (they read W0-W2 only)."""
    round3_t1: int
    """Round 3's T1 without its W3 (the nonce) term: h + Σ1(e) + Ch(e, f, g) + K3."""
    round3_t2: int
    """Round 3's T2, Σ0(a) + Maj(a, b, c), which does not depend on the nonce at all."""
    w16: int
    w17: int
    w18_part: int
    """W18 without σ0(W3): σ1(W16) + W11 + W2."""
    w19_part: int
    """W19 without W3: σ1(W17) + W12 + σ0(W4)."""
    w31_part: int
    """W31 without σ1(W29) + W24: σ0(W16) + W15."""
    w32_part: int
    """W32 without σ1(W30) + W25: σ0(W17) + W16."""

    @classmethod
    def from_header(cls, header: bytes) -> SearchWork:
        if len(header) != HEADER_SIZE:
            raise ValueError(f"a block header is {HEADER_SIZE} bytes, got {len(header)}")
        mid = midstate(header)
        w0, w1, w2 = _TAIL_WORDS.unpack(header[64:76])
        state = mid
        for i, w in enumerate((w0, w1, w2)):
            state = _round(state, (K[i] + w) & MASK)
        a, b, c, _d, e, f, g, h = state
        t1 = (h + big_sigma1(e) + _ch(e, f, g) + K[3]) & MASK
        t2 = (big_sigma0(a) + _maj(a, b, c)) & MASK
        # W5..W14 are zero, W4 is the padding word and W15 the length; terms with them vanish
        # or are constants, which is why so few parts need folding.
        w16 = (small_sigma0(w1) + w0) & MASK
        w17 = (small_sigma1(HEADER_BITS) + small_sigma0(w2) + w1) & MASK
        return cls(
            midstate=mid,
            state2=state,
            round3_t1=t1,
            round3_t2=t2,
            w16=w16,
            w17=w17,
            w18_part=(small_sigma1(w16) + w2) & MASK,
            w19_part=(small_sigma1(w17) + small_sigma0(PADDING_WORD)) & MASK,
            w31_part=(small_sigma0(w16) + HEADER_BITS) & MASK,
            w32_part=(small_sigma0(w17) + w16) & MASK,
        )

    def kernel_args(self) -> tuple[int, ...]:
        """The values in kernel-argument order: midstate, state2, then the folded terms."""
        return (
            *self.midstate,
            *self.state2,
            self.round3_t1,
            self.round3_t2,
            self.w16,
            self.w17,
            self.w18_part,
            self.w19_part,
            self.w31_part,
            self.w32_part,
        )
