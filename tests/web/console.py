"""Helpers for driving the web console over plain HTTP: sign in through the login form, read CSRF tokens."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from cynode.composition import parse_roles
from cynode.settings import Role, Settings, load_settings
from tests.fixtures.identity import IDENTITY_ENV, IDENTITY_ROLES
from tests.fixtures.nodes import NodeClient, capability_report
from tests.fixtures.stack import EPHEMERAL_PORTS, RunningStack, start_stack

# Many sign-ins from one address within a minute is these tests' normal, not an attack.
GENEROUS_LOGIN_LIMITS = {
    "identity.login_attempts_per_minute_per_ip": 10_000,
    "identity.login_attempts_per_minute_per_handle": 10_000,
}
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_token(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "the page has no CSRF token"
    return match.group(1)


def sign_in(client: httpx.Client, handle: str, password: str) -> httpx.Response:
    """Submit the login form as a browser would; returns the answer to the POST."""
    form_page = client.get("/login")
    assert form_page.status_code == 200, form_page.text
    return client.post(
        "/login", data={"handle": handle, "password": password, "csrf_token": csrf_token(form_page.text)}
    )


def page_token(client: httpx.Client, path: str = "/tasks") -> str:
    """The CSRF token of the signed-in session, read from one of its pages."""
    page = client.get(path)
    assert page.status_code == 200, page.text
    return csrf_token(page.text)


@contextmanager
def console_client(stack: RunningStack) -> Iterator[httpx.Client]:
    """A client that keeps cookies like a browser but shows redirects instead of following them."""
    with httpx.Client(base_url=stack.url(Role.GATEWAY), timeout=30, follow_redirects=False) as client:
        yield client


def console_settings(dsn: str, data_dir: Path, overrides: Mapping[str, Any] | None = None) -> Settings:
    """Settings for a test stack on ``dsn`` with ephemeral ports and the console tests' login limits."""
    return load_settings(
        env={},
        overrides={
            **EPHEMERAL_PORTS,
            "data_dir": str(data_dir),
            "database_url": dsn,
            **GENEROUS_LOGIN_LIMITS,
            **(overrides or {}),
        },
    )


@contextmanager
def gateway_stack_on(dsn: str, data_dir: Path, overrides: Mapping[str, Any] | None = None) -> Iterator[RunningStack]:
    """Gateway and orchestrator roles on ``dsn`` with the identity tests' admin, for a whole module."""
    running = start_stack(console_settings(dsn, data_dir, overrides), parse_roles([IDENTITY_ROLES]), IDENTITY_ENV)
    try:
        yield running
    finally:
        running.stop()


def registered_node(stack: RunningStack, slug: str) -> NodeClient:
    """A node of ``stack`` that registered, fetched its configuration and acknowledged it (no Worker API runs)."""
    node = NodeClient(stack.client(Role.ORCHESTRATOR), slug, psk=IDENTITY_ENV["CYNODE_NODE_REGISTRATION_PSK"])
    assert node.register(capability_report(slug)).status_code in (200, 201)
    node.fetch_config()
    assert node.ack("applied").status_code == 204
    return node
