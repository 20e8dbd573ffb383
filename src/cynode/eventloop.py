"""The event loop a serving cynode process runs on.

uvloop rather than asyncio's default loop (the one uvicorn itself picks when it owns the loop):
with every role's I/O (HTTP, PostgreSQL, the Worker API) on one loop, it served 7-30% more
authenticated task reads per second in ``scripts/bench/gateway_throughput.py`` (runs on one 2-core
machine). Benchmarks that run roles in their own process use it too, so they measure what
``cynode serve`` ships.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import uvloop

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` to completion on a new uvloop event loop, as ``asyncio.run`` would."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)
