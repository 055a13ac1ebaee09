"""``python -m miner``: the miner commands without the rest of the ``forklab`` command line."""

from __future__ import annotations

from miner.cli import main

# The guard matters beyond style: CPU worker processes are spawned, and spawning re-imports the
# main module, which must not run the command again.
if __name__ == "__main__":
    raise SystemExit(main())
