#!/usr/bin/env python3
"""Task dispatch latency: ``POST /v1/tasks`` to ``completed`` against a direct Worker API ``jobs:run``.

Two deployments, each timed in one run, alternating so both sides see the same machine state:

- ``all-in-one``: every role in this process (``cynode serve --role=all``); the dispatcher reaches
  the node in-process;
- ``split``: gateway and orchestrator in this process, the node a separate ``cynode serve
  --role=node`` process that registers itself over HTTP; the dispatcher calls its Worker API over
  HTTP, as across hosts.

A ``commands`` task ``true`` is timed from submission until ``GET /v1/tasks/{id}?wait=30`` (one
long-poll, asked again should it answer before the task ends) says ``completed``, and ``jobs:run``
of the same job sent straight to the node's Worker API. Prints both medians and the dispatch
overhead (the difference): what the queue, the NOTIFY wake-up, the claim and the result write cost
on top of running the container.

A container start varies by tens of milliseconds from one run to the next, more than the overhead
itself, so the overhead is also estimated without it: each run's time minus the node's own
``started_at``..``ended_at`` for that run (from the job's result, or the ``jobs:run`` answer),
compared as medians. Both estimates are printed.
Both sides are timed after ``WARM_UP_ROUNDS`` untimed rounds (see there why).
Inference is off on the node: the jobs need none, and the bench must not wait for a model.
A measurement, not a test: it never fails on a slow result.

Usage: .venv/bin/python scripts/bench/dispatch_latency.py [--iterations N] [--image REF] [--mode all-in-one|split|both]
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import secrets
import signal
import socket
import statistics
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg.conninfo import make_conninfo
from report import print_ratio, private_database, sandbox_bench_arguments

from cynode import eventloop
from cynode.crypto import SecretBox, load_secret_box

SLUG = "bench-node"
WAIT_SECONDS = 30
NODE_READY_SECONDS = 60
MODES = ("all-in-one", "split")
WARM_UP_ROUNDS = 40
"""Untimed rounds first, so the servers are measured as they run for most of their life: until a
pooled connection has run a statement about ten times, it parses and plans it afresh each time
(psycopg prepares it on the fifth use and PostgreSQL settles on a generic plan after five more), a
millisecond or more per claim; with up to ten pooled connections that lasts a few dozen tasks."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def node_yaml(directory: Path, control_plane_port: int, image: str) -> Path:
    path = directory / "node.yaml"
    path.write_text(
        f"version: 1\norchestrator:\n  url: http://127.0.0.1:{control_plane_port}\n"
        "  registration_psk_env: CYNODE_NODE_REGISTRATION_PSK\n"
        f"node:\n  id: {SLUG}\nsandbox:\n  default_image: {image}\ninference:\n  mode: disabled\n"
    )
    return path


@dataclass(frozen=True)
class Timing:
    elapsed: float
    """Seconds from the request until the answer said ``completed``."""
    sandbox_run: float
    """The node's own ``started_at``..``ended_at`` for the run, in seconds."""

    @property
    def outside_the_run(self) -> float:
        return self.elapsed - self.sandbox_run


def sandbox_run_seconds(result: dict[str, Any]) -> float:
    started, ended = (datetime.fromisoformat(result[key]) for key in ("started_at", "ended_at"))
    return (ended - started).total_seconds()


async def time_task(gateway: httpx.AsyncClient, auth: dict[str, str]) -> Timing:
    started = time.perf_counter()
    created = await gateway.post("/v1/tasks", json={"prompt": "true", "input_mode": "commands"}, headers=auth)
    if created.status_code != 201:
        raise SystemExit(f"task create failed: {created.status_code} {created.text}")
    task_id = created.json()["id"]
    while True:
        status = (await gateway.get(f"/v1/tasks/{task_id}?wait={WAIT_SECONDS}", headers=auth)).json()["status"]
        if status == "completed":
            elapsed = time.perf_counter() - started
            jobs = (await gateway.get(f"/v1/tasks/{task_id}/result", headers=auth)).json()["jobs"]
            return Timing(elapsed, sandbox_run_seconds(jobs[-1]["result"]))
        if status in ("failed", "canceled"):
            result = (await gateway.get(f"/v1/tasks/{task_id}/result", headers=auth)).text
            raise SystemExit(f"task {task_id} ended {status}: {result}")


async def time_direct_job(worker: httpx.AsyncClient, token: str, image: str, number: int) -> Timing:
    body = {
        "version": 1,
        "task_id": f"bench-task-{number}",
        "job_id": f"bench-job-{number}",
        "sandbox": {"image": image, "command": ["true"], "network_policy": "none"},
    }
    started = time.perf_counter()
    response = await worker.post("/v1/worker/jobs:run", json=body, headers={"Authorization": f"Bearer {token}"})
    elapsed = time.perf_counter() - started
    if response.status_code != 200 or response.json()["status"] != "completed":
        raise SystemExit(f"direct job failed: {response.status_code} {response.text}")
    return Timing(elapsed, sandbox_run_seconds(response.json()))


@dataclass(frozen=True)
class Deployment:
    gateway_url: str
    dsn: str
    secret_box: SecretBox
    """Opens the node's Worker API token as the orchestrator stored it."""


async def node_worker(deployment: Deployment) -> tuple[str, str]:
    """The registered node's Worker API URL and bearer token, once it is dispatchable."""
    deadline = time.monotonic() + NODE_READY_SECONDS
    async with await psycopg.AsyncConnection.connect(deployment.dsn, autocommit=True) as conn:
        while time.monotonic() < deadline:
            cursor = await conn.execute(
                "SELECT id, worker_api_target_url, worker_api_bearer_token_ciphertext FROM nodes"
                " WHERE node_slug = %s AND config_ack_status = 'applied' AND config_ack_version = config_version",
                (SLUG,),
            )
            row = await cursor.fetchone()
            if row is not None:
                node_id, url, ciphertext = row
                return url, deployment.secret_box.open(bytes(ciphertext), str(node_id))
            await asyncio.sleep(0.1)
    raise SystemExit(f"the node never became dispatchable within {NODE_READY_SECONDS} s")


async def serving(options: list[str], env: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    with log.open("wb") as output:
        command = [sys.executable, "-m", "cynode.cli", "serve", *options]
        return await asyncio.create_subprocess_exec(*command, env={**os.environ, **env}, stdout=output, stderr=output)


async def wait_serving(url: str, processes: list[asyncio.subprocess.Process], logs: list[Path]) -> None:
    async with httpx.AsyncClient(timeout=2) as probe:
        for _ in range(600):
            if any(process.returncode is not None for process in processes):
                break
            with contextlib.suppress(httpx.TransportError):
                # /healthz, not /readyz: readiness wants an inference path, which these nodes lack.
                if (await probe.get(url + "/healthz")).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    tails = "\n".join(log.read_text()[-3000:] for log in logs)
    raise SystemExit(f"{url} did not start (cynode serve's output follows):\n{tails}")


@contextlib.asynccontextmanager
async def deployment(mode: str, root: Path, dsn: str, image: str, env: dict[str, str]) -> AsyncIterator[Deployment]:
    """``cynode serve`` processes for ``mode``, as a deployment runs them; this process is only their
    client, so its own work never competes with theirs for one event loop."""
    directory = root / mode
    directory.mkdir()
    gateway_port, control_plane_port = free_port(), free_port()
    node_config = node_yaml(directory, control_plane_port, image)
    node_options = ["--node-config", str(node_config), "--set", f"worker_api.port={free_port()}"]
    control_options = [
        "--data-dir", str(directory / "data"), "--database-url", dsn,
        "--set", f"gateway.port={gateway_port}", "--set", f"control_plane.port={control_plane_port}",
        "--set", f"dispatch.sandbox_image={image}",
    ]  # fmt: skip
    if mode == "all-in-one":
        commands = {"all": ["--role=all", *control_options, *node_options]}
    else:
        commands = {
            "control": ["--role=gateway,orchestrator", *control_options],
            "node": ["--role=node", "--data-dir", str(directory / "node"), *node_options],
        }
    logs = {name: directory / f"{name}.log" for name in commands}
    processes = [await serving(options, env, logs[name]) for name, options in commands.items()]
    try:
        gateway_url = f"http://127.0.0.1:{gateway_port}"
        await wait_serving(gateway_url, processes, list(logs.values()))
        yield Deployment(gateway_url, dsn, load_secret_box(directory / "data", env))
    finally:
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGINT)
        for process in processes:
            await process.wait()


async def bench_mode(mode: str, iterations: int, image: str, root: Path, dsn: str) -> tuple[float, float]:
    password = secrets.token_urlsafe(16)
    env = {
        "CYNODE_ADMIN_PASSWORD": password,
        "CYNODE_NODE_REGISTRATION_PSK": secrets.token_urlsafe(16),
        "CYNODE_SECRET_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
    }
    async with deployment(mode, root, dsn, image, env) as deployed:
        worker_url, token = await node_worker(deployed)
        async with (
            httpx.AsyncClient(base_url=deployed.gateway_url, timeout=60) as gateway,
            httpx.AsyncClient(base_url=worker_url, timeout=60) as worker,
        ):
            login = await gateway.post("/v1/auth/login", json={"handle": "admin", "password": password})
            login.raise_for_status()
            auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
            for warmup in range(WARM_UP_ROUNDS):
                await time_task(gateway, auth)
                await time_direct_job(worker, token, image, -1 - warmup)
            task_times, direct_times = [], []
            for number in range(iterations):
                task_times.append(await time_task(gateway, auth))
                direct_times.append(await time_direct_job(worker, token, image, number))
    print(f"== {mode}")
    ratio = print_ratio(
        iterations,
        ("task create -> completed", [timing.elapsed for timing in task_times]),
        ("direct jobs:run (same job)", [timing.elapsed for timing in direct_times]),
    )
    overhead = statistics.median(t.elapsed for t in task_times) - statistics.median(t.elapsed for t in direct_times)
    print(f"ratio: {ratio:.2f} (dispatch overhead {overhead * 1000:.0f} ms)")
    outside = [statistics.median(t.outside_the_run for t in times) for times in (task_times, direct_times)]
    print(
        f"outside the sandbox run: task {outside[0] * 1000:.1f} ms, direct {outside[1] * 1000:.1f} ms "
        f"(dispatch overhead {(outside[0] - outside[1]) * 1000:.1f} ms)"
    )
    return overhead, outside[0] - outside[1]


async def bench(modes: list[str], iterations: int, image: str, root: Path, dsn: str) -> None:
    results = {}
    for mode in modes:
        # A database per mode: the previous mode's node must not look dispatchable.
        database = "bench_" + mode.replace("-", "_")
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as admin:
            await admin.execute(f"CREATE DATABASE {database}")
        results[mode] = await bench_mode(mode, iterations, image, root, make_conninfo(dsn, dbname=database))
    print(
        "dispatch overhead (difference of medians | outside the sandbox run): "
        + ", ".join(f"{mode} {whole * 1000:.0f} | {rest * 1000:.1f} ms" for mode, (whole, rest) in results.items())
    )


def main() -> None:
    args = sandbox_bench_arguments(__doc__, modes={"both": list(MODES), **{mode: [mode] for mode in MODES}})
    with private_database("dispatch") as (root, dsn):
        eventloop.run(bench(args.mode, args.iterations, args.image, root, dsn))


if __name__ == "__main__":
    sys.exit(main())
