"""The composition root: turns settings and a role set into running apps and background services.

This is the one place that knows which domain serves which role and how they are wired:
``orchestrator`` serves the control plane (port 12082), ``gateway`` the user API (12080), ``node``
the Worker API (12090). Roles that need PostgreSQL share one pool; with no database URL a private
cluster in the data directory is started (and stopped again if this process started it).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

from litestar import Litestar

from cynode.admin.http import admin_routes
from cynode.cancellation import cancel_until_done
from cynode.chat.errors import openai_too_large
from cynode.chat.http import ChatApi
from cynode.context import LocalWorker, OrchestratorContext
from cynode.crypto import load_secret_box
from cynode.db.embedded import EmbeddedPostgres
from cynode.db.migrations import apply_migrations
from cynode.db.pool import dsn_of, open_pool
from cynode.dispatch.runner import run_dispatcher
from cynode.http.app import build_app
from cynode.http.server import ServedApp
from cynode.identity.auth_cache import AuthCache
from cynode.identity.bootstrap import ensure_bootstrap_users
from cynode.identity.http import identity_routes
from cynode.identity.retention import run_identity_retention
from cynode.nodemanager.config import NodeConfig, load_node_config
from cynode.nodemanager.runner import run_node_manager
from cynode.nodes.admin_http import node_admin_routes
from cynode.nodes.http import control_plane_routes
from cynode.nodes.readiness import inference_path_problem
from cynode.secrets import persistent_secret
from cynode.settings import ListenSettings, Role, Settings, SettingsError
from cynode.tasks.endings import TaskEndings
from cynode.tasks.http import task_output_relay_routes, tasks_routes
from cynode.tasks.live_output import LiveOutput
from cynode.tls import ServerTls, TlsError, is_loopback
from cynode.tokens import TokenSigner
from cynode.web.routes import web_routes
from cynode.worker.http import create_worker_app
from cynode.worker.service import WorkerService

log = logging.getLogger(__name__)

ALL_ROLES = frozenset(Role)


def parse_roles(values: Iterable[str]) -> frozenset[Role]:
    """Roles from repeatable and comma-separated values; ``all`` means every role."""
    roles: set[Role] = set()
    for value in values:
        for item in value.split(","):
            name = item.strip().lower()
            if not name:
                continue
            if name == "all":
                roles.update(ALL_ROLES)
                continue
            try:
                roles.add(Role(name))
            except ValueError:
                choices = ", ".join(["all", *(r.value for r in Role)])
                raise ValueError(f"unknown role {item.strip()!r} (choose from {choices})") from None
    if not roles:
        raise ValueError("no role given (use --role=all|orchestrator|gateway|node)")
    return frozenset(roles)


async def resolve_database(settings: Settings, exits: AsyncExitStack) -> str:
    """The configured database URL, or the DSN of the embedded cluster (stopped on exit)."""
    if settings.database_url:
        return settings.database_url
    embedded = EmbeddedPostgres(settings.data_dir)
    dsn = await asyncio.to_thread(embedded.start)
    exits.push_async_callback(asyncio.to_thread, embedded.stop)
    return dsn


@dataclass
class Stack:
    """Everything one ``cynode serve`` runs; ``start`` then ``stop``, or use ``async with``."""

    settings: Settings
    roles: frozenset[Role]
    env: Mapping[str, str] = field(default_factory=lambda: os.environ)
    """Where secrets are read from (``CYNODE_*`` variables and their ``_FILE`` variants)."""
    apps: dict[Role, ServedApp] = field(default_factory=dict)
    context: OrchestratorContext | None = None
    node: NodeConfig | None = None
    worker: WorkerService | None = None
    chat: ChatApi | None = None
    task_endings: TaskEndings = field(default_factory=TaskEndings)
    """Wakes the task API's long-polls when a task ends (gateway role; its listener runs meanwhile)."""
    failure: BaseException | None = None
    """Why a background service died; set together with ``failed``."""
    failed: asyncio.Event = field(default_factory=asyncio.Event)
    _background: list[asyncio.Task[None]] = field(default_factory=list)
    _exits: AsyncExitStack = field(default_factory=AsyncExitStack)

    async def __aenter__(self) -> Stack:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    def base_url(self, role: Role) -> str:
        return self.apps[role].base_url

    async def start(self) -> None:
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        settings = self.settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        if self.roles & {Role.ORCHESTRATOR, Role.GATEWAY}:
            dsn = await resolve_database(settings, self._exits)
            await apply_migrations(dsn)
            auth_cache = AuthCache()
            pool = await open_pool(dsn, configure=auth_cache.watch_connection)
            self._exits.push_async_callback(pool.close)
            self.context = OrchestratorContext(
                settings=settings,
                roles=self.roles,
                pool=pool,
                signer=TokenSigner(persistent_secret("jwt_secret", settings.data_dir, self.env)),
                secret_box=load_secret_box(settings.data_dir, self.env),
                env=self.env,
                auth_cache=auth_cache,
            )
            if Role.ORCHESTRATOR in self.roles:
                await ensure_bootstrap_users(self.context)
        if Role.NODE in self.roles:
            self.node = load_node_config(settings, self.env)
            self.worker = self._node_worker(self.node)
        if self.context is not None:
            local_worker = LocalWorker(self.node.slug, self.worker) if self.node and self.worker else None
            self.chat = ChatApi(self.context, local_worker)
            self._exits.push_async_callback(self.chat.close)
        planned = self._plan_apps()
        self._secure_listeners(planned)
        for role, served in planned.items():
            served.bind()  # every port is claimed before anything slow starts
            self._exits.push_async_callback(served.stop)
            # With port 0 the kernel picked one; URLs handed to nodes must carry the real port.
            self._listen_settings(role).port = served.port
        if self.worker is not None:
            self._exits.push_async_callback(self._stop_worker)
            await self.worker.start()
        for role, served in planned.items():
            await served.start()
            self.apps[role] = served
            log.info("role_serving", extra={"role": role.value, "url": served.base_url})
        if self.worker is not None:
            # Stop it again before the servers stop: running jobs are killed and their callers still get
            # an answer. The earlier registration covers a start-up that fails before this point.
            self._exits.push_async_callback(self._stop_worker)
        self._exits.push_async_callback(self._stop_background)
        self._start_background()

    def _start_background(self) -> None:
        local_worker = LocalWorker(self.node.slug, self.worker) if self.node and self.worker else None
        if Role.ORCHESTRATOR in self.roles:
            self._spawn("dispatcher", run_dispatcher(self._context, local_worker))
            self._spawn("identity_retention", run_identity_retention(self._context))
        if Role.GATEWAY in self.roles:
            self._spawn("identity_listener", self._context.auth_cache.listen(dsn_of(self._context.pool)))
            self._spawn("task_endings_listener", self.task_endings.listen(dsn_of(self._context.pool)))
        if self.node is not None and self.worker is not None:
            worker_api = self.apps[Role.NODE]
            manager = run_node_manager(
                self.settings, self.node, self.worker, self.env, worker_api.base_url, self.context, worker_api.tls
            )
            self._spawn("node_manager", manager)

    def _spawn(self, name: str, service: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(service, name=name)
        task.add_done_callback(self._on_background_done)
        self._background.append(task)

    def _on_background_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        error = task.exception() or RuntimeError(f"{task.get_name()} stopped on its own")
        log.error("background_service_failed", extra={"service": task.get_name(), "error": str(error)})
        if self.failure is None:
            self.failure = error
        self.failed.set()

    async def _stop_background(self) -> None:
        tasks, self._background = self._background, []
        await cancel_until_done(tasks)

    async def _stop_worker(self) -> None:
        worker, self.worker = self.worker, None
        if worker is not None:
            await worker.stop()

    def _node_worker(self, node: NodeConfig) -> WorkerService:
        return WorkerService.from_settings(
            node.sandbox,
            state_dir=node.state_dir,
            owner=node.slug,
            max_request_bytes=node.worker_api_max_request_bytes,
        )

    def _listen_settings(self, role: Role) -> ListenSettings:
        return {
            Role.GATEWAY: self.settings.gateway,
            Role.ORCHESTRATOR: self.settings.control_plane,
            Role.NODE: self.settings.worker_api,
        }[role]

    def _secure_listeners(self, planned: Mapping[Role, ServedApp]) -> None:
        """Each listener's certificate, checked now; a loud warning for clear text beyond loopback."""
        for role, served in planned.items():
            listen = self._listen_settings(role)
            if listen.tls_cert_file is not None and listen.tls_key_file is not None:
                served.tls = ServerTls(listen.tls_cert_file, listen.tls_key_file)
                try:
                    served.tls.check()
                except TlsError as exc:
                    raise SettingsError(f"{served.name} TLS: {exc}") from exc
            elif not is_loopback(served.host):
                log.warning(
                    "listener_without_tls",
                    extra={
                        "listener": served.name,
                        "host": served.host,
                        "warning": f"{served.name} listens on {served.host} in clear text: tokens and passwords "
                        "cross the network unencrypted; set its tls_cert_file and tls_key_file",
                    },
                )
        if Role.NODE in planned:
            # Bearer tokens ride on every Worker API call: plain HTTP only from this machine.
            planned[Role.NODE].plain_http_loopback_only = True

    def _plan_apps(self) -> dict[Role, ServedApp]:
        settings = self.settings
        planned: dict[Role, ServedApp] = {}
        if Role.GATEWAY in self.roles:
            planned[Role.GATEWAY] = ServedApp(
                "gateway", self._gateway_app(), settings.gateway.host, settings.gateway.port
            )
        if Role.ORCHESTRATOR in self.roles:
            planned[Role.ORCHESTRATOR] = ServedApp(
                "control_plane", self._control_plane_app(), settings.control_plane.host, settings.control_plane.port
            )
        if self.node is not None:
            planned[Role.NODE] = ServedApp(
                "worker_api", self._worker_app(), self.node.worker_api_host, self.node.worker_api_port
            )
        return planned

    def _orchestrator_readiness(self) -> Callable[[], Awaitable[str | None]]:
        context = self._context

        async def readiness() -> str | None:
            return await inference_path_problem(context)

        return readiness

    @property
    def _context(self) -> OrchestratorContext:
        if self.context is None:
            raise RuntimeError("database-backed roles are wired only after the database is up")
        return self.context

    @property
    def _chat(self) -> ChatApi:
        if self.chat is None:
            raise RuntimeError("chat is wired only after the database is up")
        return self.chat

    def _live_output(self) -> LiveOutput:
        return LiveOutput(
            self._context, LocalWorker(self.node.slug, self.worker) if self.node and self.worker else None
        )

    def _gateway_app(self) -> Litestar:
        live_output = self._live_output()
        return build_app(
            route_handlers=[
                *identity_routes(self._context),
                *tasks_routes(self._context, live_output, self.task_endings),
                web_routes(self._context, self._orchestrator_readiness(), self._chat, live_output),
                *self._chat.gateway_routes(),
                *admin_routes(self._context),
                *node_admin_routes(self._context),
            ],
            readiness=self._orchestrator_readiness(),
            max_body_bytes=self.settings.gateway.max_request_bytes,
            too_large_answer=openai_too_large,
            title="CyNode user API gateway",
        )

    def _control_plane_app(self) -> Litestar:
        return build_app(
            route_handlers=[
                *control_plane_routes(self._context),
                *self._chat.control_plane_routes(),
                *task_output_relay_routes(self._context, self._live_output()),
            ],
            readiness=self._orchestrator_readiness(),
            max_body_bytes=self.settings.control_plane.max_request_bytes,
            title="CyNode control plane",
        )

    def _worker_app(self) -> Litestar:
        if self.worker is None:
            raise RuntimeError("the worker service starts before its app is built")
        return create_worker_app(self.worker)

    async def stop(self) -> None:
        await self._exits.aclose()
        self.apps.clear()
        self.context = None
        self.chat = None
        self.node = None
