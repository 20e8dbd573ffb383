"""Hearing PostgreSQL notifications on a dedicated connection that reconnects when it drops.

Owns the one listen loop every long-lived ``LISTEN`` of a process uses (identity changes, task
endings, dispatch wake-ups): connect, ``LISTEN`` on each channel, say so, hand every notice on, and when the
connection fails say that too and start over after a pause. A listener is told when it starts and
stops hearing, because whatever is sent while nobody listens is lost: it must then not trust what
it has not heard, and re-check once it hears again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Final

import psycopg

log = logging.getLogger(__name__)

RETRY_SECONDS: Final = 1.0


async def listen(
    conninfo: str,
    channels: Sequence[str],
    on_notice: Callable[[psycopg.Notify], None],
    *,
    on_up: Callable[[], None],
    on_down: Callable[[], None],
    failure_event: str,
    retry_seconds: float = RETRY_SECONDS,
) -> None:
    """Hear ``channels`` until cancelled: ``on_up`` once listening, ``on_down`` whenever that ends.

    A failure is logged as ``failure_event`` and the loop connects again after ``retry_seconds``.
    """
    while True:
        try:
            conn = await psycopg.AsyncConnection.connect(conninfo, autocommit=True)
        except psycopg.Error as exc:
            log.warning(failure_event, extra={"error": str(exc)})
            await asyncio.sleep(retry_seconds)
            continue
        try:
            for channel in channels:
                await conn.execute(f"LISTEN {channel}")
            on_up()
            async for notice in conn.notifies():
                on_notice(notice)
        except psycopg.Error as exc:
            log.warning(failure_event, extra={"error": str(exc)})
        finally:
            on_down()
            # close() needs no lock, unlike leaving ``async with`` (a rollback) after a cancel.
            await conn.close()
        await asyncio.sleep(retry_seconds)
