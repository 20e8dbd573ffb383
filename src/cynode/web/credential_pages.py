"""The credentials page: external provider credentials listed without their secrets, and forms to add,
rotate and disable one (``cynode credentials add|list|rotate|disable``).

A secret goes from the form straight to :class:`AdminService`, which seals it; no page ever shows a
secret, not even the one just typed when the form is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, Final

from litestar import Request, Response, get, post
from litestar.datastructures import FormMultiDict
from litestar.params import FromPath
from litestar.types import ControllerRouterHandler

from cynode.admin.service import parse_uuid
from cynode.contracts.admin import AddCredentialRequest
from cynode.http.problems import ProblemError
from cynode.web.console import Console, see_other
from cynode.web.session import Viewer

CREDENTIALS_PATH: Final = "/admin/credentials"
NOTICES: Final = {
    "added": "Credential added.",
    "rotated": "Secret replaced.",
    "disabled": "Credential disabled.",
}
_EXAMPLE: Final = "2030-01-31T12:00"
# The fields a refused add form is shown again with; the secret is deliberately not among them.
_ECHOED_FIELDS: Final = ("provider", "name", "credential_type", "expires_at")


def expiry(text: str) -> datetime | None:
    """A ``datetime-local`` field's value, read as UTC; a 400 when it is no date and time."""
    if not text.strip():
        return None
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ProblemError(HTTPStatus.BAD_REQUEST, f"expires_at must be a date and time such as {_EXAMPLE}") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def add_request(form: FormMultiDict) -> AddCredentialRequest:
    return AddCredentialRequest(
        provider=(form.get("provider") or "").strip(),
        name=(form.get("name") or "").strip(),
        secret=form.get("secret") or "",
        credential_type=(form.get("credential_type") or "").strip() or "api_key",
        expires_at=expiry(form.get("expires_at") or ""),
    )


def routes(console: Console) -> Sequence[ControllerRouterHandler]:
    admin = console.admin_service

    async def credentials_page(
        viewer: Viewer,
        status: int = HTTPStatus.OK,
        error: str | None = None,
        notice: str | None = None,
        values: dict[str, str] | None = None,
    ) -> Response[str]:
        listed = await admin.list_credentials()
        return console.page(
            viewer,
            "admin_credentials.html",
            status,
            credentials=listed.credentials,
            error=error,
            notice=notice,
            values=values or {},
        )

    @get(CREDENTIALS_PATH)
    async def credential_list(request: Request[Any, Any, Any]) -> Response[str]:
        viewer = await console.admin(request)
        return await credentials_page(viewer, notice=NOTICES.get(request.query_params.get("notice") or ""))

    @post(CREDENTIALS_PATH)
    async def add_credential(request: Request[Any, Any, Any]) -> Response[Any]:
        viewer = await console.admin(request)
        form = await console.form(request, viewer.csrf_token)
        try:
            await admin.add_credential(viewer.user, add_request(form), console.client(request))
        except ProblemError as problem:
            echoed = {field: form.get(field) or "" for field in _ECHOED_FIELDS}
            return await credentials_page(viewer, problem.status, problem.detail, values=echoed)
        return see_other(f"{CREDENTIALS_PATH}?notice=added")

    @post(f"{CREDENTIALS_PATH}/{{credential_id:str}}/rotate")
    async def rotate_credential(request: Request[Any, Any, Any], credential_id: FromPath[str]) -> Response[Any]:
        viewer = await console.admin(request)
        form = await console.form(request, viewer.csrf_token)
        target = parse_uuid(credential_id, "credential")
        try:
            await admin.rotate_credential(viewer.user, target, form.get("secret") or "", console.client(request))
        except ProblemError as problem:
            if problem.status != HTTPStatus.BAD_REQUEST:
                raise
            return await credentials_page(viewer, problem.status, problem.detail)
        return see_other(f"{CREDENTIALS_PATH}?notice=rotated")

    @post(f"{CREDENTIALS_PATH}/{{credential_id:str}}/disable")
    async def disable_credential(request: Request[Any, Any, Any], credential_id: FromPath[str]) -> Response[Any]:
        viewer = await console.admin(request)
        await console.form(request, viewer.csrf_token)
        await admin.disable_credential(viewer.user, parse_uuid(credential_id, "credential"), console.client(request))
        return see_other(f"{CREDENTIALS_PATH}?notice=disabled")

    return [credential_list, add_credential, rotate_credential, disable_credential]
