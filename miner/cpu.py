"""The CPU backend: hashlib's SHA-256 in one worker process per core.

Each nonce costs a copy of the first block's hashlib state (the midstate), one update with the
last 16 header bytes and one SHA-256 of the 32-byte digest: the same two compressions a
kernel spends, at whatever speed this machine's OpenSSL reaches (SHA-NI where there is one).
The per-nonce loop is interpreted Python, which is why the work is spread over processes (the
GIL would serialise threads) and why the OpenCL backend, when it works, is much faster.

The pool is started once and reused for every search; worker processes are *spawned* (not
forked), so they are safe to start from a program that runs threads or an event loop, and they
ignore SIGINT so that Ctrl-C reaches only the parent, which then shuts them down. Ranges too
small to be worth a round trip to the workers are searched in the calling process.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import signal
import time
from collections.abc import Iterable
from concurrent.futures import Future, ProcessPoolExecutor

from miner.backend import Backend

INLINE_COUNT = 1 << 14
"""Ranges up to this size are searched in the calling process (a few milliseconds)."""
PIECES_PER_WORKER = 4
"""Each range is cut into at least this many pieces per worker, so a worker slowed by other
load does not hold up the whole search."""
MIN_PIECE = 1 << 15
MAX_PIECE = 1 << 20
"""About half a second of one worker: an interrupted search stops within that."""
SECONDS_PER_CALL = 0.25
"""What :attr:`CpuBackend.preferred_count` aims for."""
_INITIAL_RATE_PER_WORKER = 1.5e6
"""A rough single-core hashlib rate used until the first search measures the real one."""


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS reports one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def scan(header: bytes, target: int, start: int, stop: int) -> list[int]:
    """Nonces in ``[start, stop)`` whose SHA-256d is at most ``target``: the per-nonce loop.

    Only the hash's most significant byte is looked at first (digest byte 31, the top of the
    little-endian number), so almost every nonce is rejected without building an integer.
    """
    first_block = hashlib.sha256(header[:64])
    copy = first_block.copy
    sha256 = hashlib.sha256
    tail = header[64:76]
    top_byte = target >> 248
    hits = []
    for nonce in range(start, stop):
        inner = copy()
        inner.update(tail + nonce.to_bytes(4, "little"))
        digest = sha256(inner.digest()).digest()
        if digest[31] <= top_byte and int.from_bytes(digest, "little") <= target:
            hits.append(nonce)
    return hits


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def cpu_model() -> str:
    """The CPU's marketing name where the OS tells it, for ``device`` descriptions."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "CPU"


class CpuBackend(Backend):
    """Nonce search on ``threads`` worker processes (default: one per available core)."""

    name = "cpu"

    def __init__(self, threads: int | None = None) -> None:
        super().__init__()
        self.threads = threads if threads is not None else available_cores()
        if self.threads < 1:
            raise ValueError(f"threads must be at least 1, got {self.threads}")
        self._pool = ProcessPoolExecutor(
            max_workers=self.threads,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_ignore_sigint,
        )
        self._rate = _INITIAL_RATE_PER_WORKER * self.threads
        self._model = cpu_model()

    @property
    def device(self) -> str:
        noun = "process" if self.threads == 1 else "processes"
        return f"{self.threads} {noun} on {self._model}"

    @property
    def preferred_count(self) -> int:
        return max(INLINE_COUNT, int(self._rate * SECONDS_PER_CALL))

    def _candidates(self, header: bytes, target: int, start: int, count: int) -> Iterable[int]:
        if count <= INLINE_COUNT:
            return scan(header, target, start, start + count)
        started = time.perf_counter()
        piece = min(MAX_PIECE, max(MIN_PIECE, -(-count // (self.threads * PIECES_PER_WORKER))))
        futures: list[Future[list[int]]] = [
            self._pool.submit(scan, header, target, first, min(first + piece, start + count))
            for first in range(start, start + count, piece)
        ]
        try:
            hits = [nonce for future in futures for nonce in future.result()]
        finally:
            for future in futures:
                future.cancel()
        if count >= self.threads * MIN_PIECE:  # smaller searches mostly time the round trip
            self._rate = count / max(time.perf_counter() - started, 1e-9)
        return hits

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
