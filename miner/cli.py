"""``forklab mine`` and ``forklab miner search | devices | bench``: the miner's command line.

``mine`` mines against a running node (:func:`cmd_mine`). ``search`` lets anyone check a kernel
on any header (``forklab miner search --header HEX --start N --count N``) and prints JSON;
``devices`` lists what OpenCL sees; ``bench`` measures. The commands are registered on an
argparse sub-parser by :func:`add_commands` (``mine`` and the ``miner`` group), which the
``forklab`` command line calls; :func:`main` runs the group alone (``python -m miner ...``).
Each leaf parser sets ``handler``, a function of the parsed arguments that returns the exit
status.

Messages for people (fallbacks, tuning progress) go through :mod:`logging` at INFO and WARNING,
which :func:`main` sends to stderr (a host command line should do the same); results go to
stdout. Errors in the arguments exit with status 2 and one line, failures at run time with one
line and status 1 (130 on Ctrl-C), never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import TypeAlias, cast

from miner.backend import HEADER_SIZE, MAX_TARGET, NONCE_SPACE, BackendUnavailableError
from miner.benchmark import BenchBackends, run_bench
from miner.factory import BACKEND_KINDS, BackendKind, open_backend
from miner.loop import DEFAULT_STATUS_INTERVAL, Miner
from miner.opencl import list_devices
from miner.rpc import (
    Credentials,
    GbtSource,
    GetworkSource,
    NodeRpc,
    cookie_file_credentials,
    datadir_credentials,
    fixed_credentials,
)
from miner.source import WorkSource
from miner.status import JsonReporter, Reporter, TextReporter
from miner.work import DEFAULT_MESSAGE
from node import config
from node.commands.rpc import CLIENT_OPTIONS, add_client_arguments
from node.core.header import bits_to_target
from node.core.template import MAX_MESSAGE_SIZE

Handler = Callable[[argparse.Namespace], int]


def _header(text: str) -> bytes:
    try:
        header = bytes.fromhex(text)
    except ValueError:
        raise argparse.ArgumentTypeError("the header must be hex digits") from None
    if len(header) != HEADER_SIZE:
        raise argparse.ArgumentTypeError(
            f"a header is {HEADER_SIZE} bytes ({2 * HEADER_SIZE} hex digits), got {len(header)}"
        )
    return header


def _target(text: str) -> int:
    digits = text.removeprefix("0x")
    if not 1 <= len(digits) <= 64:
        raise argparse.ArgumentTypeError("the target is 1 to 64 hex digits, most significant first")
    try:
        return int(digits, 16)
    except ValueError:
        raise argparse.ArgumentTypeError("the target must be hex digits") from None


def _nonce_number(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= NONCE_SPACE:
        raise argparse.ArgumentTypeError(f"{value} is outside 0..2^32")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError("seconds must be between 0 and 3600")
    return value


def _add_device_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device", type=int, metavar="N", help="OpenCL device number (see `forklab miner devices`)"
    )
    parser.add_argument(
        "--threads", type=_positive, metavar="N", help="CPU worker processes (default: all cores)"
    )


Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def add_commands(subparsers: Subparsers) -> None:
    """Register ``mine`` and the ``miner`` command group on ``subparsers`` (``forklab``'s)."""
    add_mine_command(subparsers)
    miner = subparsers.add_parser(
        "miner",
        help="nonce search backends: search, devices, bench",
        description="Nonce search backends: check a kernel on any header, list OpenCL "
        "devices, measure hashrates.",
    )
    _register(miner.add_subparsers(dest="miner_command", metavar="COMMAND", required=True))


def _register(commands: Subparsers) -> None:
    search = commands.add_parser(
        "search",
        help="search a nonce range of one header and print every hit as JSON",
        description="Search nonces [start, start+count) of an 80-byte header (its own nonce "
        "field is ignored) and print, as JSON, every nonce whose SHA-256d is at or below the "
        "target, with that hash (block-id order).",
    )
    search.add_argument(
        "--header", type=_header, required=True, metavar="HEX", help="the header, 80 bytes in hex"
    )
    search.add_argument(
        "--target",
        type=_target,
        metavar="HEX",
        help="target as a big-endian hex number (default: from the header's bits)",
    )
    search.add_argument(
        "--start", type=_nonce_number, default=0, metavar="N", help="first nonce (default 0)"
    )
    search.add_argument(
        "--count",
        type=_nonce_number,
        required=True,
        metavar="N",
        help="nonces to try; start + count <= 2^32 (numbers may be written 0x...)",
    )
    search.add_argument("--backend", choices=BACKEND_KINDS, default="auto")
    _add_device_options(search)
    search.set_defaults(handler=cmd_search)

    devices = commands.add_parser("devices", help="list OpenCL platforms and devices")
    devices.add_argument("--json", action="store_true", help="print one JSON array")
    devices.set_defaults(handler=cmd_devices)

    bench = commands.add_parser(
        "bench", help="hashrate of each backend and device, against this machine's SHA-256"
    )
    bench.add_argument("--backend", choices=("all", "opencl", "cpu"), default="all")
    bench.add_argument(
        "--seconds", type=_seconds, default=3.0, metavar="S", help="per backend (default 3)"
    )
    bench.add_argument("--json", action="store_true", help="print one JSON object")
    _add_device_options(bench)
    bench.set_defaults(handler=cmd_bench)


def _fail(command: str, message: str) -> int:
    print(f"miner {command}: error: {message}", file=sys.stderr)
    return 2


def _guarded(command: Handler) -> Handler:
    """Turn the failures a command can meet at run time into a line and an exit status, so the
    commands behave the same under ``forklab miner`` and ``python -m miner``."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        # Tuning progress and the OpenCL fallback are logged; show them however we were started
        # (a no-op when the caller configured logging already).
        logging.basicConfig(level=logging.INFO, format="forklab: %(message)s", stream=sys.stderr)
        try:
            return command(args)
        except BackendUnavailableError as exc:  # a device that failed after it was set up
            print(f"forklab: error: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("forklab: interrupted", file=sys.stderr)
            return 130
        except BrokenPipeError:
            # The reader went away (`... | head`): say nothing more, and keep Python from
            # complaining again when it flushes stdout at exit.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 1

    return run


@_guarded
def cmd_search(args: argparse.Namespace) -> int:
    header: bytes = args.header
    target: int | None = args.target
    if target is None:
        bits = int.from_bytes(header[72:76], "little")
        target = bits_to_target(bits)
        if target <= 0:
            return _fail("search", f"the header's bits {bits:#010x} encode no valid target")
    if target > MAX_TARGET:
        return _fail("search", "the target must be below 2^256")
    if args.start + args.count > NONCE_SPACE:
        return _fail(
            "search", f"start + count = {args.start + args.count} exceeds 2^32, the nonce space"
        )
    with open_backend(cast(BackendKind, args.backend), args.device, args.threads) as backend:
        found = backend.search(header, target, args.start, args.count)
        result = {
            "backend": backend.name,
            "device": backend.device,
            "header": header.hex(),
            "target": f"{target:064x}",
            "start": args.start,
            "count": args.count,
            "found": [{"nonce": f.nonce, "hash": f.hash_hex} for f in found],
        }
    print(json.dumps(result, indent=2))
    return 0


@_guarded
def cmd_devices(args: argparse.Namespace) -> int:
    try:
        devices = list_devices()
    except BackendUnavailableError as exc:
        if args.json:
            print("[]")
        print(f"No OpenCL device: {exc}.", file=sys.stderr if args.json else sys.stdout)
        return 0
    if args.json:
        print(json.dumps([vars(d) | {"label": d.label} for d in devices], indent=2))
        return 0
    platform = None
    for d in devices:
        if d.platform != platform:
            platform = d.platform
            print(f"platform: {platform}")
        print(
            f"  device {d.index}: {d.name} [{d.kind}] {d.compute_units} compute units, "
            f"work-groups up to {d.max_work_group_size}, preferred int vector "
            f"{d.preferred_vector_width}; {d.version}, driver {d.driver_version}"
        )
    return 0


@_guarded
def cmd_bench(args: argparse.Namespace) -> int:
    report = run_bench(cast(BenchBackends, args.backend), args.seconds, args.device, args.threads)
    print(json.dumps(report.to_json(), indent=2) if args.json else report.table())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m miner ...``: the ``miner`` command group alone."""
    parser = argparse.ArgumentParser(
        prog="python -m miner", description="The forklab miner's commands (forklab miner ...)."
    )
    _register(parser.add_subparsers(dest="command", metavar="COMMAND", required=True))
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    return handler(args)


# -- forklab mine

PROTOCOLS = ("auto", "gbt", "getwork")
INTERACTIVE_STATUS_INTERVAL = 1.0


def _interval(text: str) -> float:
    value = _seconds(text)
    if value < 0.1:
        raise argparse.ArgumentTypeError("the status interval is at least 0.1 s")
    return value


def add_mine_command(subparsers: Subparsers) -> None:
    """Register ``forklab mine`` on ``subparsers``."""
    mine = subparsers.add_parser(
        "mine",
        help="mine blocks against a running node (getblocktemplate or getwork)",
        description="Mine against a running node: templates from getblocktemplate with long "
        "polling, coinbases paying --address, blocks submitted with submitblock; or getwork "
        "units, whose blocks pay the node's own mining address. Stops cleanly on Ctrl-C or "
        "SIGTERM and prints a summary.",
    )
    add_client_arguments(mine)
    mine.add_argument(
        "--cookie",
        type=Path,
        metavar="FILE",
        help="the node's cookie file (default: .cookie in the data directory)",
    )
    mine.add_argument(
        "--address",
        metavar="ADDR",
        help="the address your blocks pay (getblocktemplate); without it, getwork mines for "
        "the node's mining address",
    )
    mine.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        default="auto",
        help="gbt (getblocktemplate), getwork, or auto: gbt with --address, getwork without",
    )
    mine.add_argument("--backend", choices=BACKEND_KINDS, default="auto")
    _add_device_options(mine)
    mine.add_argument(
        "--message",
        default=DEFAULT_MESSAGE.decode(),
        metavar="TEXT",
        help=f"coinbase message (default {DEFAULT_MESSAGE.decode()!r}, at most "
        f"{MAX_MESSAGE_SIZE} bytes)",
    )
    mine.add_argument("--blocks", type=_positive, metavar="N", help="stop after N accepted blocks")
    mine.add_argument("--json", action="store_true", help="one JSON object per line on stdout")
    mine.add_argument(
        "--status-interval",
        type=_interval,
        metavar="S",
        help=f"seconds between status reports (default {INTERACTIVE_STATUS_INTERVAL:g} on a "
        f"terminal, else {DEFAULT_STATUS_INTERVAL:g})",
    )
    mine.set_defaults(handler=cmd_mine)


@_guarded
def cmd_mine(args: argparse.Namespace) -> int:
    protocol: str = args.protocol
    if protocol == "auto":
        protocol = "gbt" if args.address is not None else "getwork"
    if protocol == "gbt" and args.address is None:
        return _fail("mine", "--address is required with getblocktemplate: the address to pay")
    if protocol == "getwork" and args.address is not None:
        return _fail(
            "mine",
            "getwork's blocks pay the node's own mining address, not --address; "
            "use --protocol gbt to pay an address of yours",
        )
    message = args.message.encode()
    if len(message) > MAX_MESSAGE_SIZE:
        return _fail("mine", f"the coinbase message is at most {MAX_MESSAGE_SIZE} bytes")
    cfg = config.load({key: getattr(args, key, None) for key in (*CLIENT_OPTIONS, "config")})
    credentials: Credentials
    if cfg.rpc_user is not None and cfg.rpc_password is not None:
        credentials = fixed_credentials(cfg.rpc_user, cfg.rpc_password)
    elif args.cookie is not None:
        credentials = cookie_file_credentials(args.cookie)
    else:
        credentials = datadir_credentials(cfg.datadir)
    rpc = NodeRpc(args.rpc or cfg.rpc_url, credentials, timeout=args.timeout)
    source: WorkSource = (
        GbtSource(rpc, args.address, message=message) if protocol == "gbt" else GetworkSource(rpc)
    )
    reporter: Reporter = JsonReporter() if args.json else TextReporter()
    interval = args.status_interval
    if interval is None:
        interactive = isinstance(reporter, TextReporter) and reporter.interactive
        interval = INTERACTIVE_STATUS_INTERVAL if interactive else DEFAULT_STATUS_INTERVAL
    with open_backend(cast(BackendKind, args.backend), args.device, args.threads) as backend:
        miner = Miner(source, backend, reporter=reporter, status_interval=interval)
        try:
            asyncio.run(_mine(miner, args.blocks))
        except BrokenProcessPool:
            return _fail_run("a CPU worker process died (out of memory?)")
        finally:
            reporter.close()
    return 0


def _fail_run(message: str) -> int:
    print(f"forklab mine: error: {message}", file=sys.stderr)
    return 1


async def _mine(miner: Miner, blocks: int | None) -> None:
    """Run ``miner`` until its blocks are mined or a signal: the first SIGINT or SIGTERM stops
    it cleanly, a second one cuts short whatever the stop is waiting for."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None

    def on_signal() -> None:
        if miner.stopping:
            task.cancel()
        miner.stop()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal)
    try:
        await miner.run(blocks=blocks)
    except asyncio.CancelledError:
        if not miner.stopping:
            raise
    finally:
        await miner.source.close()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
