"""Calling a node's Worker API: over HTTP, or in-process when the node runs in this process.

Both implementations of :class:`WorkerClient` answer the same way: a ``RunJobResponse``, or a
:class:`WorkerCallError` whose message is safe to store in a job result (it never holds the
bearer token). In-process calls go through the same ``WorkerService`` methods the Worker API's
HTTP handlers call, token check included.
"""

from __future__ import annotations

import asyncio
import logging
from http import HTTPStatus
from typing import Protocol

import httpx

from cynode.context import LocalWorker
from cynode.contracts.codec import PayloadError, decode, encode, to_json_object
from cynode.contracts.worker import CancelJobResponse, RunJobRequest, RunJobResponse
from cynode.dispatch.settings import DispatchSettings
from cynode.http.problems import ProblemError
from cynode.nodes.dispatchable import DispatchableNode

log = logging.getLogger(__name__)

RUN_JOB_PATH = "/v1/worker/jobs:run"
_DETAIL_CHARS = 500
# The node could not take the job now but may later: the attempt is given back to the queue.
_BUSY_STATUSES = frozenset({HTTPStatus.CONFLICT, HTTPStatus.TOO_MANY_REQUESTS})


class WorkerCallError(Exception):
    """The Worker API gave no usable answer; ``status`` is its HTTP status when it answered at all."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status

    @property
    def busy(self) -> bool:
        """The node refused only because it is full or still runs this job (429, 409)."""
        return self.status in _BUSY_STATUSES


class WorkerClient(Protocol):
    async def run_job(self, node: DispatchableNode, request: RunJobRequest) -> RunJobResponse:
        """Run the job on ``node`` to its end; raises WorkerCallError when there is no usable answer."""
        ...

    async def cancel_job(self, node: DispatchableNode, job_id: str) -> bool:
        """Kill the job's container on ``node``; False when it was not running there."""
        ...


def _refused(status: int, detail: str | None) -> WorkerCallError:
    message = f"worker api returned {status}"
    if detail:
        message += f": {detail[:_DETAIL_CHARS]}"
    return WorkerCallError(message, status)


def _checked(response: RunJobResponse, request: RunJobRequest) -> RunJobResponse:
    if response.job_id != request.job_id:
        raise WorkerCallError("worker api returned an invalid response: it is about another job")
    return response


class HttpWorkerClient:
    """Worker APIs reached at each node's ``worker_api_target_url`` with its bearer token."""

    def __init__(self, http: httpx.AsyncClient, settings: DispatchSettings) -> None:
        self._http = http
        self._settings = settings

    async def _post(self, node: DispatchableNode, path: str, body: bytes | None) -> httpx.Response:
        """POST, retrying only failures to connect (the request never reached the node, so no job started)."""
        url = node.worker_api_target_url.rstrip("/") + path
        headers = {"Authorization": f"Bearer {node.bearer_token()}", "Content-Type": "application/json"}
        attempts = self._settings.transport_attempts
        for attempt in range(1, attempts + 1):
            try:
                return await self._http.post(url, content=body, headers=headers)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                if attempt == attempts:
                    raise WorkerCallError(f"worker api unreachable after {attempts} attempts: {exc}") from None
                log.warning(
                    "worker_api_connect_retry",
                    extra={"node_slug": node.node_slug, "attempt": attempt, "error": str(exc)},
                )
                await asyncio.sleep(self._settings.transport_retry_seconds)
            except httpx.HTTPError as exc:
                raise WorkerCallError(f"worker api call failed: {type(exc).__name__}: {exc}") from None
        raise AssertionError("unreachable: the loop returns or raises")

    async def run_job(self, node: DispatchableNode, request: RunJobRequest) -> RunJobResponse:
        body = to_json_object(request)
        # Sent even when 1 (which the contract would omit): the fencing token belongs in every call.
        body["attempt"] = request.attempt
        response = await self._post(node, RUN_JOB_PATH, encode(body))
        if response.status_code != HTTPStatus.OK:
            raise _refused(response.status_code, _problem_detail(response))
        try:
            return _checked(decode(response.content, RunJobResponse), request)
        except PayloadError as exc:
            raise WorkerCallError(f"worker api returned an invalid response: {exc}") from None

    async def cancel_job(self, node: DispatchableNode, job_id: str) -> bool:
        response = await self._post(node, f"/v1/worker/jobs/{job_id}:cancel", None)
        if response.status_code != HTTPStatus.OK:
            raise _refused(response.status_code, _problem_detail(response))
        try:
            return decode(response.content, CancelJobResponse).canceled
        except PayloadError as exc:
            raise WorkerCallError(f"worker api returned an invalid cancel response: {exc}") from None


def _problem_detail(response: httpx.Response) -> str | None:
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        return None
    return detail if isinstance(detail, str) else None


class InProcessWorkerClient:
    """The Worker API of this process's own node, called without HTTP."""

    def __init__(self, local: LocalWorker) -> None:
        self._service = local.service

    def _authenticate(self, node: DispatchableNode) -> None:
        self._service.authenticate(f"Bearer {node.bearer_token()}")

    async def run_job(self, node: DispatchableNode, request: RunJobRequest) -> RunJobResponse:
        try:
            self._authenticate(node)
            response = await self._service.run_job(request)
        except ProblemError as exc:
            raise _refused(exc.status, exc.detail) from None
        await self._service.release_job(request.job_id)
        return _checked(response, request)

    async def cancel_job(self, node: DispatchableNode, job_id: str) -> bool:
        try:
            self._authenticate(node)
        except ProblemError as exc:
            raise _refused(exc.status, exc.detail) from None
        return self._service.cancel_job(job_id)


class WorkerClients:
    """Picks the in-process client for this process's own node and HTTP for every other."""

    def __init__(self, http: WorkerClient, local_worker: LocalWorker | None) -> None:
        self._http = http
        self._local_slug = local_worker.node_slug if local_worker else None
        self._local = InProcessWorkerClient(local_worker) if local_worker else None

    def for_node(self, node: DispatchableNode) -> WorkerClient:
        if self._local is not None and node.node_slug == self._local_slug:
            return self._local
        return self._http
