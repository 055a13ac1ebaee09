"""Nonce-search speed: the OpenCL kernel's build and launch choices, and the CPU backend's scaling.

Measures, in one run, on the default OpenCL device (or ``--device N``):

* ``build``: seconds to build the kernel and to run its first launch (where PoCL compiles the
  work-group function), cold (fresh PoCL cache, pyopencl's cache off) and cached, each in a
  fresh process; cached figures are medians of three;
* ``widths``: nonces/s of every vector width, both spellings of the bit operations, at a
  global work size of 2^18 work-items (so 2^18 x width nonces per launch), 256 per group;
* ``launch``: nonces/s of the best build against the global work size (2^14 to 2^20
  work-items) and against the work-group size (64 to 1024 work-items);
* ``backend``: the OpenCL backend end to end (``search`` with the host re-check), at the best
  build, to show what the host costs;
* ``cpu``: one core's hashlib midstate rate in-process, then the CPU backend with 1 and with
  all worker processes, and its efficiency (rate / (processes x one process's rate));
* ``yardstick``: hashlib's SHA-256 compressions/s on one core and the SHA-256 figure (times the
  cores, over two compressions per nonce), with every rate's ratio to it.

Each rate is the median of three timed windows of ``--seconds``; the machine is noisy and
shared, so compare the ratios within one run rather than rates across runs.

    python bench/mining.py                 # about 90 seconds on 2 cores
    python bench/mining.py --seconds 0.3   # about 40 seconds, noisier
    python bench/mining.py --json          # one JSON object
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Run from a checkout without installing: put the repository root first on the path.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from miner.backend import BackendUnavailableError
from miner.cpu import CpuBackend, available_cores
from miner.midstate import SearchWork
from miner.opencl import VECTOR_WIDTHS, KernelConfig, KernelRunner, pick_device
from miner.opencl_backend import OpenCLBackend
from miner.rates import (
    TIMING_HEADER,
    format_rate,
    measure_hashrate,
    median_rate,
    midstate_rate,
    sha256_compressions_per_second,
    sha256_figure,
)

LOCAL_SIZE = 256
GLOBAL_SIZE = 1 << 18
GLOBAL_SIZES = (1 << 14, 1 << 16, 1 << 18, 1 << 20)
LOCAL_SIZES = (64, 256, 1024)
REPEATS = 3


def kernel_rate(runner: KernelRunner, seconds: float) -> float:
    """Median nonces/s of REPEATS windows of ``seconds`` (after one warm-up launch)."""
    runner.set_work(SearchWork.from_header(TIMING_HEADER), 0)
    per_launch = runner.config.nonces_per_launch
    runner.run([(0, per_launch)])
    position = itertools.count(per_launch, 2 * per_launch)

    def step() -> int:
        first = next(position) % (1 << 32)
        runner.run([(first, per_launch), (first + per_launch, per_launch)])
        return 2 * per_launch

    return median_rate(step, REPEATS * seconds, REPEATS)


def config_for(
    vector: int, portable: bool, items: int = GLOBAL_SIZE, local: int = LOCAL_SIZE
) -> KernelConfig:
    return KernelConfig(vector, local, items, portable)


# -- build times, each in a fresh process


def probe_build(device: int | None, vector: int) -> dict[str, float]:
    """In this process: build the kernel, then time its first launch (a small one)."""
    info, handle = pick_device(device)
    started = time.perf_counter()
    runner = KernelRunner(info, handle, KernelConfig(vector, LOCAL_SIZE, LOCAL_SIZE))
    built = time.perf_counter() - started
    runner.set_work(SearchWork.from_header(TIMING_HEADER), 0)
    started = time.perf_counter()
    runner.run([(0, LOCAL_SIZE * vector)])
    return {"build_s": built, "first_launch_s": time.perf_counter() - started}


def build_times(device: int | None, vector: int) -> dict[str, Any]:
    def probe(env: dict[str, str]) -> dict[str, float]:
        command = [sys.executable, __file__, "--probe-build", str(vector)]
        if device is not None:
            command += ["--device", str(device)]
        out = subprocess.run(
            command, env={**os.environ, **env}, capture_output=True, text=True, check=True
        )
        result: dict[str, float] = json.loads(out.stdout)
        return result

    with tempfile.TemporaryDirectory(prefix="forklab-bench-pocl-") as pocl_cache:
        env = {"POCL_CACHE_DIR": pocl_cache, "PYOPENCL_NO_CACHE": "1"}
        cold = probe(env)
        cached_runs = [probe({"POCL_CACHE_DIR": pocl_cache}) for _ in range(REPEATS)]
    cached = {key: statistics.median(run[key] for run in cached_runs) for key in cold}
    return {"vector": vector, "cold": cold, "cached": cached}


# -- the measurements


def measure_widths(device: int | None, seconds: float) -> list[dict[str, Any]]:
    info, handle = pick_device(device)
    rows = []
    for vector in VECTOR_WIDTHS:
        for portable in (False, True):
            runner = KernelRunner(info, handle, config_for(vector, portable))
            try:
                rate = kernel_rate(runner, seconds)
            finally:
                runner.close()
            rows.append({"vector": vector, "portable_ops": portable, "hashrate": rate})
    return rows


def measure_launches(device: int | None, best: KernelConfig, seconds: float) -> dict[str, Any]:
    info, handle = pick_device(device)
    runner = KernelRunner(
        info, handle, config_for(best.vector, best.portable_ops, max(GLOBAL_SIZES))
    )
    by_global = []
    by_local = []
    try:
        for items in GLOBAL_SIZES:
            runner.config = config_for(best.vector, best.portable_ops, items)
            by_global.append(
                {
                    "global_size": items,
                    "nonces_per_launch": items * best.vector,
                    "hashrate": kernel_rate(runner, seconds),
                }
            )
        for local in LOCAL_SIZES:
            if local <= info.max_work_group_size:
                runner.config = config_for(best.vector, best.portable_ops, local=local)
                by_local.append({"local_size": local, "hashrate": kernel_rate(runner, seconds)})
    finally:
        runner.close()
    return {"by_global": by_global, "by_local": by_local}


def measure_backend(device: int | None, best: KernelConfig, seconds: float) -> float:
    with OpenCLBackend(device, best) as backend:
        return measure_hashrate(backend, REPEATS * seconds)


def measure_cpu(seconds: float) -> dict[str, Any]:
    cores = available_cores()
    one_core = midstate_rate(REPEATS * seconds)
    by_processes = []
    for processes in sorted({1, cores}):
        with CpuBackend(processes) as backend:
            rate = measure_hashrate(backend, REPEATS * seconds)
        by_processes.append({"processes": processes, "hashrate": rate})
    single = by_processes[0]["hashrate"]
    for row in by_processes:
        row["efficiency"] = row["hashrate"] / (row["processes"] * single)
    return {"midstate_rate_one_core": one_core, "cores": cores, "by_processes": by_processes}


def run(device: int | None, seconds: float) -> dict[str, Any]:
    started = time.perf_counter()
    load = os.getloadavg()[0]
    cores = available_cores()
    compressions = sha256_compressions_per_second(REPEATS * seconds)
    figure = sha256_figure(compressions, cores)
    report: dict[str, Any] = {
        "benchmark": "mining",
        "python": platform.python_version(),
        "load_average": load,
        "yardstick": {
            "compressions_per_second": compressions,
            "cores": cores,
            "sha256_figure": figure,
        },
    }
    try:
        info, _ = pick_device(device)
    except BackendUnavailableError as exc:
        report["opencl"] = {"error": str(exc)}
    else:
        widths = measure_widths(device, seconds)
        best_row = max(widths, key=lambda row: row["hashrate"])
        best = config_for(best_row["vector"], best_row["portable_ops"])
        launches = measure_launches(device, best, seconds)
        fastest = max(launches["by_global"], key=lambda row: row["hashrate"])
        best = config_for(best.vector, best.portable_ops, fastest["global_size"])
        backend_rate = measure_backend(device, best, seconds)
        report["opencl"] = {
            "device": info.label,
            "build": build_times(device, best.vector),
            "widths": widths,
            **launches,
            "best": {
                "vector": best.vector,
                "portable_ops": best.portable_ops,
                "global_size": best.global_size,
                "kernel_hashrate": fastest["hashrate"],
            },
            "backend_hashrate": backend_rate,
            "ratio": backend_rate / figure,
        }
    cpu = measure_cpu(seconds)
    all_cores = cpu["by_processes"][-1]
    cpu["ratio"] = all_cores["hashrate"] / figure
    cpu["ratio_to_reference"] = all_cores["hashrate"] / (cores * cpu["midstate_rate_one_core"])
    report["cpu"] = cpu
    report["seconds"] = time.perf_counter() - started
    return report


def print_table(report: dict[str, Any]) -> None:
    yardstick = report["yardstick"]
    figure = yardstick["sha256_figure"]

    def rate(value: float) -> str:
        return f"{format_rate(value):>10} {value / figure:5.2f}x"

    def line(label: str, *cells: str) -> None:
        print(f"  {label:<46}" + "   ".join(cells))

    print(
        f"SHA-256 figure {format_rate(figure)}: {yardstick['compressions_per_second'] / 1e6:.1f} "
        f"M compressions/s on one core x {yardstick['cores']} cores / 2 per nonce; "
        "the x ratios below are to this figure"
    )
    opencl = report["opencl"]
    if "error" in opencl:
        print(f"\nOpenCL: {opencl['error']}")
    else:
        print(f"\nOpenCL device: {opencl['device']}")
        build = opencl["build"]
        print(f"kernel build, vector {build['vector']}")
        line("", "   build s", "first launch s")
        for kind in ("cold", "cached"):
            times = build[kind]
            line(kind, f"{times['build_s']:>10.2f}", f"{times['first_launch_s']:>14.2f}")
        print(f"vector width, at {GLOBAL_SIZE:,} work-items x {LOCAL_SIZE}")
        line("", "    builtins      ", "   portable ops")
        for vector in VECTOR_WIDTHS:
            pair = sorted(
                (r for r in opencl["widths"] if r["vector"] == vector),
                key=lambda r: r["portable_ops"],
            )
            line(f"uint{vector if vector > 1 else ''}", *(rate(r["hashrate"]) for r in pair))
        best = opencl["best"]
        ops = "portable ops" if best["portable_ops"] else "builtins"
        print(f"work sizes, vector {best['vector']} with {ops}")
        for row in opencl["by_global"]:
            label = f"{row['global_size']:,} work-items ({row['nonces_per_launch']:,} nonces)"
            line(label, rate(row["hashrate"]))
        for row in opencl["by_local"]:
            line(f"{row['local_size']} work-items per group", rate(row["hashrate"]))
        line("OpenCL backend end to end (search, re-check)", rate(opencl["backend_hashrate"]))
    cpu = report["cpu"]
    print("CPU")
    line("one core's hashlib midstate loop", rate(cpu["midstate_rate_one_core"]))
    for row in cpu["by_processes"]:
        noun = "process" if row["processes"] == 1 else "processes"
        line(
            f"CPU backend, {row['processes']} {noun}",
            rate(row["hashrate"]),
            f"efficiency {row['efficiency']:.2f}",
        )
    line("CPU backend / (cores x one core's loop)", f"{cpu['ratio_to_reference']:>16.2f}")
    print(
        f"\n{report['seconds']:.0f} s; load average before the run {report['load_average']:.2f} "
        f"on {yardstick['cores']} cores"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", type=int, help="OpenCL device number (default: the default)")
    parser.add_argument("--seconds", type=float, default=1.0, help="per timed window")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--probe-build", type=int, metavar="VECTOR", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe_build is not None:
        print(json.dumps(probe_build(args.device, args.probe_build)))
        return
    report = run(args.device, args.seconds)
    if args.json:
        print(json.dumps(report))
    else:
        print_table(report)


if __name__ == "__main__":
    main()
