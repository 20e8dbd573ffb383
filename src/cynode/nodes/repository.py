"""Plain SQL over ``nodes``, ``node_capabilities``, ``system_settings`` and ``api_credentials``.

Every function takes a connection so callers decide the transaction. State changes are
conditional UPDATEs that return whether this caller's change won; callers re-read and retry or
give up when it did not.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from cynode.db.params import comparable_text
from cynode.db.pool import Connection

PM_SETTING_PREFIX = "agents.project_manager.model."


@dataclass(frozen=True)
class NodeRow:
    """The columns of ``nodes`` the control plane works with."""

    id: uuid.UUID
    node_slug: str
    status: str
    config_version: str | None
    config_content_hash: str | None
    worker_api_target_url: str | None
    worker_api_bearer_token_ciphertext: bytes | None
    config_ack_status: str | None
    config_ack_version: str | None
    config_ack_error: str | None
    capability_hash: str | None
    last_seen_at: datetime | None


_NODE_COLUMNS = """
    id, node_slug, status, config_version, config_content_hash, worker_api_target_url,
    worker_api_bearer_token_ciphertext, config_ack_status, config_ack_version, config_ack_error,
    capability_hash, last_seen_at
"""


def _node(row: DictRow) -> NodeRow:
    ciphertext = row["worker_api_bearer_token_ciphertext"]
    return NodeRow(**{**row, "worker_api_bearer_token_ciphertext": None if ciphertext is None else bytes(ciphertext)})


async def get_node(conn: Connection, node_id: uuid.UUID) -> NodeRow | None:
    cursor = await conn.execute(f"SELECT {_NODE_COLUMNS} FROM nodes WHERE id = %s", (node_id,))  # noqa: S608
    row = await cursor.fetchone()
    return None if row is None else _node(row)


@dataclass(frozen=True)
class ClaimedSlug:
    node_id: uuid.UUID
    created: bool
    secret_issued: bool
    """Whether the offered secret digest became the node's (a new slug, or one registered before
    nodes had secrets); the node must then be handed that secret."""


async def claim_node_slug(
    conn: Connection, node_slug: str, *, presented_digest: bytes | None, offered_digest: bytes
) -> ClaimedSlug | None:
    """Register ``node_slug`` as active and seen now; None when it belongs to another node.

    A new slug takes ``offered_digest`` as its secret. A known slug is claimed only with its
    secret's digest; claiming it retires its Worker API token (the next config fetch issues a new
    one). One conditional UPDATE, so of several claimants only those holding the secret win.
    """
    cursor = await conn.execute(
        """
        INSERT INTO nodes (node_slug, status, last_seen_at, node_secret_hash) VALUES (%s, 'active', now(), %s)
        ON CONFLICT (node_slug) DO NOTHING
        RETURNING id
        """,
        (node_slug, offered_digest),
    )
    inserted = await cursor.fetchone()
    if inserted is not None:
        return ClaimedSlug(inserted["id"], created=True, secret_issued=True)
    # The conflicting row is committed (ON CONFLICT waited for it), so this UPDATE finds it.
    cursor = await conn.execute(
        """
        UPDATE nodes
        SET status = 'active', last_seen_at = now(), updated_at = now(),
            worker_api_bearer_token_ciphertext = NULL, reregistration_required = false,
            node_secret_hash = coalesce(node_secret_hash, %(offered)s)
        WHERE node_slug = %(slug)s AND (node_secret_hash IS NULL OR node_secret_hash = %(presented)s)
        RETURNING id, node_secret_hash = %(offered)s AS secret_issued
        """,
        {"slug": node_slug, "offered": offered_digest, "presented": presented_digest},
    )
    claimed = await cursor.fetchone()
    if claimed is None:
        return None
    return ClaimedSlug(claimed["id"], created=False, secret_issued=claimed["secret_issued"])


async def record_capability(
    conn: Connection,
    node_id: uuid.UUID,
    *,
    snapshot: dict[str, Any],
    capability_hash: str,
    reported_at: datetime,
    worker_api_target_url: str | None,
) -> bool:
    """Store a report on the node (and a history row when it differs from the current one).

    Returns whether a history row was written. ``worker_api_target_url`` None keeps the stored URL.
    Must run inside a transaction so the hash comparison and the writes see one state.
    """
    cursor = await conn.execute("SELECT capability_hash FROM nodes WHERE id = %s FOR UPDATE", (node_id,))
    current = await cursor.fetchone()
    if current is None:
        raise LookupError(f"node {node_id} does not exist")
    changed: bool = current["capability_hash"] != capability_hash
    if changed:
        await conn.execute(
            """
            INSERT INTO node_capabilities (node_id, reported_at, capability_hash, capability_snapshot)
            VALUES (%s, %s, %s, %s)
            """,
            (node_id, reported_at, capability_hash, Jsonb(snapshot)),
        )
    await conn.execute(
        """
        UPDATE nodes
        SET capability_hash = %(hash)s,
            worker_api_target_url = COALESCE(%(url)s, worker_api_target_url),
            last_capability_at = now(), last_seen_at = now(), updated_at = now()
        WHERE id = %(id)s
        """,
        {"hash": capability_hash, "url": worker_api_target_url, "id": node_id},
    )
    return changed


async def latest_capability(conn: Connection, node_id: uuid.UUID) -> dict[str, Any] | None:
    cursor = await conn.execute(
        """
        SELECT capability_snapshot FROM node_capabilities
        WHERE node_id = %s ORDER BY created_at DESC, id DESC LIMIT 1
        """,
        (node_id,),
    )
    row = await cursor.fetchone()
    return None if row is None else dict(row["capability_snapshot"])


async def touch_node(conn: Connection, node_id: uuid.UUID) -> bool:
    """Mark the node as heard from now; False when it does not exist or must register again."""
    cursor = await conn.execute(
        "UPDATE nodes SET last_seen_at = now() WHERE id = %s AND NOT reregistration_required", (node_id,)
    )
    return cursor.rowcount == 1


async def retire_worker_token(conn: Connection, node_slug: str) -> bool:
    """Drop the node's Worker API token and require it to register again; False for an unknown slug."""
    cursor = await conn.execute(
        """
        UPDATE nodes SET worker_api_bearer_token_ciphertext = NULL, reregistration_required = true, updated_at = now()
        WHERE node_slug = %s
        """,
        (comparable_text(node_slug),),
    )
    return cursor.rowcount == 1


async def replace_bearer_token(
    conn: Connection, node_id: uuid.UUID, *, expected: bytes | None, ciphertext: bytes
) -> bool:
    """Store a new sealed Worker API token if the stored one is still ``expected``."""
    cursor = await conn.execute(
        """
        UPDATE nodes SET worker_api_bearer_token_ciphertext = %(new)s, updated_at = now()
        WHERE id = %(id)s AND worker_api_bearer_token_ciphertext IS NOT DISTINCT FROM %(expected)s
        """,
        {"new": ciphertext, "id": node_id, "expected": expected},
    )
    return cursor.rowcount == 1


async def advance_config_version(
    conn: Connection, node_id: uuid.UUID, *, expected: str | None, config_version: str, content_hash: str
) -> bool:
    """Move the node to a new config version if its version is still ``expected``."""
    cursor = await conn.execute(
        """
        UPDATE nodes SET config_version = %(version)s, config_content_hash = %(hash)s, updated_at = now()
        WHERE id = %(id)s AND config_version IS NOT DISTINCT FROM %(expected)s
        """,
        {"version": config_version, "hash": content_hash, "id": node_id, "expected": expected},
    )
    return cursor.rowcount == 1


async def record_config_ack(
    conn: Connection,
    node_id: uuid.UUID,
    *,
    config_version: str,
    status: str,
    acked_at: datetime,
    error: str | None,
) -> bool:
    """Store an ack unless it names a version never issued or older than the last acked one.

    ULIDs order by their text in the C collation, which is how a stale ack is told apart.
    """
    cursor = await conn.execute(
        """
        UPDATE nodes
        SET config_ack_status = %(status)s, config_ack_version = %(version)s, config_ack_at = %(acked_at)s,
            config_ack_error = %(error)s, last_seen_at = now(), updated_at = now()
        WHERE id = %(id)s
          AND config_version IS NOT NULL
          AND %(version)s COLLATE "C" <= config_version COLLATE "C"
          AND (config_ack_version IS NULL OR config_ack_version COLLATE "C" <= %(version)s COLLATE "C")
        """,
        {"status": status, "version": config_version, "acked_at": acked_at, "error": error, "id": node_id},
    )
    return cursor.rowcount == 1


@dataclass(frozen=True)
class DispatchableRow:
    node_id: uuid.UUID
    node_slug: str
    worker_api_target_url: str
    bearer_token_ciphertext: bytes
    capability_snapshot: dict[str, Any] | None


async def select_dispatchable(conn: Connection, heartbeat_grace_seconds: int) -> list[DispatchableRow]:
    """Nodes that may receive work now (CONTRACT.md section 5), by slug, with their latest report."""
    cursor = await conn.execute(
        """
        SELECT n.id, n.node_slug, n.worker_api_target_url, n.worker_api_bearer_token_ciphertext,
               latest.capability_snapshot
        FROM nodes n
        LEFT JOIN LATERAL (
            SELECT capability_snapshot FROM node_capabilities c
            WHERE c.node_id = n.id ORDER BY c.created_at DESC, c.id DESC LIMIT 1
        ) latest ON true
        WHERE n.status = 'active'
          AND n.admin_state = 'enabled'
          AND n.config_ack_status = 'applied'
          AND n.config_ack_version = n.config_version
          AND n.worker_api_target_url <> ''
          AND n.worker_api_bearer_token_ciphertext IS NOT NULL
          AND n.last_seen_at > now() - make_interval(secs => %s)
        ORDER BY n.node_slug
        """,
        (heartbeat_grace_seconds,),
    )
    return [
        DispatchableRow(
            node_id=row["id"],
            node_slug=row["node_slug"],
            worker_api_target_url=row["worker_api_target_url"],
            bearer_token_ciphertext=bytes(row["worker_api_bearer_token_ciphertext"]),
            capability_snapshot=row["capability_snapshot"],
        )
        for row in await cursor.fetchall()
    ]


async def project_manager_settings(conn: Connection) -> dict[str, Any]:
    """The ``agents.project_manager.model.*`` system settings, keyed by the part after that prefix."""
    cursor = await conn.execute(
        "SELECT key, value FROM system_settings WHERE starts_with(key, %s)", (PM_SETTING_PREFIX,)
    )
    return {row["key"].removeprefix(PM_SETTING_PREFIX): row["value"] for row in await cursor.fetchall()}


async def external_provider_configured(conn: Connection) -> bool:
    """Whether an active, unexpired external provider key exists (an inference path without nodes)."""
    cursor = await conn.execute(
        """
        SELECT EXISTS (
            SELECT 1 FROM api_credentials WHERE is_active AND (expires_at IS NULL OR expires_at > now())
        ) AS configured
        """
    )
    row = await cursor.fetchone()
    return bool(row and row["configured"])
