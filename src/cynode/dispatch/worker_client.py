"""Calling a node's Worker API: over HTTP, or in-process when the node runs in this process.

Both implementations of :class:`WorkerClient` answer the same way: a ``RunJobResponse``, or a
:class:`WorkerCallError` whose message is safe to store in a job result (it never holds the
bearer token). In-process calls go through the same ``WorkerService`` methods the Worker API's
HTTP handlers call, token check included.
"""

from __future__ import annotations

import asyncio
import json
import logging
from http import HTTPStatus
from typing import Final, Protocol, TypeVar

import httpx

from cynode.context import LocalWorker
from cynode.contracts.codec import PayloadError, decode, encode, to_json_object
from cynode.contracts.job_output import JobOutputResponse, OutputStream
from cynode.contracts.reasons import EndReason
from cynode.contracts.worker import CancelJobResponse, RunJobRequest, RunJobResponse
from cynode.contracts.worker_jobs import AckJobResponse, JobStateResponse
from cynode.crypto import DecryptionError
from cynode.dispatch.settings import DispatchSettings
from cynode.http.problems import ProblemError
from cynode.nodes.dispatchable import DispatchableNode
from cynode.tls import refused_certificate

log = logging.getLogger(__name__)

_Answer = TypeVar("_Answer", CancelJobResponse, JobStateResponse, AckJobResponse)

RUN_JOB_PATH = "/v1/worker/jobs:run"
HEALTH_PATH = "/healthz"
_DETAIL_CHARS = 500
# The node turned the job away before running it (overloaded, or not able to run jobs right now):
# it goes straight back to the queue for another node.
_NOT_STARTED_STATUSES = frozenset({HTTPStatus.TOO_MANY_REQUESTS, HTTPStatus.SERVICE_UNAVAILABLE})


class WorkerCallError(Exception):
    """The Worker API gave no usable answer; ``status`` is its HTTP status when it answered at all.

    ``never_started`` is True only when the job certainly did not run (the connection was refused,
    or the node answered 429/503): such an attempt may go to another node.
    """

    def __init__(
        self, message: str, status: int | None = None, *, reason: EndReason, never_started: bool = False
    ) -> None:
        super().__init__(message)
        self.status = status
        self.reason: EndReason = reason
        self.never_started = never_started or status in _NOT_STARTED_STATUSES

    @property
    def duplicate(self) -> bool:
        """The node still runs this job (409): another attempt of it is in its way."""
        return self.status == HTTPStatus.CONFLICT


class WorkerClient(Protocol):
    async def run_job(self, node: DispatchableNode, request: RunJobRequest) -> RunJobResponse:
        """Run the job on ``node`` to its end; raises WorkerCallError when there is no usable answer."""
        ...

    async def cancel_job(self, node: DispatchableNode, job_id: str) -> bool:
        """Kill the job's container on ``node``; False when it was not running there."""
        ...

    async def answers(self, node: DispatchableNode) -> bool:
        """True when the node's Worker API answers a health check within the short deadline."""
        ...

    async def job_state(self, node: DispatchableNode, job_id: str) -> JobStateResponse:
        """Whether the job runs on ``node``, finished there (with its kept result), or is unknown there."""
        ...

    async def ack_job(self, node: DispatchableNode, job_id: str) -> bool:
        """Tell ``node`` the job's result is stored, so it drops its copy; False when it kept none."""
        ...


def _token(node: DispatchableNode) -> str:
    """The node's Worker API token; one that no longer opens means nothing can be sent there."""
    try:
        return node.bearer_token()
    except DecryptionError:
        raise WorkerCallError(
            "the node's Worker API token does not open with this orchestrator's secret key",
            reason="node_unreachable",
            never_started=True,
        ) from None


_IMAGE_NOT_ALLOWED: Final = "image_not_allowed"


def _refused(status: int, detail: str | None) -> WorkerCallError:
    message = f"worker api returned {status}"
    if detail:
        message += f": {detail[:_DETAIL_CHARS]}"
    # A node names an image its policy refuses by this reason, first thing in the detail.
    refused_image = detail is not None and detail.startswith(_IMAGE_NOT_ALLOWED)
    return WorkerCallError(message, status, reason=_IMAGE_NOT_ALLOWED if refused_image else "worker_refused")


def _invalid(what: str, exc: Exception | str) -> WorkerCallError:
    return WorkerCallError(f"worker api returned an invalid {what}: {exc}", reason="invalid_response")


def _checked(response: RunJobResponse, request: RunJobRequest) -> RunJobResponse:
    if response.job_id != request.job_id:
        raise _invalid("response", "it is about another job")
    return response


class HttpWorkerClient:
    """Worker APIs reached at each node's ``worker_api_target_url`` with its bearer token.

    Every call has a short connect deadline; a job run may then take as long as the job's
    timeout (the dispatcher watches the node's health meanwhile), while cancels and health checks
    must answer within ``worker_reply_timeout_seconds``. No answer is read past
    ``worker_max_response_bytes``.
    """

    def __init__(self, http: httpx.AsyncClient, settings: DispatchSettings) -> None:
        self._http = http
        self._settings = settings

    def _url(self, node: DispatchableNode, path: str) -> str:
        return node.worker_api_target_url.rstrip("/") + path

    async def _send(
        self, node: DispatchableNode, method: str, path: str, body: bytes | None, *, read_timeout: float
    ) -> tuple[int, bytes]:
        """The status and (capped) body of one call; the node's token is only sent, never reported."""
        headers = {"Authorization": f"Bearer {_token(node)}", "Content-Type": "application/json"}
        timeout = httpx.Timeout(read_timeout, connect=self._settings.worker_connect_timeout_seconds)
        request = self._http.build_request(
            method, self._url(node, path), content=body, headers=headers, timeout=timeout
        )
        try:
            response = await self._http.send(request, stream=True)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            refused = refused_certificate(exc)
            if refused is not None:
                # Not a passing fault: the node will present the same certificate to every attempt.
                raise WorkerCallError(
                    f"worker api TLS certificate refused: {refused}", reason="node_untrusted"
                ) from None
            # The request never reached the node, so no job started.
            raise WorkerCallError(
                f"worker api unreachable: {exc}", reason="node_unreachable", never_started=True
            ) from None
        except httpx.HTTPError as exc:
            raise WorkerCallError(f"worker api call failed: {type(exc).__name__}: {exc}", reason="node_lost") from None
        try:
            content = bytearray()
            async for chunk in response.aiter_raw():
                content += chunk
                if len(content) > self._settings.worker_max_response_bytes:
                    raise _invalid("response", f"it is larger than {self._settings.worker_max_response_bytes} bytes")
        except httpx.HTTPError as exc:
            raise WorkerCallError(
                f"worker api answer broke off: {type(exc).__name__}: {exc}", reason="node_lost"
            ) from None
        finally:
            await response.aclose()
        return response.status_code, bytes(content)

    async def run_job(self, node: DispatchableNode, request: RunJobRequest) -> RunJobResponse:
        body = to_json_object(request)
        # Sent even when 1 (which the contract would omit): the fencing token belongs in every call.
        body["attempt"] = request.attempt
        status, content = await self._send(
            node, "POST", RUN_JOB_PATH, encode(body), read_timeout=self._settings.worker_call_timeout_seconds
        )
        if status != HTTPStatus.OK:
            raise _refused(status, _problem_detail(content))
        try:
            return _checked(decode(content, RunJobResponse), request)
        except PayloadError as exc:
            raise _invalid("response", exc) from None

    async def _short_call(self, node: DispatchableNode, method: str, path: str, answer: type[_Answer]) -> _Answer:
        """A call that must answer within ``worker_reply_timeout_seconds``, decoded as ``answer``."""
        status, content = await self._send(
            node, method, path, None, read_timeout=self._settings.worker_reply_timeout_seconds
        )
        if status != HTTPStatus.OK:
            raise _refused(status, _problem_detail(content))
        try:
            return decode(content, answer)
        except PayloadError as exc:
            raise _invalid(answer.payload_kind.replace("_", " "), exc) from None

    async def cancel_job(self, node: DispatchableNode, job_id: str) -> bool:
        return (await self._short_call(node, "POST", f"/v1/worker/jobs/{job_id}:cancel", CancelJobResponse)).canceled

    async def job_state(self, node: DispatchableNode, job_id: str) -> JobStateResponse:
        answer = await self._short_call(node, "GET", f"/v1/worker/jobs/{job_id}", JobStateResponse)
        if answer.job_id != job_id or (answer.result is not None and answer.result.job_id != job_id):
            raise _invalid("job state response", "it is about another job")
        if answer.state == "finished" and answer.result is None:
            raise _invalid("job state response", "a finished job came without its result")
        return answer

    async def ack_job(self, node: DispatchableNode, job_id: str) -> bool:
        return (await self._short_call(node, "POST", f"/v1/worker/jobs/{job_id}:ack", AckJobResponse)).acknowledged

    async def job_output(
        self, node: DispatchableNode, job_id: str, stream: OutputStream, after: int
    ) -> JobOutputResponse | None:
        """The running job's output on ``stream`` from byte ``after`` on; None when it does not run there."""
        status, content = await self._send(
            node,
            "GET",
            f"/v1/worker/jobs/{job_id}/output?stream={stream}&after={after}",
            None,
            read_timeout=self._settings.worker_reply_timeout_seconds,
        )
        if status == HTTPStatus.NOT_FOUND:
            return None
        if status != HTTPStatus.OK:
            raise _refused(status, _problem_detail(content))
        try:
            output = decode(content, JobOutputResponse)
        except PayloadError as exc:
            raise _invalid("output response", exc) from None
        if output.job_id != job_id or output.stream != stream:
            raise _invalid("output response", "it is about another job or stream")
        return output

    async def answers(self, node: DispatchableNode) -> bool:
        try:
            status, _ = await self._send(
                node, "GET", HEALTH_PATH, None, read_timeout=self._settings.worker_reply_timeout_seconds
            )
        except WorkerCallError:
            return False
        return status == HTTPStatus.OK


def _problem_detail(content: bytes) -> str | None:
    try:
        detail = json.loads(content).get("detail")
    except (ValueError, AttributeError):
        return None
    return detail if isinstance(detail, str) else None


class InProcessWorkerClient:
    """The Worker API of this process's own node, called without HTTP."""

    def __init__(self, local: LocalWorker) -> None:
        self._service = local.service
        self._releases: set[asyncio.Task[None]] = set()

    def _authenticate(self, node: DispatchableNode) -> None:
        """The Worker API's own token check; a refusal is a WorkerCallError like over HTTP."""
        try:
            self._service.authenticate(f"Bearer {_token(node)}")
        except ProblemError as exc:
            raise _refused(exc.status, exc.detail) from None

    async def run_job(self, node: DispatchableNode, request: RunJobRequest) -> RunJobResponse:
        try:
            self._authenticate(node)
            response = await self._service.run_job(request)
        except ProblemError as exc:
            raise _refused(exc.status, exc.detail) from None
        # Like the Worker API after sending its response: the job's directories go once the answer
        # is in hand, without holding up the result on its way to the database.
        release = asyncio.create_task(self._service.release_job(request.job_id), name=f"release-{request.job_id}")
        self._releases.add(release)
        release.add_done_callback(self._releases.discard)
        return _checked(response, request)

    async def cancel_job(self, node: DispatchableNode, job_id: str) -> bool:
        self._authenticate(node)
        return self._service.cancel_job(job_id)

    async def job_output(
        self, node: DispatchableNode, job_id: str, stream: OutputStream, after: int
    ) -> JobOutputResponse | None:
        try:
            self._authenticate(node)
            return await self._service.job_output(job_id, stream, after)
        except ProblemError as exc:
            if exc.status == HTTPStatus.NOT_FOUND:
                return None
            raise _refused(exc.status, exc.detail) from None

    async def answers(self, node: DispatchableNode) -> bool:
        # This process is the node: while it dispatches, it answers.
        return True

    async def job_state(self, node: DispatchableNode, job_id: str) -> JobStateResponse:
        self._authenticate(node)
        return await self._service.job_state(job_id)

    async def ack_job(self, node: DispatchableNode, job_id: str) -> bool:
        self._authenticate(node)
        return (await self._service.ack_job(job_id)).acknowledged


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
