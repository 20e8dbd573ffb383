"""The dispatcher's long-running loop (orchestrator role).

One :class:`Dispatcher` per orchestrator process; any number of them may share a database. Each
sleeps on ``LISTEN cynode_dispatch`` (sent by triggers when a job is queued or requeued, a node
slot frees up, or a node's config is applied) with a slow safety poll, and on every wake:

1. reaps expired leases (stopping the stale attempt on its node first, then requeueing or failing
   the job),
2. claims queued jobs for nodes with free sandbox slots until none is left, starting one Worker
   API call per claim without waiting for it,
3. goes back to sleep.

While a call is in flight its lease is renewed; when renewal fails (the job was canceled or
reaped) the attempt is stopped on its node. ``LISTEN cynode_job_canceled`` makes a cancel stop the
container at once when this process holds the job. Results are stored fenced by the attempt
number, so a late or stale answer never overwrites anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Final

import httpx
import psycopg

from cynode.context import LocalWorker, OrchestratorContext
from cynode.contracts.codec import PayloadError, convert, to_json_object
from cynode.contracts.worker import RunJobRequest, SandboxSpec
from cynode.crypto import SecretBox
from cynode.db.pool import Pool
from cynode.dispatch import claims, leases, reaper
from cynode.dispatch.claims import ClaimedJob
from cynode.dispatch.settings import DispatchSettings
from cynode.dispatch.worker_client import HttpWorkerClient, WorkerCallError, WorkerClient, WorkerClients
from cynode.nodes.dispatchable import DispatchableNode, dispatchable_nodes
from cynode.tasks.repository import Connection
from cynode.tls import client_context

log = logging.getLogger(__name__)

DISPATCH_CHANNEL: Final = "cynode_dispatch"
CANCEL_CHANNEL: Final = "cynode_job_canceled"
STOP_GRACE_SECONDS: Final = 5.0


@dataclass(frozen=True)
class _InFlight:
    job: ClaimedJob
    client: WorkerClient


def lease_owner_name() -> str:
    """Who holds a lease, for operators reading ``jobs.lease_owner``: host, pid and a per-run tag."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Dispatcher:
    def __init__(
        self,
        pool: Pool,
        clients: WorkerClients,
        nodes_source: NodesSource,
        settings: DispatchSettings,
        *,
        owner: str | None = None,
    ) -> None:
        self._pool = pool
        self._clients = clients
        self._nodes = nodes_source
        self._settings = settings
        self.owner = owner or lease_owner_name()
        self._wake = asyncio.Event()
        self._in_flight: dict[uuid.UUID, _InFlight] = {}
        self._calls: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        """Dispatch until cancelled; in-flight calls are abandoned and their leases left to expire."""
        log.info("dispatcher_started", extra={"owner": self.owner})
        listener = asyncio.create_task(self._listen(), name="dispatch-listener")
        try:
            await self._loop()
        finally:
            await self._stop({listener, *self._calls})

    def wake(self) -> None:
        self._wake.set()

    async def _stop(self, tasks: set[asyncio.Task[None]]) -> None:
        """Cancel the listener and every call; a call stuck in the database must not hold up shutdown."""
        for task in tasks:
            task.cancel()
        _, stuck = await asyncio.wait(tasks, timeout=STOP_GRACE_SECONDS)
        if stuck:
            log.warning("dispatcher_stop_abandoned", extra={"tasks": sorted(task.get_name() for task in stuck)})

    # Wake-ups ----------------------------------------------------------------------------------

    async def _listen(self) -> None:
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(self._listen_dsn(), autocommit=True)
            except psycopg.Error as exc:
                log.warning("dispatch_listen_failed", extra={"error": str(exc)})
                await asyncio.sleep(self._settings.safety_poll_seconds)
                continue
            try:
                await self._relay_notifications(conn)
            except psycopg.Error as exc:
                log.warning("dispatch_listen_failed", extra={"error": str(exc)})
            finally:
                # close() needs no lock, unlike leaving ``async with`` (a rollback) after a cancel.
                await conn.close()

    async def _relay_notifications(self, conn: psycopg.AsyncConnection[Any]) -> None:
        await conn.execute(f"LISTEN {DISPATCH_CHANNEL}")
        await conn.execute(f"LISTEN {CANCEL_CHANNEL}")
        self.wake()  # whatever happened while nobody listened
        async for notice in conn.notifies():
            if notice.channel == CANCEL_CHANNEL:
                self._on_canceled(notice.payload)
            else:
                self.wake()

    def _listen_dsn(self) -> str:
        # LISTEN needs a connection of its own for the dispatcher's lifetime, not a pooled one.
        conninfo = self._pool.conninfo
        if not isinstance(conninfo, str):
            raise TypeError("the dispatcher needs a pool opened with a plain DSN")
        return conninfo

    def _on_canceled(self, payload: str) -> None:
        try:
            in_flight = self._in_flight.get(uuid.UUID(payload))
        except ValueError:
            return
        if in_flight is not None:
            self._spawn(self._stop_on_node(in_flight.job, in_flight.client, "canceled"), f"dispatch-stop-{payload}")

    # The loop ----------------------------------------------------------------------------------

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self._reap()
                await self._claim_all()
            except psycopg.Error as exc:
                log.warning("dispatch_pass_failed", extra={"error": str(exc)})
            # asyncio.timeout, not wait_for: on 3.11 wait_for loses a cancel that lands just as the
            # event is set, and the dispatcher would then never stop.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._settings.safety_poll_seconds):
                    await self._wake.wait()

    async def _claim_all(self) -> None:
        while True:
            async with self._pool.connection() as conn, conn.transaction():
                nodes = await self._nodes(conn)
                job = await claims.claim_next(conn, nodes, owner=self.owner, lease_seconds=self._settings.lease_seconds)
            if job is None:
                return
            log.info(
                "job_claimed",
                extra={
                    "job_id": str(job.job_id),
                    "task_id": str(job.task_id),
                    "attempt": job.attempt,
                    "node_slug": job.node.node_slug,
                },
            )
            client = self._clients.for_node(job.node)
            self._in_flight[job.job_id] = _InFlight(job, client)
            self._spawn(self._run(job, client), f"dispatch-run-{job.job_id}")

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        call = asyncio.create_task(work, name=name)
        self._calls.add(call)
        call.add_done_callback(self._calls.discard)

    async def _reap(self) -> None:
        while True:
            async with self._pool.connection() as conn, conn.transaction():
                lease = await reaper.lock_next_expired(conn)
                if lease is None:
                    return
                nodes = {node.node_id: node for node in await self._nodes(conn)}
                node = nodes.get(lease.node_id) if lease.node_id else None
                if node is not None:
                    # The stale attempt may still run there: stop it, so the next attempt is not
                    # refused as a duplicate and one job never runs in two containers.
                    await self._cancel_quietly(node, self._clients.for_node(node), lease.job_id)
                outcome = await reaper.reclaim(conn, lease)
            log.warning(
                "job_lease_expired",
                extra={"job_id": str(lease.job_id), "attempt": lease.attempt, "outcome": outcome},
            )

    # One attempt -------------------------------------------------------------------------------

    async def _run(self, job: ClaimedJob, client: WorkerClient) -> None:
        lease_keeper = asyncio.create_task(self._keep_lease(job, client))
        try:
            await self._attempt(job, client)
        except psycopg.Error as exc:
            # The lease runs out and the reaper gives the job another attempt.
            log.error("job_result_not_stored", extra={"job_id": str(job.job_id), "error": str(exc)})
        finally:
            lease_keeper.cancel()
            self._in_flight.pop(job.job_id, None)
            self.wake()  # its node slot is free again

    async def _attempt(self, job: ClaimedJob, client: WorkerClient) -> None:
        try:
            sandbox = convert(job.payload, SandboxSpec)
        except PayloadError as exc:
            await self._fail(job, f"job payload is invalid: {exc}")
            return
        request = RunJobRequest(
            version=1, task_id=str(job.task_id), job_id=str(job.job_id), sandbox=sandbox, attempt=job.attempt
        )
        try:
            response = await client.run_job(job.node, request)
        except WorkerCallError as exc:
            if exc.busy:
                await self._give_back(job, str(exc))
            else:
                await self._fail(job, str(exc))
            return
        status: claims.EndStatus = "completed" if response.status == "completed" else "failed"
        async with self._pool.connection() as conn, conn.transaction():
            stored = await claims.finish_attempt(
                conn, job.job_id, job.attempt, status=status, result=to_json_object(response)
            )
        self._log_end(job, status if stored else "discarded", exit_code=response.exit_code)

    async def _fail(self, job: ClaimedJob, message: str) -> None:
        async with self._pool.connection() as conn, conn.transaction():
            stored = await claims.finish_attempt(
                conn,
                job.job_id,
                job.attempt,
                status="failed",
                result=claims.dispatch_error_result(message),
                error=message,
            )
        self._log_end(job, "failed" if stored else "discarded", error=message)

    async def _give_back(self, job: ClaimedJob, message: str) -> None:
        async with self._pool.connection() as conn, conn.transaction():
            outcome = await claims.requeue_or_fail(conn, job.job_id, job.attempt, message)
        self._log_end(job, outcome or "discarded", error=message)

    def _log_end(self, job: ClaimedJob, outcome: str, **details: object) -> None:
        log.info(
            "job_attempt_ended",
            extra={
                "job_id": str(job.job_id),
                "attempt": job.attempt,
                "node_slug": job.node.node_slug,
                "outcome": outcome,
                **details,
            },
        )

    async def _keep_lease(self, job: ClaimedJob, client: WorkerClient) -> None:
        while True:
            await asyncio.sleep(self._settings.lease_renew_seconds)
            try:
                async with self._pool.connection() as conn:
                    held = await leases.renew_lease(conn, job, self._settings.lease_seconds)
            except psycopg.Error as exc:
                log.warning("job_lease_renew_failed", extra={"job_id": str(job.job_id), "error": str(exc)})
                continue
            if not held:
                await self._stop_on_node(job, client, "lease_lost")
                return

    async def _stop_on_node(self, job: ClaimedJob, client: WorkerClient, reason: str) -> None:
        log.info("job_stop_requested", extra={"job_id": str(job.job_id), "attempt": job.attempt, "reason": reason})
        await self._cancel_quietly(job.node, client, job.job_id)

    async def _cancel_quietly(self, node: DispatchableNode, client: WorkerClient, job_id: uuid.UUID) -> None:
        try:
            stopped = await client.cancel_job(node, str(job_id))
        except WorkerCallError as exc:
            log.warning(
                "job_stop_failed", extra={"job_id": str(job_id), "node_slug": node.node_slug, "error": str(exc)}
            )
            return
        log.info("job_stop_sent", extra={"job_id": str(job_id), "node_slug": node.node_slug, "stopped": stopped})


class NodesSource:
    """The dispatchable nodes as the dispatcher sees them (bearer tokens stay sealed until used)."""

    def __init__(self, secret_box: SecretBox, heartbeat_grace_seconds: int) -> None:
        self._secret_box = secret_box
        self._grace = heartbeat_grace_seconds

    async def __call__(self, conn: Connection) -> list[DispatchableNode]:
        return await dispatchable_nodes(conn, self._secret_box, self._grace)


async def run_dispatcher(ctx: OrchestratorContext, local_worker: LocalWorker | None) -> None:
    """Dispatch until cancelled; ``local_worker`` is this process's own node, reached in-process."""
    settings = ctx.settings.dispatch
    timeout = httpx.Timeout(settings.worker_call_timeout_seconds, connect=settings.worker_connect_timeout_seconds)
    trust = ctx.settings.worker_api_trust
    verify = client_context(ca_file=trust.ca_file, pinned_sha256=trust.pinned_sha256)
    async with httpx.AsyncClient(timeout=timeout, trust_env=False, follow_redirects=False, verify=verify) as http:
        clients = WorkerClients(HttpWorkerClient(http, settings), local_worker)
        nodes = NodesSource(ctx.secret_box, ctx.settings.nodes.heartbeat_grace_seconds)
        await Dispatcher(ctx.pool, clients, nodes, settings).run()
