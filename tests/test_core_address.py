"""Specification of node.core.address: hash160 and Base58Check addresses.

What is pinned down here:

* RIPEMD-160, both hashlib's and the pure-Python stand-in, against the published test vectors
  and against each other; hash160 against Bitcoin's;
* addresses of known keys on the three version bytes forklab uses (Bitcoin's P2PKH vectors for
  0x00 and 0x6f, Dogecoin's for 0x1e), and the round trip for any hash and version;
* a catalogue of bad addresses, each refused with the sentence a user needs; every
  single-character substitution and adjacent swap of an address is caught; decoding arbitrary
  text raises AddressError and nothing else.
"""

from __future__ import annotations

import hashlib
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.core.address import (
    B58_ALPHABET,
    MAX_ADDRESS_CHARS,
    address_from_pubkey,
    b58decode,
    b58decode_check,
    b58encode,
    b58encode_check,
    decode_address,
    encode_address,
    hash160,
    ripemd160,
    ripemd160_pure,
)
from node.core.crypto import PrivateKey
from node.core.errors import AddressError

MAIN, REGTEST, DEMO = 0x00, 0x6F, 0x1E

# -- RIPEMD-160 and hash160

# The test vectors from the RIPEMD-160 page of its authors (Bosselaers, KU Leuven).
RIPEMD160_VECTORS = {
    "empty": (b"", "9c1185a5c5e9fc54612808977ee8f548b2258d31"),
    "a": (b"a", "0bdc9d2d256b3ee9daae347be6f4dc835a467ffe"),
    "abc": (b"abc", "8eb208f7e05d987a9b044a8e98c6b087f15a0bfc"),
    "message digest": (b"message digest", "5d0689ef49d2fae572b881b123a85ffa21595f36"),
    "alphabet": (b"abcdefghijklmnopqrstuvwxyz", "f71c27109c692c1b56bbdceb5b9d2865b3708dbc"),
    "448 bits (two blocks after padding)": (
        b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
        "12a053384a9c0c88e405a06c27dcf49ada62eb2b",
    ),
    "alphanumeric": (
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
        "b0e20b6e3116640286ed3a87a5713079b21f5189",
    ),
    "8 times 1234567890": (b"1234567890" * 8, "9b752e45573d4b39f4dbd3323cab82bf63326bfb"),
    "a million a": (b"a" * 1_000_000, "52783243c1697bdbe16d37f97f68f08325dc1528"),
}


@pytest.mark.parametrize(("data", "expected"), RIPEMD160_VECTORS.values(), ids=RIPEMD160_VECTORS)
def test_ripemd160_vectors(data: bytes, expected: str) -> None:
    assert ripemd160(data).hex() == expected
    if len(data) < 10_000:  # the pure version takes seconds for a million bytes
        assert ripemd160_pure(data).hex() == expected


def test_pure_ripemd160_matches_hashlib_on_every_padding_length() -> None:
    try:
        hashlib.new("ripemd160")
    except ValueError:
        pytest.skip("this OpenSSL has no RIPEMD-160 to compare with")
    rng = random.Random(160)
    # 0 to 200 bytes covers each position of the length field across block boundaries.
    for size in range(201):
        data = rng.randbytes(size)
        assert ripemd160_pure(data) == hashlib.new("ripemd160", data).digest(), size


HASH160_VECTORS = {
    "abc": (b"abc", "bb1be98c142444d7a56aa3981c3942a978e4dc33"),
    "compressed key of private key 1": (
        bytes.fromhex("0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"),
        "751e76e8199196d454941c45d1b3a323f1433bd6",
    ),
    # The worked example of the Bitcoin wiki's "Technical background of version 1 addresses".
    "bitcoin wiki uncompressed key": (
        bytes.fromhex(
            "0450863ad64a87ae8a2fe83c1af1a8403cb53f53e486d8511dad8a04887e5b2352"
            "2cd470243453a299fa9e77237716103abc11a1df38855ed6f2ee187e9c582ba6"
        ),
        "010966776006953d5567439e5e39f86a0d273bee",
    ),
}


@pytest.mark.parametrize(("data", "expected"), HASH160_VECTORS.values(), ids=HASH160_VECTORS)
def test_hash160_vectors(data: bytes, expected: str) -> None:
    assert hash160(data).hex() == expected


# -- valid addresses

KEY_ONE = PrivateKey((1).to_bytes(32, "big"))
KEY_ONE_HASH = "751e76e8199196d454941c45d1b3a323f1433bd6"

VALID_ADDRESSES = {
    "key 1, main": (KEY_ONE_HASH, MAIN, "1BgGZ9tcN4rm9KBzDn7KprQz87SZ26SAMH"),
    "key 1, regtest (Bitcoin testnet's 0x6f)": (
        KEY_ONE_HASH,
        REGTEST,
        "mrCDrCybB6J1vRfbwM5hemdJz73FwDBC8r",
    ),
    "key 1, demo (Dogecoin's 0x1e)": (KEY_ONE_HASH, DEMO, "DFpN6QqFfUm3gKNaxN6tNcab1FArL9cZLE"),
    "bitcoin wiki example": (
        "010966776006953d5567439e5e39f86a0d273bee",
        MAIN,
        "16UwLL9Risc3QfPqBUvKofHmBQ7wMtjvM",
    ),
    "all-zero hash: 21 leading zero bytes become ones": (
        "00" * 20,
        MAIN,
        "1111111111111111111114oLvT2",
    ),
    "hash 1": ("00" * 19 + "01", MAIN, "11111111111111111111BZbvjr"),
    "a 34-character address": (
        "89c907892a9d4f37b78d5f83f2fd6e008c4f795d",
        MAIN,
        "1DZYQ3xEy8mkc7wToQZvKqeLrSLUMVVK41",
    ),
}


@pytest.mark.parametrize(
    ("pubkey_hash", "version", "address"), VALID_ADDRESSES.values(), ids=VALID_ADDRESSES
)
def test_valid_address(pubkey_hash: str, version: int, address: str) -> None:
    assert encode_address(bytes.fromhex(pubkey_hash), version) == address
    assert decode_address(address, version).hex() == pubkey_hash


@pytest.mark.parametrize(
    ("version", "address"),
    [
        (MAIN, "1BgGZ9tcN4rm9KBzDn7KprQz87SZ26SAMH"),
        (REGTEST, "mrCDrCybB6J1vRfbwM5hemdJz73FwDBC8r"),
        (DEMO, "DFpN6QqFfUm3gKNaxN6tNcab1FArL9cZLE"),
    ],
    ids=["main", "regtest", "demo"],
)
def test_address_from_pubkey_of_private_key_one(version: int, address: str) -> None:
    assert address_from_pubkey(KEY_ONE.public_key, version) == address


@pytest.mark.parametrize(
    "pubkey",
    [b"", b"\x02" + b"\xff" * 32, HASH160_VECTORS["bitcoin wiki uncompressed key"][0]],
    ids=["empty", "not on the curve", "uncompressed"],
)
def test_address_from_pubkey_refuses_what_is_not_a_compressed_key(pubkey: bytes) -> None:
    with pytest.raises(ValueError, match="compressed secp256k1 public key"):
        address_from_pubkey(pubkey, MAIN)


@pytest.mark.parametrize(
    ("pubkey_hash", "version", "fragment"),
    [
        (b"\x00" * 19, MAIN, "20 bytes, got 19"),
        (b"\x00" * 32, MAIN, "20 bytes, got 32"),
        (b"\x00" * 20, 256, "one byte"),
        (b"\x00" * 20, -1, "one byte"),
    ],
    ids=["short hash", "sha256-sized hash", "version 256", "version -1"],
)
def test_encode_address_refuses_bad_arguments(
    pubkey_hash: bytes, version: int, fragment: str
) -> None:
    with pytest.raises(ValueError, match=fragment):
        encode_address(pubkey_hash, version)


# -- invalid addresses: what the user is told

GOOD = "1BgGZ9tcN4rm9KBzDn7KprQz87SZ26SAMH"

INVALID_ADDRESSES = {
    "empty": ("", "address is empty"),
    "zero instead of o": (GOOD[:10] + "0" + GOOD[11:], "invalid character '0' at position 11"),
    "capital O": ("1BgGZ9tcN4rm9KBzDn7KprQz87SZ26SAMO", "invalid character 'O' at position 34"),
    "capital I": ("IBgGZ9tcN4rm9KBzDn7KprQz87SZ26SAMH", "invalid character 'I' at position 1"),
    "lower-case l": ("1BgGZ9tcN4rm9KBzDn7KprQz87SZ26SAMl", "invalid character 'l' at position 34"),
    "look-alikes are named": (GOOD[:-1] + "0", "except 0, O, I and l"),
    "trailing newline from a paste": (GOOD + "\n", "invalid character '\\n' at position 35"),
    "space inside": (GOOD[:5] + " " + GOOD[5:], "invalid character ' ' at position 6"),
    "non-ASCII": ("1BgGZ9tcN4rm9KBzDn7KprQz87SZ26SAMé", "invalid character 'é' at position 34"),
    "one character changed": (GOOD[:-1] + "J", "checksum mismatch: probably a typo"),
    "a middle character missing": (GOOD[:20] + GOOD[21:], "checksum mismatch"),
    "the leading 1 missing": (GOOD[1:], "wrong length: the address decodes to 24 bytes, not 25"),
    "single character": ("1", "wrong length: the address decodes to 1 byte, not 25"),
    "too long to be an address": (GOOD * 2, "68 characters long"),
    "all ones (25 zero bytes)": ("1" * 25, "checksum mismatch"),
    "valid Base58Check but a 19-byte hash": (
        b58encode_check(b"\x00" + b"\x01" * 19),
        "wrong length: the address decodes to 24 bytes, not 25",
    ),
    "regtest address on main": (
        "mrCDrCybB6J1vRfbwM5hemdJz73FwDBC8r",
        "address is for another network (version 0x6f); this node expects 0x00",
    ),
    "demo address on main": (
        "DFpN6QqFfUm3gKNaxN6tNcab1FArL9cZLE",
        "address is for another network (version 0x1e); this node expects 0x00",
    ),
}


@pytest.mark.parametrize(("address", "fragment"), INVALID_ADDRESSES.values(), ids=INVALID_ADDRESSES)
def test_invalid_address_is_refused_with_a_reason(address: str, fragment: str) -> None:
    with pytest.raises(AddressError) as caught:
        decode_address(address, MAIN)
    assert fragment in str(caught.value)


def test_main_address_on_regtest_names_both_versions() -> None:
    with pytest.raises(AddressError, match=r"version 0x00\); this node expects 0x6f"):
        decode_address(GOOD, REGTEST)


@pytest.mark.parametrize(
    "address", ["1BgGZ9tcN4rm9KBzDn7KprQz87SZ26SAMH", "16UwLL9Risc3QfPqBUvKofHmBQ7wMtjvM"]
)
def test_every_single_character_substitution_is_caught(address: str) -> None:
    hash_ = decode_address(address, MAIN)
    for position, original in enumerate(address):
        for replacement in B58_ALPHABET:
            if replacement == original:
                continue
            typo = address[:position] + replacement + address[position + 1 :]
            with pytest.raises(AddressError):
                decode_address(typo, MAIN)
    assert decode_address(address, MAIN) == hash_


def test_every_adjacent_swap_is_caught() -> None:
    for position in range(len(GOOD) - 1):
        swapped = GOOD[:position] + GOOD[position + 1] + GOOD[position] + GOOD[position + 2 :]
        if swapped == GOOD:
            continue  # two equal neighbours: the swap changes nothing
        with pytest.raises(AddressError):
            decode_address(swapped, MAIN)


# -- Base58 itself


BASE58_VECTORS = {
    "empty": (b"", ""),
    "one zero byte": (b"\x00", "1"),
    "zeros are kept": (b"\x00\x00\x00\x01", "1112"),
    "57 is the last digit": (b"\x39", "z"),
    "58 carries": (b"\x3a", "21"),
    "hello world": (b"hello world", "StV1DL6CwTryKyV"),
}


@pytest.mark.parametrize(("data", "text"), BASE58_VECTORS.values(), ids=BASE58_VECTORS)
def test_base58_vectors(data: bytes, text: str) -> None:
    assert b58encode(data) == text
    assert b58decode(text) == data


def test_b58decode_check_round_trip_and_faults() -> None:
    payload = b"\x80" + bytes(range(32))
    assert b58decode_check(b58encode_check(payload)) == payload
    with pytest.raises(AddressError, match="1 byte cannot hold a 4-byte checksum"):
        b58decode_check("z")
    with pytest.raises(AddressError, match="checksum mismatch"):
        b58decode_check(b58encode(payload + b"\x00\x00\x00\x00"))


@settings(max_examples=300)
@given(st.binary(max_size=64))
def test_base58_round_trip(data: bytes) -> None:
    assert b58decode(b58encode(data)) == data


@settings(max_examples=300)
@given(st.binary(min_size=20, max_size=20), st.integers(min_value=0, max_value=255))
def test_address_round_trip(pubkey_hash: bytes, version: int) -> None:
    address = encode_address(pubkey_hash, version)
    assert len(address) <= MAX_ADDRESS_CHARS
    assert decode_address(address, version) == pubkey_hash


@settings(max_examples=500)
@given(st.text(max_size=60) | st.text(alphabet=B58_ALPHABET, min_size=20, max_size=40))
def test_decoding_arbitrary_text_raises_only_address_error(text: str) -> None:
    try:
        decode_address(text, MAIN)
    except AddressError as exc:
        assert str(exc)
