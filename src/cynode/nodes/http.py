"""Control-plane routes for nodes: register, capability report, heartbeat, config fetch and ack.

Bodies are decoded here from raw bytes so malformed JSON, wrong types, missing fields and an
unsupported ``version`` all become 400 problems before anything is stored. A payload whose
``node_slug`` differs from the authenticated node's is a 400 on every route.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any, TypeVar

import msgspec
from litestar import Request, Response, get, post
from litestar.types import ControllerRouterHandler

from cynode.context import OrchestratorContext
from cynode.contracts.codec import PayloadError, decode, encode
from cynode.contracts.nodes import NodeCapabilityReport, NodeConfigAck, NodeHeartbeat, NodeRegistrationRequest
from cynode.contracts.problem import problem_from_payload_error
from cynode.http.problems import ProblemError
from cynode.nodes.auth import AuthenticatedNode, authenticate_node, unauthorized
from cynode.nodes.capabilities import ingest_report, record_heartbeat
from cynode.nodes.delivery import acknowledge_config, deliver_config
from cynode.nodes.registration import (
    CONFIG_PATH,
    HEARTBEAT_PATH,
    REGISTER_PATH,
    REPORT_PATH,
    NodeEndpoints,
    PresentedPsk,
    psk_matches,
    register_node,
    resolve_registration_psk,
)

T = TypeVar("T")

log = logging.getLogger(__name__)

INVALID_PSK = "Invalid registration PSK"


def _decode(body: bytes, type_: type[T]) -> T:
    try:
        return decode(body, type_)
    except PayloadError as exc:
        problem = problem_from_payload_error(exc)
        raise ProblemError(
            problem.status, problem.detail or "Invalid request body", problem_type=problem.type
        ) from None


def _json(payload: msgspec.Struct, status: int = HTTPStatus.OK) -> Response[bytes]:
    return Response(encode(payload), status_code=status, media_type="application/json")


def control_plane_routes(ctx: OrchestratorContext) -> Sequence[ControllerRouterHandler]:
    """The node routes; resolving the PSK here makes a missing or empty one refuse start-up."""
    psk = resolve_registration_psk(ctx)

    def endpoints() -> NodeEndpoints:
        # Read per request: the public URL derived from host and port is only final once bound.
        return NodeEndpoints(ctx.settings.control_plane_public_url)

    def node_of(request: Request[Any, Any, Any]) -> AuthenticatedNode:
        return authenticate_node(ctx.signer, request.headers.get("authorization"))

    @post(REGISTER_PATH)
    async def register(request: Request[Any, Any, Any]) -> Response[bytes]:
        body = await request.body()
        if not psk_matches(psk, _decode(body, PresentedPsk).psk):
            log.warning("node_registration_refused", extra={"client": request.client.host if request.client else None})
            raise unauthorized(INVALID_PSK)
        registration = _decode(body, NodeRegistrationRequest)
        bootstrap, created = await register_node(ctx, endpoints(), registration.capability)
        return _json(bootstrap, HTTPStatus.CREATED if created else HTTPStatus.OK)

    @post(REPORT_PATH, status_code=HTTPStatus.NO_CONTENT)
    async def report_capability(request: Request[Any, Any, Any]) -> None:
        node = node_of(request)
        await ingest_report(ctx, node, _decode(await request.body(), NodeCapabilityReport))

    @post(HEARTBEAT_PATH, status_code=HTTPStatus.NO_CONTENT)
    async def heartbeat(request: Request[Any, Any, Any]) -> None:
        node = node_of(request)
        await record_heartbeat(ctx, node, _decode(await request.body(), NodeHeartbeat))

    @get(CONFIG_PATH)
    async def fetch_config(request: Request[Any, Any, Any]) -> Response[bytes]:
        return _json(await deliver_config(ctx, endpoints(), node_of(request)))

    @post(CONFIG_PATH, status_code=HTTPStatus.NO_CONTENT)
    async def acknowledge(request: Request[Any, Any, Any]) -> None:
        node = node_of(request)
        await acknowledge_config(ctx, node, _decode(await request.body(), NodeConfigAck))

    return [register, report_capability, heartbeat, fetch_config, acknowledge]
