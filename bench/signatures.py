"""Signature throughput of the two secp256k1 backends, side by side.

Measures, on one core, signs per second and signature checks per second for libsecp256k1
(coincurve) and pure-Python ecdsa, and their ratio. Checks are timed twice: with public keys
already parsed (the LRU in node.core.crypto hits, as when the same senders come back) and with
more distinct keys than the cache holds (every check parses its key, as for a block of strangers).

Each figure is the median of several rounds; rounds of the two backends are interleaved so a
noisy machine slows both alike, which keeps the ratio honest even when absolute numbers wobble.

    python bench/signatures.py              # human table, about 4 seconds
    python bench/signatures.py --json       # one JSON object
    python bench/signatures.py --seconds 20 # longer, steadier
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

# Run from a checkout without installing: put the repository root first on the path.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from node.core import crypto
from node.core.crypto import Backend, PrivateKey

ROUNDS = 5
WARM_KEYS = 64  # well inside the public-key cache
COLD_KEYS = crypto.PUBKEY_CACHE_SIZE + 256  # cycled in order, so every lookup misses the LRU
OPERATIONS = ("sign", "verify_warm", "verify_cold")
LABELS = {
    "sign": "sign",
    "verify_warm": "verify, key cached",
    "verify_cold": "verify, new key",
}


@dataclass(frozen=True)
class Case:
    pubkey: bytes
    digest: bytes
    signature: bytes
    key: PrivateKey


def make_cases(count: int, label: bytes) -> list[Case]:
    """``count`` keys, digests and signatures, made with the fastest backend.

    Both backends produce identical signatures, so these serve either one.
    """
    cases = []
    for index in range(count):
        key = PrivateKey.from_seed(label + index.to_bytes(4, "big"))
        digest = hashlib.sha256(b"bench" + index.to_bytes(4, "big")).digest()
        cases.append(Case(key.public_key, digest, key.sign(digest), key))
    return cases


def rate(operation: Callable[[], object], budget: float) -> float:
    """Calls of ``operation`` per second over ``budget`` seconds."""
    count = 0
    start = time.perf_counter()
    deadline = start + budget
    while True:
        # Check the clock every few calls: cheap next to 30 µs operations, fine for 1 ms ones.
        for _ in range(8):
            operation()
        count += 8
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - start)


def operation_for(
    name: str, backend: Backend, warm: list[Case], cold: list[Case]
) -> Callable[[], object]:
    """One timed call; each call takes the next case, continuing across rounds.

    Continuing matters for the cold row: cycling in order through more keys than the LRU holds
    makes every lookup a miss, but restarting at the first key each round would find the keys
    the previous round left in the cache.
    """
    verify = crypto.verify
    indices = itertools.count()
    if name == "sign":

        def sign() -> object:
            case = warm[next(indices) % len(warm)]
            return case.key.sign(case.digest, backend)

        return sign
    cases = warm if name == "verify_warm" else cold

    def check() -> object:
        case = cases[next(indices) % len(cases)]
        if not verify(case.pubkey, case.digest, case.signature, backend):
            raise AssertionError("a valid signature failed to verify: the benchmark is wrong")
        return True

    return check


def measure(seconds: float) -> dict[str, dict[str, float]]:
    backends = crypto.available_backends()
    warm = make_cases(WARM_KEYS, b"warm")
    cold = make_cases(COLD_KEYS, b"cold")
    budget = seconds / (ROUNDS * len(backends) * len(OPERATIONS))
    operations = {
        (backend, name): operation_for(name, backend, warm, cold)
        for backend in backends
        for name in OPERATIONS
    }
    # Sign once with every warm key on every backend outside the timing: the ecdsa backend
    # builds and keeps a signing-key object per private key on first use.
    for backend in backends:
        for case in warm:
            case.key.sign(case.digest, backend)
    samples: dict[tuple[Backend, str], list[float]] = {key: [] for key in operations}
    for _ in range(ROUNDS):
        for name in OPERATIONS:
            for backend in backends:
                samples[backend, name].append(rate(operations[backend, name], budget))
    return {
        backend.value: {name: statistics.median(samples[backend, name]) for name in OPERATIONS}
        for backend in backends
    }


def version_of(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--seconds", type=float, default=4.0, help="total time budget for the timed rounds"
    )
    args = parser.parse_args(argv)
    if args.seconds <= 0:
        parser.error("--seconds must be positive")

    results = measure(args.seconds)
    fast, slow = Backend.COINCURVE.value, Backend.ECDSA.value
    ratios = (
        {name: results[fast][name] / results[slow][name] for name in OPERATIONS}
        if fast in results and slow in results
        else {}
    )
    report = {
        "benchmark": "signatures",
        "unit": "operations per second, one core, median of rounds",
        "rounds": ROUNDS,
        "seconds": args.seconds,
        "results": results,
        "ratio_coincurve_over_ecdsa": ratios,
        "python": platform.python_version(),
        "coincurve": version_of("coincurve"),
        "ecdsa": version_of("ecdsa"),
        "pubkey_cache_size": crypto.PUBKEY_CACHE_SIZE,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0

    columns = list(results)
    header = f"{'operation':<20}" + "".join(f"{name + ' /s':>16}" for name in columns)
    if ratios:
        header += f"{'ratio':>10}"
    print(
        f"signatures: {ROUNDS} rounds, median, one core, {args.seconds:g} s "
        f"(Python {report['python']}, coincurve {report['coincurve']}, ecdsa {report['ecdsa']})"
    )
    print(header)
    print("-" * len(header))
    for name in OPERATIONS:
        line = f"{LABELS[name]:<20}" + "".join(f"{results[c][name]:>16,.0f}" for c in columns)
        if ratios:
            line += f"{ratios[name]:>9.1f}x"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
