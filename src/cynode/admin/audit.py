"""The admin trail: one ``admin_audit_log`` row per change an admin makes, inside that change's transaction."""

from __future__ import annotations

import logging
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from cynode.identity.audit import ClientInfo
from cynode.identity.guard import CurrentUser

log = logging.getLogger(__name__)


async def record_change(
    conn: AsyncConnection[DictRow],
    actor: CurrentUser,
    client: ClientInfo,
    *,
    action: str,
    target_type: str,
    target: str,
    detail: dict[str, Any] | None = None,
) -> None:
    """Append the row and log the event; ``detail`` must never carry a secret."""
    await conn.execute(
        """
        INSERT INTO admin_audit_log (actor_user_id, actor_handle, action, target_type, target, detail, ip_address)
        VALUES (%s, %s, %s, %s, %s, %s, %s::inet)
        """,
        (actor.id, actor.handle, action, target_type, target, None if detail is None else Jsonb(detail), client.ip),
    )
    log.info(
        "admin_change",
        extra={"actor": actor.handle, "action": action, "target_type": target_type, "target": target},
    )
