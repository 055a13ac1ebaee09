"""`forklab quickstart` and `forklab verify`, run as a user runs them: as processes.

The quickstart is the README's first command, so its promise is tested end to end: a fresh data
directory gets a matured chain with a payment from alice to bob, a second run continues the same
chain, and `verify` then finds the stored UTXO set equal to a replay of the blocks.
"""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
from pathlib import Path


def forklab(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "node", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )


def tip_height(output: str) -> int:
    match = re.search(r"chain tip [0-9a-f]{64} at height (\d+)", output)
    assert match, output
    return int(match.group(1))


def test_quickstart_grows_a_chain_pays_bob_and_continues(tmp_path: Path) -> None:
    first = forklab("quickstart", "--datadir", str(tmp_path))
    assert first.returncode == 0, first.stderr
    # Regtest's coinbase maturity is 100: 101 blocks make the first coinbase spendable, and the
    # block after the payment confirms it.
    assert tip_height(first.stdout) == 102
    assert "alice pays bob 1.00000000" in first.stdout
    assert "bob: 1.00000000 spendable" in first.stdout

    second = forklab("quickstart", "--datadir", str(tmp_path), "--blocks", "2")
    assert second.returncode == 0, second.stderr
    assert tip_height(second.stdout) == 105
    assert "bob: 2.00000000 spendable" in second.stdout

    verified = forklab("verify", "--datadir", str(tmp_path))
    assert verified.returncode == 0, verified.stdout
    assert "107 expected, 107 stored, 0 differences" in verified.stdout


def test_verify_reports_a_tampered_utxo_set(tmp_path: Path) -> None:
    assert forklab("quickstart", "--datadir", str(tmp_path), "--blocks", "3").returncode == 0
    (database,) = tmp_path.glob("*.sqlite")
    with sqlite3.connect(database) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        assert "utxo" in tables
        db.execute("UPDATE utxo SET value = value + 1 WHERE height = 1")
    verified = forklab("verify", "--datadir", str(tmp_path))
    assert verified.returncode == 2
    assert "FAILED" in verified.stdout


def test_verify_refuses_a_data_directory_of_another_network(tmp_path: Path) -> None:
    assert forklab("quickstart", "--datadir", str(tmp_path), "--blocks", "1").returncode == 0
    verified = forklab("verify", "--datadir", str(tmp_path), "--network", "main")
    assert verified.returncode == 1
    assert "belongs to network 'regtest'" in verified.stderr
    assert "Traceback" not in verified.stderr


def test_verify_of_a_missing_data_directory_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "typo"
    verified = forklab("verify", "--datadir", str(missing))
    assert verified.returncode == 1
    assert "there is no chain store" in verified.stderr
    assert not missing.exists()
