"""Payments: valid for the pool, fee rate honoured, change back home, and honest about funds.

Alice's wallet (seed ``b"alice"``) mined b1..b110 of a regtest chain, so for the block at
height 111 she owns eleven mature coinbases (b1..b11, 50 coins each) and 99 immature ones.
Coins are handed to the wallet as the node will: ``(OutPoint, Coin)`` pairs from the UTXO set.
"""

from __future__ import annotations

import pytest
from blocktools import ChainBuilder, key, pkh

from node.core.address import encode_address
from node.core.errors import AddressError, WalletError
from node.core.mempool import Mempool
from node.core.params import DEMO, REGTEST
from node.core.tx import COIN, MAX_MONEY, OutPoint, format_amount
from node.core.utxo import Coin, CoinsCache
from node.wallet import Balance, Wallet, build_payment, derive_key
from node.wallet.payment import SPEND_SIZE

NEXT = 111
BOB = encode_address(pkh(key("bob")), REGTEST.address_version)


@pytest.fixture(scope="module")
def wallet() -> Wallet:
    return Wallet.from_seed(REGTEST, b"alice")


@pytest.fixture(scope="module")
def chain() -> ChainBuilder:
    chain = ChainBuilder(miner=derive_key(b"alice", 0))
    chain.extend(110)
    return chain


@pytest.fixture(scope="module")
def view(chain: ChainBuilder) -> CoinsCache:
    return chain.connect_branch("b110")


@pytest.fixture(scope="module")
def coins(chain: ChainBuilder, view: CoinsCache) -> list[tuple[OutPoint, Coin]]:
    found = []
    for name in chain.branch("b110"):
        outpoint = chain.coinbase_of(name).outpoint
        coin = view.get_coin(outpoint)
        assert coin is not None
        found.append((outpoint, coin))
    return found


def fake_coins(*values: int, owner: bytes) -> list[tuple[OutPoint, Coin]]:
    return [
        (OutPoint(bytes([n + 1]) * 32, 0), Coin(value, owner, 1, False))
        for n, value in enumerate(values)
    ]


def test_a_payment_is_accepted_by_the_pool_and_conserves_value(
    wallet: Wallet, coins: list[tuple[OutPoint, Coin]], view: CoinsCache
) -> None:
    payment = wallet.pay(coins, NEXT, address=BOB, amount=70 * COIN, fee_rate=5)
    entry = Mempool(REGTEST).accept(payment.tx, view, NEXT)
    assert entry.fee == payment.fee
    spent = sum(coin.value for _, coin in payment.inputs)
    assert spent == payment.amount + payment.change + payment.fee
    assert [txin.prevout for txin in payment.tx.inputs] == [op for op, _ in payment.inputs]
    assert payment.tx.outputs[0].pubkey_hash == pkh(key("bob"))
    assert payment.tx.outputs[0].value == 70 * COIN


def test_change_goes_back_to_the_wallets_change_address(
    wallet: Wallet, coins: list[tuple[OutPoint, Coin]]
) -> None:
    payment = wallet.pay(coins, NEXT, address=BOB, amount=12 * COIN, fee_rate=2)
    assert len(payment.tx.outputs) == 2
    change = payment.tx.outputs[1]
    assert change.pubkey_hash == wallet.change_pubkey_hash
    assert change.value == payment.change == 50 * COIN - 12 * COIN - payment.fee


@pytest.mark.parametrize("fee_rate", [1, 2, 7, 100, 5_000])
def test_the_fee_rate_is_honoured_without_overpaying(
    wallet: Wallet, coins: list[tuple[OutPoint, Coin]], fee_rate: int
) -> None:
    payment = wallet.pay(coins, NEXT, address=BOB, amount=3 * COIN + 12_345, fee_rate=fee_rate)
    size = payment.tx.size
    assert payment.change > 0
    assert payment.fee >= fee_rate * size
    # The fee is fee_rate times a size at most a few bytes above the final one (the change
    # amount's encoding may shrink once the fee is taken from it).
    assert payment.fee <= fee_rate * (size + 8)


def test_change_not_worth_spending_is_left_to_the_fee(wallet: Wallet) -> None:
    owner = wallet.change_pubkey_hash
    fee_rate = 10
    # Leaves 200 bytes' worth for the fee: enough for a one-output transaction, while the
    # change a second output could carry would be worth less than spending it would cost.
    coins = fake_coins(COIN, owner=owner)
    payment = build_payment(
        coins,
        NEXT,
        REGTEST,
        keys={owner: derive_key(b"alice", 0)},
        pay_to=pkh(key("bob")),
        amount=COIN - 200 * fee_rate,
        fee_rate=fee_rate,
        change_to=owner,
    )
    assert len(payment.tx.outputs) == 1 and payment.change == 0
    assert payment.fee == 200 * fee_rate >= fee_rate * payment.tx.size
    assert 200 * fee_rate - fee_rate * payment.tx.size < fee_rate * SPEND_SIZE


def test_the_largest_coins_are_used_first(wallet: Wallet) -> None:
    owner = wallet.change_pubkey_hash
    coins = fake_coins(1 * COIN, 20 * COIN, 5 * COIN, owner=owner)
    payment = wallet.pay(coins, NEXT, address=BOB, amount=15 * COIN, fee_rate=1)
    assert [coin.value for _, coin in payment.inputs] == [20 * COIN]
    payment = wallet.pay(coins, NEXT, address=BOB, amount=22 * COIN, fee_rate=1)
    assert [coin.value for _, coin in payment.inputs] == [20 * COIN, 5 * COIN]


def test_insufficient_funds_says_how_much_there_is(wallet: Wallet) -> None:
    owner = wallet.change_pubkey_hash
    young_coinbase = (OutPoint(b"\x09" * 32, 0), Coin(50 * COIN, owner, NEXT - 1, True))
    coins = [*fake_coins(30 * COIN, 20 * COIN, owner=owner), young_coinbase]
    with pytest.raises(WalletError) as caught:
        wallet.pay(coins, NEXT, address=BOB, amount=60 * COIN, fee_rate=1)
    message = str(caught.value)
    assert message.startswith("insufficient funds")
    assert f"{format_amount(50 * COIN)} coins spendable" in message
    assert format_amount(60 * COIN) in message
    assert f"{format_amount(50 * COIN)} more is immature" in message


def test_paying_everything_leaves_nothing_for_the_fee(wallet: Wallet) -> None:
    coins = fake_coins(10 * COIN, owner=wallet.change_pubkey_hash)
    with pytest.raises(WalletError, match="insufficient funds"):
        wallet.pay(coins, NEXT, address=BOB, amount=10 * COIN, fee_rate=1)
    # With a zero fee rate the same payment is possible, and has no change.
    payment = wallet.pay(coins, NEXT, address=BOB, amount=10 * COIN, fee_rate=0)
    assert (payment.fee, payment.change, len(payment.tx.outputs)) == (0, 0, 1)


def test_immature_coinbases_wait_for_their_height(
    wallet: Wallet, coins: list[tuple[OutPoint, Coin]]
) -> None:
    young = [c for c in coins if c[1].height == 12]
    with pytest.raises(WalletError, match="immature"):
        wallet.pay(young, NEXT, address=BOB, amount=COIN, fee_rate=1)
    assert wallet.pay(young, 112, address=BOB, amount=COIN, fee_rate=1).inputs == tuple(young)


def test_coins_pending_transactions_spend_are_not_used_again(
    wallet: Wallet, coins: list[tuple[OutPoint, Coin]], view: CoinsCache
) -> None:
    pool = Mempool(REGTEST)
    first = wallet.pay(coins, NEXT, address=BOB, amount=30 * COIN, fee_rate=1)
    pool.accept(first.tx, view, NEXT)
    pending = {op for op, _ in coins if pool.spender_of(op) is not None}
    second = wallet.pay(coins, NEXT, address=BOB, amount=30 * COIN, fee_rate=1, spent=pending)
    assert {op for op, _ in second.inputs}.isdisjoint(pending)
    pool.accept(second.tx, view, NEXT)


def test_coins_of_other_keys_are_neither_counted_nor_spent(wallet: Wallet) -> None:
    mine = fake_coins(2 * COIN, owner=wallet.change_pubkey_hash)
    theirs = [(OutPoint(b"\x77" * 32, 0), Coin(90 * COIN, pkh(key("bob")), 1, False))]
    assert wallet.balance(mine + theirs, NEXT).spendable == 2 * COIN
    with pytest.raises(WalletError, match="insufficient"):
        wallet.pay(mine + theirs, NEXT, address=BOB, amount=5 * COIN, fee_rate=1)


def test_the_balance_separates_spendable_immature_and_pending(
    wallet: Wallet, coins: list[tuple[OutPoint, Coin]]
) -> None:
    pending = {coins[0][0]}
    balance = wallet.balance(coins, NEXT, spent=pending)
    assert balance == Balance(
        spendable=10 * 50 * COIN, immature=99 * 50 * COIN, pending_spent=50 * COIN
    )
    assert balance.total == 110 * 50 * COIN


@pytest.mark.parametrize("amount", [0, -1, MAX_MONEY + 1])
def test_amounts_out_of_range_are_refused(
    wallet: Wallet, coins: list[tuple[OutPoint, Coin]], amount: int
) -> None:
    with pytest.raises(WalletError, match="amount"):
        wallet.pay(coins, NEXT, address=BOB, amount=amount, fee_rate=1)


def test_a_bad_or_foreign_address_is_an_address_error(
    wallet: Wallet, coins: list[tuple[OutPoint, Coin]]
) -> None:
    typo = BOB[:-1] + ("1" if BOB[-1] != "1" else "2")
    demo = encode_address(pkh(key("bob")), DEMO.address_version)
    for address in (typo, demo):
        with pytest.raises(AddressError):
            wallet.pay(coins, NEXT, address=address, amount=COIN, fee_rate=1)


def test_a_payment_needing_too_many_small_coins_is_refused_clearly(wallet: Wallet) -> None:
    owner = wallet.change_pubkey_hash
    coins = [
        (OutPoint(n.to_bytes(32, "big"), 0), Coin(10_000, owner, 1, False)) for n in range(800)
    ]
    with pytest.raises(WalletError, match="too many for one transaction"):
        wallet.pay(coins, NEXT, address=BOB, amount=790 * 10_000 - 200_000, fee_rate=1)
