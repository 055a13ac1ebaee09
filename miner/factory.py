"""Choosing a backend: ``open_backend("auto" | "opencl" | "cpu", device, threads)``.

OpenCL is an optional accelerator, never a requirement: when it cannot be used (no runtime, no
platform, no such device, a kernel that does not build) the reason is logged as one sentence
and the CPU backend is returned instead, so ``forklab mine`` always mines.

``auto`` also compares speeds: the OpenCL device's measured rate (see :mod:`miner.tuning`)
against this machine's CPU backend, estimated from one core's hashlib rate times the worker
count. On a machine where OpenCL only reaches the CPU through a slow driver, the CPU wins.
"""

from __future__ import annotations

import logging
from typing import Literal, get_args

from miner.backend import Backend, BackendUnavailableError
from miner.cpu import CpuBackend, available_cores
from miner.opencl_backend import OpenCLBackend
from miner.rates import format_rate, midstate_rate

log = logging.getLogger(__name__)

BackendKind = Literal["auto", "opencl", "cpu"]
BACKEND_KINDS: tuple[str, ...] = get_args(BackendKind)

CPU_ESTIMATE_SECONDS = 0.1
"""How long one core's hashlib rate is timed to estimate the CPU backend for ``auto``."""
CPU_SCALING = 0.95
"""Expected efficiency of the worker processes relative to cores x one core."""


def estimate_cpu_rate(threads: int) -> float:
    """What the CPU backend would reach with ``threads`` workers, from a short one-core run."""
    return midstate_rate(CPU_ESTIMATE_SECONDS) * min(threads, available_cores()) * CPU_SCALING


def open_backend(
    kind: BackendKind = "auto", device: int | None = None, threads: int | None = None
) -> Backend:
    """A ready backend of ``kind``; ``device`` picks the OpenCL device, ``threads`` the CPU
    workers. Never raises BackendUnavailableError: OpenCL problems fall back to the CPU."""
    if kind not in BACKEND_KINDS:
        raise ValueError(f"unknown backend {kind!r}; choose one of {', '.join(BACKEND_KINDS)}")
    if kind == "cpu":
        return CpuBackend(threads)
    try:
        opencl = OpenCLBackend(device)
    except BackendUnavailableError as exc:
        report = log.warning if kind == "opencl" else log.info
        report("OpenCL is not usable: %s; using the CPU backend instead", exc)
        return CpuBackend(threads)
    if kind == "auto" and opencl.measured_rate is not None:
        cpu_rate = estimate_cpu_rate(threads or available_cores())
        if cpu_rate > opencl.measured_rate:
            log.info(
                "the CPU backend (about %s) beats OpenCL on %s (%s); using the CPU",
                format_rate(cpu_rate),
                opencl.device,
                format_rate(opencl.measured_rate),
            )
            opencl.close()
            return CpuBackend(threads)
    return opencl
