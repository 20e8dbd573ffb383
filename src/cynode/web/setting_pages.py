"""The settings page: every system setting with its value, default and allowed values, and a form to
set it or return it to its default (``cynode settings get|set``).

A value is typed by the setting's spec before :class:`AdminService` checks it: a boolean setting
takes ``true`` or ``false``, anything else is stored as the text given. A refused value shows the
service's own message beside that setting, with status 400, and changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus
from typing import Any, Final

from litestar import Request, Response, get, post
from litestar.datastructures import FormMultiDict
from litestar.params import FromPath
from litestar.types import ControllerRouterHandler

from cynode.http.problems import ProblemError
from cynode.web.console import Console, see_other
from cynode.web.session import Viewer

SETTINGS_PATH: Final = "/admin/settings"
UNSET_FIELD: Final = "unset"
_BOOLEANS: Final = {"true": True, "false": False}


def form_value(form: FormMultiDict, value_type: str) -> Any:
    """The value the form asks for: None to fall back to the default, a bool for boolean settings."""
    if form.get(UNSET_FIELD) is not None:
        return None
    text = form.get("value") or ""
    if value_type == "boolean":
        return _BOOLEANS.get(text.strip().lower(), text)
    return text


def routes(console: Console) -> Sequence[ControllerRouterHandler]:
    admin = console.admin_service

    async def settings_page(
        viewer: Viewer, status: int = HTTPStatus.OK, errors: dict[str, str] | None = None, notice: str | None = None
    ) -> Response[str]:
        listed = await admin.list_settings()
        return console.page(
            viewer, "admin_settings.html", status, settings=listed.settings, errors=errors or {}, notice=notice
        )

    @get(SETTINGS_PATH)
    async def setting_list(request: Request[Any, Any, Any]) -> Response[str]:
        viewer = await console.admin(request)
        saved = request.query_params.get("saved")
        return await settings_page(viewer, notice=f"Saved {saved}." if saved else None)

    @post(f"{SETTINGS_PATH}/{{key:str}}")
    async def set_setting(request: Request[Any, Any, Any], key: FromPath[str]) -> Response[Any]:
        viewer = await console.admin(request)
        form = await console.form(request, viewer.csrf_token)
        spec = await admin.get_setting(key)
        try:
            await admin.set_setting(viewer.user, key, form_value(form, spec.value_type), console.client(request))
        except ProblemError as problem:
            return await settings_page(viewer, problem.status, {key: problem.detail})
        return see_other(f"{SETTINGS_PATH}?saved={key}")

    return [setting_list, set_setting]
