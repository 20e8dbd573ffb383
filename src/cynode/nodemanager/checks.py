"""Startup checks (worker.md section 1.9): what must hold before the node registers.

The sandbox mount root must be writable, the container runtime must run a container with the
full sandbox profile, and the Worker API must answer ``/healthz``. The checks go through a probe
executor on the podman API the worker uses, so they test exactly what jobs will need.
"""

from __future__ import annotations

import ssl

from anyio.to_thread import run_sync

from cynode.http.health import healthz_problem
from cynode.sandbox import SandboxExecutor
from cynode.worker.service import WorkerService

_HEALTH_TIMEOUT_SECONDS = 5.0


def _sandbox_problem(worker: WorkerService, owner: str) -> str | None:
    probe = SandboxExecutor(worker.settings, worker.podman_url, owner=owner)
    return probe.mount_root_problem() or probe.probe()


async def startup_problem(
    worker: WorkerService, worker_api_url: str, *, owner: str, worker_api_trust: ssl.SSLContext | None = None
) -> str | None:
    """None when the node may register, else the first failed check in words an operator can act on.

    ``owner`` labels the probe container like the node's jobs, so a leftover is swept with them.
    ``worker_api_trust`` verifies an HTTPS Worker API (the node pins its own certificate).
    """
    if worker.settings.mode != "disabled":
        problem = await run_sync(_sandbox_problem, worker, owner)
        if problem is not None:
            return problem
    return await healthz_problem("Worker API", worker_api_url, _HEALTH_TIMEOUT_SECONDS, trust=worker_api_trust)
