"""The admin API's rules, independent of HTTP: what each admin call reads, changes and audits."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, Final

import psycopg

from cynode.admin import credentials, nodes, system_settings
from cynode.admin.audit import record_change
from cynode.context import OrchestratorContext
from cynode.contracts.admin import (
    AddCredentialRequest,
    AdminStateChange,
    CredentialListResponse,
    CredentialResponse,
    NodeAdminState,
    NodeListResponse,
    NodeResponse,
    SettingListResponse,
    SettingResponse,
    SystemStatusResponse,
    UserListResponse,
)
from cynode.contracts.identity import UserResponse
from cynode.db.pool import Connection
from cynode.http.problems import ProblemError
from cynode.identity import users
from cynode.identity.audit import ClientInfo
from cynode.identity.guard import CurrentUser
from cynode.identity.service import user_response
from cynode.nodes.dispatchable import dispatchable_nodes
from cynode.nodes.readiness import inference_path_problem

DEFAULT_PAGE_SIZE: Final = 50
MAX_PAGE_SIZE: Final = 200

NODE_ACTIONS: Final[dict[str, NodeAdminState]] = {"enable": "enabled", "disable": "disabled", "drain": "draining"}


def _bad_request(detail: str) -> ProblemError:
    return ProblemError(HTTPStatus.BAD_REQUEST, detail)


def _not_found(detail: str) -> ProblemError:
    return ProblemError(HTTPStatus.NOT_FOUND, detail)


def parse_page_size(value: str | None) -> int:
    if value is None:
        return DEFAULT_PAGE_SIZE
    if not value.isdigit() or not 1 <= int(value) <= MAX_PAGE_SIZE:
        raise _bad_request(f"limit must be an integer from 1 to {MAX_PAGE_SIZE}")
    return int(value)


def encode_handle_cursor(handle: str) -> str:
    return base64.urlsafe_b64encode(handle.encode()).decode().rstrip("=")


def decode_handle_cursor(cursor: str | None) -> str | None:
    if cursor is None:
        return None
    try:
        handle = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise _bad_request("Invalid cursor") from None
    if users.handle_problem(handle) is not None:
        raise _bad_request("Invalid cursor")
    return handle


def parse_uuid(value: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise _bad_request(f"Invalid {what} id") from None


class AdminService:
    def __init__(self, ctx: OrchestratorContext) -> None:
        self._ctx = ctx
        self._pool = ctx.pool

    # -- users --------------------------------------------------------------------------------------

    async def list_users(self, *, cursor: str | None, limit: int) -> UserListResponse:
        after = decode_handle_cursor(cursor)
        async with self._pool.connection() as conn:
            rows = await users.list_users(conn, after_handle=after, limit=limit + 1)
        page = rows[:limit]
        next_cursor = encode_handle_cursor(page[-1].handle) if len(rows) > limit else None
        return UserListResponse(users=[user_response(row) for row in page], next_cursor=next_cursor)

    async def get_user(self, user_id: uuid.UUID) -> UserResponse:
        async with self._pool.connection() as conn:
            row = await users.get_user(conn, user_id)
        if row is None or row.is_system:
            raise _not_found("User not found")
        return user_response(row)

    # -- nodes --------------------------------------------------------------------------------------

    async def _dispatchable_ids(self, conn: Connection) -> frozenset[uuid.UUID]:
        grace = self._ctx.settings.nodes.heartbeat_grace_seconds
        return frozenset(node.node_id for node in await dispatchable_nodes(conn, self._ctx.secret_box, grace))

    async def list_nodes(self) -> NodeListResponse:
        async with self._pool.connection() as conn:
            dispatchable = await self._dispatchable_ids(conn)
            rows = await nodes.inventory(conn)
        return NodeListResponse(nodes=[nodes.node_response(row, dispatchable) for row in rows])

    async def get_node(self, reference: str) -> NodeResponse:
        async with self._pool.connection() as conn:
            return await self._node(conn, reference)

    async def _node(self, conn: Connection, reference: str) -> NodeResponse:
        row = await nodes.find(conn, reference)
        if row is None:
            raise _not_found(nodes.NODE_NOT_FOUND)
        return nodes.node_response(row, await self._dispatchable_ids(conn))

    async def set_node_state(
        self, admin: CurrentUser, reference: str, action: str, client: ClientInfo
    ) -> AdminStateChange:
        state = NODE_ACTIONS[action]
        async with self._pool.connection() as conn:
            async with conn.transaction():
                changed = await nodes.set_admin_state(conn, reference, state)
                if changed is not None:
                    detail = {"reference": reference, "admin_state": state}
                    await record_change(
                        conn,
                        admin,
                        client,
                        action=f"node_{action}",
                        target_type="node",
                        target=str(changed),
                        detail=detail,
                    )
            node = await self._node(conn, reference)
        return AdminStateChange(node=node, changed=changed is not None)

    # -- settings -----------------------------------------------------------------------------------

    async def list_settings(self) -> SettingListResponse:
        async with self._pool.connection() as conn:
            stored = await system_settings.stored(conn)
        specs = sorted(system_settings.SETTINGS.values(), key=lambda spec: spec.key)
        return SettingListResponse(settings=[system_settings.setting_response(s, stored.get(s.key)) for s in specs])

    async def get_setting(self, key: str) -> SettingResponse:
        spec = self._spec(key)
        async with self._pool.connection() as conn:
            stored = await system_settings.stored(conn)
        return system_settings.setting_response(spec, stored.get(key))

    async def set_setting(self, admin: CurrentUser, key: str, value: Any, client: ClientInfo) -> SettingResponse:
        spec = self._spec(key)
        if value is not None and (problem := spec.problem(value)) is not None:
            raise _bad_request(problem)
        async with self._pool.connection() as conn, conn.transaction():
            row = await system_settings.write(conn, spec, value, admin.handle)
            await record_change(conn, admin, client, action="setting_set" if value is not None else "setting_unset",
                                target_type="system_setting", target=key, detail={"value": value})  # fmt: skip
        return system_settings.setting_response(spec, row)

    @staticmethod
    def _spec(key: str) -> system_settings.SettingSpec:
        spec = system_settings.SETTINGS.get(key)
        if spec is None:
            raise _not_found(system_settings.unknown_key_problem(key))
        return spec

    # -- credentials --------------------------------------------------------------------------------

    async def list_credentials(self) -> CredentialListResponse:
        async with self._pool.connection() as conn:
            rows = await credentials.listing(conn)
        return CredentialListResponse(credentials=[credentials.credential_response(row) for row in rows])

    async def add_credential(
        self, admin: CurrentUser, request: AddCredentialRequest, client: ClientInfo
    ) -> CredentialResponse:
        if (problem := credentials.request_problem(request, datetime.now(UTC))) is not None:
            raise _bad_request(problem)
        try:
            async with self._pool.connection() as conn, conn.transaction():
                row = await credentials.insert(conn, self._ctx.secret_box, request, admin.handle)
                if row is None:
                    raise ProblemError(
                        HTTPStatus.CONFLICT, f"A {request.provider} credential named {request.name!r} exists"
                    )
                await self._audit_credential(conn, admin, client, "credential_added", row)
        except psycopg.errors.UniqueViolation:  # a concurrent add of the same name won
            raise ProblemError(
                HTTPStatus.CONFLICT, f"A {request.provider} credential named {request.name!r} exists"
            ) from None
        return credentials.credential_response(row)

    async def rotate_credential(
        self, admin: CurrentUser, credential_id: uuid.UUID, secret: str, client: ClientInfo
    ) -> CredentialResponse:
        if (problem := credentials.secret_problem(secret)) is not None:
            raise _bad_request(problem)
        async with self._pool.connection() as conn, conn.transaction():
            row = await credentials.rotate(conn, self._ctx.secret_box, credential_id, secret, admin.handle)
            if row is None:
                raise _not_found(credentials.CREDENTIAL_NOT_FOUND)
            await self._audit_credential(conn, admin, client, "credential_rotated", row)
        return credentials.credential_response(row)

    async def disable_credential(
        self, admin: CurrentUser, credential_id: uuid.UUID, client: ClientInfo
    ) -> CredentialResponse:
        async with self._pool.connection() as conn, conn.transaction():
            row = await credentials.deactivate(conn, credential_id, admin.handle)
            if row is not None:
                await self._audit_credential(conn, admin, client, "credential_disabled", row)
            else:
                row = await credentials.get(conn, credential_id)
                if row is None:
                    raise _not_found(credentials.CREDENTIAL_NOT_FOUND)
        return credentials.credential_response(row)

    @staticmethod
    async def _audit_credential(conn: Connection, admin: CurrentUser, client: ClientInfo, action: str,
                                row: Any) -> None:  # fmt: skip
        await record_change(conn, admin, client, action=action, target_type="api_credential", target=str(row["id"]),
                            detail={"provider": row["provider"], "name": row["credential_name"]})  # fmt: skip

    # -- status -------------------------------------------------------------------------------------

    async def status(self) -> SystemStatusResponse:
        reason = await inference_path_problem(self._ctx)
        async with self._pool.connection() as conn:
            queued, running = await nodes.job_counts(conn)
        listed = await self.list_nodes()
        return SystemStatusResponse(
            ready=reason is None, readiness=reason or "ready", queued_jobs=queued, running_jobs=running,
            nodes=listed.nodes,
        )  # fmt: skip
