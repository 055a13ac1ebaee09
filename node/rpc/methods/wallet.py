"""The node's wallet: addresses, balance, coins and payments (bitcoind's ``wallet/rpc``).

One wallet per node, in ``wallet.json`` in the data directory (see
:mod:`node.rpc.wallet_service`); a node started without a wallet answers these methods with
-32601, as bitcoind built without its wallet does.
"""

from __future__ import annotations

from typing import Any

from node.core.address import decode_address
from node.core.errors import AddressError, WalletError
from node.rpc.context import RpcContext
from node.rpc.errors import RpcCode, RpcError
from node.rpc.jsonfmt import Amount
from node.rpc.registry import AmountParam, Arr, Int, MethodTable, Param, Str
from node.rpc.wallet_service import WalletCoin, insufficient_funds

table = MethodTable("wallet")

MAX_CONFIRMATIONS = 9_999_999


@table.method(
    "getnewaddress",
    Param("label", Str(max_length=256), "", help="ignored: this wallet keeps no labels"),
)
async def getnewaddress(ctx: RpcContext, label: str) -> str:
    """A new address of the wallet (its key is saved to the key file before it is returned)."""
    return await ctx.wallet.new_address(ctx.node)


@table.method(
    "getbalance",
    Param("dummy", Str(["*"]), "*", help='must be "*" if given (bitcoind\'s legacy argument)'),
    Param("minconf", Int(0, MAX_CONFIRMATIONS), 0, help="count coins with this many confirmations"),
)
async def getbalance(ctx: RpcContext, dummy: str, minconf: int) -> Amount:
    """What the wallet can spend now: mature coins no pending transaction spends.

    Outputs of mempool transactions count (0 confirmations) unless ``minconf`` excludes them.
    """
    coins = await ctx.wallet.unspent(ctx.node)
    return Amount(sum(c.coin.value for c in coins if c.spendable and c.confirmations >= minconf))


@table.method("getbalances")
async def getbalances(ctx: RpcContext) -> dict[str, Any]:
    """The wallet's coins by state: trusted (confirmed, spendable), untrusted_pending
    (outputs of mempool transactions) and immature (young coinbase outputs)."""
    balance = await ctx.wallet.balance(ctx.node)
    coins = await ctx.wallet.unspent(ctx.node)
    pending = sum(c.coin.value for c in coins if c.spendable and c.confirmations == 0)
    return {
        "mine": {
            "trusted": Amount(balance.spendable - pending),
            "untrusted_pending": Amount(pending),
            "immature": Amount(balance.immature),
        }
    }


def unspent_json(coin: WalletCoin) -> dict[str, Any]:
    return {
        "txid": coin.outpoint.txid[::-1].hex(),
        "vout": coin.outpoint.index,
        "address": coin.address,
        "amount": Amount(coin.coin.value),
        "confirmations": coin.confirmations,
        "coinbase": coin.coin.is_coinbase,
        "spendable": coin.spendable,
        "solvable": True,
        "safe": coin.confirmations > 0,
    }


@table.method(
    "listunspent",
    Param("minconf", Int(0, MAX_CONFIRMATIONS), 1, help="at least this many confirmations"),
    Param("maxconf", Int(0, MAX_CONFIRMATIONS), MAX_CONFIRMATIONS, help="at most this many"),
    Param("addresses", Arr(Str(max_length=64)), None, help="only coins of these addresses"),
)
async def listunspent(
    ctx: RpcContext, minconf: int, maxconf: int, addresses: list[str] | None
) -> list[dict[str, Any]]:
    """The wallet's spendable coins: mature, not spent by a mempool transaction."""
    wanted: set[str] | None = None
    if addresses is not None:
        version = ctx.node.params.address_version
        for address in addresses:
            try:
                decode_address(address, version)
            except AddressError:
                raise RpcError(
                    RpcCode.INVALID_ADDRESS_OR_KEY, f"Invalid address: {address}"
                ) from None
        wanted = set(addresses)
    coins = await ctx.wallet.unspent(ctx.node)
    return [
        unspent_json(c)
        for c in coins
        if c.spendable
        and minconf <= c.confirmations <= maxconf
        and (wanted is None or c.address in wanted)
    ]


@table.method(
    "sendtoaddress",
    Param("address", Str(max_length=64), help="the address to pay"),
    Param("amount", AmountParam(), help="coins to send, e.g. 0.1"),
    Param("comment", Str(max_length=1000), "", help="ignored: this wallet keeps no history"),
    Param("comment_to", Str(max_length=1000), "", help="ignored"),
    Param("fee_rate", Int(0, 1_000_000), None, help="units per byte (default: the relay minimum)"),
)
async def sendtoaddress(
    ctx: RpcContext,
    *,
    address: str,
    amount: int,
    comment: str,
    comment_to: str,
    fee_rate: int | None,
) -> str:
    """Pay ``amount`` coins to ``address`` from the wallet, change back to it; returns the txid.

    ``fee_rate`` is the fifth parameter here (bitcoind has other, unsupported options before
    it); pass it by name to be safe.
    """
    try:
        payment = await ctx.wallet.send(ctx.node, address, amount, fee_rate)
    except AddressError as exc:
        raise RpcError(RpcCode.INVALID_ADDRESS_OR_KEY, f"Invalid address: {exc}") from None
    except WalletError as exc:
        if insufficient_funds(exc):
            raise RpcError(RpcCode.WALLET_INSUFFICIENT_FUNDS, str(exc)) from None
        raise RpcError(RpcCode.WALLET_ERROR, str(exc)) from None
    return payment.tx.txid_hex
