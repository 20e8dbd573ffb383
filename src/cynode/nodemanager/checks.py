"""Startup checks (worker.md section 1.9): what must hold before the node registers.

The sandbox mount root must be writable, the container runtime must run a container with the
full sandbox profile, and the Worker API must answer ``/healthz``. The checks go through a probe
executor on the same podman API the worker uses, so they test exactly what jobs will need.
"""

from __future__ import annotations

import httpx
from anyio.to_thread import run_sync

from cynode.nodemanager.config import NodeConfig
from cynode.sandbox import PodmanService, SandboxExecutor

_HEALTH_TIMEOUT_SECONDS = 5.0


def _sandbox_problem(node: NodeConfig) -> str | None:
    podman = PodmanService(node.state_dir, socket_url=node.sandbox.podman_socket)
    probe = SandboxExecutor(node.sandbox, podman.url, owner=node.slug)
    return probe.mount_root_problem() or podman.problem() or probe.probe()


async def _worker_api_problem(worker_api_url: str) -> str | None:
    url = worker_api_url.rstrip("/") + "/healthz"
    try:
        async with httpx.AsyncClient(timeout=_HEALTH_TIMEOUT_SECONDS) as client:
            response = await client.get(url)
    except httpx.TransportError as exc:
        return f"Worker API at {url} does not answer: {exc.__class__.__name__}"
    if response.status_code != httpx.codes.OK:
        return f"Worker API at {url} answered {response.status_code}"
    return None


async def startup_problem(node: NodeConfig, worker_api_url: str) -> str | None:
    """None when the node may register, else the first failed check in words an operator can act on."""
    if node.sandbox.mode != "disabled":
        problem = await run_sync(_sandbox_problem, node)
        if problem is not None:
            return problem
    return await _worker_api_problem(worker_api_url)
