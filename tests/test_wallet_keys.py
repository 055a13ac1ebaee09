"""Wallet keys: one seed gives every key, deterministically; new addresses survive a save."""

from __future__ import annotations

import hashlib
import hmac
import random
from pathlib import Path

import pytest

from node.core.address import decode_address, hash160
from node.core.crypto import PrivateKey
from node.core.errors import AddressError, WalletError
from node.core.params import DEMO, MAIN, REGTEST, NetworkParams
from node.wallet import KeyFile, ScryptParams, Wallet, derive_key


def test_the_same_seed_gives_the_same_wallet_and_another_seed_another() -> None:
    alice = Wallet.from_seed(REGTEST, b"alice", count=3)
    assert alice.addresses() == Wallet.from_seed(REGTEST, b"alice", count=3).addresses()
    assert set(alice.addresses()).isdisjoint(Wallet.from_seed(REGTEST, b"bob", 3).addresses())
    assert len(set(alice.addresses())) == 3


def test_keys_follow_the_documented_derivation() -> None:
    """HMAC-SHA256(seed, tag || index) fed to PrivateKey.from_seed, as the docstring says."""
    seed = b"alice"
    for index in (0, 1, 2):
        message = b"forklab/wallet/key/v1" + index.to_bytes(4, "big")
        expected = PrivateKey.from_seed(hmac.new(seed, message, hashlib.sha256).digest())
        assert derive_key(seed, index) == expected
    wallet = Wallet.from_seed(REGTEST, seed, count=3)
    assert wallet.pubkey_hashes == {hash160(derive_key(seed, i).public_key) for i in range(3)}


def test_a_generated_wallet_draws_its_seed_from_the_callable_passed_in() -> None:
    first = Wallet.generate(REGTEST, random.Random(5).randbytes)
    again = Wallet.generate(REGTEST, random.Random(5).randbytes)
    other = Wallet.generate(REGTEST, random.Random(6).randbytes)
    assert first.addresses() == again.addresses() != other.addresses()
    assert len(first.secrets.seed) == 32
    with pytest.raises(ValueError, match="returned 3 bytes"):
        Wallet.generate(REGTEST, lambda n: b"abc")


@pytest.mark.parametrize(("params", "prefixes"), [(REGTEST, "mn"), (DEMO, "D"), (MAIN, "1")])
def test_addresses_are_for_the_wallets_network(params: NetworkParams, prefixes: str) -> None:
    wallet = Wallet.from_seed(params, b"alice", count=4)
    assert all(address[0] in prefixes for address in wallet.addresses())


def test_new_addresses_are_remembered_through_the_key_file(tmp_path: Path) -> None:
    randbytes = random.Random(1).randbytes
    wallet = Wallet.generate(REGTEST, randbytes)
    keyfile = KeyFile.create(
        tmp_path / "w.json",
        wallet.secrets,
        passphrase="pw",
        randbytes=randbytes,
        scrypt=ScryptParams(n=1 << 10),
    )
    new = wallet.new_address()
    assert new == wallet.addresses()[-1] and len(wallet.addresses()) == 2
    assert decode_address(new, REGTEST.address_version) in wallet.pubkey_hashes
    keyfile.save(wallet.secrets, randbytes=randbytes)

    _, secrets = KeyFile.open(tmp_path / "w.json", passphrase="pw")
    assert Wallet.from_secrets(REGTEST, secrets).addresses() == wallet.addresses()


def test_is_mine_and_the_change_address() -> None:
    wallet = Wallet.from_seed(REGTEST, b"alice", count=2)
    other = Wallet.from_seed(REGTEST, b"bob")
    assert all(wallet.is_mine(a) for a in wallet.addresses())
    assert not wallet.is_mine(other.addresses()[0])
    assert wallet.change_pubkey_hash == decode_address(
        wallet.addresses()[0], REGTEST.address_version
    )
    assert wallet.key_for(wallet.change_pubkey_hash) == derive_key(b"alice", 0)
    assert wallet.key_for(other.change_pubkey_hash) is None
    with pytest.raises(AddressError):
        wallet.is_mine(Wallet.from_seed(MAIN, b"alice").addresses()[0])


@pytest.mark.parametrize(
    ("seed", "count"), [(b"", 1), (bytes(129), 1), (b"alice", 0)], ids=["empty", "long", "none"]
)
def test_a_wallet_needs_a_seed_and_at_least_one_key(seed: bytes, count: int) -> None:
    with pytest.raises(WalletError):
        Wallet(REGTEST, seed, count)
