"""Specification of the nonce-search backends: every nonce that meets the target, and no other.

Each case is answered three ways and the answers must agree: by a brute-force reference written
here (``sha256d`` of every nonce in the range), by the CPU backend, and by the OpenCL kernel
(on PoCL in CI). The catalogue:

* real Bitcoin headers (genesis, blocks 1 and 100,000, the Bitcoin developer reference's
  example header): searching a window around the real nonce finds exactly that nonce;
* seeded random headers and targets, from impossible to "every nonce";
* easy targets with many hits (regtest's 0x207fffff, the maximum target), across several
  kernel launches, so that result reporting cannot lose hits;
* the edges: a target equal to a hash (``<=``, not ``<``), a hash one above it (same top
  word, so the kernel reports it and the host must refuse it), ranges that end exactly at
  2^32, ranges not aligned to vectors or launches, empty ranges;
* every vector width and both spellings of the bit operations;
* the host re-check: a backend that reports wrong nonces gets them filtered and counted.

Set ``FORKLAB_REQUIRE_OPENCL=1`` (as CI does) to fail instead of skip where OpenCL is missing.
"""

from __future__ import annotations

import os
import random
import struct
from collections.abc import Iterable, Iterator

import pytest

from miner import NONCE_SPACE, Backend, BackendUnavailableError, CpuBackend, Found, KernelConfig
from miner.opencl_backend import OpenCLBackend
from node.core.hashing import hash_from_hex, sha256d
from node.core.header import BlockHeader, bits_to_target

MAX_TARGET = 2**256 - 1
REGTEST_BITS = 0x207FFFFF

# A small launch (1024 work-items x 16 lanes) makes modest ranges span several launches.
TEST_CONFIG = KernelConfig(vector=16, local_size=256, global_size=1024)


def with_nonce(header: bytes, nonce: int) -> bytes:
    return header[:76] + struct.pack("<I", nonce)


def reference(header: bytes, target: int, start: int, count: int) -> list[Found]:
    """The specification itself: hash every nonce, keep those at or below the target."""
    found = []
    for nonce in range(start, start + count):
        digest = sha256d(with_nonce(header, nonce))
        if int.from_bytes(digest, "little") <= target:
            found.append(Found(nonce, digest))
    return found


def open_opencl(config: KernelConfig = TEST_CONFIG) -> OpenCLBackend:
    try:
        return OpenCLBackend(config=config)
    except BackendUnavailableError as exc:
        if os.environ.get("FORKLAB_REQUIRE_OPENCL"):
            pytest.fail(f"OpenCL is required here but not usable: {exc}")
        pytest.skip(f"no usable OpenCL here: {exc}")


@pytest.fixture(scope="module")
def opencl() -> Iterator[OpenCLBackend]:
    with open_opencl() as backend:
        yield backend


@pytest.fixture(scope="module")
def cpu() -> Iterator[CpuBackend]:
    with CpuBackend(threads=2) as backend:
        yield backend


@pytest.fixture(params=["cpu", pytest.param("opencl", marks=pytest.mark.opencl)])
def backend(request: pytest.FixtureRequest) -> Backend:
    return request.getfixturevalue(request.param)  # type: ignore[no-any-return]


# -- real Bitcoin headers


def bitcoin_header(prev: str, merkle: str, time: int, bits: int, nonce: int) -> bytes:
    return BlockHeader(1, hash_from_hex(prev), hash_from_hex(merkle), time, bits, nonce).serialize()


REAL_HEADERS = {
    "genesis": (
        bitcoin_header(
            "00" * 32,
            "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b",
            1231006505,
            0x1D00FFFF,
            2083236893,
        ),
        "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f",
    ),
    "block 1": (
        bitcoin_header(
            "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f",
            "0e3e2357e806b6cdb1f70b54c3a3a17b6714ee1f0e68bebb44a74b1efd512098",
            1231469665,
            0x1D00FFFF,
            2573394689,
        ),
        "00000000839a8e6886ab5951d76f411475428afc90947ee320161bbf18eb6048",
    ),
    "block 100000": (
        bitcoin_header(
            "000000000002d01c1fccc21636b607dfd930d31d01c3a62104612a1719011250",
            "f3e94742aca4b5ef85488dc37c06c3282295ffec960994b2c0d5ac2a25a95766",
            1293623863,
            0x1B04864C,
            274148111,
        ),
        "000000000003ba27aa200b1cecaad478d2b00432346c3f1f3986da1afd33e506",
    ),
    # The example header of the Bitcoin developer reference (a version-2 block of 2014);
    # its target is about 4e10 times harder than difficulty 1.
    "developer reference": (
        bytes.fromhex(
            "02000000b6ff0b1b1680a2862a30ca44d346d9e8910d334beb48ca0c0000000000000000"
            "9d10aa52ee949386ca9385695f04ede270dda20810decd12bc9b048aaab3147124d95a54"
            "30c31b18fe9f0864"
        ),
        "000000000000000009a11b3972c8e532fe964de937c9e0096b43814e67af3728",
    ),
}


@pytest.mark.parametrize("name", REAL_HEADERS)
def test_real_headers_hash_to_their_known_ids(name: str) -> None:
    header, block_id = REAL_HEADERS[name]
    decoded = BlockHeader.deserialize(header)
    assert decoded.hash_hex == block_id
    assert int.from_bytes(decoded.hash, "little") <= bits_to_target(decoded.bits)


@pytest.mark.parametrize("name", REAL_HEADERS)
def test_a_window_around_a_real_nonce_holds_exactly_that_nonce(backend: Backend, name: str) -> None:
    header, block_id = REAL_HEADERS[name]
    decoded = BlockHeader.deserialize(header)
    start = max(0, decoded.nonce - 2**16)
    # The header's own nonce field is ignored; zero it to show that.
    found = backend.search(with_nonce(header, 0), bits_to_target(decoded.bits), start, 2**17)
    assert [(f.nonce, f.hash_hex) for f in found] == [(decoded.nonce, block_id)]


# -- random headers and targets


def random_cases(seed: int, n: int) -> Iterable[tuple[bytes, int, int, int]]:
    rng = random.Random(seed)
    for _ in range(n):
        header = rng.randbytes(80)
        # From about every nonce (shift 0) to about one in 2^14 (shift 14).
        target = rng.getrandbits(256) >> rng.choice([0, 1, 2, 4, 8, 14])
        count = rng.randrange(1, 6000)
        start = rng.randrange(0, NONCE_SPACE - count + 1)
        yield header, target, start, count


@pytest.mark.parametrize(("header", "target", "start", "count"), list(random_cases(2024, 12)))
def test_random_headers_and_targets_agree_with_the_reference(
    backend: Backend, header: bytes, target: int, start: int, count: int
) -> None:
    assert backend.search(header, target, start, count) == reference(header, target, start, count)


# -- easy targets: many hits, over several launches


@pytest.mark.parametrize(
    ("target", "start", "count"),
    [
        pytest.param(bits_to_target(REGTEST_BITS), 1000, 40_000, id="regtest-about-half"),
        pytest.param(MAX_TARGET, 5, 3 * 16384 + 77, id="max-target-every-nonce"),
    ],
)
def test_easy_targets_report_every_hit(
    backend: Backend, target: int, start: int, count: int
) -> None:
    header = bytes(range(80))
    found = backend.search(header, target, start, count)
    assert found == reference(header, target, start, count)
    if target == MAX_TARGET:
        assert [f.nonce for f in found] == list(range(start, start + count))
    assert backend.hardware_errors == 0


def test_an_impossible_target_finds_nothing(backend: Backend) -> None:
    assert backend.search(bytes(80), 0, 0, 50_000) == []


# -- edges


def test_a_hash_equal_to_the_target_meets_it_and_one_above_does_not(backend: Backend) -> None:
    header = bytes.fromhex("ab" * 80)
    nonce = 123_456
    value = int.from_bytes(sha256d(with_nonce(header, nonce)), "little")
    window = (nonce - 50, 100)
    assert nonce in [f.nonce for f in backend.search(header, value, *window)]
    # Same top 32 bits (the kernel's early-reject word), so this is the host's call to make.
    assert nonce not in [f.nonce for f in backend.search(header, value - 1, *window)]
    assert backend.hardware_errors == 0


@pytest.mark.parametrize(
    ("start", "count"),
    [
        pytest.param(NONCE_SPACE - 100, 100, id="ends-at-2^32"),
        pytest.param(NONCE_SPACE - 1, 1, id="the-last-nonce"),
        pytest.param(NONCE_SPACE - 16384 - 3, 16384 + 3, id="last-launch-partial"),
        pytest.param(0, 1, id="the-first-nonce"),
        pytest.param(7, 16384 * 2 + 9, id="unaligned"),
    ],
)
def test_ranges_at_the_edges_of_the_nonce_space(backend: Backend, start: int, count: int) -> None:
    # At the maximum target every nonce hits, so lanes past the range's end (which the kernel
    # computes, wrapping to nonce 0 past 2^32) would show up if they were not dropped.
    found = backend.search(bytes(80), MAX_TARGET, start, count)
    assert [f.nonce for f in found] == list(range(start, start + count))
    assert backend.hardware_errors == 0


def test_an_empty_range_finds_nothing(backend: Backend) -> None:
    assert backend.search(bytes(80), MAX_TARGET, 1234, 0) == []


INVALID_SEARCHES = {
    "short header": ((bytes(79), 1, 0, 1), "80 bytes"),
    "long header": ((bytes(81), 1, 0, 1), "80 bytes"),
    "negative target": ((bytes(80), -1, 0, 1), "target"),
    "target of 2^256": ((bytes(80), 2**256, 0, 1), "target"),
    "negative start": ((bytes(80), 1, -1, 1), "negative"),
    "negative count": ((bytes(80), 1, 0, -1), "negative"),
    "past 2^32": ((bytes(80), 1, NONCE_SPACE - 1, 2), "exceeds 2\\^32"),
    "starting at 2^32": ((bytes(80), 1, NONCE_SPACE, 1), "exceeds 2\\^32"),
}


@pytest.mark.parametrize("case", INVALID_SEARCHES)
def test_invalid_searches_are_refused_with_the_reason(backend: Backend, case: str) -> None:
    (header, target, start, count), message = INVALID_SEARCHES[case]
    with pytest.raises(ValueError, match=message):
        backend.search(header, target, start, count)


# -- every kernel build


@pytest.mark.opencl
@pytest.mark.parametrize(
    "config",
    [
        KernelConfig(vector, 256, 256, portable_ops)
        for vector, portable_ops in [(1, False), (2, False), (4, False), (8, False), (16, True)]
    ],
    ids=lambda c: f"vector{c.vector}{'-portable' if c.portable_ops else ''}",
)
def test_every_vector_width_and_spelling_finds_the_same_nonces(config: KernelConfig) -> None:
    genesis, _ = REAL_HEADERS["genesis"]
    with open_opencl(config) as backend:
        assert [f.nonce for f in backend.search(genesis, 2**224, 2083236893 - 999, 2000)] == [
            2083236893
        ]
        header = bytes(range(1, 81))
        target = bits_to_target(REGTEST_BITS)
        count = 3 * config.nonces_per_launch + 5
        assert backend.search(header, target, 11, count) == reference(header, target, 11, count)


# -- the host re-check


class MisreportingBackend(Backend):
    """Reports the candidates it is given, right or wrong, as a faulty device would."""

    name = "misreporting"

    def __init__(self, reports: list[int]) -> None:
        super().__init__()
        self.reports = reports

    @property
    def device(self) -> str:
        return "a faulty device"

    @property
    def preferred_count(self) -> int:
        return 1000

    def _candidates(self, header: bytes, target: int, start: int, count: int) -> list[int]:
        return self.reports

    def close(self) -> None:
        pass


def test_the_host_keeps_only_reported_nonces_that_meet_the_target() -> None:
    header = bytes(range(80))
    start, count = 10_000, 2_000
    true_hits = reference(header, 2**250, start, count)
    assert true_hits, "the case needs at least one real hit"
    near = min(
        (n for n in range(start, start + count) if n not in {f.nonce for f in true_hits}),
        key=lambda n: int.from_bytes(sha256d(with_nonce(header, n)), "little") >> 224,
    )
    near_value = int.from_bytes(sha256d(with_nonce(header, near)), "little")
    # A target one below a hash: that nonce is a near miss (same top word), not a fault.
    target = near_value - 1
    expected = reference(header, target, start, count)
    wrong_far = next(
        n
        for n in range(start, start + count)
        if int.from_bytes(sha256d(with_nonce(header, n)), "little") >> 224 > target >> 224
    )
    reports = [f.nonce for f in expected] + [near, wrong_far, start + count, start - 1]
    backend = MisreportingBackend(reports)
    assert backend.search(header, target, start, count) == expected
    # Outside the range (2) and far above the target (1) are faults; the near miss is not.
    assert backend.hardware_errors == 3
