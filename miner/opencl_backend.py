"""The OpenCL backend: the SHA-256d kernel on any OpenCL device, GPU or CPU (PoCL).

A search is cut into launches of the tuned size (:mod:`miner.tuning`), all queued through
:class:`~miner.opencl.KernelRunner`, which overlaps each launch with reading the previous one's
results. The kernel only proposes candidates; :meth:`~miner.backend.Backend.search` re-checks
each with the consensus hash.

The first use of a device measures it (5 to 15 seconds with PoCL on two cores, depending on
its compiler cache) and remembers the result; pass ``config`` to skip that, as the tests and
the benchmark do.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from miner.backend import Backend
from miner.midstate import SearchWork
from miner.opencl import DeviceInfo, KernelConfig, KernelRunner, pick_device
from miner.tuning import TuningCache, tune

log = logging.getLogger(__name__)

LAUNCHES_PER_CALL = 2
"""What :attr:`OpenCLBackend.preferred_count` covers: two tuned launches (about 0.2 s)."""


class OpenCLBackend(Backend):
    """Nonce search with the OpenCL kernel on one device.

    ``device`` is the ``--device`` number (default: the first GPU, else the first device).
    Raises :class:`~miner.backend.BackendUnavailableError` when OpenCL or the device cannot
    be used.
    """

    name = "opencl"

    def __init__(
        self,
        device: int | None = None,
        config: KernelConfig | None = None,
        *,
        cache: TuningCache | None = None,
    ) -> None:
        super().__init__()
        info, handle = pick_device(device)
        self.info: DeviceInfo = info
        self.measured_rate: float | None = None
        """The tuned configuration's rate, when it came from tuning (now or remembered)."""
        if config is None:
            cache = cache if cache is not None else TuningCache()
            tuning = cache.get(info)
            if tuning is None:
                log.info(
                    "measuring OpenCL device %s once, to choose how to run the kernel on it "
                    "(remembered in %s)",
                    info.label,
                    cache.path,
                )
                tuning = tune(info)
                cache.put(info, tuning)
            config = tuning.config
            self.measured_rate = tuning.hashrate
        self._runner = KernelRunner(info, handle, config)
        self._work_key = b""
        self._work: SearchWork | None = None

    @property
    def config(self) -> KernelConfig:
        return self._runner.config

    @property
    def build_seconds(self) -> float:
        """How long building the program took (short when a kernel cache had it)."""
        return self._runner.build_seconds

    @property
    def device(self) -> str:
        return self.info.label

    @property
    def preferred_count(self) -> int:
        return LAUNCHES_PER_CALL * self.config.nonces_per_launch

    def _candidates(self, header: bytes, target: int, start: int, count: int) -> Iterable[int]:
        # Mining loops search one header many times: fold its constants only once.
        if self._work is None or header[:76] != self._work_key:
            self._work = SearchWork.from_header(header)
            self._work_key = header[:76]
        self._runner.set_work(self._work, target)
        step = self.config.nonces_per_launch
        end = start + count
        launches = [(first, min(step, end - first)) for first in range(start, end, step)]
        return self._runner.run(launches)

    def close(self) -> None:
        self._runner.close()
