"""The OpenCL layer: finding devices, building the SHA-256d kernel, launching it.

Everything that touches pyopencl lives here, so that every way OpenCL can be missing or broken
becomes one :class:`~miner.backend.BackendUnavailableError` with a sentence a user can act on:

==========================  =============================================================
what went wrong             what the user reads
==========================  =============================================================
pyopencl does not import    pyopencl cannot be loaded (...)
no ICD / no platform        no OpenCL platform found (install an OpenCL driver, ...)
platforms but no device     no OpenCL device found on ...
``--device N`` out of range there is no OpenCL device N (...)
kernel build error          the OpenCL kernel does not build on DEVICE: first error line
any other runtime failure   OpenCL failed on DEVICE: ...
==========================  =============================================================

pyopencl is imported on first use, not with this module, so that importing :mod:`miner` (which
every CPU worker process does) stays cheap and works where no OpenCL is installed.

Devices are numbered in one flat list across platforms, in the order the ICD loader reports
them; that number is ``--device N``.

This module measures nothing and chooses nothing: :mod:`miner.tuning` picks the configuration,
:mod:`miner.opencl_backend` turns launches into a search.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import re
import time
import warnings
from dataclasses import dataclass
from typing import Any

import kernels
from miner.backend import BackendUnavailableError
from miner.midstate import SearchWork

VECTOR_WIDTHS = (1, 2, 4, 8, 16)
EXTRA_OPTIONS_ENV = "FORKLAB_OPENCL_OPTIONS"
"""Extra kernel build options, appended to the ones chosen here (for experiments)."""

_RESULT_HEADER_WORDS = 1
_WORDS_PER_RESULT = 2


def _pyopencl() -> Any:
    try:
        return importlib.import_module("pyopencl")
    except (ImportError, OSError) as exc:  # OSError: the ICD loader library itself is missing
        raise BackendUnavailableError(f"pyopencl cannot be loaded ({exc})") from exc


def kernel_source() -> str:
    return kernels.source(kernels.SHA256D)


def extra_options() -> tuple[str, ...]:
    return tuple(os.environ.get(EXTRA_OPTIONS_ENV, "").split())


@dataclass(frozen=True)
class DeviceInfo:
    """One OpenCL device, as ``forklab miner devices`` lists it."""

    index: int
    """Position in the flat list across platforms: the ``--device`` number."""
    platform: str
    name: str
    kind: str
    """Device type as OpenCL names it: ``GPU``, ``CPU``, ``ACCELERATOR``..."""
    compute_units: int
    max_work_group_size: int
    preferred_vector_width: int
    """The device's preferred number of ``int`` per vector; a hint, not a measurement."""
    version: str
    driver_version: str

    @property
    def label(self) -> str:
        return f"{self.name} ({self.platform})"

    @property
    def identity(self) -> str:
        """What a tuning result is valid for: the same device, driver and kernel build."""
        text = "\n".join(
            (
                self.platform,
                self.name,
                self.version,
                self.driver_version,
                kernel_source(),
                *extra_options(),
            )
        )
        return hashlib.sha256(text.encode()).hexdigest()[:24]


def _all_devices() -> list[Any]:
    """Every device of every platform, in the flat ``--device`` order."""
    cl = _pyopencl()
    try:
        platforms = cl.get_platforms()
    except cl.Error as exc:
        raise BackendUnavailableError(
            "no OpenCL platform found (install an OpenCL driver such as Debian's "
            f"pocl-opencl-icd, or a GPU vendor's; the loader said: {_first_line(exc)})"
        ) from exc
    devices: list[Any] = []
    for platform in platforms:
        try:
            devices.extend(platform.get_devices())
        except cl.Error:
            continue  # a platform without devices answers DEVICE_NOT_FOUND; the others may work
    if not devices:
        names = ", ".join(p.name for p in platforms)
        raise BackendUnavailableError(f"no OpenCL device found on the platform(s) {names}")
    return devices


def _describe(index: int, device: Any) -> DeviceInfo:
    cl = _pyopencl()
    return DeviceInfo(
        index=index,
        platform=device.platform.name.strip(),
        name=device.name.strip(),
        kind=_device_kind(cl, int(device.type)),
        compute_units=int(device.max_compute_units),
        max_work_group_size=int(device.max_work_group_size),
        preferred_vector_width=int(device.preferred_vector_width_int),
        version=device.version.strip(),
        driver_version=device.driver_version.strip(),
    )


def _device_kind(cl: Any, bits: int) -> str:
    kinds = ("CPU", "GPU", "ACCELERATOR", "CUSTOM")
    names = [kind for kind in kinds if bits & int(getattr(cl.device_type, kind, 0))]
    return " | ".join(names) or "OTHER"


def list_devices() -> list[DeviceInfo]:
    """Every OpenCL device on the machine; raises BackendUnavailableError when there is none."""
    return [_describe(i, d) for i, d in enumerate(_all_devices())]


def default_device(devices: list[DeviceInfo]) -> DeviceInfo:
    """The device used when none is named: the first GPU, else the first device."""
    return next((d for d in devices if "GPU" in d.kind), devices[0])


def pick_device(index: int | None) -> tuple[DeviceInfo, Any]:
    """The device ``--device index`` names (or the default one) and its pyopencl handle."""
    handles = _all_devices()
    infos = [_describe(i, d) for i, d in enumerate(handles)]
    if index is None:
        info = default_device(infos)
    elif 0 <= index < len(infos):
        info = infos[index]
    else:
        raise BackendUnavailableError(
            f"there is no OpenCL device {index} (devices are numbered 0 to {len(infos) - 1}; "
            "see `forklab miner devices`)"
        )
    return info, handles[info.index]


@dataclass(frozen=True)
class KernelConfig:
    """How the kernel is built and launched on one device."""

    vector: int
    """Nonces per work-item, as the lanes of a uint/uint2/.../uint16 (``-D VECTOR``)."""
    local_size: int
    """Work-items per work-group. Fixed per device: PoCL compiles each local size anew."""
    global_size: int
    """Work-items per launch; a multiple of ``local_size``."""
    portable_ops: bool = False
    """Shifts and masks instead of rotate()/bitselect() (``-D PORTABLE_OPS``)."""

    def __post_init__(self) -> None:
        if self.vector not in VECTOR_WIDTHS:
            raise ValueError(f"vector width {self.vector} is not one of {VECTOR_WIDTHS}")
        if self.local_size < 1 or self.global_size < self.local_size:
            raise ValueError("need 1 <= local_size <= global_size")
        if self.global_size % self.local_size:
            raise ValueError("global_size must be a multiple of local_size")
        if self.global_size * self.vector > 1 << 32:
            raise ValueError("a launch cannot cover more than 2^32 nonces")

    @property
    def nonces_per_launch(self) -> int:
        return self.global_size * self.vector

    def build_options(self) -> list[str]:
        options = ["-D", f"VECTOR={self.vector}"]
        if self.portable_ops:
            options += ["-D", "PORTABLE_OPS"]
        return options + list(extra_options())


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _build_error(log: str) -> str:
    """The first compiler error of a build log, without the temporary file's path."""
    for line in log.splitlines():
        if "error" in line.lower():
            return re.sub(r"\S*\.cl:(\d+:\d+:)", r"line \1", line.strip())
    return log.strip().splitlines()[0] if log.strip() else "no build log"


class KernelRunner:
    """A built kernel on one device: launch it over a slice of the nonce space.

    Results come back through a buffer of ``1 + 2 * global_size`` words (see the kernel's
    header comment): big enough for a hit in every work-item, so easy targets cannot overflow
    it. Two such buffers alternate, so one launch runs while the previous one is read.
    """

    def __init__(self, device: DeviceInfo, handle: Any, config: KernelConfig) -> None:
        cl = _pyopencl()
        self.device = device
        self.config = config
        self.build_seconds = 0.0
        try:
            self._context = cl.Context([handle])
            self._queue = cl.CommandQueue(self._context)
            started = time.perf_counter()
            program = cl.Program(self._context, kernel_source())
            try:
                with warnings.catch_warnings():
                    # A build log with only warnings is not the user's business; errors raise.
                    warnings.simplefilter("ignore", cl.CompilerWarning)
                    program = program.build(options=config.build_options())
            except cl.RuntimeError as exc:
                log = getattr(exc, "build_log", None) or str(exc)
                raise BackendUnavailableError(
                    f"the OpenCL kernel does not build on {device.label} "
                    f"with {' '.join(config.build_options())}: {_build_error(str(log))}"
                ) from exc
            self.build_seconds = time.perf_counter() - started
            self._kernel = cl.Kernel(program, "search")
            words = _RESULT_HEADER_WORDS + _WORDS_PER_RESULT * config.global_size
            self._buffers = [
                cl.Buffer(self._context, cl.mem_flags.READ_WRITE, 4 * words) for _ in range(2)
            ]
        except cl.Error as exc:
            raise BackendUnavailableError(
                f"OpenCL failed on {device.label}: {_first_line(exc)}"
            ) from exc
        # pyopencl's own dependency, imported late for the same reason as pyopencl itself
        self._np = importlib.import_module("numpy")
        self._zero = self._np.zeros(1, self._np.uint32)
        self._counts = [self._np.zeros(1, self._np.uint32) for _ in range(2)]
        self._work: SearchWork | None = None

    @property
    def kernel_work_group_size(self) -> int:
        cl = _pyopencl()
        info = cl.kernel_work_group_info.WORK_GROUP_SIZE
        return int(self._kernel.get_work_group_info(info, self._context.devices[0]))

    def set_work(self, work: SearchWork, target: int) -> None:
        """Load one header's folded constants and the target's top word as kernel arguments."""
        u32 = self._np.uint32
        self._kernel.set_arg(2, u32(target >> 224))
        for position, value in enumerate(work.kernel_args(), start=3):
            self._kernel.set_arg(position, u32(value))
        self._work = work

    def run(self, launches: list[tuple[int, int]]) -> list[int]:
        """Candidate nonces of several launches, each given as (first nonce, nonce count).

        A count may not exceed :attr:`KernelConfig.nonces_per_launch`; it is rounded up to
        whole work-groups, and the extra lanes are computed but never reported. Each launch is
        queued before the previous one is read, so the device does not wait for the host.
        Returns the candidates in ascending order, as plain (unwrapped) integers.
        """
        if self._work is None:
            raise RuntimeError("set_work() must come before run()")
        cl = _pyopencl()
        candidates: list[int] = []
        pending: list[tuple[int, int, int, Any]] = []
        vector, local = self.config.vector, self.config.local_size
        try:
            for number, (first, count) in enumerate(launches):
                if count > self.config.nonces_per_launch:
                    raise ValueError(f"{count} nonces exceed one launch")
                if len(pending) == 2:
                    candidates += self._collect(*pending.pop(0))
                slot = number % 2
                buffer = self._buffers[slot]
                items = -(-count // vector)
                size = -(-items // local) * local
                cl.enqueue_copy(self._queue, buffer, self._zero, is_blocking=False)
                self._kernel.set_arg(0, buffer)
                self._kernel.set_arg(1, self._np.uint32(first & 0xFFFFFFFF))
                cl.enqueue_nd_range_kernel(self._queue, self._kernel, (size,), (local,))
                event = cl.enqueue_copy(self._queue, self._counts[slot], buffer, is_blocking=False)
                pending.append((slot, first, count, event))
            while pending:
                candidates += self._collect(*pending.pop(0))
        except cl.Error as exc:
            raise BackendUnavailableError(
                f"OpenCL failed on {self.device.label}: {_first_line(exc)}"
            ) from exc
        finally:
            self._queue.finish()
        return candidates

    def _collect(self, slot: int, first: int, count: int, event: Any) -> list[int]:
        cl = _pyopencl()
        event.wait()
        reported = int(self._counts[slot][0])
        if not reported:
            return []
        words = self._np.empty(_RESULT_HEADER_WORDS + _WORDS_PER_RESULT * reported, self._np.uint32)
        cl.enqueue_copy(self._queue, words, self._buffers[slot], is_blocking=True)
        vector = self.config.vector
        end = first + count
        nonces: list[int] = []
        pairs = words[_RESULT_HEADER_WORDS:].reshape(reported, _WORDS_PER_RESULT).tolist()
        for item, mask in sorted(pairs):
            lane_zero = first + item * vector
            nonces += [
                lane_zero + lane
                for lane in range(vector)
                if mask >> lane & 1 and lane_zero + lane < end
            ]
        return nonces

    def close(self) -> None:
        for buffer in self._buffers:
            buffer.release()
        self._buffers = []
