"""``forklab wallet``: the running node's wallet, through its RPC.

::

    forklab wallet new-address            a new receiving address
    forklab wallet balance                spendable coins (add --json for the breakdown)
    forklab wallet send ADDRESS AMOUNT    pay AMOUNT coins (e.g. 1.5) to ADDRESS; prints the txid
    forklab wallet unspent                the wallet's spendable coins

The node is found as ``forklab rpc`` finds it (``--rpc``, ``--datadir``, ``--network``,
configuration file, ``FORKLAB_*`` environment). The wallet itself lives in the node's data
directory; this command holds no keys.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from node.commands.rpc import add_client_arguments, client_from_args, print_result
from node.rpc.client import RpcClient
from node.rpc.jsonfmt import dumps


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "wallet",
        help="the node's wallet: new-address, balance, send, unspent",
        description="The running node's wallet, through its RPC.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    def action(name: str, help_text: str, handler: Callable[..., Any]) -> argparse.ArgumentParser:
        sub = actions.add_parser(name, help=help_text, description=help_text)
        add_client_arguments(sub)
        sub.set_defaults(handler=lambda args: _run(args, handler))
        return sub

    action("new-address", "print a new receiving address of the wallet", _new_address)
    balance = action("balance", "print the spendable balance", _balance)
    balance.add_argument("--json", action="store_true", help="trusted, pending and immature")
    send = action("send", "pay an amount to an address; prints the txid", _send)
    send.add_argument("address", help="the address to pay")
    send.add_argument("amount", type=Decimal, help="coins, e.g. 0.5")
    send.add_argument("--fee-rate", type=int, metavar="N", help="units per byte")
    action("unspent", "list the wallet's spendable coins", _unspent)


def _run(args: argparse.Namespace, handler: Callable[[RpcClient, argparse.Namespace], Any]) -> int:
    print_result(handler(client_from_args(args), args))
    return 0


def _new_address(client: RpcClient, _args: argparse.Namespace) -> Any:
    return client.call("getnewaddress")


def _balance(client: RpcClient, args: argparse.Namespace) -> Any:
    if args.json:
        return client.call("getbalances")
    # A bare number, as bitcoin-cli prints it, eight decimals kept.
    return dumps(client.call("getbalance"))


def _send(client: RpcClient, args: argparse.Namespace) -> Any:
    params: dict[str, Any] = {"address": args.address, "amount": str(args.amount)}
    if args.fee_rate is not None:
        params["fee_rate"] = args.fee_rate
    return client.call_named("sendtoaddress", params)


def _unspent(client: RpcClient, _args: argparse.Namespace) -> Any:
    return client.call("listunspent", 0)
