"""Persistent storage of the chain: one SQLite database per data directory.

The schema, the crash-consistency argument and the open-time checks are documented in
:mod:`node.store.sqlite`; :mod:`node.store.verify` rebuilds the UTXO set from the stored blocks
and compares. Nothing here decides which chain is best or whether a block is valid: that is
:mod:`node.core` and :mod:`node.chainstate`.
"""

from node.store.sqlite import DB_FILENAME, FORMAT_VERSION, ChainStore

__all__ = ["DB_FILENAME", "FORMAT_VERSION", "ChainStore"]
