"""``forklab rpc METHOD [PARAMS...]``: call a running node's JSON-RPC, as bitcoin-cli does.

::

    forklab rpc getblockcount
    forklab rpc getblockhash 0
    forklab rpc --named getblock blockhash=00ab... verbosity=2
    forklab rpc --rpc http://127.0.0.1:18443 --rpc-user u --rpc-password p getpeerinfo

Which node: ``--rpc URL`` if given, else the ``rpc_listen`` address of the node configuration
(flags, ``FORKLAB_*`` environment, ``--config`` file: the same options ``forklab node`` reads).
Credentials: ``--rpc-user``/``--rpc-password`` if configured, else the cookie file in the data
directory (``--datadir``, or the network's default).

Parameters are words on the command line. The method's declaration (the server's registry,
imported here) says which are strings, passed as they are, and which are JSON (numbers,
booleans, arrays, objects), parsed first; for a method this client does not know, a word that
parses as JSON is sent as JSON, any other as a string.

Output as bitcoin-cli prints it: a string result bare, null as nothing, anything else as JSON
indented by two spaces (amounts keep their eight decimals). An RPC error prints
``error code: N`` and ``error message:`` on stderr and exits with ``abs(N)`` when that fits an
exit status (bitcoin-cli's convention; -8 exits 8), else 1.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from node import config
from node.rpc.auth import read_cookie
from node.rpc.client import DEFAULT_TIMEOUT, RpcCallError, RpcClient
from node.rpc.jsonfmt import dumps, loads
from node.rpc.methods import build_registry

CLIENT_OPTIONS = ("network", "datadir", "rpc_listen", "rpc_user", "rpc_password")


def add_client_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every command that talks to a node over RPC takes."""
    parser.add_argument(
        "--rpc", metavar="URL", help="node API URL, http://HOST:PORT (default: from rpc_listen)"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="S",
        help=f"seconds to wait for a reply (default {DEFAULT_TIMEOUT:g})",
    )
    config.add_arguments(parser, only=CLIENT_OPTIONS)


def client_from_args(args: argparse.Namespace) -> RpcClient:
    cfg = config.load({key: getattr(args, key, None) for key in (*CLIENT_OPTIONS, "config")})
    url = args.rpc or cfg.rpc_url
    if cfg.rpc_user is not None and cfg.rpc_password is not None:
        user, password = cfg.rpc_user, cfg.rpc_password
    else:
        user, password = read_cookie(cfg.datadir)
    return RpcClient(url, user, password, timeout=args.timeout)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "rpc",
        help="call a node's JSON-RPC method (like bitcoin-cli)",
        description="Call a running node's JSON-RPC method, as bitcoin-cli does.",
    )
    add_client_arguments(parser)
    parser.add_argument(
        "--named", action="store_true", help="pass parameters as NAME=VALUE (bitcoin-cli -named)"
    )
    parser.add_argument("method", metavar="METHOD", help="RPC method (try: help)")
    parser.add_argument("params", metavar="PARAM", nargs="*", help="method parameters")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    string_params = _string_params(args.method)
    params: list[Any] | dict[str, Any]
    if args.named:
        named: dict[str, Any] = {}
        for word in args.params:
            name, sep, text = word.partition("=")
            if not sep:
                print(f"forklab rpc: error: {word!r} is not NAME=VALUE", file=sys.stderr)
                return 2
            named[name] = _convert(text, string_params.get(name) if string_params else None)
        params = named
    else:
        names = list(string_params) if string_params else []
        params = [
            _convert(word, _is_string(names, string_params, n))
            for n, word in enumerate(args.params)
        ]
    client = client_from_args(args)
    try:
        result = (
            client.call_named(args.method, params)
            if isinstance(params, dict)
            else client.call(args.method, *params)
        )
    except RpcCallError as exc:
        print(f"error code: {exc.code}\nerror message:\n{exc.message}", file=sys.stderr)
        return abs(exc.code) if 0 < abs(exc.code) < 256 else 1
    print_result(result)
    return 0


def print_result(result: Any) -> None:
    if result is None:
        return
    if isinstance(result, str):
        print(result)
    else:
        print(dumps(result, indent=2))


def _string_params(method: str) -> dict[str, bool] | None:
    """Parameter name -> whether it is a string, for a method this client knows."""
    registry = build_registry()
    if method not in registry:
        return None
    return {p.name: p.type.is_string for p in registry.get(method).params}


def _is_string(names: Sequence[str], kinds: dict[str, bool] | None, position: int) -> bool | None:
    if kinds is None or position >= len(names):
        return None
    return kinds[names[position]]


def _convert(word: str, is_string: bool | None) -> Any:
    """A command-line word as a parameter: as is for strings, else parsed as JSON."""
    if is_string:
        return word
    try:
        return loads(word)
    except ValueError:
        # Unknown method or a malformed number: send the word, and let the server say what
        # it expected (a type error names the parameter).
        return word
