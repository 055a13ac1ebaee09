"""The SQLite chain store: restarts, refusing files that are not ours, and verification.

Real data directories under pytest's tmp_path; every case closes and reopens the store the way
a restarted node would. A store that is not ours (another network, another application's
SQLite file, garbage, another format version) must be refused with a StoreError that says why,
and must be left byte for byte as it was.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from blocktools import ChainBuilder, key, pkh

from node.chainstate import ChainState
from node.core.chain import BlockStatus, TipStatus
from node.core.errors import ErrorCode, StoreError
from node.core.params import DEMO, REGTEST
from node.core.tx import OutPoint
from node.store import DB_FILENAME, FORMAT_VERSION, ChainStore
from node.store.verify import DifferenceKind

NOW = REGTEST.genesis_time + 10**7


@pytest.fixture(scope="module")
def forked() -> ChainBuilder:
    """
    genesis ── b1 ── … ── b101 ── b102[pays alice] ── b103
                              └── s102 ── s103 ── s104     (wins: a reorg of 2)
    """
    b = ChainBuilder()
    b.extend(101)
    pay = b.spend([b.coinbase_of("b1")], fee=1_000, to=key("alice"))
    b.block("b102", txs=[pay])
    b.block("b103")
    b.block("s102", parent="b101")
    b.block("s103")
    b.block("s104")
    return b


def feed(chain: ChainState, b: ChainBuilder, *names: str) -> None:
    for name in names:
        result = chain.process_block(b[name], NOW)
        assert result.accepted, (name, result.reject)


def snapshot(chain: ChainState) -> tuple[object, ...]:
    return (
        chain.tip.hash,
        chain.height,
        [e.hash for e in chain.active],
        chain.chain_tips(),
        list(chain.store.iter_coins()),
        {e.hash: (e.status, e.seq, e.linked) for e in chain.tree},
    )


# -- restarts


def test_a_restart_resumes_at_the_committed_tip(tmp_path: Path, forked: ChainBuilder) -> None:
    with ChainState.open(tmp_path, REGTEST) as chain:
        feed(chain, forked, *forked.branch("b103"), "s102", "s103", "s104")
        assert chain.tip.hash == forked["s104"].hash
        before = snapshot(chain)
    with ChainState.open(tmp_path, REGTEST) as chain:
        assert snapshot(chain) == before
        assert chain.verify().ok
        more = forked.copy()  # the module's builder is shared: grow a private copy
        more.block("s105", parent="s104")
        feed(chain, more, "s105")
        assert chain.height == 105


def test_the_store_uses_wal_and_is_marked_as_ours(tmp_path: Path) -> None:
    ChainState.open(tmp_path, REGTEST).close()
    conn = sqlite3.connect(tmp_path / DB_FILENAME)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA application_id").fetchone()[0] == 0x666B6C62
    assert conn.execute("PRAGMA user_version").fetchone()[0] == FORMAT_VERSION
    conn.close()


def test_invalid_marks_and_header_only_entries_survive_a_restart(tmp_path: Path) -> None:
    b = ChainBuilder()
    b.extend(3)
    b.block("x4", coinbase_value=REGTEST.subsidy(4) + 1)
    b.block("h4", parent="b3")
    b.block("h5")
    with ChainState.open(tmp_path, REGTEST) as chain:
        feed(chain, b, "b1", "b2", "b3")
        assert not chain.process_block(b["x4"], NOW).accepted
        chain.process_header(b["h4"].header, NOW)
        chain.process_header(b["h5"].header, NOW)
        assert chain.process_block(b["h5"], NOW).accepted, "stored, waiting for h4"
    with ChainState.open(tmp_path, REGTEST) as chain:
        x4 = chain.process_block(b["x4"], NOW)
        assert x4.reject is not None and x4.reject.code is ErrorCode.INVALID_BLOCK
        h5 = chain.get_entry(b["h5"].hash)
        assert h5 is not None and h5.status == BlockStatus.HAVE_DATA and not h5.linked
        feed(chain, b, "h4")
        assert chain.tip.hash == b["h5"].hash


def test_a_block_stored_but_not_connected_before_a_crash_is_connected_on_open(
    tmp_path: Path, forked: ChainBuilder
) -> None:
    """The block's data is committed in one transaction and its connection in another; a
    crash in between leaves a stored candidate with more work, which opening connects."""
    with ChainState.open(tmp_path, REGTEST) as chain:
        feed(chain, forked, *forked.branch("b101"))
        # What process_block does up to the crash point: header and data, no connection.
        entry = chain.tree.add_header(forked["b102"].header)
        chain.store.put_block(forked["b102"], chain.tree.set_have_data(entry))
        assert chain.store.tip_hash() == forked["b101"].hash
    with ChainState.open(tmp_path, REGTEST) as chain:
        assert chain.tip.hash == forked["b102"].hash
        assert chain.verify().ok


def test_an_in_memory_store_behaves_like_one_on_disk(tmp_path: Path, forked: ChainBuilder) -> None:
    names = [*forked.branch("b103"), "s102", "s103", "s104"]
    with ChainState.open(tmp_path, REGTEST) as on_disk, ChainState.in_memory(REGTEST) as memory:
        feed(on_disk, forked, *names)
        feed(memory, forked, *names)
        assert snapshot(on_disk) == snapshot(memory)


# -- refusing what is not ours


def test_a_data_directory_of_another_network_is_refused(tmp_path: Path) -> None:
    ChainState.open(tmp_path, REGTEST).close()
    before = (tmp_path / DB_FILENAME).read_bytes()
    with pytest.raises(StoreError, match=r"belongs to network 'regtest'.*not to 'demo'"):
        ChainState.open(tmp_path, DEMO)
    assert (tmp_path / DB_FILENAME).read_bytes() == before


@pytest.mark.parametrize(
    "content",
    [b"\x00\x01garbage" * 500, b"SQLite format 3\x00" + bytes(84) + b"\xff" * 4000, b"hello\n"],
    ids=["garbage", "bad-sqlite-header", "text"],
)
def test_a_file_that_is_not_sqlite_is_refused_untouched(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / DB_FILENAME
    path.write_bytes(content)
    with pytest.raises(StoreError, match="not a forklab chain store"):
        ChainState.open(tmp_path, REGTEST)
    assert path.read_bytes() == content


def test_another_applications_sqlite_file_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / DB_FILENAME
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE people (name TEXT)")
    conn.execute("INSERT INTO people VALUES ('satoshi')")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    with pytest.raises(StoreError, match="another application"):
        ChainState.open(tmp_path, REGTEST)
    assert path.read_bytes() == before


def test_another_format_version_is_refused(tmp_path: Path) -> None:
    ChainState.open(tmp_path, REGTEST).close()
    conn = sqlite3.connect(tmp_path / DB_FILENAME)
    conn.execute(f"PRAGMA user_version = {FORMAT_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError, match=f"format version {FORMAT_VERSION + 1}"):
        ChainState.open(tmp_path, REGTEST)


def test_a_store_missing_a_table_is_refused(tmp_path: Path) -> None:
    ChainState.open(tmp_path, REGTEST).close()
    conn = sqlite3.connect(tmp_path / DB_FILENAME)
    conn.execute("DROP TABLE undo")
    conn.close()
    with pytest.raises(StoreError, match="missing tables"):
        ChainState.open(tmp_path, REGTEST)


def test_a_data_directory_that_is_a_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "node"
    path.write_text("not a directory")
    with pytest.raises(StoreError, match="not a directory"):
        ChainState.open(path, REGTEST)


def test_opening_without_create_refuses_a_missing_store(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no chain store"):
        ChainState.open(tmp_path / "typo", REGTEST, create=False)
    assert not (tmp_path / "typo" / DB_FILENAME).exists()
    ChainState.open(tmp_path, REGTEST).close()
    ChainState.open(tmp_path, REGTEST, create=False).close()


def test_a_data_directory_in_use_is_refused_until_released(tmp_path: Path) -> None:
    first = ChainState.open(tmp_path, REGTEST)
    with pytest.raises(StoreError, match="in use by another process"):
        ChainState.open(tmp_path, REGTEST)
    first.close()
    ChainState.open(tmp_path, REGTEST).close()


# -- verify


@pytest.mark.parametrize(
    ("tamper", "kind"),
    [
        ("UPDATE utxo SET value = value + 1 WHERE height = 50", DifferenceKind.CHANGED),
        ("DELETE FROM utxo WHERE height = 50", DifferenceKind.MISSING),
        (
            "INSERT INTO utxo VALUES (zeroblob(32), 0, 5000, zeroblob(20), 7, 0)",
            DifferenceKind.UNEXPECTED,
        ),
    ],
    ids=["changed", "missing", "unexpected"],
)
def test_verify_finds_a_tampered_utxo_row(
    tmp_path: Path, forked: ChainBuilder, tamper: str, kind: DifferenceKind
) -> None:
    with ChainState.open(tmp_path, REGTEST) as chain:
        feed(chain, forked, *forked.branch("b103"))
        clean = chain.verify()
        assert clean.ok and clean.difference_count == 0
        # 103 coinbases; b102 spends one of them and creates one output.
        assert clean.coins_expected == clean.coins_stored == 103 - 1 + 1
    conn = sqlite3.connect(tmp_path / DB_FILENAME)
    conn.execute(tamper)
    conn.commit()
    conn.close()
    with ChainState.open(tmp_path, REGTEST) as chain:
        report = chain.verify()
    assert not report.ok
    assert report.difference_count == 1
    (difference,) = report.differences
    assert difference.kind is kind
    assert "FAILED" in report.summary() and str(difference.outpoint) in report.summary()


def test_verify_reports_missing_block_data(tmp_path: Path, forked: ChainBuilder) -> None:
    with ChainState.open(tmp_path, REGTEST) as chain:
        feed(chain, forked, *forked.branch("b103"))
    conn = sqlite3.connect(tmp_path / DB_FILENAME)
    conn.execute("DELETE FROM blocks WHERE hash = ?", (forked["b50"].hash,))
    conn.commit()
    conn.close()
    with ChainState.open(tmp_path, REGTEST) as chain:
        report = chain.verify()
    assert not report.ok
    assert any("has no data" in p for p in report.problems)


# -- the UTXO set by address


def test_coins_for_lists_an_addresss_coins_through_the_index(
    tmp_path: Path, forked: ChainBuilder
) -> None:
    alice, miner = pkh(key("alice")), pkh(forked.miner)
    with ChainState.open(tmp_path, REGTEST) as chain:
        feed(chain, forked, *forked.branch("b103"))
        (only,) = chain.coins_for([alice])
        pay = forked["b102"].transactions[1]
        assert only == (OutPoint(pay.txid, 0), chain.get_coin(OutPoint(pay.txid, 0)))
        assert len(chain.coins_for([miner, alice, miner])) == 103 - 1 + 1
        assert chain.coins_for([bytes(20)]) == []
        reader = sqlite3.connect(tmp_path / DB_FILENAME)
        plan = reader.execute(
            "EXPLAIN QUERY PLAN SELECT * FROM utxo WHERE pubkey_hash IN (?)", (alice,)
        ).fetchall()
        reader.close()
        assert any("utxo_by_pubkey_hash" in row[-1] for row in plan)
        chain.invalidate_block(forked["b102"].hash)
        assert chain.coins_for([alice]) == []


def test_chain_tips_after_restart_keep_their_statuses(tmp_path: Path, forked: ChainBuilder) -> None:
    with ChainState.open(tmp_path, REGTEST) as chain:
        feed(chain, forked, *forked.branch("b103"), "s102", "s103", "s104")
    with ChainState.open(tmp_path, REGTEST) as chain:
        statuses = {t.hash: t.status for t in chain.chain_tips()}
    assert statuses == {
        forked["s104"].hash: TipStatus.ACTIVE,
        forked["b103"].hash: TipStatus.VALID_FORK,
    }


def test_closing_twice_is_harmless(tmp_path: Path) -> None:
    store = ChainStore.open(tmp_path, REGTEST)
    store.close()
    store.close()
