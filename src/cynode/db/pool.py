"""The shared async connection pool the orchestrator and gateway roles use."""

from __future__ import annotations

from typing import TypeAlias

from psycopg import AsyncConnection
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

Pool: TypeAlias = AsyncConnectionPool[AsyncConnection[DictRow]]
"""Connections yield rows as dicts keyed by column name."""


async def open_pool(dsn: str, *, max_size: int = 10) -> Pool:
    """Open a pool of autocommit connections; repositories open transactions explicitly."""
    pool: Pool = AsyncConnectionPool(
        dsn,
        connection_class=AsyncConnection[DictRow],
        min_size=1,
        max_size=max_size,
        open=False,
        kwargs={"autocommit": True, "row_factory": dict_row},
        name="cynode",
    )
    await pool.open(wait=True, timeout=30)
    return pool
