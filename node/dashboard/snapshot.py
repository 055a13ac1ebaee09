"""What the page is sent of the tree and the chain: JSON made from the monitor's views.

Kept apart from :mod:`node.dashboard.monitor` (which gathers the picture) so that the shape of
``/api/state`` is read in one place; docs/dashboard.md lists its keys.

What this module does not do: read any node, or decide what a block's status is
(:mod:`node.dashboard.tree` does).
"""

from __future__ import annotations

from typing import Any

from node.core.params import PRESETS
from node.core.tx import COIN
from node.dashboard.tree import TreeView


def tree_json(view: TreeView) -> dict[str, Any]:
    """The tree as the page draws it (``/api/state``'s ``tree``)."""
    return {
        "best": view.best,
        "best_height": view.best_height,
        "lanes": view.lanes,
        "tips": dict(view.tips),
        "collapsed": {
            "below_height": view.collapsed.below_height,
            "blocks": view.collapsed.blocks,
            "stale": view.collapsed.stale,
        },
        "blocks": [
            {
                "hash": b.hash,
                "height": b.height,
                "prev": b.prev,
                "time": b.time,
                "txs": b.txs,
                "status": b.status.value,
                "lane": b.lane,
                "first_node": b.first_node,
                "seen_ms": dict(b.seen_ms),
            }
            for b in view.blocks
        ],
    }


def chain_json(network: str | None, height: int) -> dict[str, Any] | None:
    """Supply issued against the cap, the subsidy and the next halving, from the presets."""
    params = PRESETS.get(network or "")
    if params is None:
        return None
    next_halving = (height // params.halving_interval + 1) * params.halving_interval
    return {
        "height": height,
        "supply": params.supply_at(height),
        "cap": params.supply_cap,
        "subsidy": params.subsidy(height + 1),
        "halvings": height // params.halving_interval,
        "halving_interval": params.halving_interval,
        "next_halving_height": next_halving,
        "blocks_to_halving": next_halving - height,
        "coin": COIN,
    }
