"""The API's pure parts: exact amounts in and out, the typed parameter binding, getwork's byte
order, basic-auth parsing. Decoders get property tests: round trips, and arbitrary input
raising only the one error each promises.
"""

from __future__ import annotations

import contextlib
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.core.errors import DecodeError
from node.core.header import BlockHeader
from node.core.params import REGTEST
from node.core.tx import COIN, MAX_MONEY, format_amount
from node.rpc.auth import Credentials, basic_auth_header, parse_basic_auth
from node.rpc.errors import RpcCode, RpcError
from node.rpc.jsonfmt import Amount, dumps, loads, parse_amount
from node.rpc.methods import build_registry
from node.rpc.work import getwork_data, header_from_getwork, search_nonces, swap_words

# -- amounts

AMOUNTS = [
    ("1", 1 * COIN),
    (1, 1 * COIN),
    ("0.1", 10_000_000),
    (Decimal("0.1"), 10_000_000),
    (0.1, 10_000_000),
    ("0.00000001", 1),
    ("21000000", MAX_MONEY),
    ("1e-8", 1),
    ("50.00000000", 50 * COIN),
    ("0", 0),
]

BAD_AMOUNTS = [
    ("0.000000001", "Invalid amount"),
    ("-0.00000001", "Amount out of range"),
    ("21000000.00000001", "Amount out of range"),
    ("abc", "Invalid amount"),
    ("NaN", "Invalid amount"),
    ("Infinity", "Invalid amount"),
    (True, "Amount is not a number or string"),
    (None, "Amount is not a number or string"),
    ([1], "Amount is not a number or string"),
]


@pytest.mark.parametrize(("given_value", "units"), AMOUNTS)
def test_amounts_parse_exactly(given_value: Any, units: int) -> None:
    assert parse_amount(given_value) == units


@pytest.mark.parametrize(("given_value", "message"), BAD_AMOUNTS)
def test_bad_amounts_are_type_errors(given_value: Any, message: str) -> None:
    with pytest.raises(RpcError) as caught:
        parse_amount(given_value)
    assert caught.value.code is RpcCode.TYPE_ERROR
    assert caught.value.message == message


def test_zero_is_refused_where_a_payment_needs_an_amount() -> None:
    with pytest.raises(RpcError):
        parse_amount("0", allow_zero=False)


@given(st.integers(0, MAX_MONEY))
def test_amount_round_trips_through_json(units: int) -> None:
    text = dumps({"value": Amount(units)})
    assert text == '{"value":' + format_amount(units) + "}"
    assert parse_amount(loads(text)["value"]) == units


@given(st.text(max_size=40))
def test_parse_amount_of_any_text_raises_only_rpc_errors(text: str) -> None:
    try:
        parse_amount(text)
    except RpcError as exc:
        assert exc.code is RpcCode.TYPE_ERROR


@given(st.binary(max_size=200))
def test_loads_of_any_bytes_raises_only_value_error(data: bytes) -> None:
    with contextlib.suppress(ValueError, RecursionError):
        loads(data)


def test_dumps_keeps_decimals_as_written_and_indents_like_bitcoin_cli() -> None:
    value = {"a": [Decimal("0E-8"), Decimal("1.50"), Amount(1)], "b": {}, "c": None}
    assert dumps(value) == '{"a":[0.00000000,1.50,0.00000001],"b":{},"c":null}'
    assert dumps({"x": [1]}, indent=2) == '{\n  "x": [\n    1\n  ]\n}'
    with pytest.raises(ValueError):
        dumps(float("nan"))
    with pytest.raises(TypeError):
        dumps({1: 2})


# -- parameter binding

REGISTRY = build_registry()

BINDINGS: list[tuple[str, Any, dict[str, Any] | int]] = [
    ("getblockhash", [5], {"height": 5}),
    ("getblockhash", {"height": 5}, {"height": 5}),
    ("getblockhash", [Decimal("5")], {"height": 5}),
    ("getblock", ["00" * 32], {"blockhash": bytes(32), "verbosity": 1}),
    ("getblock", ["00" * 32, None], {"blockhash": bytes(32), "verbosity": 1}),
    ("getblock", ["00" * 32, False], {"blockhash": bytes(32), "verbosity": 0}),
    (
        "getblock",
        {"blockhash": "ab" + "00" * 31},
        {"blockhash": bytes(31) + b"\xab", "verbosity": 1},
    ),
    (
        "sendtoaddress",
        ["m", "0.5"],
        {"address": "m", "amount": 50_000_000, "comment": "", "comment_to": "", "fee_rate": None},
    ),
    ("getblockhash", [], RpcCode.MISC_ERROR),
    ("getblockhash", [1, 2], RpcCode.MISC_ERROR),
    ("getblockhash", [True], RpcCode.TYPE_ERROR),
    ("getblockhash", [Decimal("1.5")], RpcCode.TYPE_ERROR),
    ("getblockhash", {"nope": 1}, RpcCode.INVALID_PARAMETER),
    ("getblockhash", "5", RpcCode.INVALID_REQUEST),
    ("getblock", ["0" * 63], RpcCode.INVALID_PARAMETER),
    ("getblock", ["g" * 64], RpcCode.INVALID_PARAMETER),
    ("getblock", ["00" * 32, 3], RpcCode.INVALID_PARAMETER),
    ("addnode", ["a:1", "sometimes"], RpcCode.INVALID_PARAMETER),
    ("listunspent", [0, 1, [5]], RpcCode.TYPE_ERROR),
]


@pytest.mark.parametrize(("method", "params", "expected"), BINDINGS)
def test_binding(method: str, params: Any, expected: dict[str, Any] | int) -> None:
    spec = REGISTRY.get(method)
    if isinstance(expected, dict):
        assert spec.bind(params) == expected
    else:
        with pytest.raises(RpcError) as caught:
            spec.bind(params)
        assert caught.value.code == expected


def test_unknown_method_is_method_not_found() -> None:
    with pytest.raises(RpcError) as caught:
        REGISTRY.get("nosuch")
    assert caught.value.code is RpcCode.METHOD_NOT_FOUND


def test_help_of_a_method_lists_its_parameters() -> None:
    text = REGISTRY.help("getblock")
    assert text.splitlines()[0] == 'getblock "blockhash" ( verbosity )'
    assert "1. blockhash    (hex, required)" in text
    assert "2. verbosity    (number, optional, default=1)" in text


# -- getwork


HEADERS = st.builds(
    BlockHeader,
    st.integers(0, 0xFFFFFFFF),
    st.binary(min_size=32, max_size=32),
    st.binary(min_size=32, max_size=32),
    st.integers(0, 0xFFFFFFFF),
    st.integers(0, 0xFFFFFFFF),
    st.integers(0, 0xFFFFFFFF),
)


@given(HEADERS)
def test_getwork_data_round_trips(header: BlockHeader) -> None:
    data = getwork_data(header)
    assert len(data) == 128
    assert swap_words(data)[:80] == header.serialize()
    assert header_from_getwork(data) == header


@given(st.binary(max_size=200))
def test_getwork_data_of_any_bytes_raises_only_value_error(data: bytes) -> None:
    with contextlib.suppress(ValueError, DecodeError):
        header_from_getwork(data)


def test_getwork_data_of_bitcoins_genesis_header() -> None:
    # Bitcoin's genesis header, words swapped: version 1 reads 00000001, the nonce
    # 0x7c2bac1d (2083236893) reads 7c2bac1d, the padding 80000000 reads 00000080.
    header = BlockHeader(
        1,
        bytes(32),
        bytes.fromhex("4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b")[::-1],
        1231006505,
        0x1D00FFFF,
        2083236893,
    )
    data = getwork_data(header).hex()
    assert data.startswith("00000001" + "00" * 32)
    assert data[152:160] == "7c2bac1d"
    assert data[160:168] == "00000080"
    assert data.endswith("80020000")


@pytest.mark.parametrize("start", [0, 7, 1000])
def test_nonce_search_finds_the_first_nonce_that_meets_the_target(start: int) -> None:
    header = REGTEST.genesis.header
    target = REGTEST.pow_limit // 4  # about one nonce in eight
    first = next(
        n
        for n in range(start, start + 1000)
        if int.from_bytes(header.with_nonce(n).hash, "little") <= target
    )
    assert search_nonces(header, target, start, 1000) == first
    assert search_nonces(header, target, start, first - start) is None
    assert search_nonces(header, 0, start, 100) is None


# -- basic auth


def test_credentials_accept_exactly_their_pairs() -> None:
    creds = Credentials.of(("__cookie__", "abc"), ("alice", "pw:with:colons"))
    assert creds.check_header(basic_auth_header("__cookie__", "abc"))
    assert creds.check_header(basic_auth_header("alice", "pw:with:colons"))
    for user, password in [("__cookie__", "abd"), ("alice", "pw"), ("", ""), ("abc", "")]:
        assert not creds.check_header(basic_auth_header(user, password))
    assert not creds.check_header(None)
    assert not creds.check_header("Basic")


@given(st.text(max_size=100))
def test_parse_basic_auth_of_any_header_never_raises(header: str) -> None:
    result = parse_basic_auth(header)
    assert result is None or ":" in result
