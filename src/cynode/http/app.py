"""Builds a role's litestar app from its route handlers plus the parts every app shares.

Shared parts: ``GET /healthz`` (200 ``ok`` while serving), ``GET /readyz`` (200 ``ready`` or 503
with a one-line reason from the role's readiness check), ``GET /openapi.json`` and the docs page ``/openapi``
(:mod:`cynode.http.openapi`), problem-details error handling and the request-body limit.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence

from litestar import Litestar, MediaType, Response, get
from litestar.di import Provide
from litestar.types import ControllerRouterHandler

from cynode.http.limits import LimitSource, TooLargeAnswer, body_limit
from cynode.http.openapi import openapi_config, openapi_json
from cynode.http.problems import EXCEPTION_HANDLERS

Readiness = Callable[[], Awaitable[str | None]]
"""Returns None when the role is ready, else a reason an operator can act on."""

Hook = Callable[[], Awaitable[None]]


def _health_handlers(readiness: Readiness) -> list[ControllerRouterHandler]:
    @get("/healthz", media_type=MediaType.TEXT, sync_to_thread=False, include_in_schema=False)
    def healthz() -> str:
        return "ok"

    @get("/readyz", media_type=MediaType.TEXT, include_in_schema=False)
    async def readyz() -> Response[str]:
        reason = await readiness()
        if reason is None:
            return Response("ready", media_type=MediaType.TEXT)
        return Response(reason, status_code=503, media_type=MediaType.TEXT)

    return [healthz, readyz]


def build_app(
    *,
    route_handlers: Sequence[ControllerRouterHandler],
    readiness: Readiness,
    max_body_bytes: LimitSource,
    too_large_answer: TooLargeAnswer | None = None,
    dependencies: Mapping[str, Provide] | None = None,
    on_startup: Sequence[Hook] = (),
    on_shutdown: Sequence[Hook] = (),
    title: str = "CyNode API",
) -> Litestar:
    """Return an app serving ``route_handlers`` with health, problems and the body limit."""
    return Litestar(
        route_handlers=[*_health_handlers(readiness), openapi_json, *route_handlers],
        dependencies=dict(dependencies or {}),
        exception_handlers=dict(EXCEPTION_HANDLERS),
        middleware=[body_limit(max_body_bytes, too_large_answer)],
        # The body limit middleware above owns size checks, so the limit can follow applied config.
        request_max_body_size=None,
        on_startup=list(on_startup),
        on_shutdown=list(on_shutdown),
        openapi_config=openapi_config(title),
        debug=False,
        logging_config=None,
    )
