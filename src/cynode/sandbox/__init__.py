"""Sandboxed job execution on podman: the service, the executor and their settings.

The node's composition root builds these once: ``PodmanService`` (``start``/``stop``) provides the
podman API; ``SandboxExecutor(settings, service.url, owner=<node slug>)`` runs jobs through it,
after ``sweep_orphans()`` has cleared containers a previous run left behind.
"""

from cynode.sandbox.executor import (
    InferenceProxyServer,
    JobAlreadyRunningError,
    JobOutcome,
    JobSpec,
    RunningJob,
    SandboxBusyError,
    SandboxExecutor,
)
from cynode.sandbox.output import CapturedOutput, OutputCapture
from cynode.sandbox.podman_service import PodmanService, PodmanUnavailableError
from cynode.sandbox.settings import DEFAULT_SANDBOX_IMAGE, SandboxSettings

__all__ = [
    "DEFAULT_SANDBOX_IMAGE",
    "CapturedOutput",
    "InferenceProxyServer",
    "JobAlreadyRunningError",
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
