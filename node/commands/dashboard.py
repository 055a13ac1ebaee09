"""``forklab dashboard``: serve the live web page of a devnet, or of nodes started by hand.

::

    forklab dashboard                                  the default devnet, http://127.0.0.1:18580
    forklab dashboard --dir /tmp/dn --port 8080        another devnet, another port
    forklab dashboard --node a http://127.0.0.1:18443 /tmp/a --node b http://127.0.0.1:18543 /tmp/b

With ``--node`` the dashboard watches those nodes (name, API URL and data directory, whose
cookie lets it mine, pay and set partitions through their RPC); otherwise it follows the devnet
in ``--dir`` (default: the devnet's per-user directory), reading its state file as it changes.
It prints one ready line with the URL, then serves until Ctrl-C. See ``docs/dashboard.md``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from node.dashboard import DEFAULT_PORT, NodeEndpoint, serve_dashboard
from node.dashboard.server import DashboardError
from node.devnet import default_dir


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "dashboard",
        help="serve the live web page of a devnet (or of nodes started by hand)",
        description="Serve the dashboard: the block tree, the network, the nodes and controls.",
    )
    parser.add_argument(
        "--dir", type=Path, metavar="D", help="the devnet directory (default: the per-user one)"
    )
    parser.add_argument(
        "--node",
        nargs=3,
        action="append",
        default=[],
        metavar=("NAME", "URL", "DATADIR"),
        help="watch this node instead of a devnet (repeatable); DATADIR holds its cookie",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (loopback)")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0: any)"
    )
    parser.add_argument(
        "--poll",
        type=float,
        default=1.0,
        metavar="S",
        help="seconds between two status polls of each node (default 1)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if not 0.1 <= args.poll <= 60:
        raise DashboardError(f"--poll must be from 0.1 to 60 seconds, got {args.poll:g}")
    nodes = [NodeEndpoint(name, url.rstrip("/"), Path(datadir)) for name, url, datadir in args.node]
    devnet_dir = None if nodes else (args.dir or default_dir())
    if nodes and args.dir is not None:
        raise DashboardError("watch a devnet (--dir) or a list of nodes (--node), not both")
    return serve_dashboard(devnet_dir, args.host, args.port, nodes=nodes, poll_interval=args.poll)
