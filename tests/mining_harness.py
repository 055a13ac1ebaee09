"""A node whose next block is out of reach, for tests of a miner that must be busy on it.

On regtest every second hash is a block, so a miner is never caught in the middle of a search.
These tests need one that is: it must still be searching when a new tip arrives from
elsewhere, and its backends must work long enough to be measured and interrupted. So:

* ``HARD`` is regtest with one change of rules: the target is retargeted every 2 blocks, with
  a spacing of 2^39 s and no clamp that matters. Block 1 is as easy as on regtest; a block 1
  dated one second after genesis makes block 2's target 2^40 times harder (about 2^41 hashes:
  days for a CPU). A block 1 dated now (half a day or more after the genesis time) makes it
  only tens of millions of hashes.
* :func:`hard_node` starts a real :class:`~node.node.Node` on ``HARD`` with such a block 1
  (``a1``) as its tip: whoever mines on it searches block 2 and does not find it.
  ``invalidateblock a1`` is then a new tip from elsewhere (the genesis block), after which a
  miner finds block 1 at once.
* :func:`serve_api` serves that node's real API (JSON-RPC, long polls, ``/events``) on a free
  port, with a user and password, for the miner's RPC sources and for ``forklab mine``.

Nothing is mocked: the rules, the node, its API and the miner are the real ones; only the
network's constants are chosen.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from blocktools import ChainBuilder, key, pkh
from p2p_harness import start_node

from node.config import Endpoint
from node.core.address import encode_address
from node.core.params import REGTEST
from node.node import Node
from node.rpc.auth import Credentials
from node.rpc.context import RpcContext
from node.rpc.methods import build_registry
from node.rpc.server import ApiServer, ApiSettings
from node.rpc.work import TemplateWatcher, WorkBoard
from node.runtime import SystemClock

REPO = Path(__file__).resolve().parent.parent

HARD = dataclasses.replace(REGTEST, retarget_interval=2, target_spacing=2**39, retarget_clamp=2**40)
RPC_USER = "miner"
RPC_PASSWORD = "hard-work"
NODE_PAYEE = encode_address(pkh(key("node payee")), HARD.address_version)
"""Where the served node's getwork blocks go."""


async def hard_node(tmp_path: Path, name: str = "hard") -> Node:
    """A started node on ``HARD`` whose tip is ``a1``: block 2 is out of reach."""
    node = await start_node(tmp_path, name, params=HARD)
    a1 = ChainBuilder(HARD).block("a1", time=HARD.genesis_time + 1)
    outcome = await node.submit_block(a1)
    assert outcome.accepted and node.height == 1, outcome
    bits = await node.query(lambda chain, _mempool: chain.next_bits())
    assert bits != HARD.genesis_bits
    return node


@asynccontextmanager
async def serve_api(node: Node, port: int = 0) -> AsyncIterator[str]:
    """The node's API on a loopback port (0: a free one), for ``RPC_USER``/``RPC_PASSWORD``;
    its URL."""
    ctx = RpcContext(
        node=node,
        registry=build_registry(),
        clock=SystemClock(),
        request_stop=lambda: None,
        work=WorkBoard(),
        templates=TemplateWatcher(),
        mining_address=pkh(key("node payee")),
    )
    server = ApiServer(ctx, ApiSettings(Credentials.of((RPC_USER, RPC_PASSWORD))))
    address = await server.start(Endpoint("127.0.0.1", port))
    try:
        yield f"http://{address.host}:{address.port}"
    finally:
        await server.stop()


def forklab_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FORKLAB_")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["HOME"] = "/nonexistent/forklab-test-home"
    return env


def children_of(pid: int) -> set[int]:
    """Processes whose parent is ``pid`` (from /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces, so split after its parenthesis.
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            found.add(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def records(text: str) -> list[dict[str, Any]]:
    """The JSON objects of ``forklab mine --json`` output, one per line."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def stop_process(proc: subprocess.Popen[bytes] | subprocess.Popen[str]) -> None:
    """Make sure ``proc`` is gone: SIGTERM, then SIGKILL."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def mine_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "node", "mine", *args]


class MinerProcess:
    """``forklab mine ...`` as a child process of the test's event loop, read line by line as
    it mines (the node it mines on may live on the same loop). It leads a process group of its
    own, with its backend's workers, as a command started from a shell does: Ctrl-C is
    :meth:`signal_group` with SIGINT."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[tuple[float, str]] = []
        """Every stdout line, with the monotonic time it was read."""

    @classmethod
    async def start(cls, *args: str, stderr: Path) -> MinerProcess:
        with stderr.open("ab") as err:
            proc = await asyncio.create_subprocess_exec(
                *mine_command(*args),
                stdout=asyncio.subprocess.PIPE,
                stderr=err,
                env=forklab_env(),
                cwd=REPO,
                start_new_session=True,
            )
        return cls(proc)

    def signal_group(self, signum: int) -> None:
        os.killpg(self.proc.pid, signum)

    async def next_line(self, timeout: float) -> str:
        assert self.proc.stdout is not None
        raw = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not raw:
            raise EOFError("the miner closed its output")
        line = raw.decode()
        self.lines.append((time.monotonic(), line))
        return line

    async def until(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 20.0
    ) -> tuple[float, dict[str, Any]]:
        """Read JSON records until one satisfies ``predicate``; it and when it was read."""
        deadline = time.monotonic() + timeout
        while True:
            line = await self.next_line(max(0.01, deadline - time.monotonic()))
            record = json.loads(line)
            if predicate(record):
                return self.lines[-1][0], record

    async def finish(self, timeout: float = 10.0) -> int:
        """Read the rest of the output and wait for the exit status."""
        assert self.proc.stdout is not None
        rest = await asyncio.wait_for(self.proc.stdout.read(), timeout)
        self.lines += [(time.monotonic(), line + "\n") for line in rest.decode().splitlines()]
        return await asyncio.wait_for(self.proc.wait(), timeout)

    def records(self) -> list[dict[str, Any]]:
        return records("".join(line for _, line in self.lines))

    async def kill(self) -> None:
        """Make sure the process and its workers are gone (a test that failed half-way)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        await self.proc.wait()
