#!/usr/bin/env python3
"""Valid-login latency after a flood of refused logins, against the same before the flood.

Starts a private PostgreSQL and the gateway and orchestrator roles, times ``POST /v1/auth/login``
of a valid user (median of ``--iterations``), sends ``--flood`` refused logins (wrong passwords for
unknown handles from ``--sources`` addresses, straight to the identity service so the flood itself
is quick), then times the valid logins again and prints both medians, their ratio, and how many audit
rows the flood left. A measurement, not a test: it never fails on a slow result.

Usage: .venv/bin/python scripts/bench/login_flood.py [--iterations N] [--flood N] [--sources N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import sys
import time
from pathlib import Path

import httpx
from report import print_ratio, private_database

from cynode import eventloop
from cynode.composition import Stack
from cynode.contracts.identity import LoginRequest
from cynode.http.problems import ProblemError
from cynode.identity.audit import ClientInfo
from cynode.identity.service import IdentityService
from cynode.settings import Role, load_settings

CONCURRENCY = 16
WRONG_PASSWORD = "not-the-password"  # noqa: S105 - deliberately wrong


async def time_logins(gateway: httpx.AsyncClient, password: str, iterations: int) -> list[float]:
    times = []
    for _ in range(iterations):
        started = time.perf_counter()
        response = await gateway.post("/v1/auth/login", json={"handle": "admin", "password": password})
        response.raise_for_status()
        times.append(time.perf_counter() - started)
    return times


async def flood(service: IdentityService, count: int, sources: int) -> None:
    gate = asyncio.Semaphore(CONCURRENCY)

    async def refused(number: int) -> None:
        request = LoginRequest(handle=f"flood-{number % 97}", password=WRONG_PASSWORD)
        async with gate:
            with contextlib.suppress(ProblemError):
                await service.login(request, ClientInfo(ip=f"192.0.2.{number % sources + 1}", user_agent="bench"))

    await asyncio.gather(*(refused(number) for number in range(count)))


async def bench(args: argparse.Namespace, root: Path, dsn: str) -> None:
    password = secrets.token_urlsafe(16)
    env = {"CYNODE_ADMIN_PASSWORD": password, "CYNODE_NODE_REGISTRATION_PSK": secrets.token_urlsafe(16)}
    overrides = {"data_dir": str(root / "data"), "database_url": dsn, "gateway.port": 0, "control_plane.port": 0}
    # Enough attempts per minute that the timed logins of one client are never throttled themselves.
    overrides["identity.login_attempts_per_minute_per_handle"] = 10 * args.iterations
    overrides["identity.login_attempts_per_minute_per_ip"] = 10 * args.iterations
    stack = Stack(load_settings(env={}, overrides=overrides), frozenset({Role.GATEWAY, Role.ORCHESTRATOR}), env=env)
    await stack.start()
    try:
        context = stack.context
        assert context is not None
        service = IdentityService(context.pool, context.signer, context.settings.identity)
        async with httpx.AsyncClient(base_url=stack.base_url(Role.GATEWAY), timeout=60) as gateway:
            await time_logins(gateway, password, 2)  # warm-up
            before = await time_logins(gateway, password, args.iterations)
            started = time.perf_counter()
            await flood(service, args.flood, args.sources)
            flood_seconds = time.perf_counter() - started
            after = await time_logins(gateway, password, args.iterations)
        async with context.pool.connection() as conn:
            cursor = await conn.execute("SELECT count(*) AS n FROM auth_audit_log")
            row = await cursor.fetchone()
    finally:
        await stack.stop()
    ratio = print_ratio(args.iterations, ("login after the flood", after), ("login before the flood", before))
    print(f"ratio: {ratio:.2f}")
    print(f"flood: {args.flood} refused logins in {flood_seconds:.1f} s; audit rows: {row['n'] if row else '?'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--iterations", type=int, default=15)
    parser.add_argument("--flood", type=int, default=20000)
    parser.add_argument("--sources", type=int, default=5)
    args = parser.parse_args()
    if min(args.iterations, args.flood, args.sources) < 1:
        parser.error("--iterations, --flood and --sources must be at least 1")
    with private_database("login") as (root, dsn):
        eventloop.run(bench(args, root, dsn))


if __name__ == "__main__":
    sys.exit(main())
