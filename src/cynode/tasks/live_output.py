"""A running task's output so far, for ``/logs?follow=1`` and the console's task page.

Owns where a task's running job writes its output and how the gateway gets at it. The orchestrator
role finds the node that runs the job now (from the job row the dispatcher keeps) and asks that
node's Worker API what the job wrote since a byte offset: in process when the node runs in this
process, over HTTP with the node's bearer token otherwise (the dispatcher's worker clients, so the
same deadlines, response cap and TLS trust apply). A gateway in the same process reads through the
orchestrator directly; a gateway running apart asks the control plane's
``GET /v1/orchestrator/tasks/{id}/output`` with the caller's own bearer token, which is checked
there again. The Worker API bounds and cleans the output exactly like a result's.

Live output is best effort: when it cannot be had (the node or control plane unreachable, the
caller's token expired during a long follow, the job ending just then) there is none for that
moment, and whatever was missed arrives with the job's result.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from http import HTTPStatus
from types import TracebackType
from typing import Final, Protocol

import httpx

from cynode.context import LocalWorker, OrchestratorContext
from cynode.contracts.codec import PayloadError, convert, decode
from cynode.contracts.job_output import JobOutputResponse, OutputStream, TaskOutputResponse
from cynode.contracts.nodes import NodeCapabilityReport
from cynode.dispatch.worker_client import HttpWorkerClient, InProcessWorkerClient, WorkerCallError
from cynode.nodes.dispatchable import DispatchableNode
from cynode.settings import Role
from cynode.tasks import repository
from cynode.tls import client_context

log = logging.getLogger(__name__)

CONTROL_PLANE_TASKS_PATH: Final = "/v1/orchestrator/tasks"
"""The relay answers ``GET <this>/{task id}/output`` on the control plane."""
_RELAY_TIMEOUT: Final = httpx.Timeout(10.0, connect=5.0)


@dataclass(frozen=True)
class Run:
    """One run of a job: another attempt writes its output from the start again."""

    job_id: uuid.UUID
    attempt: int


@dataclass(frozen=True)
class LiveChunk:
    run: Run
    output: JobOutputResponse


class OutputReader(Protocol):
    """Reads a task's running job's output; used as an async context manager by one follower."""

    async def __aenter__(self) -> OutputReader: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    async def read(self, task_id: uuid.UUID, stream: OutputStream, run: Run | None, after: int) -> LiveChunk | None:
        """``stream`` of the task's running job from byte ``after`` on (from 0 if ``run`` is not the
        running one); None when no job runs or its output cannot be had now."""
        ...


class LiveOutput:
    """Live output for one process; ``local_worker`` is this process's own node, if it runs one."""

    def __init__(self, ctx: OrchestratorContext, local_worker: LocalWorker | None) -> None:
        self._ctx = ctx
        self._local = local_worker

    def reader(self, authorization: str) -> OutputReader:
        """A reader for one follower: through this process's orchestrator, or the control plane's
        relay (with the follower's ``authorization``) when this process runs no orchestrator."""
        if Role.ORCHESTRATOR in self._ctx.roles:
            return self.node_reader()
        return ControlPlaneOutputReader(self._ctx, authorization)

    def node_reader(self) -> NodeOutputReader:
        """The orchestrator's own reader, asking nodes directly (the control plane's relay uses it)."""
        return NodeOutputReader(self._ctx, self._local)


class NodeOutputReader:
    """The orchestrator's reader: asks the node running the job; an HTTP client is opened only for a
    node in another process."""

    def __init__(self, ctx: OrchestratorContext, local_worker: LocalWorker | None) -> None:
        self._ctx = ctx
        self._local_slug = local_worker.node_slug if local_worker else None
        self._local = InProcessWorkerClient(local_worker) if local_worker else None
        self._http: httpx.AsyncClient | None = None

    async def __aenter__(self) -> NodeOutputReader:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._http is not None:
            await self._http.aclose()

    async def _running_job(self, task_id: uuid.UUID) -> tuple[Run, DispatchableNode] | None:
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
        return Run(row.job_id, row.attempt), node

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

    async def read(self, task_id: uuid.UUID, stream: OutputStream, run: Run | None, after: int) -> LiveChunk | None:
        running = await self._running_job(task_id)
        if running is None:
            return None
        current, node = running
        try:
            output = await self._client(node).job_output(
                node, str(current.job_id), stream, after if run == current else 0
            )
        except WorkerCallError as exc:
            log.info(
                "live_output_unavailable",
                extra={"job_id": str(current.job_id), "node_slug": node.node_slug, "error": str(exc)},
            )
            return None
        return LiveChunk(current, output) if output is not None else None


class ControlPlaneOutputReader:
    """A separately running gateway's reader: the control plane's relay, with the caller's token."""

    def __init__(self, ctx: OrchestratorContext, authorization: str) -> None:
        self._base_url = ctx.settings.control_plane_public_url.rstrip("/")
        self._authorization = authorization
        self._opened: httpx.AsyncClient | None = None

    async def __aenter__(self) -> ControlPlaneOutputReader:
        # Opened here, not when built: a follow that never starts holds no client.
        self._opened = httpx.AsyncClient(timeout=_RELAY_TIMEOUT, trust_env=False, follow_redirects=False)
        return self

    @property
    def _http(self) -> httpx.AsyncClient:
        if self._opened is None:
            raise RuntimeError("use the reader with async with")
        return self._opened

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._opened is not None:
            await self._opened.aclose()

    async def read(self, task_id: uuid.UUID, stream: OutputStream, run: Run | None, after: int) -> LiveChunk | None:
        query: dict[str, str | int] = {"stream": stream, "after": after}
        if run is not None:
            query.update(job_id=str(run.job_id), attempt=run.attempt)
        url = f"{self._base_url}{CONTROL_PLANE_TASKS_PATH}/{task_id}/output"
        try:
            response = await self._http.get(url, params=query, headers={"Authorization": self._authorization})
        except httpx.HTTPError as exc:
            log.info("live_output_relay_unreachable", extra={"task_id": str(task_id), "error": type(exc).__name__})
            return None
        if response.status_code != HTTPStatus.OK:
            if response.status_code != HTTPStatus.NO_CONTENT:
                log.info("live_output_relay_refused", extra={"task_id": str(task_id), "status": response.status_code})
            return None
        try:
            relayed = decode(response.content, TaskOutputResponse)
            return LiveChunk(Run(uuid.UUID(relayed.job_id), relayed.attempt), relayed.output)
        except (PayloadError, ValueError) as exc:
            log.info("live_output_relay_invalid", extra={"task_id": str(task_id), "error": str(exc)})
            return None


class FollowedOutput:
    """What one follower was sent of a running job's streams, so the job's result adds only the rest."""

    def __init__(self, streams: tuple[OutputStream, ...]) -> None:
        self._streams = streams
        self._run: Run | None = None
        self._offsets: dict[OutputStream, int] = dict.fromkeys(streams, 0)
        self._sent: dict[OutputStream, str] = dict.fromkeys(streams, "")

    async def fresh(self, reader: OutputReader, task_id: uuid.UUID) -> list[tuple[OutputStream, str]]:
        """The text each stream gained since the last call, in stream order."""
        gained = []
        for stream in self._streams:
            chunk = await reader.read(task_id, stream, self._run, self._offsets[stream])
            if chunk is None:
                continue
            if chunk.run != self._run:
                # Another run of the job writes its output from the start again, and only its result is kept.
                self._run = chunk.run
                self._offsets = dict.fromkeys(self._streams, 0)
                self._sent = dict.fromkeys(self._streams, "")
            self._offsets[stream] = chunk.output.next_offset
            if chunk.output.data:
                self._sent[stream] += chunk.output.data
                gained.append((stream, chunk.output.data))
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
