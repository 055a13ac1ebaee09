"""Block propagation across random networks of real node processes on loopback.

For networks of 10 and 30 nodes (``--nodes``), with and without compact block relay, it
measures how long a block takes to reach every node:

* a block holding only its coinbase ("1 tx");
* a block of 1,000 payments (``--txs``) that every node already holds in its mempool, which
  is where compact relay pays off: the block crosses each link as ~6 bytes per transaction;

and prints them beside the time one node takes to validate the same block in process (with a
cold signature cache, as a node that never saw the payments would).

Each node is its own OS process running :class:`node.node.Node` with real WebSocket P2P on
127.0.0.1; node ``i`` dials up to three random earlier nodes, so the graph is connected and
random. The child processes report the wall-clock time their tip changed, so nothing is polled.
The bench process talks to them over a JSON-lines pipe (this file with ``--child``), because
the ``forklab node`` process has no switch for compact relay. gossip.py and sync.py reuse the
harness (:class:`NodeProcess`, :func:`start_network`).

    python bench/propagation.py                  # 10 and 30 nodes, about 3 minutes on 2 cores
    python bench/propagation.py --nodes 10       # about 40 seconds
    python bench/propagation.py --json

Numbers from a 2-core machine running 30 Python processes measure the CPU as much as the
network: compare the ratios within one run (compact vs full, 10 vs 30 nodes). On loopback
bandwidth is free, so compact relay shows in the kilobytes each node receives for the block
(every message in the window counted, pings included) more than in the time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from blocktools import ChainBuilder, outputs_of, split  # noqa: E402

from node.chainstate import ChainState  # noqa: E402
from node.core.block import Block  # noqa: E402
from node.core.mempool import Mempool  # noqa: E402
from node.core.params import REGTEST  # noqa: E402
from node.core.sigcache import SignatureCache  # noqa: E402
from node.core.tx import Transaction  # noqa: E402

DEGREE = 3
"""Each new node dials this many random earlier ones."""

# ----------------------------------------------------------------------------- child process


async def child_main(spec: dict[str, Any]) -> None:
    """Run one node and obey the parent's commands on stdin; report events on stdout."""
    from node.events import NewTip, TxAccepted
    from node.node import Node, NodeConfig
    from node.p2p.config import P2PConfig
    from node.runtime import real_runtime

    p2p = P2PConfig(
        listen="127.0.0.1:0",
        connect=tuple(spec["connect"]),
        compact_blocks=spec["compact"],
        max_outbound=spec.get("max_outbound", 8),
    )
    node = Node(NodeConfig(REGTEST, Path(spec["datadir"]), p2p), real_runtime(spec["seed"]))
    await node.start()

    def emit(obj: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    emit({"event": "ready", "listen": node.listen_address, "height": node.height})
    accepted = 0

    async def watch() -> None:
        nonlocal accepted
        async for event in node.subscribe(maxsize=100_000):
            if isinstance(event, NewTip):
                emit(
                    {
                        "event": "tip",
                        "height": event.height,
                        "hash": event.hash.hex(),
                        "t": time.time(),
                    }
                )
            elif isinstance(event, TxAccepted):
                accepted += 1
                emit({"event": "tx", "count": accepted, "t": time.time()})

    watcher = asyncio.ensure_future(watch())
    reader = asyncio.StreamReader(limit=64 * 1024 * 1024)
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        command = json.loads(line)
        op = command["op"]
        if op == "stop":
            break
        if op == "block":
            outcome = await node.submit_block(Block.deserialize(bytes.fromhex(command["hex"])))
            emit({"op": op, "ok": outcome.accepted})
        elif op == "txs":
            ok = 0
            for raw in command["hex"]:
                try:
                    await node.submit_tx(Transaction.deserialize(bytes.fromhex(raw)))
                    ok += 1
                except Exception as exc:  # report, never die: the parent decides
                    emit({"event": "error", "detail": str(exc)})
            emit({"op": op, "ok": ok})
        elif op == "mempool":
            size = await node.query(lambda chain, mempool: len(mempool))
            emit({"op": op, "size": size})
        elif op == "peers":
            emit({"op": op, "count": len(node.peers())})
        elif op == "bytes":
            emit({"op": op, "received": sum(p.bytes_received for p in node.peers())})
    watcher.cancel()
    await node.stop()


# ----------------------------------------------------------------------------- parent side


class NodeProcess:
    """One child node: commands in, replies and events out."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process) -> None:
        self.name = name
        self.proc = proc
        self.listen = ""
        self.height = 0
        self.tip_times: dict[str, float] = {}
        self.tx_count = 0
        self.tx_times: list[float] = []
        self.errors: list[str] = []
        self._replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._ready = asyncio.Event()
        self._reader = asyncio.ensure_future(self._read())

    @classmethod
    async def start(
        cls,
        name: str,
        datadir: Path,
        connect: Sequence[str],
        *,
        compact: bool = True,
        seed: int = 0,
        max_outbound: int = 8,
    ) -> NodeProcess:
        spec = {
            "datadir": str(datadir),
            "connect": list(connect),
            "compact": compact,
            "seed": seed,
            "max_outbound": max_outbound,
        }
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--child",
            json.dumps(spec),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=None if os.environ.get("FORKLAB_BENCH_DEBUG") else asyncio.subprocess.DEVNULL,
            limit=64 * 1024 * 1024,
        )
        node = cls(name, proc)
        await asyncio.wait_for(node._ready.wait(), 60)
        return node

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            message = json.loads(line)
            event = message.get("event")
            if event == "ready":
                self.listen, self.height = message["listen"], message["height"]
                self._ready.set()
            elif event == "tip":
                self.height = message["height"]
                self.tip_times.setdefault(message["hash"], message["t"])
            elif event == "tx":
                self.tx_count = message["count"]
                self.tx_times.append(message["t"])
            elif event == "error":
                self.errors.append(message["detail"])
            else:
                await self._replies.put(message)

    async def call(self, op: str, **args: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps({"op": op, **args}) + "\n").encode())
        await self.proc.stdin.drain()
        return await asyncio.wait_for(self._replies.get(), 600)

    async def submit_blocks(self, blocks: Sequence[Block]) -> None:
        for block in blocks:
            reply = await self.call("block", hex=block.serialize().hex())
            if not reply["ok"]:
                raise RuntimeError(f"{self.name} refused block {block.hash_hex}")

    async def stop(self) -> None:
        if self.proc.returncode is None:
            assert self.proc.stdin is not None
            self.proc.stdin.write(b'{"op": "stop"}\n')
            await self.proc.stdin.drain()
            try:
                await asyncio.wait_for(self.proc.wait(), 20)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        await asyncio.gather(self._reader, return_exceptions=True)


async def start_network(
    count: int, workdir: Path, *, compact: bool = True, seed: int = 1
) -> list[NodeProcess]:
    """``count`` nodes, node ``i`` dialling up to DEGREE random earlier ones."""
    rng = random.Random(seed)
    nodes: list[NodeProcess] = []
    for i in range(count):
        peers = rng.sample(nodes, min(DEGREE, len(nodes)))
        nodes.append(
            await NodeProcess.start(
                f"n{i}", workdir / f"n{i}", [p.listen for p in peers], compact=compact, seed=i
            )
        )
    return nodes


async def wait_all(predicate: Any, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the network did not get there in time")
        await asyncio.sleep(0.01)


async def stop_network(nodes: Sequence[NodeProcess]) -> None:
    await asyncio.gather(*(n.stop() for n in nodes))


# ----------------------------------------------------------------------------- the experiment


def dense_extend(chain: ChainBuilder, count: int) -> None:
    """Blocks one second apart: the regtest genesis is dated today and a node refuses blocks
    more than two hours ahead of its clock."""
    for _ in range(count):
        tip = chain.tip
        chain.block(f"b{chain.height(tip) + 1}", time=chain[tip].header.time + 1)


def build_chain(payments: int) -> tuple[list[Block], list[Transaction], Block, Block]:
    """(blocks to preload, payments, block of the payments, coinbase-only block)."""
    chain = ChainBuilder()
    dense_extend(chain, 101)
    fan = split(chain.coinbase_of("b1"), payments, fee=payments * 200)
    chain.block("fan", txs=[fan], time=chain[chain.tip].header.time + 1)
    pays = [chain.spend([coin], fee=1_000) for coin in outputs_of(fan, chain.miner)]
    preload = [chain[n] for n in chain.branch("fan")]
    big = chain.block("big", parent="fan", txs=pays, time=chain["fan"].header.time + 1)
    small = chain.block("small", parent="big", time=big.header.time + 1)
    return preload, pays, big, small


def validation_seconds(preload: Sequence[Block], block: Block, *, warm: bool = False) -> float:
    """Median of three in-process validations of ``block`` on a fresh chain; ``warm``: its
    payments went through a mempool first, so their signatures are cached (what a relaying
    node that already held them pays)."""
    times = []
    for _ in range(3):
        cache = SignatureCache()
        with ChainState.in_memory(REGTEST, sig_cache=cache) as chain:
            for b in preload:
                chain.process_block(b, int(time.time()))
            if warm:
                mempool = Mempool(REGTEST)
                for tx in block.transactions[1:]:
                    mempool.accept(tx, chain, chain.height + 1, sig_cache=cache)
            started = time.perf_counter()
            result = chain.process_block(block, int(time.time()))
            times.append(time.perf_counter() - started)
            assert result.accepted, result
    return statistics.median(times)


async def received_bytes(nodes: Sequence[NodeProcess]) -> int:
    return sum([(await n.call("bytes"))["received"] for n in nodes])


async def propagate(nodes: Sequence[NodeProcess], block: Block) -> dict[str, float]:
    before = await received_bytes(nodes)
    started = time.time()
    await nodes[0].submit_blocks([block])
    await wait_all(lambda: all(block.hash.hex() in n.tip_times for n in nodes))
    delays = [n.tip_times[block.hash.hex()] - started for n in nodes[1:]]
    wire = await received_bytes(nodes) - before
    return {
        "median_s": statistics.median(delays),
        "all_s": max(delays),
        "kb_per_node": wire / 1000 / (len(nodes) - 1),
    }


async def run_network(
    count: int,
    *,
    compact: bool,
    preload: list[Block],
    pays: list[Transaction],
    big: Block,
    small: Block,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="forklab-prop-") as tmp:
        nodes = await start_network(count, Path(tmp), compact=compact)
        try:
            await nodes[0].submit_blocks(preload)
            tip = preload[-1].hash.hex()
            await wait_all(lambda: all(tip in n.tip_times for n in nodes))
            # Every node holds the payments before the block that confirms them is found.
            chunk = max(1, len(pays) // len(nodes))
            for i, start in enumerate(range(0, len(pays), chunk)):
                raw = [tx.serialize().hex() for tx in pays[start : start + chunk]]
                await nodes[i % len(nodes)].call("txs", hex=raw)
            await wait_all(lambda: all(n.tx_count >= len(pays) for n in nodes))
            result = {
                f"block_{len(big.transactions) - 1}_payments": await propagate(nodes, big),
                "block_coinbase_only": await propagate(nodes, small),
            }
        finally:
            await stop_network(nodes)
    return result


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    preload, pays, big, small = build_chain(args.txs)
    report: dict[str, Any] = {
        "validation_s": {
            f"block_{args.txs}_payments": validation_seconds(preload, big),
            f"block_{args.txs}_payments_signatures_cached": validation_seconds(
                preload, big, warm=True
            ),
            "block_coinbase_only": validation_seconds([*preload, big], small),
        },
        "cores": os.cpu_count(),
    }
    for count in args.nodes:
        for compact in (True, False):
            label = f"{count}_nodes_{'compact' if compact else 'full_blocks'}"
            report[label] = await run_network(
                count, compact=compact, preload=preload, pays=pays, big=big, small=small
            )
    return report


def print_table(report: dict[str, Any], payments: int) -> None:
    big = f"block_{payments}_payments"
    print(
        f"{'network':<26}{'block':<22}{'median to a node':>18}{'to all nodes':>14}"
        f"{'kB in per node':>16}"
    )
    for label, result in report.items():
        if not label[0].isdigit():
            continue
        for kind in (big, "block_coinbase_only"):
            row = result[kind]
            print(
                f"{label:<26}{kind:<22}{row['median_s']:>17.3f}s{row['all_s']:>13.3f}s"
                f"{row['kb_per_node']:>16.1f}"
            )
    print()
    for kind, seconds in report["validation_s"].items():
        print(f"single-node validation of {kind}: {seconds:.3f}s")


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        asyncio.run(child_main(json.loads(sys.argv[2])))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", default="10,30", help="network sizes, comma-separated")
    parser.add_argument("--txs", type=int, default=1000, help="payments in the big block")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    args.nodes = [int(n) for n in args.nodes.split(",")]
    report = asyncio.run(main_async(args))
    if args.json:
        print(json.dumps(report))
    else:
        print_table(report, args.txs)


if __name__ == "__main__":
    main()
