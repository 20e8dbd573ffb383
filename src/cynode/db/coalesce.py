"""Concurrent reads of one kind folded into one query per round trip: :class:`Coalescer`.

Under load many requests want the same kind of row at once (clients polling their tasks, say).
Alone, each takes a pooled connection and pays the pool's and psycopg's Python work around its
one query, which costs the gateway more than the query itself. A coalescer keeps at most one batch
in flight and sends whatever arrived meanwhile as the next one. A lone read goes out at once, so
it waits no longer than it would alone, and every read is sent after its caller asked, so it sees
every write committed before the request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Final, Generic, TypeVar

from cynode.db.pool import Connection, Pool

Key = TypeVar("Key")
Value = TypeVar("Value")

MAX_BATCH: Final = 128
"""Reads per query; a longer queue goes out as several batches, one after another."""


class Coalescer(Generic[Key, Value]):
    """``get(key)`` answered by ``fetch(conn, keys)``, which returns one value per key, in order."""

    def __init__(
        self, pool: Pool, fetch: Callable[[Connection, Sequence[Key]], Awaitable[Sequence[Value]]], name: str
    ) -> None:
        self._pool = pool
        self._fetch = fetch
        self._name = name
        self._waiting: list[tuple[Key, asyncio.Future[Value]]] = []
        self._sender: asyncio.Task[None] | None = None

    async def get(self, key: Key) -> Value:
        answer: asyncio.Future[Value] = asyncio.get_running_loop().create_future()
        self._waiting.append((key, answer))
        if self._sender is None:
            self._sender = asyncio.create_task(self._send(), name=f"coalesced {self._name}")
        return await answer

    async def _send(self) -> None:
        try:
            while self._waiting:
                batch = [(key, answer) for key, answer in self._waiting[:MAX_BATCH] if not answer.cancelled()]
                del self._waiting[:MAX_BATCH]
                if batch:
                    await self._answer(batch)
        finally:
            # Only a cancelled sender (the loop shutting down) leaves readers behind.
            for _, answer in self._waiting:
                answer.cancel()
            self._waiting.clear()
            self._sender = None

    async def _answer(self, batch: list[tuple[Key, asyncio.Future[Value]]]) -> None:
        try:
            async with self._pool.connection() as conn:
                values = await self._fetch(conn, [key for key, _ in batch])
            for (_, answer), value in zip(batch, values, strict=True):
                if not answer.done():
                    answer.set_result(value)
        except Exception as error:  # each reader raises it, as if it had read alone
            for _, answer in batch:
                if not answer.done():
                    answer.set_exception(error)
        except BaseException:
            for _, answer in batch:
                answer.cancel()
            raise
