"""Specification of how hashrates are shown and compared.

Rates are shown with SI prefixes and three significant digits; the bench report's ratios are
each backend's rate over the machine's SHA-256 figure (one core's compressions per second,
times the cores, over two compressions per nonce), and the CPU backend's efficiency is its
rate over cores times one core's rate of its own loop.
"""

from __future__ import annotations

import pytest

from miner.benchmark import BenchReport, Measurement, Yardstick
from miner.opencl import KernelConfig
from miner.rates import format_rate, sha256_figure


@pytest.mark.parametrize(
    ("rate", "shown"),
    [
        (0, "0.00 H/s"),
        (7.5, "7.50 H/s"),
        (999, "999 H/s"),
        (999.4, "999 H/s"),
        (999.5, "1.00 kH/s"),
        (1000, "1.00 kH/s"),
        (12_345, "12.3 kH/s"),
        (3_700_000, "3.70 MH/s"),
        (46_600_000, "46.6 MH/s"),
        (999_499, "999 kH/s"),
        (999_500, "1.00 MH/s"),
        (1.5e12, "1.50 TH/s"),
    ],
)
def test_rates_are_shown_with_si_prefixes(rate: float, shown: str) -> None:
    assert format_rate(rate) == shown


def test_the_sha256_figure_is_cores_times_compressions_over_two() -> None:
    assert sha256_figure(30e6, 2) == 30e6
    assert sha256_figure(30e6, 8) == 120e6


YARDSTICK = Yardstick(compressions_per_second=30e6, cores=2, midstate_rate=2e6)
CONFIG = KernelConfig(vector=16, local_size=256, global_size=1 << 18)


def report(opencl: tuple[Measurement, ...], error: str | None = None) -> BenchReport:
    cpu = Measurement("cpu", "2 processes on a CPU", 3.6e6, threads=2)
    return BenchReport(YARDSTICK, opencl, error, cpu, seconds=1.0)


def test_the_report_gives_each_backend_its_ratio_to_the_sha256_figure() -> None:
    gpu = Measurement("opencl", "fast device", 90e6, index=1, config=CONFIG)
    slow = Measurement("opencl", "slow device", 30e6, index=0, config=CONFIG)
    data = report((slow, gpu)).to_json()
    assert data["sha256_figure"] == 30e6
    opencl = data["backends"]["opencl"]
    assert (opencl["hashrate"], opencl["device"], opencl["ratio"]) == (90e6, "fast device", 3.0)
    assert [d["index"] for d in opencl["devices"]] == [0, 1]
    assert opencl["devices"][0]["ratio"] == 1.0
    assert opencl["devices"][0]["vector"] == 16
    cpu = data["backends"]["cpu"]
    assert cpu["ratio"] == pytest.approx(0.12)
    assert cpu["ratio_to_reference"] == pytest.approx(0.9)
    assert data["cpu_reference"] == 4e6


def test_a_report_without_a_working_device_says_why() -> None:
    data = report((), "no OpenCL platform found").to_json()
    opencl = data["backends"]["opencl"]
    assert opencl["hashrate"] is None
    assert opencl["error"] == "no OpenCL platform found"
    broken = Measurement("opencl", "a device", None, error="the kernel does not build", index=0)
    data = report((broken,)).to_json()
    assert data["backends"]["opencl"]["error"] == "the kernel does not build"
    assert data["backends"]["opencl"]["devices"][0]["error"] == "the kernel does not build"


def test_the_table_shows_rates_ratios_and_the_yardstick() -> None:
    gpu = Measurement("opencl", "fast device", 90e6, index=1, config=CONFIG)
    table = report((gpu,)).table()
    assert "90.0 MH/s" in table
    assert "3.00x" in table
    assert "3.60 MH/s" in table
    assert "0.90x of 2 cores x 2.00 MH/s" in table
    assert "SHA-256 figure: 30.0 MH/s" in table
