"""``forklab devnet``: a local network of nodes and miners, with funded wallets, in one command.

::

    forklab devnet up [--nodes 4] [--miners 1] [--network regtest|demo]
                      [--topology line|ring|mesh|random:K] [--block-time 5] [--base-port 18600]
                      [--dashboard-port 18580 | --no-dashboard]
    forklab devnet status [--json]          every node's ports, height, tip and peers
    forklab devnet down [--wipe]            stop everything (keep the chain unless --wipe)
    forklab devnet logs NAME [-n 40] [-f]   a node's, miner's or the dashboard's log
    forklab devnet partition n1,n2 n3,n4    cut the network into groups
    forklab devnet heal                     join them again, and wait for one tip
    forklab devnet kill NAME [--term]       crash a node or miner (SIGKILL; --term: cleanly)
    forklab devnet restart NAME             start it again; a node catches up
                                            (both also take the dashboard: NAME dashboard)
    forklab devnet latency n1 n2 MS         one-way delay each way on a link (0 removes it)
    forklab devnet mine NODE [N] [--to W]   mine N blocks on NODE now
    forklab devnet send FROM TO AMOUNT      pay coins from a devnet wallet

Every action takes ``--dir D`` (default ``$XDG_STATE_HOME/forklab/devnet``). The work is done
by :class:`node.devnet.Devnet`; this module parses arguments and prints: tables for people,
``--json`` for scripts (``status`` and ``up``), progress on stderr. ``forklab devnet miner``
runs one paced miner; ``up`` starts those, and the Docker image uses it too.

``python -m node.devnet ARGS`` is the same as ``forklab devnet ARGS``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeAlias

from miner.factory import BACKEND_KINDS, BackendKind
from node.core.errors import ForklabError
from node.core.tx import format_amount
from node.devnet import Devnet, DevnetError, Progress, UpOptions, default_dir, parse_shares
from node.devnet.miner import MinerSettings
from node.devnet.miner import run as run_miner
from node.devnet.state import NETWORKS
from node.devnet.status import DevnetStatus

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "devnet",
        help="a local network of nodes and miners: up, status, down, partition, kill...",
        description="A local network of nodes and miners with funded wallets, on loopback.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    def action(name: str, help_text: str, handler: Callable[[argparse.Namespace], int]) -> Any:
        sub = actions.add_parser(name, help=help_text, description=help_text)
        sub.add_argument(
            "--dir",
            type=Path,
            default=None,
            metavar="DIR",
            help="the devnet's directory (default: $XDG_STATE_HOME/forklab/devnet)",
        )
        sub.set_defaults(handler=handler)
        return sub

    up = action("up", "start (or resume) the devnet and print where to find it", _up)
    up.add_argument("--nodes", type=int, metavar="N", help="nodes (default 4)")
    up.add_argument("--miners", type=int, metavar="M", help="miners, 0 for none (default 1)")
    up.add_argument("--network", choices=NETWORKS, help="chain preset (default regtest)")
    up.add_argument(
        "--topology",
        metavar="SHAPE",
        help="line, ring, mesh or random:K (default ring)",
    )
    up.add_argument(
        "--block-time",
        type=float,
        metavar="S",
        help="mean seconds between blocks, all miners together (default 5)",
    )
    up.add_argument(
        "--base-port",
        type=int,
        metavar="P",
        help="node i uses P2P port P+2i and RPC port P+2i+1; 0 for free ports (default 18600)",
    )
    up.add_argument(
        "--miner-shares",
        type=_shares,
        metavar="W,W,...",
        help="each miner's hash power, e.g. 0.6,0.4 or 3,1 (default equal shares)",
    )
    up.add_argument(
        "--miner-nodes",
        type=_names,
        metavar="NODE,...",
        help="the node each miner mines on (default n1, n2, ... in turn)",
    )
    up.add_argument(
        "--miner-backend",
        choices=BACKEND_KINDS,
        help="nonce search: cpu, opencl or auto (default cpu)",
    )
    up.add_argument(
        "--wallets",
        type=_names,
        metavar="NAME,...",
        help="wallets funded in the first blocks (default alice,bob,carol)",
    )
    up.add_argument("--seed", type=int, metavar="N", help="seed of the random choices (default 1)")
    up.add_argument(
        "--dashboard",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="run the devnet's web dashboard (default: yes for a new devnet, as recorded after)",
    )
    up.add_argument(
        "--dashboard-port",
        type=int,
        metavar="P",
        help="the dashboard's port (default: base port - 20, that is 18580; 0: a free port)",
    )
    up.add_argument("--json", action="store_true", help="print the status as JSON")

    status = action("status", "every node's ports, height, tip and peers", _status)
    status.add_argument("--json", action="store_true", help="as JSON (keys in docs/devnet.md)")

    down = action("down", "stop every node and miner of the devnet", _down)
    down.add_argument("--wipe", action="store_true", help="also delete the chains and logs")

    logs = action("logs", "print a node's or a miner's log", _logs)
    logs.add_argument("name", metavar="NAME", help="a node (n1), a miner (m1) or dashboard")
    logs.add_argument("-n", "--lines", type=int, default=40, metavar="N", help="last N lines")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")

    partition = action("partition", "cut the network into groups that cannot talk", _partition)
    partition.add_argument(
        "groups",
        nargs="+",
        metavar="GROUP",
        help="comma-separated node names, e.g. n1,n2 n3,n4 (unnamed nodes form one more group)",
    )

    heal = action("heal", "lift the partition and wait for one tip", _heal)
    heal.add_argument("--no-wait", action="store_true", help="return without waiting")

    kill = action("kill", "stop a node or miner abruptly (SIGKILL, as a crash)", _kill)
    kill.add_argument("name", metavar="NAME", help="a node (n1), a miner (m1) or dashboard")
    kill.add_argument("--term", action="store_true", help="ask it to stop cleanly (SIGTERM)")

    restart = action("restart", "start a node or miner again (a node catches up)", _restart)
    restart.add_argument("name", metavar="NAME", help="a node (n1), a miner (m1) or dashboard")

    latency = action("latency", "add a one-way delay each way on a link", _latency)
    latency.add_argument("a", metavar="A", help="a node")
    latency.add_argument("b", metavar="B", help="another node")
    latency.add_argument("ms", type=int, metavar="MS", help="milliseconds; 0 removes the delay")

    mine = action("mine", "mine blocks on a node now; prints their hashes", _mine)
    mine.add_argument("node", metavar="NODE", help="the node that mines and relays them")
    mine.add_argument("count", type=int, nargs="?", default=1, metavar="N", help="blocks (1)")
    mine.add_argument(
        "--to", metavar="WALLET", help="a wallet name or address to pay (the first wallet)"
    )

    send = action("send", "pay coins from a devnet wallet; prints the txid", _send)
    send.add_argument("source", metavar="FROM", help="a devnet wallet (alice, m1...)")
    send.add_argument("target", metavar="TO", help="a devnet wallet or an address")
    send.add_argument("amount", metavar="AMOUNT", help="coins, e.g. 1.5")
    send.add_argument("--via", metavar="NODE", help="the node to submit to (the first running)")
    send.add_argument("--fee-rate", type=int, metavar="N", help="units per byte (node's minimum)")

    miner = actions.add_parser(
        "miner",
        help="run one paced miner against a node (up starts these)",
        description=(
            "Mine real blocks on a node at a chosen pace: exponential waits of mean --interval "
            "seconds, then a nonce search on the template. Runs until SIGTERM or SIGINT."
        ),
    )
    miner.add_argument("--name", default="miner", help="shown in logs and coinbases")
    miner.add_argument("--rpc", required=True, metavar="URL", help="the node's API, http://H:P")
    miner.add_argument("--datadir", type=Path, metavar="DIR", help="the node's dir (its cookie)")
    miner.add_argument(
        "--rpc-user", metavar="USER", help="RPC user, instead of the cookie (env FORKLAB_RPC_USER)"
    )
    miner.add_argument(
        "--rpc-password", metavar="PW", help="its password (env FORKLAB_RPC_PASSWORD)"
    )
    payee = miner.add_mutually_exclusive_group(required=True)
    payee.add_argument("--address", help="the address coinbases pay")
    payee.add_argument("--wallet", metavar="NAME", help="...or a devnet wallet's name")
    miner.add_argument(
        "--interval", type=float, required=True, metavar="S", help="mean seconds between blocks"
    )
    miner.add_argument("--seed", type=int, default=0, metavar="N", help="seed of the waits")
    miner.add_argument("--backend", choices=BACKEND_KINDS, default="cpu", help="nonce search")
    miner.add_argument("--threads", type=int, default=1, metavar="N", help="CPU worker processes")
    miner.set_defaults(handler=_miner)


def _shares(text: str) -> tuple[float, ...]:
    try:
        return parse_shares(text)
    except DevnetError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _devnet(args: argparse.Namespace) -> Devnet:
    return Devnet(args.dir if args.dir is not None else default_dir(), Progress())


# ------------------------------------------------------------------------------ actions


def _up(args: argparse.Namespace) -> int:
    devnet = _devnet(args)
    started = time.monotonic()
    devnet.up(
        UpOptions(
            nodes=args.nodes,
            miners=args.miners,
            network=args.network,
            topology=args.topology,
            block_time=args.block_time,
            base_port=args.base_port,
            seed=args.seed,
            wallets=args.wallets,
            miner_shares=args.miner_shares,
            miner_nodes=args.miner_nodes,
            miner_backend=args.miner_backend,
            dashboard=args.dashboard,
            dashboard_port=args.dashboard_port,
        )
    )
    status = devnet.status()
    if args.json:
        print(json.dumps(status.to_json(), indent=2))
        return 0
    devnet.progress.note(f"devnet up in {time.monotonic() - started:.1f} s")
    print(render(status))
    print(f"\nStop it with: forklab devnet down --dir {status.dir}")
    return 0


def _status(args: argparse.Namespace) -> int:
    status = _devnet(args).status()
    if args.json:
        print(json.dumps(status.to_json(), indent=2))
    else:
        print(render(status))
    return 0


def _down(args: argparse.Namespace) -> int:
    devnet = _devnet(args)
    stopped = devnet.down(wipe=args.wipe)
    what = ", ".join(stopped) if stopped else "nothing was running"
    print(f"stopped: {what}" + (f"; wiped {devnet.root}" if args.wipe else ""))
    return 0


def _logs(args: argparse.Namespace) -> int:
    path = _devnet(args).log_path(args.name)
    if not path.exists():
        raise DevnetError(f"{args.name} has no log yet ({path})")
    with path.open("r", encoding="utf-8", errors="replace") as f:
        lines = f.readlines()
        sys.stdout.writelines(lines[-args.lines :] if args.lines > 0 else lines)
        sys.stdout.flush()
        if not args.follow:
            return 0
        try:
            while True:
                line = f.readline()
                if line:
                    sys.stdout.write(line)
                    sys.stdout.flush()
                else:
                    time.sleep(0.2)
        except KeyboardInterrupt:
            return 0


def _partition(args: argparse.Namespace) -> int:
    groups = _devnet(args).partition(args.groups)
    print("partitioned: " + " | ".join(",".join(g) for g in groups))
    return 0


def _heal(args: argparse.Namespace) -> int:
    summary = _devnet(args).heal(wait=not args.no_wait)
    print("healed" + (f": every node on one tip at {summary}" if summary else ""))
    return 0


def _kill(args: argparse.Namespace) -> int:
    _devnet(args).kill(args.name, term=args.term)
    print(f"{'stopped' if args.term else 'killed'} {args.name}")
    return 0


def _restart(args: argparse.Namespace) -> int:
    height = _devnet(args).restart(args.name)
    print(f"restarted {args.name}" + (f" at height {height}" if height is not None else ""))
    return 0


def _latency(args: argparse.Namespace) -> int:
    _devnet(args).latency(args.a, args.b, args.ms)
    if args.ms:
        print(f"latency {args.a} <-> {args.b}: {args.ms} ms each way")
    else:
        print(f"latency {args.a} <-> {args.b} removed")
    return 0


def _mine(args: argparse.Namespace) -> int:
    for block_hash in _devnet(args).mine(args.node, args.count, args.to):
        print(block_hash)
    return 0


def _send(args: argparse.Namespace) -> int:
    txid = _devnet(args).send(
        args.source, args.target, args.amount, via=args.via, fee_rate=args.fee_rate
    )
    print(txid)
    return 0


def _miner(args: argparse.Namespace) -> int:
    user = args.rpc_user or os.environ.get("FORKLAB_RPC_USER")
    password = args.rpc_password or os.environ.get("FORKLAB_RPC_PASSWORD")
    if (user is None) != (password is None):
        raise DevnetError("--rpc-user and --rpc-password go together")
    if args.datadir is None and user is None:
        raise DevnetError("give the node's --datadir (for its cookie) or --rpc-user/--rpc-password")
    if not args.interval > 0:
        raise DevnetError(f"--interval must be positive, got {args.interval}")
    backend: BackendKind = args.backend
    return run_miner(
        MinerSettings(
            name=args.name,
            rpc_url=args.rpc,
            interval=args.interval,
            seed=args.seed,
            payout=args.address,
            payout_wallet=args.wallet,
            datadir=args.datadir,
            rpc_user=user,
            rpc_password=password,
            backend=backend,
            threads=args.threads,
        )
    )


# ------------------------------------------------------------------------------ tables


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in (header, *rows)
    ]
    return "\n".join(line.rstrip() for line in lines)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def render(status: DevnetStatus) -> str:
    """The status for people: nodes, miners, wallets, and the links' state."""
    node_count = len(status.nodes)
    out = [
        f"devnet {status.dir}: {status.network}, {_count(node_count, 'node')} "
        f"({status.topology}), "
        f"{_count(len(status.miners), 'miner')}, a block every {status.block_time:g} s",
        *_dashboard_line(status),
        "",
        table(
            ("node", "state", "p2p", "rpc", "height", "tip", "peers", "cookie"),
            [
                (
                    n.name,
                    "running" if n.running else "stopped",
                    str(n.p2p_port),
                    n.rpc_url,
                    "-" if n.height is None else str(n.height),
                    "-" if n.tip is None else n.tip[:16],
                    ",".join(n.peers) or "-",
                    str(n.cookie),
                )
                for n in status.nodes
            ],
        ),
    ]
    if status.miners:
        out += [
            "",
            table(
                ("miner", "node", "share", "state", "address"),
                [
                    (
                        m.name,
                        m.node,
                        f"{m.share:.0%}",
                        "running" if m.running else "stopped",
                        m.address,
                    )
                    for m in status.miners
                ],
            ),
        ]
    out += [
        "",
        table(
            ("wallet", "address", "balance"),
            [
                (w.name, w.address, "-" if w.balance is None else format_amount(w.balance))
                for w in status.wallets
            ],
        ),
    ]
    if status.partition:
        out += ["", "partition: " + " | ".join(",".join(g) for g in status.partition)]
    for link in status.latency:
        out.append(f"latency: {link.a} <-> {link.b} {link.ms} ms each way")
    return "\n".join(out)


def _dashboard_line(status: DevnetStatus) -> list[str]:
    board = status.dashboard
    if board is None:
        return []
    if board.running:
        return [f"dashboard: {board.url}"]
    where = f" ({board.url})" if board.url else ""
    return [f"dashboard: stopped{where}; start it with: forklab devnet restart dashboard"]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m node.devnet ARGS``: the same as ``forklab devnet ARGS``."""
    parser = argparse.ArgumentParser(prog="forklab")
    register(parser.add_subparsers(dest="command", metavar="COMMAND", required=True))
    args = parser.parse_args(["devnet", *(sys.argv[1:] if argv is None else argv)])
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except ForklabError as exc:
        print(f"forklab devnet: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
