"""The key file: private from its first byte, refused when others can read it, encrypted for real.

Most cases use a cheap scrypt cost (n = 2^10) so the suite stays fast; one round trip uses the
default cost. Randomness comes from a seeded generator, so every run writes the same salts.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import stat
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.core.errors import WalletError
from node.core.params import DEMO, REGTEST
from node.wallet import (
    DEFAULT_SCRYPT,
    KeyFile,
    ScryptParams,
    Wallet,
    WalletSecrets,
    decode_keyfile,
    encode_keyfile,
)
from node.wallet.keyfile import FileKey

CHEAP = ScryptParams(n=1 << 10, r=8, p=1)
SECRETS = WalletSecrets("regtest", bytes(range(32)), 3)
PASSPHRASE = "correct horse battery staple"


@pytest.fixture
def randbytes() -> Any:
    return random.Random(2024).randbytes


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "wallet.json"


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The most permissive umask: the file must be private whatever the user's umask."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def create(path: Path, randbytes: Any, passphrase: str | None = PASSPHRASE) -> KeyFile:
    return KeyFile.create(path, SECRETS, passphrase=passphrase, randbytes=randbytes, scrypt=CHEAP)


# -- on disk


@pytest.mark.parametrize("passphrase", [None, PASSPHRASE], ids=["clear", "encrypted"])
def test_a_new_key_file_is_owner_only_even_under_an_open_umask(
    path: Path, randbytes: Any, open_umask: None, passphrase: str | None
) -> None:
    create(path, randbytes, passphrase)
    assert mode(path) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temporary left


def test_a_clear_file_round_trips_and_shows_its_format(path: Path, randbytes: Any) -> None:
    keyfile = create(path, randbytes, None)
    assert not keyfile.encrypted
    reopened, secrets = KeyFile.open(path, passphrase=None)
    assert secrets == SECRETS and not reopened.encrypted
    document = json.loads(path.read_text())
    assert document == {
        "format": "forklab-wallet",
        "version": 1,
        "network": "regtest",
        "encryption": None,
        "seed": SECRETS.seed.hex(),
        "count": 3,
    }


def test_an_encrypted_file_round_trips_at_the_default_cost(path: Path, randbytes: Any) -> None:
    KeyFile.create(path, SECRETS, passphrase=PASSPHRASE, randbytes=randbytes)
    keyfile, secrets = KeyFile.open(path, passphrase=PASSPHRASE)
    assert secrets == SECRETS and keyfile.encrypted
    assert json.loads(path.read_text())["encryption"]["n"] == DEFAULT_SCRYPT.n


def test_an_encrypted_file_does_not_show_the_seed(path: Path, randbytes: Any) -> None:
    create(path, randbytes)
    text = path.read_text()
    assert SECRETS.seed.hex() not in text and '"seed"' not in text and '"count"' not in text


def test_the_passphrase_is_compared_as_normalised_unicode(path: Path, randbytes: Any) -> None:
    composed = unicodedata.normalize("NFC", "pässwörd")
    decomposed = unicodedata.normalize("NFD", "pässwörd")
    assert composed != decomposed
    create(path, randbytes, composed)
    assert KeyFile.open(path, passphrase=decomposed)[1] == SECRETS


def test_a_wrong_passphrase_is_reported_as_such(path: Path, randbytes: Any) -> None:
    create(path, randbytes)
    with pytest.raises(WalletError, match="wrong passphrase"):
        KeyFile.open(path, passphrase=PASSPHRASE + "!")


def test_an_encrypted_file_needs_its_passphrase(path: Path, randbytes: Any) -> None:
    create(path, randbytes)
    with pytest.raises(WalletError, match="passphrase is needed"):
        KeyFile.open(path, passphrase=None)


def test_an_empty_passphrase_is_refused(path: Path, randbytes: Any) -> None:
    with pytest.raises(WalletError, match="empty passphrase"):
        create(path, randbytes, "")
    assert not path.exists()


@pytest.mark.parametrize("bad_mode", [0o640, 0o604, 0o620, 0o602, 0o660, 0o644, 0o700])
def test_a_file_others_may_read_or_write_is_refused(
    path: Path, randbytes: Any, bad_mode: int
) -> None:
    create(path, randbytes, None)
    path.chmod(bad_mode)
    if bad_mode & 0o077 == 0:
        # 0700 adds only the owner's execute bit: still private, still loads.
        assert KeyFile.open(path, passphrase=None)[1] == SECRETS
        return
    with pytest.raises(WalletError) as caught:
        KeyFile.open(path, passphrase=None)
    assert f"mode {bad_mode:04o}" in str(caught.value)
    assert f"chmod 600 {path}" in str(caught.value)


def test_creating_never_overwrites_an_existing_wallet(path: Path, randbytes: Any) -> None:
    create(path, randbytes, None)
    before = path.read_bytes()
    with pytest.raises(WalletError, match="already exists"):
        KeyFile.create(
            path, WalletSecrets("regtest", b"other", 1), passphrase=None, randbytes=randbytes
        )
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


def test_saving_replaces_the_file_under_a_new_nonce_and_keeps_it_private(
    path: Path, randbytes: Any, open_umask: None
) -> None:
    keyfile = create(path, randbytes)
    first = json.loads(path.read_text())
    grown = WalletSecrets("regtest", SECRETS.seed, 4)
    keyfile.save(grown, randbytes=randbytes)
    second = json.loads(path.read_text())
    assert mode(path) == 0o600
    assert second["encryption"]["salt"] == first["encryption"]["salt"]
    assert second["encryption"]["nonce"] != first["encryption"]["nonce"]
    assert KeyFile.open(path, passphrase=PASSPHRASE)[1] == grown
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


def test_a_missing_file_and_a_directory_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(WalletError, match="no key file"):
        KeyFile.open(tmp_path / "absent.json", passphrase=None)
    with pytest.raises(WalletError, match="not a regular file"):
        KeyFile.open(tmp_path, passphrase=None)


def test_a_wallet_of_another_network_is_refused() -> None:
    with pytest.raises(WalletError, match="'regtest' network"):
        Wallet.from_secrets(DEMO, SECRETS)
    assert Wallet.from_secrets(REGTEST, SECRETS).secrets == SECRETS


# -- the decoder: altered, foreign and arbitrary input


def encrypted_document() -> dict[str, Any]:
    key = FileKey.derive(PASSPHRASE, bytes(16), CHEAP)
    data = encode_keyfile(SECRETS, key=key, nonce=bytes(range(16)))
    document: dict[str, Any] = json.loads(data)
    return document


def _flip_hex(text: str) -> str:
    return ("1" if text[0] == "0" else "0") + text[1:]


ALTERATIONS = {
    "network": lambda d: d.update(network="demo"),
    "cost n": lambda d: d["encryption"].update(n=2048),
    "salt": lambda d: d["encryption"].update(salt=_flip_hex(d["encryption"]["salt"])),
    "nonce": lambda d: d["encryption"].update(nonce=_flip_hex(d["encryption"]["nonce"])),
    "mac": lambda d: d["encryption"].update(mac=_flip_hex(d["encryption"]["mac"])),
    "ciphertext": lambda d: d.update(ciphertext=_flip_hex(d["ciphertext"])),
    "truncated ciphertext": lambda d: d.update(ciphertext=d["ciphertext"][:-2]),
}


@pytest.mark.parametrize("field", ALTERATIONS)
def test_an_altered_encrypted_file_is_refused_whatever_field_changed(field: str) -> None:
    document = encrypted_document()
    assert decode_keyfile(json.dumps(document).encode(), passphrase=PASSPHRASE)[0] == SECRETS
    ALTERATIONS[field](document)
    with pytest.raises(WalletError, match="wrong passphrase \\(or the key file was altered\\)"):
        decode_keyfile(json.dumps(document).encode(), passphrase=PASSPHRASE)


CLEAR = json.loads(encode_keyfile(SECRETS))

FOREIGN = {
    "not JSON": (b"\x00\xff not json", "not JSON"),
    "a JSON list": (b"[1, 2]", 'no "format"'),
    "another format": (json.dumps({**CLEAR, "format": "bitcoin"}).encode(), 'no "format"'),
    "version 2": (json.dumps({**CLEAR, "version": 2}).encode(), "version 2 is not supported"),
    "version true": (json.dumps({**CLEAR, "version": True}).encode(), "not supported"),
    "version 1.0": (json.dumps({**CLEAR, "version": 1.0}).encode(), "not supported"),
    "an unknown field": (json.dumps({**CLEAR, "extra": 1}).encode(), "unknown fields"),
    "seed not hex": (json.dumps({**CLEAR, "seed": "zz"}).encode(), '"seed" is not hex'),
    "empty seed": (json.dumps({**CLEAR, "seed": ""}).encode(), '"seed" is 0 bytes'),
    "count zero": (json.dumps({**CLEAR, "count": 0}).encode(), "1 to 100000 keys"),
    "count as a string": (json.dumps({**CLEAR, "count": "3"}).encode(), '"count" is missing'),
    "no encryption field": (
        json.dumps({k: v for k, v in CLEAR.items() if k != "encryption"}).encode(),
        '"encryption" must be null',
    ),
    "too large": (b" " * 70_000, "too large"),
}


@pytest.mark.parametrize("case", FOREIGN)
def test_foreign_or_malformed_files_are_refused_with_a_reason(case: str) -> None:
    data, reason = FOREIGN[case]
    with pytest.raises(WalletError, match=reason):
        decode_keyfile(data, passphrase=None)


@pytest.mark.parametrize(
    "params",
    [ScryptParams(1000, 8, 1), ScryptParams(1 << 21, 8, 1), ScryptParams(1 << 20, 16, 1)],
    ids=["n not a power of two", "n too large", "too much memory"],
)
def test_scrypt_costs_out_of_range_are_refused_before_any_work(params: ScryptParams) -> None:
    document = encrypted_document()
    document["encryption"].update(n=params.n, r=params.r, p=params.p)
    with pytest.raises(WalletError, match="scrypt"):
        decode_keyfile(json.dumps(document).encode(), passphrase=PASSPHRASE)


@given(data=st.binary(max_size=2_000))
def test_arbitrary_bytes_raise_only_wallet_error(data: bytes) -> None:
    with contextlib.suppress(WalletError):
        decode_keyfile(data, passphrase=PASSPHRASE)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 5000)
    | st.floats(allow_nan=False)
    | st.text(max_size=40)
    | st.sampled_from(["00" * 16, "ab" * 32, "scrypt", "hmac-sha256-ctr+hmac-sha256"]),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)


@given(
    encrypted=st.booleans(),
    changes=st.lists(
        st.tuples(
            st.sampled_from(
                [
                    "format",
                    "version",
                    "network",
                    "encryption",
                    "seed",
                    "count",
                    "ciphertext",
                    "kdf",
                    "n",
                    "r",
                    "p",
                    "salt",
                    "cipher",
                    "nonce",
                    "mac",
                ]
            ),
            json_values,
        ),
        max_size=3,
    ),
    passphrase=st.none() | st.text(max_size=10),
)
def test_any_json_shaped_document_raises_only_wallet_error(
    encrypted: bool, changes: list[tuple[str, Any]], passphrase: str | None
) -> None:
    document = encrypted_document() if encrypted else json.loads(encode_keyfile(SECRETS))
    for field, value in changes:
        target = document
        if field in {"kdf", "n", "r", "p", "salt", "cipher", "nonce", "mac"} and isinstance(
            document.get("encryption"), dict
        ):
            target = document["encryption"]
        target[field] = value
    try:
        secrets, _ = decode_keyfile(json.dumps(document).encode(), passphrase=passphrase)
    except WalletError:
        return
    assert isinstance(secrets, WalletSecrets)
