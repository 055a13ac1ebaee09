"""Specification of the host-side SHA-256 the nonce search starts from.

``hashlib`` does not expose its internal state, so the miner computes the midstate (the state
after a header's first 64 bytes) with its own SHA-256 compression. These cases pin it to
``hashlib``: finishing a hash from the midstate must give hashlib's digest for any header, and
the folded per-header constants must not depend on the nonce the header happens to carry.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

import kernels
from miner.midstate import HEADER_SIZE, IV, SearchWork, compress, midstate

headers = st.binary(min_size=HEADER_SIZE, max_size=HEADER_SIZE)


def finish(state: tuple[int, ...], tail: bytes, total_length: int) -> bytes:
    """SHA-256 from an intermediate state over the message's last block (FIPS 180-4 padding)."""
    padded = tail + b"\x80" + bytes((55 - len(tail)) % 64) + struct.pack(">Q", total_length * 8)
    for offset in range(0, len(padded), 64):
        state = compress(state, padded[offset : offset + 64])  # type: ignore[arg-type]
    return struct.pack(">8I", *state)


def test_compressing_the_padded_empty_message_gives_the_known_digest() -> None:
    empty = finish(IV, b"", 0)
    assert empty.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


@given(headers)
def test_a_header_hash_finished_from_its_midstate_is_hashlibs(header: bytes) -> None:
    assert finish(midstate(header), header[64:], HEADER_SIZE) == hashlib.sha256(header).digest()


@given(st.binary(min_size=0, max_size=200))
def test_compress_agrees_with_hashlib_on_messages_of_any_length(message: bytes) -> None:
    whole = len(message) // 64 * 64
    state = IV
    for offset in range(0, whole, 64):
        state = compress(state, message[offset : offset + 64])
    assert finish(state, message[whole:], len(message)) == hashlib.sha256(message).digest()


@given(headers, st.integers(0, 2**32 - 1))
def test_the_folded_constants_ignore_the_headers_own_nonce(header: bytes, nonce: int) -> None:
    other = header[:76] + nonce.to_bytes(4, "little")
    assert SearchWork.from_header(other) == SearchWork.from_header(header)


def test_the_folded_constants_change_with_every_fixed_field() -> None:
    base = bytes(range(HEADER_SIZE))
    work = SearchWork.from_header(base)
    for offset in (0, 40, 64, 68, 72):  # version, merkle root (both blocks), time, bits
        changed = bytearray(base)
        changed[offset] ^= 1
        assert SearchWork.from_header(bytes(changed)) != work, offset


def test_kernel_arguments_match_the_kernels_parameters_name_for_name() -> None:
    source = re.sub(r"/\*.*?\*/", "", kernels.source("sha256d.cl"), flags=re.S)
    signature = re.search(r"__kernel void search\((.*?)\)", source, re.S)
    assert signature is not None
    parameters = re.findall(r"(\w+)\s*(?:,|$)", signature.group(1).strip())
    # found buffer, first nonce and target word come first; then one word per SearchWork value
    assert parameters[:3] == ["found", "base", "target_top"]
    expected: list[str] = []
    for field in dataclasses.fields(SearchWork):
        if field.name == "midstate":
            expected += [f"m{i}" for i in range(8)]
        elif field.name == "state2":
            expected += [f"{letter}2" for letter in "abcdefgh"]
        else:
            expected.append(field.name)
    assert parameters[3:] == expected
    work = SearchWork.from_header(bytes(range(HEADER_SIZE)))
    assert len(work.kernel_args()) == len(expected)
    assert all(0 <= value < 2**32 for value in work.kernel_args())


@pytest.mark.parametrize("size", [0, 79, 81])
def test_only_80_byte_headers_are_accepted(size: int) -> None:
    with pytest.raises(ValueError, match="80 bytes"):
        SearchWork.from_header(bytes(size))
