"""Concurrent reads folded into one query per round trip (``cynode.db.coalesce``), on real
PostgreSQL: answers in order, batches formed while one is in flight, writes committed before a read
was asked always seen, and a failed or cancelled read confined to itself."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import psycopg
import pytest

from cynode.db.coalesce import MAX_BATCH, Coalescer
from cynode.db.pool import Connection, Pool, open_pool


@pytest.fixture
async def pool(fresh_dsn: str) -> AsyncIterator[Pool]:
    pool = await open_pool(fresh_dsn)
    try:
        await _execute(pool, "CREATE TABLE notes (id integer PRIMARY KEY, body text NOT NULL)")
        yield pool
    finally:
        await pool.close()


class Notes:
    """A coalesced read of ``notes`` by id that records each batch; a key of 0 fails its batch, and
    while ``hold`` is set every batch waits for it with the query's snapshot already taken."""

    def __init__(self, pool: Pool) -> None:
        self.batches: list[list[int]] = []
        self.hold: asyncio.Event | None = None
        self.in_flight = asyncio.Event()
        self.reader = Coalescer(pool, self._fetch, "notes")

    async def _fetch(self, conn: Connection, ids: Sequence[int]) -> list[str | None]:
        self.batches.append(list(ids))
        self.in_flight.set()
        if self.hold is not None:
            await self.hold.wait()
        cursor = await conn.execute(
            "SELECT 1 / wanted.id AS sure, n.body FROM unnest(%s::integer[]) WITH ORDINALITY AS wanted(id, i)"
            " LEFT JOIN notes n ON n.id = wanted.id ORDER BY wanted.i",
            (list(ids),),
        )
        return [row["body"] for row in await cursor.fetchall()]


async def _batch_in_flight(notes: Notes, key: int) -> asyncio.Task[str | None]:
    """A read of ``key`` sent and held in flight (until ``notes.hold`` is set)."""
    notes.hold = asyncio.Event()
    read = asyncio.create_task(notes.reader.get(key))
    await notes.in_flight.wait()
    return read


async def _execute(pool: Pool, sql: str, params: tuple[object, ...] = ()) -> None:
    async with pool.connection() as conn:
        await conn.execute(sql, params)


async def test_reads_asked_together_go_out_as_one_query_and_each_gets_its_own_answer(pool: Pool) -> None:
    await _execute(pool, "INSERT INTO notes SELECT n, 'note ' || n FROM generate_series(1, 50) n")
    notes = Notes(pool)
    answers = await asyncio.gather(*(notes.reader.get(key) for key in [*range(1, 51), 99, 7]))
    assert answers == [*(f"note {n}" for n in range(1, 51)), None, "note 7"]
    assert notes.batches == [[*range(1, 51), 99, 7]]


async def test_reads_asked_while_a_batch_is_in_flight_go_out_together_in_the_next(pool: Pool) -> None:
    await _execute(pool, "INSERT INTO notes SELECT n, 'note ' || n FROM generate_series(1, 300) n")
    notes = Notes(pool)
    first = await _batch_in_flight(notes, 1)
    later = [asyncio.create_task(notes.reader.get(key)) for key in range(2, 301)]
    await asyncio.sleep(0.05)
    assert notes.batches == [[1]]  # nothing else is sent while one batch is out
    notes.hold.set()
    assert await first == "note 1"
    assert await asyncio.gather(*later) == [f"note {n}" for n in range(2, 301)]
    assert [len(batch) for batch in notes.batches] == [1, MAX_BATCH, MAX_BATCH, 299 - 2 * MAX_BATCH]


async def test_a_read_sees_a_write_committed_before_it_was_asked_even_with_a_batch_in_flight(pool: Pool) -> None:
    notes = Notes(pool)
    early = await _batch_in_flight(notes, 5)
    await _execute(pool, "INSERT INTO notes VALUES (5, 'written')")
    late = asyncio.create_task(notes.reader.get(5))
    notes.hold.set()
    assert await late == "written"
    assert await early in (None, "written")  # asked before the write: either is fair


async def test_a_failed_batch_fails_each_of_its_reads_and_the_next_batch_still_runs(pool: Pool) -> None:
    await _execute(pool, "INSERT INTO notes VALUES (1, 'one')")
    notes = Notes(pool)
    failed = await asyncio.gather(notes.reader.get(1), notes.reader.get(0), return_exceptions=True)
    assert all(isinstance(error, psycopg.errors.DivisionByZero) for error in failed)
    assert await notes.reader.get(1) == "one"


async def test_a_cancelled_read_is_dropped_and_the_reads_beside_it_are_answered(pool: Pool) -> None:
    await _execute(pool, "INSERT INTO notes VALUES (1, 'one'), (2, 'two'), (3, 'three')")
    notes = Notes(pool)
    first = await _batch_in_flight(notes, 1)
    dropped = asyncio.create_task(notes.reader.get(2))
    kept = asyncio.create_task(notes.reader.get(3))
    await asyncio.sleep(0)
    dropped.cancel()
    notes.hold.set()
    assert (await first, await kept) == ("one", "three")
    assert dropped.cancelled()
    assert notes.batches == [[1], [3]]
