"""Which pages the console serves: the one list to extend when a new area is added."""

from __future__ import annotations

from litestar import Router

from cynode.chat.http import ChatApi
from cynode.context import OrchestratorContext
from cynode.http.app import Readiness
from cynode.tasks.live_output import LiveOutput
from cynode.web import (
    admin_pages,
    auth_pages,
    chat_pages,
    credential_pages,
    node_pages,
    setting_pages,
    status_pages,
    task_pages,
)
from cynode.web.console import console_router

PAGE_MODULES = (
    auth_pages.routes,
    task_pages.routes,
    chat_pages.routes,
    status_pages.routes,
    admin_pages.routes,
    node_pages.routes,
    setting_pages.routes,
    credential_pages.routes,
)


def web_routes(ctx: OrchestratorContext, readiness: Readiness, chat: ChatApi, live_output: LiveOutput) -> Router:
    """The console's router for the gateway app."""
    return console_router(ctx, readiness, chat, live_output, PAGE_MODULES)
