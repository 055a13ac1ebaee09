"""The wallet: keys from one seed, a permissioned (optionally encrypted) key file, payments.

Modules, in dependency order:

- :mod:`node.wallet.keyfile`: the key file's JSON format, its encryption, and its permissions.
- :mod:`node.wallet.payment`: balances, coin selection, fees and signing, over coins passed in.
- :mod:`node.wallet.wallet`: :class:`Wallet`, the keys of one seed and their addresses.

The wallet holds no coins and no history: the node passes it the coins of its public-key
hashes from the UTXO set (and the outpoints pending transactions spend), so it can never
disagree with the chain. It reads no clock and no global randomness: a ``randbytes`` callable
(``secrets.token_bytes`` in the node) is passed to whatever needs fresh bytes.
"""

from node.wallet.keyfile import (
    DEFAULT_SCRYPT,
    KeyFile,
    ScryptParams,
    WalletSecrets,
    decode_keyfile,
    encode_keyfile,
)
from node.wallet.payment import Balance, Payment, balance, build_payment, is_mature
from node.wallet.wallet import Wallet, derive_key

__all__ = [
    "DEFAULT_SCRYPT",
    "Balance",
    "KeyFile",
    "Payment",
    "ScryptParams",
    "Wallet",
    "WalletSecrets",
    "balance",
    "build_payment",
    "decode_keyfile",
    "derive_key",
    "encode_keyfile",
    "is_mature",
]
