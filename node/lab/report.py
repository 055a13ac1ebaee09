"""A scenario's report, as text for people and as JSON for programs (the dashboard, tests).

Both come from a :class:`~node.lab.outcome.ScenarioResult`: the steps and what became of them,
the invariants, and the analysis of the chain (the block tree, stale blocks, reorganisation
depths, each miner's share of the chain against its share of the hash power, confirmation
times, the coins in existence). The plot is :mod:`node.lab.plot`.

**Text.** The block tree is drawn height by height, the best chain on the left and the blocks
off it on the right with their parent; long stretches without a fork are folded into one line
(``... 98 blocks, heights 4-101: funding 98``), so a run of a thousand blocks with three forks
reads in a screenful.

**JSON** (:func:`as_json`), stable keys:

=================  =====================================================================
key                value
=================  =====================================================================
``scenario``       name; ``title``, ``backend`` (simulator, real), ``seed``
``passed``         no failed step, no violated invariant, no crash; ``crash``: null or why
``steps``          ``[{step, do, description, at, status, detail}]``, ``step`` from 1,
                   ``status`` ok/failed/skipped/stopped, ``at`` in seconds of the scenario
``invariants``     ``[{name, ok, problems}]``
``chain``          ``height``, ``tip``, ``blocks``, ``stale_blocks``, ``stale_rate``,
                   ``supply``, ``supply_cap``, ``subsidy`` (coins as strings, 8 decimals)
``reorgs``         ``count``, ``max_depth``, ``by_depth`` ({depth: count})
``miners``         ``[{name, strategy, hash_share, found, main, main_share}]``
``transactions``   ``[{label, txid, sent_at, confirmed_at, delay, height, confirmations}]``
``propagation``    ``{median, max}`` seconds for a best-chain block to reach every node
                   that got it (null for real nodes)
``tips``           ``{node: {height, hash}}``
``blocks``         the tree: ``[{hash, parent, height, miner, found_at, main, txs}]``
``trace_digest``   the simulator's trace digest (null for real nodes); ``events``
``duration``       seconds of the scenario's time; ``wall_seconds``
=================  =====================================================================

What this module does not do: run anything, or decide what passed (the result knows).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any

from node.core.hashing import hash_hex
from node.core.params import NetworkParams
from node.core.tx import COIN
from node.lab.analysis import Analysis, BlockInfo
from node.lab.outcome import ScenarioResult, Status
from node.lab.scenario import format_coins

CONTEXT = 1
"""Heights shown on either side of a fork when long stretches are folded."""
FOLD = 6
"""Stretches without a fork longer than this are folded into one line."""


def amount(units: int) -> str:
    """Coins as the API shows them: a string with eight decimals."""
    return f"{Decimal(units) / COIN:.8f}"


def short(block_hash: bytes | None) -> str:
    return hash_hex(block_hash)[:16] if block_hash is not None else "-"


# ---------------------------------------------------------------------------------- JSON


def as_json(result: ScenarioResult) -> dict[str, Any]:
    a = result.analysis
    params = result.scenario.network_params()
    return {
        "scenario": result.scenario.name,
        "title": result.scenario.title,
        "backend": result.backend,
        "seed": result.seed,
        "passed": result.passed,
        "crash": result.crash,
        "steps": [
            {
                "step": s.index + 1,
                "do": s.kind,
                "description": s.description,
                "at": s.started_at,
                "status": s.status.value,
                "detail": s.detail,
            }
            for s in result.steps
        ],
        "invariants": [
            {"name": i.name, "ok": i.ok, "problems": list(i.problems)} for i in result.invariants
        ],
        "chain": {
            "height": a.height,
            "tip": hash_hex(a.tip) if a.tip is not None else None,
            "blocks": len(a.blocks),
            "stale_blocks": len(a.stale),
            "stale_rate": a.stale_rate,
            "supply": amount(a.supply) if a.supply is not None else None,
            "supply_cap": amount(params.supply_cap),
            "subsidy": amount(params.subsidy(a.height + 1)),
        },
        "reorgs": {
            "count": sum(n for _, n in a.reorgs),
            "max_depth": a.max_reorg_depth,
            "by_depth": {str(d): n for d, n in a.reorgs},
        },
        "miners": [
            {
                "name": m.name,
                "strategy": m.strategy,
                "hash_share": m.hash_share,
                "found": m.found,
                "main": m.main,
                "main_share": m.main_share,
            }
            for m in a.miners
        ],
        "transactions": [
            {
                "label": t.label,
                "txid": hash_hex(t.txid),
                "sent_at": t.sent_at,
                "confirmed_at": t.confirmed_at,
                "delay": t.delay,
                "height": t.height,
                "confirmations": t.confirmations,
            }
            for t in a.transactions
        ],
        "propagation": (
            {"median": a.propagation_median, "max": max(a.propagation)} if a.propagation else None
        ),
        "tips": {node: {"height": t.height, "hash": hash_hex(t.hash)} for node, t in a.tips},
        "blocks": [
            {
                "hash": hash_hex(b.hash),
                "parent": hash_hex(b.parent),
                "height": b.height,
                "miner": b.miner,
                "found_at": b.found_at,
                "main": b.hash in a.main,
                "txs": b.tx_count,
            }
            for b in a.blocks
        ],
        "trace_digest": result.trace_digest,
        "events": result.events,
        "duration": result.duration,
        "wall_seconds": result.wall_seconds,
    }


# ---------------------------------------------------------------------------------- text


def as_text(result: ScenarioResult) -> str:
    scenario = result.scenario
    verdict = "passed" if result.passed else "stopped" if result.stopped else "FAILED"
    lines = [f"scenario {scenario.name} ({result.backend}, seed {result.seed}): {verdict}"]
    if scenario.title:
        lines.append(f"  {scenario.title}")
    if result.crash:
        lines += ["", f"the run crashed: {result.crash}"]
    lines += ["", "steps", *_steps(result)]
    if result.invariants:
        lines += ["", "invariants"]
        for inv in result.invariants:
            lines.append(f"  {inv.name:<12} {'ok' if inv.ok else 'VIOLATED'}")
            lines += [f"      {p}" for p in inv.problems]
    lines += ["", *_summary(result.analysis, scenario.network_params())]
    if result.analysis.miners:
        lines += ["", *_miners(result.analysis)]
    if result.analysis.transactions:
        lines += ["", *_transactions(result.analysis)]
    lines += ["", *block_tree(result.analysis)]
    lines += ["", _footer(result)]
    return "\n".join(lines)


def _steps(result: ScenarioResult) -> Iterator[str]:
    for s in result.steps:
        mark = "FAILED" if s.status is Status.FAILED else s.status.value
        line = f"  {s.index + 1:>3}  {duration(s.started_at):>9}  {mark:<7}  {s.description}"
        if s.detail:
            line += f"  [{s.detail}]"
        yield line


def _summary(a: Analysis, params: NetworkParams) -> list[str]:
    supply = format_coins(a.supply) if a.supply is not None else "unknown"
    reorg_count = sum(n for _, n in a.reorgs)
    depths = ", ".join(f"depth {d} x{n}" for d, n in a.reorgs) or "none"
    lines = [
        f"chain       height {a.height}, tip {short(a.tip)}; {len(a.blocks)} blocks found, "
        f"{len(a.stale)} stale (stale rate {a.stale_rate:.3f} after funding)",
        f"reorgs      {reorg_count}: {depths}",
        f"coins       {supply} in existence of a cap of {format_coins(params.supply_cap)}; "
        f"next subsidy {format_coins(params.subsidy(a.height + 1))}",
    ]
    if a.propagation:
        lines.append(
            f"propagation a block reached every node in {duration(a.propagation_median or 0)} "
            f"(median), {duration(max(a.propagation))} at worst"
        )
    return lines


def _miners(a: Analysis) -> list[str]:
    lines = ["  miner          strategy       hash power   found   on chain   share of chain"]
    for m in a.miners:
        lines.append(
            f"  {m.name:<14} {m.strategy:<14} {m.hash_share:>9.1%}   {m.found:>5}   "
            f"{m.main:>8}   {m.main_share:>13.1%}"
        )
    return lines


def _transactions(a: Analysis) -> list[str]:
    lines = ["  transaction    sent at     confirmed at   delay       confirmations"]
    for t in a.transactions:
        confirmed = duration(t.confirmed_at) if t.confirmed_at is not None else "-"
        delay = duration(t.delay) if t.delay is not None else "-"
        lines.append(
            f"  {t.label:<14} {duration(t.sent_at):>9}   {confirmed:>12}   {delay:>9}   "
            f"{t.confirmations:>13}"
        )
    return lines


def block_tree(a: Analysis) -> list[str]:
    """The tree, height by height (module docstring)."""
    if not a.blocks:
        return ["block tree: no block was found"]
    by_height: dict[int, list[BlockInfo]] = {}
    for block in a.blocks:
        by_height.setdefault(block.height, []).append(block)
    top = max(by_height)
    forks = {h for h, blocks in by_height.items() if any(b.hash not in a.main for b in blocks)}
    tips: dict[bytes, list[str]] = {}
    for node, tip in a.tips:
        tips.setdefault(tip.hash, []).append(node)
    shown = {h for f in forks for h in range(f - CONTEXT, f + CONTEXT + 1)}
    shown |= set(range(top - CONTEXT, top + 1)) | {1}
    lines = ["block tree (best chain | off it, with parent; [nodes] mark tips)"]
    folded: list[int] = []

    def flush() -> None:
        if not folded:
            return
        if len(folded) <= FOLD:
            for h in folded:
                lines.append(_row(h, by_height.get(h, []), a, tips))
        else:
            miners = Counter(b.miner for h in folded for b in by_height.get(h, []))
            who = ", ".join(f"{m} {n}" for m, n in miners.most_common())
            lines.append(f"   ... {len(folded)} blocks, heights {folded[0]}-{folded[-1]}: {who}")
        folded.clear()

    for height in range(1, top + 1):
        if height in shown:
            flush()
            lines.append(_row(height, by_height.get(height, []), a, tips))
        else:
            folded.append(height)
    flush()
    return lines


def _row(
    height: int, blocks: Sequence[BlockInfo], a: Analysis, tips: dict[bytes, list[str]]
) -> str:
    def cell(block: BlockInfo, with_parent: bool) -> str:
        text = f"{short(block.hash)} {block.miner}"
        if with_parent:
            text += f" (on {short(block.parent)[:8]})"
        if block.hash in tips:
            text += f" [{','.join(tips[block.hash])}]"
        return text

    main = [b for b in blocks if b.hash in a.main]
    off = [b for b in blocks if b.hash not in a.main]
    left = cell(main[0], False) if main else "-"
    right = "   ".join(cell(b, True) for b in off)
    return f"  {height:>7}  {left:<40} {right}".rstrip()


def _footer(result: ScenarioResult) -> str:
    digest = (
        f"trace {result.trace_digest} ({result.events} events); " if result.trace_digest else ""
    )
    return f"{digest}{duration(result.duration)} of network time in {result.wall_seconds:.2f} s"


def duration(seconds: float) -> str:
    """Seconds for people: ``42.0 s``, ``12.5 min``, ``3.2 h``, ``2.0 d``."""
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"
