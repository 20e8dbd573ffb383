"""``cynode status``: each role's health and readiness, then (for an admin) nodes and queue depth.

Roles are probed on their public ``/healthz`` and ``/readyz``; the gateway is the stored session's
(or ``--gateway``), the control plane and a worker only when their URLs are given. Exit 0 when
every probed role is healthy and ready, 1 otherwise, 7 when the gateway cannot be reached.
"""

from __future__ import annotations

from typing import Any

import click
import httpx
import msgspec

from cynode.client.admin_api import AdminClient
from cynode.client.api import ClientError, LoginRequired
from cynode.client.commands import DEFAULT_GATEWAY_URL, echo_json, json_option, session_client
from cynode.client.credentials import load_credentials
from cynode.client.exit_codes import ExitCode
from cynode.contracts.admin import SystemStatusResponse

__all__ = ["status"]

_PROBE_TIMEOUT_SECONDS = 5


class RoleStatus(msgspec.Struct, kw_only=True):
    role: str
    url: str
    healthy: bool
    ready: bool
    detail: str


def probe(role: str, url: str) -> RoleStatus:
    base = url.rstrip("/")
    try:
        health = httpx.get(f"{base}/healthz", timeout=_PROBE_TIMEOUT_SECONDS)
        readiness = httpx.get(f"{base}/readyz", timeout=_PROBE_TIMEOUT_SECONDS)
    except httpx.HTTPError as exc:
        return RoleStatus(role=role, url=base, healthy=False, ready=False, detail=f"unreachable: {exc}")
    return RoleStatus(
        role=role,
        url=base,
        healthy=health.status_code == 200,
        ready=readiness.status_code == 200,
        detail=readiness.text.strip()[:300],
    )


def system_status() -> SystemStatusResponse | str:
    """The admin status view, or why it is not available to this session."""
    try:
        with session_client(AdminClient) as client:
            return client.system_status()
    except LoginRequired:
        return "log in as an admin (cynode login) to see nodes and the queue"
    except ClientError as exc:
        return str(exc)


@click.command()
@click.option("--gateway", "gateway_url", envvar="CYNODE_GATEWAY_URL",
              help="User API base URL (default: the logged-in gateway, else 127.0.0.1:12080).")  # fmt: skip
@click.option("--control-plane", "control_plane_url", envvar="CYNODE_CONTROL_PLANE_URL", help="Control plane URL.")
@click.option("--worker", "worker_urls", multiple=True, help="A Worker API URL to probe (repeatable).")
@json_option
def status(gateway_url: str | None, control_plane_url: str | None, worker_urls: tuple[str, ...], as_json: bool) -> None:
    """Health and readiness of each role, the nodes and the queue depth."""
    stored = load_credentials()
    gateway = gateway_url or (stored.gateway_url if stored else DEFAULT_GATEWAY_URL)
    roles = [probe("gateway", gateway)]
    if control_plane_url:
        roles.append(probe("control_plane", control_plane_url))
    roles.extend(probe("worker_api", url) for url in worker_urls)
    system = system_status() if roles[0].healthy else "gateway unreachable"
    if as_json:
        report: dict[str, Any] = {"roles": roles}
        report["system"] = system if isinstance(system, SystemStatusResponse) else {"unavailable": system}
        echo_json(report)
    else:
        show(roles, system)
    if not roles[0].healthy and roles[0].detail.startswith("unreachable"):
        raise SystemExit(ExitCode.UNAVAILABLE)
    raise SystemExit(ExitCode.OK if all(r.healthy and r.ready for r in roles) else ExitCode.FAILURE)


def show(roles: list[RoleStatus], system: SystemStatusResponse | str) -> None:
    for role in roles:
        state = "ready" if role.ready else ("not ready" if role.healthy else "down")
        reason = "" if role.ready else f" ({role.detail})"
        click.echo(f"{role.role:<14} {role.url:<28} {state}{reason}")
    if isinstance(system, str):
        click.echo(system)
        return
    click.echo(f"queue:         {system.queued_jobs} queued, {system.running_jobs} running")
    click.echo(f"nodes:         {len(system.nodes)}")
    for node in system.nodes:
        serving = "dispatchable" if node.dispatchable else "not dispatchable"
        click.echo(f"  {node.node_slug:<20} {node.admin_state:<9} {serving:<16} {node.running_jobs} running")
