#!/usr/bin/env python3
"""Task dispatch latency: ``POST /v1/tasks`` to ``completed`` against a direct Worker API ``jobs:run``.

Starts a private PostgreSQL, the gateway and orchestrator roles (so a dispatcher runs) and a Worker
API on loopback, registers the Worker API as a node the way a node manager does (report, config,
token, ack), then times, in one run and alternating so both see the same machine state: a
``commands`` task ``true`` from submission until ``GET /v1/tasks/{id}`` says ``completed``
(polled every few milliseconds), and ``jobs:run`` of the same job sent straight to the Worker API.
Prints both medians and their ratio: what the queue, the NOTIFY wake-up, the claim and the result
write cost on top of running the container. A measurement, not a test: it never fails on a slow
result.

Usage: .venv/bin/python scripts/bench/dispatch_latency.py [--iterations N] [--image REF]
"""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from report import print_ratio, sandbox_bench_arguments

from cynode.composition import Stack
from cynode.db.embedded import EmbeddedPostgres
from cynode.http.server import ServedApp
from cynode.sandbox import PodmanService, SandboxExecutor, SandboxSettings
from cynode.settings import Role, load_settings
from cynode.worker import WorkerService, create_worker_app

SLUG = "bench-node"
POLL_SECONDS = 0.005


def now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def capability(slug: str, worker_url: str, max_concurrency: int) -> dict[str, Any]:
    return {
        "version": 1,
        "reported_at": now(),
        "node": {"node_slug": slug, "labels": []},
        "platform": {"os": "linux", "arch": "amd64"},
        "compute": {"cpu_cores": os.cpu_count() or 1, "ram_mb": 1024},
        "sandbox": {"supported": True, "features": [], "max_concurrency": max_concurrency},
        "worker_api": {"base_url": worker_url},
    }


async def register_node(control_plane: httpx.AsyncClient, psk: str, service: WorkerService, worker_url: str) -> str:
    """What a node manager does: register, fetch the config, apply its token, ack ``applied``.

    Returns the Worker API token, which the direct calls present as well.
    """
    report = capability(SLUG, worker_url, service.settings.max_concurrency)
    registered = await control_plane.post("/v1/nodes/register", json={"psk": psk, "capability": report})
    registered.raise_for_status()
    auth = {"Authorization": f"Bearer {registered.json()['auth']['node_jwt']}"}
    fetched = await control_plane.get("/v1/nodes/config", headers=auth)
    fetched.raise_for_status()
    config = fetched.json()
    token: str = config["worker_api"]["orchestrator_bearer_token"]
    service.apply_config(bearer_token=token)
    ack = {
        "version": 1,
        "node_slug": SLUG,
        "config_version": config["config_version"],
        "ack_at": now(),
        "status": "applied",
    }
    (await control_plane.post("/v1/nodes/config", json=ack, headers=auth)).raise_for_status()
    return token


async def time_task(gateway: httpx.AsyncClient, auth: dict[str, str]) -> float:
    started = time.perf_counter()
    created = await gateway.post("/v1/tasks", json={"prompt": "true", "input_mode": "commands"}, headers=auth)
    if created.status_code != 201:
        raise SystemExit(f"task create failed: {created.status_code} {created.text}")
    task_id = created.json()["id"]
    while True:
        status = (await gateway.get(f"/v1/tasks/{task_id}", headers=auth)).json()["status"]
        if status == "completed":
            return time.perf_counter() - started
        if status in ("failed", "canceled"):
            result = (await gateway.get(f"/v1/tasks/{task_id}/result", headers=auth)).text
            raise SystemExit(f"task {task_id} ended {status}: {result}")
        await asyncio.sleep(POLL_SECONDS)


async def time_direct_job(worker: httpx.AsyncClient, token: str, image: str, number: int) -> float:
    body = {
        "version": 1,
        "task_id": "bench-task",
        "job_id": f"bench-direct-{number}",
        "attempt": 1,
        "sandbox": {"image": image, "command": ["sh", "-c", "true"]},
    }
    started = time.perf_counter()
    response = await worker.post("/v1/worker/jobs:run", json=body, headers={"Authorization": f"Bearer {token}"})
    elapsed = time.perf_counter() - started
    if response.status_code != 200 or response.json()["status"] != "completed":
        raise SystemExit(f"direct job failed: {response.status_code} {response.text}")
    return elapsed


@dataclass(frozen=True)
class BenchDeployment:
    """A started control plane and Worker API registered as a node, with an admin logged in."""

    gateway: httpx.AsyncClient
    admin: dict[str, str]
    """Authorization header of the admin."""
    worker_url: str
    node_token: str


@asynccontextmanager
async def bench_deployment(
    root: Path, dsn: str, settings: SandboxSettings, owner: str
) -> AsyncIterator[BenchDeployment]:
    """Gateway and orchestrator on ``dsn`` plus a Worker API on ``settings``, all on loopback."""
    psk = secrets.token_urlsafe(16)
    admin_password = secrets.token_urlsafe(16)
    env = {
        "CYNODE_ADMIN_PASSWORD": admin_password,
        "CYNODE_NODE_REGISTRATION_PSK": psk,
        "CYNODE_SECRET_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
    }
    overrides = {"data_dir": str(root / "data"), "database_url": dsn, "gateway.port": 0, "control_plane.port": 0}
    stack = Stack(load_settings(env={}, overrides=overrides), frozenset({Role.GATEWAY, Role.ORCHESTRATOR}), env=env)
    podman = PodmanService(root / "podman")
    service = WorkerService(SandboxExecutor(settings, podman.url, owner=owner), podman)
    await service.start()
    served = ServedApp("worker_api", create_worker_app(service), "127.0.0.1", 0)
    await served.start()
    await stack.start()
    try:
        async with (
            httpx.AsyncClient(base_url=stack.base_url(Role.GATEWAY), timeout=120) as gateway,
            httpx.AsyncClient(base_url=stack.base_url(Role.ORCHESTRATOR), timeout=60) as control_plane,
        ):
            node_token = await register_node(control_plane, psk, service, served.base_url)
            login = await gateway.post("/v1/auth/login", json={"handle": "admin", "password": admin_password})
            login.raise_for_status()
            auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
            yield BenchDeployment(gateway, auth, served.base_url, node_token)
    finally:
        await stack.stop()
        await service.stop()
        await served.stop()


async def bench(iterations: int, image: str, root: Path, dsn: str) -> None:
    settings = SandboxSettings(mount_root=root / "mounts", default_image=image)
    async with (
        bench_deployment(root, dsn, settings, "bench-dispatch") as deployment,
        httpx.AsyncClient(base_url=deployment.worker_url, timeout=60) as worker,
    ):
        for warmup in range(3):
            await time_task(deployment.gateway, deployment.admin)
            await time_direct_job(worker, deployment.node_token, image, -1 - warmup)
        task_times, direct_times = [], []
        for number in range(iterations):
            task_times.append(await time_task(deployment.gateway, deployment.admin))
            direct_times.append(await time_direct_job(worker, deployment.node_token, image, number))
    ratio = print_ratio(
        iterations, ("task create -> completed", task_times), ("direct jobs:run (same job)", direct_times)
    )
    overhead = statistics.median(task_times) - statistics.median(direct_times)
    print(f"ratio: {ratio:.2f} (dispatch overhead {overhead * 1000:.0f} ms)")


def main() -> None:
    args = sandbox_bench_arguments(__doc__)
    root = Path(tempfile.mkdtemp(prefix="cynode-bench-dispatch-"))
    root.chmod(0o755)  # the postgres user must traverse it when run as root
    database = EmbeddedPostgres(root / "pg", fast_unsafe=True)
    try:
        dsn = database.start()
        asyncio.run(bench(args.iterations, args.image, root, dsn))
    finally:
        database.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
