"""The forklab miner: SHA-256d nonce search on OpenCL devices or CPU cores.

The miner is a separate program that shares only the consensus core with the node: the header
layout and the hash (``node.core``). It is built in layers, each usable alone:

==================  ==========================================================================
module              what it holds
==================  ==========================================================================
backend             the interface (:class:`Backend`, :class:`Found`) and the host re-check
midstate            the per-header SHA-256 work done once on the host
cpu                 :class:`CpuBackend`: hashlib in one worker process per core
opencl              devices, kernel build and launches (everything that touches pyopencl)
tuning              measuring a device once and remembering the best configuration
opencl_backend      :class:`OpenCLBackend`: the kernel as a backend
factory             :func:`open_backend`: auto/opencl/cpu, with the CPU fallback
rates               hashrates, the machine's SHA-256 figure, SI units
work                units of work from a node: headers to search, extranonce rolls, solutions
search              the inner loop: one unit searched in backend-sized ranges until stopped
source              the interface the mining loop drives: work, news of a new tip, submission
rpc                 sources over a node's API: getblocktemplate with long polling, getwork
inprocess           a source that is a :class:`~node.node.Node` in the same process
loop                :class:`~miner.loop.Miner`: the mining loop (stale work, outages, stops)
status              what the miner reports: a live status line, or JSON lines
cli                 ``forklab mine`` and ``forklab miner search | devices | bench``
==================  ==========================================================================

Mining against a node drives a :class:`Backend` through :meth:`Backend.search` over ranges of
about :attr:`Backend.preferred_count` nonces, on a worker thread, so that new work is picked up
between two calls. Importing this package imports neither pyopencl nor aiohttp nor any of the
node beyond its consensus core: CPU-only use and the CPU worker processes stay light, and a
machine without OpenCL can still import everything.
"""

from __future__ import annotations

from miner.backend import NONCE_SPACE, Backend, BackendUnavailableError, Found
from miner.cpu import CpuBackend
from miner.factory import BACKEND_KINDS, BackendKind, open_backend
from miner.opencl import DeviceInfo, KernelConfig, list_devices
from miner.opencl_backend import OpenCLBackend

__all__ = [
    "BACKEND_KINDS",
    "NONCE_SPACE",
    "Backend",
    "BackendKind",
    "BackendUnavailableError",
    "CpuBackend",
    "DeviceInfo",
    "Found",
    "KernelConfig",
    "OpenCLBackend",
    "list_devices",
    "open_backend",
]
