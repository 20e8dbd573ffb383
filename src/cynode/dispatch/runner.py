"""The dispatcher's long-running loop (orchestrator role).

One :class:`Dispatcher` per orchestrator process; any number of them may share a database. Each
sleeps on ``LISTEN cynode_dispatch`` (sent by triggers when a job is queued or requeued, a node
slot frees up, or a node changes in a way that matters to dispatch) with a slow safety poll, and on
every wake:

1. claims queued jobs, interleaving users, for nodes with free sandbox slots that are not held
   (``holds``) until none is left, starting one Worker API call per claim without waiting for it
   (the dispatchable nodes are kept between wakes, :mod:`cynode.dispatch.known_nodes`),
2. reaps expired leases: an attempt whose call was never sent goes back to the queue; one that was
   sent is taken over (``reaper``): in the background its node is asked for the job, and its kept
   answer is stored, its run adopted, or (unknown to the node) the job queued again,
3. goes back to sleep.

Re-running is a decision: an attempt the node turned away before running it (connection refused,
429, 503) goes back to the queue at once, without using up an attempt, and the node is held until
it is heard from again; anything that goes wrong after the run reached the node ends the job
``failed`` with a reason. While a call is in flight its lease is renewed and the node's health is
checked; a node that stops answering for a lease loses the job (``node_lost``) and is held. When
renewal fails (the job was canceled or reaped) the attempt is stopped on its node.
``LISTEN cynode_job_canceled`` makes a cancel stop the container at once when this process holds
the job. Results are stored fenced by the attempt number, so a late or stale answer never
overwrites anything, and an answer that cannot be stored ends the job ``result_not_stored``. Once
an answer is stored (or found stale) the node is told to drop its kept copy (``ack_job``), a
moment later.
Nothing that goes wrong with one job or node stops the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Final, cast, get_args

import httpx
import psycopg

from cynode.cancellation import cancel_until_done
from cynode.context import LocalWorker, OrchestratorContext
from cynode.contracts.codec import PayloadError, convert, to_json_object
from cynode.contracts.reasons import EndReason
from cynode.contracts.worker import RunJobRequest, RunJobResponse, SandboxSpec
from cynode.crypto import SecretBox
from cynode.db import notices
from cynode.db.pool import Connection, Pool, dsn_of
from cynode.dispatch import claims, holds, leases, reaper
from cynode.dispatch.claims import ClaimedJob
from cynode.dispatch.known_nodes import KnownNodes
from cynode.dispatch.settings import DispatchSettings
from cynode.dispatch.worker_client import HttpWorkerClient, WorkerCallError, WorkerClient, WorkerClients
from cynode.nodes.dispatchable import DispatchableNode, dispatchable_nodes
from cynode.tls import client_context

log = logging.getLogger(__name__)

DISPATCH_CHANNEL: Final = "cynode_dispatch"
CANCEL_CHANNEL: Final = "cynode_job_canceled"
NODES_CHANGED: Final = "nodes"
"""The payload of a ``DISPATCH_CHANNEL`` notice sent for a change to a node (the table's name)."""
STOP_GRACE_SECONDS: Final = 5.0
CLAIM_BATCH: Final = 16
"""The most jobs one claim takes for a node: a burst of tasks starts in a few statements, and one
node's free slots are never filled far ahead of the others'."""
ACK_DELAY_SECONDS: Final = 0.05
"""How long after storing a job's answer the node is told it may drop its copy: the moment the answer
is stored is the moment the task's waiters are answered, and the ack (a call the node answers by
deleting files) would compete with that on both ends; the copy is only read again if the store
failed."""
# Wake this long after the next lease's expiry: it is then seen as expired, and a lease another
# dispatcher is taking over right then (locked, so skipped) costs at most a few wake-ups a second.
_EXPIRY_MARGIN_SECONDS: Final = 0.25


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
        self._known_nodes = KnownNodes(nodes_source, max_age=settings.safety_poll_seconds)
        self._settings = settings
        self.owner = owner or lease_owner_name()
        self._wake = asyncio.Event()
        self._in_flight: dict[uuid.UUID, _InFlight] = {}
        self._calls: set[asyncio.Task[None]] = set()
        self._next_expiry: asyncio.TimerHandle | None = None

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
        stuck = await cancel_until_done(tasks, give_up_after=STOP_GRACE_SECONDS)
        if stuck:
            log.warning("dispatcher_stop_abandoned", extra={"tasks": sorted(task.get_name() for task in stuck)})

    # Wake-ups ----------------------------------------------------------------------------------

    async def _listen(self) -> None:
        await notices.listen(
            dsn_of(self._pool),
            [DISPATCH_CHANNEL, CANCEL_CHANNEL],
            self._on_notice,
            on_up=self._listening,
            on_down=lambda: None,  # the safety poll keeps the queue moving meanwhile
            failure_event="dispatch_listen_failed",
            retry_seconds=self._settings.safety_poll_seconds,
        )

    def _listening(self) -> None:
        # Whatever happened while nobody listened: nodes may have changed and jobs been queued.
        self._known_nodes.forget()
        self.wake()

    def _on_notice(self, notice: psycopg.Notify) -> None:
        if notice.channel == CANCEL_CHANNEL:
            self._on_canceled(notice.payload)
            return
        if notice.payload == NODES_CHANGED:
            self._known_nodes.forget()
        self.wake()

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
                # Claims first: a new job must not wait for the lease check; a lease reaped after
                # it frees its slot or requeues its job, and either wakes this loop again.
                await self._claim_all()
                await self._reap()
            except psycopg.Error as exc:
                log.warning("dispatch_pass_failed", extra={"error": str(exc)})
            except Exception:
                # Whatever went wrong with one job or node must not end dispatching for all of them.
                log.exception("dispatch_pass_crashed")
            # asyncio.timeout, not wait_for: on 3.11 wait_for loses a cancel that lands just as the
            # event is set, and the dispatcher would then never stop.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._settings.safety_poll_seconds):
                    await self._wake.wait()

    async def _claim_all(self) -> None:
        nodes = await self._known_nodes.get(self._pool)
        while True:
            async with self._pool.connection() as conn:
                jobs = await claims.claim_jobs(
                    conn, nodes, owner=self.owner, lease_seconds=self._settings.lease_seconds, limit=CLAIM_BATCH
                )
            if not jobs:
                return
            for job in jobs:
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
        call = asyncio.create_task(_logging_crashes(work, name), name=name)
        self._calls.add(call)
        call.add_done_callback(self._calls.discard)

    async def _reap(self) -> None:
        """Deal with every expired lease (taking sent attempts over happens in the background), then
        wake up again when the next lease runs out, so a dead dispatcher's jobs wait no longer."""
        while True:
            # Every pass comes here: when no lease has run out, which is nearly always, one
            # statement says so (and when to look again) without a transaction.
            async with self._pool.connection() as conn:
                seconds = await leases.seconds_to_next_expiry(conn)
            if seconds != 0:
                self._wake_in(seconds)
                return
            async with self._pool.connection() as conn, conn.transaction():
                lease = await reaper.lock_next_expired(conn)
                if lease is None:
                    self._wake_in(0)  # the expired ones are another dispatcher's to deal with: look again soon
                    return
                taken = None
                if not lease.run_sent:
                    outcome = await reaper.requeue_unsent(conn, lease)
                else:
                    taken = await reaper.take_over(
                        conn, lease, owner=self.owner, lease_seconds=self._settings.lease_seconds
                    )
                    outcome = "taking_over" if taken else None
            if taken is not None:
                self._spawn(self._take_over(taken), f"dispatch-takeover-{lease.job_id}")
            log.warning(
                "job_lease_expired",
                extra={"job_id": str(lease.job_id), "attempt": lease.attempt, "outcome": outcome},
            )

    def _wake_in(self, seconds: float | None) -> None:
        if self._next_expiry is not None:
            self._next_expiry.cancel()
        if seconds is not None and seconds < self._settings.safety_poll_seconds:
            self._next_expiry = asyncio.get_running_loop().call_later(seconds + _EXPIRY_MARGIN_SECONDS, self.wake)

    async def _take_over(self, taken: reaper.TakenOver) -> None:
        """Ask the expired attempt's node what became of it: store its kept answer, adopt its run, or
        queue it again; a node that is gone or does not say fails the job (it may have run)."""
        lease = taken.lease
        async with self._pool.connection() as conn:
            nodes = {node.node_id: node for node in await self._nodes(conn)}
        node = nodes.get(lease.node_id) if lease.node_id else None
        if node is None:
            await self._fail_taken_over(lease, "node_lost")
            return
        job = taken.on(node)
        client = self._clients.for_node(node)
        try:
            state = await client.job_state(node, str(job.job_id))
        except WorkerCallError as exc:
            log.warning("job_takeover_unanswered", extra={"job_id": str(job.job_id), "error": str(exc)})
            await self._cancel_quietly(node, client, job.job_id)
            await self._fail_taken_over(lease, "lease_expired")
            return
        log.info(
            "job_taken_over",
            extra={
                "job_id": str(job.job_id),
                "attempt": job.attempt,
                "node_slug": node.node_slug,
                "found": state.state,
            },
        )
        if state.result is not None:
            await self._store(job, state.result)
            await self._ack_quietly(job, client)
        elif state.state == "running":
            self._in_flight[job.job_id] = _InFlight(job, client)
            await self._run(job, client)  # the node joins this call to the run under way
        else:
            async with self._pool.connection() as conn, conn.transaction():
                outcome = await reaper.rerun_unknown(conn, lease)
            self._log_end(job, outcome or "discarded", reason="lease_expired")

    async def _fail_taken_over(self, lease: reaper.ExpiredLease, reason: EndReason) -> None:
        async with self._pool.connection() as conn, conn.transaction():
            failed = await reaper.fail_sent(conn, lease, reason)
        log.warning(
            "job_lease_expired",
            extra={"job_id": str(lease.job_id), "attempt": lease.attempt, "outcome": "failed" if failed else None},
        )

    # One attempt -------------------------------------------------------------------------------

    async def _run(self, job: ClaimedJob, client: WorkerClient) -> None:
        lease_keeper = asyncio.create_task(self._keep_lease(job, client))
        try:
            await self._attempt(job, client)
        except psycopg.Error as exc:
            # The job keeps its lease until it runs out; the reaper then fails it without re-running.
            log.error("job_attempt_not_recorded", extra={"job_id": str(job.job_id), "error": str(exc)})
        except Exception:
            log.exception("job_attempt_crashed", extra={"job_id": str(job.job_id)})
        finally:
            lease_keeper.cancel()
            self._in_flight.pop(job.job_id, None)
            # No wake-up of our own: the write that freed the node's slot notified every dispatcher
            # (sql/0004), and a second pass here would only compete with answering the task's waiters.

    async def _attempt(self, job: ClaimedJob, client: WorkerClient) -> None:
        try:
            sandbox = convert(job.payload, SandboxSpec)
        except PayloadError as exc:
            await self._fail(job, f"job payload is invalid: {exc}", "invalid_payload")
            return
        request = RunJobRequest(
            version=1, task_id=str(job.task_id), job_id=str(job.job_id), sandbox=sandbox, attempt=job.attempt
        )
        async with self._pool.connection() as conn:
            if not await claims.mark_run_sent(conn, job):
                self._log_end(job, "discarded")
                return
        try:
            response = await self._run_watched(job, client, request)
        except WorkerCallError as exc:
            self._known_nodes.forget()  # the node may have moved or changed its token meanwhile
            if exc.never_started:
                await self._give_back(job, str(exc))
            elif exc.duplicate:
                await self._retry_later(job, str(exc))
            else:
                await self._fail(job, str(exc), exc.reason)
            return
        await self._store(job, response)
        await self._ack_quietly(job, client)

    async def _run_watched(self, job: ClaimedJob, client: WorkerClient, request: RunJobRequest) -> RunJobResponse:
        """The node's answer; a node that stops answering health checks for a lease loses the job."""
        call = asyncio.create_task(client.run_job(job.node, request), name=f"dispatch-call-{job.job_id}")
        heard_at = time.monotonic()
        try:
            while True:
                done, _ = await asyncio.wait({call}, timeout=self._settings.lease_renew_seconds)
                if done:
                    return call.result()
                if await client.answers(job.node):
                    heard_at = time.monotonic()
                elif time.monotonic() - heard_at > self._settings.lease_seconds:
                    await self._hold(job.node, "stopped answering during a job")
                    raise WorkerCallError(
                        f"node {job.node.node_slug} stopped answering while it ran the job", reason="node_lost"
                    )
        finally:
            call.cancel()

    async def _store(self, job: ClaimedJob, response: RunJobResponse) -> None:
        """Record the node's answer; one that cannot be stored becomes a ``result_not_stored`` failure."""
        status: claims.EndStatus = "completed" if response.status == "completed" else "failed"
        reason = None if status == "completed" else response_reason(response)
        try:
            async with self._pool.connection() as conn:
                stored = await claims.finish_attempt(
                    conn, job.job_id, job.attempt, status=status, result=storable(response), reason=reason
                )
        except (psycopg.DataError, psycopg.errors.ProgramLimitExceeded) as exc:
            log.error("job_result_not_stored", extra={"job_id": str(job.job_id), "error": str(exc)})
            await self._fail(job, f"the node's answer could not be stored: {exc}", "result_not_stored")
            return
        self._log_end(job, status if stored else "discarded", exit_code=response.exit_code, reason=reason)

    async def _fail(self, job: ClaimedJob, message: str, reason: EndReason) -> None:
        async with self._pool.connection() as conn:
            stored = await claims.finish_attempt(
                conn,
                job.job_id,
                job.attempt,
                status="failed",
                result=claims.dispatch_error_result(message, reason),
                reason=reason,
                error=message,
            )
        self._log_end(job, "failed" if stored else "discarded", error=message, reason=reason)

    async def _give_back(self, job: ClaimedJob, message: str) -> None:
        """The job never started: hold its node and queue the job again at once for another one.

        Both in one transaction, so nobody sees the job queued again while its node is not yet held.
        """
        async with self._pool.connection() as conn, conn.transaction():
            await holds.hold_node(conn, job.node.node_id, message)
            requeued = await claims.requeue(conn, job.job_id, job.attempt, message)
        self._log_end(job, "queued" if requeued else "discarded", error=message)

    async def _retry_later(self, job: ClaimedJob, message: str) -> None:
        async with self._pool.connection() as conn:
            outcome = await claims.requeue_or_fail(conn, job.job_id, job.attempt, message, "worker_refused")
        self._log_end(job, outcome or "discarded", error=message)

    async def _hold(self, node: DispatchableNode, why: str) -> None:
        async with self._pool.connection() as conn:
            await holds.hold_node(conn, node.node_id, why)

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
                async with self._pool.connection() as conn:
                    adopted = await leases.taken_over_elsewhere(conn, job)
                if not adopted:
                    await self._stop_on_node(job, client, "lease_lost")
                return

    async def _stop_on_node(self, job: ClaimedJob, client: WorkerClient, reason: str) -> None:
        log.info("job_stop_requested", extra={"job_id": str(job.job_id), "attempt": job.attempt, "reason": reason})
        await self._cancel_quietly(job.node, client, job.job_id)

    async def _cancel_quietly(self, node: DispatchableNode, client: WorkerClient, job_id: uuid.UUID) -> None:
        try:
            stopped = await client.cancel_job(node, str(job_id))
        except Exception as exc:
            # Whatever stops the stop (the node, or its token no longer opening), the caller goes on.
            log.warning(
                "job_stop_failed",
                extra={"job_id": str(job_id), "node_slug": node.node_slug, "error": f"{type(exc).__name__}: {exc}"},
            )
            return
        log.info("job_stop_sent", extra={"job_id": str(job_id), "node_slug": node.node_slug, "stopped": stopped})

    async def _ack_quietly(self, job: ClaimedJob, client: WorkerClient) -> None:
        """The answer is stored (or stale): the node may drop its copy. A failed ack only leaves the
        copy there until the node's retention time."""
        await asyncio.sleep(ACK_DELAY_SECONDS)
        try:
            await client.ack_job(job.node, str(job.job_id))
        except Exception as exc:
            log.warning(
                "job_ack_failed",
                extra={
                    "job_id": str(job.job_id),
                    "node_slug": job.node.node_slug,
                    "error": f"{type(exc).__name__}: {exc}",
                },
            )


async def _logging_crashes(work: Coroutine[Any, Any, None], name: str) -> None:
    try:
        await work
    except Exception:
        log.exception("dispatch_task_crashed", extra={"task": name})


def response_reason(response: RunJobResponse) -> EndReason:
    """Why a job the node answered for did not complete: the node's word, else what its status says."""
    if response.reason in get_args(EndReason):
        return cast(EndReason, response.reason)
    if response.status == "timeout":
        return "timeout"
    return "exit_nonzero" if response.exit_code > 0 else "not_started"


def storable(response: RunJobResponse) -> dict[str, Any]:
    """The answer as a JSON object PostgreSQL can hold: any NUL a node sent becomes U+FFFD."""
    result = to_json_object(response)
    for stream in ("stdout", "stderr"):
        text = result.get(stream)
        if isinstance(text, str) and "\x00" in text:
            result[stream] = text.replace("\x00", "\ufffd")
            replaced = result.setdefault("replaced", {"stdout": False, "stderr": False})
            replaced[stream] = True
    return result


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
    timeout = httpx.Timeout(settings.worker_reply_timeout_seconds, connect=settings.worker_connect_timeout_seconds)
    trust = ctx.settings.worker_api_trust
    verify = client_context(ca_file=trust.ca_file, pinned_sha256=trust.pinned_sha256)
    async with httpx.AsyncClient(timeout=timeout, trust_env=False, follow_redirects=False, verify=verify) as http:
        clients = WorkerClients(HttpWorkerClient(http, settings), local_worker)
        nodes = NodesSource(ctx.secret_box, ctx.settings.nodes.heartbeat_grace_seconds)
        await Dispatcher(ctx.pool, clients, nodes, settings).run()
