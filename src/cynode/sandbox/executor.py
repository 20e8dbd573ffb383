"""Runs one job in a locked-down podman container and returns its bounded result.

Owns the sandbox profile (no network, every capability dropped, no-new-privileges, unprivileged
user, cgroup limits and ulimits from settings, per-job ``/workspace`` and ``/job`` bind mounts,
task-context env the request cannot override), the per-job host directories, the concurrency
slots, timeouts and cancellation (both kill the container), output capture and the sweep of
containers a previous run of this node left behind. Every container carries labels naming the
owning node, task, job and attempt.

A job that uses inference (``JobSpec.inference_proxy``) also gets a per-job ``run`` host directory
mounted at ``/run/cynode``: the caller's proxy serves a Unix socket there for the job's lifetime,
the socket is handed to the sandbox user, and ``INFERENCE_PROXY_URL`` (an ``http+unix://`` URL of
the container-side path) is set after every other variable. The container keeps ``--network none``.

Output is read back through the podman API after the container has stopped, one stream at a time,
and the read stops at the output limit. Following the log while the job runs is not used: podman
4.3 ends a follow when the container exits and drops lines it has not sent yet.

All methods block; the Worker API calls them from worker threads.
"""

from __future__ import annotations

import contextlib
import fnmatch
import logging
import os
import shutil
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from podman import PodmanClient
from podman.errors import APIError, NotFound

from cynode.contracts.reasons import EndReason
from cynode.inference.upstream import unix_socket_url
from cynode.sandbox.output import CapturedOutput, OutputCapture
from cynode.sandbox.settings import SandboxSettings

log = logging.getLogger(__name__)

LABEL_OWNER = "io.cynode.sandbox.owner"
LABEL_TASK = "io.cynode.sandbox.task_id"
LABEL_JOB = "io.cynode.sandbox.job_id"
LABEL_ATTEMPT = "io.cynode.sandbox.attempt"

WORKSPACE_DIR = "/workspace"
JOB_DIR = "/job"
RUN_DIR = "/run/cynode"
INFERENCE_SOCKET_NAME = "inference.sock"
INFERENCE_PROXY_ENV = "INFERENCE_PROXY_URL"
INFERENCE_PROXY_URL = unix_socket_url(f"{RUN_DIR}/{INFERENCE_SOCKET_NAME}")
# Set after the request's env so a job can never forge its own identity or workspace.
RESERVED_ENV = ("CYNODE_TASK_ID", "CYNODE_JOB_ID", "CYNODE_WORKSPACE_DIR")

InferenceProxyServer = Callable[[Path], AbstractContextManager[object]]
"""Serves a job's inference proxy on a Unix socket at the given host path while the context is open."""

NOT_RUN_EXIT_CODE = -1
_MIB = 1024 * 1024
_CPU_PERIOD_US = 100_000
_LOG_CHUNK = 64 * 1024
_FRAME_HEADER = 8
_KILL_SIGNAL = 9
_PROBE_TIMEOUT_SECONDS = 60

JobStatus = Literal["completed", "failed", "timeout"]
StopReason = Literal["timeout", "canceled", "shutdown"]

_STOP_NOTES: dict[StopReason, str] = {
    "timeout": "",
    "canceled": "\n[cynode] job canceled on request; its container was killed\n",
    "shutdown": "\n[cynode] worker shutting down; the job's container was killed\n",
}


class SandboxBusyError(RuntimeError):
    """Every concurrency slot is taken."""


class JobAlreadyRunningError(RuntimeError):
    """A job with this id is running on this node right now."""


@dataclass(frozen=True)
class JobSpec:
    task_id: str
    job_id: str
    image: str
    command: tuple[str, ...]
    env: Mapping[str, str]
    timeout_seconds: int
    attempt: int = 1
    job_spec_json: str | None = None
    inference_proxy: InferenceProxyServer | None = None


@dataclass(frozen=True)
class JobDirs:
    """A job's host directories; ``run`` (mounted at ``/run/cynode``) only for inference jobs."""

    workspace: Path
    job: Path
    run: Path | None = None


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


@dataclass
class RunningJob:
    """A reserved concurrency slot and, once created, the job's container.

    Use as a context manager around ``SandboxExecutor.run``: leaving it frees the slot.
    """

    job_id: str
    _executor: SandboxExecutor
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _container_id: str | None = None
    _finished: bool = False
    stop_reason: StopReason | None = None

    def __enter__(self) -> RunningJob:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._executor._release(self)

    def stop(self, reason: StopReason) -> None:
        """Kill the job's container (now, or as soon as it exists); the first reason wins.

        Once the job has finished this does nothing, so a late cancel or deadline cannot relabel
        a job that ended on its own.
        """
        with self._lock:
            if self.stop_reason is not None or self._finished:
                return
            self.stop_reason = reason
            container_id = self._container_id
        if container_id is not None:
            self._executor._kill(container_id)

    def _finish(self) -> StopReason | None:
        """Seal the job after its container stopped; returns why it was stopped, if it was."""
        with self._lock:
            self._finished = True
            return self.stop_reason

    def _attach(self, container_id: str) -> bool:
        """Record the container; False if the job was stopped before it existed."""
        with self._lock:
            self._container_id = container_id
            return self.stop_reason is None


def _now() -> datetime:
    return datetime.now(UTC)


def _frame_payloads(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Payload bytes of podman's multiplexed log stream (8-byte header: stream, pad, u32 length)."""
    header = b""
    remaining = 0
    for chunk in chunks:
        position = 0
        while position < len(chunk):
            if remaining == 0:
                taken = chunk[position : position + _FRAME_HEADER - len(header)]
                header += taken
                position += len(taken)
                if len(header) == _FRAME_HEADER:
                    remaining = int.from_bytes(header[4:], "big")
                    header = b""
                continue
            piece = chunk[position : position + remaining]
            position += len(piece)
            remaining -= len(piece)
            yield piece


def _user_ids(run_as_user: str) -> tuple[int, int]:
    uid, _, gid = run_as_user.partition(":")
    return int(uid), int(gid or uid)


class SandboxExecutor:
    """Runs jobs through the podman API at ``podman_url``; ``owner`` labels this node's containers."""

    def __init__(self, settings: SandboxSettings, podman_url: str, *, owner: str = "cynode") -> None:
        self.settings = settings
        self._url = podman_url
        self.owner = owner
        self._lock = threading.Lock()
        self._running: dict[str, RunningJob] = {}

    def _client(self) -> PodmanClient:
        # One client per operation: requests sessions are not meant to be shared across threads.
        return PodmanClient(base_url=self._url)

    # Slots -----------------------------------------------------------------------------------

    def reserve(self, job_id: str) -> RunningJob:
        """Take a concurrency slot for ``job_id`` without waiting."""
        with self._lock:
            if job_id in self._running:
                raise JobAlreadyRunningError(job_id)
            if len(self._running) >= self.settings.max_concurrency:
                raise SandboxBusyError(job_id)
            job = self._running[job_id] = RunningJob(job_id, self)
        return job

    def _release(self, job: RunningJob) -> None:
        with self._lock:
            if self._running.get(job.job_id) is job:
                del self._running[job.job_id]

    def cancel(self, job_id: str) -> bool:
        """Kill a running job's container; False when no such job is running here."""
        with self._lock:
            job = self._running.get(job_id)
        if job is None:
            return False
        job.stop("canceled")
        log.info("sandbox_job_cancel_requested", extra={"job_id": job_id})
        return True

    def stop_all(self) -> None:
        """Kill every running job's container (worker shutdown)."""
        with self._lock:
            jobs = list(self._running.values())
        for job in jobs:
            job.stop("shutdown")

    def image_allowed(self, image: str) -> bool:
        patterns = self.settings.allowed_images
        return not patterns or any(fnmatch.fnmatchcase(image, pattern) for pattern in patterns)

    # Host directories ------------------------------------------------------------------------

    def job_root(self, job_id: str) -> Path:
        return self.settings.mount_root / job_id

    def _prepare_dirs(self, spec: JobSpec) -> JobDirs:
        root = self.job_root(spec.job_id)
        # A leftover from an earlier attempt must not leak into this one.
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True, mode=0o700)
        dirs = JobDirs(root / "workspace", root / "job", root / "run" if spec.inference_proxy else None)
        created = [directory for directory in (dirs.workspace, dirs.job, dirs.run) if directory is not None]
        for directory in created:
            directory.mkdir(mode=0o700)
        if spec.job_spec_json is not None:
            (dirs.job / "job.json").write_text(spec.job_spec_json, encoding="utf-8")
        for path in (*created, *dirs.job.iterdir()):
            self._hand_to_sandbox_user(path)
        return dirs

    def _hand_to_sandbox_user(self, path: Path) -> None:
        if os.geteuid() == 0:
            os.chown(path, *_user_ids(self.settings.run_as_user))
        else:
            # Rootless podman maps the sandbox user to a subordinate uid the host user cannot chown to.
            path.chmod(0o777 if path.is_dir() else 0o666)

    def release_job_dirs(self, job_id: str) -> None:
        """Delete a finished job's host directories (after its result was delivered)."""
        with self._lock:
            if job_id in self._running:
                return
        shutil.rmtree(self.job_root(job_id), ignore_errors=True)

    def mount_root_problem(self) -> str | None:
        """None when the mount root exists (or can be created) and is writable, else why not."""
        root = self.settings.mount_root
        try:
            root.mkdir(parents=True, exist_ok=True, mode=0o700)
            marker = root / f".write-check-{uuid.uuid4().hex}"
            marker.write_bytes(b"")
            marker.unlink()
        except OSError as exc:
            return f"sandbox mount root {root} is not writable: {exc.strerror or exc}"
        return None

    # Containers ------------------------------------------------------------------------------

    def _container_args(self, spec: JobSpec, dirs: JobDirs) -> dict[str, Any]:
        limits = self.settings.resources
        ulimits = self.settings.ulimits
        env = dict(spec.env)
        env.update(zip(RESERVED_ENV, (spec.task_id, spec.job_id, WORKSPACE_DIR), strict=True))
        mounts = [
            {"type": "bind", "source": str(dirs.workspace), "target": WORKSPACE_DIR, "relabel": "Z"},
            {"type": "bind", "source": str(dirs.job), "target": JOB_DIR, "relabel": "Z"},
        ]
        if dirs.run is not None:
            env[INFERENCE_PROXY_ENV] = INFERENCE_PROXY_URL
            mounts.append({"type": "bind", "source": str(dirs.run), "target": RUN_DIR, "relabel": "Z"})
        args: dict[str, Any] = {
            "image": spec.image,
            "command": list(spec.command),
            "environment": env,
            "labels": {
                LABEL_OWNER: self.owner,
                LABEL_TASK: spec.task_id,
                LABEL_JOB: spec.job_id,
                LABEL_ATTEMPT: str(spec.attempt),
            },
            "network_mode": "none",
            "cap_drop": ["ALL"],
            "no_new_privileges": True,
            "user": self.settings.run_as_user,
            "working_dir": WORKSPACE_DIR,
            "hostname": "sandbox",
            "mounts": mounts,
            # Podman drops its configured defaults once any ulimit is given, so both are always sent.
            "ulimits": [
                {"Name": "nofile", "Soft": ulimits.nofile, "Hard": ulimits.nofile},
                {"Name": "nproc", "Soft": ulimits.nproc, "Hard": ulimits.nproc},
            ],
            # The executor reads output back through the API, which needs a log file.
            "log_config": {"Type": "k8s-file"},
        }
        if limits.max_pids is not None:
            args["pids_limit"] = limits.max_pids
        if limits.max_memory_mb is not None:
            args["mem_limit"] = args["memswap_limit"] = limits.max_memory_mb * _MIB
        if limits.max_cpu_cores is not None:
            args["cpu_period"] = _CPU_PERIOD_US
            args["cpu_quota"] = int(limits.max_cpu_cores * _CPU_PERIOD_US)
        return args

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
            dirs = self._prepare_dirs(spec)
        except OSError as exc:
            return self._not_run(started_at, f"cannot create the job directories: {exc.strerror or exc}")
        # The proxy outlives the container: it is stopped only after the container is removed.
        with self._client() as client, contextlib.ExitStack() as job_services:
            try:
                if not client.images.exists(spec.image):
                    return self._not_run(started_at, self._missing_image(spec.image), "image_missing")
                if spec.inference_proxy is not None and dirs.run is not None:
                    problem = self._serve_inference_proxy(job_services, spec.inference_proxy, dirs.run)
                    if problem is not None:
                        return self._not_run(started_at, problem)
                container = client.containers.create(**self._container_args(spec, dirs))
            except APIError as exc:
                return self._not_run(started_at, f"container create failed: {exc.explanation or exc}")
            try:
                return self._run_container(client, container, job, spec, started_at)
            finally:
                self._remove(client, container.id)

    def _serve_inference_proxy(
        self, job_services: contextlib.ExitStack, proxy: InferenceProxyServer, run_dir: Path
    ) -> str | None:
        """Start the job's proxy on its socket and hand the socket to the sandbox user; None on success."""
        socket_path = run_dir / INFERENCE_SOCKET_NAME
        try:
            job_services.enter_context(proxy(socket_path))
            self._hand_to_sandbox_user(socket_path)
        except OSError as exc:
            return f"the job's inference proxy did not start: {exc.strerror or exc}"
        return None

    def _run_container(
        self, client: PodmanClient, container: Any, job: RunningJob, spec: JobSpec, started_at: datetime
    ) -> JobOutcome:
        context = {"job_id": spec.job_id, "task_id": spec.task_id, "container_id": container.id}
        exit_code: int | None = None
        runtime_error = ""
        if job._attach(container.id):
            exit_code, runtime_error = self._start_and_wait(container, job, spec, context)
        outcome = self._outcome(client, container.id, job._finish(), exit_code, started_at, runtime_error)
        log.info(
            "sandbox_job_finished",
            extra={**context, "status": outcome.status, "exit_code": outcome.exit_code, "stop": job.stop_reason},
        )
        return outcome

    def _start_and_wait(
        self, container: Any, job: RunningJob, spec: JobSpec, context: dict[str, str]
    ) -> tuple[int | None, str]:
        """The container's exit code (None if unknown) and the runtime's error if it did not start."""
        deadline = threading.Timer(spec.timeout_seconds, job.stop, args=("timeout",))
        deadline.daemon = True
        deadline.start()
        try:
            try:
                container.start()
            except APIError as exc:
                # The runtime's message says what was wrong (e.g. the command does not exist).
                return None, f"{exc.explanation or exc}\n"
            log.info("sandbox_job_started", extra={**context, "timeout_seconds": spec.timeout_seconds})
            try:
                return int(container.wait(interval="50ms")), ""
            except (APIError, OSError) as exc:
                log.warning("sandbox_wait_failed", extra={**context, "error": str(exc)})
                return None, ""
        finally:
            deadline.cancel()

    def _outcome(
        self,
        client: PodmanClient,
        container_id: str,
        reason: StopReason | None,
        exit_code: int | None,
        started_at: datetime,
        runtime_error: str,
    ) -> JobOutcome:
        stdout = self._read_log(client, container_id, "stdout").result()
        note = runtime_error + (_STOP_NOTES[reason] if reason else "")
        stderr = self._read_log(client, container_id, "stderr").result(note)
        ended_at = _now()
        if reason == "timeout":
            return JobOutcome("timeout", NOT_RUN_EXIT_CODE, stdout, stderr, started_at, ended_at, "timeout")
        if reason is not None or exit_code is None:
            end: EndReason = reason if reason is not None else "not_started"
            return JobOutcome("failed", NOT_RUN_EXIT_CODE, stdout, stderr, started_at, ended_at, end)
        if exit_code == 0:
            return JobOutcome("completed", exit_code, stdout, stderr, started_at, ended_at)
        return JobOutcome("failed", exit_code, stdout, stderr, started_at, ended_at, "exit_nonzero")

    def _missing_image(self, image: str) -> str:
        hint = " (build it with scripts/build-sandbox-image.sh)" if image == self.settings.default_image else ""
        return f"image {image} is not present on this node{hint}"

    def _not_run(self, started_at: datetime, why: str, reason: EndReason = "not_started") -> JobOutcome:
        empty = OutputCapture(self.settings.max_output_bytes)
        return JobOutcome(
            "failed", NOT_RUN_EXIT_CODE, empty.result(), empty.result(f"{why}\n"), started_at, _now(), reason
        )

    def _read_log(self, client: PodmanClient, container_id: str, stream: str) -> OutputCapture:
        capture = OutputCapture(self.settings.max_output_bytes)
        params = {"follow": False, "stdout": stream == "stdout", "stderr": stream == "stderr"}
        try:
            response = client.api.get(f"/containers/{container_id}/logs", params=params, stream=True)
            response.raise_for_status()
        except (APIError, OSError) as exc:
            log.warning("sandbox_log_read_failed", extra={"container_id": container_id, "error": str(exc)})
            return capture
        try:
            for payload in _frame_payloads(response.iter_content(chunk_size=_LOG_CHUNK)):
                capture.feed(payload)
                if capture.full:
                    # Closing the response stops podman reading a log we would only throw away.
                    break
        finally:
            response.close()
        return capture

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
        """Remove containers this node's earlier runs left behind; returns how many."""
        with self._client() as client:
            leftovers = client.containers.list(all=True, filters={"label": f"{LABEL_OWNER}={self.owner}"})
            for container in leftovers:
                self._remove(client, container.id)
        if leftovers:
            log.warning("sandbox_orphans_removed", extra={"count": len(leftovers), "owner": self.owner})
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
            outcome = self.run(RunningJob(probe_id, self), spec)
        finally:
            shutil.rmtree(self.job_root(probe_id), ignore_errors=True)
        if outcome.status == "completed":
            return None
        detail = outcome.stderr.text.strip().splitlines()
        return f"container runtime check failed: {detail[0] if detail else outcome.status}"
