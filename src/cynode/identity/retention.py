"""How long identity keeps what it records: the audit log, refusal counts and throttle rows.

The orchestrator role purges once at start and then every :data:`PURGE_INTERVAL_SECONDS`. Audit
rows and refusal counts live ``audit_retention_days``; throttle rows only as long as a rule can
still read them (the lockout window, or ``known_source_days`` for successful logins).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final

import psycopg

from cynode.context import OrchestratorContext
from cynode.identity import audit, rate_limit

log = logging.getLogger(__name__)

PURGE_INTERVAL_SECONDS: Final = 3600
_DAY_SECONDS: Final = 24 * 3600


async def purge_expired(ctx: OrchestratorContext) -> None:
    settings = ctx.settings.identity
    throttle_horizon = max(settings.lockout_seconds, settings.known_source_days * _DAY_SECONDS)
    async with ctx.pool.connection() as conn:
        audit_rows = await audit.purge_older_than(conn, settings.audit_retention_days)
        attempts = await rate_limit.purge_attempts(conn, throttle_horizon)
    log.info("identity_records_purged", extra={"audit_rows": audit_rows, "login_attempts": attempts})


async def run_identity_retention(ctx: OrchestratorContext) -> None:
    """Purge forever; a database hiccup skips one round rather than stopping the process."""
    while True:
        try:
            await purge_expired(ctx)
        except (psycopg.Error, OSError) as exc:
            log.warning("identity_purge_failed", extra={"error": f"{exc.__class__.__name__}: {exc}"})
        await asyncio.sleep(PURGE_INTERVAL_SECONDS)
