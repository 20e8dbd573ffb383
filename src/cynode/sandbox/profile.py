"""The sandbox profile: what a job is, and how its container is configured.

Owns the container settings every job gets: no network, every capability dropped,
no-new-privileges, the unprivileged sandbox user, a read-only root filesystem with a size-limited
``/tmp``, the workspace (a quota mount from ``job_dirs``, or a podman tmpfs of that size) and
``/job`` mounts, cgroup limits (CPU quota, memory and swap, pids) and ulimits from settings, a
container log capped while the job runs, task-context env the request cannot override, and labels
naming the owning node, task, job and attempt.

A job that uses inference also gets its ``run`` directory at ``/run/cynode``, where the caller's
proxy serves a Unix socket, and ``INFERENCE_PROXY_URL`` (given by the caller) set after every other
variable. The container keeps ``--network none``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cynode.sandbox.job_dirs import JobDirs
from cynode.sandbox.settings import SandboxSettings

LABEL_OWNER = "io.cynode.sandbox.owner"
"""Whose container it is (see :func:`container_owner`): a node removes leftovers carrying its own value."""
LABEL_TASK = "io.cynode.sandbox.task_id"
LABEL_JOB = "io.cynode.sandbox.job_id"
LABEL_ATTEMPT = "io.cynode.sandbox.attempt"

WORKSPACE_DIR = "/workspace"
JOB_DIR = "/job"
TMP_DIR = "/tmp"  # noqa: S108 - the container's own /tmp, a size-limited tmpfs
RUN_DIR = "/run/cynode"
INFERENCE_SOCKET_NAME = "inference.sock"
INFERENCE_SOCKET_PATH = f"{RUN_DIR}/{INFERENCE_SOCKET_NAME}"
"""Where the job's inference proxy socket is, inside the container."""
INFERENCE_PROXY_ENV = "INFERENCE_PROXY_URL"
# Set after the request's env so a job can never forge its own identity or workspace.
RESERVED_ENV = ("CYNODE_TASK_ID", "CYNODE_JOB_ID", "CYNODE_WORKSPACE_DIR")

InferenceProxyServer = Callable[[Path], AbstractContextManager[object]]
"""Serves a job's inference proxy on a Unix socket at the given host path while the context is open."""

_MIB = 1024 * 1024
_CPU_PERIOD_US = 100_000


def container_owner(node_slug: str, state_dir: Path) -> str:
    """The owner label of a node's containers: its slug and which installation on this host it is.

    Two nodes on one host share podman's storage; were the slug alone the owner, a node starting
    with the slug of another (a copy of its config, a test stack) would remove that node's running
    jobs as its own leftovers. The state directory tells them apart and stays the same across a
    node's restarts, so its own leftovers are still found.
    """
    installation = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:12]
    return f"{node_slug}@{installation}"


@dataclass(frozen=True)
class JobInferenceProxy:
    """A job's inference proxy: how to serve it, and the URL the job reaches it at."""

    serve: InferenceProxyServer
    url: str


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
    inference_proxy: JobInferenceProxy | None = None


def _tmpfs(target: str, size_mb: int, mode: str) -> dict[str, Any]:
    # "source" must be given, or podman creates a plain directory instead of the tmpfs.
    return {"type": "tmpfs", "source": "tmpfs", "target": target, "size": f"{size_mb}m", "mode": mode}


def container_args(settings: SandboxSettings, spec: JobSpec, dirs: JobDirs, *, owner: str) -> dict[str, Any]:
    """podman-py ``containers.create`` arguments for ``spec`` with its host directories ``dirs``."""
    limits = settings.resources
    ulimits = settings.ulimits
    env = dict(spec.env)
    env.update(zip(RESERVED_ENV, (spec.task_id, spec.job_id, WORKSPACE_DIR), strict=True))
    mounts = [
        {"type": "bind", "source": str(dirs.job), "target": JOB_DIR, "relabel": "Z"},
        _tmpfs(TMP_DIR, limits.max_tmp_mb, "1777"),
    ]
    if dirs.workspace_quota or limits.workspace_quota_mb is None:
        mounts.append({"type": "bind", "source": str(dirs.workspace), "target": WORKSPACE_DIR, "relabel": "Z"})
    else:
        # No quota mount on the host (not root): the workspace lives in a tmpfs of the quota's size.
        mounts.append(_tmpfs(WORKSPACE_DIR, limits.workspace_quota_mb, "0777"))
    if dirs.run is not None and spec.inference_proxy is not None:
        env[INFERENCE_PROXY_ENV] = spec.inference_proxy.url
        mounts.append({"type": "bind", "source": str(dirs.run), "target": RUN_DIR, "relabel": "Z"})
    args: dict[str, Any] = {
        "image": spec.image,
        "command": list(spec.command),
        "environment": env,
        "labels": {
            LABEL_OWNER: owner,
            LABEL_TASK: spec.task_id,
            LABEL_JOB: spec.job_id,
            LABEL_ATTEMPT: str(spec.attempt),
        },
        "network_mode": "none",
        "cap_drop": ["ALL"],
        "no_new_privileges": True,
        "user": settings.run_as_user,
        "working_dir": WORKSPACE_DIR,
        "hostname": "sandbox",
        "mounts": mounts,
        "read_only": True,
        # Podman drops its configured defaults once any ulimit is given, so both are always sent.
        "ulimits": [
            {"Name": "nofile", "Soft": ulimits.nofile, "Hard": ulimits.nofile},
            {"Name": "nproc", "Soft": ulimits.nproc, "Hard": ulimits.nproc},
        ],
        # Output is read back through the API, which needs a log file; conmon keeps it under the cap.
        "log_config": {"Type": "k8s-file", "Config": {"size": limits.max_log_mb * _MIB}},
    }
    if limits.max_pids is not None:
        args["pids_limit"] = limits.max_pids
    if limits.max_memory_mb is not None:
        args["mem_limit"] = args["memswap_limit"] = limits.max_memory_mb * _MIB
    if limits.max_cpu_cores is not None:
        args["cpu_period"] = _CPU_PERIOD_US
        args["cpu_quota"] = int(limits.max_cpu_cores * _CPU_PERIOD_US)
    return args
