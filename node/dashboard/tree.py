"""The block tree across every node of a network, as the dashboard draws it.

Each node reports the blocks it connects and where its tip is (its event stream); this module
merges those reports into one tree and says, for every block, what the class should see:

========  ===================================================================================
status    meaning
========  ===================================================================================
main      on the active chain of the best tip (the highest tip any node holds; on a tie, the
          one most nodes hold, then the one seen first)
fork      not main, but some running node's active chain holds it: a live competing branch
          (both sides of a partition, or a race not yet settled)
stale     no node's active chain holds it: it lost a race or a reorganisation
========  ===================================================================================

It also remembers when each node first connected each block (on the dashboard's clock), so the
page can show a block spreading hop by hop (:func:`spread`), and which node had it first (in a
devnet, almost always the node whose miner found it).

The tree stays bounded however long the network runs: blocks more than ``keep_heights`` below
the best tip (give or take a tenth) are folded into a :class:`Collapsed` summary (how many, how
many stale) and forgotten. A view (:meth:`BlockTree.view`) covers only the most recent
``depth`` heights and summarises the rest, so the page draws the same small picture at height
50 and at 50,000.

Branch layout is decided here rather than in the page's script, so it can be tested: the main
chain is lane 0 and every other branch gets the lowest lane free over its span of heights
(interval colouring), so branches never overlap and a lane is reused once its branch ends.

What this module does not do: talk to nodes, keep time or decide which chain is valid. The
nodes decide by work; heights are what the dashboard compares, which is the same on regtest
and close enough to draw a demo network with retargeting.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum


class Status(Enum):
    MAIN = "main"
    FORK = "fork"
    STALE = "stale"


@dataclass(slots=True)
class BlockRecord:
    """One block as the dashboard knows it.

    Mutable on purpose: ``seen`` grows as the block reaches more nodes. Everything else is set
    once, from the first report of the block.
    """

    hash: str
    height: int
    prev: str
    time: int
    """The header's timestamp (seconds since the epoch)."""
    txs: int | None
    """Transaction count, when the report said (event streams do; snapshots do not)."""
    seen: dict[str, float] = field(default_factory=dict)
    """Node name -> when that node first connected the block (dashboard clock, seconds)."""


@dataclass(frozen=True)
class Collapsed:
    """Blocks below the view's window, summarised."""

    below_height: int
    """Every block summarised is lower than this height."""
    blocks: int
    stale: int


@dataclass(frozen=True)
class BlockView:
    hash: str
    height: int
    prev: str
    time: int
    txs: int | None
    status: Status
    lane: int
    first_node: str | None
    """The node that connected the block first, if the dashboard watched it arrive."""
    seen_ms: Mapping[str, int]
    """Node name -> milliseconds after ``first_node`` that the node connected the block."""


@dataclass(frozen=True)
class TreeView:
    best: str | None
    """Hash of the best tip (None before any node reported)."""
    best_height: int
    blocks: tuple[BlockView, ...]
    """Blocks in the window, by height then arrival."""
    tips: Mapping[str, str]
    """Node name -> tip hash, for every node that ever reported one."""
    collapsed: Collapsed
    lanes: int


@dataclass(frozen=True)
class Hop:
    """A block's move from one node to a neighbour, ``ms`` after its first appearance."""

    source: str
    target: str
    ms: int


class BlockTree:
    """Blocks reported by the nodes, their tips, and what is stale.

    Not thread-safe: the dashboard touches it only from its event loop.
    """

    def __init__(self, *, keep_heights: int = 2_000) -> None:
        if keep_heights < 1:
            raise ValueError("keep_heights must be at least 1")
        self.keep_heights = keep_heights
        self._blocks: dict[str, BlockRecord] = {}
        self._children: dict[str, list[str]] = {}
        self._tips: dict[str, str] = {}
        self._down: set[str] = set()
        self._arrival: dict[str, int] = {}
        self._arrivals = 0
        self._pruned_below = 0
        self._pruned_blocks = 0
        self._pruned_stale = 0

    # -- reports

    def add_block(
        self,
        hash_: str,
        height: int,
        prev: str,
        time: int,
        *,
        txs: int | None = None,
        node: str | None = None,
        at: float | None = None,
    ) -> bool:
        """Record a block; with ``node`` and ``at``, that the node connected it then.

        True if the block was new to the tree. Blocks below the pruned horizon are ignored.
        """
        if height < self._pruned_below:
            return False
        record = self._blocks.get(hash_)
        new = record is None
        if record is None:
            record = BlockRecord(hash_, height, prev, time, txs)
            self._blocks[hash_] = record
            self._children.setdefault(prev, []).append(hash_)
            self._arrival[hash_] = self._arrivals
            self._arrivals += 1
        elif record.txs is None and txs is not None:
            record.txs = txs
        if node is not None and at is not None and node not in record.seen:
            record.seen[node] = at
        return new

    def set_tip(self, node: str, hash_: str) -> None:
        self._tips[node] = hash_
        self._down.discard(node)
        self._prune()

    def set_down(self, node: str, down: bool = True) -> None:
        """A node that stopped answering keeps its last tip, but holds no branch alive."""
        if down:
            self._down.add(node)
        else:
            self._down.discard(node)

    # -- queries

    def __contains__(self, hash_: object) -> bool:
        return hash_ in self._blocks

    def __len__(self) -> int:
        return len(self._blocks)

    def get(self, hash_: str) -> BlockRecord | None:
        return self._blocks.get(hash_)

    @property
    def horizon(self) -> int:
        """Blocks below this height have been collapsed; reports of them are ignored."""
        return self._pruned_below

    def tips(self) -> dict[str, str]:
        return dict(self._tips)

    def best_tip(self) -> str | None:
        """The tip the dashboard calls best: highest, then most held, then seen first."""
        holders: dict[str, int] = {}
        for node, tip in self._tips.items():
            if node not in self._down and tip in self._blocks:
                holders[tip] = holders.get(tip, 0) + 1
        if not holders:
            return None
        return min(
            holders,
            key=lambda h: (-self._blocks[h].height, -holders[h], self._arrival[h]),
        )

    def ancestors(self, hash_: str, stop_below: int = 0) -> Iterable[BlockRecord]:
        """The block and its known ancestors, down to height ``stop_below``."""
        record = self._blocks.get(hash_)
        while record is not None and record.height >= stop_below:
            yield record
            record = self._blocks.get(record.prev)

    def status_of_all(self, stop_below: int = 0) -> dict[str, Status]:
        """The status of every block at or above ``stop_below``."""
        main: set[str] = set()
        best = self.best_tip()
        if best is not None:
            main = {r.hash for r in self.ancestors(best, stop_below)}
        live: set[str] = set()
        for node, tip in self._tips.items():
            if node not in self._down:
                live.update(r.hash for r in self.ancestors(tip, stop_below))
        statuses: dict[str, Status] = {}
        for hash_, record in self._blocks.items():
            if record.height < stop_below:
                continue
            if hash_ in main:
                statuses[hash_] = Status.MAIN
            elif hash_ in live:
                statuses[hash_] = Status.FORK
            else:
                statuses[hash_] = Status.STALE
        return statuses

    def view(self, depth: int) -> TreeView:
        """The last ``depth`` heights below and at the best tip, laid out in lanes."""
        if depth < 1:
            raise ValueError("depth must be at least 1")
        best = self.best_tip()
        top = max((r.height for r in self._blocks.values()), default=0)
        best_height = self._blocks[best].height if best is not None else top
        # Forks may reach above the best tip while a race is on; the window follows the top.
        floor = max(0, max(top, best_height) - depth + 1)
        statuses = self.status_of_all()
        window = sorted(
            (r for r in self._blocks.values() if r.height >= floor),
            key=lambda r: (r.height, self._arrival[r.hash]),
        )
        lanes = _assign_lanes(window, statuses, self._children, self._arrival)
        below = [h for h, r in self._blocks.items() if r.height < floor]
        stale_below = sum(1 for h in below if statuses[h] is Status.STALE)
        blocks = tuple(
            BlockView(
                hash=r.hash,
                height=r.height,
                prev=r.prev,
                time=r.time,
                txs=r.txs,
                status=statuses[r.hash],
                lane=lanes[r.hash],
                first_node=_first(r.seen),
                seen_ms=_offsets(r.seen),
            )
            for r in window
        )
        return TreeView(
            best=best,
            best_height=best_height,
            blocks=blocks,
            tips=dict(self._tips),
            collapsed=Collapsed(
                below_height=floor,
                blocks=len(below) + self._pruned_blocks,
                stale=stale_below + self._pruned_stale,
            ),
            lanes=1 + max(lanes.values(), default=0),
        )

    # -- bounds

    def _prune(self) -> None:
        best = self.best_tip()
        if best is None:
            return
        horizon = self._blocks[best].height - self.keep_heights
        # In batches of a tenth of the bound: telling stale from live walks every branch, too
        # much to do for every block, and the bound is exceeded by a tenth at most.
        if horizon - self._pruned_below < max(1, self.keep_heights // 10):
            return
        statuses = self.status_of_all(stop_below=self._pruned_below)
        for hash_ in [h for h, r in self._blocks.items() if r.height < horizon]:
            record = self._blocks.pop(hash_)
            self._arrival.pop(hash_)
            siblings = self._children.get(record.prev)
            if siblings is not None:
                siblings.remove(hash_)
                if not siblings:
                    del self._children[record.prev]
            self._pruned_blocks += 1
            if statuses.get(hash_) is Status.STALE:
                self._pruned_stale += 1
        self._pruned_below = horizon


def _first(seen: Mapping[str, float]) -> str | None:
    return min(seen, key=lambda n: seen[n]) if seen else None


def _offsets(seen: Mapping[str, float]) -> dict[str, int]:
    if not seen:
        return {}
    start = min(seen.values())
    return {node: round((at - start) * 1000) for node, at in seen.items()}


def _assign_lanes(
    window: list[BlockRecord],
    statuses: Mapping[str, Status],
    children: Mapping[str, list[str]],
    arrival: Mapping[str, int],
) -> dict[str, int]:
    """Lane per block: main chain 0, each other branch the lowest lane free over its span.

    A branch is a run of non-main blocks, each continuing its parent's branch if it is the
    parent's first non-main child (by arrival), else starting a new one.
    """
    in_window = {r.hash for r in window}
    branch_of: dict[str, int] = {}
    spans: list[list[int]] = []  # branch -> [first height, last height]
    for record in window:  # by height, then arrival: parents come first
        if statuses[record.hash] is Status.MAIN:
            continue
        parent = record.prev
        continues = False
        if parent in in_window and statuses[parent] is not Status.MAIN:
            siblings = [c for c in children.get(parent, ()) if statuses.get(c) is not Status.MAIN]
            first_child = min(siblings, key=lambda c: arrival[c])
            continues = first_child == record.hash
        if continues:
            branch = branch_of[parent]
            spans[branch][1] = record.height
        else:
            branch = len(spans)
            spans.append([record.height, record.height])
        branch_of[record.hash] = branch
    # Interval colouring in order of start: a lane is free once its last branch has ended.
    lane_end: list[int] = []  # lane - 1 -> last height used
    lane_of_branch: list[int] = []
    for first, last in spans:
        for index, end in enumerate(lane_end):
            if end < first:
                lane_end[index] = last
                lane_of_branch.append(index + 1)
                break
        else:
            lane_end.append(last)
            lane_of_branch.append(len(lane_end))
    return {r.hash: lane_of_branch[branch_of[r.hash]] if r.hash in branch_of else 0 for r in window}


def spread(seen: Mapping[str, float], links: Iterable[tuple[str, str]]) -> tuple[Hop, ...]:
    """How a block travelled: each node that got it after the first, and from whom.

    The sender is taken to be the node's neighbour (in ``links``, unordered pairs) that had the
    block earliest before it; with no such neighbour (links not known yet, or the block came
    round a node the dashboard cannot see) the first node is named. Hops are in arrival order.
    """
    if not seen:
        return ()
    neighbours: dict[str, set[str]] = {}
    for a, b in links:
        neighbours.setdefault(a, set()).add(b)
        neighbours.setdefault(b, set()).add(a)
    order = sorted(seen, key=lambda n: (seen[n], n))
    start = seen[order[0]]
    hops: list[Hop] = []
    for node in order[1:]:
        earlier = [n for n in neighbours.get(node, ()) if n in seen and seen[n] < seen[node]]
        source = min(earlier, key=lambda n: (seen[n], n)) if earlier else order[0]
        hops.append(Hop(source, node, round((seen[node] - start) * 1000)))
    return tuple(hops)
