"""Specification of ``python -m miner search | devices | bench``, run as a user runs them.

Every command runs in a subprocess with its own cache directory, and is judged by its exit
status, its JSON on stdout and its messages on stderr:

* ``search`` prints the nonces found and their hashes as JSON, on the OpenCL device and on the
  CPU, with the target taken from the header's bits unless one is given;
* wrong arguments are one line on stderr and exit status 2, never a traceback;
* when OpenCL cannot be used (no runtime at all, a bad device number, a kernel that does not
  build) the user reads one sentence saying why and still gets the CPU backend's answer;
* ``devices`` lists what OpenCL sees, or says there is nothing;
* ``bench --json`` prints exactly one JSON object whose ratios add up.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from miner import BackendUnavailableError
from miner.opencl import EXTRA_OPTIONS_ENV, pick_device
from miner.tuning import CACHE_DIR_ENV, CACHE_FILE, TuningCache, tune
from node.core.hashing import sha256d

REPO = Path(__file__).resolve().parents[1]

GENESIS = (
    "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b27ac7"
    "2c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d1dac2b7c"
)
GENESIS_NONCE = 2083236893
GENESIS_ID = "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f"
GENESIS_WINDOW = ["--start", str(GENESIS_NONCE - 3000), "--count", "5000"]
DIFFICULTY_1_TARGET = "00000000ffff" + "0" * 52


@pytest.fixture(scope="module")
def opencl_cache(tmp_path_factory: pytest.TempPathFactory) -> Path | None:
    """A cache directory where the default device is already tuned (briefly, at one width),
    so commands do not spend seconds measuring; None where there is no usable OpenCL."""
    directory = tmp_path_factory.mktemp("tuned")
    try:
        device, _ = pick_device(None)
    except BackendUnavailableError as exc:
        if os.environ.get("FORKLAB_REQUIRE_OPENCL"):
            pytest.fail(f"OpenCL is required here but not usable: {exc}")
        return None
    TuningCache(directory / CACHE_FILE).put(device, tune(device, widths=(16,), seconds=0.1))
    return directory


def run(
    *args: str, cache: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != EXTRA_OPTIONS_ENV}
    environment["PYTHONPATH"] = str(REPO)
    if cache is not None:
        environment[CACHE_DIR_ENV] = str(cache)
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "miner", *args],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def search_json(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def messages(result: subprocess.CompletedProcess[str]) -> list[str]:
    """What the user reads on stderr, minus the compiler's own chatter (PoCL prints it)."""
    return [line for line in result.stderr.splitlines() if line.startswith("forklab")]


# -- search


@pytest.mark.parametrize("backend", [pytest.param("opencl", marks=pytest.mark.opencl), "cpu"])
def test_search_finds_the_genesis_nonce_at_the_headers_own_target(
    backend: str, opencl_cache: Path | None, tmp_path: Path
) -> None:
    if backend == "opencl" and opencl_cache is None:
        pytest.skip("no usable OpenCL here")
    cache = opencl_cache or tmp_path
    data = search_json(
        run("search", "--header", GENESIS, *GENESIS_WINDOW, "--backend", backend, cache=cache)
    )
    assert data["backend"] == backend
    assert data["target"] == DIFFICULTY_1_TARGET
    assert (data["start"], data["count"]) == (GENESIS_NONCE - 3000, 5000)
    assert data["found"] == [{"nonce": GENESIS_NONCE, "hash": GENESIS_ID}]


def test_search_with_an_explicit_target_reports_every_hit(
    opencl_cache: Path | None, tmp_path: Path
) -> None:
    header = bytes(range(80))
    target = 0x3FFF << 240  # about one nonce in four
    data = search_json(
        run(
            "search",
            "--header",
            header.hex(),
            "--target",
            f"{target:x}",
            "--start",
            "0x100",
            "--count",
            "3000",
            cache=opencl_cache or tmp_path,
        )
    )
    expected = []
    for nonce in range(0x100, 0x100 + 3000):
        digest = sha256d(header[:76] + nonce.to_bytes(4, "little"))
        if int.from_bytes(digest, "little") <= target:
            expected.append({"nonce": nonce, "hash": digest[::-1].hex()})
    assert len(expected) > 500
    assert data["found"] == expected
    assert data["target"] == f"{target:064x}"


BAD_SEARCHES = {
    "header too short": (["--header", GENESIS[:-2], "--count", "1"], "80 bytes"),
    "header not hex": (["--header", "zz" * 80, "--count", "1"], "hex digits"),
    "target too long": (["--header", GENESIS, "--count", "1", "--target", "1" * 65], "64 hex"),
    "count past 2^32": (["--header", GENESIS, "--count", str(2**32 + 1)], "outside 0..2^32"),
    "range past 2^32": (
        ["--header", GENESIS, "--start", str(2**32 - 5), "--count", "6"],
        "exceeds 2^32",
    ),
    "bits without a target": (
        ["--header", GENESIS[:144] + "ffff8001" + GENESIS[152:], "--count", "1"],
        "encode no valid target",
    ),
    "no count": (["--header", GENESIS], "--count"),
}


@pytest.mark.parametrize("case", BAD_SEARCHES)
def test_wrong_arguments_are_one_line_and_status_2(case: str, tmp_path: Path) -> None:
    arguments, reason = BAD_SEARCHES[case]
    result = run("search", "--backend", "cpu", *arguments, cache=tmp_path)
    assert result.returncode == 2
    assert reason in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_no_command_is_a_usage_error() -> None:
    result = run()
    assert result.returncode == 2
    assert "usage" in result.stderr


# -- when OpenCL cannot be used


def test_without_any_opencl_runtime_search_says_so_once_and_uses_the_cpu(tmp_path: Path) -> None:
    empty_vendors = tmp_path / "no-icds"
    empty_vendors.mkdir()
    env = {"OCL_ICD_VENDORS": str(empty_vendors)}
    result = run(
        "search",
        "--header",
        GENESIS,
        *GENESIS_WINDOW,
        "--backend",
        "opencl",
        cache=tmp_path,
        env=env,
    )
    data = search_json(result)
    assert data["backend"] == "cpu"
    assert data["found"] == [{"nonce": GENESIS_NONCE, "hash": GENESIS_ID}]
    (message,) = messages(result)
    assert "no OpenCL platform found" in message
    assert message.endswith("using the CPU backend instead")

    devices = run("devices", env=env)
    assert devices.returncode == 0
    assert devices.stdout.startswith("No OpenCL device: no OpenCL platform found")
    assert run("devices", "--json", env=env).stdout.strip() == "[]"


@pytest.mark.opencl
def test_a_bad_device_number_says_so_once_and_uses_the_cpu(opencl_cache: Path | None) -> None:
    if opencl_cache is None:
        pytest.skip("no usable OpenCL here")
    result = run(
        "search",
        "--header",
        GENESIS,
        *GENESIS_WINDOW,
        "--backend",
        "opencl",
        "--device",
        "42",
        cache=opencl_cache,
    )
    assert search_json(result)["backend"] == "cpu"
    (message,) = messages(result)
    assert "there is no OpenCL device 42" in message


@pytest.mark.opencl
def test_a_kernel_that_does_not_build_says_why_and_uses_the_cpu(
    opencl_cache: Path | None, tmp_path: Path
) -> None:
    if opencl_cache is None:
        pytest.skip("no usable OpenCL here")
    # A deliberately broken build: the kernel refuses vector widths it does not know.
    env = {EXTRA_OPTIONS_ENV: "-D VECTOR=3"}
    result = run(
        "search",
        "--header",
        GENESIS,
        *GENESIS_WINDOW,
        "--backend",
        "opencl",
        cache=tmp_path,
        env=env,
    )
    data = search_json(result)
    assert data["backend"] == "cpu"
    assert data["found"] == [{"nonce": GENESIS_NONCE, "hash": GENESIS_ID}]
    failure = messages(result)[-1]
    assert "the OpenCL kernel does not build" in failure
    assert "VECTOR must be 1, 2, 4, 8 or 16" in failure
    assert failure.endswith("using the CPU backend instead")


# -- devices and bench


@pytest.mark.opencl
def test_devices_lists_what_opencl_sees(opencl_cache: Path | None) -> None:
    if opencl_cache is None:
        pytest.skip("no usable OpenCL here")
    listed = json.loads(run("devices", "--json").stdout)
    assert [d["index"] for d in listed] == list(range(len(listed)))
    assert all(d["name"] and d["platform"] and d["compute_units"] > 0 for d in listed)
    text = run("devices").stdout
    assert f"platform: {listed[0]['platform']}" in text
    assert f"device 0: {listed[0]['name']}" in text


def test_bench_json_is_one_object_whose_ratios_add_up(
    opencl_cache: Path | None, tmp_path: Path
) -> None:
    result = run("bench", "--json", "--seconds", "0.3", cache=opencl_cache or tmp_path)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    figure = data["sha256_figure"]
    assert figure == pytest.approx(data["compressions_per_second"] * data["cores"] / 2)
    cpu = data["backends"]["cpu"]
    assert cpu["hashrate"] > 0
    assert cpu["ratio"] == pytest.approx(cpu["hashrate"] / figure)
    assert cpu["ratio_to_reference"] == pytest.approx(cpu["hashrate"] / data["cpu_reference"])
    opencl = data["backends"]["opencl"]
    if opencl_cache is None:
        assert opencl["hashrate"] is None and opencl["error"]
    else:
        assert opencl["hashrate"] > 0
        assert opencl["ratio"] == pytest.approx(opencl["hashrate"] / figure)
        assert opencl["device"] == opencl["devices"][0]["device"]


def test_bench_prints_a_table_with_si_units(tmp_path: Path) -> None:
    result = run("bench", "--backend", "cpu", "--seconds", "0.2", cache=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "H/s" in result.stdout
    assert "SHA-256 figure:" in result.stdout
    assert "opencl" not in result.stdout
