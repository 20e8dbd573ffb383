"""Runs one job in its sandbox container and returns its bounded result.

Owns the run of a job from start to end: its host directories (``job_dirs``), its container
(configured by ``profile``) created, started, waited for and always removed, its deadline and
cancellation (both kill the container), the watch for its process limit (``bounds``), and reading
its output back (``capture``). Also the node-level chores: the sweep of containers and job
directories a previous run of this node left behind, and the runtime probe. Concurrency slots
live in ``slots``.

All methods block; the Worker API calls them from worker threads.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from podman import PodmanClient
from podman.errors import APIError, NotFound

from cynode.contracts.reasons import EndReason
from cynode.contracts.worker import ImagePull
from cynode.sandbox.bounds import LogTrimWatch, PidsWatch, exit_reason
from cynode.sandbox.capture import Stream, read_stream
from cynode.sandbox.images import ImagePullError, ImageSource
from cynode.sandbox.job_dirs import JobDirectories, JobDirs
from cynode.sandbox.output import CapturedOutput, OutputCapture
from cynode.sandbox.profile import (
    INFERENCE_SOCKET_NAME,
    LABEL_OWNER,
    InferenceProxyServer,
    JobSpec,
    container_args,
)
from cynode.sandbox.settings import SandboxSettings
from cynode.sandbox.slots import RunningJob, Slots, StopReason

log = logging.getLogger(__name__)

NOT_RUN_EXIT_CODE = -1
_KILL_SIGNAL = 9
_PROBE_TIMEOUT_SECONDS = 60

JobStatus = Literal["completed", "failed", "timeout"]

_STOP_NOTES: dict[StopReason, str] = {
    "timeout": "",
    "canceled": "\n[cynode] job canceled on request; its container was killed\n",
    "shutdown": "\n[cynode] worker shutting down; the job's container was killed\n",
    "pids": "\n[cynode] job kept hitting its process limit; its container was killed\n",
}


@dataclass(frozen=True)
class JobOutcome:
    status: JobStatus
    exit_code: int
    stdout: CapturedOutput
    stderr: CapturedOutput
    started_at: datetime
    ended_at: datetime
    reason: EndReason | None = None
    """Why the job did not complete; None when it did."""
    image_pull: ImagePull | None = None
    """How its image was pulled; None when the image was present."""


@dataclass(frozen=True)
class _Ending:
    """How a started container ended: its exit code (None if unknown), the runtime's error,
    whether forks were refused at its process limit, and whether its log was trimmed at its cap."""

    exit_code: int | None
    runtime_error: str = ""
    forks_refused: bool = False
    log_trimmed: bool = False


def _now() -> datetime:
    return datetime.now(UTC)


def _log_path(container: Any) -> str | None:
    """Where conmon writes the container's log, from the inspect data podman-py keeps."""
    path = container.attrs.get("HostConfig", {}).get("LogConfig", {}).get("Path")
    return path if isinstance(path, str) else None


class SandboxExecutor:
    """Runs jobs through the podman API at ``podman_url``; ``owner`` labels this node's containers."""

    def __init__(self, settings: SandboxSettings, podman_url: str, *, owner: str = "cynode") -> None:
        self.settings = settings
        self._url = podman_url
        self.owner = owner
        self.images = ImageSource(node_allowed=settings.allowed_images)
        """Allowlists and registries; the node manager adds the orchestrator's once its config is applied."""
        self._slots = Slots(settings.max_concurrency, self._kill)
        self._dirs = JobDirectories(settings)

    def _client(self) -> PodmanClient:
        # One client per operation: requests sessions are not meant to be shared across threads.
        return PodmanClient(base_url=self._url)

    # Slots -----------------------------------------------------------------------------------

    def reserve(self, job_id: str) -> RunningJob:
        """Take a concurrency slot for ``job_id`` without waiting."""
        return self._slots.reserve(job_id)

    def cancel(self, job_id: str) -> bool:
        """Kill a running job's container; False when no such job is running here."""
        job = self._slots.running(job_id)
        if job is None:
            return False
        job.stop("canceled")
        log.info("sandbox_job_cancel_requested", extra={"job_id": job_id})
        return True

    def output_so_far(self, job_id: str, stream: Stream) -> OutputCapture | None:
        """What a running job wrote to ``stream`` so far, up to the output limit; None when no such
        job runs here or it has finished (its output then travels with its result)."""
        job = self._slots.running(job_id)
        if job is None:
            return None
        # The image pull's notes come first on stderr, before and after the container exists.
        preamble = job.preamble if stream == "stderr" else b""
        capture = OutputCapture(self.settings.max_output_bytes)
        capture.feed(preamble)
        container_id = job.container_id
        if container_id is not None:
            with self._client() as client:
                capture = read_stream(client, container_id, stream, self.settings.max_output_bytes, preamble=preamble)
        # Checked after the read: a container removed while it was read has finished first.
        return None if job.finished else capture

    def stop_all(self) -> None:
        """Kill every running job's container (worker shutdown)."""
        for job in self._slots.all():
            job.stop("shutdown")

    def image_allowed(self, image: str) -> bool:
        return self.images.refusal(image) is None

    # Host directories ------------------------------------------------------------------------

    def job_root(self, job_id: str) -> Path:
        return self._dirs.root(job_id)

    def release_job_dirs(self, job_id: str) -> None:
        """Delete a finished job's host directories (after its result was delivered)."""
        if self._slots.running(job_id) is None:
            self._dirs.remove(job_id)

    def mount_root_problem(self) -> str | None:
        """None when the mount root exists (or can be created) and is writable, else why not."""
        return self._dirs.mount_root_problem()

    # Containers ------------------------------------------------------------------------------

    def _kill(self, container_id: str) -> None:
        try:
            with self._client() as client:
                client.api.post(f"/containers/{container_id}/kill", params={"signal": _KILL_SIGNAL})
        except (APIError, OSError) as exc:
            # Already exited or removed: the run thread sees that through its wait.
            log.debug("sandbox_kill_failed", extra={"container_id": container_id, "error": str(exc)})

    def run(self, job: RunningJob, spec: JobSpec) -> JobOutcome:
        """Run ``spec`` to completion, timeout or cancellation; the container is always removed."""
        started_at = _now()
        try:
            dirs = self._dirs.prepare(
                spec.job_id, with_run_dir=spec.inference_proxy is not None, job_spec_json=spec.job_spec_json
            )
        except OSError as exc:
            return self._not_run(started_at, f"cannot create the job directories: {exc.strerror or exc}")
        # The proxy outlives the container: it is stopped only after the container is removed.
        with self._client() as client, contextlib.ExitStack() as job_services:
            try:
                missing = not client.images.exists(spec.image)
                pulled = self.images.pull(client, spec.image, job.note) if missing else None
                if spec.inference_proxy is not None and dirs.run is not None:
                    problem = self._serve_inference_proxy(job_services, spec.inference_proxy.serve, dirs)
                    if problem is not None:
                        return self._not_run(started_at, problem)
                container = client.containers.create(**container_args(self.settings, spec, dirs, owner=self.owner))
            except ImagePullError as exc:
                return self._not_run(started_at, self._missing_image(spec.image, str(exc)), "image_pull_failed")
            except APIError as exc:
                return self._not_run(started_at, f"container create failed: {exc.explanation or exc}")
            try:
                outcome = self._run_container(client, container, job, spec, dirs, started_at)
                return dataclasses.replace(outcome, image_pull=pulled)
            finally:
                self._remove(client, container.id)

    def _serve_inference_proxy(
        self, job_services: contextlib.ExitStack, proxy: InferenceProxyServer, dirs: JobDirs
    ) -> str | None:
        """Start the job's proxy on its socket and hand the socket to the sandbox user; None on success."""
        assert dirs.run is not None
        socket_path = dirs.run / INFERENCE_SOCKET_NAME
        try:
            job_services.enter_context(proxy(socket_path))
            self._dirs.hand_to_sandbox_user(socket_path)
        except OSError as exc:
            return f"the job's inference proxy did not start: {exc.strerror or exc}"
        return None

    def _run_container(
        self,
        client: PodmanClient,
        container: Any,
        job: RunningJob,
        spec: JobSpec,
        dirs: JobDirs,
        started_at: datetime,
    ) -> JobOutcome:
        context = {"job_id": spec.job_id, "task_id": spec.task_id, "container_id": container.id}
        ending = _Ending(None)
        if job.attach(container.id):
            ending = self._start_and_wait(client, container, job, spec, context)
        stop = job.finish()
        outcome = self._outcome(client, container.id, stop, ending, dirs, started_at, job.preamble)
        log.info(
            "sandbox_job_finished",
            extra={**context, "status": outcome.status, "exit_code": outcome.exit_code, "reason": outcome.reason},
        )
        return outcome

    def _start_and_wait(
        self, client: PodmanClient, container: Any, job: RunningJob, spec: JobSpec, context: dict[str, str]
    ) -> _Ending:
        deadline = threading.Timer(spec.timeout_seconds, job.stop, args=("timeout",))
        deadline.daemon = True
        deadline.start()
        try:
            # Initialised first: conmon has created the log, and the job has not written to it yet.
            with contextlib.ExitStack() as watches:
                try:
                    container.init()
                    log_watch = watches.enter_context(LogTrimWatch(_log_path(container)))
                    container.start()
                except APIError as exc:
                    # The runtime's message says what was wrong (e.g. the command does not exist).
                    return _Ending(None, f"{exc.explanation or exc}\n")
                log.info("sandbox_job_started", extra={**context, "timeout_seconds": spec.timeout_seconds})
                with self._pids_watch(client, container.id, job) as pids:
                    try:
                        exit_code: int | None = int(container.wait(interval="50ms"))
                    except (APIError, OSError) as exc:
                        log.warning("sandbox_wait_failed", extra={**context, "error": str(exc)})
                        exit_code = None
                return _Ending(exit_code, forks_refused=pids.forks_refused, log_trimmed=log_watch.trimmed)
        finally:
            deadline.cancel()

    def _pids_watch(self, client: PodmanClient, container_id: str, job: RunningJob) -> PidsWatch:
        if self.settings.resources.max_pids is None:
            return PidsWatch.unwatched()
        try:
            state = client.api.get(f"/containers/{container_id}/json").json().get("State", {})
        except (APIError, OSError, ValueError):
            return PidsWatch.unwatched()
        cgroup_path = state.get("CgroupPath")
        if not isinstance(cgroup_path, str) or not cgroup_path:
            return PidsWatch.unwatched()
        return PidsWatch(cgroup_path, lambda: job.stop("pids"))

    def _outcome(
        self,
        client: PodmanClient,
        container_id: str,
        stop: StopReason | None,
        ending: _Ending,
        dirs: JobDirs,
        started_at: datetime,
        preamble: bytes,
    ) -> JobOutcome:
        limit = self.settings.max_output_bytes
        trimmed = ending.log_trimmed
        stdout = read_stream(client, container_id, "stdout", limit, log_trimmed=trimmed).result()
        note = ending.runtime_error + (_STOP_NOTES[stop] if stop else "")
        stderr = read_stream(client, container_id, "stderr", limit, log_trimmed=trimmed, preamble=preamble).result(note)
        ended_at = _now()
        if stop == "timeout":
            return JobOutcome("timeout", NOT_RUN_EXIT_CODE, stdout, stderr, started_at, ended_at, "timeout")
        if stop is not None or ending.exit_code is None:
            return JobOutcome("failed", NOT_RUN_EXIT_CODE, stdout, stderr, started_at, ended_at, stop or "not_started")
        reason = exit_reason(ending.exit_code, workspace_full=dirs.workspace_full(), forks_refused=ending.forks_refused)
        status: JobStatus = "completed" if reason is None else "failed"
        return JobOutcome(status, ending.exit_code, stdout, stderr, started_at, ended_at, reason)

    def _missing_image(self, image: str, problem: str) -> str:
        hint = " (build it with scripts/build-sandbox-image.sh)" if image == self.settings.default_image else ""
        return f"{problem}{hint}"

    def _not_run(self, started_at: datetime, why: str, reason: EndReason = "not_started") -> JobOutcome:
        empty = OutputCapture(self.settings.max_output_bytes)
        return JobOutcome(
            "failed", NOT_RUN_EXIT_CODE, empty.result(), empty.result(f"{why}\n"), started_at, _now(), reason
        )

    def _remove(self, client: PodmanClient, container_id: str) -> None:
        # timeout=0: a force removal kills at once instead of waiting 10 s for SIGTERM to work.
        try:
            client.api.delete(f"/containers/{container_id}", params={"force": True, "timeout": 0}).raise_for_status()
        except NotFound:
            pass
        except (APIError, OSError) as exc:
            log.warning("sandbox_remove_failed", extra={"container_id": container_id, "error": str(exc)})

    # Node lifecycle --------------------------------------------------------------------------

    def sweep_orphans(self) -> int:
        """Remove containers and job directories this node's earlier runs left; returns the containers."""
        with self._client() as client:
            leftovers = client.containers.list(all=True, filters={"label": f"{LABEL_OWNER}={self.owner}"})
            for container in leftovers:
                self._remove(client, container.id)
        if leftovers:
            log.warning("sandbox_orphans_removed", extra={"count": len(leftovers), "owner": self.owner})
        self._dirs.remove_leftovers()
        return len(leftovers)

    def probe(self) -> str | None:
        """Run ``true`` in the default image with the full profile; None on success, else why not."""
        probe_id = f"probe-{uuid.uuid4().hex}"
        spec = JobSpec(
            task_id=probe_id,
            job_id=probe_id,
            image=self.settings.default_image,
            command=("true",),
            env={},
            timeout_seconds=_PROBE_TIMEOUT_SECONDS,
        )
        try:
            outcome = self.run(self._slots.unlisted(probe_id), spec)
        finally:
            self._dirs.remove(probe_id)
        if outcome.status == "completed":
            return None
        detail = outcome.stderr.text.strip().splitlines()
        return f"container runtime check failed: {detail[0] if detail else outcome.status}"
