"""Local networks: ``forklab devnet`` runs real node and miner processes on loopback.

One command gives a developer or a class a network of nodes and miners with funded wallets and
an API, in seconds, and then lets them break it: partitions, latency, crashes and restarts, on
real processes and real sockets, as an ordinary user.

Modules, from the bottom up:

============  =============================================================================
module        what it holds
============  =============================================================================
state         the devnet directory, its JSON state file, the lock
topology      the topology's links, partition groups, the link policy that enforces both
procs         detached processes: spawn, find again (a pid is checked before it is trusted),
              stop by process group
wallets       named deterministic wallets, the funding plan, payments signed by the devnet
plan          what ``up`` builds: a new devnet from options, or the recorded one resumed
miner         the paced miner: Poisson block times at a hash power share, real proof of work
launch        the node, miner and dashboard command lines
status        what ``status`` shows, and its ``--json`` shape
progress      start-up and sync progress on stderr
devnet        :class:`Devnet`: up, down, and the live controls
============  =============================================================================

What this package does not do: run consensus or P2P itself (the nodes do, each its own
process), or simulate time (the fork lab's simulator does that, in one process). The command
line is :mod:`node.commands.devnet`; the whole picture is in ``docs/devnet.md``.
"""

from node.devnet.devnet import Devnet
from node.devnet.plan import UpOptions, parse_shares
from node.devnet.progress import Progress
from node.devnet.state import DevnetError, DevnetState, default_dir
from node.devnet.status import DevnetStatus

__all__ = [
    "Devnet",
    "DevnetError",
    "DevnetState",
    "DevnetStatus",
    "Progress",
    "UpOptions",
    "default_dir",
    "parse_shares",
]
