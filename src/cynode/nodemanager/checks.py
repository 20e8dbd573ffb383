"""Startup checks (worker.md section 1.9): what must hold before the node registers.

The sandbox mount root must be writable, the container runtime must run a container with the
full sandbox profile, and the Worker API must answer ``/healthz``. The checks go through a probe
executor on the podman API the worker uses, so they test exactly what jobs will need.
"""

from __future__ import annotations

import ssl

import httpx
from anyio.to_thread import run_sync

from cynode.sandbox import SandboxExecutor
from cynode.worker.service import WorkerService

_HEALTH_TIMEOUT_SECONDS = 5.0


def _sandbox_problem(worker: WorkerService, owner: str) -> str | None:
    probe = SandboxExecutor(worker.settings, worker.podman_url, owner=owner)
    return probe.mount_root_problem() or probe.probe()


async def _worker_api_problem(worker_api_url: str, trust: ssl.SSLContext | None) -> str | None:
    url = worker_api_url.rstrip("/") + "/healthz"
    try:
        async with httpx.AsyncClient(timeout=_HEALTH_TIMEOUT_SECONDS, verify=trust or True) as client:
            response = await client.get(url)
    except httpx.TransportError as exc:
        return f"Worker API at {url} does not answer: {exc.__class__.__name__}"
    if response.status_code != httpx.codes.OK:
        return f"Worker API at {url} answered {response.status_code}"
    return None


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
    return await _worker_api_problem(worker_api_url, worker_api_trust)
