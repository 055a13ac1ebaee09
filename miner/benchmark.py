"""``forklab miner bench``: every backend and device measured against the machine's own yardstick.

One run measures, in this order: the yardstick (hashlib's SHA-256 compressions per second on one
core, and the CPU backend's per-nonce loop on one core), then each OpenCL device, then the CPU
backend. Ratios to the yardstick mean something across machines and across noisy runs; raw
hashrates mostly do not. The JSON form is one object:

======================================  =====================================================
key                                     meaning
======================================  =====================================================
backends.opencl.hashrate                H/s of the fastest OpenCL device (null if none works)
backends.opencl.device                  that device
backends.opencl.ratio                   hashrate / sha256_figure
backends.opencl.error                   why OpenCL could not be measured (only then)
backends.opencl.devices[]               every device measured: index, device, hashrate, ratio,
                                        vector, portable_ops, local_size, global_size
backends.cpu.hashrate / device / ratio  the CPU backend, likewise
backends.cpu.threads                    its worker processes
backends.cpu.ratio_to_reference         hashrate / cpu_reference (parallel efficiency)
sha256_figure                           compressions_per_second x cores / 2
compressions_per_second                 hashlib SHA-256 on one core, long message
cores                                   cores available to this process
midstate_rate                           the CPU loop's nonces/s on one core
cpu_reference                           midstate_rate x cores
seconds                                 measuring time per backend
load_average                            1-minute load average before the run (or null)
======================================  =====================================================
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Literal

from miner.backend import BackendUnavailableError
from miner.cpu import CpuBackend, available_cores
from miner.opencl import KernelConfig, list_devices
from miner.opencl_backend import OpenCLBackend
from miner.rates import (
    format_rate,
    measure_hashrate,
    midstate_rate,
    sha256_compressions_per_second,
    sha256_figure,
)

BenchBackends = Literal["all", "opencl", "cpu"]
YARDSTICK_SECONDS = 0.5


@dataclass(frozen=True)
class Yardstick:
    """What this machine's SHA-256 can do, measured in the same run as the backends."""

    compressions_per_second: float
    cores: int
    midstate_rate: float

    @property
    def sha256_figure(self) -> float:
        return sha256_figure(self.compressions_per_second, self.cores)

    @property
    def cpu_reference(self) -> float:
        """Cores x one core's rate of the CPU backend's own loop: its ideal scaling."""
        return self.midstate_rate * self.cores

    @classmethod
    def measure(cls, seconds: float = YARDSTICK_SECONDS) -> Yardstick:
        compressions = sha256_compressions_per_second(seconds)
        return cls(compressions, available_cores(), midstate_rate(seconds))


@dataclass(frozen=True)
class Measurement:
    """One backend on one device: its rate, or why it could not run."""

    backend: str
    device: str | None
    hashrate: float | None
    error: str | None = None
    index: int | None = None
    """The OpenCL device number."""
    config: KernelConfig | None = None
    threads: int | None = None


@dataclass(frozen=True)
class BenchReport:
    yardstick: Yardstick
    opencl: tuple[Measurement, ...]
    opencl_error: str | None
    cpu: Measurement | None
    seconds: float
    load_average: float | None = None
    """The 1-minute load average before the run: other work competing for the cores makes
    the multi-core rates (but not the one-core yardstick) come out low."""

    @property
    def best_opencl(self) -> Measurement | None:
        working = [m for m in self.opencl if m.hashrate is not None]
        return max(working, key=lambda m: m.hashrate or 0.0) if working else None

    def ratio(self, rate: float | None) -> float | None:
        return None if rate is None else rate / self.yardstick.sha256_figure

    def to_json(self) -> dict[str, Any]:
        backends: dict[str, Any] = {}
        if self.opencl or self.opencl_error:
            best = self.best_opencl
            errors = [m.error for m in self.opencl if m.error]
            backends["opencl"] = {
                "hashrate": best.hashrate if best else None,
                "device": best.device if best else None,
                "ratio": self.ratio(best.hashrate) if best else None,
                **({} if best else {"error": self.opencl_error or "; ".join(errors)}),
                "devices": [self._device_json(m) for m in self.opencl],
            }
        if self.cpu is not None:
            rate = self.cpu.hashrate
            backends["cpu"] = {
                "hashrate": rate,
                "device": self.cpu.device,
                "ratio": self.ratio(rate),
                "threads": self.cpu.threads,
                "ratio_to_reference": None if rate is None else rate / self.yardstick.cpu_reference,
            }
        return {
            "backends": backends,
            "sha256_figure": self.yardstick.sha256_figure,
            "compressions_per_second": self.yardstick.compressions_per_second,
            "cores": self.yardstick.cores,
            "midstate_rate": self.yardstick.midstate_rate,
            "cpu_reference": self.yardstick.cpu_reference,
            "seconds": self.seconds,
            "load_average": self.load_average,
        }

    def _device_json(self, m: Measurement) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "index": m.index,
            "device": m.device,
            "hashrate": m.hashrate,
            "ratio": self.ratio(m.hashrate),
        }
        if m.error:
            entry["error"] = m.error
        if m.config:
            entry |= {
                "vector": m.config.vector,
                "portable_ops": m.config.portable_ops,
                "local_size": m.config.local_size,
                "global_size": m.config.global_size,
            }
        return entry

    def table(self) -> str:
        """The report for people: one line per backend and device, then the yardstick."""
        y = self.yardstick
        rows: list[tuple[str, str, str, str, str]] = []
        for m in self.opencl:
            label = f"#{m.index} {m.device}"
            if m.hashrate is None:
                rows.append(("opencl", label, "-", "-", m.error or ""))
                continue
            note = ""
            if m.config:
                c = m.config
                ops = ", portable ops" if c.portable_ops else ""
                note = f"vector {c.vector}{ops}, {c.global_size} x {c.local_size} work-items"
            rows.append(("opencl", label, format_rate(m.hashrate), self._ratio_text(m), note))
        if self.opencl_error:
            rows.append(("opencl", "-", "-", "-", self.opencl_error))
        if self.cpu is not None and self.cpu.hashrate is not None:
            efficiency = self.cpu.hashrate / y.cpu_reference
            note = (
                f"{efficiency:.2f}x of {y.cores} cores x {format_rate(y.midstate_rate)} "
                "(one core's hashlib midstate rate)"
            )
            rate = format_rate(self.cpu.hashrate)
            rows.append(("cpu", self.cpu.device or "", rate, self._ratio_text(self.cpu), note))
        header = ("backend", "device", "hashrate", "/ SHA-256", "")
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]
        lines = [
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)).rstrip()
            + ("  " + row[4] if row[4] else "")
            for row in [header, *rows]
        ]
        lines.append("")
        lines.append(
            f"SHA-256 figure: {format_rate(y.sha256_figure)} = "
            f"{y.compressions_per_second / 1e6:.1f} M compressions/s (hashlib, one core) "
            f"x {y.cores} cores / 2 compressions per nonce"
        )
        if self.load_average is not None:
            lines.append(
                f"Load average before the run: {self.load_average:.2f} on {y.cores} cores "
                "(competing work lowers the multi-core rates, not the one-core figures)"
            )
        return "\n".join(lines)

    def _ratio_text(self, m: Measurement) -> str:
        ratio = self.ratio(m.hashrate)
        return "-" if ratio is None else f"{ratio:.2f}x"


def measure_opencl(device: int | None, seconds: float) -> tuple[list[Measurement], str | None]:
    """Every OpenCL device (or only ``device``), or the reason there is none."""
    try:
        devices = list_devices()
    except BackendUnavailableError as exc:
        return [], str(exc)
    indices = [d.index for d in devices] if device is None else [device]
    results: list[Measurement] = []
    for index in indices:
        try:
            with OpenCLBackend(index) as backend:
                rate = measure_hashrate(backend, seconds)
                results.append(
                    Measurement("opencl", backend.device, rate, index=index, config=backend.config)
                )
        except BackendUnavailableError as exc:
            label = devices[index].label if 0 <= index < len(devices) else None
            results.append(Measurement("opencl", label, None, error=str(exc), index=index))
    return results, None


def measure_cpu(threads: int | None, seconds: float) -> Measurement:
    with CpuBackend(threads) as backend:
        rate = measure_hashrate(backend, seconds)
        return Measurement("cpu", backend.device, rate, threads=backend.threads)


def run_bench(
    backends: BenchBackends = "all",
    seconds: float = 3.0,
    device: int | None = None,
    threads: int | None = None,
) -> BenchReport:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    yardstick = Yardstick.measure(min(YARDSTICK_SECONDS, seconds))
    opencl: list[Measurement] = []
    opencl_error = None
    if backends in ("all", "opencl"):
        opencl, opencl_error = measure_opencl(device, seconds)
    cpu = measure_cpu(threads, seconds) if backends in ("all", "cpu") else None
    return BenchReport(yardstick, tuple(opencl), opencl_error, cpu, seconds, load)
