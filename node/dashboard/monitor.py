"""Watching every node at once: their event streams merged, their status polled, one picture.

For each node the monitor keeps two loops:

- a WebSocket on the node's ``/events``: blocks connected (with the moment each arrived, for
  the spread animation), tip changes, reorganisations, transactions and peers, each passed on
  to the page at once; on (re)connection the node's recent chain and side branches are read
  over REST (``chaintips``, ``headers``) so the tree is whole even for blocks mined before
  the dashboard started;
- a poll of ``/rest/status`` and ``/rest/peers`` every ``poll_interval``: what events do not
  carry (mempool size, peer list) and a check that events were not missed (a tip the tree does
  not know triggers a fresh read).

The layout (which nodes, the topology, partition and latencies) is read from the source at
each poll, so the dashboard follows a devnet changed from a terminal. :meth:`NetworkMonitor.watch`
switches to another source altogether, with a fresh picture: a lesson's devnet while it runs.

Pages subscribe with :meth:`NetworkMonitor.subscribe` and get a :class:`Feed`: node events in
order, plus a flag saying the overall state changed. A page that does not keep up loses events
(it is told how many) but never slows the monitor or other pages; state is always sent whole,
so nothing is lost that matters for the picture.

Arrival times are the dashboard's clock when it read the event. On loopback that is within a
millisecond or two of the node's own; across machines it includes the network's delay to the
dashboard, the same for every block, so differences (the propagation times shown) stay fair.

What this module does not do: change anything on the nodes (:mod:`node.dashboard.actions`
does) or serve HTTP (:mod:`node.dashboard.app`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import aiohttp

from node.dashboard.nodes import NodeApi, NodeEndpoint, NodeUnavailableError
from node.dashboard.snapshot import chain_json, tree_json
from node.dashboard.sources import Link, NetworkLayout, NodeSource, link
from node.dashboard.tree import BlockTree, Status, TreeView, spread
from node.rpc.jsonfmt import loads

log = logging.getLogger("forklab.dashboard")

RECONNECT_DELAY = 1.0
SEED_DEPTH = 120
"""Blocks of each node's active chain read when its stream (re)connects."""
MAX_SEED_BRANCH = 50
"""Longest side branch read back from a node's chain tips."""
FEED_EVENTS = 2_000
"""Events buffered per page before it is told it lost some."""
RECENT_ACTIONS = 20


@dataclass(frozen=True)
class NodeStatus:
    """What the last poll of a node said."""

    up: bool = False
    error: str | None = None
    network: str | None = None
    height: int | None = None
    tip: str | None = None
    headers: int | None = None
    syncing: bool = False
    network_active: bool = True
    peers: int = 0
    peer_addresses: tuple[str, ...] = ()
    """Each connected peer's declared listen address (else its remote address)."""
    mempool_size: int = 0
    mempool_bytes: int = 0
    p2p_address: str | None = None


@dataclass
class _Watch:
    endpoint: NodeEndpoint
    api: NodeApi
    status: NodeStatus = field(default_factory=NodeStatus)
    streaming: bool = False
    streamed_tip: tuple[int, str] | None = None
    """(height, hash) of the tip as the event stream last told it."""
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    seed_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    polled: bool = False


class Feed:
    """One page's subscription: node events in order, and whether the state changed."""

    def __init__(self, maxsize: int = FEED_EVENTS) -> None:
        self._events: deque[dict[str, Any]] = deque()
        self._maxsize = maxsize
        self._wake = asyncio.Event()
        self.state_changed = True
        self.lost = 0
        self.closed = False

    def push(self, message: dict[str, Any]) -> None:
        if len(self._events) >= self._maxsize:
            self.lost += len(self._events)
            self._events.clear()
        self._events.append(message)
        self._wake.set()

    def changed(self) -> None:
        self.state_changed = True
        self._wake.set()

    def close(self) -> None:
        self.closed = True
        self._wake.set()

    async def wait(self) -> list[dict[str, Any]]:
        """Wait for news; the events since the last call (``state_changed`` says the rest)."""
        await self._wake.wait()
        self._wake.clear()
        events = list(self._events)
        self._events.clear()
        return events


class NetworkMonitor:
    """The dashboard's live model of the network; start it, read ``snapshot``, subscribe."""

    def __init__(
        self,
        source: NodeSource,
        session: aiohttp.ClientSession,
        *,
        poll_interval: float = 1.0,
        keep_heights: int = 2_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self.session = session
        self.poll_interval = poll_interval
        self.clock = clock
        self.started_at = clock()
        self.tree = BlockTree(keep_heights=keep_heights)
        self.layout = NetworkLayout(())
        self.actions: deque[dict[str, Any]] = deque(maxlen=RECENT_ACTIONS)
        self._watches: dict[str, _Watch] = {}
        self._seen_links: set[Link] = set()
        self._feeds: set[Feed] = set()
        self._poll_now = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._reconciling = asyncio.Lock()
        """Held while the watches are changed: a switch of source must not interleave with
        the loop's reading of the old source's layout."""

    # -- life cycle

    async def start(self) -> None:
        """Watch every node, then follow the layout (:meth:`_run`)."""
        await self._watch_all()
        self._task = asyncio.create_task(self._run())

    async def watch(self, source: NodeSource) -> None:
        """Watch another network from now on, starting a fresh picture (its own tree and
        links): the dashboard's lessons show their own devnet this way, then switch back."""
        async with self._reconciling:
            for watch in list(self._watches.values()):
                await _cancel(watch.tasks)
            self._watches.clear()
            self._seen_links.clear()
            self.tree = BlockTree(keep_heights=self.tree.keep_heights)
            self.source = source
            self.layout = NetworkLayout(())
            await self._watch_all()
        self._changed()

    async def _watch_all(self) -> None:
        """Watch each node of the layout, polled once first (so the first page is complete)."""
        await self._reconcile()
        await asyncio.gather(*(self._poll_safely(w) for w in self._watches.values()))
        self._update_links()
        for watch in self._watches.values():
            self._start_watch(watch)

    async def stop(self) -> None:
        if self._task is not None:
            await _cancel([self._task])
        for watch in list(self._watches.values()):
            await _cancel(watch.tasks)
        self._watches.clear()
        for feed in list(self._feeds):
            feed.close()

    async def _run(self) -> None:
        """Follow the layout: new nodes get watches, moved or removed ones lose theirs."""
        while True:
            await _wait_at_most(self._poll_now, self.poll_interval)
            now = self._poll_now.is_set()
            self._poll_now.clear()
            try:
                async with self._reconciling:
                    for watch in await self._reconcile():
                        self._start_watch(watch)
            except Exception:  # one bad read must not stop the dashboard
                log.exception("reading the network's layout failed")
            if now:
                for watch in self._watches.values():
                    watch.wake.set()
            self._changed()

    def poll_soon(self) -> None:
        """Poll every node now rather than at the next interval (after an action)."""
        self._poll_now.set()

    async def _reconcile(self) -> list[_Watch]:
        """Read the layout; the watches it needs that do not exist yet (not started)."""
        self.layout = await self.source.layout()
        wanted = {e.name: e for e in self.layout.endpoints}
        for name in list(self._watches):
            if name not in wanted or self._watches[name].endpoint != wanted[name]:
                await _cancel(self._watches.pop(name).tasks)
        added = []
        for name, endpoint in wanted.items():
            if name not in self._watches:
                watch = _Watch(endpoint, NodeApi(endpoint, self.session))
                self._watches[name] = watch
                added.append(watch)
        return added

    def _start_watch(self, watch: _Watch) -> None:
        watch.tasks.append(asyncio.create_task(self._follow(watch)))
        watch.tasks.append(asyncio.create_task(self._poll_loop(watch)))

    # -- polling

    async def _poll_loop(self, watch: _Watch) -> None:
        """Each node on its own: one that hangs delays nobody else's status. A node never
        polled yet (one that appeared, or moved to new ports) is polled at once, so it is not
        shown down for a whole interval."""
        while True:
            if watch.polled:
                await _wait_at_most(watch.wake, self.poll_interval)
            watch.wake.clear()
            await self._poll_safely(watch)
            self._update_links()
            self._changed()

    async def _poll_safely(self, watch: _Watch) -> None:
        watch.polled = True
        try:
            await self._poll(watch)
        except Exception:  # a reply of an unexpected shape must not end the watch
            log.exception("%s: poll failed", watch.endpoint.name)

    async def _poll(self, watch: _Watch) -> None:
        name = watch.endpoint.name
        try:
            # One after the other, not gathered: a gather cancelled just as one request fails
            # raises that failure instead of the cancellation, and this watch, caught below,
            # would go on polling after it was cancelled (a dashboard that never stops).
            status = await watch.api.rest("status")
            peers = await watch.api.rest("peers")
        except NodeUnavailableError as exc:
            watch.status = replace(
                watch.status, up=False, error=str(exc), peers=0, peer_addresses=()
            )
            self.tree.set_down(name)
            return
        was_up = watch.status.up
        # While its event stream runs, the node's tip is the stream's (newer than a poll that
        # was on its way when the tip moved); the poll fills in the rest.
        height, tip = status["height"], status["hash"]
        if watch.streaming and watch.streamed_tip is not None:
            height, tip = watch.streamed_tip
        watch.status = NodeStatus(
            up=True,
            network=status["network"],
            height=height,
            tip=tip,
            headers=status["headers"],
            syncing=status["syncing"],
            network_active=status["network_active"],
            peers=status["peers"],
            peer_addresses=tuple(p.get("listen_addr") or p["addr"] for p in peers),
            mempool_size=status["mempool"]["size"],
            mempool_bytes=status["mempool"]["bytes"],
            p2p_address=status["p2p_address"],
        )
        if not was_up:
            self.tree.set_down(name, False)
        if tip not in self.tree and height >= self.tree.horizon:
            # A node seen for the first time, or events missed: read its chain.
            await self._seed(watch)
        if tip in self.tree:
            self.tree.set_tip(name, tip)

    def _update_links(self) -> None:
        by_address = {
            w.status.p2p_address: name for name, w in self._watches.items() if w.status.p2p_address
        }
        for name, watch in self._watches.items():
            for address in watch.status.peer_addresses:
                peer = by_address.get(address)
                if peer is not None and peer != name:
                    self._seen_links.add(link(name, peer))

    def connected_links(self) -> set[Link]:
        by_address = {
            w.status.p2p_address: name for name, w in self._watches.items() if w.status.p2p_address
        }
        links: set[Link] = set()
        for name, watch in self._watches.items():
            if not watch.status.up:
                continue
            for address in watch.status.peer_addresses:
                peer = by_address.get(address)
                if peer is not None and peer != name and self._watches[peer].status.up:
                    links.add(link(name, peer))
        return links

    # -- event streams

    async def _follow(self, watch: _Watch) -> None:
        endpoint = watch.endpoint
        while True:
            try:
                headers = await watch.api.auth_header()
                async with self.session.ws_connect(
                    endpoint.events_url, headers=headers, heartbeat=30.0
                ) as ws:
                    async for message in ws:
                        if message.type is aiohttp.WSMsgType.TEXT:
                            await self._on_event(watch, loads(message.data))
                        else:
                            break
            except (aiohttp.ClientError, OSError, TimeoutError, NodeUnavailableError) as exc:
                log.debug("%s: event stream: %s", endpoint.name, exc)
            except ValueError as exc:
                log.warning(
                    "%s: event stream sent something that is not JSON: %s", endpoint.name, exc
                )
            if watch.streaming:
                watch.streaming = False
                self._publish(endpoint.name, {"type": "stream_closed"})
            await asyncio.sleep(RECONNECT_DELAY)

    async def _on_event(self, watch: _Watch, event: dict[str, Any]) -> None:
        name = watch.endpoint.name
        kind = event.get("type")
        if kind in ("hello", "new_tip"):
            watch.streamed_tip = (event["height"], event["hash"])
        if kind == "hello":
            watch.streaming = True
            await self._seed(watch)
            if event["hash"] in self.tree:
                self.tree.set_tip(name, event["hash"])
        elif kind in ("block_connected", "side_block"):
            # A side block is one the node stored without switching to it: drawn as a
            # competing block (or stale) with the time the node got it, like any other.
            self.tree.add_block(
                event["hash"],
                event["height"],
                event["previous_hash"],
                event["time"],
                txs=event["txs"],
                node=name,
                at=self.clock(),
            )
        elif kind == "new_tip":
            watch.status = replace(watch.status, height=event["height"], tip=event["hash"])
            if event["hash"] not in self.tree:
                await self._seed(watch)
            self.tree.set_tip(name, event["hash"])
        elif kind == "events_lost":
            await self._seed(watch)
        elif kind in ("peer_connected", "peer_disconnected"):
            watch.wake.set()
        self._publish(name, event)

    async def _seed(self, watch: _Watch) -> None:
        """Read the node's recent active chain and its short side branches into the tree."""
        async with watch.seed_lock:
            try:
                await self._read_chain(watch.api)
            except NodeUnavailableError as exc:
                log.debug("%s: reading its chain: %s", watch.endpoint.name, exc)

    async def _read_chain(self, api: NodeApi) -> None:
        tips = await api.rest("chaintips")
        for tip in tips:
            if tip["status"] == "active":
                first = max(0, tip["height"] - SEED_DEPTH + 1)
                start = (await api.rest(f"blockhashbyheight/{first}"))["blockhash"]
                count = tip["height"] - first + 1
                for header in await api.rest(f"headers/{start}?count={count}"):
                    self._add_header(header)
            elif tip["status"] == "valid-fork" and tip["branchlen"] <= MAX_SEED_BRANCH:
                hash_ = tip["hash"]
                for _ in range(tip["branchlen"]):
                    if hash_ in self.tree:
                        break
                    (header,) = await api.rest(f"headers/{hash_}?count=1")
                    self._add_header(header)
                    hash_ = header.get("previousblockhash", "")

    def _add_header(self, header: dict[str, Any]) -> None:
        self.tree.add_block(
            header["hash"],
            header["height"],
            header.get("previousblockhash", ""),
            header["time"],
        )

    # -- pages

    def subscribe(self) -> Feed:
        feed = Feed()
        self._feeds.add(feed)
        return feed

    def unsubscribe(self, feed: Feed) -> None:
        self._feeds.discard(feed)

    def _publish(self, node: str, event: dict[str, Any]) -> None:
        self.broadcast({"type": "event", "node": node, "t": self.elapsed_ms(), "event": event})
        self._changed()

    def broadcast(self, message: dict[str, Any]) -> None:
        """Send a message to every page, in order: node events, actions, a lesson's progress."""
        for feed in self._feeds:
            feed.push(message)

    def record_action(self, entry: dict[str, Any]) -> None:
        """Remember an action (shown to every page, and to pages opened later)."""
        entry = {"t": self.elapsed_ms(), **entry}
        self.actions.append(entry)
        self.broadcast({"type": "action", **entry})
        self._changed()

    def _changed(self) -> None:
        for feed in self._feeds:
            feed.changed()

    def elapsed_ms(self) -> int:
        return round((self.clock() - self.started_at) * 1000)

    # -- the picture

    def streaming(self) -> bool:
        """Whether every node watched is up and its events are being received."""
        watches = self._watches.values()
        return bool(watches) and all(w.status.up and w.streaming for w in watches)

    def endpoints(self) -> dict[str, NodeEndpoint]:
        return {name: w.endpoint for name, w in self._watches.items()}

    def api(self, name: str) -> NodeApi:
        return self._watches[name].api

    def miners(self) -> list[str]:
        return [name for name, _node, _share in self.layout.miners]

    def p2p_address(self, name: str) -> str | None:
        watch = self._watches.get(name)
        return watch.status.p2p_address if watch is not None else None

    def status(self, name: str) -> NodeStatus | None:
        watch = self._watches.get(name)
        return watch.status if watch is not None else None

    def network(self) -> str | None:
        """The network's name: the devnet's, or what the nodes said."""
        return self.layout.network or next(
            (w.status.network for w in self._watches.values() if w.status.network), None
        )

    def snapshot(self, depth: int) -> dict[str, Any]:
        """Everything the page draws, as JSON-ready data."""
        view = self.tree.view(depth)
        connected = self.connected_links()
        network = self.network()
        return {
            "network": network,
            "devnet_dir": str(self.layout.devnet_dir) if self.layout.devnet_dir else None,
            "source_error": self.layout.error,
            "wallets": list(self.layout.wallets),
            "miners": [
                {"name": name, "node": node, "share": share}
                for name, node, share in self.layout.miners
            ],
            "t": self.elapsed_ms(),
            "nodes": self._nodes_json(view),
            "links": self._links_json(connected),
            "partition": [list(g) for g in self.layout.partition]
            if self.layout.partition
            else None,
            "tree": tree_json(view),
            "chain": chain_json(network, view.best_height),
            "spread": self._spread_json(view, connected),
            "actions": list(self.actions),
        }

    def _nodes_json(self, view: TreeView) -> list[dict[str, Any]]:
        found: dict[str, int] = {}
        main_with_origin = 0
        for block in view.blocks:
            if block.status is Status.MAIN and block.first_node is not None:
                found[block.first_node] = found.get(block.first_node, 0) + 1
                main_with_origin += 1
        nodes = []
        for name, watch in self._watches.items():
            s = watch.status
            nodes.append(
                {
                    "name": name,
                    "rpc_url": watch.endpoint.rpc_url,
                    "up": s.up,
                    "streaming": watch.streaming,
                    "error": s.error,
                    "height": s.height,
                    "tip": s.tip,
                    "syncing": s.syncing,
                    "peers": s.peers,
                    "mempool": {"size": s.mempool_size, "bytes": s.mempool_bytes},
                    "p2p_address": s.p2p_address,
                    "hash_share": watch.endpoint.hash_share,
                    "found": found.get(name, 0),
                    "found_share": found.get(name, 0) / main_with_origin
                    if main_with_origin
                    else None,
                    "can_act": watch.endpoint.datadir is not None,
                }
            )
        return nodes

    def _links_json(self, connected: set[Link]) -> list[dict[str, Any]]:
        latency = dict(self.layout.latency)
        known = set(self.layout.topology) | self._seen_links | connected
        names = set(self._watches)
        result = []
        for a, b in sorted(known):
            if a not in names or b not in names:
                continue
            if (a, b) in connected:
                state = "up"
            elif self.layout.separated(a, b):
                state = "cut"
            elif not (self._watches[a].status.up and self._watches[b].status.up):
                state = "down"
            else:
                state = "idle"
            result.append({"a": a, "b": b, "state": state, "latency_ms": latency.get((a, b), 0)})
        return result

    def _spread_json(self, view: TreeView, connected: set[Link]) -> dict[str, Any] | None:
        watched = [b for b in view.blocks if b.first_node is not None]
        if not watched:
            return None
        latest = max(watched, key=lambda b: (b.height, -min(b.seen_ms.values(), default=0)))
        record = self.tree.get(latest.hash)
        assert record is not None
        hops = spread(record.seen, connected | self._seen_links)
        return {
            "hash": latest.hash,
            "height": latest.height,
            "origin": latest.first_node,
            "hops": [{"from": h.source, "to": h.target, "ms": h.ms} for h in hops],
        }


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel the tasks and wait until they have ended. ``asyncio.wait`` rather than awaiting
    each under ``suppress(CancelledError)``: that would also swallow a cancellation of the
    caller itself, and a stop being cancelled would carry on as if nothing happened."""
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks)
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            log.error("a watch ended with an error", exc_info=task.exception())


async def _wait_at_most(event: asyncio.Event, seconds: float) -> None:
    """Wait until ``event`` is set or ``seconds`` have passed. Not ``asyncio.wait_for``: on
    Python 3.11 it swallows a cancellation that arrives just as the event is set, and a loop
    cancelled that way would never end."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
