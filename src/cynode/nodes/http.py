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

from litestar import Request, Response, get, post
from litestar.types import ControllerRouterHandler

from cynode.context import OrchestratorContext
from cynode.contracts.nodes import NodeCapabilityReport, NodeConfigAck, NodeHeartbeat, NodeRegistrationRequest
from cynode.dispatch.holds import announce_shutdown
from cynode.http.client_address import ClientAddressResolver
from cynode.http.payloads import decode_payload, json_body, json_response, read_json
from cynode.identity.http import client_info
from cynode.nodes.auth import AuthenticatedNode, authenticate_node, unauthorized
from cynode.nodes.capabilities import ingest_report, record_heartbeat
from cynode.nodes.delivery import acknowledge_config, deliver_config
from cynode.nodes.registration import (
    CONFIG_PATH,
    HEARTBEAT_PATH,
    REGISTER_PATH,
    REPORT_PATH,
    SHUTDOWN_PATH,
    NodeEndpoints,
    PresentedPsk,
    psk_matches,
    register_node,
    resolve_registration_psk,
    throttle_registration,
)

T = TypeVar("T")

log = logging.getLogger(__name__)

INVALID_PSK = "Invalid registration PSK"


def control_plane_routes(ctx: OrchestratorContext) -> Sequence[ControllerRouterHandler]:
    """The node routes; resolving the PSK here makes a missing or empty one refuse start-up."""
    psk = resolve_registration_psk(ctx)
    addresses = ClientAddressResolver(ctx.settings.identity.trusted_proxies)

    def endpoints() -> NodeEndpoints:
        # Read per request: the public URL derived from host and port is only final once bound.
        return NodeEndpoints(ctx.settings.control_plane_public_url)

    def node_of(request: Request[Any, Any, Any]) -> AuthenticatedNode:
        return authenticate_node(ctx.signer, request.headers.get("authorization"))

    @post(REGISTER_PATH)
    async def register(request: Request[Any, Any, Any]) -> Response[bytes]:
        client = client_info(request, addresses)
        await throttle_registration(ctx, client)
        body = await json_body(request)
        if not psk_matches(psk, decode_payload(body, PresentedPsk).psk):
            log.warning("node_registration_refused", extra={"client": client.ip})
            raise unauthorized(INVALID_PSK)
        registration = decode_payload(body, NodeRegistrationRequest)
        bootstrap, created = await register_node(ctx, endpoints(), registration, client)
        return json_response(bootstrap, HTTPStatus.CREATED if created else HTTPStatus.OK)

    @post(REPORT_PATH, status_code=HTTPStatus.NO_CONTENT)
    async def report_capability(request: Request[Any, Any, Any]) -> None:
        node = node_of(request)
        await ingest_report(ctx, node, await read_json(request, NodeCapabilityReport))

    @post(HEARTBEAT_PATH, status_code=HTTPStatus.NO_CONTENT)
    async def heartbeat(request: Request[Any, Any, Any]) -> None:
        node = node_of(request)
        await record_heartbeat(ctx, node, await read_json(request, NodeHeartbeat))

    @post(SHUTDOWN_PATH, status_code=HTTPStatus.NO_CONTENT)
    async def shutting_down(request: Request[Any, Any, Any]) -> None:
        node = node_of(request)
        await announce_shutdown(ctx, node, await read_json(request, NodeHeartbeat))

    @get(CONFIG_PATH)
    async def fetch_config(request: Request[Any, Any, Any]) -> Response[bytes]:
        return json_response(await deliver_config(ctx, endpoints(), node_of(request)))

    @post(CONFIG_PATH, status_code=HTTPStatus.NO_CONTENT)
    async def acknowledge(request: Request[Any, Any, Any]) -> None:
        node = node_of(request)
        await acknowledge_config(ctx, node, await read_json(request, NodeConfigAck))

    return [register, report_capability, heartbeat, fetch_config, acknowledge, shutting_down]
