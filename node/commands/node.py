"""``forklab node``: run a node process, with its P2P listener and its API, until told to stop.

::

    forklab node --datadir /tmp/n1 --network regtest --listen 127.0.0.1:18444 \\
                 --rpc-listen 127.0.0.1:18443 --connect 127.0.0.1:18544

Configuration comes from flags, ``FORKLAB_*`` environment variables and a TOML file
(:mod:`node.config`, every option listed in ``docs/api.md``). Both listeners bind to loopback
unless told otherwise; port 0 picks a free port.

Start-up, in order: open (or create) the data directory and the wallet, open the chain and
start P2P, write the RPC cookie, start the API. When both ports accept connections the process
prints one line to stdout, which scripts and tests wait for::

    forklab node ready: network regtest, height 0, p2p 127.0.0.1:18444, rpc http://127.0.0.1:18443

SIGINT and SIGTERM (and the ``stop`` RPC) shut down in the reverse order: the API stops
accepting and closes its streams, peers are closed, the store is flushed and closed, the cookie
is removed. Exit status 0. A port in use or a data directory held by another node is one line on
stderr and exit status 1. A ``kill -9`` loses nothing committed (the store's transactions are
atomic); the next start resumes at the last committed tip and replaces the stale cookie.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from contextlib import AsyncExitStack
from pathlib import Path

from node import config
from node.core.address import decode_address
from node.core.errors import StoreError
from node.core.template import MiningPolicy
from node.node import Node
from node.node import NodeConfig as CoreConfig
from node.p2p.manager import P2PConfig
from node.rpc.auth import CookieFile, Credentials
from node.rpc.context import RpcContext
from node.rpc.methods import build_registry
from node.rpc.server import ApiServer, ApiSettings
from node.rpc.wallet_service import PASSPHRASE_ENV, NodeWallet
from node.rpc.work import TemplateWatcher, WorkBoard
from node.runtime import TransportError, real_runtime

log = logging.getLogger("forklab.node")

READY_PREFIX = "forklab node ready:"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "node",
        help="run a node (P2P, chain, mempool, wallet and the API)",
        description="Run a node: chain, mempool, wallet, P2P and the API, until told to stop.",
    )
    config.add_arguments(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    cfg = config.load(args)
    logging.basicConfig(
        level=cfg.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    prepare_datadir(cfg.datadir)
    wallet = (
        NodeWallet.open(cfg.datadir, cfg.params, os.environ.get(PASSPHRASE_ENV))
        if cfg.wallet
        else None
    )
    return asyncio.run(serve(cfg, wallet))


def prepare_datadir(datadir: Path) -> None:
    try:
        datadir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create the data directory {datadir}: {exc}") from exc


def core_config(cfg: config.NodeConfig) -> CoreConfig:
    return CoreConfig(
        params=cfg.params,
        datadir=cfg.datadir,
        p2p=P2PConfig(
            listen=str(cfg.listen),
            connect=tuple(str(peer) for peer in cfg.connect),
            max_outbound=cfg.max_outbound,
            max_inbound=cfg.max_inbound,
        ),
        mempool_max_bytes=cfg.mempool_max_bytes,
        min_fee_rate=cfg.min_fee_rate,
    )


async def serve(cfg: config.NodeConfig, wallet: NodeWallet | None) -> int:
    """Run until SIGINT, SIGTERM or the ``stop`` RPC; 0 after a clean stop."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    runtime = real_runtime(cfg.seed)
    node = Node(core_config(cfg), runtime)
    async with AsyncExitStack() as cleanup:
        try:
            await node.start()
        except BaseException as exc:
            # Node.stop only undoes a finished start; release what the runtime holds here.
            runtime.executor.close()
            await runtime.transport.close()
            if isinstance(exc, TransportError):
                raise config.ConfigError(
                    f"P2P: {exc} (another node on {cfg.listen}? choose another with --listen)"
                ) from None
            raise
        cleanup.push_async_callback(node.stop)
        cookie = CookieFile.create(cfg.datadir)
        cleanup.callback(cookie.remove)
        pairs = [(cookie.user, cookie.password)]
        if cfg.rpc_user is not None and cfg.rpc_password is not None:
            pairs.append((cfg.rpc_user, cfg.rpc_password))
        ctx = RpcContext(
            node=node,
            registry=build_registry(),
            clock=runtime.clock,
            request_stop=stop.set,
            work=WorkBoard(first_extranonce=runtime.rng.getrandbits(64)),
            templates=TemplateWatcher(),
            wallet_service=wallet,
            mining_address=(
                decode_address(cfg.mining_address, cfg.params.address_version)
                if cfg.mining_address is not None
                else None
            ),
            mining_policy=MiningPolicy(
                frozenset(
                    decode_address(address, cfg.params.address_version)
                    for address in cfg.mining_exclude_addresses
                )
            ),
        )
        server = ApiServer(ctx, ApiSettings(Credentials.of(*pairs), rest_public=cfg.rest_public))
        api_address = await server.start(cfg.rpc_listen)
        cleanup.push_async_callback(server.stop)
        print(
            f"{READY_PREFIX} network {cfg.network}, height {node.height}, "
            f"p2p {node.listen_address}, rpc http://{api_address}",
            flush=True,
        )
        await stop.wait()
        log.info("stopping")
    return 0
