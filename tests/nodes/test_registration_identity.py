"""A node slug is bound to the node that first registered it; registration is throttled per source."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import httpx
import psycopg

from cynode.nodemanager.state import NodeSecretStore
from cynode.settings import Role
from tests.fixtures.identity import ADMIN_HANDLE, ADMIN_PASSWORD, USER_PASSWORD, create_user, login
from tests.fixtures.nodes import NodeClient, capability_report, configured_node, node_client, start_control_plane
from tests.fixtures.stack import RunningStack, StackFactory

DB = psycopg.Connection[dict[str, Any]]


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    return body


def _identity(db: DB, slug: str) -> dict[str, Any]:
    row = db.execute(
        """
        SELECT id, status, worker_api_target_url, worker_api_bearer_token_ciphertext, node_secret_hash,
               capability_hash, reregistration_required
        FROM nodes WHERE node_slug = %s
        """,
        (slug,),
    ).fetchone()
    assert row is not None
    return row


def _impostor(stack: RunningStack, slug: str, secret: str | None) -> NodeClient:
    impostor = node_client(stack, slug)
    impostor.node_secret = secret
    return impostor


def test_a_known_slug_without_its_secret_is_409_and_changes_nothing(control_plane: RunningStack, db: DB) -> None:
    node = configured_node(control_plane, "owned", worker_api_url="http://10.0.0.5:12090")
    before = _identity(db, "owned")
    reports_before = db.execute("SELECT count(*) AS n FROM node_capabilities").fetchone()
    for secret in (None, "", "a-guessed-secret", node.jwt):
        stolen = capability_report("owned", worker_api_url="http://203.0.113.66:12090")
        problem = _problem(_impostor(control_plane, "owned", secret).register(stolen), 409)
        assert "node_secret" in problem["detail"]
    assert _identity(db, "owned") == before
    assert db.execute("SELECT count(*) AS n FROM node_capabilities").fetchone() == reports_before
    refused = db.execute(
        "SELECT subject_handle, reason FROM auth_audit_log WHERE event_type = 'node_registration_refused'"
    ).fetchall()
    assert refused == [{"subject_handle": "owned", "reason": "node secret missing or wrong"}] * 4
    # The real node is untouched: its token still works.
    assert node.heartbeat().status_code == 204


def test_the_secret_re_registers_and_retires_the_worker_token(control_plane: RunningStack, db: DB) -> None:
    node = configured_node(control_plane, "renewing")
    assert node.config is not None
    old_token = node.config["worker_api"]["orchestrator_bearer_token"]
    secret_hash = _identity(db, "renewing")["node_secret_hash"]
    assert secret_hash is not None
    assert node.node_secret is not None
    assert node.node_secret.encode() not in bytes(secret_hash)

    again = node.register()
    assert again.status_code == 200, again.text
    assert "node_secret" not in again.json()["auth"]
    assert _identity(db, "renewing")["worker_api_bearer_token_ciphertext"] is None
    assert _identity(db, "renewing")["node_secret_hash"] == secret_hash
    assert node.fetch_config()["worker_api"]["orchestrator_bearer_token"] != old_token


def test_a_node_registered_before_secrets_existed_is_issued_one(control_plane: RunningStack, db: DB) -> None:
    node = configured_node(control_plane, "veteran")
    db.execute("UPDATE nodes SET node_secret_hash = NULL WHERE node_slug = 'veteran'")
    fresh = _impostor(control_plane, "veteran", None)
    issued = fresh.register()
    assert issued.status_code == 200, issued.text
    assert issued.json()["auth"]["node_secret"]
    # From now on the slug is bound: the earlier client's secret is not the one just issued.
    assert _problem(node.register(), 409)
    assert fresh.register().status_code == 200


def test_registration_is_throttled_per_source(stack_factory: StackFactory, db: DB) -> None:
    stack = start_control_plane(stack_factory, overrides={"nodes.registrations_per_minute_per_source": 3})
    responses = [node_client(stack, f"burst-{number}").register(psk="wrong") for number in range(3)]
    assert [response.status_code for response in responses] == [401, 401, 401]
    throttled = node_client(stack, "burst-last").register()
    problem = _problem(throttled, 429)
    assert "Too many registrations" in problem["detail"]
    assert 1 <= int(throttled.headers["Retry-After"]) <= 60
    assert db.execute("SELECT count(*) AS n FROM nodes").fetchone() == {"n": 0}


def test_only_admins_rotate_known_nodes_tokens(stack_factory: StackFactory, db: DB) -> None:
    stack = start_control_plane(stack_factory, env={"CYNODE_ADMIN_PASSWORD": ADMIN_PASSWORD})
    node = configured_node(stack, "guarded")
    gateway = stack.client(Role.GATEWAY)
    admin = login(gateway, ADMIN_HANDLE, ADMIN_PASSWORD)
    create_user(gateway, admin, "mallory")
    mallory = login(gateway, "mallory", USER_PASSWORD)
    _problem(gateway.post("/v1/nodes/guarded/rotate_worker_token"), 401)
    _problem(gateway.post("/v1/nodes/guarded/rotate_worker_token", headers=mallory.headers), 403)
    _problem(gateway.post("/v1/nodes/no-such-node/rotate_worker_token", headers=admin.headers), 404)
    assert _identity(db, "guarded")["worker_api_bearer_token_ciphertext"] is not None
    assert node.heartbeat().status_code == 204


def test_the_node_secret_file_is_private(tmp_path: Path) -> None:
    store = NodeSecretStore(tmp_path / "state")
    assert store.secret() is None
    store.record("the-secret")
    assert store.secret() == "the-secret"
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
