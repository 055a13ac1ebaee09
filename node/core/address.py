"""Base58Check addresses: how people write down whom to pay.

An address names a public-key hash, not a public key: it is shorter, and a key that has never
signed is not exposed. It is Base58 so it can be read aloud and copied by hand without
look-alike characters (no 0, O, I or l), and it carries a checksum so that a typo is caught
before coins are sent into the void.

Layout of the 25 bytes behind an address::

    field        size  meaning
    version      1     the network: main 0x00, regtest 0x6f, demo 0x1e (node.core.params)
    pubkey hash  20    hash160 of the 33-byte compressed public key
    checksum     4     first 4 bytes of sha256d(version || pubkey hash)

Base58 writes those bytes as one big-endian base-58 number, plus one ``1`` per leading zero
byte (so main-network addresses start with ``1``). This is Bitcoin's P2PKH address exactly,
so Bitcoin's own test vectors apply.

``hash160`` is RIPEMD-160 of SHA-256. hashlib only offers RIPEMD-160 when OpenSSL does, and
OpenSSL 3 hides it in the "legacy" provider, so a short pure-Python RIPEMD-160 stands in when
hashlib lacks it.

What this module does not do: Bech32 or script addresses, private-key formats (WIF), or
deciding which version byte a network uses (that is ``params``; every function here takes it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from node.core.crypto import is_valid_pubkey
from node.core.errors import AddressError
from node.core.hashing import sha256d

PUBKEY_HASH_SIZE = 20
CHECKSUM_SIZE = 4
ADDRESS_PAYLOAD_SIZE = 1 + PUBKEY_HASH_SIZE  # version byte and hash, before the checksum

B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {char: index for index, char in enumerate(B58_ALPHABET)}

# 25 bytes never take more than 35 Base58 characters (the longest is 25 ones, the widest
# ~34.1 digits). Refusing longer text up front keeps the quadratic decoder cheap whatever a
# user pastes.
MAX_ADDRESS_CHARS = 35


# -- RIPEMD-160 (Dobbertin, Bosselaers, Preneel 1996), used only when hashlib lacks it.
# Names follow the paper: r picks the message word of each step, s its rotation, K the constant
# of each round of 16 steps; "left" and "right" are the two parallel lines.

_R_LEFT = (
    *range(16),
    *(7, 4, 13, 1, 10, 6, 15, 3, 12, 0, 9, 5, 2, 14, 11, 8),
    *(3, 10, 14, 4, 9, 15, 8, 1, 2, 7, 0, 6, 13, 11, 5, 12),
    *(1, 9, 11, 10, 0, 8, 12, 4, 13, 3, 7, 15, 14, 5, 6, 2),
    *(4, 0, 5, 9, 7, 12, 2, 10, 14, 1, 3, 8, 11, 6, 15, 13),
)
_R_RIGHT = (
    *(5, 14, 7, 0, 9, 2, 11, 4, 13, 6, 15, 8, 1, 10, 3, 12),
    *(6, 11, 3, 7, 0, 13, 5, 10, 14, 15, 8, 12, 4, 9, 1, 2),
    *(15, 5, 1, 3, 7, 14, 6, 9, 11, 8, 12, 2, 10, 0, 4, 13),
    *(8, 6, 4, 1, 3, 11, 15, 0, 5, 12, 2, 13, 9, 7, 10, 14),
    *(12, 15, 10, 4, 1, 5, 8, 7, 6, 2, 13, 14, 0, 3, 9, 11),
)
_S_LEFT = (
    *(11, 14, 15, 12, 5, 8, 7, 9, 11, 13, 14, 15, 6, 7, 9, 8),
    *(7, 6, 8, 13, 11, 9, 7, 15, 7, 12, 15, 9, 11, 7, 13, 12),
    *(11, 13, 6, 7, 14, 9, 13, 15, 14, 8, 13, 6, 5, 12, 7, 5),
    *(11, 12, 14, 15, 14, 15, 9, 8, 9, 14, 5, 6, 8, 6, 5, 12),
    *(9, 15, 5, 11, 6, 8, 13, 12, 5, 12, 13, 14, 11, 8, 5, 6),
)
_S_RIGHT = (
    *(8, 9, 9, 11, 13, 15, 15, 5, 7, 7, 8, 11, 14, 14, 12, 6),
    *(9, 13, 15, 7, 12, 8, 9, 11, 7, 7, 12, 7, 6, 15, 13, 11),
    *(9, 7, 15, 11, 8, 6, 6, 14, 12, 13, 5, 14, 13, 13, 7, 5),
    *(15, 5, 8, 11, 14, 14, 6, 14, 6, 9, 12, 9, 12, 5, 15, 8),
    *(8, 5, 12, 9, 12, 5, 14, 6, 8, 13, 6, 5, 15, 13, 11, 11),
)
_K_LEFT = (0x00000000, 0x5A827999, 0x6ED9EBA1, 0x8F1BBCDC, 0xA953FD4E)
_K_RIGHT = (0x50A28BE6, 0x5C4DD124, 0x6D703EF3, 0x7A6D76E9, 0x00000000)
_RMD_INITIAL = (0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0)
_MASK32 = 0xFFFFFFFF


def _rmd_f(round_: int, x: int, y: int, z: int) -> int:
    """The five boolean functions, one per round of 16 steps."""
    if round_ == 0:
        return x ^ y ^ z
    if round_ == 1:
        return (x & y) | (~x & z)
    if round_ == 2:
        return (x | ~y) ^ z
    if round_ == 3:
        return (x & z) | (y & ~z)
    return x ^ (y | ~z)


def _rol(value: int, shift: int) -> int:
    value &= _MASK32
    return ((value << shift) | (value >> (32 - shift))) & _MASK32


def _rmd_compress(state: tuple[int, ...], block: bytes) -> tuple[int, ...]:
    words = [int.from_bytes(block[i : i + 4], "little") for i in range(0, 64, 4)]
    al, bl, cl, dl, el = state
    ar, br, cr, dr, er = state
    for step in range(80):
        round_ = step // 16
        # Two parallel lines; the right one takes the boolean functions in reverse order.
        left = al + _rmd_f(round_, bl, cl, dl) + words[_R_LEFT[step]] + _K_LEFT[round_]
        left = _rol(left, _S_LEFT[step]) + el
        al, el, dl, cl, bl = el, dl, _rol(cl, 10), bl, left & _MASK32
        right = ar + _rmd_f(4 - round_, br, cr, dr) + words[_R_RIGHT[step]] + _K_RIGHT[round_]
        right = _rol(right, _S_RIGHT[step]) + er
        ar, er, dr, cr, br = er, dr, _rol(cr, 10), br, right & _MASK32
    h0, h1, h2, h3, h4 = state
    return (
        (h1 + cl + dr) & _MASK32,
        (h2 + dl + er) & _MASK32,
        (h3 + el + ar) & _MASK32,
        (h4 + al + br) & _MASK32,
        (h0 + bl + cr) & _MASK32,
    )


def ripemd160_pure(data: bytes) -> bytes:
    """RIPEMD-160 in plain Python: slow, but needs no OpenSSL legacy provider."""
    # MD4-style padding: a 1 bit, zeros to 56 mod 64 bytes, the bit length little-endian.
    padded = data + b"\x80" + b"\x00" * ((55 - len(data)) % 64)
    padded += (8 * len(data) & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "little")
    state: tuple[int, ...] = _RMD_INITIAL
    for offset in range(0, len(padded), 64):
        state = _rmd_compress(state, padded[offset : offset + 64])
    return b"".join(word.to_bytes(4, "little") for word in state)


def _pick_ripemd160() -> Callable[[bytes], bytes]:
    try:
        hashlib.new("ripemd160")
    except ValueError:  # OpenSSL 3 without the legacy provider
        return ripemd160_pure

    def ripemd160_openssl(data: bytes) -> bytes:
        return hashlib.new("ripemd160", data).digest()

    return ripemd160_openssl


ripemd160: Callable[[bytes], bytes] = _pick_ripemd160()


def hash160(data: bytes) -> bytes:
    """RIPEMD-160 of SHA-256: the 20-byte public-key hash inside an address."""
    return ripemd160(hashlib.sha256(data).digest())


# -- Base58 and Base58Check


def b58encode(data: bytes) -> str:
    """``data`` in Base58, one ``1`` per leading zero byte."""
    number = int.from_bytes(data, "big")
    digits = []
    while number:
        number, digit = divmod(number, 58)
        digits.append(B58_ALPHABET[digit])
    zeros = len(data) - len(data.lstrip(b"\x00"))
    return "1" * zeros + "".join(reversed(digits))


def b58decode(text: str) -> bytes:
    """Inverse of :func:`b58encode`; AddressError names the first character not in Base58."""
    number = 0
    for position, char in enumerate(text, start=1):
        digit = _B58_INDEX.get(char)
        if digit is None:
            raise AddressError(
                f"invalid character {char!r} at position {position}: Base58 uses digits and "
                "letters except 0, O, I and l, which are too easily confused"
            )
        number = number * 58 + digit
    zeros = len(text) - len(text.lstrip("1"))
    body = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return b"\x00" * zeros + body


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _checksum(payload: bytes) -> bytes:
    return sha256d(payload)[:CHECKSUM_SIZE]


def b58encode_check(payload: bytes) -> str:
    """``payload`` followed by its 4-byte sha256d checksum, in Base58."""
    return b58encode(payload + _checksum(payload))


def b58decode_check(text: str) -> bytes:
    """The payload of Base58Check ``text``, checksum verified and removed."""
    raw = b58decode(text)
    if len(raw) < CHECKSUM_SIZE:
        raise AddressError(
            f"too short: {_count(len(raw), 'byte')} cannot hold a {CHECKSUM_SIZE}-byte checksum"
        )
    return _verified_payload(raw)


def _verified_payload(raw: bytes) -> bytes:
    payload, checksum = raw[:-CHECKSUM_SIZE], raw[-CHECKSUM_SIZE:]
    if _checksum(payload) != checksum:
        raise AddressError(
            "checksum mismatch: probably a typo (a character wrong, missing or extra)"
        )
    return payload


# -- addresses


def _check_version(version: int) -> None:
    if not 0 <= version <= 0xFF:
        raise ValueError(f"an address version is one byte (0 to 255), got {version}")


def encode_address(pubkey_hash: bytes, version: int) -> str:
    """The Base58Check address of a 20-byte public-key hash on the network ``version``."""
    _check_version(version)
    if len(pubkey_hash) != PUBKEY_HASH_SIZE:
        raise ValueError(f"a public-key hash is {PUBKEY_HASH_SIZE} bytes, got {len(pubkey_hash)}")
    return b58encode_check(bytes([version]) + pubkey_hash)


def address_from_pubkey(pubkey: bytes, version: int) -> str:
    """The address paying to a 33-byte compressed public key."""
    if not is_valid_pubkey(pubkey):
        raise ValueError("not a 33-byte compressed secp256k1 public key")
    return encode_address(hash160(pubkey), version)


def decode_address(address: str, version: int) -> bytes:
    """The 20-byte public-key hash inside ``address``, which must be for network ``version``.

    Checks in the order a person can act on them: empty, too long, a character outside Base58
    (positions count from 1), the decoded length, the checksum (a typo), and last the network
    (a valid address, but not for this node). Each failure raises AddressError with one
    sentence saying what is wrong.
    """
    _check_version(version)
    if not address:
        raise AddressError("address is empty")
    if len(address) > MAX_ADDRESS_CHARS:
        raise AddressError(
            f"address is {len(address)} characters long; addresses have at most {MAX_ADDRESS_CHARS}"
        )
    raw = b58decode(address)
    expected = ADDRESS_PAYLOAD_SIZE + CHECKSUM_SIZE
    if len(raw) != expected:
        raise AddressError(
            f"wrong length: the address decodes to {_count(len(raw), 'byte')}, not {expected}"
        )
    payload = _verified_payload(raw)
    if payload[0] != version:
        raise AddressError(
            f"address is for another network (version 0x{payload[0]:02x}); "
            f"this node expects 0x{version:02x}"
        )
    return payload[1:]
