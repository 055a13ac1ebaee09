"""Specification of block headers, compact targets, work, retargeting and the coin supply.

The header layout is Bitcoin's, so Bitcoin's own blocks are the test vectors: the genesis
header and blocks 1 and 2 must hash to their well-known ids, and Bitcoin Core's known answers
for the compact format (``arith_uint256_tests``) and for retargeting (``pow_tests``) must come
out the same here. Then the presets: each genesis block meets its own proof of work, regtest
never retargets, and the subsidy schedule adds up to Bitcoin's famous total.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.core.errors import DecodeError, ErrorCode, RuleError
from node.core.hashing import hash_from_hex
from node.core.header import (
    HEADER_SIZE,
    BlockHeader,
    bits_to_target,
    block_work,
    check_proof_of_work,
    difficulty,
    hash_meets_target,
    target_to_bits,
)
from node.core.params import DEMO, MAIN, PRESETS, REGTEST, NetworkParams, params_for
from node.core.tx import COIN

# -- Bitcoin's first blocks

BITCOIN_GENESIS_RAW = bytes.fromhex(
    "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b27ac7"
    "2c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d1dac2b7c"
)
BITCOIN_GENESIS_ID = "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f"

# (id, merkle root, time, nonce) of Bitcoin blocks 1 and 2; version 1, bits 0x1d00ffff.
BITCOIN_BLOCKS = [
    (
        "00000000839a8e6886ab5951d76f411475428afc90947ee320161bbf18eb6048",
        "0e3e2357e806b6cdb1f70b54c3a3a17b6714ee1f0e68bebb44a74b1efd512098",
        1231469665,
        2573394689,
    ),
    (
        "000000006a625f06636b8bb6ac7b960a8d03705d1ace08b1a19da3fdcc99ddbd",
        "9b0fc92260312ce44e74ef369f5c66bbb85848f2eddd5a7a1cde251e54ccfdd5",
        1231469744,
        1639830024,
    ),
]


def test_bitcoin_genesis_header_hashes_to_its_known_id() -> None:
    header = BlockHeader.deserialize(BITCOIN_GENESIS_RAW)
    assert header.hash_hex == BITCOIN_GENESIS_ID
    assert header.version == 1
    assert header.prev_hash == bytes(32)
    assert header.time == 1231006505
    assert header.bits == 0x1D00FFFF
    assert header.nonce == 2083236893
    assert header.serialize() == BITCOIN_GENESIS_RAW
    check_proof_of_work(header, MAIN.pow_limit)


def test_bitcoin_blocks_1_and_2_chain_onto_genesis_with_their_known_ids() -> None:
    parent = BlockHeader.deserialize(BITCOIN_GENESIS_RAW)
    for block_id, merkle_hex, time, nonce in BITCOIN_BLOCKS:
        header = BlockHeader(1, parent.hash, hash_from_hex(merkle_hex), time, 0x1D00FFFF, nonce)
        assert header.hash_hex == block_id
        check_proof_of_work(header, MAIN.pow_limit)
        parent = header


def test_a_changed_nonce_fails_bitcoins_proof_of_work() -> None:
    header = BlockHeader.deserialize(BITCOIN_GENESIS_RAW)
    with pytest.raises(RuleError) as caught:
        check_proof_of_work(header.with_nonce(header.nonce + 1), MAIN.pow_limit)
    assert caught.value.code is ErrorCode.HIGH_HASH


@pytest.mark.parametrize(
    "bits", [0x2100FFFF, 0x1D01FFFF, 0x1E00FFFF, 0x04923456, 0x00000000, 0xFF123456]
)
def test_bits_easier_than_the_pow_limit_or_invalid_are_refused(bits: int) -> None:
    # Even a hash of zero, which meets any real target, cannot save an out-of-range target.
    header = BlockHeader(1, bytes(32), bytes(32), 0, bits, 0)
    with pytest.raises(RuleError) as caught:
        check_proof_of_work(header, MAIN.pow_limit)
    assert caught.value.code is ErrorCode.BAD_DIFFBITS


def test_header_hash_meets_target_is_inclusive() -> None:
    digest = (1234).to_bytes(32, "little")
    assert hash_meets_target(digest, 1234)
    assert not hash_meets_target(digest, 1233)


headers = st.builds(
    BlockHeader,
    version=st.integers(0, 2**32 - 1),
    prev_hash=st.binary(min_size=32, max_size=32),
    merkle_root=st.binary(min_size=32, max_size=32),
    time=st.integers(0, 2**32 - 1),
    bits=st.integers(0, 2**32 - 1),
    nonce=st.integers(0, 2**32 - 1),
)


@given(headers)
def test_header_round_trips_through_its_80_bytes(header: BlockHeader) -> None:
    data = header.serialize()
    assert len(data) == HEADER_SIZE
    assert BlockHeader.deserialize(data) == header
    assert BlockHeader.deserialize(data).hash == header.hash


@given(st.binary(max_size=200).filter(lambda b: len(b) != HEADER_SIZE))
def test_header_of_any_other_length_is_a_decode_error(data: bytes) -> None:
    with pytest.raises(DecodeError):
        BlockHeader.deserialize(data)


@pytest.mark.parametrize("field", ["version", "time", "bits", "nonce"])
@pytest.mark.parametrize("value", [-1, 2**32])
def test_header_fields_must_fit_in_32_bits(field: str, value: int) -> None:
    fields = {"version": 1, "time": 0, "bits": 0, "nonce": 0, field: value}
    with pytest.raises(ValueError, match=field):
        BlockHeader(prev_hash=bytes(32), merkle_root=bytes(32), **fields)


# -- the compact target format

# Bitcoin Core's arith_uint256_tests "bignum_SetCompact": (bits, target, bits re-encoded).
# A zero target stands for "invalid" (negative or overflowing), which no hash can meet.
COMPACT_KNOWN_ANSWERS = [
    (0x00000000, 0, 0x00000000),
    (0x00123456, 0, 0x00000000),
    (0x01003456, 0, 0x00000000),
    (0x02000056, 0, 0x00000000),
    (0x03000000, 0, 0x00000000),
    (0x04000000, 0, 0x00000000),
    (0x00923456, 0, 0x00000000),
    (0x01803456, 0, 0x00000000),
    (0x02800056, 0, 0x00000000),
    (0x03800000, 0, 0x00000000),
    (0x04800000, 0, 0x00000000),
    (0x01123456, 0x12, 0x01120000),
    (0x02123456, 0x1234, 0x02123400),
    (0x03123456, 0x123456, 0x03123456),
    (0x04123456, 0x12345600, 0x04123456),
    (0x05009234, 0x92340000, 0x05009234),
    (0x20123456, 0x123456 << (8 * 29), 0x20123456),
]


@pytest.mark.parametrize(("bits", "target", "canonical"), COMPACT_KNOWN_ANSWERS)
def test_compact_known_answers(bits: int, target: int, canonical: int) -> None:
    assert bits_to_target(bits) == target
    assert target_to_bits(target) == canonical


@pytest.mark.parametrize(
    ("name", "bits"),
    [
        ("sign bit set, exponent 1", 0x01FEDCBA),
        ("sign bit set, exponent 4", 0x04923456),
        ("sign bit set on regtest's limit", 0x20FFFFFF),
        ("overflow: exponent 0xff", 0xFF123456),
        ("overflow: one byte past 256 bits", 0x21010000),
        ("overflow: two mantissa bytes past 256 bits", 0x22000100),
    ],
)
def test_negative_and_overflowing_compact_targets_are_invalid(name: str, bits: int) -> None:
    assert bits_to_target(bits) == 0, name
    assert block_work(bits) == 0, name


def test_largest_exponent_that_fits_256_bits() -> None:
    # 0x20 bytes: the mantissa's top byte lands in bits 248..255, still a 256-bit number.
    assert bits_to_target(0x207FFFFF) == 0x7FFFFF << (8 * 29)
    assert bits_to_target(0x2100FFFF) == 0xFFFF << (8 * 30)
    assert bits_to_target(0x22000001) == 1 << (8 * 31)


def test_a_target_with_the_top_mantissa_bit_moves_a_byte_into_the_exponent() -> None:
    # 0x80 would read as negative in a one-byte mantissa, so it is written 0x02008000.
    assert target_to_bits(0x80) == 0x02008000
    assert bits_to_target(0x02008000) == 0x80


@given(st.integers(1, (1 << 256) - 1))
def test_compact_encoding_rounds_down_and_round_trips(target: int) -> None:
    bits = target_to_bits(target)
    rounded = bits_to_target(bits)
    assert 0 < rounded <= target
    # Only the three most significant bytes survive.
    assert target - rounded < (1 << max(0, target.bit_length() - 16))
    assert target_to_bits(rounded) == bits
    assert not bits & 0x00800000


def test_target_zero_and_negative_encode_as_zero() -> None:
    assert target_to_bits(0) == 0
    assert target_to_bits(-5) == 0


# -- work and difficulty


def test_block_work_is_expected_hashes_per_block() -> None:
    # Bitcoin's chainwork grows by 0x100010001 per difficulty-1 block and by 2 on regtest.
    assert block_work(0x1D00FFFF) == 0x100010001
    assert block_work(0x207FFFFF) == 2
    # A target of 0 can never be met: no work, rather than a division by zero.
    assert block_work(0) == 0


@given(st.integers(0x03000001, 0x207FFFFF).filter(lambda b: bits_to_target(b) > 0))
def test_harder_targets_mean_more_work(bits: int) -> None:
    target = bits_to_target(bits)
    assert block_work(bits) == (1 << 256) // (target + 1)
    assert block_work(bits) >= block_work(0x207FFFFF)


def test_difficulty_is_relative_to_bitcoins_difficulty_one() -> None:
    assert difficulty(0x1D00FFFF) == 1.0
    assert difficulty(0x1C00FFFF) == 256.0
    assert difficulty(0x207FFFFF) == pytest.approx(4.656542373906925e-10)
    assert difficulty(0) == 0.0


# -- retargeting

# Bitcoin Core's pow_tests: (height, parent bits, time of block height-2016, parent's time,
# expected bits). The first is Bitcoin's first real retarget, at block 32256.
RETARGET_KNOWN_ANSWERS = [
    pytest.param(32256, 0x1D00FFFF, 1261130161, 1262152739, 0x1D00D86A, id="block 32256"),
    pytest.param(2016, 0x1D00FFFF, 1231006505, 1233061996, 0x1D00FFFF, id="capped at pow limit"),
    pytest.param(68544, 0x1C05A3F4, 1279008237, 1279297671, 0x1C0168FD, id="clamped to x1/4"),
    pytest.param(46368, 0x1C387F6F, 1263163443, 1269211443, 0x1D00E1FD, id="clamped to x4"),
]


@pytest.mark.parametrize(
    ("height", "parent_bits", "first", "last", "expected"), RETARGET_KNOWN_ANSWERS
)
def test_main_retargets_as_bitcoin_does(
    height: int, parent_bits: int, first: int, last: int, expected: int
) -> None:
    assert MAIN.next_bits(height, parent_bits, first, last) == expected


def test_retarget_clamps_to_a_factor_of_four_both_ways() -> None:
    bits = 0x1B0404C8  # mantissa divisible by 4, so a quarter is exact
    span = MAIN.target_timespan
    for timespan in (span * 4, span * 5, span * 1000):
        assert bits_to_target(MAIN.next_bits(2016, bits, 0, timespan)) == bits_to_target(bits) * 4
    for timespan in (span // 4, span // 5, 1, 0, -span):
        assert bits_to_target(MAIN.next_bits(2016, bits, 0, timespan)) == bits_to_target(bits) // 4


def test_retarget_on_schedule_keeps_the_target() -> None:
    bits = 0x1B0404CB
    assert MAIN.next_bits(4032, bits, 1000, 1000 + MAIN.target_timespan) == bits


def test_retarget_never_exceeds_the_pow_limit() -> None:
    limit_bits = MAIN.pow_limit_bits
    assert MAIN.next_bits(2016, limit_bits, 0, MAIN.target_timespan * 4) == limit_bits
    near_limit = target_to_bits(MAIN.pow_limit // 2)
    assert MAIN.next_bits(2016, near_limit, 0, MAIN.target_timespan * 4) == limit_bits


def test_between_retarget_heights_the_parent_bits_carry_over() -> None:
    for height in (1, 2015, 2017, 4031):
        assert MAIN.next_bits(height, 0x1B0404CB, 0, 1) == 0x1B0404CB
    for height in (1, 11, 13):
        assert DEMO.next_bits(height, 0x1F00FFFF, 0, 1) == 0x1F00FFFF


def test_demo_retargets_every_12_blocks() -> None:
    fast = DEMO.next_bits(12, 0x1F00FFFF, 0, DEMO.target_timespan // 2)
    assert bits_to_target(fast) == bits_to_target(0x1F00FFFF) // 2


@pytest.mark.parametrize("height", [1, 12, 2016, 4032, 150_000])
def test_regtest_never_retargets(height: int) -> None:
    assert REGTEST.retarget_interval == 0
    for timespan in (0, 1, 10**9):
        assert REGTEST.next_bits(height, 0x207FFFFF, 0, timespan) == 0x207FFFFF


# -- presets and their genesis blocks


@pytest.mark.parametrize("params", list(PRESETS.values()), ids=list(PRESETS))
def test_every_preset_genesis_block_meets_its_proof_of_work(params: NetworkParams) -> None:
    genesis = params.genesis
    assert genesis.header.bits == params.genesis_bits
    assert bits_to_target(params.genesis_bits) <= params.pow_limit
    check_proof_of_work(genesis.header, params.pow_limit)
    assert genesis.compute_merkle_root() == (genesis.header.merkle_root, False)
    assert genesis.transactions[0].is_coinbase()
    assert genesis.transactions[0].coinbase_height == 0
    assert params.genesis_message in genesis.transactions[0].inputs[0].signature


def test_presets_are_distinct_networks() -> None:
    assert len({p.genesis_hash for p in PRESETS.values()}) == len(PRESETS)
    assert len({p.address_version for p in PRESETS.values()}) == len(PRESETS)
    assert params_for("regtest") is REGTEST
    with pytest.raises(ValueError, match="demo, main, regtest"):
        params_for("testnet")


def test_regtest_takes_bitcoin_regtests_constants() -> None:
    assert REGTEST.pow_limit_bits == 0x207FFFFF
    assert REGTEST.halving_interval == 150
    assert REGTEST.coinbase_maturity == 100


# -- subsidy and supply


def test_main_subsidy_halves_every_210000_blocks() -> None:
    assert MAIN.subsidy(0) == 50 * COIN
    assert MAIN.subsidy(209_999) == 50 * COIN
    assert MAIN.subsidy(210_000) == 25 * COIN
    assert MAIN.subsidy(420_000) == 1_250_000_000
    assert MAIN.subsidy(630_000) == 625_000_000
    # 50 coins are 5e9 units < 2^33: the 33rd halving is the first to pay nothing.
    assert MAIN.subsidy(32 * 210_000) == 1
    assert MAIN.subsidy(33 * 210_000) == 0
    assert MAIN.subsidy(64 * 210_000) == 0
    assert MAIN.subsidy(10**12) == 0


def test_main_schedule_adds_up_to_bitcoins_total() -> None:
    # Bitcoin's famous 20999999.9769 coins count the genesis block's 50, which can never be
    # spent; the cap on coins that can exist in the UTXO set leaves them out.
    schedule = sum(210_000 * (50 * COIN >> era) for era in range(64))
    assert schedule == 2_099_999_997_690_000
    assert MAIN.supply_cap + MAIN.subsidy(0) == 2_099_999_997_690_000
    assert MAIN.supply_cap < 21_000_000 * COIN


def test_supply_stops_growing_at_the_cap() -> None:
    last_paying = 33 * 210_000 - 1
    assert MAIN.subsidy(last_paying) == 1
    assert MAIN.supply_at(last_paying) == MAIN.supply_cap
    assert MAIN.supply_at(last_paying + 1) == MAIN.supply_cap
    assert MAIN.supply_at(10**9) == MAIN.supply_cap


@pytest.mark.parametrize(
    ("height", "coins_times_10"),
    [
        (0, 0),
        (1, 500),
        (149, 149 * 500),
        (150, 149 * 500 + 250),
        (299, 149 * 500 + 150 * 250),
        (300, 149 * 500 + 150 * 250 + 125),
    ],
)
def test_regtest_supply_at_heights(height: int, coins_times_10: int) -> None:
    assert REGTEST.supply_at(height) == coins_times_10 * COIN // 10


@pytest.mark.parametrize("params", list(PRESETS.values()), ids=list(PRESETS))
def test_supply_is_the_sum_of_subsidies(params: NetworkParams) -> None:
    interval = params.halving_interval
    for height in (interval - 1, interval, interval + 1, 3 * interval + 7):
        assert params.supply_at(height) == sum(params.subsidy(h) for h in range(1, height + 1))
