"""Settings of the sandbox executor: the node startup YAML's ``sandbox:`` section.

Owns the keys (upstream ``node.yaml`` names), their defaults and the timeout arithmetic. The
upstream keys this executor does not act on (``runtime``, ``rootless``, ``security``, ``mounts``,
...) are taken out before decoding by ``cynode.nodemanager.config``, which honours or refuses them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import msgspec

PositiveInt = Annotated[int, msgspec.Meta(gt=0)]
PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]

DEFAULT_SANDBOX_IMAGE = "localhost/cynode-sandbox:latest"
DEFAULT_MOUNT_ROOT = Path("/var/lib/cynode/state/sandbox_mounts")
DEFAULT_OUTPUT_LIMIT = 256 * 1024
DEFAULT_WORKSPACE_MB = 1024

SandboxMode = Literal["allow", "sandbox_only", "disabled"]
NetworkPolicy = Literal["restricted", "none"]


class SandboxResources(msgspec.Struct, kw_only=True, frozen=True):
    """Per-job bounds, on by default; ``None`` leaves that resource unbounded.

    The defaults keep a 2-core node, its database and its other jobs healthy while one job
    misbehaves. Memory is memory plus swap. The workspace quota is a tmpfs, so its pages count
    against ``max_memory_mb``, which must be larger.
    """

    max_cpu_cores: PositiveFloat | None = 1.0
    max_memory_mb: PositiveInt | None = 2048
    max_pids: PositiveInt | None = 512
    max_workspace_mb: PositiveInt | msgspec.UnsetType | None = msgspec.UNSET
    """Size of the job's ``/workspace``; writing past it fails with "no space left" (``disk_quota``).
    Unset: 1024, or half of ``max_memory_mb`` when that is smaller."""
    max_tmp_mb: PositiveInt = 64
    """Size of the job's ``/tmp`` tmpfs; the rest of the root filesystem is read-only."""
    max_log_mb: PositiveInt = 8
    """Cap on the container's log file while it runs (both streams; the result keeps 256 KiB each)."""

    def __post_init__(self) -> None:
        if (
            isinstance(self.max_workspace_mb, int)
            and self.max_memory_mb is not None
            and self.max_workspace_mb >= self.max_memory_mb
        ):
            raise ValueError(
                "sandbox.resources.max_workspace_mb must be smaller than max_memory_mb "
                "(the workspace is a tmpfs charged to the job's memory)"
            )

    @property
    def workspace_quota_mb(self) -> int | None:
        """The workspace size in effect (see ``max_workspace_mb``); None when unbounded."""
        if self.max_workspace_mb is not msgspec.UNSET:
            return self.max_workspace_mb
        if self.max_memory_mb is None:
            return DEFAULT_WORKSPACE_MB
        return min(DEFAULT_WORKSPACE_MB, self.max_memory_mb // 2)


class SandboxTimeouts(msgspec.Struct, kw_only=True, frozen=True):
    default_seconds: PositiveInt = 3600
    max_seconds: PositiveInt = 10800


class SandboxUlimits(msgspec.Struct, kw_only=True, frozen=True):
    """Soft and hard ulimits of the container's processes; both must stay within the podman
    service's own hard limits, or containers fail to start.

    ``nproc`` counts every process of the sandbox user on the host, and all sandboxes share that
    user, so keep it at or above ``max_concurrency * resources.max_pids``; the per-job process
    limit is ``resources.max_pids``.
    """

    nofile: PositiveInt = 1024
    nproc: PositiveInt = 4096


class SandboxSettings(msgspec.Struct, kw_only=True, frozen=True):
    mode: SandboxMode = "allow"
    max_concurrency: PositiveInt = 4
    default_image: str = DEFAULT_SANDBOX_IMAGE
    """Used when a job names no image."""
    allowed_images: tuple[str, ...] = ()
    """Image references or ``fnmatch`` patterns; empty allows any image present on the node."""
    default_network_policy: NetworkPolicy = "none"
    resources: SandboxResources = SandboxResources()
    timeouts: SandboxTimeouts = SandboxTimeouts()
    ulimits: SandboxUlimits = SandboxUlimits()
    mount_root: Path = DEFAULT_MOUNT_ROOT
    """Parent of the per-job ``<job_id>/workspace`` and ``<job_id>/job`` host directories."""
    max_output_bytes: PositiveInt = DEFAULT_OUTPUT_LIMIT
    """Cap on each of stdout and stderr in a job result."""
    run_as_user: str = "65534:65534"
    """``uid[:gid]`` the job runs as inside the container (default: nobody)."""
    podman_socket: str | None = None
    """``unix://`` URL of an existing podman API; unset, the node starts its own service."""

    def __post_init__(self) -> None:
        if not self.mount_root.is_absolute():
            raise ValueError(f"sandbox.mount_root must be an absolute path, got {self.mount_root}")
        uid, _, gid = self.run_as_user.partition(":")
        if not uid.isdigit() or not (gid.isdigit() or ":" not in self.run_as_user):
            raise ValueError(f"sandbox.run_as_user must be numeric uid[:gid], got {self.run_as_user!r}")

    def effective_timeout(self, requested: int | None, constraint: int | None = None) -> int:
        """Seconds a job may run: the request (or node default), capped by node max and config."""
        timeout = min(requested or self.timeouts.default_seconds, self.timeouts.max_seconds)
        if constraint is not None:
            timeout = min(timeout, constraint)
        return timeout
