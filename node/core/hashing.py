"""Hash functions of the consensus rules.

SHA-256d (SHA-256 applied twice) is Bitcoin's hash for headers, transactions and merkle nodes.
Digests are kept in internal byte order; only user-facing ids are shown reversed (``hash_hex``),
as Bitcoin shows them.
"""

from __future__ import annotations

import hashlib


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def sha256d(data: bytes) -> bytes:
    """SHA-256 of SHA-256: Bitcoin's hash for headers, txids and merkle nodes."""
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def hash_hex(digest: bytes) -> str:
    """A digest as users see it: byte-reversed hex, like Bitcoin's block and transaction ids."""
    return digest[::-1].hex()


def hash_from_hex(text: str) -> bytes:
    """Inverse of :func:`hash_hex`; raises ValueError on anything but 64 hex digits."""
    # bytes.fromhex skips whitespace, so check the characters ourselves.
    if len(text) != 64 or not all(c in _HEX_DIGITS for c in text):
        raise ValueError(f"expected 64 hex digits, got {text[:80]!r}")
    return bytes.fromhex(text)[::-1]


_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
