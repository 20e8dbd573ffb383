"""First-start users: the bootstrap ``admin`` and the reserved ``system`` user.

Runs at every orchestrator start and changes nothing once both exist (an existing admin's
password is never touched). The admin password comes from ``CYNODE_ADMIN_PASSWORD`` or the file
named by ``CYNODE_ADMIN_PASSWORD_FILE``; with neither, one is generated and printed once to stderr,
outside the structured logs, and only its hash is stored. Several processes starting at once
create each user once.
"""

from __future__ import annotations

import logging
import secrets
import sys
from typing import Final

from cynode.context import OrchestratorContext
from cynode.identity import audit, users
from cynode.identity.audit import AuthEvent, ClientInfo
from cynode.identity.passwords import hash_password, password_problem
from cynode.secrets import read_secret
from cynode.settings import SettingsError

log = logging.getLogger(__name__)

ADMIN_HANDLE: Final = "admin"
ADMIN_PASSWORD_SECRET: Final = "admin_password"  # noqa: S105 - the secret's name, not its value
_GENERATED_PASSWORD_BYTES: Final = 18
_STARTUP: Final = ClientInfo(ip=None, user_agent=None)


async def ensure_bootstrap_users(ctx: OrchestratorContext) -> None:
    async with ctx.pool.connection() as conn:
        await users.insert_user(conn, users.SYSTEM_HANDLE, is_system=True)
        if await users.handle_exists(conn, ADMIN_HANDLE):
            return
    configured = read_secret(ADMIN_PASSWORD_SECRET, ctx.env)
    if configured is not None:
        problem = password_problem(configured)
        if problem is not None:
            raise SettingsError(f"CYNODE_ADMIN_PASSWORD: {problem}")
    password = configured or secrets.token_urlsafe(_GENERATED_PASSWORD_BYTES)
    password_hash = await hash_password(password)
    async with ctx.pool.connection() as conn, conn.transaction():
        admin = await users.insert_user(conn, ADMIN_HANDLE, is_admin=True)
        if admin is None:
            return  # another process created it first, with its own password
        await users.set_password_hash(conn, admin.id, password_hash)
        await audit.record(
            conn,
            AuthEvent.USER_CREATED,
            _STARTUP,
            success=True,
            user_id=admin.id,
            handle=ADMIN_HANDLE,
            reason="bootstrap",
        )
    log.info(
        "bootstrap_admin_created",
        extra={"user_id": str(admin.id), "password_source": "configured" if configured else "generated"},
    )
    if configured is None:
        # Deliberately not a log record: log lines are collected and kept, this must be seen once.
        print(
            f"\ncynode: created the bootstrap admin {ADMIN_HANDLE!r} with generated password: {password}\n"
            "cynode: it is shown only this once; log in and keep it safe, or set CYNODE_ADMIN_PASSWORD "
            "before the first start.\n",
            file=sys.stderr,
            flush=True,
        )
