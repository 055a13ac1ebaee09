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
import time

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


def sha256_compressions_per_second(seconds: float) -> float:
    """SHA-256 compressions per second of hashlib on one core, over a 4 MiB message."""
    done = 0
    started = time.perf_counter()
    while True:
        hashlib.sha256(_LONG_MESSAGE).digest()
        done += len(_LONG_MESSAGE) // _BLOCK
        elapsed = time.perf_counter() - started
        if elapsed >= seconds:
            return done / elapsed


def sha256_figure(compressions_per_second: float, cores: int) -> float:
    return compressions_per_second * cores / COMPRESSIONS_PER_NONCE


def midstate_rate(seconds: float) -> float:
    """Nonces per second of the CPU backend's per-nonce loop on one core, in this process."""
    done = 0
    chunk = 1 << 16
    started = time.perf_counter()
    while True:
        scan(TIMING_HEADER, 0, done, done + chunk)
        done += chunk
        elapsed = time.perf_counter() - started
        if elapsed >= seconds:
            return done / elapsed


def measure_hashrate(backend: Backend, seconds: float) -> float:
    """Nonces per second of ``backend`` over about ``seconds``, after one warm-up call.

    The warm-up absorbs one-time costs (starting worker processes, the first launch of a
    kernel) that a miner pays once, not per search.
    """
    count = backend.preferred_count
    backend.search(TIMING_HEADER, 0, 0, count)
    done = 0
    started = time.perf_counter()
    while True:
        start = done % NONCE_SPACE
        backend.search(TIMING_HEADER, 0, start, min(count, NONCE_SPACE - start))
        done += min(count, NONCE_SPACE - start)
        elapsed = time.perf_counter() - started
        if elapsed >= seconds:
            return done / elapsed
