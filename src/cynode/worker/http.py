"""Worker API routes (port 12090): ``POST /v1/worker/jobs:run`` and ``POST /v1/worker/jobs/{id}:cancel``;
``GET /v1/worker/jobs/{id}`` (running, finished with its kept result, or unknown),
``POST /v1/worker/jobs/{id}:ack`` (an orchestrator stored the result; the node drops its copy) and
``GET /v1/worker/jobs/{id}/output?stream=stdout|stderr&after=<byte offset>`` (a running job's
output so far).

The chat route ``POST /v1/worker/inference/chat/completions`` lives in ``cynode.worker.inference_route``.

Owns the HTTP edge: bearer check before the body is decoded, payload decoding into problem
responses, and deleting a job's host directories only after its response was sent. Health and
readiness routes, problem rendering and the 413 body limit come from ``cynode.http.app``.
"""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from litestar import Litestar, Request, Response, get, post
from litestar.background_tasks import BackgroundTask
from litestar.params import FromPath
from litestar.types import ControllerRouterHandler

from cynode.contracts.worker import CancelJobResponse, RunJobRequest
from cynode.http.app import build_app
from cynode.http.output_query import byte_offset, output_stream
from cynode.http.payloads import json_response, read_json
from cynode.http.problems import ProblemError
from cynode.worker.inference_route import inference_routes
from cynode.worker.service import WorkerService

CANCEL_ACTION = "cancel"
ACK_ACTION = "ack"


def worker_routes(service: WorkerService) -> Sequence[ControllerRouterHandler]:
    @post("/v1/worker/jobs:run", status_code=HTTPStatus.OK)
    async def run_job(request: Request[Any, Any, Any]) -> Response[bytes]:
        service.authenticate(request.headers.get("authorization"))
        job = await read_json(request, RunJobRequest)
        result = await service.run_job(job)
        return json_response(result, background=BackgroundTask(service.release_job, job.job_id))

    # Litestar matches whole path segments, so "<job_id>:cancel" arrives as one parameter.
    @post("/v1/worker/jobs/{job_action:str}", status_code=HTTPStatus.OK)
    async def cancel_job(request: Request[Any, Any, Any], job_action: FromPath[str]) -> Response[bytes]:
        """``{id}:cancel`` kills the job's container (its pending jobs:run call answers ``failed``, exit_code
        -1); ``{id}:ack`` drops the result the node kept for the job."""
        service.authenticate(request.headers.get("authorization"))
        job_id, _, action = job_action.rpartition(":")
        if action == ACK_ACTION and job_id:
            return json_response(await service.ack_job(job_id))
        if action != CANCEL_ACTION or not job_id:
            raise ProblemError(HTTPStatus.NOT_FOUND, "Not found")
        canceled = service.cancel_job(job_id)
        return json_response(CancelJobResponse(version=1, job_id=job_id, canceled=canceled))

    @get("/v1/worker/jobs/{job_id:str}/output")
    async def job_output(request: Request[Any, Any, Any], job_id: FromPath[str]) -> Response[bytes]:
        """The running job's output so far on one stream, from byte ``after`` on (see JobOutputResponse)."""
        service.authenticate(request.headers.get("authorization"))
        query = request.query_params
        stream, after = output_stream(query.get("stream")), byte_offset(query.get("after"))
        return json_response(await service.job_output(job_id, stream, after))

    @get("/v1/worker/jobs/{job_id:str}")
    async def job_state(request: Request[Any, Any, Any], job_id: FromPath[str]) -> Response[bytes]:
        """Running, finished (with the result kept until acked) or unknown to this node."""
        service.authenticate(request.headers.get("authorization"))
        return json_response(await service.job_state(job_id))

    return [run_job, cancel_job, job_output, job_state]


def create_worker_app(service: WorkerService) -> Litestar:
    """The Worker API app; the caller starts and stops ``service`` around serving it."""
    return build_app(
        route_handlers=[*worker_routes(service), *inference_routes(service)],
        readiness=service.readiness,
        max_body_bytes=service.max_request_bytes,
    )
