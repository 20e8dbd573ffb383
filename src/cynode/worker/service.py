"""The Worker API's state and rules, independent of HTTP.

Owns the config the node manager applied (bearer token and orchestrator constraints), request
authentication, the request-size and timeout arithmetic, turning a ``RunJobRequest`` into a
sandbox job (image policy, env rules, concurrency) and its result into a ``RunJobResponse``,
readiness, and the start/stop order of the sandbox machinery.

Jobs with ``sandbox.use_inference`` get a per-job inference proxy (``cynode.inference.proxy``) in
front of the node's backend, which the node manager hands over with ``set_inference`` once
``NodeInference.apply`` succeeded; without a running backend such jobs are refused with 400 (the
orchestrator sends them only to nodes that report inference running).

A job runs in a task of the worker's own, not in the request that asked for it: its answer is kept
(``cynode.worker.kept_results``) before it is returned, so an orchestrator that lost the caller can
ask for it (``job_state``) and acknowledge it (``ack_job``). A ``jobs:run`` for a job id that runs
here or whose result is kept never starts a second container: it answers that same job's result.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path

import anyio
from anyio.from_thread import run as run_in_loop
from anyio.to_thread import run_sync
from podman.errors import APIError

from cynode.contracts.job_output import JobOutputResponse, OutputStream
from cynode.contracts.problem import TYPE_UNAVAILABLE
from cynode.contracts.worker import OutputReplacement, OutputTruncation, RunJobRequest, RunJobResponse
from cynode.contracts.worker_jobs import AckJobResponse, JobStateResponse
from cynode.http.problems import ProblemError
from cynode.inference.node import NodeInference
from cynode.inference.proxy import InferenceProxy
from cynode.inference.upstream import Upstream, unix_socket_url
from cynode.sandbox import (
    InferenceProxyServer,
    JobAlreadyRunningError,
    JobInferenceProxy,
    JobSpec,
    PodmanService,
    RunningJob,
    SandboxBusyError,
    SandboxExecutor,
    SandboxSettings,
)
from cynode.sandbox.images import ImageSource
from cynode.sandbox.output import storable_text, utf8_boundary
from cynode.sandbox.profile import INFERENCE_SOCKET_PATH, container_owner
from cynode.worker.kept_results import KeptResults

log = logging.getLogger(__name__)

HARD_MAX_REQUEST_BYTES = 10 * 1024 * 1024
RETRY_AFTER_SECONDS = 5
NOT_CONFIGURED = "worker config not applied (the node manager has not configured this worker yet)"
# A good runtime check is trusted for a minute; a failed one is retried after a few seconds.
_PROBE_FRESH_SECONDS = 60.0
_PROBE_RETRY_SECONDS = 5.0
_STOP_GRACE_SECONDS = 30.0


def fresh_text(written: bytes, after: int) -> tuple[str, int, bool]:
    """``written[after:]`` as storable text, the offset it ends at, and whether bytes were replaced.

    A character the job has only half written yet is held back until the rest of it arrives.
    """
    fresh = written[after:]
    end = utf8_boundary(fresh, len(fresh))
    text, replaced = storable_text(fresh[:end])
    return text, after + end, replaced


@dataclass(frozen=True)
class AppliedConfig:
    bearer_token: str
    max_request_bytes: int | None = None
    max_job_timeout_seconds: int | None = None


@dataclass
class _ProbeResult:
    problem: str | None
    at: float


class WorkerService:
    """Runs Worker API requests against a ``SandboxExecutor``.

    ``podman`` is the API service the executor talks to; the worker starts and stops it.
    ``max_request_bytes`` is the node YAML's ``worker_api.max_request_bytes``; ``kept_results``
    holds finished jobs' answers until an orchestrator acknowledges them.
    """

    def __init__(
        self,
        executor: SandboxExecutor,
        podman: PodmanService,
        *,
        kept_results: KeptResults,
        max_request_bytes: int | None = None,
    ) -> None:
        self._executor = executor
        self._podman = podman
        self._kept = kept_results
        self._runs: dict[str, asyncio.Task[RunJobResponse]] = {}
        self._yaml_max_request_bytes = max_request_bytes
        self._config: AppliedConfig | None = None
        self._inference: NodeInference | None = None
        self._limiter = anyio.CapacityLimiter(executor.settings.max_concurrency)
        self._probe_lock = asyncio.Lock()
        self._probe: _ProbeResult | None = None
        self._jobs_in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @classmethod
    def from_settings(
        cls,
        settings: SandboxSettings,
        *,
        state_dir: Path,
        owner: str,
        max_request_bytes: int | None = None,
    ) -> WorkerService:
        """A worker on this node's own podman service under ``state_dir`` (or ``settings.podman_socket``),
        keeping results in ``state_dir/kept_results``; its containers' owner label is ``owner`` (the node
        slug) with this installation's mark (:func:`container_owner`)."""
        podman = PodmanService(state_dir, socket_url=settings.podman_socket)
        return cls(
            SandboxExecutor(settings, podman.url, owner=container_owner(owner, state_dir)),
            podman,
            kept_results=KeptResults(state_dir / "kept_results"),
            max_request_bytes=max_request_bytes,
        )

    @property
    def settings(self) -> SandboxSettings:
        return self._executor.settings

    @property
    def container_owner(self) -> str:
        """The owner label this node's containers carry (and the only ones it sweeps as leftovers)."""
        return self._executor.owner

    @property
    def podman_url(self) -> str:
        """The podman API jobs run through (the node's inference container can use it too)."""
        return self._podman.url

    def set_image_source(self, source: ImageSource) -> None:
        """Allowlists and registries once the orchestrator's configuration is applied."""
        self._executor.images = source

    def set_inference(self, inference: NodeInference | None) -> None:
        """The node's inference backend that ``use_inference`` jobs reach through their proxy."""
        self._inference = inference

    @property
    def inference(self) -> NodeInference | None:
        """The backend handed over by ``set_inference`` (the Worker API inference route answers from it)."""
        return self._inference

    # Lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Bring up the podman API, remove containers and job directories of an earlier run, and
        check the runtime once. Kept results survive; expired ones are dropped."""
        await run_sync(self._podman.start)
        await run_sync(self._executor.sweep_orphans)
        if self._kept.directory.exists():
            await run_sync(self._kept.prune)
        await self._runtime_problem(force=True)

    async def stop(self) -> None:
        """Kill running jobs, wait for their results to settle, then stop the podman service."""
        self._executor.stop_all()
        with anyio.move_on_after(_STOP_GRACE_SECONDS):
            await self._idle.wait()
        try:
            # Job directories are mounts: none may outlive the worker.
            await run_sync(self._executor.sweep_orphans)
        except (APIError, OSError) as exc:
            log.warning("sandbox_final_sweep_failed", extra={"error": str(exc)})
        await run_sync(self._podman.stop)

    def apply_config(
        self,
        *,
        bearer_token: str,
        max_request_bytes: int | None = None,
        max_job_timeout_seconds: int | None = None,
    ) -> None:
        """Adopt the orchestrator's config: the token callers must present and its constraints.

        Takes effect for the next request; jobs already running keep the limits they started with.
        """
        if not bearer_token:
            raise ValueError("the worker bearer token must not be empty")
        for name, value in (
            ("max_request_bytes", max_request_bytes),
            ("max_job_timeout_seconds", max_job_timeout_seconds),
        ):
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive")
        self._config = AppliedConfig(bearer_token, max_request_bytes, max_job_timeout_seconds)
        log.info(
            "worker_config_applied",
            extra={"max_request_bytes": self.max_request_bytes(), "max_job_timeout_seconds": max_job_timeout_seconds},
        )

    # Request rules ---------------------------------------------------------------------------

    def max_request_bytes(self) -> int:
        """min(node YAML limit, config constraint, 10 MiB)."""
        limits = [HARD_MAX_REQUEST_BYTES, self._yaml_max_request_bytes]
        if self._config is not None:
            limits.append(self._config.max_request_bytes)
        return min(limit for limit in limits if limit is not None)

    def authenticate(self, authorization: str | None) -> None:
        """Accept ``Authorization: Bearer <applied token>``; raise a 401 (503 before any config)."""
        config = self._config
        if config is None:
            raise ProblemError(
                HTTPStatus.SERVICE_UNAVAILABLE,
                NOT_CONFIGURED,
                problem_type=TYPE_UNAVAILABLE,
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        scheme, _, token = (authorization or "").partition(" ")
        presented = token.strip().encode()
        if scheme.lower() != "bearer" or not hmac.compare_digest(presented, config.bearer_token.encode()):
            raise ProblemError(
                HTTPStatus.UNAUTHORIZED,
                "Invalid or missing bearer token",
                headers={"WWW-Authenticate": "Bearer"},
            )

    def _job_spec(self, request: RunJobRequest) -> JobSpec:
        sandbox = request.sandbox
        upstream = self._inference.upstream() if self._inference is not None else None
        if sandbox.use_inference and upstream is None:
            raise ProblemError(
                HTTPStatus.BAD_REQUEST,
                "sandbox.use_inference is not available on this node: no inference backend is running here",
            )
        if not sandbox.command:
            detail = (
                "sandbox.command is required (job_spec_json runner jobs are not supported by this node)"
                if sandbox.job_spec_json
                else "sandbox.command is required"
            )
            raise ProblemError(HTTPStatus.BAD_REQUEST, detail)
        if any("\x00" in argument for argument in sandbox.command):
            raise ProblemError(HTTPStatus.BAD_REQUEST, "sandbox.command must not contain NUL characters")
        for key, value in sandbox.env.items():
            if not key or "=" in key or "\x00" in key or "\x00" in value:
                raise ProblemError(
                    HTTPStatus.BAD_REQUEST,
                    "sandbox.env names must be non-empty without '=' or NUL, and values without NUL",
                )
        image = sandbox.image or self.settings.default_image
        refusal = self._executor.images.refusal(image)
        if refusal is not None:
            raise ProblemError(HTTPStatus.BAD_REQUEST, refusal)
        # Both network policies mean "no network" for now, so neither changes the container profile.
        constraint = self._config.max_job_timeout_seconds if self._config else None
        proxy = (
            JobInferenceProxy(self._proxy_server(upstream, request.job_id), unix_socket_url(INFERENCE_SOCKET_PATH))
            if sandbox.use_inference and upstream
            else None
        )
        return JobSpec(
            task_id=request.task_id,
            job_id=request.job_id,
            attempt=request.attempt,
            image=image,
            command=tuple(sandbox.command),
            env=dict(sandbox.env),
            timeout_seconds=self.settings.effective_timeout(sandbox.timeout_seconds, constraint),
            job_spec_json=sandbox.job_spec_json,
            inference_proxy=proxy,
        )

    @staticmethod
    def _proxy_server(upstream: Upstream, job_id: str) -> InferenceProxyServer:
        """Serves the job's proxy from the worker's event loop; entered from the job's thread."""

        @contextmanager
        def serve(socket_path: Path) -> Iterator[None]:
            proxy = InferenceProxy(socket_path, upstream, job_id=job_id)
            run_in_loop(proxy.start)
            try:
                yield
            finally:
                run_in_loop(proxy.stop)

        return serve

    # Jobs ------------------------------------------------------------------------------------

    async def run_job(self, request: RunJobRequest) -> RunJobResponse:
        """Run the job to its end and build the response; raises ProblemError for refusals.

        A job id that runs here already, or whose result is kept, is not started again: the call
        waits for (or returns) that run's answer. A cancelled job (see ``cancel_job``) ends with
        status ``failed``, ``exit_code`` -1 and a ``[cynode] job canceled`` note at the end of
        stderr: the response schema has no ``canceled`` status, and the orchestrator records the
        task as canceled on its own side.
        """
        if self.settings.mode == "disabled":
            raise ProblemError(
                HTTPStatus.SERVICE_UNAVAILABLE,
                "sandbox execution is disabled on this node",
                problem_type=TYPE_UNAVAILABLE,
            )
        earlier = await self._earlier_run(request)
        if earlier is not None:
            return earlier
        spec = self._job_spec(request)
        try:
            job = self._executor.reserve(spec.job_id)
        except SandboxBusyError:
            raise ProblemError(
                HTTPStatus.TOO_MANY_REQUESTS,
                f"all {self.settings.max_concurrency} sandbox slots are busy",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            ) from None
        except JobAlreadyRunningError:
            raise ProblemError(HTTPStatus.CONFLICT, f"job {spec.job_id} is already running on this node") from None
        self._jobs_in_flight += 1
        self._idle.clear()
        run = asyncio.create_task(self._run_and_keep(job, spec), name=f"worker-job-{spec.job_id}")
        self._runs[spec.job_id] = run
        # Shielded: a caller that goes away (its orchestrator died) leaves the job running.
        return await asyncio.shield(run)

    async def _earlier_run(self, request: RunJobRequest) -> RunJobResponse | None:
        """The answer of this job id's run that is under way or kept here, if there is one."""
        if request.job_id not in self._runs:
            kept = await run_sync(self._kept.get, request.job_id)
            if kept is not None:
                log.info("job_run_replayed", extra={"job_id": request.job_id, "attempt": request.attempt})
                return kept.response
        running = self._runs.get(request.job_id)  # another call may have started it while the file was read
        if running is None:
            return None
        log.info("job_run_joined", extra={"job_id": request.job_id, "attempt": request.attempt})
        return await asyncio.shield(running)

    async def _run_and_keep(self, job: RunningJob, spec: JobSpec) -> RunJobResponse:
        try:
            with job:
                outcome = await run_sync(self._executor.run, job, spec, limiter=self._limiter)
            response = RunJobResponse(
                version=1,
                task_id=spec.task_id,
                job_id=spec.job_id,
                status=outcome.status,
                exit_code=outcome.exit_code,
                stdout=outcome.stdout.text,
                stderr=outcome.stderr.text,
                started_at=outcome.started_at,
                ended_at=outcome.ended_at,
                truncated=OutputTruncation(stdout=outcome.stdout.truncated, stderr=outcome.stderr.truncated),
                replaced=OutputReplacement(stdout=outcome.stdout.replaced, stderr=outcome.stderr.replaced),
                reason=outcome.reason,
                image_pull=outcome.image_pull,
            )
            try:
                # Kept before the run is forgotten, so the job is never both not running and not kept.
                await run_sync(self._kept.keep, spec.attempt, response)
            except OSError as exc:
                log.error("job_result_not_kept", extra={"job_id": spec.job_id, "error": str(exc)})
            return response
        finally:
            del self._runs[spec.job_id]
            self._jobs_in_flight -= 1
            if not self._jobs_in_flight:
                self._idle.set()

    async def job_state(self, job_id: str) -> JobStateResponse:
        """Whether ``job_id`` runs here, finished with a kept result, or is unknown to this node."""
        if job_id in self._runs:
            return JobStateResponse(version=1, job_id=job_id, state="running")
        kept = await run_sync(self._kept.get, job_id)
        if kept is None:
            return JobStateResponse(version=1, job_id=job_id, state="unknown")
        return JobStateResponse(version=1, job_id=job_id, state="finished", attempt=kept.attempt, result=kept.response)

    async def ack_job(self, job_id: str) -> AckJobResponse:
        """An orchestrator stored the job's result: drop the node's copy."""
        acknowledged = await run_sync(self._kept.acknowledge, job_id)
        log.info("job_result_acknowledged", extra={"job_id": job_id, "kept": acknowledged})
        return AckJobResponse(version=1, job_id=job_id, acknowledged=acknowledged)

    async def job_output(self, job_id: str, stream: OutputStream, after: int) -> JobOutputResponse:
        """What the running job wrote to ``stream`` from byte ``after`` on; 404 unless it runs here
        now, 400 for an offset past the output limit or past what it wrote so far."""
        limit = self.settings.max_output_bytes
        if not 0 <= after <= limit:
            raise ProblemError(HTTPStatus.BAD_REQUEST, f"after must be a byte offset from 0 to {limit}")
        capture = await run_sync(self._executor.output_so_far, job_id, stream)
        if capture is None:
            raise ProblemError(HTTPStatus.NOT_FOUND, f"job {job_id} is not running on this node")
        written = capture.kept
        if after > len(written):
            raise ProblemError(
                HTTPStatus.BAD_REQUEST, f"after ({after}) is past the {len(written)} bytes of {stream} written so far"
            )
        text, end, replaced = fresh_text(written, after)
        return JobOutputResponse(
            version=1,
            job_id=job_id,
            stream=stream,
            after=after,
            next_offset=end,
            data=text,
            truncated=capture.full,
            replaced=replaced,
        )

    def cancel_job(self, job_id: str) -> bool:
        """Kill the running job's container; False when no such job runs here."""
        return self._executor.cancel(job_id)

    async def release_job(self, job_id: str) -> None:
        """Delete the job's host directories once its response has been delivered."""
        await run_sync(self._executor.release_job_dirs, job_id)

    # Readiness -------------------------------------------------------------------------------

    async def readiness(self) -> str | None:
        """None when jobs can run: config applied, mount root writable, runtime able to run a container."""
        if self.settings.mode == "disabled":
            return "sandbox.mode is disabled: this node runs no sandbox jobs"
        if self._config is None:
            return NOT_CONFIGURED
        problem = await run_sync(self._executor.mount_root_problem)
        if problem is None:
            problem = await run_sync(self._podman.problem)
        return problem or await self._runtime_problem()

    async def _runtime_problem(self, *, force: bool = False) -> str | None:
        async with self._probe_lock:
            last = self._probe
            if not force and last is not None:
                age = time.monotonic() - last.at
                if age < (_PROBE_FRESH_SECONDS if last.problem is None else _PROBE_RETRY_SECONDS):
                    return last.problem
            problem = await run_sync(self._executor.probe)
            if problem is not None:
                log.warning("sandbox_runtime_check_failed", extra={"reason": problem})
            self._probe = _ProbeResult(problem, time.monotonic())
            return problem
