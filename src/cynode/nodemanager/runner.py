"""The node manager's sequence (worker.md section 1.2) and its long-running upkeep.

Start-up: checks, capabilities, registration, config fetch, apply (inference backend, then the
Worker API's token and constraints), ack. Any failure there is fatal: a config the node cannot
apply is acked ``failed`` with the reason and ``run`` raises, so ``cynode serve`` exits non-zero
and the node never reports ready. Afterwards the node heartbeats well within the control plane's
grace period, sends a fresh capability report when its capabilities change, registers again
before its JWT expires and on any 401 (then fetches, applies and acks its config again, because
a re-created node row has a new token and no ack), and backs off on transport errors without
dying, so an orchestrator restart is survived. Phase 1 does not poll for config changes.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from typing import TypeVar

from anyio.to_thread import run_sync

from cynode.context import OrchestratorContext
from cynode.contracts.nodes import (
    ConfigAckError,
    ConfigAckStatus,
    NodeBootstrapPayload,
    NodeCapabilityReport,
    NodeConfigAck,
    NodeConfigurationPayload,
    NodeConstraints,
    NodeHeartbeat,
)
from cynode.inference.node import InferenceStartError, NodeInference
from cynode.nodemanager.capabilities import build_report, detect_host
from cynode.nodemanager.checks import startup_problem
from cynode.nodemanager.client import (
    ControlPlaneClient,
    ControlPlaneError,
    ControlPlaneRejected,
    ControlPlaneUnavailable,
    HttpControlPlane,
    LocalControlPlane,
    NodeUnauthorized,
    RegistrationRefused,
)
from cynode.nodemanager.config import NodeConfig
from cynode.nodemanager.state import AppliedConfigStore, NodeSecretStore, StaleConfigError
from cynode.nodes.capabilities import capability_hash
from cynode.sandbox.images import ImageSource
from cynode.settings import Settings
from cynode.tls import ServerTls, certificate_file_sha256, client_context
from cynode.worker.service import WorkerService

log = logging.getLogger(__name__)

T = TypeVar("T")

# Renew the JWT once this share of its lifetime has passed, well before the control plane refuses it.
_RENEW_AT_LIFETIME_SHARE = 0.8
_GOODBYE_SECONDS = 3.0


class NodeStartupError(RuntimeError):
    """The node cannot start serving; the message says why (never a secret)."""


@dataclass(frozen=True)
class Timing:
    heartbeat_seconds: float
    """How often the node tells the control plane it is alive."""
    capability_check_seconds: float = 60.0
    """How often capabilities are re-detected; a report is sent only when they changed."""
    backoff_initial_seconds: float = 1.0
    backoff_max_seconds: float = 30.0

    @classmethod
    def for_grace(cls, heartbeat_grace_seconds: float) -> Timing:
        """Three beats per grace period, so one lost beat never makes the node undispatchable."""
        heartbeat = min(max(heartbeat_grace_seconds / 3, 0.5), 30.0)
        return cls(heartbeat_seconds=heartbeat, capability_check_seconds=max(heartbeat, 60.0))


class _Backoff:
    def __init__(self, timing: Timing) -> None:
        self._timing = timing
        self._next = timing.backoff_initial_seconds

    def reset(self) -> None:
        self._next = self._timing.backoff_initial_seconds

    async def wait(self) -> None:
        delay, self._next = self._next, min(self._next * 2, self._timing.backoff_max_seconds)
        await asyncio.sleep(delay)


def _failure_type(error: Exception) -> str:
    """The ack's ``error.type`` for a config that could not be applied."""
    if isinstance(error, StaleConfigError):
        return "stale_config"
    if isinstance(error, InferenceStartError):
        return "inference_start_failed"
    return "invalid_config"


class NodeManager:
    """One node's side of the control-plane relationship; ``run`` until cancelled or fatal."""

    def __init__(
        self,
        node: NodeConfig,
        worker: WorkerService,
        inference: NodeInference,
        client: ControlPlaneClient,
        *,
        psk: str,
        worker_api_url: str,
        timing: Timing,
        worker_api_trust: ssl.SSLContext | None = None,
    ) -> None:
        self.node = node
        self.worker = worker
        self.inference = inference
        self.client = client
        self._psk = psk
        self._worker_api_url = worker_api_url
        self._worker_api_trust = worker_api_trust
        self._timing = timing
        self._backoff = _Backoff(timing)
        self._store = AppliedConfigStore(node.state_dir)
        self._identity = NodeSecretStore(node.state_dir)
        self._session: NodeBootstrapPayload | None = None
        self._reported_hash: str | None = None
        self.applied_config: NodeConfigurationPayload | None = None

    # Start-up --------------------------------------------------------------------------------

    async def run(self) -> None:
        await self.start()
        await self.stay_in_touch()

    async def start(self) -> None:
        """Checks, capabilities, registration, config apply and ack; raises NodeStartupError."""
        problem = await startup_problem(
            self.worker, self._worker_api_url, owner=self.node.slug, worker_api_trust=self._worker_api_trust
        )
        if problem is not None:
            raise NodeStartupError(f"node start-up check failed: {problem}")
        await self._connect("startup")
        log.info("node_started", extra={"node_slug": self.node.slug, "config_version": self._applied_version})

    @property
    def _applied_version(self) -> str | None:
        return self.applied_config.config_version if self.applied_config is not None else None

    async def capability_report(self) -> NodeCapabilityReport:
        host = await run_sync(detect_host, self.node.state_dir)
        return build_report(self.node, host, await self.inference.report(), self._worker_api_url)

    async def _connect(self, reason: str) -> None:
        """Register, then fetch, apply and ack the config; a 401 on the way starts over."""
        while True:
            report = await self.capability_report()
            self._session = await self._retrying(functools.partial(self._register, report))
            self._reported_hash = capability_hash(report)
            log.info(
                "node_registered",
                extra={"node_slug": self.node.slug, "reason": reason, "jwt_expires_at": self._jwt_expiry.isoformat()},
            )
            try:
                config = await self._retrying(lambda: self.client.fetch_config(self._current_session))
                await self._apply(config)
                # A backend the config started (an Ollama container) changes what this node can run:
                # the orchestrator learns it now, not at the next capability check a minute later.
                await self._retrying(self._report_if_changed)
            except NodeUnauthorized as exc:
                log.warning("node_token_refused", extra={"node_slug": self.node.slug, "detail": str(exc)})
                reason = "token refused"
                continue
            return

    async def _register(self, report: NodeCapabilityReport) -> NodeBootstrapPayload:
        try:
            session = await self.client.register(self._psk, report, self._identity.secret())
        except ControlPlaneUnavailable:
            raise  # retried by the caller
        except RegistrationRefused as exc:
            raise NodeStartupError(
                f"the orchestrator refused this node's registration PSK ({exc}); check the PSK from "
                f"{self.node.psk_source.describe()} against the orchestrator's"
            ) from exc
        except ControlPlaneRejected as exc:
            if exc.status == HTTPStatus.CONFLICT:
                raise NodeStartupError(
                    f"the orchestrator knows node {self.node.slug!r} under another identity ({exc.detail}); "
                    f"this node's secret ({self._identity.path}) is missing or not the one issued for that slug"
                ) from exc
            raise NodeStartupError(f"registration failed: {exc}") from exc
        except ControlPlaneError as exc:
            raise NodeStartupError(f"registration failed: {exc}") from exc
        if session.auth.node_secret is not None:
            self._identity.record(session.auth.node_secret)
        return session

    @property
    def _current_session(self) -> NodeBootstrapPayload:
        if self._session is None:
            raise RuntimeError("the node has not registered yet")
        return self._session

    async def _apply(self, config: NodeConfigurationPayload) -> None:
        """Apply ``config`` and ack it; on failure ack ``failed`` with the reason and raise."""
        try:
            self._store.check_not_older(config.config_version)
            # Inference first: the worker turns ready once it has its token, and a node whose
            # backend cannot start must never look ready.
            images = ImageSource.from_config(self.node.sandbox.allowed_images, config)
            await self.inference.apply(config.inference_backend, images)
            self.worker.set_inference(self.inference)
            token = config.worker_api.orchestrator_bearer_token if config.worker_api is not None else None
            if not token:
                raise ValueError("the config carries no worker_api.orchestrator_bearer_token")
            constraints = config.constraints or NodeConstraints()
            self.worker.apply_config(
                bearer_token=token,
                max_request_bytes=constraints.max_request_bytes,
                max_job_timeout_seconds=constraints.max_job_timeout_seconds,
            )
            self.worker.set_image_source(images)
        except (StaleConfigError, InferenceStartError, ValueError) as exc:
            error_type = _failure_type(exc)
            await self._ack_failure(config, ConfigAckError(type=error_type, message=str(exc)))
            raise NodeStartupError(f"cannot apply config {config.config_version}: {error_type}: {exc}") from exc
        await self._retrying(lambda: self.client.acknowledge(self._current_session, self._ack(config, "applied")))
        self._store.record(config.config_version)
        self.applied_config = config
        log.info("node_config_applied", extra={"node_slug": self.node.slug, "config_version": config.config_version})

    def _ack(
        self, config: NodeConfigurationPayload, status: ConfigAckStatus, error: ConfigAckError | None = None
    ) -> NodeConfigAck:
        return NodeConfigAck(
            version=1,
            node_slug=config.node_slug,
            config_version=config.config_version,
            ack_at=datetime.now(UTC).replace(microsecond=0),
            status=status,
            error=error,
        )

    async def _ack_failure(self, config: NodeConfigurationPayload, error: ConfigAckError) -> None:
        log.error(
            "node_config_apply_failed",
            extra={"node_slug": self.node.slug, "config_version": config.config_version, "error_type": error.type,
                   "reason": error.message},
        )  # fmt: skip
        try:
            await self.client.acknowledge(self._current_session, self._ack(config, "failed", error))
        except ControlPlaneError as exc:
            # The node stops either way; the failed ack is a courtesy to the operator.
            log.warning("node_config_failure_not_acknowledged", extra={"node_slug": self.node.slug, "detail": str(exc)})

    async def _retrying(self, call: Callable[[], Awaitable[T]]) -> T:
        """``call`` until the control plane answers; other errors pass through."""
        while True:
            try:
                result = await call()
            except ControlPlaneUnavailable as exc:
                log.warning("control_plane_unavailable", extra={"node_slug": self.node.slug, "detail": str(exc)})
                await self._backoff.wait()
                continue
            self._backoff.reset()
            return result

    # Upkeep ----------------------------------------------------------------------------------

    async def say_goodbye(self) -> None:
        """Tell the control plane this node is stopping, so it dispatches nothing here meanwhile.

        Best effort within a short deadline: a control plane that does not hear it still stops
        dispatching once the heartbeats stop.
        """
        if self._session is None:
            return
        notice = NodeHeartbeat(version=1, node_slug=self.node.slug, sent_at=datetime.now(UTC).replace(microsecond=0))
        try:
            async with asyncio.timeout(_GOODBYE_SECONDS):
                await self.client.shutting_down(self._session, notice)
        except (ControlPlaneError, TimeoutError) as exc:
            log.warning("node_shutdown_notice_failed", extra={"node_slug": self.node.slug, "detail": str(exc)})
            return
        log.info("node_shutdown_announced", extra={"node_slug": self.node.slug})

    @property
    def _jwt_expiry(self) -> datetime:
        return self._current_session.auth.expires_at

    def _renewal_due(self) -> bool:
        session = self._current_session
        lifetime = (session.auth.expires_at - session.issued_at).total_seconds()
        renew_at = session.issued_at.timestamp() + lifetime * _RENEW_AT_LIFETIME_SHARE
        return time.time() >= renew_at

    @property
    def _heartbeat_seconds(self) -> float:
        """Our own pace, or the orchestrator's when it asks for faster beats than our settings give."""
        requested = self._current_session.heartbeat_interval_seconds
        own = self._timing.heartbeat_seconds
        return own if requested is None else min(own, requested)

    async def stay_in_touch(self) -> None:
        next_check = time.monotonic() + self._timing.capability_check_seconds
        while True:
            await asyncio.sleep(self._heartbeat_seconds)
            try:
                if self._renewal_due():
                    await self._connect("token renewal")
                elif time.monotonic() >= next_check:
                    await self._report_or_beat()
                    next_check = time.monotonic() + self._timing.capability_check_seconds
                else:
                    await self._beat()
                self._backoff.reset()
            except NodeUnauthorized as exc:
                log.warning("node_token_refused", extra={"node_slug": self.node.slug, "detail": str(exc)})
                await self._connect("token refused")
            except ControlPlaneError as exc:
                log.warning("control_plane_call_failed", extra={"node_slug": self.node.slug, "detail": str(exc)})
                await self._backoff.wait()

    async def _report_or_beat(self) -> None:
        """A fresh capability report when something changed, else a heartbeat."""
        if not await self._report_if_changed():
            await self._beat()

    async def _report_if_changed(self) -> bool:
        """Send a capability report when it differs from the last one sent; True when it did."""
        report = await self.capability_report()
        digest = capability_hash(report)
        if digest == self._reported_hash:
            return False
        await self.client.report(self._current_session, report)
        self._reported_hash = digest
        log.info("node_capabilities_reported", extra={"node_slug": self.node.slug, "capability_hash": digest})
        return True

    async def _beat(self) -> None:
        session = self._current_session
        if session.orchestrator.endpoints.node_heartbeat_url is None:
            # An orchestrator without the heartbeat extension counts reports as liveness.
            await self.client.report(session, await self.capability_report())
            return
        beat = NodeHeartbeat(version=1, node_slug=self.node.slug, sent_at=datetime.now(UTC).replace(microsecond=0))
        await self.client.heartbeat(session, beat)


def control_plane_client(node: NodeConfig, local_control_plane: OrchestratorContext | None) -> ControlPlaneClient:
    """In-process when the orchestrator runs here, else HTTP to the configured orchestrator URL."""
    if local_control_plane is not None:
        return LocalControlPlane(local_control_plane)
    return HttpControlPlane(
        node.orchestrator_url,
        connect_timeout=node.connect_timeout_seconds,
        request_timeout=node.request_timeout_seconds,
        trust=client_context(ca_file=node.ca_bundle, pinned_sha256=node.pinned_sha256),
    )


async def run_node_manager(
    settings: Settings,
    node: NodeConfig,
    worker: WorkerService,
    env: Mapping[str, str],
    worker_api_url: str,
    local_control_plane: OrchestratorContext | None,
    worker_api_tls: ServerTls | None = None,
) -> None:
    """Register, apply config and stay in touch until cancelled; raising means the node must stop.

    ``worker_api_url`` is where this process's Worker API actually listens (after binding);
    ``local_control_plane`` is set when the orchestrator role runs in this process;
    ``worker_api_tls`` is the Worker API's certificate, pinned when the node checks its own listener.
    """
    psk = node.psk_source.read(env, settings.data_dir, co_located=local_control_plane is not None)
    inference = NodeInference(node.inference, node.state_dir, podman_url=worker.podman_url)
    client = control_plane_client(node, local_control_plane)
    manager = NodeManager(
        node,
        worker,
        inference,
        client,
        psk=psk,
        worker_api_url=worker_api_url,
        timing=Timing.for_grace(settings.nodes.heartbeat_grace_seconds),
        worker_api_trust=(
            client_context(pinned_sha256=certificate_file_sha256(worker_api_tls.cert_file)) if worker_api_tls else None
        ),
    )
    try:
        await manager.run()
    except asyncio.CancelledError:
        # A graceful stop: jobs sent here now would only be refused.
        await manager.say_goodbye()
        raise
    finally:
        await inference.stop()
        await client.aclose()
