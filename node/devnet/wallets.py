"""Devnet wallets: named, deterministic, funded in the first blocks, spent through any node.

A devnet wallet is :meth:`Wallet.from_seed` of its name (``alice`` is the seed ``b"alice"``), so
its keys are the same on every run and on every machine, nothing secret is stored, and anyone
who knows the name can spend: devnet money only. The funded wallets (``--wallets``) and each
miner's payout wallet (named after the miner: ``m1``...) are all of this kind.

**Funding.** The first ``len(wallets) + coinbase_maturity`` blocks pay the wallets in turn
(block 1 the first wallet, block 2 the second...), so when they are mined every wallet holds at
least one mature coinbase and more mature as the chain grows. On regtest (maturity 100) with
three wallets that is 103 blocks, under a second of work.

**Paying.** The devnet holds the keys, a node holds the coins: :func:`payment` takes the
wallet's unspent outputs as a node's REST route ``/rest/address/ADDR/utxos`` lists them
(confirmed and in the mempool, each marked when a mempool transaction already spends it) and
signs a payment the node's ``sendrawtransaction`` then accepts and relays.

What this module does not do: talk to a node (the caller fetches and submits).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from node.core.address import decode_address
from node.core.errors import AddressError, WalletError
from node.core.hashing import hash_from_hex
from node.core.mempool import MEMPOOL_HEIGHT
from node.core.params import NetworkParams
from node.core.tx import COIN, MAX_MONEY, OutPoint
from node.core.utxo import Coin
from node.devnet.state import DevnetError
from node.wallet.payment import Payment
from node.wallet.wallet import Wallet

DEFAULT_WALLETS = ("alice", "bob", "carol")
_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")


def check_name(name: str) -> str:
    """A wallet name: lower-case letters, digits, ``_`` and ``-``, starting with a letter."""
    if not _NAME.fullmatch(name):
        raise DevnetError(
            f"wallet name {name!r}: use 1 to 32 lower-case letters, digits, _ or -, "
            "starting with a letter"
        )
    return name


def wallet(params: NetworkParams, name: str) -> Wallet:
    return Wallet.from_seed(params, check_name(name).encode())


def address(params: NetworkParams, name: str) -> str:
    return wallet(params, name).addresses()[0]


def funding_payees(params: NetworkParams, names: Sequence[str]) -> list[str]:
    """The address each funding block pays, block 1 first (see the module docstring)."""
    if not names:
        return []
    addresses = [address(params, name) for name in names]
    count = len(names) + params.coinbase_maturity
    return [addresses[n % len(addresses)] for n in range(count)]


def resolve_payee(params: NetworkParams, target: str, wallets: Iterable[str]) -> str:
    """A known wallet's name becomes its address; anything else must be an address."""
    if target in set(wallets):
        return address(params, target)
    try:
        decode_address(target, params.address_version)
    except AddressError as exc:
        raise DevnetError(f"{target!r} is neither a devnet wallet nor an address: {exc}") from None
    return target


def parse_amount(text: str) -> int:
    """Coins (``1.5``) as an integer of the smallest unit, exactly; DevnetError if invalid."""
    try:
        coins = Decimal(text)
    except InvalidOperation:
        coins = Decimal("NaN")
    if not coins.is_finite():
        raise DevnetError(f"amount {text!r} is not a number of coins")
    units = coins * COIN
    if units != units.to_integral_value():
        raise DevnetError(f"amount {text!r}: at most eight decimals")
    if not 0 < units <= MAX_MONEY:
        raise DevnetError(f"amount {text!r}: must be above 0 and at most 21,000,000")
    return int(units)


def coins_from_rest(
    utxos: Sequence[Any], pubkey_hash: bytes
) -> tuple[list[tuple[OutPoint, Coin]], set[OutPoint]]:
    """The coins and mempool-spent outpoints of a ``/rest/address/ADDR/utxos`` answer's
    ``utxos`` list, for the address of ``pubkey_hash`` (amounts exact: Decimals or strings)."""
    coins: list[tuple[OutPoint, Coin]] = []
    spent: set[OutPoint] = set()
    for item in utxos:
        outpoint = OutPoint(hash_from_hex(item["txid"]), int(item["vout"]))
        height = MEMPOOL_HEIGHT if item["height"] is None else int(item["height"])
        value = int(Decimal(item["amount"]) * COIN)
        coin = Coin(value, pubkey_hash, height, bool(item["coinbase"]))
        coins.append((outpoint, coin))
        if item["spent_in_mempool"]:
            spent.add(outpoint)
    return coins, spent


def payment(
    params: NetworkParams,
    name: str,
    utxos: Sequence[Any],
    next_height: int,
    *,
    pay_to: str,
    amount: int,
    fee_rate: int,
) -> Payment:
    """A signed payment from wallet ``name`` with the coins of its address in ``utxos``."""
    source = wallet(params, name)
    (pubkey_hash,) = source.pubkey_hashes
    coins, spent = coins_from_rest(utxos, pubkey_hash)
    try:
        return source.pay(
            coins, next_height, address=pay_to, amount=amount, fee_rate=fee_rate, spent=spent
        )
    except WalletError as exc:
        raise DevnetError(f"wallet {name}: {exc}") from None
