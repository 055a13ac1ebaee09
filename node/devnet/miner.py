"""The devnet's paced miner: real blocks, at a chosen share of the network's block rate.

A devnet wants blocks every few seconds whatever the machine, and miners whose *shares* of the
hash power it can set (60/40, a 51% attacker...). Hashing flat out would give neither: the
fastest CPU would win every race and the machine would be saturated. So each miner *simulates*
its hash power and *does* the work:

1. It waits an exponentially distributed time of mean ``interval`` (``block_time / share``),
   drawn from its own seeded random source. A miner with hash share ``s`` of a network that
   finds a block every ``T`` seconds finds its own blocks as a Poisson process of rate ``s / T``;
   exponential waits are exactly that, and since the process is memoryless a tip that changes
   during the wait needs no correction.
2. It asks its node for a template (``getblocktemplate``), builds the coinbase paying its own
   wallet (:mod:`node.devnet.wallets`, named after the miner) with the miner's name as coinbase
   message, and searches real nonces with a :class:`miner.Backend` (CPU or OpenCL, the same
   backends ``forklab miner`` uses) until the header meets the target. On regtest that is one or
   two hashes; on ``demo`` the network retargets to the blocks' real timestamps, so the search
   stays short next to the wait.
3. It submits the block (``submitblock``) and starts over. A block found on a tip that moved
   during the search is dropped, as a real miner's stale work would be.

When its node is unreachable (killed, restarting) the miner keeps its schedule, logs the outage
once, and re-reads the node's cookie when it comes back (a restarted node writes a new one).

**The inner loop is the miner's.** :func:`solve` hands the template to
:func:`miner.search.search_work`, the loop ``forklab mine`` runs on its worker thread (ranges
sized for the backend, extranonce rolled when a coinbase's 2^32 nonces are spent), and the
template is read by :func:`miner.work.template_from_gbt`. What the devnet adds is the pacing
(:class:`Pacer`) and one block at a time; ``forklab mine`` mines flat out instead.

What this module does not do: decide shares (the devnet divides them), or choose transactions
(the node's template does).
"""

from __future__ import annotations

import logging
import random
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from miner import Backend, open_backend
from miner.factory import BackendKind
from miner.search import search_work
from miner.work import TemplateWork, template_from_gbt
from node.core.address import decode_address
from node.core.block import Block
from node.core.errors import AddressError, DecodeError, ForklabError
from node.core.params import NetworkParams, params_for
from node.core.template import MAX_MESSAGE_SIZE, BlockTemplate
from node.devnet import wallets
from node.rpc.auth import AuthError
from node.rpc.client import RpcCallError, RpcClient, RpcConnectionError
from node.rpc.errors import RpcCode

log = logging.getLogger("forklab.devnet.miner")

READY_PREFIX = "forklab devnet miner ready:"
STALE_CHECK_EVERY = 0.5
"""Seconds of searching between two checks that the tip has not moved."""
RETRY_SECONDS = 1.0
"""Pause before trying an unreachable node again."""


@dataclass(frozen=True)
class MinerSettings:
    name: str
    rpc_url: str
    interval: float
    """Mean seconds between this miner's blocks: the devnet's block time over its share."""
    seed: int
    payout: str | None = None
    """The address its coinbases pay..."""
    payout_wallet: str | None = None
    """...or the devnet wallet whose address they pay (:mod:`node.devnet.wallets`)."""
    datadir: Path | None = None
    """Where the node's cookie is (read again after every outage), unless a user is given."""
    rpc_user: str | None = None
    rpc_password: str | None = None
    backend: BackendKind = "cpu"
    threads: int = 1


class Pacer:
    """When the next block is due: exponential waits of mean ``interval`` from a seeded source."""

    def __init__(self, interval: float, seed: int) -> None:
        if not interval > 0:
            raise ValueError(f"the mean interval must be positive, got {interval}")
        self.interval = interval
        self._rng = random.Random(seed)

    def next_wait(self) -> float:
        return self._rng.expovariate(1.0 / self.interval)


def solve(
    template: BlockTemplate,
    backend: Backend,
    *,
    extranonce: int = 0,
    stale: Callable[[], bool] = lambda: False,
) -> Block | None:
    """Search ``template`` for a block; None if ``stale()`` says the work is out of date.

    ``stale`` is asked at most every STALE_CHECK_EVERY seconds (it costs the node a call).
    """
    checked = time.monotonic()

    def stop() -> bool:
        nonlocal checked
        if time.monotonic() - checked < STALE_CHECK_EVERY:
            return False
        checked = time.monotonic()
        return stale()

    result = search_work(TemplateWork(template), backend, stop=stop, first_roll=extranonce)
    return None if result.solution is None else result.solution.block


class PacedMiner:
    """One miner's loop (see the module docstring); :meth:`run` until :meth:`stop`."""

    def __init__(self, settings: MinerSettings, backend: Backend) -> None:
        self.settings = settings
        self.backend = backend
        self.pacer = Pacer(settings.interval, settings.seed)
        self.message = f"forklab devnet {settings.name}".encode()[:MAX_MESSAGE_SIZE]
        self._stop = threading.Event()
        self._client: RpcClient | None = None
        self._offline = False
        self.blocks = 0

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def client(self) -> RpcClient:
        if self._client is None:
            s = self.settings
            if s.rpc_user is not None and s.rpc_password is not None:
                self._client = RpcClient(s.rpc_url, s.rpc_user, s.rpc_password, timeout=30)
            elif s.datadir is not None:
                self._client = RpcClient.from_datadir(s.rpc_url, s.datadir, timeout=30)
            else:
                raise ForklabError("the miner needs the node's data directory or an RPC user")
        return self._client

    def connect(self) -> NetworkParams:
        """Wait until the node answers; its network's parameters."""
        while True:
            try:
                chain = self.client().call("getblockchaininfo")["chain"]
                params = params_for(chain)
                self._online()
                return params
            except (RpcConnectionError, AuthError) as exc:
                self._went_offline(exc)
                if self._stop.wait(RETRY_SECONDS):
                    raise
            except ValueError as exc:
                raise ForklabError(f"the node at {self.settings.rpc_url}: {exc}") from exc

    def run(self, payout: bytes) -> None:
        """Mine blocks paying ``payout`` (a public-key hash) until :meth:`stop`."""
        while not self._stop.wait(self.pacer.next_wait()):
            try:
                self.mine_one(payout)
            except (RpcConnectionError, AuthError) as exc:
                self._went_offline(exc)
            except RpcCallError as exc:
                if exc.code == RpcCode.CLIENT_IN_INITIAL_DOWNLOAD:
                    log.info("%s: the node is downloading blocks; skipping this one", self.name)
                else:
                    log.warning("%s: %s", self.name, exc)

    @property
    def name(self) -> str:
        return self.settings.name

    def payout_pubkey_hash(self, params: NetworkParams) -> bytes:
        """What the coinbases pay: the configured address, or the named wallet's."""
        s = self.settings
        address = s.payout
        if address is None:
            if s.payout_wallet is None:
                raise ForklabError("the miner needs an address or a wallet name to pay")
            address = wallets.address(params, s.payout_wallet)
        try:
            return decode_address(address, params.address_version)
        except AddressError as exc:
            raise ForklabError(f"payout address {address!r}: {exc}") from None

    def mine_one(self, payout: bytes) -> str | None:
        """Mine one block on the current tip and submit it; the hash if the node took it."""
        client = self.client()
        raw = client.call("getblocktemplate")
        self._online()
        try:
            template = template_from_gbt(raw, payout, self.message)
        except (DecodeError, ValueError, KeyError) as exc:
            log.error("%s: the node sent a template that is not a block: %s", self.name, exc)
            return None
        prev = raw["previousblockhash"]
        started = time.monotonic()
        block = solve(
            template,
            self.backend,
            stale=lambda: self._stop.is_set() or client.call("getbestblockhash") != prev,
        )
        if block is None:
            if not self.stopping:
                log.info("%s: the tip moved during the search; starting over", self.name)
            return None
        result = client.call("submitblock", block.serialize().hex())
        seconds = time.monotonic() - started
        if result is None:
            self.blocks += 1
            log.info(
                "%s: block %d %s (%.2f s of search)",
                self.name,
                template.height,
                block.hash_hex,
                seconds,
            )
            return block.hash_hex
        log.info(
            "%s: block %d %s is not the tip: %s", self.name, template.height, block.hash_hex, result
        )
        return None

    def _went_offline(self, exc: Exception) -> None:
        if not self._offline:
            log.warning("%s: node unreachable (%s); retrying", self.name, exc)
            self._offline = True
        self._client = None  # a restarted node has a new cookie

    def _online(self) -> None:
        if self._offline:
            log.info("%s: the node is back", self.name)
            self._offline = False


def run(settings: MinerSettings) -> int:
    """The miner process: log to stderr, print the ready line, mine until SIGTERM or SIGINT."""
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    backend = open_backend(settings.backend, threads=settings.threads)
    miner = PacedMiner(settings, backend)

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        miner.stop()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal)
    try:
        try:
            params = miner.connect()
        except (RpcConnectionError, AuthError):
            return 0  # stopped before the node ever answered
        payout = miner.payout_pubkey_hash(params)
        print(
            f"{READY_PREFIX} {settings.name} on {settings.rpc_url} ({params.name}), "
            f"{backend.name} backend on {backend.device}, "
            f"a block every {settings.interval:.3g} s on average",
            flush=True,
        )
        miner.run(payout)
        log.info("%s: stopped after %d blocks", settings.name, miner.blocks)
    finally:
        backend.close()
    return 0
