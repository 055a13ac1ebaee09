"""forklab: a small but real peer-to-peer blockchain to learn, build and break things.

Packages, in the direction data flows (wire -> decode/validate -> core -> store -> events):

- ``node.core``: the pure consensus core (encodings, transactions, headers, proof of work, chain
  selection, UTXO with undo, mempool policy). No asyncio, no sockets, no wall clock, no global
  random state: everything it needs is passed in, so the same rules run in a real node, in the
  deterministic simulator and in tests.
- ``node.store``: the SQLite chain store of one data directory.
- ``node.chainstate``: the single owner of a node's chain: core rules over a store.
- ``node.wallet``: keys, key files, coin selection and payments.
- ``node.cli``: the ``forklab`` command.

The miner lives in the sibling package ``miner``; OpenCL kernel sources in ``kernels``.
"""

__version__ = "0.1.0"
