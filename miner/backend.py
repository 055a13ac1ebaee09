"""The one interface every nonce-search backend implements, and the checks they all share.

A backend is asked one question: which nonces in ``[start, start + count)`` give an 80-byte
header a SHA-256d at or below a target? It answers with *every* such nonce, in ascending order.

Backends only propose candidates (:meth:`Backend._candidates`); :meth:`Backend.search`, written
once here, validates the arguments and re-checks every candidate with the consensus hash
(``node.core.hashing.sha256d``) before a nonce is reported. A kernel bug or a faulty device can
therefore only make the miner slower or make it miss a block, never make it claim a false one.
Candidates that are not even near the target are counted as *hardware errors*, as the classic
miners do, and logged.

The interface is deliberately small and synchronous: a search of a bounded range. Mining loops
(in-process or against a node over RPC) call it repeatedly with ranges of about
:attr:`Backend.preferred_count` nonces, so that new work is picked up between calls, and run it
in a worker thread when they live on an event loop. A backend serves one search at a time.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from node.core.errors import ForklabError
from node.core.hashing import hash_hex, sha256d

log = logging.getLogger(__name__)

HEADER_SIZE = 80
NONCE_OFFSET = 76
NONCE_SPACE = 1 << 32
"""Nonces are u32: a search range must lie within [0, 2^32)."""
MAX_TARGET = (1 << 256) - 1


class BackendUnavailableError(ForklabError):
    """A backend cannot run here: no OpenCL runtime or platform, a bad device, a build error.

    The message is one sentence a user can act on; callers fall back to the CPU backend.
    """


@dataclass(frozen=True)
class Found:
    """A nonce that meets the target, with the header's SHA-256d at that nonce."""

    nonce: int
    hash: bytes
    """SHA-256d of the header with this nonce, internal byte order (as ``BlockHeader.hash``)."""

    @property
    def hash_hex(self) -> str:
        return hash_hex(self.hash)


def with_nonce(header: bytes, nonce: int) -> bytes:
    return header[:NONCE_OFFSET] + nonce.to_bytes(4, "little")


def check_search_args(header: bytes, target: int, start: int, count: int) -> None:
    """Raise ValueError, with the reason, unless the arguments describe a valid search."""
    if len(header) != HEADER_SIZE:
        raise ValueError(f"a block header is {HEADER_SIZE} bytes, got {len(header)}")
    if not 0 <= target <= MAX_TARGET:
        raise ValueError("the target must be between 0 and 2^256 - 1")
    if start < 0 or count < 0:
        raise ValueError(f"start and count must not be negative (start {start}, count {count})")
    if start + count > NONCE_SPACE:
        raise ValueError(
            f"nonces are 32-bit: start {start} + count {count} = {start + count} exceeds 2^32; "
            "roll another header field (time or extranonce) to search further"
        )


class Backend(ABC):
    """A nonce searcher; use as a context manager or call :meth:`close` when done."""

    name: str
    """Short backend name, as given to ``--backend``: ``"opencl"`` or ``"cpu"``."""

    def __init__(self) -> None:
        self.hardware_errors = 0
        """Candidates reported by the backend whose hash was not even near the target."""

    @property
    @abstractmethod
    def device(self) -> str:
        """What the backend runs on, for people: a device name or a CPU description."""

    @property
    @abstractmethod
    def preferred_count(self) -> int:
        """A range size that keeps this backend busy for a fraction of a second per call."""

    @abstractmethod
    def _candidates(self, header: bytes, target: int, start: int, count: int) -> Iterable[int]:
        """Nonces in the range that may meet the target: a superset of the ones that do.

        Arguments are already validated. Near misses (the top 32 bits of hash and target equal)
        are expected; anything else that fails the host check counts as a hardware error.
        """

    def search(self, header: bytes, target: int, start: int, count: int) -> list[Found]:
        """Every nonce in ``[start, start + count)`` whose header hash is at most ``target``.

        The nonce field of ``header`` (bytes 76..80) is ignored. Raises ValueError for a header
        that is not 80 bytes, a target outside [0, 2^256) or a range leaving [0, 2^32).
        """
        check_search_args(header, target, start, count)
        if count == 0:
            return []
        found: dict[int, Found] = {}
        for nonce in self._candidates(header, target, start, count):
            if not start <= nonce < start + count:
                self._hardware_error(nonce, "outside the searched range")
                continue
            digest = sha256d(with_nonce(header, nonce))
            value = int.from_bytes(digest, "little")
            if value <= target:
                found[nonce] = Found(nonce, digest)
            elif value >> 224 > target >> 224:
                self._hardware_error(nonce, f"hash {hash_hex(digest)} is above the target")
        return [found[nonce] for nonce in sorted(found)]

    def _hardware_error(self, nonce: int, why: str) -> None:
        self.hardware_errors += 1
        log.warning("%s backend reported nonce %d, %s (hardware error)", self.name, nonce, why)

    @abstractmethod
    def close(self) -> None:
        """Release the device or worker processes; the backend cannot search afterwards."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
