"""Whether the orchestrator has an inference path, in the words ``/readyz`` answers with."""

from __future__ import annotations

import psycopg

from cynode.db.pool import Pool

NO_INFERENCE_PATH = (
    "no inference path available (no dispatchable node reports inference running; "
    "register and configure a worker node or configure external provider keys)"
)
DATABASE_UNREACHABLE = "readiness check failed (database unreachable)"


async def inference_path_problem(pool: Pool, heartbeat_grace_seconds: int) -> str | None:
    """None when a dispatchable node or an active external credential exists, else the reason."""
    try:
        async with pool.connection(timeout=5) as conn:
            cursor = await conn.execute(
                """
                SELECT EXISTS (
                    SELECT 1 FROM nodes
                    WHERE status = 'active'
                      AND config_ack_status = 'applied'
                      AND config_ack_version = config_version
                      AND worker_api_target_url IS NOT NULL
                      AND worker_api_bearer_token_ciphertext IS NOT NULL
                      AND last_seen_at > now() - make_interval(secs => %(grace)s)
                ) OR EXISTS (
                    SELECT 1 FROM api_credentials
                    WHERE is_active AND (expires_at IS NULL OR expires_at > now())
                ) AS ready
                """,
                {"grace": heartbeat_grace_seconds},
            )
            row = await cursor.fetchone()
    except (psycopg.Error, TimeoutError):
        return DATABASE_UNREACHABLE
    return None if row and row["ready"] else NO_INFERENCE_PATH
