"""A node process's configuration: defaults, a TOML file, environment variables and flags,
merged once into a frozen :class:`NodeConfig`.

Every option is declared once, in :data:`OPTIONS`; its command-line flag and environment
variable are derived from its TOML key (``rpc_listen``: ``--rpc-listen``,
``FORKLAB_RPC_LISTEN``). Where a value comes from follows one order of precedence, highest
first::

    command-line flag  >  environment variable (FORKLAB_*)  >  TOML file (--config)  >  default

The options (TOML key, flag, environment variable, default, meaning) are tabulated in
``docs/api.md`` (a test checks that none is missing) and shown by ``forklab node --help``.
Several defaults depend on the network: its ports and the data directory
``~/.forklab/NETWORK``.

Not to be confused with :class:`node.node.NodeConfig`, the :class:`~node.node.Node`'s own
settings, which ``forklab node`` builds from this (:func:`node.commands.node.core_config`).

Addresses bind to the loopback interface unless told otherwise: a node exposes nothing to the
network by accident. Port 0 asks the system for a free port (the ``ready`` line says which).

This module parses and checks values; it opens no socket and creates no directory.
"""

from __future__ import annotations

import argparse
import enum
import os
import tomllib
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from node.core.address import decode_address
from node.core.errors import AddressError, ForklabError
from node.core.params import PRESETS, NetworkParams, params_for

ENV_PREFIX = "FORKLAB_"
LOOPBACK = "127.0.0.1"


class ConfigError(ForklabError):
    """A configuration value that cannot be used; the message names the value and its source."""


@dataclass(frozen=True, order=True)
class Endpoint:
    """A ``HOST:PORT`` address (IPv6 hosts in brackets: ``[::1]:8444``)."""

    host: str
    port: int

    @classmethod
    def parse(cls, text: str, *, default_host: str = LOOPBACK) -> Endpoint:
        """Parse ``HOST:PORT``, ``[V6]:PORT``, or ``:PORT`` / ``PORT`` (on ``default_host``)."""
        text = text.strip()
        if text.startswith("["):
            host, sep, rest = text[1:].partition("]")
            if not sep or not rest.startswith(":"):
                raise ValueError(f"{text!r}: expected [IPV6]:PORT")
            port_text = rest[1:]
        elif ":" in text:
            host, _, port_text = text.rpartition(":")
            if ":" in host:
                raise ValueError(f"{text!r}: write IPv6 addresses in brackets, [::1]:PORT")
        else:
            host, port_text = "", text
        if not (port_text.isascii() and port_text.isdigit()) or not 0 <= int(port_text) <= 65535:
            raise ValueError(f"{text!r}: the port must be a number from 0 to 65535")
        return cls(host or default_host, int(port_text))

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def url_host(self) -> str:
        """The host as it goes in a URL; a wildcard bind is reached through loopback."""
        if self.host in ("0.0.0.0", ""):
            return LOOPBACK
        if self.host == "::":
            return "[::1]"
        return f"[{self.host}]" if ":" in self.host else self.host


class Kind(enum.Enum):
    STR = "string"
    INT = "integer"
    BOOL = "boolean"
    PATH = "path"
    ENDPOINT = "HOST:PORT"
    ENDPOINTS = "list of HOST:PORT"
    ADDRESSES = "list of addresses"


@dataclass(frozen=True)
class Option:
    """One configuration option, under its TOML key; flag and environment names derive from it."""

    key: str
    kind: Kind
    help: str
    default_text: str
    """The default as documented (several defaults depend on the network)."""
    low: int | None = None
    high: int | None = None
    metavar: str | None = None
    """How ``--help`` names the value (default: from the kind)."""

    @property
    def flag(self) -> str:
        return "--" + self.key.replace("_", "-")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.key.upper()


OPTIONS: tuple[Option, ...] = (
    Option(
        "network",
        Kind.STR,
        "chain preset: " + ", ".join(sorted(PRESETS)),
        "regtest",
        metavar="NAME",
    ),
    Option("datadir", Kind.PATH, "data directory (chain, wallet, cookie)", "~/.forklab/NETWORK"),
    Option("listen", Kind.ENDPOINT, "P2P address to listen on", "127.0.0.1:<network P2P port>"),
    Option(
        "rpc_listen",
        Kind.ENDPOINT,
        "API address (JSON-RPC, REST, events, metrics)",
        "127.0.0.1:<network RPC port>",
    ),
    Option("connect", Kind.ENDPOINTS, "peer to keep connected to (repeatable)", "none"),
    Option("rpc_user", Kind.STR, "RPC user name, besides the cookie", "none", metavar="USER"),
    Option("rpc_password", Kind.STR, "RPC password for rpc_user", "none", metavar="PASSWORD"),
    Option(
        "rest_public",
        Kind.BOOL,
        "serve read-only REST, events and metrics without credentials",
        "true",
    ),
    Option("max_inbound", Kind.INT, "inbound peer connections accepted", "32", 0, 10_000),
    Option("max_outbound", Kind.INT, "outbound peer connections the node keeps", "8", 0, 1_000),
    Option(
        "mempool_max_bytes", Kind.INT, "encoded bytes the mempool holds", "20000000", 1, 1 << 40
    ),
    Option("min_fee_rate", Kind.INT, "units per byte to enter the mempool", "1", 0, 1 << 40),
    Option(
        "seed",
        Kind.INT,
        "seed for the node's own random choices (peer selection, nonces); never its keys",
        "none (OS randomness)",
        0,
        (1 << 64) - 1,
    ),
    Option("wallet", Kind.BOOL, "keep a wallet (wallet.json) in the data directory", "true"),
    Option(
        "mining_address",
        Kind.STR,
        "address getwork's blocks pay",
        "the wallet's first address",
        metavar="ADDRESS",
    ),
    Option(
        "mining_exclude_addresses",
        Kind.ADDRESSES,
        "address whose transactions this node's block templates leave out, with everything "
        "depending on them (repeatable; a pool's mining policy, see setminingpolicy)",
        "none",
    ),
    Option("log_level", Kind.STR, "debug, info, warning or error", "info", metavar="LEVEL"),
)

_BY_KEY = {option.key: option for option in OPTIONS}
_LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass(frozen=True)
class NodeConfig:
    """Everything a node process is configured with, checked and resolved."""

    params: NetworkParams
    datadir: Path
    listen: Endpoint
    rpc_listen: Endpoint
    connect: tuple[Endpoint, ...] = ()
    rpc_user: str | None = None
    rpc_password: str | None = None
    rest_public: bool = True
    max_inbound: int = 32
    max_outbound: int = 8
    mempool_max_bytes: int = 20_000_000
    min_fee_rate: int = 1
    seed: int | None = None
    wallet: bool = True
    mining_address: str | None = None
    mining_exclude_addresses: tuple[str, ...] = ()
    log_level: str = "info"
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)
    """Where each value came from (flag, environment, file, default), for error messages."""

    @property
    def network(self) -> str:
        return self.params.name

    @property
    def rpc_url(self) -> str:
        return f"http://{self.rpc_listen.url_host}:{self.rpc_listen.port}"


def default_datadir(network: str, home: Path | None = None) -> Path:
    return (home if home is not None else Path.home()) / ".forklab" / network


def add_arguments(parser: argparse.ArgumentParser, only: Collection[str] | None = None) -> None:
    """Add ``--config`` and a flag per option (or per key in ``only``); unset flags stay None,
    so that they do not override the environment or the file."""
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help=f"TOML configuration file (env {ENV_PREFIX}CONFIG)",
    )
    for option in OPTIONS:
        if only is not None and option.key not in only:
            continue
        text = f"{option.help} (env {option.env}; default {option.default_text})"
        dest = option.key
        if option.kind is Kind.BOOL:
            parser.add_argument(
                option.flag, dest=dest, action=argparse.BooleanOptionalAction, help=text
            )
        elif option.kind in (Kind.ENDPOINTS, Kind.ADDRESSES):
            metavar = "HOST:PORT" if option.kind is Kind.ENDPOINTS else "ADDRESS"
            parser.add_argument(option.flag, dest=dest, action="append", metavar=metavar, help=text)
        else:
            metavar = option.metavar or {
                Kind.ENDPOINT: "HOST:PORT",
                Kind.PATH: "DIR",
                Kind.INT: "N",
            }.get(option.kind, "VALUE")
            parser.add_argument(option.flag, dest=dest, metavar=metavar, help=text)


def load(
    args: argparse.Namespace | Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
    *,
    home: Path | None = None,
) -> NodeConfig:
    """Merge flags (``args``), environment and the TOML file into a :class:`NodeConfig`."""
    flags = vars(args) if isinstance(args, argparse.Namespace) else dict(args)
    env = os.environ if environ is None else environ
    raw: dict[str, tuple[Any, str]] = {}

    config_path = flags.get("config") or env.get(ENV_PREFIX + "CONFIG")
    if config_path:
        for key, value in read_toml(Path(config_path)).items():
            raw[key] = (value, f"{config_path}: {key}")
    for option in OPTIONS:
        if option.env in env:
            raw[option.key] = (_from_env(option, env[option.env]), option.env)
        flag_value = flags.get(option.key)
        if flag_value is not None:
            raw[option.key] = (flag_value, option.flag)

    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for key, (value, source) in raw.items():
        values[key] = _convert(_BY_KEY[key], value, source)
        sources[key] = source
    return _resolve(values, sources, home)


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"configuration file {path} does not exist") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"configuration file {path}: {exc}") from exc
    # A [node] table is accepted too, so one file can hold several tools' sections.
    if isinstance(data.get("node"), dict):
        data = {**{k: v for k, v in data.items() if k != "node"}, **data["node"]}
    unknown = sorted(set(data) - set(_BY_KEY))
    if unknown:
        raise ConfigError(
            f"configuration file {path}: unknown key(s) {', '.join(unknown)}; "
            f"known keys: {', '.join(_BY_KEY)}"
        )
    return data


def _from_env(option: Option, text: str) -> Any:
    if option.kind in (Kind.ENDPOINTS, Kind.ADDRESSES):
        return [part for part in (p.strip() for p in text.split(",")) if part]
    return text


def _convert(option: Option, value: Any, source: str) -> Any:
    converter = _CONVERTERS[option.kind]
    try:
        result = converter(value)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{source}: {exc}") from None
    if option.kind is Kind.INT:
        if option.low is not None and result < option.low:
            raise ConfigError(f"{source}: must be at least {option.low}, got {result}")
        if option.high is not None and result > option.high:
            raise ConfigError(f"{source}: must be at most {option.high}, got {result}")
    return result


def _to_str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {value!r}")
    return value


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError(f"expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    raise ValueError(f"expected an integer, got {value!r}")


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError(f"expected true or false, got {value!r}")


def _to_path(value: Any) -> Path:
    if isinstance(value, Path):
        return value.expanduser()
    return Path(_to_str(value)).expanduser()


def _to_endpoint(value: Any) -> Endpoint:
    return Endpoint.parse(_to_str(value))


def _to_endpoints(value: Any) -> tuple[Endpoint, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple):
        raise TypeError(f"expected a list of HOST:PORT, got {value!r}")
    return tuple(Endpoint.parse(_to_str(item)) for item in value)


def _to_strs(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple):
        raise TypeError(f"expected a list of strings, got {value!r}")
    return tuple(_to_str(item).strip() for item in value)


_CONVERTERS: dict[Kind, Callable[[Any], Any]] = {
    Kind.STR: _to_str,
    Kind.INT: _to_int,
    Kind.BOOL: _to_bool,
    Kind.PATH: _to_path,
    Kind.ENDPOINT: _to_endpoint,
    Kind.ENDPOINTS: _to_endpoints,
    Kind.ADDRESSES: _to_strs,
}


def _resolve(values: dict[str, Any], sources: dict[str, str], home: Path | None) -> NodeConfig:
    network = values.pop("network", "regtest")
    try:
        params = params_for(network)
    except ValueError as exc:
        raise ConfigError(f"{sources.get('network', 'network')}: {exc}") from None
    user, password = values.get("rpc_user"), values.get("rpc_password")
    if (user is None) != (password is None):
        raise ConfigError("rpc_user and rpc_password must be given together")
    if password is not None and not password:
        raise ConfigError(f"{sources['rpc_password']}: the RPC password must not be empty")
    if user is not None and ":" in user:
        raise ConfigError(f"{sources['rpc_user']}: the RPC user name must not contain ':'")
    mining_address = values.get("mining_address")
    if mining_address is not None:
        try:
            decode_address(mining_address, params.address_version)
        except AddressError as exc:
            raise ConfigError(f"{sources['mining_address']}: {exc}") from None
    for address in values.get("mining_exclude_addresses", ()):
        try:
            decode_address(address, params.address_version)
        except AddressError as exc:
            raise ConfigError(
                f"{sources['mining_exclude_addresses']}: {address!r}: {exc}"
            ) from None
    level = values.get("log_level", "info").lower()
    if level not in _LOG_LEVELS:
        raise ConfigError(
            f"{sources.get('log_level')}: log level must be one of {', '.join(_LOG_LEVELS)}"
        )
    values["log_level"] = level
    values.setdefault("datadir", default_datadir(params.name, home))
    values.setdefault("listen", Endpoint(LOOPBACK, params.default_p2p_port))
    values.setdefault("rpc_listen", Endpoint(LOOPBACK, params.default_rpc_port))
    return NodeConfig(params=params, sources=sources, **values)


def describe(options: Sequence[Option] = OPTIONS) -> list[tuple[str, str, str, str, str]]:
    """Rows of (TOML key, flag, environment variable, default, meaning), for the docs."""
    return [(o.key, o.flag, o.env, o.default_text, o.help) for o in options]
