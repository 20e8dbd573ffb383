"""Sandboxed job execution on podman.

The node's composition root builds these once: ``PodmanService`` (``start``/``stop``) provides the
podman API; ``SandboxExecutor(settings, service.url, owner=<node slug>)`` runs jobs through it,
after ``sweep_orphans()`` has cleared containers and job directories a previous run left behind.

Modules: ``profile`` (what a job is and how its container is configured), ``job_dirs`` (per-job
host directories and the workspace quota), ``slots`` (concurrency and stopping), ``capture`` and
``output`` (reading output back, bounded), ``bounds`` (which limit a job hit), ``executor`` (one
run from start to end), ``podman_service`` and ``settings``.
"""

from cynode.sandbox.executor import JobOutcome, SandboxExecutor
from cynode.sandbox.output import CapturedOutput, OutputCapture
from cynode.sandbox.podman_service import PodmanService, PodmanUnavailableError
from cynode.sandbox.profile import InferenceProxyServer, JobInferenceProxy, JobSpec
from cynode.sandbox.settings import DEFAULT_SANDBOX_IMAGE, SandboxSettings
from cynode.sandbox.slots import JobAlreadyRunningError, RunningJob, SandboxBusyError

__all__ = [
    "DEFAULT_SANDBOX_IMAGE",
    "CapturedOutput",
    "InferenceProxyServer",
    "JobAlreadyRunningError",
    "JobInferenceProxy",
    "JobOutcome",
    "JobSpec",
    "OutputCapture",
    "PodmanService",
    "PodmanUnavailableError",
    "RunningJob",
    "SandboxBusyError",
    "SandboxExecutor",
    "SandboxSettings",
]
