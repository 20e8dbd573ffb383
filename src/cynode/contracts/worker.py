"""Worker API payloads: `POST /v1/worker/jobs:run` request and response, and job cancellation."""

from typing import Annotated, Any, ClassVar, Literal

import msgspec

from cynode.contracts.codec import Timestamp, VersionedPayload

__all__ = [
    "CancelJobResponse",
    "ImagePull",
    "NetworkPolicy",
    "OutputReplacement",
    "OutputTruncation",
    "RunDiagnostics",
    "RunJobRequest",
    "RunJobResponse",
    "RunJobStatus",
    "SandboxSpec",
]

# Both values mean "no network" in Phase 1; `restricted` is kept for the later egress proxy.
NetworkPolicy = Literal["restricted", "none"]
RunJobStatus = Literal["completed", "failed", "timeout"]


def _require_path_component(field: str, value: str) -> None:
    # Workers build host directories and container names from these ids, so an id must not be
    # able to climb out of, or alias, the per-job directory.
    if not value or value == "." or "/" in value or ".." in value or "\x00" in value:
        raise ValueError(f"{field} must be a non-empty path component without '/', '..' or NUL")


class SandboxSpec(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What to run: image, argv, extra env and limits; `use_inference` asks for the inference proxy socket."""

    image: str
    command: list[str]
    env: dict[str, str] = {}
    timeout_seconds: Annotated[int, msgspec.Meta(gt=0)] | None = None
    network_policy: NetworkPolicy | None = None
    use_inference: bool = False
    job_spec_json: str | None = None


class RunJobRequest(VersionedPayload, kw_only=True, omit_defaults=True):
    """Body of POST /v1/worker/jobs:run sent by the orchestrator to a node."""

    payload_kind: ClassVar[str] = "run_job_request"

    task_id: str
    job_id: str
    sandbox: SandboxSpec
    attempt: Annotated[int, msgspec.Meta(ge=1)] = 1
    """The orchestrator's claim number for this job; labels the container so a stale attempt is traceable."""

    def __post_init__(self) -> None:
        _require_path_component("task_id", self.task_id)
        _require_path_component("job_id", self.job_id)


class OutputTruncation(msgspec.Struct, kw_only=True):
    """Whether stdout / stderr were cut at the output limit; both flags are always sent."""

    stdout: bool
    stderr: bool


class OutputReplacement(msgspec.Struct, kw_only=True):
    """Whether stdout / stderr had bytes that were not UTF-8 text, or NUL, each shown as U+FFFD."""

    stdout: bool
    stderr: bool


class RunDiagnostics(msgspec.Struct, kw_only=True, omit_defaults=True):
    """How the worker ran the container, for debugging failed jobs; never holds secrets."""

    runtime: str
    runtime_argv: list[str]
    container_started: bool
    job_dir: str | None = None
    workspace_dir: str | None = None
    image: str | None = None


class ImagePull(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The job's image was missing on the node and was pulled before the job ran; never holds credentials.

    Absent from a response whose image was already present.
    """

    image: str
    """The reference the job named."""
    registry: str
    """The registry's host (and port) it came from."""
    digest: str | None = None
    """The manifest digest pulled (``sha256:...``), when podman's records say which one it was."""
    layers: int
    """Layer blobs podman reported copying (0 when it reported none)."""
    size_bytes: int | None = None
    """The pulled image's size in the node's image storage, as podman reports it."""
    seconds: float
    """Time spent pulling, every registry tried included."""


class RunJobResponse(VersionedPayload, kw_only=True, omit_defaults=True):
    """Result of a jobs:run call; the orchestrator stores it as the job's result object."""

    payload_kind: ClassVar[str] = "run_job_response"

    task_id: str
    job_id: str
    status: RunJobStatus
    # Required with no default so omit_defaults can never drop a successful 0; -1 means the process
    # timed out or never ran.
    exit_code: int
    stdout: str
    stderr: str
    started_at: Timestamp
    ended_at: Timestamp
    truncated: OutputTruncation
    replaced: OutputReplacement | None = None
    reason: str | None = None
    """Why a job that did not complete ended (e.g. ``timeout``, ``disk_quota``, ``memory``, ``pids``)."""
    artifacts: list[dict[str, Any]] = []
    run_diagnostics: RunDiagnostics | None = None
    image_pull: ImagePull | None = None
    """Set when the job's image had to be pulled first (its stderr then starts with ``[cynode]`` pull notes)."""


class CancelJobResponse(VersionedPayload, kw_only=True):
    """Answer to a job cancel on the Worker API: whether a running sandbox was found and stopped."""

    payload_kind: ClassVar[str] = "cancel_job_response"

    job_id: str
    canceled: bool
