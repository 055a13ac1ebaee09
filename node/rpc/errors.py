"""JSON-RPC error codes and the one exception every RPC method raises.

The codes are bitcoind's (``src/rpc/protocol.h``), so scripts written against bitcoind can test
for the same numbers: a wrong parameter is -8, a wrong JSON type -3, an unknown block -5, a
transaction the mempool refuses -26. JSON-RPC's own codes (-32600...-32700) are used only for
faults of the request itself, never for what a method found wrong with its arguments.

How a forklab error becomes an RPC error is decided here too (:func:`from_forklab_error`), so
every method maps the same exception to the same code.

This module knows nothing of HTTP; which HTTP status goes with which code is
:mod:`node.rpc.jsonrpc`'s business.
"""

from __future__ import annotations

import enum
from typing import Any

from node.core.errors import (
    AddressError,
    DecodeError,
    ErrorCode,
    ForklabError,
    RuleError,
    WalletError,
)


class RpcCode(enum.IntEnum):
    """bitcoind's RPC error codes (the subset forklab can produce, same numbers)."""

    # -- faults of the JSON-RPC request itself (JSON-RPC 2.0's reserved range)
    INVALID_REQUEST = -32600
    METHOD_NOT_FOUND = -32601
    INVALID_PARAMS = -32602
    INTERNAL_ERROR = -32603
    PARSE_ERROR = -32700
    # -- general application errors
    MISC_ERROR = -1
    TYPE_ERROR = -3
    INVALID_ADDRESS_OR_KEY = -5
    OUT_OF_MEMORY = -7
    INVALID_PARAMETER = -8
    DATABASE_ERROR = -20
    DESERIALIZATION_ERROR = -22
    VERIFY_ERROR = -25
    VERIFY_REJECTED = -26
    VERIFY_ALREADY_IN_CHAIN = -27
    IN_WARMUP = -28
    METHOD_DEPRECATED = -32
    # -- P2P client errors
    CLIENT_NOT_CONNECTED = -9
    CLIENT_IN_INITIAL_DOWNLOAD = -10
    CLIENT_NODE_ALREADY_ADDED = -23
    CLIENT_NODE_NOT_ADDED = -24
    CLIENT_NODE_NOT_CONNECTED = -29
    CLIENT_INVALID_IP_OR_SUBNET = -30
    CLIENT_P2P_DISABLED = -31
    # -- wallet errors
    WALLET_ERROR = -4
    WALLET_INSUFFICIENT_FUNDS = -6


class RpcError(Exception):
    """An error answered to the caller as a JSON-RPC error object ``{code, message}``."""

    def __init__(self, code: RpcCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def to_json(self) -> dict[str, Any]:
        return {"code": int(self.code), "message": self.message}


def invalid_parameter(message: str) -> RpcError:
    return RpcError(RpcCode.INVALID_PARAMETER, message)


# Reasons bitcoind reports with their own code rather than "rejected".
_ALREADY_KNOWN = frozenset({ErrorCode.TXN_ALREADY_IN_MEMPOOL, ErrorCode.TXN_ALREADY_KNOWN})
_MISSING_INPUTS = frozenset({ErrorCode.BAD_TXNS_INPUTS_MISSINGORSPENT})


def from_forklab_error(exc: ForklabError) -> RpcError:
    """The RPC error for a forklab error raised while serving a call.

    A refused transaction follows bitcoind's ``sendrawtransaction``: missing or spent inputs
    are -25 (RPC_VERIFY_ERROR), every other rule -26 (RPC_VERIFY_REJECTED) with the reject
    reason as the message, so clients can match Bitcoin Core's strings. Internal errors are
    -1 and say so: the fault is ours, not the caller's.
    """
    if isinstance(exc, RuleError):
        if exc.code in _MISSING_INPUTS:
            return RpcError(RpcCode.VERIFY_ERROR, exc.reason)
        if exc.code in _ALREADY_KNOWN:
            return RpcError(RpcCode.VERIFY_ALREADY_IN_CHAIN, exc.reason)
        return RpcError(RpcCode.VERIFY_REJECTED, str(exc))
    if isinstance(exc, DecodeError):
        return RpcError(RpcCode.DESERIALIZATION_ERROR, f"decode failed: {exc}")
    if isinstance(exc, AddressError):
        return RpcError(RpcCode.INVALID_ADDRESS_OR_KEY, f"Invalid address: {exc}")
    if isinstance(exc, WalletError):
        return RpcError(RpcCode.WALLET_ERROR, str(exc))
    return RpcError(RpcCode.MISC_ERROR, f"internal error: {exc}")
