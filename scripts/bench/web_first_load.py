#!/usr/bin/env python3
"""Web console first load: bytes transferred and time to interactive, from Chromium's performance timing.

Starts a private PostgreSQL and the gateway and orchestrator roles, then, in one run and alternating
so both see the same machine state, opens in a fresh browser context (empty cache) the console's
login page (the first page anyone loads) and, as the baseline, ``/healthz`` (one tiny text
response: what the browser and server cost before the console adds anything). For each it reads the
Navigation Timing entry (``domContentLoadedEventEnd``: the module script has run, the page answers
input) and sums ``transferSize`` over the document and every resource. Then it does the same for the
signed-in task list and chat page. Prints medians, the ratio against the baseline and the budgets of the issue
(under 200 KiB, interactive within 1 s). A measurement, not a test: it never fails on a slow result.

Usage: .venv/bin/python scripts/bench/web_first_load.py [--iterations N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, sync_playwright
from report import print_ratio

from cynode.composition import Stack
from cynode.db.embedded import EmbeddedPostgres
from cynode.settings import Role, load_settings

CHROMIUM = "/usr/bin/chromium"
BYTES_BUDGET = 200 * 1024
INTERACTIVE_BUDGET_SECONDS = 1.0
# What the page's own performance timeline says about its first load.
MEASURE = """() => {
    const navigation = performance.getEntriesByType("navigation")[0];
    const resources = performance.getEntriesByType("resource");
    const bytes = [navigation, ...resources].reduce((sum, entry) => sum + entry.transferSize, 0);
    return {interactive_ms: navigation.domContentLoadedEventEnd, bytes};
}"""


def run_stack(stack: Stack) -> tuple[asyncio.AbstractEventLoop, threading.Thread]:
    """Start ``stack`` on an event loop of its own thread; the browser drives it from this one."""
    loop = asyncio.new_event_loop()
    started: Future[None] = Future()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(stack.start())
        started.set_result(None)
        loop.run_forever()

    thread = threading.Thread(target=serve, name="bench-stack", daemon=True)
    thread.start()
    started.result(timeout=120)
    return loop, thread


def first_load(browser: Browser, url: str, storage_state: Any = None) -> tuple[float, int]:
    """Seconds to interactive and bytes transferred loading ``url`` with an empty cache."""
    context = browser.new_context(storage_state=storage_state)
    page = context.new_page()
    page.goto(url, wait_until="load")
    measured = page.evaluate(MEASURE)
    context.close()
    return measured["interactive_ms"] / 1000, int(measured["bytes"])


def signed_in_state(browser: Browser, base_url: str, password: str) -> Any:
    context = browser.new_context(base_url=base_url)
    page = context.new_page()
    page.goto("/login")
    page.get_by_label("Handle").fill("admin")
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/tasks")
    state = context.storage_state()
    context.close()
    return state


def bench(iterations: int, base_url: str, password: str) -> None:
    flags = ["--no-sandbox"] if os.geteuid() == 0 else []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=flags)
        state = signed_in_state(browser, base_url, password)
        pages = {
            "login page": (f"{base_url}/login", None),
            "task list": (f"{base_url}/tasks", state),
            "chat page": (f"{base_url}/chat", state),
        }
        baseline: list[float] = []
        timings: dict[str, list[float]] = {name: [] for name in pages}
        sizes: dict[str, list[int]] = {name: [] for name in pages}
        for _ in range(2):  # warm-up: first connections, template compilation
            first_load(browser, f"{base_url}/login")
        for _ in range(iterations):
            baseline.append(first_load(browser, f"{base_url}/healthz")[0])
            for name, (url, storage) in pages.items():
                seconds, size = first_load(browser, url, storage)
                timings[name].append(seconds)
                sizes[name].append(size)
        browser.close()
    for name in pages:
        print(f"--- {name}")
        ratio = print_ratio(iterations, (f"{name} interactive", timings[name]), ("/healthz loaded", baseline))
        interactive = statistics.median(timings[name])
        size = max(sizes[name])
        print(f"ratio: {ratio:.2f}")
        print(
            f"bytes transferred: {size} ({size / 1024:.1f} KiB; budget {BYTES_BUDGET // 1024} KiB: "
            f"{'within' if size < BYTES_BUDGET else 'OVER'})"
        )
        print(
            f"time to interactive: {interactive * 1000:.0f} ms (budget {INTERACTIVE_BUDGET_SECONDS * 1000:.0f} ms: "
            f"{'within' if interactive < INTERACTIVE_BUDGET_SECONDS else 'OVER'})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--iterations", type=int, default=10)
    args = parser.parse_args()
    if args.iterations < 1:
        parser.error("--iterations must be at least 1")
    root = Path(tempfile.mkdtemp(prefix="cynode-bench-web-"))
    root.chmod(0o755)  # the postgres user must traverse it when run as root
    database = EmbeddedPostgres(root / "pg", fast_unsafe=True)
    password = secrets.token_urlsafe(16)
    env = {"CYNODE_ADMIN_PASSWORD": password, "CYNODE_NODE_REGISTRATION_PSK": secrets.token_urlsafe(16)}
    try:
        dsn = database.start()
        overrides = {"data_dir": str(root / "data"), "database_url": dsn, "gateway.port": 0, "control_plane.port": 0}
        stack = Stack(load_settings(env={}, overrides=overrides), frozenset({Role.GATEWAY, Role.ORCHESTRATOR}), env=env)
        loop, thread = run_stack(stack)
        try:
            bench(args.iterations, stack.base_url(Role.GATEWAY), password)
        finally:
            asyncio.run_coroutine_threadsafe(stack.stop(), loop).result(timeout=60)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=30)
    finally:
        database.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
