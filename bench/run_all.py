"""Run every benchmark in bench/ and print one table (``make bench``).

Each benchmark is a script ``bench/NAME.py`` that prints one JSON object with ``--json``; this
runner starts each in its own process (so one's memory and worker pools do not disturb the next),
flattens the numbers of its object into ``path = value`` rows, and prints them under the
benchmark's name with how long it took. ``--json`` prints ``{"NAME": object, ...}`` instead.

Benchmarks, not timed tests: run them on a quiet machine, and compare ratios measured in one run.

    python bench/run_all.py [--only NAME[,NAME...]] [--json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
SKIP = {"run_all"}


def discover() -> list[str]:
    return sorted(p.stem for p in BENCH_DIR.glob("*.py") if p.stem not in SKIP and p.stem[0] != "_")


def flatten(obj: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Numeric (and short string) leaves of a JSON object as dotted paths."""
    rows: list[tuple[str, Any]] = []
    if isinstance(obj, dict):
        for key, value in obj.items():
            rows += flatten(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(obj, list):
        for n, value in enumerate(obj):
            rows += flatten(value, f"{prefix}[{n}]")
    elif obj is None or isinstance(obj, int | float) or (isinstance(obj, str) and len(obj) <= 60):
        rows.append((prefix, obj))
    return rows


def show(value: Any) -> str:
    if isinstance(value, float):
        if value == 0 or 0.001 <= abs(value) < 1e7:
            return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.0f}"
        return f"{value:.3e}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def run(name: str) -> tuple[float, dict[str, Any] | None, str]:
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(BENCH_DIR / f"{name}.py"), "--json"],
        check=False,
        capture_output=True,
        text=True,
    )
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        return elapsed, None, proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed"
    try:
        return elapsed, json.loads(proc.stdout), ""
    except json.JSONDecodeError as exc:
        return elapsed, None, f"did not print one JSON object: {exc}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated benchmark names")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    names = discover()
    if args.only:
        wanted = args.only.split(",")
        unknown = sorted(set(wanted) - set(names))
        if unknown:
            parser.error(f"unknown benchmark(s) {', '.join(unknown)}; have {', '.join(names)}")
        names = [n for n in names if n in wanted]
    results: dict[str, Any] = {}
    failures = 0
    for name in names:
        if not args.json:
            print(f"== {name} (bench/{name}.py) ...", flush=True)
        elapsed, obj, error = run(name)
        results[name] = obj if obj is not None else {"error": error}
        if obj is None:
            failures += 1
        if args.json:
            continue
        if obj is None:
            print(f"   FAILED after {elapsed:.1f} s: {error}")
            continue
        rows = flatten(obj)
        width = max((len(path) for path, _ in rows), default=10)
        for path, value in rows:
            print(f"   {path:<{width}}  {show(value)}")
        print(f"   ({elapsed:.1f} s)")
    if args.json:
        print(json.dumps(results, indent=2))
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
