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
cli                 ``forklab miner search | devices | bench``
==================  ==========================================================================

Mining against a node (templates, RPC, submitting blocks) is not here yet; it will drive a
:class:`Backend` through :meth:`Backend.search` over ranges of :attr:`Backend.preferred_count`.
Importing this package never imports pyopencl: CPU-only use and the CPU worker processes stay
light, and a machine without OpenCL can still import everything.
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
