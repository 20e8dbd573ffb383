"""External provider credentials (``api_credentials``, system-owned): add, list, rotate, disable.

The secret is sealed with the deployment's :class:`~cynode.crypto.SecretBox`, bound to the row's
id, before it reaches the database; no query here ever selects it back, so no answer, log or error
can carry it. CyNode does not call external providers yet, so these keys do not make the system
ready (see :mod:`cynode.nodes.readiness`).
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Final

from psycopg.rows import DictRow

from cynode.contracts.admin import AddCredentialRequest, CredentialResponse
from cynode.crypto import SecretBox
from cynode.db.pool import Connection

CREDENTIAL_NOT_FOUND: Final = "Credential not found"
MAX_SECRET_LENGTH: Final = 8192
_SLUG: Final = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_COLUMNS: Final = (
    "id, provider, credential_name, credential_type, is_active, created_at, updated_at, expires_at, updated_by"
)


def request_problem(request: AddCredentialRequest, now: datetime) -> str | None:
    """Why a new credential cannot be stored, or None."""
    for field, value in (("provider", request.provider), ("name", request.name),
                         ("credential_type", request.credential_type)):  # fmt: skip
        if not _SLUG.fullmatch(value):
            return f"{field} must be 1 to 64 characters of a-z, 0-9, '.', '_' or '-', starting with a letter or digit"
    if request.expires_at is not None and request.expires_at <= now:
        return "expires_at must lie in the future"
    return secret_problem(request.secret)


def secret_problem(secret: str) -> str | None:
    if not secret.strip() or len(secret) > MAX_SECRET_LENGTH or "\x00" in secret:
        return f"secret must be 1 to {MAX_SECRET_LENGTH} characters, not blank and without NUL"
    return None


def credential_response(row: DictRow) -> CredentialResponse:
    return CredentialResponse(
        credential_id=row["id"],
        provider=row["provider"],
        name=row["credential_name"],
        credential_type=row["credential_type"],
        active=row["is_active"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        expires_at=row["expires_at"],
        updated_by=row["updated_by"],
    )


async def insert(conn: Connection, box: SecretBox, request: AddCredentialRequest, updated_by: str) -> DictRow | None:
    """Store a new system credential; None when one with this provider and name exists already."""
    credential_id = uuid.uuid4()
    cursor = await conn.execute(
        f"""
        INSERT INTO api_credentials (id, owner_type, provider, credential_type, credential_name,
                                     credential_ciphertext, expires_at, updated_by)
        SELECT %(id)s, 'system', %(provider)s, %(type)s, %(name)s, %(sealed)s, %(expires_at)s, %(by)s
        WHERE NOT EXISTS (
            SELECT 1 FROM api_credentials
            WHERE owner_type = 'system' AND provider = %(provider)s AND credential_name = %(name)s
        )
        RETURNING {_COLUMNS}
        """,  # noqa: S608 - the interpolated text is a constant
        {
            "id": credential_id,
            "provider": request.provider,
            "type": request.credential_type,
            "name": request.name,
            "sealed": box.seal(request.secret, associated_data=str(credential_id)),
            "expires_at": request.expires_at,
            "by": updated_by,
        },
    )
    return await cursor.fetchone()


async def listing(conn: Connection) -> list[DictRow]:
    cursor = await conn.execute(
        f"SELECT {_COLUMNS} FROM api_credentials WHERE owner_type = 'system' ORDER BY provider, credential_name"  # noqa: S608
    )
    return await cursor.fetchall()


async def rotate(
    conn: Connection, box: SecretBox, credential_id: uuid.UUID, secret: str, updated_by: str
) -> DictRow | None:
    """Replace the sealed secret; None when there is no such credential."""
    cursor = await conn.execute(
        f"""
        UPDATE api_credentials SET credential_ciphertext = %s, updated_by = %s, updated_at = now()
        WHERE id = %s AND owner_type = 'system'
        RETURNING {_COLUMNS}
        """,  # noqa: S608 - the interpolated text is a constant
        (box.seal(secret, associated_data=str(credential_id)), updated_by, credential_id),
    )
    return await cursor.fetchone()


async def deactivate(conn: Connection, credential_id: uuid.UUID, updated_by: str) -> DictRow | None:
    """Disable an active credential; the row when this call disabled it, None otherwise."""
    cursor = await conn.execute(
        f"""
        UPDATE api_credentials SET is_active = false, updated_by = %s, updated_at = now()
        WHERE id = %s AND owner_type = 'system' AND is_active
        RETURNING {_COLUMNS}
        """,  # noqa: S608 - the interpolated text is a constant
        (updated_by, credential_id),
    )
    return await cursor.fetchone()


async def get(conn: Connection, credential_id: uuid.UUID) -> DictRow | None:
    cursor = await conn.execute(
        f"SELECT {_COLUMNS} FROM api_credentials WHERE id = %s AND owner_type = 'system'",  # noqa: S608
        (credential_id,),
    )
    return await cursor.fetchone()
