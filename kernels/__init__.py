"""OpenCL kernel sources, shipped as package data and read through ``importlib.resources``.

Sources are found relative to this package, never the working directory, so an installed
forklab (a wheel, a zip, an editable checkout) finds the same files. Each ``.cl`` file lists its
``-D`` build options in its header comment.

==============  ==========================================================================
file            what it computes
==============  ==========================================================================
sha256d.cl      SHA-256d of 80-byte block headers over a nonce range (``miner.opencl``)
==============  ==========================================================================

This package holds no host code: building, launching and checking kernels is ``miner``'s job.
"""

from __future__ import annotations

from importlib import resources

SHA256D = "sha256d.cl"


def source(name: str) -> str:
    """The text of the kernel source ``name`` (a file name in this package)."""
    return resources.files(__name__).joinpath(name).read_text(encoding="utf-8")
