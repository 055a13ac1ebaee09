"""Choosing the kernel configuration of an OpenCL device by measuring it, once.

What is fastest depends on the device and its compiler more than on anything a program can
read from them: PoCL on AVX-512 wants 16-wide vectors, GPUs usually want scalars, and some
compilers do not inline ``rotate()``. So every vector width is built and timed, then the best
width with the other spelling of the bit operations. Each build runs in a child process, so a
driver that crashes on some build costs that build, not the miner. The launch size is then the
one that keeps a launch near :data:`LAUNCH_SECONDS`: short enough that new work is picked up
promptly, long enough that launch overhead does not count. The local size is fixed
(:func:`initial_local_size`): it barely matters on PoCL (``bench/mining.py`` shows it), where
every new local size also costs a compilation.

Results are remembered per device in a JSON file in the user's cache directory, keyed by
:attr:`~miner.opencl.DeviceInfo.identity` (device, driver and kernel source), so a new driver
or a changed kernel is measured again:

================  =======  ===========================================================
key               type     meaning
================  =======  ===========================================================
format            int      1; files of another format are ignored (and rewritten)
devices           object   identity -> the entry below
.device           str      the device's label, for people reading the file
.vector           int      ``-D VECTOR``
.portable_ops     bool     ``-D PORTABLE_OPS``
.local_size       int      work-items per work-group
.global_size      int      work-items per launch
.hashrate         float    nonces per second measured with that configuration
================  =======  ===========================================================

The file lives in ``$FORKLAB_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/forklab``, else
``~/.cache/forklab``. Compiled kernels are cached by the OpenCL stack itself (PoCL's kernel
cache, or pyopencl's binary cache for drivers that have none), not here.
"""

from __future__ import annotations

import itertools
import json
import logging
import multiprocessing
import os
import tempfile
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from miner.backend import BackendUnavailableError
from miner.midstate import SearchWork
from miner.opencl import VECTOR_WIDTHS, DeviceInfo, KernelConfig, KernelRunner, pick_device
from miner.rates import TIMING_HEADER, format_rate, median_rate

log = logging.getLogger(__name__)

CACHE_DIR_ENV = "FORKLAB_CACHE_DIR"
CACHE_FILE = "opencl-tuning.json"
FORMAT = 1

LAUNCH_SECONDS = 0.1
"""Target duration of one kernel launch."""
TRIAL_NONCES = 1 << 20
"""Nonces per launch while comparing builds; enough to dwarf the launch overhead."""
TRIAL_SECONDS = 0.4
MIN_LAUNCH_NONCES = 1 << 16
MAX_LAUNCH_NONCES = 1 << 28


def cache_dir() -> Path:
    explicit = os.environ.get(CACHE_DIR_ENV)
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "forklab"


@dataclass(frozen=True)
class Tuning:
    """The configuration chosen for a device and the rate it was measured at."""

    config: KernelConfig
    hashrate: float


class TuningCache:
    """The per-user file of tuning results; unreadable or foreign files count as empty."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path if path is not None else cache_dir() / CACHE_FILE

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("ignoring the unreadable tuning cache %s (%s)", self.path, exc)
            return {}
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            return {}
        devices = data.get("devices")
        return devices if isinstance(devices, dict) else {}

    def get(self, device: DeviceInfo) -> Tuning | None:
        entry = self._load().get(device.identity)
        if not isinstance(entry, dict):
            return None
        try:
            config = KernelConfig(
                vector=int(entry["vector"]),
                local_size=int(entry["local_size"]),
                global_size=int(entry["global_size"]),
                portable_ops=bool(entry["portable_ops"]),
            )
            return Tuning(config, float(entry["hashrate"]))
        except (KeyError, TypeError, ValueError):
            return None

    def put(self, device: DeviceInfo, tuning: Tuning) -> None:
        """Record a result; written to a temporary file and renamed, so readers never see half."""
        devices = self._load()
        config = tuning.config
        devices[device.identity] = {
            "device": device.label,
            "vector": config.vector,
            "portable_ops": config.portable_ops,
            "local_size": config.local_size,
            "global_size": config.global_size,
            "hashrate": tuning.hashrate,
        }
        text = json.dumps({"format": FORMAT, "devices": devices}, indent=2, sort_keys=True)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(
                "w", dir=self.path.parent, prefix=".tuning-", delete=False, encoding="utf-8"
            ) as handle:
                handle.write(text + "\n")
            os.replace(handle.name, self.path)
        except OSError as exc:
            log.warning("could not write the tuning cache %s (%s)", self.path, exc)


def initial_local_size(device: DeviceInfo) -> int:
    """256 work-items, or the largest power of two the device allows if that is fewer."""
    return 1 << min(256, device.max_work_group_size).bit_length() - 1


def launch_items(rate: float, config: KernelConfig) -> int:
    """Work-items per launch for launches of about LAUNCH_SECONDS at ``rate`` nonces/s."""
    nonces = min(max(rate * LAUNCH_SECONDS, MIN_LAUNCH_NONCES), MAX_LAUNCH_NONCES)
    nonces = 1 << int(nonces).bit_length() - 1  # a power of two: launches tile 2^32 exactly
    return max(config.local_size, nonces // config.vector)


def measure(runner: KernelRunner, seconds: float) -> float:
    """Nonces per second of ``runner`` over about ``seconds``, after one warm-up launch."""
    runner.set_work(SearchWork.from_header(TIMING_HEADER), 0)
    per_launch = runner.config.nonces_per_launch
    runner.run([(0, per_launch)])  # PoCL compiles the work-group function at the first launch
    position = itertools.count(per_launch, 2 * per_launch)

    def step() -> int:
        first = next(position) % (1 << 32)
        runner.run([(first, per_launch), (first + per_launch, per_launch)])
        return 2 * per_launch

    return median_rate(step, seconds)


def trial(
    device: DeviceInfo, handle: Any, config: KernelConfig, seconds: float
) -> tuple[float, KernelConfig]:
    """Build and measure ``config``, with its local size cut to what the built kernel allows.

    Returns the rate and the configuration actually measured.
    """
    runner = KernelRunner(device, handle, config)
    try:
        allowed = runner.kernel_work_group_size
        if config.local_size > allowed:
            # Powers of two divide each other, so the global size stays a multiple.
            runner.config = replace(config, local_size=1 << allowed.bit_length() - 1)
        return measure(runner, seconds), runner.config
    finally:
        runner.close()


def _trial_by_index(index: int, config: KernelConfig, seconds: float) -> tuple[float, KernelConfig]:
    device, handle = pick_device(index)
    return trial(device, handle, config, seconds)


class _IsolatedTrials:
    """Trials run in a spawned child process, so a driver that crashes only loses the child.

    Some OpenCL stacks crash outright on some builds (the PoCL bundled with pyopencl's wheels
    does on 16-wide vectors); in-process, that would kill the miner on every start.
    """

    def __init__(self, device: DeviceInfo) -> None:
        self._device = device
        self._pool: ProcessPoolExecutor | None = None

    def run(self, config: KernelConfig, seconds: float) -> tuple[float, KernelConfig]:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        job = self._pool.submit(_trial_by_index, self._device.index, config, seconds)
        try:
            return job.result()
        except BrokenProcessPool as exc:
            self.close()
            raise BackendUnavailableError(
                f"the OpenCL driver crashed running the kernel with "
                f"{' '.join(config.build_options())} on {self._device.label}"
            ) from exc

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None


def tune(
    device: DeviceInfo,
    *,
    widths: tuple[int, ...] = VECTOR_WIDTHS,
    seconds: float = TRIAL_SECONDS,
) -> Tuning:
    """Measure every width in ``widths``, then both spellings of the bit operations at the best.

    Each build is measured in a child process (:class:`_IsolatedTrials`). A width that fails
    or crashes is skipped, except that a build error before any width has worked is raised at
    once as BackendUnavailableError: the kernel source is the same at every width, so that is
    a broken toolchain or bad extra options, and retrying each width would only repeat it.
    """
    if not widths:
        raise ValueError("no vector width to measure")
    local = initial_local_size(device)
    results: list[tuple[float, KernelConfig]] = []
    trials = _IsolatedTrials(device)
    try:
        failure: BackendUnavailableError | None = None
        for vector in widths:
            items = max(local, TRIAL_NONCES // vector)
            try:
                results.append(trials.run(KernelConfig(vector, local, items), seconds))
            except BackendUnavailableError as exc:
                if not results and not isinstance(exc.__cause__, BrokenProcessPool):
                    raise
                log.info("vector width %d skipped: %s", vector, exc)
                failure = exc
                continue
            log.info("%s, vector width %d: %s", device.label, vector, format_rate(results[-1][0]))
        if not results:
            raise failure or BackendUnavailableError(f"no kernel build worked on {device.label}")
        rate, best = max(results, key=lambda result: result[0])
        try:
            portable_rate, portable = trials.run(replace(best, portable_ops=True), seconds)
        except BackendUnavailableError as exc:
            log.info("portable bit operations skipped: %s", exc)
        else:
            log.info("%s, portable bit operations: %s", device.label, format_rate(portable_rate))
            if portable_rate > rate:
                rate, best = portable_rate, portable
    finally:
        trials.close()
    items = launch_items(rate, best)
    best = replace(best, global_size=-(-items // best.local_size) * best.local_size)
    return Tuning(best, rate)
