"""Hashrates: measuring backends, the machine's own SHA-256 figure, and showing rates in SI units.

A hashrate alone says little on a shared two-core machine; a ratio measured in the same run
says more. The yardstick is the *SHA-256 figure*: how many header nonces per second this
machine's hashlib (OpenSSL, with SHA-NI where present) could try if every core did nothing but
compress, i.e. one core's compressions per second on a long message, times the cores, divided by
the two compressions a nonce costs after the midstate. The CPU backend is also compared with the
rate its own per-nonce loop reaches on one core, times the cores: its parallel efficiency.

This module only measures; it decides nothing (see :mod:`miner.factory`).
"""

from __future__ import annotations

import hashlib
import itertools
import statistics
import time
from collections.abc import Callable

from miner.backend import NONCE_SPACE, Backend
from miner.cpu import scan

COMPRESSIONS_PER_NONCE = 2
"""After the midstate: one for the header's second block, one for the 32-byte digest."""
_LONG_MESSAGE = bytes(1 << 22)
_BLOCK = 64
# Any fixed header times the same; searched at target 0, so that finds (and the host work they
# cause) are as rare as in real mining.
TIMING_HEADER = bytes.fromhex("01000000" + "11" * 32 + "22" * 32 + "495fab29ffff001d00000000")

_SI_PREFIXES = ("", "k", "M", "G", "T", "P", "E")


def format_rate(rate: float) -> str:
    """A rate in hashes per second with an SI prefix and three significant digits: 46.6 MH/s."""
    prefix = 0
    while abs(rate) >= 999.5 and prefix < len(_SI_PREFIXES) - 1:
        rate /= 1000
        prefix += 1
    digits = 0 if abs(rate) >= 99.95 else 1 if abs(rate) >= 9.995 else 2
    return f"{rate:.{digits}f} {_SI_PREFIXES[prefix]}H/s"


WINDOWS = 3
"""Rates are the median of this many timed windows: one spike of other load moves none of them."""


def median_rate(step: Callable[[], int], seconds: float, windows: int = WINDOWS) -> float:
    """Median units per second of ``step`` (which returns the units it did) over ``windows``
    windows that share ``seconds``; each window runs ``step`` at least once."""
    rates = []
    for _ in range(windows):
        done = 0
        started = time.perf_counter()
        while True:
            done += step()
            elapsed = time.perf_counter() - started
            if elapsed >= seconds / windows:
                break
        rates.append(done / elapsed)
    return statistics.median(rates)


def sha256_compressions_per_second(seconds: float) -> float:
    """SHA-256 compressions per second of hashlib on one core, over a 4 MiB message."""

    def step() -> int:
        hashlib.sha256(_LONG_MESSAGE).digest()
        return len(_LONG_MESSAGE) // _BLOCK

    return median_rate(step, seconds)


def sha256_figure(compressions_per_second: float, cores: int) -> float:
    return compressions_per_second * cores / COMPRESSIONS_PER_NONCE


def midstate_rate(seconds: float) -> float:
    """Nonces per second of the CPU backend's per-nonce loop on one core, in this process."""
    chunk = 1 << 15
    position = itertools.count(0, chunk)

    def step() -> int:
        first = next(position) % NONCE_SPACE
        scan(TIMING_HEADER, 0, first, first + chunk)
        return chunk

    return median_rate(step, seconds)


def measure_hashrate(backend: Backend, seconds: float) -> float:
    """Nonces per second of ``backend`` over about ``seconds``, after one warm-up call.

    The warm-up absorbs one-time costs (starting worker processes, the first launch of a
    kernel) that a miner pays once, not per search.
    """
    count = backend.preferred_count
    backend.search(TIMING_HEADER, 0, 0, count)
    position = itertools.count(count, count)

    def step() -> int:
        start = next(position) % NONCE_SPACE
        done = min(count, NONCE_SPACE - start)
        backend.search(TIMING_HEADER, 0, start, done)
        return done

    return median_rate(step, seconds)
