"""How the node manager talks to the control plane: one protocol, two transports.

``HttpControlPlane`` speaks the node API over HTTP (registration at the configured orchestrator URL,
everything after it at the bootstrap payload's URLs). ``LocalControlPlane`` is used when the
orchestrator role runs in the same process: it calls the functions the control plane's HTTP handlers
call, and authenticates with the same ``Authorization: Bearer <node JWT>`` check, so token rules
are one piece of code either way. Both report failures as the same few exceptions, which say what
the node should do: register again, retry later, or give up.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from http import HTTPStatus
from typing import Protocol, TypeVar

import httpx
import msgspec
import psycopg

from cynode.context import OrchestratorContext
from cynode.contracts.codec import PayloadError, decode, encode
from cynode.contracts.nodes import (
    NodeBootstrapPayload,
    NodeCapabilityReport,
    NodeConfigAck,
    NodeConfigurationPayload,
    NodeHeartbeat,
    NodeRegistrationRequest,
)
from cynode.contracts.problem import problem_detail
from cynode.dispatch.holds import announce_shutdown
from cynode.http.problems import ProblemError
from cynode.identity.audit import ClientInfo
from cynode.nodes.auth import AuthenticatedNode, authenticate_node
from cynode.nodes.capabilities import ingest_report, record_heartbeat
from cynode.nodes.delivery import acknowledge_config, deliver_config
from cynode.nodes.registration import (
    REGISTER_PATH,
    SHUTDOWN_PATH,
    NodeEndpoints,
    psk_matches,
    register_node,
    resolve_registration_psk,
)
from cynode.tls import refused_certificate

log = logging.getLogger(__name__)

T = TypeVar("T")

# Statuses worth retrying: the control plane is restarting, overloaded or briefly without its database.
_RETRYABLE = frozenset({HTTPStatus.REQUEST_TIMEOUT, HTTPStatus.TOO_MANY_REQUESTS}) | {
    status for status in HTTPStatus if status >= HTTPStatus.INTERNAL_SERVER_ERROR
}


_IN_PROCESS = ClientInfo(ip=None, user_agent="in-process node manager")


class ControlPlaneError(RuntimeError):
    """A control-plane call did not succeed."""


class ControlPlaneUnavailable(ControlPlaneError):
    """Not reachable or not able to answer right now; retry with backoff."""


class NodeUnauthorized(ControlPlaneError):
    """The node JWT was refused (expired, or the node row is gone); register again."""


class ControlPlaneUntrusted(ControlPlaneError):
    """The control plane's TLS certificate failed verification (CA, host name or pin); nothing was sent."""


class RegistrationRefused(ControlPlaneError):
    """The registration PSK was refused."""


class ControlPlaneRejected(ControlPlaneError):
    """The control plane refused the request for a reason retrying will not fix."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{status} {detail}")
        self.status = status
        self.detail = detail


def _error_for(status: int, detail: str, *, registering: bool = False) -> ControlPlaneError:
    if status == HTTPStatus.UNAUTHORIZED:
        return RegistrationRefused(detail) if registering else NodeUnauthorized(detail)
    if status in _RETRYABLE:
        return ControlPlaneUnavailable(f"{status} {detail}")
    return ControlPlaneRejected(status, detail)


class ControlPlaneClient(Protocol):
    """The node side of the control-plane API. ``session`` is the latest registration's bootstrap."""

    async def register(
        self, psk: str, capability: NodeCapabilityReport, node_secret: str | None
    ) -> NodeBootstrapPayload: ...

    async def fetch_config(self, session: NodeBootstrapPayload) -> NodeConfigurationPayload: ...

    async def acknowledge(self, session: NodeBootstrapPayload, ack: NodeConfigAck) -> None: ...

    async def report(self, session: NodeBootstrapPayload, capability: NodeCapabilityReport) -> None: ...

    async def heartbeat(self, session: NodeBootstrapPayload, beat: NodeHeartbeat) -> None: ...

    async def shutting_down(self, session: NodeBootstrapPayload, notice: NodeHeartbeat) -> None: ...

    async def aclose(self) -> None: ...


class HttpControlPlane:
    """The control plane at ``orchestrator_url``, over HTTP(S)."""

    def __init__(
        self,
        orchestrator_url: str,
        *,
        connect_timeout: float = 10.0,
        request_timeout: float = 30.0,
        trust: ssl.SSLContext | None = None,
    ) -> None:
        """``trust`` verifies an HTTPS control plane; unset, the system trust store does."""
        self._register_url = orchestrator_url.rstrip("/") + REGISTER_PATH
        self._shutdown_url = orchestrator_url.rstrip("/") + SHUTDOWN_PATH
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(request_timeout, connect=connect_timeout),
            verify=trust if trust is not None else True,
            # The node API never redirects; following one could send the JWT or PSK elsewhere.
            follow_redirects=False,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(
        self,
        method: str,
        url: str,
        payload: msgspec.Struct | None = None,
        *,
        jwt: str | None = None,
        registering: bool = False,
    ) -> httpx.Response:
        headers = {"Content-Type": "application/json"}
        if jwt is not None:
            headers["Authorization"] = f"Bearer {jwt}"
        body = encode(payload) if payload is not None else None
        try:
            response = await self._http.request(method, url, content=body, headers=headers)
        except httpx.TransportError as exc:
            refused = refused_certificate(exc)
            if refused is not None:
                raise ControlPlaneUntrusted(f"{method} {url}: TLS certificate refused: {refused}") from exc
            raise ControlPlaneUnavailable(f"{method} {url}: {exc.__class__.__name__}: {exc}") from exc
        if response.is_success:
            return response
        raise _error_for(response.status_code, _problem_detail(response), registering=registering)

    async def register(
        self, psk: str, capability: NodeCapabilityReport, node_secret: str | None
    ) -> NodeBootstrapPayload:
        request = NodeRegistrationRequest(psk=psk, capability=capability, node_secret=node_secret)
        response = await self._call("POST", self._register_url, request, registering=True)
        return _decode_body(response, NodeBootstrapPayload)

    async def fetch_config(self, session: NodeBootstrapPayload) -> NodeConfigurationPayload:
        url = session.orchestrator.endpoints.node_config_url
        response = await self._call("GET", url, jwt=session.auth.node_jwt)
        return _decode_body(response, NodeConfigurationPayload)

    async def acknowledge(self, session: NodeBootstrapPayload, ack: NodeConfigAck) -> None:
        await self._call("POST", session.orchestrator.endpoints.node_config_url, ack, jwt=session.auth.node_jwt)

    async def report(self, session: NodeBootstrapPayload, capability: NodeCapabilityReport) -> None:
        url = session.orchestrator.endpoints.node_report_url
        await self._call("POST", url, capability, jwt=session.auth.node_jwt)

    async def heartbeat(self, session: NodeBootstrapPayload, beat: NodeHeartbeat) -> None:
        url = session.orchestrator.endpoints.node_heartbeat_url
        if url is None:
            raise ControlPlaneRejected(HTTPStatus.NOT_FOUND, "the orchestrator offers no heartbeat endpoint")
        await self._call("POST", url, beat, jwt=session.auth.node_jwt)

    async def shutting_down(self, session: NodeBootstrapPayload, notice: NodeHeartbeat) -> None:
        await self._call("POST", self._shutdown_url, notice, jwt=session.auth.node_jwt)


def _problem_detail(response: httpx.Response) -> str:
    return problem_detail(response.content) or response.reason_phrase or "no detail"


def _decode_body(response: httpx.Response, type_: type[T]) -> T:
    try:
        return decode(response.content, type_)
    except PayloadError as exc:
        detail = f"unusable {type_.__name__} from the orchestrator: {exc}"
        raise ControlPlaneRejected(response.status_code, detail) from exc


class LocalControlPlane:
    """The control plane of this very process, called without HTTP."""

    def __init__(self, ctx: OrchestratorContext) -> None:
        self._ctx = ctx

    async def aclose(self) -> None:
        return None

    def _endpoints(self) -> NodeEndpoints:
        # The same base URL the HTTP handlers use, so bootstrap and config carry identical URLs.
        return NodeEndpoints(self._ctx.settings.control_plane_public_url)

    def _node(self, session: NodeBootstrapPayload) -> AuthenticatedNode:
        return authenticate_node(self._ctx.signer, f"Bearer {session.auth.node_jwt}")

    async def register(
        self, psk: str, capability: NodeCapabilityReport, node_secret: str | None
    ) -> NodeBootstrapPayload:
        with _translated(registering=True):
            if not psk_matches(resolve_registration_psk(self._ctx), psk):
                raise RegistrationRefused("Invalid registration PSK")
            request = NodeRegistrationRequest(psk=psk, capability=capability, node_secret=node_secret)
            bootstrap, _ = await register_node(self._ctx, self._endpoints(), request, _IN_PROCESS)
            return bootstrap

    async def fetch_config(self, session: NodeBootstrapPayload) -> NodeConfigurationPayload:
        with _translated():
            return await deliver_config(self._ctx, self._endpoints(), self._node(session))

    async def acknowledge(self, session: NodeBootstrapPayload, ack: NodeConfigAck) -> None:
        with _translated():
            await acknowledge_config(self._ctx, self._node(session), ack)

    async def report(self, session: NodeBootstrapPayload, capability: NodeCapabilityReport) -> None:
        with _translated():
            await ingest_report(self._ctx, self._node(session), capability)

    async def heartbeat(self, session: NodeBootstrapPayload, beat: NodeHeartbeat) -> None:
        with _translated():
            await record_heartbeat(self._ctx, self._node(session), beat)

    async def shutting_down(self, session: NodeBootstrapPayload, notice: NodeHeartbeat) -> None:
        with _translated():
            await announce_shutdown(self._ctx, self._node(session), notice)


@contextmanager
def _translated(*, registering: bool = False) -> Iterator[None]:
    """Turns the control plane's own exceptions into the client's, as its HTTP edge would."""
    try:
        yield
    except ProblemError as error:
        raise _error_for(error.status, error.detail, registering=registering) from error
    except (psycopg.Error, OSError, TimeoutError) as error:
        raise ControlPlaneUnavailable(f"control plane database: {error.__class__.__name__}") from error
