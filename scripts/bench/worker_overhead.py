#!/usr/bin/env python3
"""Per-job overhead of the Worker API against a bare ``podman run --rm``.

Starts a private podman API service and a Worker API on loopback (the same code a node runs),
then times, in one run and alternating so both see the same machine state: ``jobs:run`` of
``true`` over HTTP, and ``podman run --rm --network=none <image> true`` through the CLI with the
same containers.conf. Prints both medians and their ratio; the target is a ratio of at most 1.3.
This is a measurement, not a test: it never fails on a slow result.

Usage: .venv/bin/python scripts/bench/worker_overhead.py [--iterations N] [--image REF]
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path

import httpx
from report import print_ratio, sandbox_bench_arguments

from cynode.http.server import ServedApp
from cynode.sandbox import PodmanService, SandboxExecutor, SandboxSettings
from cynode.worker import WorkerService, create_worker_app
from cynode.worker.kept_results import KeptResults

TARGET_RATIO = 1.3


async def time_worker_job(client: httpx.AsyncClient, token: str, image: str, job_number: int) -> float:
    body = {
        "version": 1,
        "task_id": "bench-task",
        "job_id": f"bench-job-{job_number}",
        "sandbox": {"image": image, "command": ["true"]},
    }
    started = time.perf_counter()
    response = await client.post("/v1/worker/jobs:run", json=body, headers={"Authorization": f"Bearer {token}"})
    elapsed = time.perf_counter() - started
    result = response.json()
    if response.status_code != 200 or result["status"] != "completed":
        raise SystemExit(f"worker job failed: {response.status_code} {response.text}")
    return elapsed


async def time_podman_run(conf: Path, image: str) -> float:
    env = {**os.environ, "CONTAINERS_CONF": str(conf)}
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec("podman", "run", "--rm", "--network=none", image, "true", env=env)
    status = await process.wait()
    elapsed = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"podman run failed with status {status}")
    return elapsed


async def bench(iterations: int, image: str) -> None:
    with tempfile.TemporaryDirectory(prefix="cynode-bench-") as scratch:
        root = Path(scratch)
        settings = SandboxSettings(mount_root=root / "mounts", default_image=image)
        podman = PodmanService(root / "state")
        executor = SandboxExecutor(settings, podman.url, owner="bench")
        service = WorkerService(executor, podman, kept_results=KeptResults(root / "kept_results"))
        token = secrets.token_urlsafe(24)
        service.apply_config(bearer_token=token)
        await service.start()
        served = ServedApp("worker_api", create_worker_app(service), "127.0.0.1", 0)
        await served.start()
        try:
            async with httpx.AsyncClient(base_url=served.base_url, timeout=60) as client:
                problem = await service.readiness()
                if problem is not None:
                    raise SystemExit(f"worker not ready: {problem}")
                for warmup in range(3):
                    await time_worker_job(client, token, image, -1 - warmup)
                    await time_podman_run(podman.config_path, image)
                worker_times, podman_times = [], []
                for number in range(iterations):
                    worker_times.append(await time_worker_job(client, token, image, number))
                    podman_times.append(await time_podman_run(podman.config_path, image))
        finally:
            await service.stop()
            await served.stop()
    ratio = print_ratio(iterations, ("worker jobs:run (true)", worker_times), ("podman run --rm (true)", podman_times))
    verdict = "within" if ratio <= TARGET_RATIO else "ABOVE"
    print(f"ratio: {ratio:.2f} ({verdict} target {TARGET_RATIO})")


def main() -> None:
    args = sandbox_bench_arguments(__doc__)
    asyncio.run(bench(args.iterations, args.image))


if __name__ == "__main__":
    sys.exit(main())
