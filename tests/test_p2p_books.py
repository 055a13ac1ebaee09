"""The P2P layer's small bookkeepers, each a pure object: the address book (bans, backoff,
bounds), the orphan pool (bounds, expiry, lookup by parent), the token bucket behind every
rate limit, and the link policy."""

from __future__ import annotations

import random

from blocktools import ChainBuilder, outputs_of, split

from node.core.tx import Transaction
from node.p2p.addrbook import MAX_BANS, AddressBook, ban_key
from node.p2p.links import LinkPolicy
from node.p2p.orphans import OrphanPool
from node.p2p.peer import TokenBucket

# -- address book


def test_bans_are_by_host_except_on_loopback() -> None:
    assert ban_key("10.1.2.3:8444") == "10.1.2.3"
    assert ban_key("[2001:db8::1]:8444") == "2001:db8::1"
    assert ban_key("127.0.0.1:8444") == "127.0.0.1:8444"
    assert ban_key("localhost:8444") == "localhost:8444"
    assert ban_key("alice") == "alice"  # in-memory names


def test_a_ban_covers_every_port_of_a_host_and_expires() -> None:
    book = AddressBook(random.Random(1))
    book.ban("10.1.2.3:8444", until=100.0)
    assert book.is_banned("10.1.2.3:9999", now=50.0)
    assert not book.is_banned("10.1.2.4:8444", now=50.0)
    assert book.bans(now=50.0) == {"10.1.2.3": 50.0}
    assert not book.is_banned("10.1.2.3:8444", now=100.0)
    assert book.bans(now=100.0) == {}


def test_a_loopback_ban_spares_the_other_local_nodes() -> None:
    book = AddressBook(random.Random(1))
    book.ban("127.0.0.1:18444", until=100.0)
    assert book.is_banned("127.0.0.1:18444", now=0.0)
    assert not book.is_banned("127.0.0.1:18445", now=0.0)


def test_the_ban_list_is_bounded() -> None:
    book = AddressBook(random.Random(1))
    for n in range(MAX_BANS + 10):
        book.ban(f"127.0.0.1:{n}", until=1000.0 + n)
    assert len(book.bans(now=0.0)) == MAX_BANS
    assert not book.is_banned("127.0.0.1:0", now=0.0)  # the first to end went first
    assert book.is_banned(f"127.0.0.1:{MAX_BANS + 9}", now=0.0)


def test_backoff_doubles_with_each_failure_and_resets_on_success() -> None:
    book = AddressBook(random.Random(1))
    book.add("10.0.0.1:1", 0)
    delays = []
    for _ in range(5):
        book.mark_failed("10.0.0.1:1", now=0.0)
        info = book.get("10.0.0.1:1")
        assert info is not None
        delays.append(info.next_try)
    # 1, 2, 4, 8, 16 seconds, each scaled by a jitter in [0.5, 1.5).
    for n, delay in enumerate(delays):
        assert 0.5 * 2**n <= delay < 1.5 * 2**n
    assert book.candidates(now=0.0, exclude=set()) == []
    book.mark_good("10.0.0.1:1", now=1.0, unix_now=1000)
    assert book.candidates(now=1.0, exclude=set()) == ["10.0.0.1:1"]


def test_persistent_addresses_come_first_and_are_never_evicted() -> None:
    book = AddressBook(random.Random(1), max_addresses=3)
    book.add("10.0.0.1:1", 5, persistent=True)
    for n in range(2, 10):
        book.add(f"10.0.0.{n}:1", n)
    assert len(book) == 3
    assert "10.0.0.1:1" in book
    assert book.candidates(now=0.0, exclude=set())[0] == "10.0.0.1:1"


def test_own_addresses_are_never_recorded() -> None:
    book = AddressBook(random.Random(1))
    book.own_addresses["127.0.0.1:1"] = None
    assert not book.add("127.0.0.1:1", 0)


# -- orphans


def chain_of_outputs_for_tests(count: int) -> tuple[Transaction, list[Transaction]]:
    """A parent with ``count`` outputs and one child spending each."""
    chain = ChainBuilder()
    chain.extend(1)
    parent = split(chain.coinbase_of("b1"), count)
    return parent, [chain.spend([coin]) for coin in outputs_of(parent, chain.miner)]


def test_orphans_are_bounded_oldest_first_and_found_by_parent() -> None:
    parent, children = chain_of_outputs_for_tests(5)
    pool = OrphanPool(max_count=3)
    for n, child in enumerate(children):
        assert pool.add(child, source=1, now=float(n))
    assert len(pool) == 3
    assert [o.tx for o in pool.children_of(parent.txid)] == children[2:]
    assert pool.add(children[4], source=1, now=9.0) is False  # already held
    assert pool.expire(now=pool.expiry + 3.5) == 2
    assert [o.tx for o in pool.children_of(parent.txid)] == children[4:]


def test_an_oversized_orphan_is_not_held() -> None:
    _parent, children = chain_of_outputs_for_tests(1)
    assert not OrphanPool(max_tx_size=10).add(children[0], source=1, now=0.0)


# -- rate limits and links


def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    bucket = TokenBucket(rate=10.0, burst=5.0, now=0.0)
    assert [bucket.take(0.0) for _ in range(6)] == [True] * 5 + [False]
    assert bucket.take(0.1)  # one token back after a tenth of a second
    assert not bucket.take(0.1)
    assert bucket.take(10.0, count=5)
    assert not bucket.take(10.0, count=6)


def test_link_policy_matches_any_name_and_tells_listeners() -> None:
    policy = LinkPolicy()
    changes = []
    policy.on_change(lambda: changes.append(policy.blocked()))
    policy.block("127.0.0.1:2")
    assert policy.is_blocked(["127.0.0.1:55555", "127.0.0.1:2"])
    assert not policy.is_blocked(["127.0.0.1:3"])
    policy.set_latency("127.0.0.1:2", 0.25)
    assert policy.latency(["x", "127.0.0.1:2"]) == 0.25
    policy.heal()
    assert not policy.is_blocked(["127.0.0.1:2"])
    assert policy.latency(["127.0.0.1:2"]) == 0.25  # healing a partition keeps latencies
    assert changes == [("127.0.0.1:2",), ("127.0.0.1:2",), ()]
