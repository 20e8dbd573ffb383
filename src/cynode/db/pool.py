"""The shared async connection pool the orchestrator and gateway roles use."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeAlias

from psycopg import AsyncConnection
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

Connection: TypeAlias = AsyncConnection[DictRow]
"""A pooled connection: rows come as dicts keyed by column name."""
Pool: TypeAlias = AsyncConnectionPool[Connection]


async def open_pool(
    dsn: str,
    *,
    max_size: int = 10,
    configure: Callable[[Connection], Awaitable[None]] | None = None,
) -> Pool:
    """Open a pool of autocommit connections; repositories open transactions explicitly.

    ``configure`` runs once on every new connection before the pool hands it out.
    """
    pool: Pool = AsyncConnectionPool(
        dsn,
        connection_class=Connection,
        configure=configure,
        # Enough for the background services that all start at once (dispatch, retention, the node
        # manager): a task that has to wait for the pool to grow can lose a cancel on Python 3.11
        # (see cynode.cancellation), and every request that waits pays a connection set-up.
        min_size=min(4, max_size),
        max_size=max_size,
        open=False,
        kwargs={"autocommit": True, "row_factory": dict_row},
        name="cynode",
    )
    await pool.open(wait=True, timeout=30)
    return pool


def dsn_of(pool: Pool) -> str:
    """The DSN ``pool`` connects with, for a long-lived connection of its own (e.g. for ``LISTEN``)."""
    conninfo = pool.conninfo
    if not isinstance(conninfo, str):
        raise TypeError("the pool was not opened with a plain DSN")
    return conninfo
