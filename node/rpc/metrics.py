"""Prometheus metrics in the text exposition format (version 0.0.4), at ``/metrics``.

A scrape is answered from values read at that moment (gauges: heights, mempool, peers) and
from counters kept since start (blocks connected, reorganisations, transactions accepted, RPC
calls). Names follow Prometheus conventions: a ``forklab_`` prefix, base units, ``_total`` on
counters.

=====================================  =======  ================================================
metric                                 type     meaning
=====================================  =======  ================================================
forklab_info{network,version}          gauge    always 1; labels say what runs
forklab_uptime_seconds                 gauge    seconds since the node started
forklab_block_height                   gauge    height of the active tip
forklab_header_height                  gauge    height of the best known header
forklab_chain_work_log2                gauge    log2 of the active chain's cumulative work
forklab_difficulty                     gauge    difficulty of the tip, as getdifficulty
forklab_mempool_transactions           gauge    transactions in the mempool
forklab_mempool_bytes                  gauge    encoded bytes in the mempool
forklab_mempool_fees                   gauge    fees in the mempool, in coins
forklab_peers{direction}               gauge    connected peers, inbound and outbound
forklab_network_active                 gauge    1 unless ``setnetworkactive false``
forklab_event_subscribers              gauge    open ``/events`` streams
forklab_blocks_connected_total         counter  blocks connected to the active chain
forklab_blocks_disconnected_total      counter  blocks disconnected (reorganisations)
forklab_reorgs_total                   counter  tip changes that disconnected blocks
forklab_reorg_depth_max                gauge    deepest reorganisation seen
forklab_txs_accepted_total             counter  transactions accepted to the mempool
forklab_txs_removed_total{reason}      counter  transactions that left the mempool
forklab_rpc_requests_total{method}     counter  JSON-RPC calls served, per method
forklab_rpc_errors_total{method}       counter  JSON-RPC calls answered with an error
=====================================  =======  ================================================

This module only keeps counters and writes text; :mod:`node.rpc.server` reads the gauges.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True)
class Sample:
    value: float
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Family:
    name: str
    kind: str
    """``gauge`` or ``counter``."""
    help: str
    samples: tuple[Sample, ...]


def gauge(name: str, help: str, value: float, **labels: str) -> Family:
    return Family(name, "gauge", help, (Sample(value, labels),))


def counter(name: str, help: str, value: float) -> Family:
    return Family(name, "counter", help, (Sample(value),))


def labelled(name: str, kind: str, help: str, values: Mapping[str, float], label: str) -> Family:
    """One sample per key of ``values``, under label ``label``."""
    samples = tuple(Sample(v, {label: k}) for k, v in sorted(values.items()))
    return Family(name, kind, help, samples)


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def render(families: Iterable[Family]) -> str:
    lines: list[str] = []
    for family in families:
        lines.append(f"# HELP {family.name} {_escape_help(family.help)}")
        lines.append(f"# TYPE {family.name} {family.kind}")
        for sample in family.samples:
            if sample.labels:
                labels = ",".join(
                    f'{key}="{_escape_label(value)}"' for key, value in sample.labels.items()
                )
                lines.append(f"{family.name}{{{labels}}} {_number(sample.value)}")
            else:
                lines.append(f"{family.name} {_number(sample.value)}")
    return "\n".join(lines) + "\n"


@dataclass
class Counters:
    """Counters kept by the API server from the node's events and its own calls."""

    blocks_connected: int = 0
    blocks_disconnected: int = 0
    reorgs: int = 0
    reorg_depth_max: int = 0
    txs_accepted: int = 0
    txs_removed: Counter[str] = field(default_factory=Counter)
    rpc_requests: Counter[str] = field(default_factory=Counter)
    rpc_errors: Counter[str] = field(default_factory=Counter)

    def families(self) -> list[Family]:
        return [
            counter(
                "forklab_blocks_connected_total",
                "Blocks connected to the active chain since start.",
                self.blocks_connected,
            ),
            counter(
                "forklab_blocks_disconnected_total",
                "Blocks disconnected from the active chain since start.",
                self.blocks_disconnected,
            ),
            counter(
                "forklab_reorgs_total",
                "Tip changes that disconnected at least one block.",
                self.reorgs,
            ),
            gauge(
                "forklab_reorg_depth_max",
                "Deepest reorganisation since start, in blocks.",
                self.reorg_depth_max,
            ),
            counter(
                "forklab_txs_accepted_total",
                "Transactions accepted to the mempool since start.",
                self.txs_accepted,
            ),
            labelled(
                "forklab_txs_removed_total",
                "counter",
                "Transactions that left the mempool, by reason.",
                self.txs_removed,
                "reason",
            ),
            labelled(
                "forklab_rpc_requests_total",
                "counter",
                "JSON-RPC calls served, by method.",
                self.rpc_requests,
                "method",
            ),
            labelled(
                "forklab_rpc_errors_total",
                "counter",
                "JSON-RPC calls answered with an error, by method.",
                self.rpc_errors,
                "method",
            ),
        ]
