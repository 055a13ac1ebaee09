"""The pure consensus core of forklab.

What it holds: encodings (canonical msgpack), transactions, block headers in Bitcoin's 80-byte
layout, proof of work and retargeting, merkle roots, network presets, signatures and addresses,
the block rules, the UTXO set with undo data, chain selection by cumulative work, mempool policy
and block templates.

What it deliberately does not do: no asyncio, no sockets, no files, no wall clock and no global
random state. Time arrives as an integer argument (``now``), randomness as a callable, storage
through small interfaces. That is what lets one node's code run unchanged on real sockets and in
the seeded simulator with virtual time, and what makes every rule a plain function to test.
"""
