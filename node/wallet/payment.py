"""Balances, coin selection and signed payments, from a list of coins the node passes in.

**Which coins count.** A coin is *spendable* at the next block's height unless it is a coinbase
output younger than the network's maturity, or a pending transaction (in the mempool) already
spends it. Unconfirmed coins the node chooses to pass in (outputs of pool transactions, at
``MEMPOOL_HEIGHT``) are spendable like any other: the pool accepts chains.

**Selection.** Largest coins first, until they pay the amount and the fee. Few inputs keep the
transaction small (cheap) and the result is deterministic. Bitcoin Core's branch-and-bound
searches for a change-free combination too; that is an optimisation this wallet leaves out.

**Fee.** ``fee_rate`` units per byte of the signed encoding. The size depends on the change
amount (msgpack writes small integers in fewer bytes) and the change on the fee, so the fee is
found by iteration: start from the size with a change output, and raise the fee to
``fee_rate * size`` until it stops growing. It only grows, so it ends within a few rounds, with
``fee >= fee_rate * size``. The unsigned transaction is sized with 64-byte placeholder
signatures, exactly a real signature's size.

**Change.** Change smaller than what spending it would cost at the same fee rate (about 140
bytes, ``SPEND_SIZE``) is dust: it is left to the fee instead, as is change of zero. Change goes
to the wallet's change address, after the payment output.

What this module does not do: randomise input or output order (no randomness is passed in;
the order is deterministic), lock coins between two payments (``spent`` does that once the
first is in the mempool), or bump fees.
"""

from __future__ import annotations

from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

from node.core.crypto import PrivateKey
from node.core.encoding import pack
from node.core.errors import WalletError
from node.core.mempool import MAX_STANDARD_TX_SIZE
from node.core.params import NetworkParams
from node.core.tx import MAX_MONEY, OutPoint, Transaction, TxIn, TxOut, format_amount
from node.core.utxo import Coin

PLACEHOLDER_SIGNATURE = bytes(64)

SPEND_SIZE = len(pack([bytes(32), 0xFFFFFFFF, PLACEHOLDER_SIGNATURE, bytes(33)]))
"""Bytes one input adds to a transaction at most: what it costs to spend a coin later."""


@dataclass(frozen=True)
class Balance:
    spendable: int
    """Mature coins no pending transaction spends: what a payment can use now."""
    immature: int
    """Coinbase outputs still maturing."""
    pending_spent: int
    """Coins that pending transactions spend (their change, if any, comes back when passed in)."""

    @property
    def total(self) -> int:
        return self.spendable + self.immature + self.pending_spent


@dataclass(frozen=True)
class Payment:
    tx: Transaction
    """Signed, ready for the mempool."""
    fee: int
    amount: int
    change: int
    """0 when there is no change output."""
    inputs: tuple[tuple[OutPoint, Coin], ...]
    """The coins it spends, in input order."""

    @property
    def fee_rate(self) -> Fraction:
        return Fraction(self.fee, self.tx.size)


def is_mature(coin: Coin, next_height: int, params: NetworkParams) -> bool:
    """Whether ``coin`` may be spent in the block at ``next_height`` (coinbase maturity)."""
    return not coin.is_coinbase or next_height - coin.height >= params.coinbase_maturity


def balance(
    coins: Sequence[tuple[OutPoint, Coin]],
    next_height: int,
    params: NetworkParams,
    *,
    spent: Container[OutPoint] = frozenset(),
) -> Balance:
    spendable = immature = pending = 0
    for outpoint, coin in coins:
        if outpoint in spent:
            pending += coin.value
        elif not is_mature(coin, next_height, params):
            immature += coin.value
        else:
            spendable += coin.value
    return Balance(spendable, immature, pending)


def build_payment(
    coins: Sequence[tuple[OutPoint, Coin]],
    next_height: int,
    params: NetworkParams,
    *,
    keys: Mapping[bytes, PrivateKey],
    pay_to: bytes,
    amount: int,
    fee_rate: int,
    change_to: bytes,
    spent: Container[OutPoint] = frozenset(),
) -> Payment:
    """Select coins, size the fee, and sign a payment of ``amount`` to ``pay_to``.

    ``keys`` maps a public-key hash to the key that spends its coins; coins without a key are
    not used. WalletError if the spendable coins cannot pay the amount and its fee.
    """
    if not 0 < amount <= MAX_MONEY:
        raise WalletError(f"the amount must be above 0 and at most {format_amount(MAX_MONEY)}")
    if fee_rate < 0:
        raise WalletError(f"the fee rate must not be negative, got {fee_rate}")
    candidates = sorted(
        (
            (outpoint, coin)
            for outpoint, coin in coins
            if coin.pubkey_hash in keys
            and outpoint not in spent
            and is_mature(coin, next_height, params)
        ),
        key=lambda item: (-item[1].value, item[0].txid, item[0].index),
    )
    selected: list[tuple[OutPoint, Coin]] = []
    total = 0
    for candidate in candidates:
        selected.append(candidate)
        total += candidate[1].value
        if total < amount:
            continue  # cannot pay even without a fee: no need to size a transaction yet
        fitted = _fit(
            selected, keys, pay_to=pay_to, amount=amount, fee_rate=fee_rate, change_to=change_to
        )
        if fitted is not None:
            unsigned, fee, change = fitted
            if unsigned.size > MAX_STANDARD_TX_SIZE:
                raise WalletError(
                    f"paying {format_amount(amount)} takes {len(selected)} coins, too many for "
                    "one transaction; send less, or consolidate small coins first"
                )
            tx = _sign(unsigned, selected, keys, params)
            return Payment(tx, fee, amount, change, tuple(selected))
    available = sum(coin.value for _, coin in candidates)
    needed_fee = fee_rate * _unsigned(candidates, keys, [TxOut(amount, pay_to)]).size
    immature = balance(coins, next_height, params, spent=spent).immature
    raise WalletError(
        f"insufficient funds: {format_amount(available)} coins spendable, "
        f"{format_amount(amount)} plus a fee of about {format_amount(needed_fee)} needed"
        + (f" ({format_amount(immature)} more is immature coinbase)" if immature else "")
    )


def _fit(
    selected: Sequence[tuple[OutPoint, Coin]],
    keys: Mapping[bytes, PrivateKey],
    *,
    pay_to: bytes,
    amount: int,
    fee_rate: int,
    change_to: bytes,
) -> tuple[Transaction, int, int] | None:
    """``(unsigned tx, fee, change)`` paying ``amount`` from ``selected``, or None if short."""
    total = sum(coin.value for _, coin in selected)
    payment = TxOut(amount, pay_to)
    dust = fee_rate * SPEND_SIZE
    fee = 0
    while True:
        change = total - amount - fee
        if change <= dust:
            break
        tx = _unsigned(selected, keys, [payment, TxOut(change, change_to)])
        needed = fee_rate * tx.size
        if needed <= fee:
            return tx, fee, change
        fee = needed
    tx = _unsigned(selected, keys, [payment])
    fee = total - amount
    if fee >= fee_rate * tx.size:
        return tx, fee, 0
    return None


def _unsigned(
    selected: Sequence[tuple[OutPoint, Coin]],
    keys: Mapping[bytes, PrivateKey],
    outputs: list[TxOut],
) -> Transaction:
    inputs = tuple(
        TxIn(outpoint, PLACEHOLDER_SIGNATURE, keys[coin.pubkey_hash].public_key)
        for outpoint, coin in selected
    )
    return Transaction(1, inputs, tuple(outputs), 0)


def _sign(
    unsigned: Transaction,
    selected: Sequence[tuple[OutPoint, Coin]],
    keys: Mapping[bytes, PrivateKey],
    params: NetworkParams,
) -> Transaction:
    # Every input's digest blanks every signature, so all of them come from the unsigned form.
    genesis = params.genesis_hash
    inputs = tuple(
        TxIn(
            txin.prevout,
            keys[coin.pubkey_hash].sign(unsigned.sighash(n, genesis)),
            txin.pubkey,
        )
        for n, (txin, (_, coin)) in enumerate(zip(unsigned.inputs, selected, strict=True))
    )
    return Transaction(unsigned.version, inputs, unsigned.outputs, unsigned.locktime)
