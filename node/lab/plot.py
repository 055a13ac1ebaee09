"""The report as a picture: an SVG of the block tree and of each miner's share, written by hand.

Two panels:

- the block tree: heights left to right, the best chain on one line and every block off it on
  lanes below, each block a dot in its miner's colour, joined to its parent; stale blocks are
  hollow; each node's tip is marked with the node's name. Funding blocks are left out (one
  label says how many), and of a very long run only the last :data:`MAX_HEIGHTS` heights are
  drawn, so the picture stays readable;
- the miners: for each, its share of the hash power beside its share of the best chain's
  blocks, the comparison that selfish mining and concentration are about.

SVG needs no library and opens in any browser; the output is a pure function of the result, so
the same run gives the same file. (A PNG would need matplotlib, which forklab does not depend
on; convert the SVG with any tool if one is needed.)

What this module does not do: decide anything about the run (:mod:`node.lab.analysis` does).
"""

from __future__ import annotations

from collections.abc import Sequence
from xml.sax.saxutils import escape

from node.lab.analysis import FUNDING, Analysis, BlockInfo, MinerShare
from node.lab.outcome import ScenarioResult
from node.lab.report import short

MAX_HEIGHTS = 400
WIDTH = 1000
MARGIN = 40
LANE = 22
BAR = 14
PALETTE = (
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#ff7f0e",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#bcbd22",
)
OTHER = "#7f7f7f"
"""Blocks of no declared miner (``mine`` steps on a node)."""


def svg(result: ScenarioResult) -> str:
    a = result.analysis
    shown, skipped = _window(a)
    colours = _colours(a, shown)
    lanes = _lanes(shown, a)
    lane_count = max(lanes.values(), default=0) + 1
    tree_top = MARGIN + 30
    legend_top = tree_top + lane_count * LANE + 24
    bars_top = legend_top + 50
    height = bars_top + len(a.miners) * (2 * BAR + 12) + MARGIN
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{height}" fill="white"/>',
        _text(MARGIN, MARGIN, _title(result), size=16, weight="bold"),
    ]
    out += _tree(shown, a, lanes=lanes, colours=colours, top=tree_top)
    out += _legend(colours, skipped, legend_top)
    out += _bars(a.miners, colours, bars_top)
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _title(result: ScenarioResult) -> str:
    verdict = "passed" if result.passed else "failed"
    name = result.scenario.title or result.scenario.name
    return f"{name} ({result.backend}, seed {result.seed}): {verdict}"


def _colours(a: Analysis, shown: Sequence[BlockInfo]) -> dict[str, str]:
    """A colour per miner drawn: the scenario's miners first, then the others (``@NODE``) as
    they first appear; funding blocks are grey."""
    labels = [m.name for m in a.miners]
    labels += sorted({b.miner for b in shown} - set(labels) - {FUNDING})
    colours = {label: PALETTE[i % len(PALETTE)] for i, label in enumerate(labels)}
    colours[FUNDING] = OTHER
    return colours


def _legend(colours: dict[str, str], skipped: int, top: int) -> list[str]:
    out = []
    x = float(MARGIN)
    for label, colour in colours.items():
        if label == FUNDING:
            continue
        out.append(f'<circle cx="{x + 5:.1f}" cy="{top - 4}" r="5" fill="{colour}"/>')
        out.append(_text(x + 14, top, label))
        x += 30 + 7 * len(label)
    out.append(_text(MARGIN, top + 22, "hollow: stale (not on the best chain)", size=10))
    if skipped:
        out.append(_text(MARGIN + 260, top + 22, f"{skipped} earlier blocks not drawn", size=10))
    return out


def _window(a: Analysis) -> tuple[list[BlockInfo], int]:
    """The blocks drawn, and how many earlier blocks are not."""
    blocks = [b for b in a.blocks if b.miner != FUNDING]
    if not blocks:
        return [], len(a.blocks)
    top = max(b.height for b in blocks)
    first = max(min(b.height for b in blocks), top - MAX_HEIGHTS + 1)
    shown = [b for b in blocks if b.height >= first]
    return shown, len(a.blocks) - len(shown)


def _lanes(blocks: Sequence[BlockInfo], a: Analysis) -> dict[bytes, int]:
    """Lane 0 is the best chain; a stale block continues its parent's lane if it can, else
    takes the first lane free at its height."""
    lanes: dict[bytes, int] = {}
    last: dict[int, int] = {}  # lane -> highest height drawn in it
    for block in blocks:
        if block.hash in a.main:
            lanes[block.hash] = 0
            continue
        lane = lanes.get(block.parent)
        if not lane or last.get(lane, -1) >= block.height:
            lane = 1
            while last.get(lane, -1) >= block.height - 1:
                lane += 1
        lanes[block.hash] = lane
        last[lane] = block.height
    return lanes


def _tree(
    blocks: Sequence[BlockInfo],
    a: Analysis,
    *,
    lanes: dict[bytes, int],
    colours: dict[str, str],
    top: int,
) -> list[str]:
    out = [_text(MARGIN, top - 10, "block tree: best chain on the first line, stale blocks below")]
    if not blocks:
        return [*out, _text(MARGIN, top + 20, "no block was found after funding")]
    first = min(b.height for b in blocks)
    last = max(b.height for b in blocks)
    step = max(2.0, min(24.0, (WIDTH - 2 * MARGIN - 60) / max(1, last - first + 1)))
    left = MARGIN + 30

    def x(height: int) -> float:
        return left + (height - first) * step

    def y(block_hash: bytes) -> float:
        return top + 12 + lanes.get(block_hash, 0) * LANE

    by_hash = {b.hash: b for b in blocks}
    for block in blocks:
        parent = by_hash.get(block.parent)
        if parent is not None:
            out.append(
                f'<line x1="{x(parent.height):.1f}" y1="{y(parent.hash):.1f}" '
                f'x2="{x(block.height):.1f}" y2="{y(block.hash):.1f}" stroke="#999"/>'
            )
    radius = max(1.5, min(6.0, step / 2.5))
    for block in blocks:
        colour = colours.get(block.miner, OTHER)
        stale = block.hash not in a.main
        fill = "white" if stale else colour
        out.append(
            f'<circle cx="{x(block.height):.1f}" cy="{y(block.hash):.1f}" r="{radius:.1f}" '
            f'fill="{fill}" stroke="{colour}" stroke-width="1.5">'
            f"<title>{escape(_label(block))}</title>"
            "</circle>"
        )
    tips: dict[bytes, list[str]] = {}
    for node, tip in a.tips:
        tips.setdefault(tip.hash, []).append(node)
    for block_hash, nodes in tips.items():
        held = by_hash.get(block_hash)
        if held is not None:
            out.append(_text(x(held.height) + 9, y(block_hash) + 4, ",".join(nodes), size=10))
    out.append(_text(x(first) - 6, top + 2, str(first), size=10))
    if last != first:
        out.append(_text(x(last) - 6, top + 2, str(last), size=10))
    return out


def _bars(rows: Sequence[MinerShare], colours: dict[str, str], top: int) -> list[str]:
    if not rows:
        return []
    out = [
        _text(
            MARGIN,
            top - 10,
            "each miner: share of the hash power (light), share of the chain (dark)",
        )
    ]
    width = WIDTH - 2 * MARGIN - 220
    for i, m in enumerate(rows):
        y = top + i * (2 * BAR + 12)
        colour = colours.get(m.name, OTHER)
        out.append(_text(MARGIN, y + BAR + 4, f"{m.name} ({m.strategy})"))
        start = MARGIN + 150
        out.append(
            f'<rect x="{start}" y="{y}" width="{width * m.hash_share:.1f}" height="{BAR - 2}" '
            f'fill="{colour}" fill-opacity="0.35"/>'
        )
        out.append(
            f'<rect x="{start}" y="{y + BAR}" width="{width * m.main_share:.1f}" '
            f'height="{BAR - 2}" fill="{colour}"/>'
        )
        out.append(
            _text(start + width * m.hash_share + 6, y + BAR - 4, f"{m.hash_share:.1%}", size=10)
        )
        out.append(
            _text(start + width * m.main_share + 6, y + 2 * BAR - 4, f"{m.main_share:.1%}", size=10)
        )
    return out


def _label(block: BlockInfo) -> str:
    return f"height {block.height} {short(block.hash)} by {block.miner}"


def _text(x: float, y: float, text: str, *, size: int = 12, weight: str = "normal") -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" font-weight="{weight}">'
        f"{escape(text)}</text>"
    )
