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
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from dispatch_latency import bench_deployment

from cynode.db.embedded import EmbeddedPostgres
from cynode.sandbox import DEFAULT_SANDBOX_IMAGE, PodmanService, SandboxSettings

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
    root = Path(tempfile.mkdtemp(prefix="cynode-bench-throughput-"))
    root.chmod(0o755)  # the postgres user must traverse it when run as root
    database = EmbeddedPostgres(root / "pg", fast_unsafe=True)
    try:
        dsn = database.start()
        asyncio.run(bench(args, root, dsn))
    finally:
        database.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
