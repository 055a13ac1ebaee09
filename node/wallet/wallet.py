"""The wallet: keys derived from one seed, their addresses, and payments signed with them.

Every key comes from the seed, so backing up the seed (the key file) once backs up every
address the wallet will ever hand out, and a devnet wallet can be recreated from a word::

    secret_i = HMAC-SHA256(key=seed, msg="forklab/wallet/key/v1" || i as 4 bytes big-endian)
    key_i    = PrivateKey.from_seed(secret_i)            for i = 0, 1, ... count - 1

A new wallet's seed is 32 bytes from the ``randbytes`` callable passed in (the node passes
``secrets.token_bytes``; tests pass a seeded generator). :meth:`Wallet.from_seed` takes any
seed instead, such as ``b"alice"``: anyone who knows it can spend, so only on a devnet.

What this module does not do: read or write files (:mod:`node.wallet.keyfile`), know the UTXO
set (the node passes the wallet's coins in), or track transactions: the wallet is stateless
beyond its keys, so it cannot drift from the chain.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Collection, Container, Sequence

from node.core.address import decode_address, encode_address, hash160
from node.core.crypto import PrivateKey
from node.core.errors import WalletError
from node.core.params import NetworkParams
from node.core.tx import OutPoint
from node.core.utxo import Coin
from node.wallet.keyfile import MAX_KEY_COUNT, WalletSecrets
from node.wallet.payment import Balance, Payment, balance, build_payment

SEED_SIZE = 32
_DERIVATION_TAG = b"forklab/wallet/key/v1"


def derive_key(seed: bytes, index: int) -> PrivateKey:
    """Key number ``index`` of the wallet with ``seed`` (see the module docstring)."""
    message = _DERIVATION_TAG + index.to_bytes(4, "big")
    return PrivateKey.from_seed(hmac.new(seed, message, hashlib.sha256).digest())


class Wallet:
    """The keys of one seed, on one network.

    Mutable only through :meth:`new_address`; save :attr:`secrets` afterwards
    (:meth:`node.wallet.keyfile.KeyFile.save`) or the new address is forgotten.
    """

    def __init__(self, params: NetworkParams, seed: bytes, count: int = 1) -> None:
        WalletSecrets(params.name, seed, count)  # checks the seed and count
        self.params = params
        self._seed = seed
        self._keys: list[PrivateKey] = []
        self._by_hash: dict[bytes, PrivateKey] = {}
        for _ in range(count):
            self._add_key()

    @classmethod
    def generate(cls, params: NetworkParams, randbytes: Callable[[int], bytes]) -> Wallet:
        """A new wallet with a random seed of ``SEED_SIZE`` bytes from ``randbytes``."""
        seed = randbytes(SEED_SIZE)
        if len(seed) != SEED_SIZE:
            raise ValueError(f"randbytes({SEED_SIZE}) returned {len(seed)} bytes")
        return cls(params, seed)

    @classmethod
    def from_seed(cls, params: NetworkParams, seed: bytes, count: int = 1) -> Wallet:
        """The same wallet every time for the same seed: for devnets and tests."""
        return cls(params, seed, count)

    @classmethod
    def from_secrets(cls, params: NetworkParams, secrets: WalletSecrets) -> Wallet:
        """The wallet of a key file; WalletError if the file is for another network."""
        if secrets.network != params.name:
            raise WalletError(
                f"the key file is for the {secrets.network!r} network, this node runs "
                f"{params.name!r}"
            )
        return cls(params, secrets.seed, secrets.count)

    @property
    def secrets(self) -> WalletSecrets:
        return WalletSecrets(self.params.name, self._seed, len(self._keys))

    # -- keys and addresses

    def _add_key(self) -> PrivateKey:
        key = derive_key(self._seed, len(self._keys))
        self._keys.append(key)
        self._by_hash[hash160(key.public_key)] = key
        return key

    def new_address(self) -> str:
        """Hand out the next key's address."""
        if len(self._keys) >= MAX_KEY_COUNT:
            raise WalletError(f"the wallet already has the maximum of {MAX_KEY_COUNT} keys")
        return self._address(self._add_key())

    def addresses(self) -> tuple[str, ...]:
        """Every address handed out, oldest first."""
        return tuple(self._address(key) for key in self._keys)

    @property
    def pubkey_hashes(self) -> frozenset[bytes]:
        """What the node looks the wallet's coins up by."""
        return frozenset(self._by_hash)

    @property
    def change_pubkey_hash(self) -> bytes:
        """Where change goes: the first key, so change never needs a file write."""
        return hash160(self._keys[0].public_key)

    def key_for(self, pubkey_hash: bytes) -> PrivateKey | None:
        return self._by_hash.get(pubkey_hash)

    def is_mine(self, address: str) -> bool:
        return decode_address(address, self.params.address_version) in self._by_hash

    def _address(self, key: PrivateKey) -> str:
        return encode_address(hash160(key.public_key), self.params.address_version)

    # -- coins and payments

    def balance(
        self,
        coins: Sequence[tuple[OutPoint, Coin]],
        next_height: int,
        *,
        spent: Container[OutPoint] = frozenset(),
    ) -> Balance:
        """The wallet's share of ``coins`` (see :func:`node.wallet.payment.balance`)."""
        return balance(self._mine(coins), next_height, self.params, spent=spent)

    def pay(
        self,
        coins: Sequence[tuple[OutPoint, Coin]],
        next_height: int,
        *,
        address: str,
        amount: int,
        fee_rate: int,
        spent: Container[OutPoint] = frozenset(),
    ) -> Payment:
        """A signed transaction paying ``amount`` to ``address``, change back to the wallet.

        ``coins`` are the UTXO set's coins of :attr:`pubkey_hashes` (others are ignored),
        ``spent`` the outpoints pending transactions already spend (``mempool.spender_of``),
        ``fee_rate`` in units per byte. AddressError for a bad address; WalletError for too
        little money, saying how much there is.
        """
        pay_to = decode_address(address, self.params.address_version)
        return build_payment(
            self._mine(coins),
            next_height,
            self.params,
            keys=self._by_hash,
            pay_to=pay_to,
            amount=amount,
            fee_rate=fee_rate,
            change_to=self.change_pubkey_hash,
            spent=spent,
        )

    def _mine(self, coins: Collection[tuple[OutPoint, Coin]]) -> list[tuple[OutPoint, Coin]]:
        return [(outpoint, coin) for outpoint, coin in coins if coin.pubkey_hash in self._by_hash]
