"""A running task's output so far, for ``/logs?follow=1`` and the console's task page.

Owns finding where the task's job runs now (its node, from the job row the dispatcher keeps) and
asking that node's Worker API what the job wrote since a byte offset: in process when the node runs
in this process, over HTTP with the node's bearer token otherwise (the dispatcher's worker clients,
so the same deadlines, response cap and TLS trust apply). The Worker API bounds and cleans the
output exactly like a result's (see ``GET /v1/worker/jobs/{id}/output``).

Live output is best effort: when the node cannot be asked (unreachable, its token not opening with
this process's secret key, the job ending just then) there is none for that moment, and whatever
was missed arrives with the job's result.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from types import TracebackType

import httpx

from cynode.context import LocalWorker, OrchestratorContext
from cynode.contracts.codec import PayloadError, convert
from cynode.contracts.job_output import JobOutputResponse, OutputStream
from cynode.contracts.nodes import NodeCapabilityReport
from cynode.dispatch.worker_client import HttpWorkerClient, InProcessWorkerClient, WorkerCallError
from cynode.nodes.dispatchable import DispatchableNode
from cynode.tasks import repository
from cynode.tls import client_context

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunningJob:
    """A task's job that runs on ``node`` now; ``attempt`` tells one run of it from the next."""

    job_id: uuid.UUID
    attempt: int
    node: DispatchableNode


class LiveOutput:
    """Live output for one process; ``local_worker`` is this process's own node, if it runs one."""

    def __init__(self, ctx: OrchestratorContext, local_worker: LocalWorker | None) -> None:
        self._ctx = ctx
        self._local = local_worker

    async def running_job(self, task_id: uuid.UUID) -> RunningJob | None:
        """The task's job running on a node now (``task_id`` already found for the caller)."""
        async with self._ctx.pool.connection() as conn:
            row = await repository.running_job_node(conn, task_id)
        if row is None or row.capability_snapshot is None:
            return None
        try:
            capability = convert(row.capability_snapshot, NodeCapabilityReport)
        except PayloadError:
            return None
        node = DispatchableNode(
            node_id=row.node_id,
            node_slug=row.node_slug,
            worker_api_target_url=row.worker_api_target_url,
            capability=capability,
            _sealed_bearer_token=row.bearer_token_ciphertext,
            _secret_box=self._ctx.secret_box,
        )
        return RunningJob(row.job_id, row.attempt, node)

    def reader(self) -> OutputReader:
        """Reads for one follower (``async with``): an HTTP client is opened only if a remote node is asked."""
        return OutputReader(self._ctx, self._local)


class OutputReader:
    def __init__(self, ctx: OrchestratorContext, local_worker: LocalWorker | None) -> None:
        self._ctx = ctx
        self._local_slug = local_worker.node_slug if local_worker else None
        self._local = InProcessWorkerClient(local_worker) if local_worker else None
        self._http: httpx.AsyncClient | None = None

    async def __aenter__(self) -> OutputReader:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._http is not None:
            await self._http.aclose()

    def _client(self, node: DispatchableNode) -> InProcessWorkerClient | HttpWorkerClient:
        if self._local is not None and node.node_slug == self._local_slug:
            return self._local
        settings = self._ctx.settings
        if self._http is None:
            trust = settings.worker_api_trust
            self._http = httpx.AsyncClient(
                trust_env=False,
                follow_redirects=False,
                verify=client_context(ca_file=trust.ca_file, pinned_sha256=trust.pinned_sha256),
            )
        return HttpWorkerClient(self._http, settings.dispatch)

    async def read(self, job: RunningJob, stream: OutputStream, after: int) -> JobOutputResponse | None:
        """What the job wrote to ``stream`` from byte ``after`` on; None when the node cannot say now."""
        try:
            return await self._client(job.node).job_output(job.node, str(job.job_id), stream, after)
        except WorkerCallError as exc:
            log.info(
                "live_output_unavailable",
                extra={"job_id": str(job.job_id), "node_slug": job.node.node_slug, "error": str(exc)},
            )
            return None


class FollowedOutput:
    """What one follower was sent of a running job's streams, so the job's result adds only the rest."""

    def __init__(self, streams: tuple[OutputStream, ...]) -> None:
        self._streams = streams
        self._run: tuple[uuid.UUID, int] | None = None
        self._offsets: dict[OutputStream, int] = {}
        self._sent: dict[OutputStream, str] = {}

    async def fresh(self, reader: OutputReader, job: RunningJob) -> list[tuple[OutputStream, str]]:
        """The text each stream gained since the last call, in stream order."""
        if self._run != (job.job_id, job.attempt):
            # Another run of the job writes its output from the start again, and only its result is kept.
            self._run = (job.job_id, job.attempt)
            self._offsets = dict.fromkeys(self._streams, 0)
            self._sent = dict.fromkeys(self._streams, "")
        gained = []
        for stream in self._streams:
            chunk = await reader.read(job, stream, self._offsets[stream])
            if chunk is None:
                continue
            self._offsets[stream] = chunk.next_offset
            if chunk.data:
                self._sent[stream] += chunk.data
                gained.append((stream, chunk.data))
        return gained

    def rest(self, stream: OutputStream, final: str) -> str:
        """The part of the stream's final text the follower has not seen yet.

        The final text starts with what was sent, except where the result differs from the live
        reads (a stop note given room at the output limit): then what follows the shared start.
        """
        sent = self._sent.get(stream, "")
        if final.startswith(sent):
            return final[len(sent) :]
        shared = 0
        for sent_char, final_char in zip(sent, final, strict=False):
            if sent_char != final_char:
                break
            shared += 1
        return final[shared:]
