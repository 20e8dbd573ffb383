"""Registration, node authentication, capability reports and heartbeats over real HTTP."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import sql

from cynode.settings import Role
from tests.fixtures.nodes import (
    NODE_PSK,
    NodeClient,
    altered_report,
    capability_report,
    node_client,
    now_rfc3339,
    start_control_plane,
)
from tests.fixtures.stack import RunningStack, StackFactory

DB = psycopg.Connection[dict[str, Any]]
PUBLIC_URL = "https://control.example.test:8443/"


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


def _count(db: DB, table: str) -> int:
    row = db.execute(sql.SQL("SELECT count(*) AS n FROM {}").format(sql.Identifier(table))).fetchone()
    assert row is not None
    return int(row["n"])


def _node_row(db: DB, slug: str) -> dict[str, Any]:
    row = db.execute("SELECT * FROM nodes WHERE node_slug = %s", (slug,)).fetchone()
    assert row is not None, f"node {slug} not stored"
    return row


def _raw_post(stack: RunningStack, path: str, content: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    return stack.client(Role.ORCHESTRATOR).post(
        path, content=content, headers={"Content-Type": "application/json", **(headers or {})}
    )


def test_register_creates_then_reactivates_with_absolute_urls_from_the_public_base(
    stack_factory: StackFactory, db: DB
) -> None:
    stack = start_control_plane(stack_factory, overrides={"control_plane.public_url": PUBLIC_URL})
    node = node_client(stack, "edge-01")
    created = node.register(capability_report("edge-01", worker_api_url="http://10.1.2.3:12090/"))
    assert created.status_code == 201
    assert created.headers["content-type"].startswith("application/json")
    bootstrap = created.json()
    base = PUBLIC_URL.rstrip("/")
    assert bootstrap["version"] == 1
    assert bootstrap["heartbeat_interval_seconds"] == 30  # a third of the default 90 s grace
    assert bootstrap["orchestrator"] == {
        "base_url": base,
        "endpoints": {
            "worker_registration_url": f"{base}/v1/nodes/register",
            "node_config_url": f"{base}/v1/nodes/config",
            "node_report_url": f"{base}/v1/nodes/capability",
            "node_heartbeat_url": f"{base}/v1/nodes/heartbeat",
        },
    }
    claims = stack.stack.context.signer.verify(bootstrap["auth"]["node_jwt"], "node")  # type: ignore[union-attr]
    assert claims["node_slug"] == "edge-01"
    assert claims["exp"] - claims["iat"] == 24 * 3600
    row = _node_row(db, "edge-01")
    assert claims["sub"] == str(row["id"])
    assert row["status"] == "active"
    assert row["worker_api_target_url"] == "http://10.1.2.3:12090"
    assert row["capability_hash"].startswith("sha256:")
    assert row["last_seen_at"] is not None
    assert _count(db, "node_capabilities") == 1

    db.execute("UPDATE nodes SET status = 'inactive' WHERE node_slug = 'edge-01'")
    again = node.register(capability_report("edge-01", worker_api_url="http://10.1.2.3:12090"))
    assert again.status_code == 200
    assert again.json()["auth"]["node_jwt"] != bootstrap["auth"]["node_jwt"]
    # The secret is issued once, by the first registration; the node presents it from then on.
    assert bootstrap["auth"]["node_secret"]
    assert "node_secret" not in again.json()["auth"]
    assert _node_row(db, "edge-01")["status"] == "active"
    assert _node_row(db, "edge-01")["id"] == row["id"]
    assert _count(db, "nodes") == 1


def test_node_jwt_lifetime_follows_the_setting(stack_factory: StackFactory) -> None:
    stack = start_control_plane(stack_factory, overrides={"nodes.node_jwt_ttl_seconds": 600})
    node = node_client(stack, "short-lived")
    assert node.register().status_code == 201
    claims = stack.stack.context.signer.verify(node.jwt, "node")  # type: ignore[union-attr]
    assert claims["exp"] - claims["iat"] == 600


@pytest.mark.parametrize("psk", ["", "wrong-psk", NODE_PSK + " ", NODE_PSK.upper(), "ünïcode"])
def test_wrong_or_empty_psk_is_401_and_nothing_is_stored(control_plane: RunningStack, db: DB, psk: str) -> None:
    response = node_client(control_plane, "intruder").register(psk=psk)
    body = _problem(response, 401)
    assert body["detail"] == "Invalid registration PSK"
    assert NODE_PSK not in response.text
    assert _count(db, "nodes") == 0
    assert _count(db, "node_capabilities") == 0


def _registration(capability: Any = None, **envelope: Any) -> bytes:
    body = {"psk": NODE_PSK, "capability": capability_report("bad-input") if capability is None else capability}
    body.update(envelope)
    return json.dumps(body).encode()


def _report_with(path: str, value: Any) -> dict[str, Any]:
    return altered_report("bad-input", path, value)


BAD_REGISTRATIONS = {
    "malformed JSON": b'{"psk": "x", "capability": {',
    "not JSON at all": b"psk=x",
    "JSON array": b"[]",
    "empty body": b"",
    "missing capability": json.dumps({"psk": NODE_PSK}).encode(),
    "missing psk": json.dumps({"capability": capability_report("bad-input")}).encode(),
    "psk of the wrong type": _registration(psk=123),
    "capability version 2": _registration(_report_with("version", 2)),
    "capability version as string": _registration(_report_with("version", "1")),
    "missing platform": _registration(_report_with("platform", ...)),
    "missing node slug": _registration(_report_with("node.node_slug", ...)),
    "empty node slug": _registration(_report_with("node.node_slug", "")),
    "slug with a slash": _registration(_report_with("node.node_slug", "../etc")),
    "cpu_cores of the wrong type": _registration(_report_with("compute.cpu_cores", "four")),
    "naive reported_at": _registration(_report_with("reported_at", "2026-01-01T00:00:00")),
    "unknown inference mode": _registration(_report_with("inference.mode", "sometimes")),
    "relative worker URL": _registration(_report_with("worker_api.base_url", "/worker")),
    "non-http worker URL": _registration(_report_with("worker_api.base_url", "ftp://host:21")),
}


@pytest.mark.parametrize("body", BAD_REGISTRATIONS.values(), ids=BAD_REGISTRATIONS.keys())
def test_bad_registration_bodies_are_400_and_nothing_is_stored(
    control_plane: RunningStack, db: DB, body: bytes
) -> None:
    problem = _problem(_raw_post(control_plane, "/v1/nodes/register", body), 400)
    assert problem["detail"]
    assert _count(db, "nodes") == 0
    assert _count(db, "node_capabilities") == 0


def test_unsupported_capability_version_has_its_own_problem_type(control_plane: RunningStack) -> None:
    response = _raw_post(control_plane, "/v1/nodes/register", _registration(_report_with("version", 2)))
    problem = _problem(response, 400)
    assert problem["type"] == "https://cynode.ai/problems/unsupported-payload-version"
    assert "version 2" in problem["detail"]


def test_psk_is_checked_before_the_capability(control_plane: RunningStack, db: DB) -> None:
    body = json.dumps({"psk": "wrong", "capability": {"version": 2}}).encode()
    _problem(_raw_post(control_plane, "/v1/nodes/register", body), 401)


def test_oversized_registration_is_413_and_nothing_is_stored(stack_factory: StackFactory, db: DB) -> None:
    stack = start_control_plane(stack_factory, overrides={"control_plane.max_request_bytes": 4096})
    report = capability_report("too-big")
    report["node"]["labels"] = ["x" * 100] * 50
    response = node_client(stack, "too-big").register(report)
    _problem(response, 413)
    assert _count(db, "nodes") == 0


def _registered(stack: RunningStack, slug: str, **options: Any) -> NodeClient:
    node = node_client(stack, slug)
    assert node.register(capability_report(slug, **options)).status_code == 201
    return node


NODE_ROUTES = [
    ("GET", "/v1/nodes/config"),
    ("POST", "/v1/nodes/config"),
    ("POST", "/v1/nodes/capability"),
    ("POST", "/v1/nodes/heartbeat"),
]


@pytest.mark.parametrize(("method", "path"), NODE_ROUTES)
def test_node_routes_need_a_node_token(control_plane: RunningStack, method: str, path: str) -> None:
    node = _registered(control_plane, "auth-node")
    signer = control_plane.stack.context.signer  # type: ignore[union-attr]
    user_token = signer.issue("access", "8d0f8f43-7a7e-4b43-9a55-0a1f2f7c1e11", timedelta(minutes=5), handle="admin")
    node_id = signer.verify(node.jwt, "node")["sub"]
    expired = signer.issue("node", node_id, timedelta(seconds=-5), node_slug="auth-node")
    http = control_plane.client(Role.ORCHESTRATOR)
    cases = {
        "no header": ({}, "Missing authorization header"),
        "wrong scheme": ({"Authorization": f"Basic {node.jwt}"}, "Missing authorization header"),
        "garbage": ({"Authorization": "Bearer not-a-jwt"}, "Invalid or expired token"),
        "user access token": ({"Authorization": f"Bearer {user_token.token}"}, "Invalid or expired token"),
        "expired node token": ({"Authorization": f"Bearer {expired.token}"}, "Invalid or expired token"),
    }
    for name, (headers, detail) in cases.items():
        response = http.request(method, path, headers=headers, json=capability_report("auth-node"))
        assert _problem(response, 401)["detail"] == detail, name
        assert response.headers["www-authenticate"] == "Bearer"


def test_token_of_a_removed_node_is_401_so_the_node_registers_again(control_plane: RunningStack, db: DB) -> None:
    node = _registered(control_plane, "gone-node")
    db.execute("DELETE FROM nodes WHERE node_slug = 'gone-node'")
    assert _problem(node.report(capability_report("gone-node")), 401)["detail"].startswith("Node is not registered")
    assert node.heartbeat().status_code == 401
    response = control_plane.client(Role.ORCHESTRATOR).get("/v1/nodes/config", headers=node.auth)
    assert response.status_code == 401
    assert node.register().status_code == 201


def test_capability_report_records_history_hash_and_times(control_plane: RunningStack, db: DB) -> None:
    node = _registered(control_plane, "reporter", worker_api_url="http://10.0.0.5:12090")
    before = _node_row(db, "reporter")
    time.sleep(0.01)
    changed = capability_report("reporter", worker_api_url="http://10.0.0.6:12090", inference_running=True)
    assert node.report(changed).status_code == 204
    after = _node_row(db, "reporter")
    assert after["capability_hash"] != before["capability_hash"]
    assert after["last_capability_at"] > before["last_capability_at"]
    assert after["last_seen_at"] > before["last_seen_at"]
    assert after["worker_api_target_url"] == "http://10.0.0.6:12090"
    latest = db.execute(
        "SELECT capability_hash, capability_snapshot FROM node_capabilities ORDER BY created_at DESC LIMIT 1"
    ).fetchone()
    assert latest is not None
    assert latest["capability_hash"] == after["capability_hash"]
    assert latest["capability_snapshot"]["inference"]["running"] is True
    assert latest["capability_snapshot"]["compute"] == changed["compute"]
    assert _count(db, "node_capabilities") == 2

    # The same capabilities again: the node is seen, but no duplicate history row is written.
    time.sleep(0.01)
    assert node.report(changed).status_code == 204
    assert _count(db, "node_capabilities") == 2
    assert _node_row(db, "reporter")["last_capability_at"] > after["last_capability_at"]


def test_report_without_worker_api_keeps_the_stored_url(control_plane: RunningStack, db: DB) -> None:
    node = _registered(control_plane, "quiet", worker_api_url="http://10.0.0.7:12090")
    assert node.report(capability_report("quiet", worker_api_url=None)).status_code == 204
    assert _node_row(db, "quiet")["worker_api_target_url"] == "http://10.0.0.7:12090"


def test_operator_override_beats_the_reported_worker_url(stack_factory: StackFactory, db: DB) -> None:
    override = "http://host.containers.internal:12090"
    stack = start_control_plane(stack_factory, overrides={"nodes.worker_api_target_url": override})
    node = _registered(stack, "behind-nat", worker_api_url="http://172.17.0.2:12090")
    assert _node_row(db, "behind-nat")["worker_api_target_url"] == override
    assert node.fetch_config()["orchestrator"]["endpoints"]["worker_api_target_url"] == override


def test_report_for_another_nodes_slug_is_400_and_nothing_is_stored(control_plane: RunningStack, db: DB) -> None:
    node = _registered(control_plane, "honest")
    _registered(control_plane, "victim", worker_api_url="http://10.0.0.9:12090")
    victim_before = _node_row(db, "victim")
    spoof = capability_report("victim", worker_api_url="http://attacker.test:12090")
    assert _problem(node.report(spoof), 400)["detail"] == "node_slug does not match authenticated node"
    assert _node_row(db, "victim")["worker_api_target_url"] == victim_before["worker_api_target_url"]
    assert _node_row(db, "victim")["capability_hash"] == victim_before["capability_hash"]
    assert _count(db, "node_capabilities") == 2


BAD_REPORTS = {
    "malformed JSON": b"{",
    "version 2": json.dumps(_report_with("version", 2)).encode(),
    "missing compute": json.dumps(_report_with("compute", ...)).encode(),
    "wrong type": json.dumps(_report_with("gpu.present", "yes")).encode(),
    "bad worker URL": json.dumps(_report_with("worker_api.base_url", "not a url")).encode(),
}


@pytest.mark.parametrize("body", BAD_REPORTS.values(), ids=BAD_REPORTS.keys())
def test_bad_reports_are_400_and_nothing_is_stored(control_plane: RunningStack, db: DB, body: bytes) -> None:
    node = _registered(control_plane, "bad-input")
    before = _node_row(db, "bad-input")
    _problem(_raw_post(control_plane, "/v1/nodes/capability", body, node.auth), 400)
    assert _count(db, "node_capabilities") == 1
    assert _node_row(db, "bad-input")["last_capability_at"] == before["last_capability_at"]


def test_heartbeat_marks_the_node_seen(control_plane: RunningStack, db: DB) -> None:
    node = _registered(control_plane, "beating")
    before = _node_row(db, "beating")["last_seen_at"]
    time.sleep(0.01)
    assert node.heartbeat().status_code == 204
    assert _node_row(db, "beating")["last_seen_at"] > before


BAD_HEARTBEATS = {
    "other slug": ({"version": 1, "node_slug": "someone-else", "sent_at": now_rfc3339()}, 400),
    "version 2": ({"version": 2, "node_slug": "beating", "sent_at": now_rfc3339()}, 400),
    "missing sent_at": ({"version": 1, "node_slug": "beating"}, 400),
}


@pytest.mark.parametrize(("body", "status"), BAD_HEARTBEATS.values(), ids=BAD_HEARTBEATS.keys())
def test_bad_heartbeats_are_rejected_without_marking_the_node_seen(
    control_plane: RunningStack, db: DB, body: dict[str, Any], status: int
) -> None:
    node = _registered(control_plane, "beating")
    before = _node_row(db, "beating")["last_seen_at"]
    response = control_plane.client(Role.ORCHESTRATOR).post("/v1/nodes/heartbeat", json=body, headers=node.auth)
    _problem(response, status)
    assert _node_row(db, "beating")["last_seen_at"] == before
