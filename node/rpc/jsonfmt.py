"""JSON for the API: amounts written as bitcoind writes BTC, read without float error.

bitcoind shows amounts as JSON numbers with exactly eight decimals (``"amount": 50.00000000``),
never as floats that lose digits (0.1 + 0.2) or as strings. Python's :mod:`json` cannot write a
number with a chosen spelling, so :func:`dumps` is a small writer of its own for the values the
API produces (dicts with string keys, lists, tuples, str, int, bool, None, finite floats and
:class:`Amount`). Reading goes through :func:`loads`, which keeps every JSON number with a
fraction or exponent as a :class:`~decimal.Decimal`, so ``0.1`` arrives as exactly one tenth.

:func:`parse_amount` turns what a caller sent (a number or a string) into an integer amount of
the smallest unit, following bitcoind's ``AmountFromValue``: at most eight decimals, within
``0..MAX_MONEY``, RPC_TYPE_ERROR (-3) otherwise.

This module does not know which fields are amounts; the code that builds a reply says so by
wrapping values in :class:`Amount`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from node.core.tx import COIN, MAX_MONEY, format_amount
from node.rpc.errors import RpcCode, RpcError

AMOUNT_DECIMALS = 8


@dataclass(frozen=True)
class Amount:
    """An amount in the smallest unit, written in coins with eight decimals."""

    value: int

    def __str__(self) -> str:
        return format_amount(self.value)


def loads(text: str | bytes) -> Any:
    """Parse JSON keeping fractional numbers exact (as Decimal); raises ValueError."""
    return json.loads(text, parse_float=Decimal, parse_constant=_refuse_constant)


def _refuse_constant(name: str) -> Any:
    # NaN and Infinity are not JSON; Python's parser accepts them unless told otherwise.
    raise ValueError(f"{name} is not valid JSON")


def dumps(value: Any, *, indent: int | None = None) -> str:
    """JSON of ``value``; :class:`Amount` as a number with eight decimals.

    Compact by default; with ``indent``, one member per line as bitcoin-cli prints results.
    """
    parts: list[str] = []
    _write(value, parts, indent, 0)
    return "".join(parts)


def _write(value: Any, out: list[str], indent: int | None, level: int) -> None:
    # Order matters: bool before int (bool is an int), Amount before anything generic.
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, Amount):
        out.append(format_amount(value.value))
    elif isinstance(value, str):
        out.append(json.dumps(value))
    elif isinstance(value, int):
        out.append(int.__repr__(value))
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value} cannot be written as JSON")
        out.append(float.__repr__(value))
    elif isinstance(value, Decimal):
        out.append(_decimal(value))
    elif isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise TypeError(f"JSON object keys must be strings, not {type(key).__name__}")
        colon = ":" if indent is None else ": "
        items = [(json.dumps(key) + colon, v) for key, v in value.items()]
        _write_container("{}", items, out, indent, level)
    elif isinstance(value, list | tuple):
        _write_container("[]", [("", v) for v in value], out, indent, level)
    else:
        raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _decimal(value: Decimal) -> str:
    """A Decimal as the number it was read from: positional notation where that is readable
    (``0E-8`` from ``0.00000000`` is written back as ``0.00000000``), exponent otherwise."""
    if not value.is_finite():
        raise ValueError(f"{value} cannot be written as JSON")
    if -9 <= value.adjusted() <= 20:
        return f"{value:f}"
    return str(value)


def _write_container(
    brackets: str, items: list[tuple[str, Any]], out: list[str], indent: int | None, level: int
) -> None:
    out.append(brackets[0])
    if items:
        inner = "" if indent is None else "\n" + " " * (indent * (level + 1))
        for n, (prefix, item) in enumerate(items):
            if n:
                out.append(",")
            out.append(inner)
            out.append(prefix)
            _write(item, out, indent, level + 1)
        if indent is not None:
            out.append("\n" + " " * (indent * level))
    out.append(brackets[1])


def parse_amount(value: Any, *, allow_zero: bool = True) -> int:
    """An amount in coins (JSON number or string) as an integer of the smallest unit.

    Exact: the text or Decimal is scaled by 10^8 and must come out whole. Floats only arrive
    from callers inside this process; they go through their shortest repr, the number the
    caller wrote.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        raise RpcError(RpcCode.TYPE_ERROR, "Amount is not a number or string")
    try:
        coins = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation:
        raise RpcError(RpcCode.TYPE_ERROR, "Invalid amount") from None
    if not coins.is_finite():
        raise RpcError(RpcCode.TYPE_ERROR, "Invalid amount")
    units = coins * COIN
    if units != units.to_integral_value():
        raise RpcError(RpcCode.TYPE_ERROR, "Invalid amount")
    amount = int(units)
    if not 0 <= amount <= MAX_MONEY:
        raise RpcError(RpcCode.TYPE_ERROR, "Amount out of range")
    if amount == 0 and not allow_zero:
        raise RpcError(RpcCode.TYPE_ERROR, "Invalid amount for send")
    return amount
