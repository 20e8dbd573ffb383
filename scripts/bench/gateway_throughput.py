#!/usr/bin/env python3
"""Gateway throughput: authenticated ``GET /v1/tasks/{id}`` against a bare litestar hello app.

Starts a private PostgreSQL and the gateway role, logs in, creates a task, then loads with ``wrk``
(one thread; keep it on loopback) in one run, alternating: the bare app (a litestar JSON hello on
the same server settings, the ceiling for this machine) and the gateway's task read (JWT check,
live-session check, the task query, JSON). Prints requests per second of both and their ratio, and
the median latency of ``/healthz`` on one kept-alive connection (a delayed-ACK stall shows as ~40
ms there).

The same app objects are also served by granian's embedded server (ASGI without lifespan, on the
same event loop and database pool), so the choice of HTTP server rests on numbers from one run.

A measurement, not a test: it never fails on a slow result. ``wrk`` comes from Debian
(``apt-get install wrk``), granian from the ``bench`` extra (``pip install -e '.[bench]'``).

Usage: .venv/bin/python scripts/bench/gateway_throughput.py [--seconds N] [--connections N]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import re
import secrets
import shutil
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from report import private_database

try:
    import granian.constants
    import granian.server.embed
except ImportError:
    raise SystemExit("granian is not installed: .venv/bin/pip install -e '.[bench]'") from None
from litestar import Litestar, get

from cynode import eventloop
from cynode.composition import Stack
from cynode.http.server import ServedApp
from cynode.settings import Role, load_settings

_REQUESTS_PER_SECOND = re.compile(r"Requests/sec:\s+([\d.]+)")
_MEDIAN_LATENCY = re.compile(r"^\s+50%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


@dataclass(frozen=True)
class Load:
    requests_per_second: float
    median_ms: float


def wrk(url: str, *, seconds: int, connections: int, headers: dict[str, str] | None = None) -> Load:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    for name, value in (headers or {}).items():
        command += ["-H", f"{name}: {value}"]
    output = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if errors:
        raise SystemExit(f"{url}: {errors.group(1)} error responses under load:\n{output}")
    rate = _REQUESTS_PER_SECOND.search(output)
    latency = _MEDIAN_LATENCY.search(output)
    if rate is None or latency is None:
        raise SystemExit(f"cannot read wrk output:\n{output}")
    return Load(float(rate.group(1)), float(latency.group(1)) * _UNIT_MS[latency.group(2)])


@get("/hello", sync_to_thread=False)
def hello() -> dict[str, str]:
    return {"hello": "world"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def granian_serving(app: Litestar) -> AsyncIterator[str]:
    """``app`` served by granian's embedded server on this loop; yields its base URL."""
    port = free_port()
    server = granian.server.embed.Server(
        app, address="127.0.0.1", port=port, interface=granian.constants.Interfaces.ASGINL, log_enabled=False
    )
    serving = asyncio.create_task(server.serve())
    base_url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=base_url) as probe:
        for _ in range(200):
            with contextlib.suppress(httpx.TransportError):
                await probe.get("/")
                break
            await asyncio.sleep(0.01)
    try:
        yield base_url
    finally:
        server.stop()
        await serving


async def gateway_read(base_url: str, password: str) -> tuple[str, dict[str, str]]:
    """A task's path and the headers that read it as its owner."""
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as gateway:
        login = await gateway.post("/v1/auth/login", json={"handle": "admin", "password": password})
        login.raise_for_status()
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        task = await gateway.post("/v1/tasks", json={"prompt": "echo hi", "input_mode": "commands"}, headers=headers)
        task.raise_for_status()
    return f"/v1/tasks/{task.json()['task_id']}", headers


def measure(
    bare_url: str, gateway_url: str, read: tuple[str, dict[str, str]], args: argparse.Namespace
) -> dict[str, Load]:
    path, headers = read
    wrk(bare_url + "/hello", seconds=1, connections=args.connections)  # warm-up
    wrk(gateway_url + path, headers=headers, seconds=1, connections=args.connections)
    return {
        "bare": wrk(bare_url + "/hello", seconds=args.seconds, connections=args.connections),
        "gateway": wrk(gateway_url + path, headers=headers, seconds=args.seconds, connections=args.connections),
        "healthz": wrk(gateway_url + "/healthz", seconds=args.seconds, connections=1),
    }


async def bench(args: argparse.Namespace, root: Path, dsn: str) -> None:
    password = secrets.token_urlsafe(16)
    env = {
        "CYNODE_ADMIN_PASSWORD": password,
        "CYNODE_NODE_REGISTRATION_PSK": secrets.token_urlsafe(16),
        "CYNODE_SECRET_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
    }
    overrides = {"data_dir": str(root / "data"), "database_url": dsn, "gateway.port": 0, "control_plane.port": 0}
    bare_app = Litestar(route_handlers=[hello])
    results: dict[str, dict[str, Load]] = {}
    async with Stack(
        load_settings(env={}, overrides=overrides), frozenset({Role.GATEWAY, Role.ORCHESTRATOR}), env=env
    ) as stack:
        bare = ServedApp("bare", bare_app, "127.0.0.1", 0)
        await bare.start()
        try:
            gateway_url = stack.base_url(Role.GATEWAY)
            read = await gateway_read(gateway_url, password)
            results["uvicorn"] = await asyncio.to_thread(measure, bare.base_url, gateway_url, read, args)
        finally:
            await bare.stop()
        async with granian_serving(bare_app) as bare_url, granian_serving(stack.apps[Role.GATEWAY].app) as gateway_url:
            results["granian"] = await asyncio.to_thread(measure, bare_url, gateway_url, read, args)
    print(f"wrk -t1 -c{args.connections} -d{args.seconds}s; /healthz on one kept-alive connection (-c1)")
    for server, loads in results.items():
        ratio = loads["gateway"].requests_per_second / loads["bare"].requests_per_second
        print(
            f"{server:8} bare hello {loads['bare'].requests_per_second:6.0f} req/s | "
            f"GET /v1/tasks/{{id}} {loads['gateway'].requests_per_second:6.0f} req/s "
            f"(median {loads['gateway'].median_ms:.2f} ms) | ratio {ratio:.2f} | "
            f"/healthz median {loads['healthz'].median_ms:.2f} ms"
        )


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    if args.seconds < 1 or args.connections < 1:
        parser.error("--seconds and --connections must be at least 1")
    if shutil.which("wrk") is None:
        parser.error("wrk is not installed: apt-get install wrk")
    return args


def main() -> None:
    args = arguments()
    with private_database("gateway") as (root, dsn):
        eventloop.run(bench(args, root, dsn))


if __name__ == "__main__":
    sys.exit(main())
