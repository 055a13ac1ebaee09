"""The chain store: block index, blocks, UTXO set and undo data in one SQLite database.

One data directory per node holds ``chain.sqlite`` (with its ``-wal`` and ``-shm`` files) and
``chain.lock``. The database runs in WAL mode with ``synchronous=NORMAL``: a killed process
(``kill -9``) loses nothing committed; a power cut may lose the last commits but never leaves a
half-written one. Every change that must be atomic is one SQLite transaction: connecting or
disconnecting a block writes its UTXO changes, its undo data, its status and the new tip
together, so the UTXO set always matches the recorded tip, whenever the process dies.

Schema (format version 1)
-------------------------

``meta``: what this file is; checked on every open.

===========  =======  ======================================================================
field        type     meaning
===========  =======  ======================================================================
key          TEXT     ``magic``, ``format``, ``network``, ``genesis`` or ``tip``
value        BLOB     ``forklab chain store``; the format version; the network's name; its
                      genesis hash; the hash of the active tip (internal byte order)
===========  =======  ======================================================================

The SQLite header also carries ``PRAGMA application_id`` = 0x666b6c62 ("fklb") and
``PRAGMA user_version`` = the format version, so ``file chain.sqlite`` and any SQLite tool can
tell what the file is.

``block_index``: every header in the block tree, in the order it was added (``rowid``), so
every parent precedes its children and the tree loads in one linear scan.

===========  =======  ======================================================================
field        type     meaning
===========  =======  ======================================================================
hash         BLOB     block hash, 32 bytes, internal byte order (unique)
header       BLOB     the 80-byte header
height       INTEGER  blocks between it and genesis
status       INTEGER  :class:`~node.core.chain.BlockStatus` flags: 1 have data, 2 valid,
                      4 failed, 8 failed child
seq          INTEGER  order in which the block became connectable (ties: first seen wins);
                      NULL while it or an ancestor lacks data
===========  =======  ======================================================================

``blocks``: block bodies, kept apart from the index so loading the index never reads them.

===========  =======  ======================================================================
hash         BLOB     block hash (primary key)
data         BLOB     the canonical block encoding (:mod:`node.core.block`)
===========  =======  ======================================================================

``undo``: for each block of the active chain except genesis, the coins it spent.

===========  =======  ======================================================================
hash         BLOB     block hash (primary key)
data         BLOB     canonical :class:`~node.core.utxo.BlockUndo` encoding
===========  =======  ======================================================================

``utxo``: the unspent outputs of the active chain; indexed by ``pubkey_hash`` so a wallet or
the REST API can list an address's coins without a scan.

===========  =======  ======================================================================
txid         BLOB     id of the transaction that created the output (32 bytes)
vout         INTEGER  index of the output in that transaction
value        INTEGER  amount in the smallest unit
pubkey_hash  BLOB     hash160 of the key that may spend it (20 bytes)
height       INTEGER  height of the block that created it
coinbase     INTEGER  1 if a coinbase created it (maturity applies), else 0
===========  =======  ======================================================================

The genesis block's output is never in ``utxo``: as in Bitcoin, it cannot be spent.

What this module deliberately does not do: decide anything. It stores what
:class:`~node.chainstate.ChainState` tells it, checks that a file is ours before touching it,
and turns every SQLite failure into a :class:`~node.core.errors.StoreError`. It is synchronous;
the node calls it from the one thread that owns the chain state, never from async code.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from node.core.block import Block
from node.core.chain import BlockEntry, BlockStatus, BlockTree
from node.core.errors import DecodeError, StoreError
from node.core.hashing import hash_hex
from node.core.header import BlockHeader
from node.core.params import NetworkParams
from node.core.tx import OutPoint
from node.core.utxo import BlockUndo, Coin, UtxoChanges

DB_FILENAME = "chain.sqlite"
LOCK_FILENAME = "chain.lock"
FORMAT_VERSION = 1
MAGIC = b"forklab chain store"
APPLICATION_ID = 0x666B6C62
"""``fklb`` in the SQLite header: marks the file as ours for anyone who looks."""

_SCHEMA = """
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE block_index (
    hash BLOB NOT NULL UNIQUE,
    header BLOB NOT NULL,
    height INTEGER NOT NULL,
    status INTEGER NOT NULL,
    seq INTEGER
);
CREATE TABLE blocks (
    hash BLOB PRIMARY KEY,
    data BLOB NOT NULL
);
CREATE TABLE undo (
    hash BLOB PRIMARY KEY,
    data BLOB NOT NULL
);
CREATE TABLE utxo (
    txid BLOB NOT NULL,
    vout INTEGER NOT NULL,
    value INTEGER NOT NULL,
    pubkey_hash BLOB NOT NULL,
    height INTEGER NOT NULL,
    coinbase INTEGER NOT NULL,
    PRIMARY KEY (txid, vout)
) WITHOUT ROWID;
CREATE INDEX utxo_by_pubkey_hash ON utxo (pubkey_hash);
"""

_TABLES = frozenset({"meta", "block_index", "blocks", "undo", "utxo"})

_SAVE_ENTRY = """
INSERT INTO block_index (hash, header, height, status, seq) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (hash) DO UPDATE SET status = excluded.status, seq = excluded.seq
"""

# SQLite allows 32766 host parameters per statement by default; stay well below.
_IN_CHUNK = 500


class ChainStore:
    """One open chain database. Create it with :meth:`open` or :meth:`memory`.

    Not thread-safe: one owner at a time (the node's chain thread). The connection allows use
    from a thread other than the one that opened it, so the owner may be a worker thread.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        params: NetworkParams,
        *,
        path: Path | None,
        lock: IO[bytes] | None,
    ) -> None:
        self._conn = conn
        self.params = params
        self.path = path
        """The database file, or None for an in-memory store."""
        self._lock = lock

    # -- opening

    @classmethod
    def open(cls, datadir: Path, params: NetworkParams, *, create: bool = True) -> ChainStore:
        """Open the store in ``datadir``, creating it (and the directory) if there is none.

        Raises StoreError if the directory is used by another process, or holds a file that is
        not a forklab chain store, has another format version, or belongs to another network;
        and, with ``create=False`` (for tools that only inspect, like ``forklab verify``), if
        there is no store there at all.
        """
        datadir = Path(datadir)
        if datadir.exists() and not datadir.is_dir():
            raise StoreError(f"data directory {datadir} exists and is not a directory")
        if not create and not (datadir / DB_FILENAME).is_file():
            raise StoreError(f"there is no chain store in {datadir}")
        try:
            datadir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create data directory {datadir}: {exc}") from exc
        lock = _lock_datadir(datadir)
        path = datadir / DB_FILENAME
        try:
            if path.exists() and not path.is_file():
                raise StoreError(f"{path} exists and is not a file")
            try:
                conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            except sqlite3.Error as exc:
                raise StoreError(f"cannot open {path}: {exc}") from exc
            try:
                _check_or_init(conn, params, str(path), wal=True)
            except BaseException:
                conn.close()
                raise
        except BaseException:
            lock.close()
            raise
        return cls(conn, params, path=path, lock=lock)

    @classmethod
    def memory(cls, params: NetworkParams) -> ChainStore:
        """A store that lives in memory only (the simulator's nodes, tests)."""
        conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        _check_or_init(conn, params, ":memory:", wal=False)
        return cls(conn, params, path=None, lock=None)

    def close(self) -> None:
        """Close the database and release the data directory; idempotent."""
        with contextlib.suppress(sqlite3.Error):
            self._conn.close()
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def __enter__(self) -> ChainStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the block index

    def load_tree(self) -> tuple[BlockTree, BlockEntry]:
        """The block tree and the active tip, as last committed.

        One scan of ``block_index`` in insertion order; linear in the number of headers.
        """
        genesis = self.params.genesis
        with _gc_paused():
            with self._reading("load the block index"):
                rows = self._conn.execute(
                    "SELECT hash, header, status, seq FROM block_index ORDER BY rowid"
                ).fetchall()
            if not rows or rows[0][0] != genesis.hash:
                raise StoreError(f"{self._name}: the block index does not start at genesis")
            try:
                tree = BlockTree.restore(genesis.header, _index_rows(rows[1:]))
            except (DecodeError, ValueError) as exc:
                raise StoreError(f"{self._name}: corrupt block index: {exc}") from exc
        tip = tree.get(self.tip_hash())
        if tip is None:
            raise StoreError(f"{self._name}: the recorded tip is not in the block index")
        return tree, tip

    def save_entries(self, entries: Iterable[BlockEntry]) -> None:
        """Insert new index entries, or update the status and seq of known ones."""
        rows = [_entry_row(e) for e in entries]
        if rows:
            with self._writing("save block index entries") as conn:
                conn.executemany(_SAVE_ENTRY, rows)

    def tip_hash(self) -> bytes:
        value = self._meta("tip")
        if value is None:
            raise StoreError(f"{self._name}: no tip recorded")
        return value

    # -- blocks

    def put_block(self, block: Block, entries: Iterable[BlockEntry]) -> None:
        """Store a block's data together with the index entries it changed, atomically."""
        rows = [_entry_row(e) for e in entries]
        with self._writing(f"store block {block.hash_hex}") as conn:
            conn.execute(
                "INSERT OR REPLACE INTO blocks (hash, data) VALUES (?, ?)",
                (block.hash, block.serialize()),
            )
            conn.executemany(_SAVE_ENTRY, rows)

    def get_block(self, block_hash: bytes) -> Block | None:
        with self._reading("read a block"):
            row = self._conn.execute(
                "SELECT data FROM blocks WHERE hash = ?", (block_hash,)
            ).fetchone()
        if row is None:
            return None
        try:
            block = Block.deserialize(row[0])
        except DecodeError as exc:
            raise StoreError(
                f"{self._name}: stored block {hash_hex(block_hash)} is corrupt: {exc}"
            ) from exc
        if block.hash != block_hash:
            raise StoreError(
                f"{self._name}: the data stored for block {hash_hex(block_hash)} is block "
                f"{block.hash_hex}"
            )
        return block

    def get_undo(self, block_hash: bytes) -> BlockUndo | None:
        with self._reading("read undo data"):
            row = self._conn.execute(
                "SELECT data FROM undo WHERE hash = ?", (block_hash,)
            ).fetchone()
        if row is None:
            return None
        try:
            return BlockUndo.deserialize(row[0])
        except DecodeError as exc:
            raise StoreError(
                f"{self._name}: undo data of block {hash_hex(block_hash)} is corrupt: {exc}"
            ) from exc

    # -- connecting and disconnecting: one transaction each

    def connect(self, entry: BlockEntry, changes: UtxoChanges, undo: BlockUndo) -> None:
        """Record ``entry`` connected on top of the tip: UTXO changes, undo, status, tip."""
        with self._writing(f"connect block {entry.hash_hex}") as conn:
            self._apply(conn, changes)
            conn.execute(
                "INSERT OR REPLACE INTO undo (hash, data) VALUES (?, ?)",
                (entry.hash, undo.serialize()),
            )
            conn.execute(_SAVE_ENTRY, _entry_row(entry))
            conn.execute("UPDATE meta SET value = ? WHERE key = 'tip'", (entry.hash,))

    def disconnect(self, entry: BlockEntry, changes: UtxoChanges) -> None:
        """Record the tip ``entry`` disconnected: UTXO changes, its undo dropped, tip = parent."""
        if entry.parent is None:
            raise StoreError("the genesis block cannot be disconnected")
        with self._writing(f"disconnect block {entry.hash_hex}") as conn:
            self._apply(conn, changes)
            conn.execute("DELETE FROM undo WHERE hash = ?", (entry.hash,))
            conn.execute("UPDATE meta SET value = ? WHERE key = 'tip'", (entry.parent.hash,))

    def _apply(self, conn: sqlite3.Connection, changes: UtxoChanges) -> None:
        if changes.spent:
            deleted = conn.executemany(
                "DELETE FROM utxo WHERE txid = ? AND vout = ?",
                [(op.txid, op.index) for op in changes.spent],
            ).rowcount
            if deleted != len(changes.spent):
                # The overlay read these coins from this very table: a mismatch is our bug.
                raise StoreError(
                    f"{self._name}: {len(changes.spent) - deleted} coins to spend are not stored"
                )
        if changes.added:
            conn.executemany(
                "INSERT INTO utxo (txid, vout, value, pubkey_hash, height, coinbase) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (op.txid, op.index, c.value, c.pubkey_hash, c.height, int(c.is_coinbase))
                    for op, c in changes.added
                ],
            )

    # -- the UTXO set

    def get_coin(self, outpoint: OutPoint) -> Coin | None:
        """The unspent coin at ``outpoint`` on the active chain (a :class:`UtxoView`)."""
        try:
            row = self._conn.execute(
                "SELECT value, pubkey_hash, height, coinbase FROM utxo WHERE txid = ? AND vout = ?",
                (outpoint.txid, outpoint.index),
            ).fetchone()
        except sqlite3.Error as exc:
            raise StoreError(f"{self._name}: read a coin: {exc}") from exc
        if row is None:
            return None
        return Coin(row[0], row[1], row[2], bool(row[3]))

    def coins_for(self, pubkey_hashes: Iterable[bytes]) -> list[tuple[OutPoint, Coin]]:
        """Every unspent coin paying one of ``pubkey_hashes``, by height then outpoint."""
        wanted = list(dict.fromkeys(pubkey_hashes))
        found: list[tuple[OutPoint, Coin]] = []
        with self._reading("list coins by address"):
            for start in range(0, len(wanted), _IN_CHUNK):
                chunk = wanted[start : start + _IN_CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = self._conn.execute(
                    "SELECT txid, vout, value, pubkey_hash, height, coinbase FROM utxo "
                    f"WHERE pubkey_hash IN ({marks})",
                    chunk,
                )
                found.extend(_coin_row(row) for row in rows)
        found.sort(key=lambda item: (item[1].height, item[0].txid, item[0].index))
        return found

    def iter_coins(self) -> Iterator[tuple[OutPoint, Coin]]:
        """Every stored coin, in key order (for verification)."""
        with self._reading("list coins"):
            rows = self._conn.execute(
                "SELECT txid, vout, value, pubkey_hash, height, coinbase FROM utxo "
                "ORDER BY txid, vout"
            ).fetchall()
        return (_coin_row(row) for row in rows)

    def coin_count(self) -> int:
        with self._reading("count coins"):
            (count,) = self._conn.execute("SELECT count(*) FROM utxo").fetchone()
        return int(count)

    # -- plumbing

    @property
    def _name(self) -> str:
        return str(self.path) if self.path is not None else "in-memory chain store"

    def _meta(self, key: str) -> bytes | None:
        with self._reading("read meta"):
            row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    @contextlib.contextmanager
    def _reading(self, what: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise StoreError(f"{self._name}: {what}: {exc}") from exc

    @contextlib.contextmanager
    def _writing(self, what: str) -> Iterator[sqlite3.Connection]:
        """One transaction: everything inside commits together or not at all."""
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StoreError(f"{self._name}: {what}: {exc}") from exc
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"{self._name}: {what}: {exc}") from exc
            raise


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while building many objects at once.

    Each of the collector's full passes walks every live object; building 100,000 index
    entries triggers many of them, which made loading superlinear (measured: 1.4 s instead of
    0.4 s for 100,000 blocks in a process with a large heap). The entries form no garbage
    cycles, so nothing is lost by collecting later; the caller's setting is restored.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _index_rows(rows: list[Any]) -> Iterator[tuple[BlockHeader, int, int | None]]:
    for block_hash, raw, status, seq in rows:
        header = BlockHeader.deserialize(raw)
        # The stored hash saves a SHA-256d per header on every start; BlockHeader caches its
        # hash the same way, in its instance dict. verify() re-hashes what it reads.
        header.__dict__["hash"] = bytes(block_hash)
        yield header, status, seq


def _entry_row(entry: BlockEntry) -> tuple[Any, ...]:
    return (entry.hash, entry.header.serialize(), entry.height, int(entry.status), entry.seq)


def _coin_row(row: tuple[Any, ...]) -> tuple[OutPoint, Coin]:
    txid, vout, value, pubkey_hash, height, coinbase = row
    return OutPoint(txid, vout), Coin(value, pubkey_hash, height, bool(coinbase))


def _lock_datadir(datadir: Path) -> IO[bytes]:
    """Hold an exclusive lock on the data directory for as long as the store is open.

    Two processes on one store would each keep their own idea of the tip; the operating system
    drops the lock when the process dies, so a crash never leaves the directory locked.
    """
    path = datadir / LOCK_FILENAME
    try:
        lock = open(path, "ab")  # noqa: SIM115 - held open for the store's lifetime
    except OSError as exc:
        raise StoreError(f"cannot open {path}: {exc}") from exc
    try:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        lock.close()
        raise StoreError(
            f"data directory {datadir} is in use by another process (is a node running?)"
        ) from exc
    return lock


def _check_or_init(
    conn: sqlite3.Connection, params: NetworkParams, name: str, *, wal: bool
) -> None:
    """Make sure ``conn`` holds a chain store of ``params``' network; create one if empty.

    Nothing is written to a file that is not ours: it is identified before any pragma that
    changes it.
    """
    try:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{name} is not a forklab chain store ({exc})") from exc
    fresh = app_id == 0 and not tables
    try:
        if fresh:
            _init(conn, params, wal=wal)
        else:
            _check(conn, params, name, app_id, tables)
            if wal:
                conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA cache_size = -32000")
    except sqlite3.Error as exc:
        raise StoreError(f"{name}: cannot open the chain store: {exc}") from exc


def _init(conn: sqlite3.Connection, params: NetworkParams, *, wal: bool) -> None:
    if wal:
        conn.execute("PRAGMA journal_mode = WAL")
    genesis = params.genesis
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute(f"PRAGMA user_version = {FORMAT_VERSION}")
        conn.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?)",
            [
                ("magic", MAGIC),
                ("format", str(FORMAT_VERSION).encode()),
                ("network", params.name.encode()),
                ("genesis", genesis.hash),
                ("tip", genesis.hash),
            ],
        )
        status = BlockStatus.HAVE_DATA | BlockStatus.VALID
        conn.execute(
            "INSERT INTO block_index (hash, header, height, status, seq) VALUES (?, ?, 0, ?, 0)",
            (genesis.hash, genesis.header.serialize(), int(status)),
        )
        conn.execute(
            "INSERT INTO blocks (hash, data) VALUES (?, ?)", (genesis.hash, genesis.serialize())
        )
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise


def _check(
    conn: sqlite3.Connection, params: NetworkParams, name: str, app_id: int, tables: set[str]
) -> None:
    if app_id != APPLICATION_ID:
        raise StoreError(
            f"{name} is an SQLite database of another application (application_id "
            f"{app_id:#x}), not a forklab chain store"
        )
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version != FORMAT_VERSION:
        raise StoreError(
            f"{name} has chain store format version {version}; this forklab reads version "
            f"{FORMAT_VERSION}"
        )
    missing = _TABLES - tables
    if missing:
        raise StoreError(f"{name} is a damaged chain store: missing tables {sorted(missing)}")
    meta = {key: bytes(value) for key, value in conn.execute("SELECT key, value FROM meta")}
    if meta.get("magic") != MAGIC or meta.get("format") != str(FORMAT_VERSION).encode():
        raise StoreError(f"{name} is a damaged chain store: bad magic or format in its meta table")
    network = meta.get("network", b"?").decode(errors="replace")
    genesis = meta.get("genesis", b"")
    if genesis != params.genesis_hash:
        raise StoreError(
            f"{name} belongs to network {network!r} (genesis {hash_hex(genesis) or '?'}), "
            f"not to {params.name!r} (genesis {params.genesis.hash_hex}); use another data "
            "directory"
        )
    if "tip" not in meta:
        raise StoreError(f"{name} is a damaged chain store: no tip recorded")
