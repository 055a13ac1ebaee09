"""Devnet wallets: named seeds, the funding plan, amounts, payees and payments from REST coins.

* a wallet is its name: the same address on every run, another for another name or network;
* funding pays the wallets in turn for ``len(wallets) + maturity`` blocks, so each holds a
  mature coinbase when they are mined;
* amounts are exact (eight decimals, no float) and bounded; payees are wallets or addresses;
* a payment is built from coins shaped as ``/rest/address/ADDR/utxos`` lists them: coins a
  mempool transaction already spends are left alone, unconfirmed change is spendable.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from blocktools import key, pkh

from node.core.address import encode_address
from node.core.hashing import hash_hex
from node.core.params import DEMO, REGTEST
from node.core.tx import COIN, format_amount
from node.devnet import wallets
from node.devnet.state import DevnetError
from node.wallet import Wallet


def test_a_wallet_is_its_name() -> None:
    alice = wallets.address(REGTEST, "alice")
    assert alice == Wallet.from_seed(REGTEST, b"alice").addresses()[0]
    assert alice == wallets.address(REGTEST, "alice")
    assert alice != wallets.address(REGTEST, "bob")
    assert wallets.address(DEMO, "alice").startswith("D")


@pytest.mark.parametrize("name", ["", "Alice", "1st", "a b", "é", "x" * 33, "-a"])
def test_bad_wallet_names_are_refused(name: str) -> None:
    with pytest.raises(DevnetError, match="wallet name"):
        wallets.address(REGTEST, name)


@pytest.mark.parametrize("params", [REGTEST, DEMO], ids=lambda p: p.name)
def test_funding_pays_each_wallet_in_turn_until_all_are_mature(params: Any) -> None:
    names = ["alice", "bob", "carol"]
    payees = wallets.funding_payees(params, names)
    assert len(payees) == len(names) + params.coinbase_maturity
    addresses = [wallets.address(params, n) for n in names]
    assert payees[:6] == addresses + addresses
    # Block h pays payees[h - 1]; at the next height, the first len(names) blocks are mature.
    next_height = len(payees) + 1
    for height in range(1, len(names) + 1):
        assert next_height - height >= params.coinbase_maturity
    assert wallets.funding_payees(params, []) == []


@pytest.mark.parametrize(
    ("text", "units"),
    [("1", COIN), ("1.5", 150_000_000), ("0.00000001", 1), ("21000000", 21_000_000 * COIN)],
)
def test_amounts_are_exact(text: str, units: int) -> None:
    assert wallets.parse_amount(text) == units


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("0", "above 0"),
        ("-1", "above 0"),
        ("21000000.00000001", "at most 21,000,000"),
        ("0.000000001", "eight decimals"),
        ("1e-9", "eight decimals"),
        ("one", "not a number"),
        ("nan", "not a number"),
        ("inf", "not a number"),
        ("", "not a number"),
    ],
)
def test_bad_amounts_are_refused(text: str, reason: str) -> None:
    with pytest.raises(DevnetError, match=reason):
        wallets.parse_amount(text)


def test_a_payee_is_a_wallet_or_an_address() -> None:
    bob = wallets.address(REGTEST, "bob")
    elsewhere = encode_address(pkh(key("zed")), REGTEST.address_version)
    assert wallets.resolve_payee(REGTEST, "bob", ["alice", "bob"]) == bob
    assert wallets.resolve_payee(REGTEST, elsewhere, ["alice"]) == elsewhere
    with pytest.raises(DevnetError, match="neither a devnet wallet nor an address"):
        wallets.resolve_payee(REGTEST, "dave", ["alice"])
    with pytest.raises(DevnetError, match="neither"):
        wallets.resolve_payee(DEMO, elsewhere, ["alice"])  # a regtest address on demo


def utxo(n: int, amount: str, height: int | None, *, coinbase: bool, spent: bool) -> dict[str, Any]:
    return {
        "txid": hash_hex(bytes([n]) * 32),
        "vout": n,
        "amount": Decimal(amount),
        "height": height,
        "confirmations": 0 if height is None else 200 - height,
        "coinbase": coinbase,
        "spent_in_mempool": spent,
    }


def test_a_payment_uses_only_coins_it_may_spend() -> None:
    utxos = [
        utxo(1, "50", 10, coinbase=True, spent=True),  # already spent by a pool transaction
        utxo(2, "50", 190, coinbase=True, spent=False),  # immature at height 200
        utxo(3, "7.5", None, coinbase=False, spent=False),  # unconfirmed change
        utxo(4, "3", 20, coinbase=False, spent=False),
    ]
    bob = wallets.address(REGTEST, "bob")
    payment = wallets.payment(REGTEST, "alice", utxos, 200, pay_to=bob, amount=8 * COIN, fee_rate=1)
    spent = {txin.prevout.index for txin in payment.tx.inputs}
    assert spent == {3, 4}
    assert payment.tx.outputs[0].value == 8 * COIN
    assert payment.change == 10 * COIN + 50_000_000 - 8 * COIN - payment.fee
    with pytest.raises(DevnetError, match="wallet alice: insufficient funds"):
        wallets.payment(REGTEST, "alice", utxos, 200, pay_to=bob, amount=11 * COIN, fee_rate=1)
    assert format_amount(payment.amount) == "8.00000000"
