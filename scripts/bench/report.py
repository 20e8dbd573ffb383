"""What every benchmark here shares: its command line, a private database, and how it prints a
measured-vs-baseline ratio."""

from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

from cynode.db.embedded import EmbeddedPostgres
from cynode.sandbox import DEFAULT_SANDBOX_IMAGE


def sandbox_bench_arguments(doc: str | None, modes: Mapping[str, list[str]] | None = None) -> argparse.Namespace:
    """``--iterations`` (at least 1) and ``--image`` for a benchmark that runs sandbox jobs.

    With ``modes``, also ``--mode NAME`` (the first name is the default); ``args.mode`` is the list
    the chosen name stands for.
    """
    parser = argparse.ArgumentParser(description=doc.splitlines()[0] if doc else None)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--image", default=DEFAULT_SANDBOX_IMAGE)
    if modes:
        parser.add_argument("--mode", choices=list(modes), default=next(iter(modes)))
    args = parser.parse_args()
    if modes:
        args.mode = modes[args.mode]
    if args.iterations < 1:
        parser.error("--iterations must be at least 1")
    return args


def print_ratio(iterations: int, measured: tuple[str, list[float]], baseline: tuple[str, list[float]]) -> float:
    """Print both medians (and minimums) in milliseconds; return measured median / baseline median."""
    width = max(len(measured[0]), len(baseline[0])) + 2
    print(f"{'iterations:':{width}}{iterations}")
    for label, times in (measured, baseline):
        print(f"{label + ':':{width}}median {statistics.median(times) * 1000:.0f} ms, min {min(times) * 1000:.0f} ms")
    return statistics.median(measured[1]) / statistics.median(baseline[1])


@contextlib.contextmanager
def private_database(name: str) -> Iterator[tuple[Path, str]]:
    """A scratch directory and the DSN of a throwaway PostgreSQL inside it; both gone afterwards."""
    root = Path(tempfile.mkdtemp(prefix=f"cynode-bench-{name}-"))
    root.chmod(0o755)  # the postgres user must traverse it when run as root
    database = EmbeddedPostgres(root / "pg", fast_unsafe=True)
    try:
        yield root, database.start()
    finally:
        database.stop()
        shutil.rmtree(root, ignore_errors=True)
