"""Specification of device tuning, its cache file, and the choice of backend.

* The cache lives where the user's environment says (``FORKLAB_CACHE_DIR``, then
  ``XDG_CACHE_HOME``, then ``~/.cache``), keeps one entry per device identity, survives
  corrupt or foreign files by ignoring them, and a new driver, kernel or build option is a
  new identity.
* Tuning on the real device picks one of the measured widths and a launch size that is a
  power of two; a backend opened afterwards uses the remembered result without measuring again.
* ``open_backend`` never fails for OpenCL reasons: a bad device number becomes one logged
  sentence and the CPU backend; ``auto`` prefers the device that measured faster.

The subprocess cases (no OpenCL runtime at all, a kernel that does not build) are in
``test_miner_cli.py``, where they are seen as a user sees them.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from miner import BackendUnavailableError, CpuBackend, KernelConfig, OpenCLBackend, open_backend
from miner.opencl import EXTRA_OPTIONS_ENV, DeviceInfo, pick_device
from miner.tuning import (
    CACHE_DIR_ENV,
    CACHE_FILE,
    MAX_LAUNCH_NONCES,
    MIN_LAUNCH_NONCES,
    Tuning,
    TuningCache,
    cache_dir,
    launch_items,
    tune,
)

DEVICE = DeviceInfo(
    index=0,
    platform="Example Platform",
    name="example device",
    kind="GPU",
    compute_units=8,
    max_work_group_size=1024,
    preferred_vector_width=1,
    version="OpenCL 3.0",
    driver_version="1.0",
)
TUNING = Tuning(KernelConfig(vector=4, local_size=128, global_size=1 << 16), 1.5e8)


def usable_device() -> DeviceInfo:
    try:
        return pick_device(None)[0]
    except BackendUnavailableError as exc:
        if os.environ.get("FORKLAB_REQUIRE_OPENCL"):
            pytest.fail(f"OpenCL is required here but not usable: {exc}")
        pytest.skip(f"no usable OpenCL here: {exc}")


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own cache directory, never the user's."""
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(EXTRA_OPTIONS_ENV, raising=False)
    return tmp_path / "cache"


# -- where the cache lives


def test_the_cache_directory_follows_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "explicit"
    monkeypatch.delenv(CACHE_DIR_ENV)
    assert cache_dir() == tmp_path / "xdg" / "forklab"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "forklab"


def test_the_default_cache_file_is_in_the_cache_directory(private_cache: Path) -> None:
    assert TuningCache().path == private_cache / CACHE_FILE


# -- what the cache keeps


def test_a_tuning_result_is_remembered_per_device(private_cache: Path) -> None:
    cache = TuningCache()
    other = dataclasses.replace(DEVICE, name="another device")
    assert cache.get(DEVICE) is None
    cache.put(DEVICE, TUNING)
    assert TuningCache().get(DEVICE) == TUNING
    assert TuningCache().get(other) is None
    cache.put(other, dataclasses.replace(TUNING, hashrate=1.0))
    assert TuningCache().get(DEVICE) == TUNING
    entry = json.loads((private_cache / CACHE_FILE).read_text())["devices"][DEVICE.identity]
    assert entry["device"] == DEVICE.label


@pytest.mark.parametrize(
    "change",
    [
        {"driver_version": "1.1"},
        {"version": "OpenCL 2.0"},
        {"name": "example device 2"},
        {"platform": "Another Platform"},
    ],
)
def test_a_new_driver_or_device_is_a_new_identity(change: dict[str, str]) -> None:
    assert dataclasses.replace(DEVICE, **change).identity != DEVICE.identity


def test_extra_build_options_are_part_of_the_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    plain = DEVICE.identity
    monkeypatch.setenv(EXTRA_OPTIONS_ENV, "-D PORTABLE_OPS")
    assert DEVICE.identity != plain


@pytest.mark.parametrize(
    "content",
    [
        pytest.param("{not json", id="corrupt"),
        pytest.param(json.dumps({"format": 99, "devices": {}}), id="another-format"),
        pytest.param(json.dumps([1, 2, 3]), id="not-an-object"),
        pytest.param(json.dumps({"format": 1, "devices": []}), id="devices-not-an-object"),
    ],
)
def test_an_unusable_cache_file_counts_as_empty_and_is_rewritten(
    private_cache: Path, content: str
) -> None:
    private_cache.mkdir(parents=True)
    (private_cache / CACHE_FILE).write_text(content)
    cache = TuningCache()
    assert cache.get(DEVICE) is None
    cache.put(DEVICE, TUNING)
    assert TuningCache().get(DEVICE) == TUNING


@pytest.mark.parametrize(
    "entry",
    [
        pytest.param({"vector": 3}, id="impossible-width"),
        pytest.param({"global_size": 100}, id="global-not-a-multiple-of-local"),
        pytest.param({"hashrate": "fast"}, id="hashrate-not-a-number"),
        pytest.param({"local_size": None}, id="missing-value"),
    ],
)
def test_an_entry_with_impossible_values_is_ignored(
    private_cache: Path, entry: dict[str, object]
) -> None:
    cache = TuningCache()
    cache.put(DEVICE, TUNING)
    data = json.loads(cache.path.read_text())
    data["devices"][DEVICE.identity].update(entry)
    cache.path.write_text(json.dumps(data))
    assert cache.get(DEVICE) is None


def test_an_unwritable_cache_is_a_warning_not_a_failure(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    cache = TuningCache(blocker / "sub" / CACHE_FILE)
    with caplog.at_level(logging.WARNING):
        cache.put(DEVICE, TUNING)
    assert "could not write the tuning cache" in caplog.text
    assert cache.get(DEVICE) is None


# -- launch sizes


@pytest.mark.parametrize(
    ("rate", "vector", "nonces"),
    [
        (60e6, 16, 1 << 22),  # PoCL on two AVX-512 cores: about 0.07 s per launch
        (5e9, 1, 1 << 28),  # a large GPU, capped
        (1e3, 4, MIN_LAUNCH_NONCES),  # a very slow device, floored
    ],
)
def test_launches_last_about_a_tenth_of_a_second_in_powers_of_two(
    rate: float, vector: int, nonces: int
) -> None:
    config = KernelConfig(vector, 64, 64)
    assert launch_items(rate, config) * vector == nonces
    assert MIN_LAUNCH_NONCES <= nonces <= MAX_LAUNCH_NONCES


# -- tuning a real device


@pytest.fixture(scope="module")
def tuned() -> Iterator[tuple[DeviceInfo, Tuning]]:
    device = usable_device()
    yield device, tune(device, widths=(4, 16), seconds=0.1)


@pytest.mark.opencl
def test_tuning_picks_a_measured_width_and_a_whole_launch(tuned: tuple[DeviceInfo, Tuning]) -> None:
    device, tuning = tuned
    config = tuning.config
    assert config.vector in (4, 16)
    assert tuning.hashrate > 0
    assert config.local_size <= device.max_work_group_size
    assert config.global_size % config.local_size == 0
    launch = config.nonces_per_launch
    assert launch & (launch - 1) == 0, "a power of two, so launches tile the nonce space"


@pytest.mark.opencl
def test_a_remembered_tuning_is_used_without_measuring_again(
    tuned: tuple[DeviceInfo, Tuning], caplog: pytest.LogCaptureFixture
) -> None:
    device, tuning = tuned
    TuningCache().put(device, tuning)
    with caplog.at_level(logging.INFO), OpenCLBackend(device.index) as backend:
        assert backend.config == tuning.config
        assert backend.measured_rate == tuning.hashrate
    assert "measuring" not in caplog.text


# -- choosing a backend


@pytest.mark.opencl
def test_auto_prefers_the_faster_backend(tuned: tuple[DeviceInfo, Tuning]) -> None:
    device, tuning = tuned
    # The remembered rate is what auto compares with the CPU estimate (measured each time).
    TuningCache().put(device, dataclasses.replace(tuning, hashrate=1e15))
    with open_backend("auto", threads=1) as backend:
        assert isinstance(backend, OpenCLBackend)
    TuningCache().put(device, dataclasses.replace(tuning, hashrate=1.0))
    with open_backend("auto", threads=1) as backend:
        assert isinstance(backend, CpuBackend)


@pytest.mark.opencl
def test_a_bad_device_number_is_one_sentence_and_the_cpu_backend(
    caplog: pytest.LogCaptureFixture,
) -> None:
    usable_device()
    with pytest.raises(BackendUnavailableError, match="there is no OpenCL device 99"):
        OpenCLBackend(99)
    with caplog.at_level(logging.INFO), open_backend("opencl", device=99, threads=1) as backend:
        assert isinstance(backend, CpuBackend)
    (record,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "there is no OpenCL device 99" in record.getMessage()
    assert record.getMessage().endswith("using the CPU backend instead")


def test_the_cpu_backend_is_there_when_asked_for() -> None:
    with open_backend("cpu", threads=1) as backend:
        assert isinstance(backend, CpuBackend)
        assert backend.threads == 1


def test_an_unknown_backend_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown backend"):
        open_backend("gpu")  # type: ignore[arg-type]
