"""Configuration: defaults, TOML file, ``FORKLAB_*`` environment and flags merged with
precedence flags > environment > file > defaults, and every bad value refused with its source.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node import config
from node.config import ConfigError, Endpoint
from node.core.params import DEMO, REGTEST

HOME = Path("/home/someone")


def load(
    flags: dict[str, Any] | None = None, env: dict[str, str] | None = None
) -> config.NodeConfig:
    return config.load(flags or {}, env or {}, home=HOME)


def parse_flags(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    config.add_arguments(parser)
    return parser.parse_args(argv)


def test_defaults_are_regtest_on_loopback() -> None:
    cfg = load()
    assert cfg.params is REGTEST
    assert cfg.datadir == HOME / ".forklab" / "regtest"
    assert cfg.listen == Endpoint("127.0.0.1", REGTEST.default_p2p_port)
    assert cfg.rpc_listen == Endpoint("127.0.0.1", REGTEST.default_rpc_port)
    assert cfg.connect == () and cfg.rest_public and cfg.wallet
    assert cfg.rpc_url == f"http://127.0.0.1:{REGTEST.default_rpc_port}"


def test_network_chooses_the_derived_defaults() -> None:
    cfg = load({"network": "demo"})
    assert cfg.params is DEMO
    assert cfg.datadir == HOME / ".forklab" / "demo"
    assert cfg.rpc_listen.port == DEMO.default_rpc_port


def test_precedence_flags_over_env_over_file(tmp_path: Path) -> None:
    file = tmp_path / "f.toml"
    file.write_text(
        'network = "demo"\nmax_inbound = 3\nmin_fee_rate = 7\nrpc_listen = "127.0.0.1:1"\n'
    )
    env = {"FORKLAB_CONFIG": str(file), "FORKLAB_MAX_INBOUND": "4", "FORKLAB_RPC_LISTEN": ":2"}
    cfg = load(vars(parse_flags("--rpc-listen", "127.0.0.1:3")), env)
    assert cfg.params is DEMO  # file only
    assert cfg.min_fee_rate == 7  # file only
    assert cfg.max_inbound == 4  # env beats file
    assert cfg.rpc_listen == Endpoint("127.0.0.1", 3)  # flag beats env and file
    assert cfg.sources["max_inbound"] == "FORKLAB_MAX_INBOUND"
    assert cfg.sources["rpc_listen"] == "--rpc-listen"


def test_connect_is_repeatable_and_comma_separated_in_the_environment() -> None:
    flags = parse_flags("--connect", "127.0.0.1:1", "--connect", "[::1]:2")
    assert load(vars(flags)).connect == (Endpoint("127.0.0.1", 1), Endpoint("::1", 2))
    assert load(env={"FORKLAB_CONNECT": "a:1, b:2"}).connect == (Endpoint("a", 1), Endpoint("b", 2))


def test_boolean_flags_and_environment() -> None:
    assert load(vars(parse_flags("--no-rest-public"))).rest_public is False
    assert load(env={"FORKLAB_REST_PUBLIC": "off"}).rest_public is False
    assert load(env={"FORKLAB_WALLET": "yes"}).wallet is True


def test_a_node_table_in_the_file_is_read(tmp_path: Path) -> None:
    file = tmp_path / "f.toml"
    file.write_text('[node]\nnetwork = "demo"\nconnect = ["127.0.0.1:5"]\n')
    cfg = load({"config": file})
    assert cfg.params is DEMO and cfg.connect == (Endpoint("127.0.0.1", 5),)


BAD: list[tuple[dict[str, Any], dict[str, str], str]] = [
    ({"network": "moon"}, {}, "unknown network"),
    ({"rpc_listen": "localhost:70000"}, {}, "--rpc-listen"),
    ({"listen": "::1:5"}, {}, "brackets"),
    ({}, {"FORKLAB_MAX_INBOUND": "many"}, "FORKLAB_MAX_INBOUND"),
    ({}, {"FORKLAB_MAX_INBOUND": "-1"}, "at least 0"),
    ({}, {"FORKLAB_REST_PUBLIC": "maybe"}, "true or false"),
    ({"rpc_user": "alice"}, {}, "together"),
    ({"rpc_user": "a:b", "rpc_password": "x"}, {}, "':'"),
    ({"rpc_user": "a", "rpc_password": ""}, {}, "empty"),
    ({"mining_address": "bogus"}, {}, "--mining-address"),
    ({"log_level": "loud"}, {}, "log level"),
]


@pytest.mark.parametrize(("flags", "env", "message"), BAD)
def test_bad_values_name_their_source(
    flags: dict[str, Any], env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load(flags, env)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("network = 'demo'\ncolour = 'blue'\n", "unknown key"),
        ("network = ", "f.toml"),
        ("max_inbound = 'ten'\n", "max_inbound"),
        ("connect = 5\n", "connect"),
    ],
)
def test_bad_files_are_refused(tmp_path: Path, content: str, message: str) -> None:
    file = tmp_path / "f.toml"
    file.write_text(content)
    with pytest.raises(ConfigError, match=message):
        load({"config": file})


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load({"config": tmp_path / "none.toml"})


ENDPOINTS = [
    ("127.0.0.1:8", Endpoint("127.0.0.1", 8), "127.0.0.1:8"),
    (":8", Endpoint("127.0.0.1", 8), "127.0.0.1:8"),
    ("8", Endpoint("127.0.0.1", 8), "127.0.0.1:8"),
    ("[::1]:8", Endpoint("::1", 8), "[::1]:8"),
    ("0.0.0.0:0", Endpoint("0.0.0.0", 0), "0.0.0.0:0"),
    ("node-a:18444", Endpoint("node-a", 18444), "node-a:18444"),
]


@pytest.mark.parametrize(("text", "endpoint", "shown"), ENDPOINTS)
def test_endpoints(text: str, endpoint: Endpoint, shown: str) -> None:
    assert Endpoint.parse(text) == endpoint
    assert str(endpoint) == shown
    assert Endpoint.parse(str(endpoint)) == endpoint


def test_wildcard_binds_are_reached_through_loopback() -> None:
    assert Endpoint("0.0.0.0", 5).url_host == "127.0.0.1"
    assert Endpoint("::", 5).url_host == "[::1]"


@given(st.text(max_size=40))
def test_endpoint_parse_of_any_text_raises_only_value_error(text: str) -> None:
    try:
        endpoint = Endpoint.parse(text)
    except ValueError:
        return
    assert 0 <= endpoint.port <= 65535


def test_every_option_is_documented() -> None:
    docs = (Path(__file__).resolve().parent.parent / "docs" / "api.md").read_text()
    for key, flag, env, _default, _help in config.describe():
        assert f"`{key}`" in docs and f"`{flag}`" in docs and f"`{env}`" in docs, key
