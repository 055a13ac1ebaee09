"""The typed method registry: every RPC method declares its parameters, and calls are checked
against the declaration before the method runs.

A declaration names each parameter, its JSON type and whether it may be omitted; the registry
binds a call's parameters (positional, as bitcoind's clients mostly send them, or named, as
bitcoin-cli's ``-named`` does) to the method's keyword arguments, and turns every mismatch into
the JSON-RPC error bitcoind gives for it:

================================  =====  ===========================================
fault                             code   message
================================  =====  ===========================================
unknown method                    -32601 Method not found
too many / missing parameters     -1     the method's usage line (bitcoind sends help)
unknown named parameter           -8     Unknown named parameter NAME
wrong JSON type                   -3     JSON value of type T is not of expected type U
value of the right type, invalid  -8     what is wrong (range, hex length, ...)
================================  =====  ===========================================

A ``null`` for an optional parameter means "omitted", as in bitcoind.

The same declarations serve ``help`` and the ``forklab rpc`` command, which uses them to know
which command-line words are JSON (numbers, booleans, objects) and which are plain strings, the
job bitcoin-cli's hand-written conversion table does.

Nothing here knows what a method does; methods live in :mod:`node.rpc.methods`.
"""

from __future__ import annotations

import inspect
import re
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Generic, TypeVar

from node.core.hashing import hash_from_hex
from node.rpc.errors import RpcCode, RpcError, invalid_parameter
from node.rpc.jsonfmt import parse_amount

T = TypeVar("T")
Handler = Callable[..., Awaitable[Any]]


def json_type_name(value: Any) -> str:
    """The JSON type of a decoded value, named as bitcoind's UniValue names it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float | Decimal):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _type_error(value: Any, expected: str) -> RpcError:
    return RpcError(
        RpcCode.TYPE_ERROR,
        f"JSON value of type {json_type_name(value)} is not of expected type {expected}",
    )


class ParamType(ABC, Generic[T]):
    """How one parameter is checked and converted; subclasses are the JSON types we accept."""

    json_type = "any"
    """How help and the CLI describe it: string, number, bool, amount, hex, object, array."""

    is_string = False
    """Whether a command-line word is passed as a string as-is rather than parsed as JSON."""

    @abstractmethod
    def convert(self, value: Any, name: str) -> T:
        """``value`` as the handler takes it; RpcError (-3 or -8) when it is not acceptable."""


class Int(ParamType[int]):
    json_type = "number"

    def __init__(self, low: int | None = None, high: int | None = None) -> None:
        self.low = low
        self.high = high

    def convert(self, value: Any, name: str) -> int:
        if isinstance(value, bool):
            raise _type_error(value, "number")
        if isinstance(value, Decimal) and value == value.to_integral_value():
            value = int(value)
        if not isinstance(value, int):
            raise _type_error(value, "number")
        if self.low is not None and value < self.low:
            raise invalid_parameter(f"{name} must be at least {self.low}, got {value}")
        if self.high is not None and value > self.high:
            raise invalid_parameter(f"{name} must be at most {self.high}, got {value}")
        return value


class Bool(ParamType[bool]):
    json_type = "bool"

    def convert(self, value: Any, name: str) -> bool:
        if not isinstance(value, bool):
            raise _type_error(value, "bool")
        return value


class Str(ParamType[str]):
    json_type = "string"
    is_string = True

    def __init__(self, choices: Sequence[str] | None = None, max_length: int = 10_000) -> None:
        self.choices = tuple(choices) if choices is not None else None
        self.max_length = max_length

    def convert(self, value: Any, name: str) -> str:
        if not isinstance(value, str):
            raise _type_error(value, "string")
        if len(value) > self.max_length:
            raise invalid_parameter(f"{name} is longer than {self.max_length} characters")
        if self.choices is not None and value not in self.choices:
            raise invalid_parameter(
                f"{name} must be one of {', '.join(self.choices)}, got {value!r}"
            )
        return value


class HashHex(ParamType[bytes]):
    """A block hash or txid as users write it (byte-reversed hex); returns internal order."""

    json_type = "hex"
    is_string = True

    def convert(self, value: Any, name: str) -> bytes:
        if not isinstance(value, str):
            raise _type_error(value, "string")
        # bitcoind's ParseHashV wording, so scripts matching it keep working.
        if len(value) != 64:
            raise invalid_parameter(
                f"{name} must be of length 64 (not {len(value)}, for '{value[:80]}')"
            )
        if not _HEX.fullmatch(value):
            raise invalid_parameter(f"{name} must be hexadecimal string (not '{value[:80]}')")
        return hash_from_hex(value)


_HEX = re.compile(r"(?:[0-9a-fA-F]{2})*")


class Hex(ParamType[bytes]):
    """Arbitrary bytes as hex (raw transactions and blocks)."""

    json_type = "hex"
    is_string = True

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes

    def convert(self, value: Any, name: str) -> bytes:
        if not isinstance(value, str):
            raise _type_error(value, "string")
        if len(value) > 2 * self.max_bytes:
            raise invalid_parameter(f"{name} is larger than {self.max_bytes} bytes")
        if not _HEX.fullmatch(value):
            raise invalid_parameter(f"{name} must be hexadecimal string (not '{value[:80]}')")
        return bytes.fromhex(value)


class AmountParam(ParamType[int]):
    """An amount in coins (number or string), converted exactly to the smallest unit."""

    json_type = "amount"

    def __init__(self, *, allow_zero: bool = False) -> None:
        self.allow_zero = allow_zero

    def convert(self, value: Any, name: str) -> int:
        return parse_amount(value, allow_zero=self.allow_zero)


class IntOrBool(ParamType[int]):
    """An integer, or a boolean meaning 1/0 (getblock's verbosity, getrawtransaction's verbose)."""

    json_type = "number"

    def __init__(self, low: int, high: int) -> None:
        self._int = Int(low, high)

    def convert(self, value: Any, name: str) -> int:
        if isinstance(value, bool):
            return int(value)
        return self._int.convert(value, name)


class Obj(ParamType[dict[str, Any]]):
    json_type = "object"

    def convert(self, value: Any, name: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise _type_error(value, "object")
        return value


class Arr(ParamType[list[Any]]):
    json_type = "array"

    def __init__(self, item: ParamType[Any], max_items: int = 10_000) -> None:
        self.item = item
        self.max_items = max_items

    def convert(self, value: Any, name: str) -> list[Any]:
        if not isinstance(value, list):
            raise _type_error(value, "array")
        if len(value) > self.max_items:
            raise invalid_parameter(f"{name} holds more than {self.max_items} items")
        return [self.item.convert(v, f"{name}[{n}]") for n, v in enumerate(value)]


_REQUIRED = object()


@dataclass(frozen=True)
class Param:
    name: str
    type: ParamType[Any]
    default: Any = _REQUIRED
    help: str = ""

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED


@dataclass(frozen=True)
class Method:
    """One RPC method: its name, parameters and the coroutine that serves it."""

    name: str
    category: str
    params: tuple[Param, ...]
    handler: Handler
    summary: str
    description: str

    @property
    def usage(self) -> str:
        """bitcoind's usage line: strings quoted, the optional tail in one pair of parentheses."""
        required = [_word(p) for p in self.params if p.required]
        optional = [_word(p) for p in self.params if not p.required]
        words = [self.name, *required]
        if optional:
            words.append(f"( {' '.join(optional)} )")
        return " ".join(words)

    def help_text(self) -> str:
        lines = [self.usage, "", self.description or self.summary]
        if self.params:
            lines += ["", "Arguments:"]
            for n, p in enumerate(self.params, 1):
                need = "required" if p.required else f"optional, default={_show(p.default)}"
                lines.append(f"{n}. {p.name}    ({p.type.json_type}, {need}) {p.help}".rstrip())
        return "\n".join(lines)

    def bind(self, params: Any) -> dict[str, Any]:
        """Check ``params`` (a JSON array or object) and return the handler's keyword args."""
        values: dict[str, Any] = {}
        if isinstance(params, list):
            if len(params) > len(self.params):
                raise RpcError(
                    RpcCode.MISC_ERROR,
                    f"too many parameters ({len(params)}); usage: {self.usage}",
                )
            for param, value in zip(self.params, params, strict=False):
                values[param.name] = value
        elif isinstance(params, dict):
            known = {p.name for p in self.params}
            for key, value in params.items():
                if key not in known:
                    raise invalid_parameter(f"Unknown named parameter {key}")
                values[key] = value
        else:
            raise RpcError(RpcCode.INVALID_REQUEST, "Params must be an array or object")
        kwargs: dict[str, Any] = {}
        for position, param in enumerate(self.params, 1):
            value = values.get(param.name)
            if value is None:
                if param.required:
                    raise RpcError(
                        RpcCode.MISC_ERROR,
                        f"missing required parameter {param.name} (position {position}); "
                        f"usage: {self.usage}",
                    )
                kwargs[param.name] = param.default
                continue
            try:
                kwargs[param.name] = param.type.convert(value, param.name)
            except RpcError as exc:
                if exc.code is RpcCode.TYPE_ERROR:
                    raise RpcError(
                        exc.code, f"Wrong type for {param.name} (position {position}): {exc}"
                    ) from None
                raise
        return kwargs


def _word(param: Param) -> str:
    return f'"{param.name}"' if param.type.is_string else param.name


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass
class MethodTable:
    """The methods of one area (blockchain, mining, ...), collected by the :meth:`method`
    decorator when its module is imported; the registry merges the tables."""

    category: str
    methods: list[Method] = field(default_factory=list)

    def method(self, name: str, *params: Param) -> Callable[[Handler], Handler]:
        seen_optional = False
        for param in params:
            if param.required and seen_optional:
                raise ValueError(f"{name}: required parameter {param.name} after an optional one")
            seen_optional = seen_optional or not param.required

        def decorate(handler: Handler) -> Handler:
            doc = inspect.cleandoc(handler.__doc__ or "")
            summary = " ".join(doc.split("\n\n", 1)[0].split())
            self.methods.append(Method(name, self.category, params, handler, summary, doc))
            return handler

        return decorate


class Registry:
    """Every method by name; immutable once built."""

    def __init__(self, tables: Iterable[MethodTable]) -> None:
        methods: dict[str, Method] = {}
        for table in tables:
            for method in table.methods:
                if method.name in methods:
                    raise ValueError(f"RPC method {method.name} is registered twice")
                methods[method.name] = method
        self._methods: Mapping[str, Method] = methods

    def get(self, name: str) -> Method:
        method = self._methods.get(name)
        if method is None:
            raise RpcError(RpcCode.METHOD_NOT_FOUND, "Method not found")
        return method

    def __contains__(self, name: object) -> bool:
        return name in self._methods

    def __iter__(self) -> Iterator[Method]:
        """Every method, by category and name."""
        return iter(sorted(self._methods.values(), key=lambda m: (m.category, m.name)))

    def __len__(self) -> int:
        return len(self._methods)

    def help(self, command: str | None = None) -> str:
        """bitcoind's ``help``: every usage line by category, or one method's full help."""
        if command is not None:
            if command not in self._methods:
                return f"help: unknown command: {command}"
            return self._methods[command].help_text()
        lines: list[str] = []
        category = None
        for method in self:
            if method.category != category:
                if lines:
                    lines.append("")
                category = method.category
                lines.append(f"== {category.capitalize()} ==")
            lines.append(method.usage)
        return "\n".join(lines)
