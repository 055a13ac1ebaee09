"""ECDSA signatures over secp256k1: the keys that own coins and the check that spends them.

Two interchangeable backends compute the same function:

* ``Backend.COINCURVE``: libsecp256k1 (Bitcoin Core's own library) through coincurve. This is
  the hot path: a node checks one signature per transaction input, and libsecp256k1 does it
  tens of times faster than Python can.
* ``Backend.ECDSA``: the pure-Python ``ecdsa`` package, so forklab still runs where coincurve
  cannot be installed. It is slow and not hardened against timing side channels; fine for a
  devnet, not for keys worth stealing.

Both produce the *same* bytes: nonces are deterministic (RFC 6979 with HMAC-SHA-256, as
libsecp256k1 does by default) and ``s`` is always the low one, so a signature made by either
backend is identical and verifies under both. The tests hold them to that.

Formats (all integers big-endian)::

    signature (64 bytes, "compact")         public key (33 bytes, SEC1 compressed)
    field  size  rule                       field   size  rule
    r      32    1 <= r < n                 prefix  1     0x02 if y is even, 0x03 if odd
    s      32    1 <= s <= n/2 (low-S)      x       32    x < p and (x, y) on the curve

Compact signatures rather than DER: fixed length, one encoding per value, no parser to get
wrong (BIP 66 exists because DER parsing differed between OpenSSL versions). Low-S only: for any
valid ``(r, s)`` the pair ``(r, n - s)`` is valid too, so accepting both would let anyone change
a transaction's id without the key (malleability, BIP 62/146). Compressed keys only: one
encoding per key, so one address per key.

What this module does not do: decide *what* is signed (the transaction digest is the caller's,
always 32 bytes), store keys (the wallet does), or offer DER, uncompressed keys, public-key
recovery or Schnorr.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from node.core.errors import InternalError

try:
    # coincurve's cffi module is used directly: its high-level API works in DER and builds a
    # key object (two point multiplications) per private key, which costs more than the
    # signature itself. The calls below are libsecp256k1's public C API.
    from coincurve._libsecp256k1 import ffi as _cc_ffi
    from coincurve._libsecp256k1 import lib as _cc_lib
    from coincurve.context import GLOBAL_CONTEXT as _CC_CONTEXT

    _cc_ctx: Any = _CC_CONTEXT.ctx
    _COINCURVE_MISSING = ""
except (ImportError, OSError) as exc:  # OSError: the bundled shared library failed to load
    _COINCURVE_MISSING = f"{type(exc).__name__}: {exc}"

try:
    import ecdsa as _ecdsa
    from ecdsa.util import sigdecode_string as _sigdecode_string
    from ecdsa.util import sigencode_string_canonize as _sigencode_string_canonize

    _ECDSA_MISSING = ""
except ImportError as exc:
    _ECDSA_MISSING = f"{type(exc).__name__}: {exc}"

SIGNATURE_SIZE = 64
PUBKEY_SIZE = 33
SECRET_SIZE = 32
DIGEST_SIZE = 32

# secp256k1 domain parameters (SEC 2, section 2.4.1).
CURVE_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141  # n
FIELD_PRIME = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFC2F  # p
HALF_ORDER = CURVE_ORDER // 2  # the largest low s

# Parsing a compressed key costs a field square root, about an eighth of a libsecp256k1
# verification; the same keys come back (a wallet's change, a busy sender, a block after its
# transactions passed the mempool), so parsed keys are kept. Bounded, as peers choose the keys.
PUBKEY_CACHE_SIZE = 4096

# How many out-of-range draws generate() accepts before calling the randomness source broken.
# A healthy source fails a draw with probability below 2**-127.
_MAX_DRAWS = 64

_SEED_TAG = b"forklab/private-key-from-seed/v1"


class Backend(enum.Enum):
    """Which implementation of secp256k1 does the arithmetic."""

    COINCURVE = "coincurve"  # libsecp256k1: fast, constant time
    ECDSA = "ecdsa"  # pure Python: portable, slow


@functools.cache  # imports are settled once this module has loaded
def available_backends() -> tuple[Backend, ...]:
    """The backends that can be used here, fastest first."""
    found = []
    if not _COINCURVE_MISSING:
        found.append(Backend.COINCURVE)
    if not _ECDSA_MISSING:
        found.append(Backend.ECDSA)
    return tuple(found)


def best_backend() -> Backend:
    """libsecp256k1 when coincurve imports, else pure-Python ecdsa."""
    found = available_backends()
    if not found:
        raise InternalError(
            "no secp256k1 library can be imported: install coincurve (fast) or ecdsa "
            f"(pure Python); coincurve said {_COINCURVE_MISSING!r}, ecdsa said {_ECDSA_MISSING!r}"
        )
    return found[0]


def _resolve(backend: Backend | None) -> Backend:
    if backend is None:
        return best_backend()
    if backend is Backend.COINCURVE and _COINCURVE_MISSING:
        raise InternalError(f"the coincurve backend is unavailable ({_COINCURVE_MISSING})")
    if backend is Backend.ECDSA and _ECDSA_MISSING:
        raise InternalError(f"the ecdsa backend is unavailable ({_ECDSA_MISSING})")
    return backend


def _secret_in_range(candidate: bytes) -> bool:
    return 1 <= int.from_bytes(candidate, "big") < CURVE_ORDER


@dataclass(frozen=True)
class PrivateKey:
    """A secp256k1 private key: the scalar ``k`` with ``1 <= k < n``, as 32 big-endian bytes.

    Immutable, so the public key is derived once and kept. ``repr`` shows the public key only,
    and equality compares secrets in constant time, so neither a log line nor a timing leaks it.
    """

    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.secret, bytes) or len(self.secret) != SECRET_SIZE:
            shown = len(self.secret) if isinstance(self.secret, bytes) else type(self.secret)
            raise ValueError(f"a private key is {SECRET_SIZE} bytes, got {shown}")
        if not _secret_in_range(self.secret):
            raise ValueError(
                "a private key must be a number from 1 to n - 1 (n is the secp256k1 group order)"
            )

    def __repr__(self) -> str:
        return f"PrivateKey(public_key={self.public_key.hex()})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PrivateKey):
            return NotImplemented
        return hmac.compare_digest(self.secret, other.secret)

    def __hash__(self) -> int:
        return hash(self.secret)

    @classmethod
    def generate(cls, randbytes: Callable[[int], bytes]) -> PrivateKey:
        """A new key from ``randbytes(32)``, e.g. ``secrets.token_bytes``.

        The randomness comes in from outside: the consensus core keeps no random state, and
        tests pass a seeded ``random.Random(...).randbytes``. Out-of-range draws are retried.
        """
        for _ in range(_MAX_DRAWS):
            candidate = randbytes(SECRET_SIZE)
            if len(candidate) != SECRET_SIZE:
                raise ValueError(
                    f"randbytes({SECRET_SIZE}) returned {len(candidate)} bytes, not {SECRET_SIZE}"
                )
            if _secret_in_range(candidate):
                return cls(bytes(candidate))
        raise InternalError(
            f"the randomness source gave {_MAX_DRAWS} out-of-range keys in a row: it is broken"
        )

    @classmethod
    def from_seed(cls, seed: bytes) -> PrivateKey:
        """The same key for the same seed, for devnet wallets such as ``b"alice"``.

        ``secret = SHA-256(tag || counter || seed)``, where ``tag`` is the 32 ASCII bytes
        ``forklab/private-key-from-seed/v1`` and ``counter`` is 4 bytes big-endian: the first
        counter from 0 whose result is a valid key. Anyone who knows the seed knows the key:
        never let one hold anything of value.
        """
        counter = 0
        while True:
            candidate = hashlib.sha256(_SEED_TAG + counter.to_bytes(4, "big") + seed).digest()
            if _secret_in_range(candidate):
                return cls(candidate)
            counter += 1

    @functools.cached_property
    def public_key(self) -> bytes:
        """The 33-byte compressed SEC1 public key."""
        if best_backend() is Backend.COINCURVE:
            return _coincurve_public_key(self.secret)
        return bytes(self._ecdsa_signing_key.get_verifying_key().to_string("compressed"))

    @functools.cached_property
    def _ecdsa_signing_key(self) -> Any:
        # Building the key object multiplies a point; keep it for the next signature.
        return _ecdsa.SigningKey.from_string(
            self.secret, curve=_ecdsa.SECP256k1, hashfunc=hashlib.sha256
        )

    def sign(self, digest: bytes, backend: Backend | None = None) -> bytes:
        """Sign a 32-byte digest: 64 bytes ``r || s``, low-S, with an RFC 6979 nonce.

        Deterministic: the same key and digest give the same signature on either backend.
        """
        if not isinstance(digest, bytes) or len(digest) != DIGEST_SIZE:
            shown = len(digest) if isinstance(digest, bytes) else type(digest)
            raise ValueError(f"only a {DIGEST_SIZE}-byte digest can be signed, got {shown}")
        if _resolve(backend) is Backend.COINCURVE:
            return _coincurve_sign(self.secret, digest)
        return bytes(
            self._ecdsa_signing_key.sign_digest_deterministic(
                digest, hashfunc=hashlib.sha256, sigencode=_sigencode_string_canonize
            )
        )


def verify(pubkey: bytes, digest: bytes, signature: bytes, backend: Backend | None = None) -> bool:
    """Whether ``signature`` is a valid low-S signature of ``digest`` by ``pubkey``.

    Any malformed input (wrong length, a point not on the curve, ``r`` or ``s`` zero or not
    below ``n``, a high ``s``) is simply invalid: this returns False and never raises, since
    every byte of it may come from a peer. Arguments that are not bytes are a programming error
    and raise TypeError.
    """
    if not (
        isinstance(pubkey, bytes) and isinstance(digest, bytes) and isinstance(signature, bytes)
    ):
        raise TypeError("verify() takes bytes for the public key, digest and signature")
    if len(digest) != DIGEST_SIZE or not _canonical_signature(signature):
        return False
    if not _pubkey_shape_ok(pubkey):
        return False
    if _resolve(backend) is Backend.COINCURVE:
        parsed = _coincurve_parse_pubkey(pubkey)
        return parsed is not None and _coincurve_verify(parsed, digest, signature)
    verifying_key = _ecdsa_parse_pubkey(pubkey)
    return verifying_key is not None and _ecdsa_verify(verifying_key, digest, signature)


def is_valid_pubkey(pubkey: bytes, backend: Backend | None = None) -> bool:
    """Whether ``pubkey`` is a 33-byte compressed encoding of a point on secp256k1."""
    if not isinstance(pubkey, bytes) or not _pubkey_shape_ok(pubkey):
        return False
    if _resolve(backend) is Backend.COINCURVE:
        return _coincurve_parse_pubkey(pubkey) is not None
    return _ecdsa_parse_pubkey(pubkey) is not None


def _canonical_signature(signature: bytes) -> bool:
    """The rule on ``r`` and ``s`` checked here, once, rather than trusted to each library."""
    if len(signature) != SIGNATURE_SIZE:
        return False
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:], "big")
    return 1 <= r < CURVE_ORDER and 1 <= s <= HALF_ORDER


def _pubkey_shape_ok(pubkey: bytes) -> bool:
    # Both libraries would also accept 65-byte keys; forklab accepts one encoding per key.
    return len(pubkey) == PUBKEY_SIZE and pubkey[0] in (2, 3)


# -- libsecp256k1 through coincurve


def _coincurve_public_key(secret: bytes) -> bytes:
    point = _cc_ffi.new("secp256k1_pubkey *")
    if not _cc_lib.secp256k1_ec_pubkey_create(_cc_ctx, point, secret):
        raise InternalError("libsecp256k1 refused a private key that passed validation")
    out = _cc_ffi.new("unsigned char[33]")
    out_len = _cc_ffi.new("size_t *", PUBKEY_SIZE)
    _cc_lib.secp256k1_ec_pubkey_serialize(
        _cc_ctx, out, out_len, point, _cc_lib.SECP256K1_EC_COMPRESSED
    )
    return bytes(_cc_ffi.buffer(out, PUBKEY_SIZE))


def _coincurve_sign(secret: bytes, digest: bytes) -> bytes:
    sig = _cc_ffi.new("secp256k1_ecdsa_signature *")
    # A NULL nonce function selects libsecp256k1's RFC 6979 (HMAC-SHA-256, no extra data),
    # and secp256k1_ecdsa_sign always returns the low-S form.
    if not _cc_lib.secp256k1_ecdsa_sign(_cc_ctx, sig, digest, secret, _cc_ffi.NULL, _cc_ffi.NULL):
        raise InternalError("libsecp256k1 refused to sign with a key that passed validation")
    out = _cc_ffi.new("unsigned char[64]")
    _cc_lib.secp256k1_ecdsa_signature_serialize_compact(_cc_ctx, out, sig)
    return bytes(_cc_ffi.buffer(out, SIGNATURE_SIZE))


@functools.lru_cache(maxsize=PUBKEY_CACHE_SIZE)
def _coincurve_parse_pubkey(pubkey: bytes) -> Any:
    """The parsed point, or None if ``pubkey`` is not on the curve (a miss is cached too)."""
    point = _cc_ffi.new("secp256k1_pubkey *")
    if not _cc_lib.secp256k1_ec_pubkey_parse(_cc_ctx, point, pubkey, len(pubkey)):
        return None
    return point


def _coincurve_verify(point: Any, digest: bytes, signature: bytes) -> bool:
    sig = _cc_ffi.new("secp256k1_ecdsa_signature *")
    # Parsing the compact form copies two 32-byte scalars: far cheaper than going through DER.
    if not _cc_lib.secp256k1_ecdsa_signature_parse_compact(_cc_ctx, sig, signature):
        return False
    # secp256k1_ecdsa_verify rejects high-S on its own as well.
    return bool(_cc_lib.secp256k1_ecdsa_verify(_cc_ctx, sig, digest, point))


# -- pure Python through ecdsa


@functools.lru_cache(maxsize=PUBKEY_CACHE_SIZE)
def _ecdsa_parse_pubkey(pubkey: bytes) -> Any:
    try:
        return _ecdsa.VerifyingKey.from_string(
            pubkey, curve=_ecdsa.SECP256k1, hashfunc=hashlib.sha256, validate_point=True
        )
    except (_ecdsa.errors.MalformedPointError, ValueError):
        return None


def _ecdsa_verify(verifying_key: Any, digest: bytes, signature: bytes) -> bool:
    try:
        return bool(verifying_key.verify_digest(signature, digest, sigdecode=_sigdecode_string))
    except _ecdsa.BadSignatureError:
        return False
