"""The per-peer inventory filter (:mod:`node.p2p.known`): what it must remember, may forget,
and must not invent.

* It always remembers at least the last ``capacity`` distinct items added, in any order, with
  any repeats (a property, over arbitrary hashes, including ones that share their first bytes).
* It forgets: items older than one and a half times its capacity are gone, so its size is
  bounded however long the peer stays.
* It does not invent: hashes never added are not found (their first 8 bytes differ).
* It stays small: a full filter holds a few hundred kilobytes of slots, and a fresh one almost
  nothing, however many peers there are.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.p2p.known import InventoryFilter
from node.p2p.peer import KNOWN_INVENTORY


def item(n: int) -> bytes:
    """A distinct 32-byte hash per ``n`` (its first 8 bytes are ``n``)."""
    return n.to_bytes(8, "little") + bytes(range(24))


hashes = st.one_of(
    st.binary(min_size=32, max_size=32),
    # Few distinct first bytes, so probing, key 0 and repeats are all exercised.
    st.integers(0, 40).map(item),
)


@settings(max_examples=100, deadline=None)
@given(capacity=st.integers(2, 40), added=st.lists(hashes, max_size=200), salt=st.integers(0))
def test_the_last_capacity_distinct_items_are_always_remembered(
    capacity: int, added: list[bytes], salt: int
) -> None:
    known = InventoryFilter(capacity, salt)
    for h in added:
        known.add(h)
    recent = list(dict.fromkeys(reversed(added)))[:capacity]
    assert all(h in known for h in recent)


def test_old_items_are_forgotten_a_generation_at_a_time() -> None:
    known = InventoryFilter(1000, 7)
    for n in range(1, 1501):
        known.add(item(n))
    assert all(item(n) in known for n in range(1, 1501)), "three generations hold 1,500"
    known.add(item(1501))
    assert all(item(n) not in known for n in range(1, 501)), "the oldest generation went"
    assert all(item(n) in known for n in range(501, 1502))


def test_hashes_never_added_are_not_found() -> None:
    rng = random.Random(3)
    known = InventoryFilter(KNOWN_INVENTORY, rng.getrandbits(64))
    added = [rng.randbytes(32) for _ in range(KNOWN_INVENTORY)]
    for h in added:
        known.add(h)
    assert all(h in known for h in added)
    assert not any(rng.randbytes(32) in known for _ in range(50_000))
    assert b"short" not in known and None not in known


def test_a_full_filter_is_small_and_a_fresh_one_smaller() -> None:
    rng = random.Random(4)
    known = InventoryFilter(KNOWN_INVENTORY, 1)
    fresh = known.nbytes
    for _ in range(KNOWN_INVENTORY * 3):
        known.add(rng.randbytes(32))
    assert fresh <= 1024
    # Three generations of half the capacity, each at most 5/8 full, 8 bytes a slot.
    assert known.nbytes <= 3 * 8 * 2 ** (KNOWN_INVENTORY // 2 * 8 // 5).bit_length()
    assert known.nbytes < 400_000


def test_a_filter_needs_room_for_two_items() -> None:
    with pytest.raises(ValueError):
        InventoryFilter(1, 0)
