#!/usr/bin/env python3
"""Dispatch throughput: N ``true`` tasks through the task API against raw parallel ``podman run --rm``.

Starts a private PostgreSQL, the gateway and orchestrator roles and a Worker API with
``max_concurrency`` slots and the default per-job bounds (workspace quota mount, read-only root,
capped log, CPU/memory/pids limits), registered as a node the way a node manager does. Then, in one
run: N ``podman run --rm --network none IMAGE true`` from ``max_concurrency`` parallel workers (the
baseline), and N ``commands`` tasks ``true`` submitted at once and timed until every one is
``completed`` (fair claiming and the per-user cap in force). Prints both wall times and the
throughput ratio (baseline time / task time; the goal is >= 0.8). A measurement, not a test.

Usage: .venv/bin/python scripts/bench/dispatch_throughput.py [--tasks 200] [--concurrency 4] [--image REF]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from report import private_database

from cynode import eventloop
from cynode.composition import Stack
from cynode.http.server import ServedApp
from cynode.sandbox import DEFAULT_SANDBOX_IMAGE, PodmanService, SandboxExecutor, SandboxSettings
from cynode.settings import Role, load_settings
from cynode.worker import WorkerService, create_worker_app
from cynode.worker.kept_results import KeptResults

SLUG = "bench-node"
POLL_SECONDS = 0.05


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--image", default=DEFAULT_SANDBOX_IMAGE)
    args = parser.parse_args()
    if args.tasks < 1 or args.concurrency < 1:
        parser.error("--tasks and --concurrency must be at least 1")
    return args


def raw_podman_seconds(podman: PodmanService, image: str, count: int, concurrency: int) -> float:
    """Wall time of ``count`` ``podman run --rm`` from ``concurrency`` parallel workers."""
    env = {**os.environ, "CONTAINERS_CONF": str(podman.config_path)}
    command = ["podman", "run", "--rm", "--network", "none", image, "true"]

    def one(_: int) -> None:
        subprocess.run(command, env=env, check=True, capture_output=True)

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(count)))
    return time.perf_counter() - started


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
    service = WorkerService(
        SandboxExecutor(settings, podman.url, owner=owner), podman, kept_results=KeptResults(root / "kept_results")
    )
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


async def task_seconds(gateway: httpx.AsyncClient, auth: dict[str, str], count: int) -> float:
    """Wall time from submitting ``count`` ``true`` tasks at once until all are completed."""
    body = {"prompt": "true", "input_mode": "commands"}
    started = time.perf_counter()
    created = await asyncio.gather(*(gateway.post("/v1/tasks", json=body, headers=auth) for _ in range(count)))
    refused = [response for response in created if response.status_code != 201]
    if refused:
        raise SystemExit(f"task create failed: {refused[0].status_code} {refused[0].text}")
    while True:
        page = await gateway.get("/v1/tasks", params={"status": "completed", "limit": 200}, headers=auth)
        if page.status_code != 200:
            raise SystemExit(f"task list failed: {page.status_code} {page.text}")
        done = len(page.json()["tasks"])
        failed = await gateway.get("/v1/tasks", params={"status": "failed", "limit": 1}, headers=auth)
        if failed.json()["tasks"]:
            raise SystemExit(f"a task failed: {failed.json()['tasks'][0]}")
        if done >= count:
            return time.perf_counter() - started
        await asyncio.sleep(POLL_SECONDS)


async def bench(args: argparse.Namespace, root: Path, dsn: str) -> None:
    settings = SandboxSettings(mount_root=root / "mounts", default_image=args.image, max_concurrency=args.concurrency)
    async with bench_deployment(root, dsn, settings, "bench-throughput") as deployment:
        podman = PodmanService(root / "podman")
        # Tasks first, while the admin's 15-minute access token is fresh.
        tasks = await task_seconds(deployment.gateway, deployment.admin, args.tasks)
        raw = await asyncio.to_thread(raw_podman_seconds, podman, args.image, args.tasks, args.concurrency)
    print(f"tasks: {args.tasks}, concurrency: {args.concurrency}")
    print(f"raw podman run --rm: {raw:.1f} s ({args.tasks / raw:.1f} jobs/s)")
    print(f"cynode tasks:        {tasks:.1f} s ({args.tasks / tasks:.1f} jobs/s)")
    print(f"ratio: {raw / tasks:.2f} (goal >= 0.8)")


def main() -> None:
    args = arguments()
    with private_database("throughput") as (root, dsn):
        eventloop.run(bench(args, root, dsn))


if __name__ == "__main__":
    sys.exit(main())
