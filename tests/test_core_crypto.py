"""Specification of node.core.crypto: ECDSA over secp256k1 on two backends.

What is pinned down here:

* known answers: private key 1 is the generator, and published RFC 6979 signatures are
  reproduced byte for byte by both backends;
* both backends are one function: the same key and digest give the same signature, and a
  signature made by one verifies under the other;
* the signature rule: low-S only, ``1 <= r < n``, 64 bytes, compressed 33-byte keys; a catalogue
  of malformed inputs is refused by both backends, and ``verify`` never raises on any bytes;
* private keys: range checks, injected randomness, deterministic seeds, a repr that hides the
  secret, and the fallback to pure Python when coincurve cannot be imported.
"""

from __future__ import annotations

import hashlib
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.core import crypto
from node.core.crypto import (
    CURVE_ORDER,
    FIELD_PRIME,
    HALF_ORDER,
    PUBKEY_SIZE,
    SIGNATURE_SIZE,
    Backend,
    PrivateKey,
    available_backends,
    best_backend,
    is_valid_pubkey,
    verify,
)
from node.core.errors import InternalError

REPO_ROOT = Path(__file__).resolve().parents[1]

BACKENDS = [
    pytest.param(
        backend,
        id=backend.value,
        marks=pytest.mark.skipif(
            backend not in available_backends(), reason=f"{backend.value} is not installed"
        ),
    )
    for backend in Backend
]
BOTH = pytest.mark.skipif(
    len(available_backends()) < 2, reason="needs both coincurve and ecdsa to compare them"
)


def key(number: int) -> PrivateKey:
    return PrivateKey(number.to_bytes(32, "big"))


def digest_of(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


def scalars(signature: bytes) -> tuple[int, int]:
    return int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")


def pack(r: int, s: int) -> bytes:
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


# -- known answers

# Multiples of the generator G, compressed (SEC 2; k*G for small k as listed by many libraries).
PUBLIC_KEY_VECTORS = {
    "1 is G": (1, "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"),
    "2 is 2G": (2, "02c6047f9441ed7d6d3045406e95c07cd85c778e4b8cef3ca7abac09b95c709ee5"),
    "3 is 3G": (3, "02f9308a019258c31049344f85f89d5229b531c845836f99b08601f113bce036f9"),
    "n-1 is -G (odd y)": (
        CURVE_ORDER - 1,
        "0379be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798",
    ),
}

# RFC 6979 with HMAC-SHA-256 on secp256k1, low-S, digest = SHA-256(message). The first six
# are the set sipa published (bitcointalk topic 285142) and that libraries such as
# fr.acinq.bitcoin and breadwallet test against; the others are from bitcoinjs-lib's
# test/fixtures/ecdsa.json. Each is (private key, message, r, s).
RFC6979_VECTORS = {
    "satoshi, key 1": (
        1,
        "Satoshi Nakamoto",
        "934b1ea10a4b3c1757e2b0c017d0b6143ce3c9a7e6a4a49860d7a6ab210ee3d8",
        "2442ce9d2b916064108014783e923ec36b49743e2ffa1c4496f01a512aafd9e5",
    ),
    "einstein, key 1": (
        1,
        "Everything should be made as simple as possible, but not simpler.",
        "33a69cd2065432a30f3d1ce4eb0d59b8ab58c74f27c41a7fdb5696ad4e6108c9",
        "6f807982866f785d3f6418d24163ddae117b7db4d5fdf0071de069fa54342262",
    ),
    "blade runner, key 1": (
        1,
        "All those moments will be lost in time, like tears in rain. Time to die...",
        "8600dbd41e348fe5c9465ab92d23e3db8b98b873beecd930736488696438cb6b",
        "547fe64427496db33bf66019dacbf0039c04199abb0122918601db38a72cfc21",
    ),
    "satoshi, key n-1": (
        CURVE_ORDER - 1,
        "Satoshi Nakamoto",
        "fd567d121db66e382991534ada77a6bd3106f0a1098c231e47993447cd6af2d0",
        "6b39cd0eb1bc8603e159ef5c20a5c8ad685a45b06ce9bebed3f153d10d93bed5",
    ),
    "alan turing": (
        0xF8B8AF8CE3C7CCA5E300D33939540C10D45CE001B8F252BFBC57BA0342904181,
        "Alan Turing",
        "7063ae83e7f62bbb171798131b4a0564b956930092b33b07b395615d9ec7e15c",
        "58dfcc1e00a35e1572f366ffe34ba0fc47db1e7189759b9fb233c5b05ab388ea",
    ),
    "feynman": (
        0xE91671C46231F833A6406CCBEA0E3E392C76C167BAC1CB013F6F1013980455C2,
        "There is a computer disease that anybody who works with computers knows about. It's "
        "a very serious disease and it interferes completely with the work. The trouble with "
        "computers is that you 'play' with them!",
        "b552edd27580141f3b2a5463048cb7cd3e047b97c9f98076c32dbdf85a68718b",
        "279fa72dd19bfae05577e06c7c0c1900c371fcd5893f7e1d56a37d30174671f6",
    ),
    "equations, key n-1": (
        CURVE_ORDER - 1,
        "Equations are more important to me, because politics is for the present, but an "
        "equation is something for eternity.",
        "54c4a33c6423d689378f160a7ff8b61330444abb58fb470f96ea16d99d4a2fed",
        "07082304410efa6b2943111b6a4e0aaa7b7db55a07e9861d1fb3cb1f421044a5",
    ),
    "stranger universe, key n-1": (
        CURVE_ORDER - 1,
        "Not only is the Universe stranger than we think, it is stranger than we can think.",
        "ff466a9f1b7b273e2f4c3ffe032eb2e814121ed18ef84665d0f515360dab3dd0",
        "6fc95f5132e5ecfdc8e5e6e616cc77151455d46ed48f5589b7db7771a332b283",
    ),
    "submarines, small key": (
        0x56916D0F9B31DC9B637F3,
        "The question of whether computers can think is like the question of whether "
        "submarines can swim.",
        "cde1302d83f8dd835d89aef803c74a119f561fbaef3eb9129e45f30de86abbf9",
        "06ce643f5049ee1f27890467b77a6a8e11ec4661cc38cd8badf90115fbd03cef",
    ),
}


@pytest.mark.parametrize(
    ("number", "expected"), PUBLIC_KEY_VECTORS.values(), ids=PUBLIC_KEY_VECTORS
)
def test_public_key_of_known_scalars(number: int, expected: str) -> None:
    assert key(number).public_key.hex() == expected
    assert len(key(number).public_key) == PUBKEY_SIZE


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("number", "message", "r", "s"), RFC6979_VECTORS.values(), ids=RFC6979_VECTORS
)
def test_rfc6979_vectors(backend: Backend, number: int, message: str, r: str, s: str) -> None:
    private = key(number)
    signature = private.sign(digest_of(message), backend)
    assert signature.hex() == r + s
    assert verify(private.public_key, digest_of(message), signature, backend)


# -- the two backends are one function


@pytest.mark.parametrize("backend", BACKENDS)
def test_sign_verify_round_trip(backend: Backend) -> None:
    private = PrivateKey.from_seed(b"round trip")
    digest = digest_of("pay bob 5")
    signature = private.sign(digest, backend)
    assert len(signature) == SIGNATURE_SIZE
    assert verify(private.public_key, digest, signature, backend)
    assert not verify(private.public_key, digest_of("pay bob 6"), signature, backend)
    other = PrivateKey.from_seed(b"someone else").public_key
    assert not verify(other, digest, signature, backend)


@BOTH
def test_backends_sign_identically_and_verify_each_other() -> None:
    rng = random.Random(6979)
    digests = [rng.randbytes(32) for _ in range(24)]
    # Digests at the edges: zero, at and above n (reduced mod n by both), all ones.
    digests += [bytes(32), CURVE_ORDER.to_bytes(32, "big"), b"\xff" * 32]
    for digest in digests:
        private = PrivateKey.generate(rng.randbytes)
        by_coincurve = private.sign(digest, Backend.COINCURVE)
        by_ecdsa = private.sign(digest, Backend.ECDSA)
        assert by_coincurve == by_ecdsa
        assert verify(private.public_key, digest, by_coincurve, Backend.ECDSA)
        assert verify(private.public_key, digest, by_ecdsa, Backend.COINCURVE)


@pytest.mark.parametrize("backend", BACKENDS)
def test_signatures_are_always_low_s(backend: Backend) -> None:
    rng = random.Random(62)
    private = PrivateKey.generate(rng.randbytes)
    for _ in range(32):
        r, s = scalars(private.sign(rng.randbytes(32), backend))
        assert 1 <= r < CURVE_ORDER
        assert 1 <= s <= HALF_ORDER


@pytest.mark.parametrize("backend", BACKENDS)
def test_high_s_twin_is_rejected(backend: Backend) -> None:
    """(r, n - s) is the same signature mathematically; accepting it would make txids malleable."""
    private = PrivateKey.from_seed(b"malleability")
    digest = digest_of("spend")
    signature = private.sign(digest, backend)
    r, s = scalars(signature)
    twin = pack(r, CURVE_ORDER - s)
    assert verify(private.public_key, digest, signature, backend)
    assert not verify(private.public_key, digest, twin, backend)


# -- malformed input is simply invalid

ALICE = PrivateKey.from_seed(b"alice")
DIGEST = digest_of("alice pays bob")
GOOD_SIG = ALICE.sign(DIGEST)
GOOD_R, GOOD_S = scalars(GOOD_SIG)


def _x_only(x: int, prefix: int = 2) -> bytes:
    return bytes([prefix]) + x.to_bytes(32, "big")


def _smallest_x_off_curve() -> int:
    # x is on secp256k1 iff x^3 + 7 is a square mod p (Euler's criterion).
    return next(x for x in range(1, 100) if pow(x**3 + 7, (FIELD_PRIME - 1) // 2, FIELD_PRIME) != 1)


def _uncompressed(pubkey: bytes) -> bytes:
    """The 65-byte 0x04 || x || y form of a compressed key (p = 3 mod 4, so y is one power)."""
    x = int.from_bytes(pubkey[1:], "big")
    y = pow(x**3 + 7, (FIELD_PRIME + 1) // 4, FIELD_PRIME)
    if y % 2 != pubkey[0] % 2:
        y = FIELD_PRIME - y
    return b"\x04" + x.to_bytes(32, "big") + y.to_bytes(32, "big")


MALFORMED_SIGNATURES = {
    "empty": b"",
    "63 bytes": GOOD_SIG[:-1],
    "65 bytes": GOOD_SIG + b"\x00",
    "DER instead of compact": b"\x30\x44\x02\x20" + GOOD_SIG[:32] + b"\x02\x20" + GOOD_SIG[32:],
    "r zero": pack(0, GOOD_S),
    "s zero": pack(GOOD_R, 0),
    "r equals n": pack(CURVE_ORDER, GOOD_S),
    "s equals n": pack(GOOD_R, CURVE_ORDER),
    "r above n": pack(CURVE_ORDER + 1, GOOD_S),
    "s above n": pack(GOOD_R, CURVE_ORDER + 1),
    "s = n/2 + 1, the smallest high s": pack(GOOD_R, HALF_ORDER + 1),
    "all ones": b"\xff" * 64,
    "all zeros": bytes(64),
    "r and s swapped": pack(GOOD_S, GOOD_R),
    "one bit flipped": bytes([GOOD_SIG[0] ^ 1]) + GOOD_SIG[1:],
}

MALFORMED_PUBKEYS = {
    "empty": b"",
    "x only, no prefix": ALICE.public_key[1:],
    "34 bytes": ALICE.public_key + b"\x00",
    "uncompressed 65-byte form of a valid key": _uncompressed(ALICE.public_key),
    "prefix 0x04 on 33 bytes": b"\x04" + ALICE.public_key[1:],
    "prefix 0x00": b"\x00" + ALICE.public_key[1:],
    "x = 0": _x_only(0),
    "x not on the curve": _x_only(_smallest_x_off_curve()),
    "x = p": _x_only(FIELD_PRIME),
    "x = p + 1 (1 is on the curve)": _x_only(FIELD_PRIME + 1),
    "x = 2^256 - 1": b"\x02" + b"\xff" * 32,
}

MALFORMED_DIGESTS = {
    "empty": b"",
    "31 bytes": DIGEST[:-1],
    "33 bytes": DIGEST + b"\x00",
}


def test_catalogue_starts_from_a_valid_signature() -> None:
    """Every malformed case below is a single fault away from this."""
    for backend in available_backends():
        assert verify(ALICE.public_key, DIGEST, GOOD_SIG, backend)
        assert is_valid_pubkey(ALICE.public_key, backend)
    # The uncompressed case is the same point, refused only for its encoding.
    full = MALFORMED_PUBKEYS["uncompressed 65-byte form of a valid key"]
    x, y = int.from_bytes(full[1:33], "big"), int.from_bytes(full[33:], "big")
    assert (y * y - x**3 - 7) % FIELD_PRIME == 0
    assert full[1:33] == ALICE.public_key[1:]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("signature", MALFORMED_SIGNATURES.values(), ids=MALFORMED_SIGNATURES)
def test_malformed_signature_is_invalid(backend: Backend, signature: bytes) -> None:
    assert verify(ALICE.public_key, DIGEST, signature, backend) is False


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("pubkey", MALFORMED_PUBKEYS.values(), ids=MALFORMED_PUBKEYS)
def test_malformed_pubkey_is_invalid(backend: Backend, pubkey: bytes) -> None:
    assert is_valid_pubkey(pubkey, backend) is False
    assert verify(pubkey, DIGEST, GOOD_SIG, backend) is False


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("digest", MALFORMED_DIGESTS.values(), ids=MALFORMED_DIGESTS)
def test_malformed_digest_is_invalid(backend: Backend, digest: bytes) -> None:
    assert verify(ALICE.public_key, digest, GOOD_SIG, backend) is False


def test_verify_refuses_text_as_a_programming_error() -> None:
    with pytest.raises(TypeError):
        verify(ALICE.public_key.hex(), DIGEST, GOOD_SIG)  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(
    pubkey=st.binary(max_size=70), digest=st.binary(max_size=40), signature=st.binary(max_size=70)
)
def test_verify_never_raises_on_arbitrary_bytes(
    pubkey: bytes, digest: bytes, signature: bytes
) -> None:
    results = {verify(pubkey, digest, signature, backend) for backend in available_backends()}
    assert results == {False}  # and a random forgery does not verify


@BOTH
@settings(max_examples=100, deadline=None)
@given(
    prefix=st.sampled_from([2, 3]),
    x=st.binary(min_size=32, max_size=32),
    r=st.integers(min_value=0, max_value=2**256 - 1),
    s=st.integers(min_value=0, max_value=2**256 - 1),
)
def test_backends_agree_on_well_shaped_inputs(prefix: int, x: bytes, r: int, s: int) -> None:
    """Right lengths, arbitrary values: the shape checks pass, so the libraries decide."""
    pubkey = bytes([prefix]) + x
    assert is_valid_pubkey(pubkey, Backend.COINCURVE) == is_valid_pubkey(pubkey, Backend.ECDSA)
    signature = pack(r, s)
    assert not verify(pubkey, DIGEST, signature, Backend.COINCURVE)
    assert not verify(pubkey, DIGEST, signature, Backend.ECDSA)


# -- private keys


@pytest.mark.parametrize(
    ("secret", "fragment"),
    [
        pytest.param(bytes(32), "from 1 to n - 1", id="zero"),
        pytest.param(CURVE_ORDER.to_bytes(32, "big"), "from 1 to n - 1", id="n"),
        pytest.param(b"\xff" * 32, "from 1 to n - 1", id="above n"),
        pytest.param(b"\x01" * 31, "32 bytes, got 31", id="31 bytes"),
        pytest.param(b"\x01" * 33, "32 bytes, got 33", id="33 bytes"),
    ],
)
def test_private_key_out_of_range_is_refused(secret: bytes, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        PrivateKey(secret)


def test_private_key_extremes_are_accepted() -> None:
    assert key(1).secret == (1).to_bytes(32, "big")
    assert key(CURVE_ORDER - 1).secret == (CURVE_ORDER - 1).to_bytes(32, "big")


def test_repr_shows_the_public_key_not_the_secret() -> None:
    private = PrivateKey.from_seed(b"secretive")
    text = repr(private)
    assert private.secret.hex() not in text
    assert private.public_key.hex() in text
    assert str(private) == text


def test_keys_compare_and_hash_by_secret() -> None:
    assert PrivateKey.from_seed(b"x") == PrivateKey.from_seed(b"x")
    assert PrivateKey.from_seed(b"x") != PrivateKey.from_seed(b"y")
    assert len({PrivateKey.from_seed(b"x"), PrivateKey.from_seed(b"x")}) == 1


def test_generate_uses_only_the_injected_randomness() -> None:
    assert PrivateKey.generate(random.Random(7).randbytes) == PrivateKey.generate(
        random.Random(7).randbytes
    )
    assert PrivateKey.generate(random.Random(7).randbytes) != PrivateKey.generate(
        random.Random(8).randbytes
    )


def test_generate_retries_out_of_range_draws() -> None:
    draws = iter([bytes(32), CURVE_ORDER.to_bytes(32, "big"), b"\xff" * 32, b"\x2a" * 32])
    assert PrivateKey.generate(lambda size: next(draws)).secret == b"\x2a" * 32


def test_generate_gives_up_on_a_broken_source() -> None:
    with pytest.raises(InternalError, match="broken"):
        PrivateKey.generate(bytes)  # bytes(32) is 32 zeros, every time


def test_generate_refuses_a_source_returning_the_wrong_size() -> None:
    with pytest.raises(ValueError, match="returned 16 bytes"):
        PrivateKey.generate(lambda size: b"\x01" * 16)


def test_from_seed_follows_the_documented_derivation() -> None:
    tag = b"forklab/private-key-from-seed/v1"
    expected = hashlib.sha256(tag + (0).to_bytes(4, "big") + b"alice").digest()
    assert PrivateKey.from_seed(b"alice").secret == expected
    assert PrivateKey.from_seed(b"alice") == PrivateKey.from_seed(b"alice")
    assert PrivateKey.from_seed(b"alice") != PrivateKey.from_seed(b"bob")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("size", [0, 20, 31, 33, 64])
def test_only_32_byte_digests_are_signed(backend: Backend, size: int) -> None:
    with pytest.raises(ValueError, match="32-byte digest"):
        ALICE.sign(b"\x01" * size, backend)


# -- backend selection


def test_best_backend_prefers_libsecp256k1() -> None:
    assert best_backend() is available_backends()[0]
    if Backend.COINCURVE in available_backends():
        assert best_backend() is Backend.COINCURVE


def test_public_key_cache_is_bounded() -> None:
    assert crypto.PUBKEY_CACHE_SIZE > 0
    for parse in (crypto._coincurve_parse_pubkey, crypto._ecdsa_parse_pubkey):
        assert parse.cache_info().maxsize == crypto.PUBKEY_CACHE_SIZE


def _run_without_coincurve(body: str) -> subprocess.CompletedProcess[str]:
    """Run ``body`` in a fresh interpreter where ``import coincurve`` fails, as if absent."""
    script = "import sys\nsys.modules['coincurve'] = None\n" + textwrap.dedent(body)
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_falls_back_to_pure_python_without_coincurve() -> None:
    result = _run_without_coincurve(
        """
        from node.core.crypto import Backend, PrivateKey, best_backend, verify
        assert best_backend() is Backend.ECDSA, best_backend()
        private = PrivateKey((1).to_bytes(32, "big"))
        assert private.public_key.hex().startswith("0279be667ef9dcbbac55a062"), private
        signature = private.sign(bytes(range(32)))
        assert verify(private.public_key, bytes(range(32)), signature)
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_asking_for_a_missing_backend_says_so() -> None:
    result = _run_without_coincurve(
        """
        from node.core.crypto import Backend, PrivateKey
        from node.core.errors import InternalError
        try:
            PrivateKey((1).to_bytes(32, "big")).sign(bytes(32), Backend.COINCURVE)
        except InternalError as exc:
            print(exc)
        """
    )
    assert result.returncode == 0, result.stderr
    assert "coincurve backend is unavailable" in result.stdout
