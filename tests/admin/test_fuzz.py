"""Property-based fuzzing (schemathesis + hypothesis) of the gateway, control plane and Worker API from their own
OpenAPI schemas, with valid tokens: no 5xx, every 4xx a problem document, refused requests write nothing.

Kept to a few examples per operation so the run takes seconds; the seed is fixed so a failure replays.
"""

from __future__ import annotations

from typing import Any

import httpx
import psycopg
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from cynode.settings import Role
from tests.fixtures.identity import ADMIN_HANDLE, ADMIN_PASSWORD, login
from tests.fixtures.nodes import configured_node
from tests.fixtures.podman import WORKER_TOKEN, WorkerFactory
from tests.fixtures.stack import RunningStack, StackFactory
from tests.fixtures.tasks import start_task_stack

DB = psycopg.Connection[dict[str, Any]]
EXAMPLES_PER_OPERATION = 4
# Requests that end the fuzzer's own session would only turn the rest of the run into 401s.
SKIPPED = frozenset({("POST", "/v1/auth/logout"), ("POST", "/v1/users/{user_id}/revoke_sessions")})
# The gateway's OpenAI-compatible routes and the control plane's chat route behind them.
OPENAI_SHAPED_PATHS = frozenset({"/v1/chat/completions", "/v1/models", "/v1/orchestrator/chat/completions"})
# What a refused request must not change (auth_audit_log records refusals on purpose; heartbeats
# and reports move nodes.last_seen_at).
FINGERPRINT = """
    SELECT (SELECT count(*) FROM users) AS users, (SELECT max(updated_at) FROM users) AS users_at,
           (SELECT count(*) FROM tasks) AS tasks, (SELECT count(*) FROM jobs) AS jobs,
           (SELECT count(*) FROM system_settings) AS settings, (SELECT count(*) FROM api_credentials) AS creds,
           (SELECT max(updated_at) FROM api_credentials) AS creds_at, (SELECT count(*) FROM admin_audit_log) AS admin,
           (SELECT string_agg(admin_state || config_ack_status, ',') FROM nodes) AS nodes,
           (SELECT count(*) FROM password_credentials) AS passwords, (SELECT max(updated_at) FROM password_credentials)
           AS passwords_at
"""


@pytest.fixture
def stack(stack_factory: StackFactory) -> RunningStack:
    return start_task_stack(stack_factory)


def assert_refusal_shape(path: str, response: Any, where: str) -> None:
    """A problem document, except the OpenAI error object on the OpenAI-compatible routes (CONTRACT.md section 8)."""
    if path in OPENAI_SHAPED_PATHS:
        assert response.headers["content-type"] == ["application/json"], where
        assert {"message", "type", "param", "code"} <= response.json()["error"].keys(), where
        return
    assert response.headers["content-type"] == ["application/problem+json"], where
    problem = response.json()
    assert problem["status"] == response.status_code, where
    assert {"type", "title"} <= problem.keys(), where


def fuzz(base_url: str, headers: dict[str, str], db: DB) -> int:
    """Fuzz every operation of the app at ``base_url``; returns how many requests were sent."""
    raw = httpx.get(f"{base_url}/openapi.json").json()
    schema = schemathesis.openapi.from_dict(raw)
    sent = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) in SKIPPED:
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @seed(12)
            @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None, phases=[Phase.generate],
                      suppress_health_check=list(HealthCheck))  # fmt: skip
            @given(case=operation.as_strategy(generation_mode=mode))
            def exercise(case: Any) -> None:
                nonlocal sent
                before = db.execute(FINGERPRINT).fetchone()
                response = case.call(base_url=base_url, headers=headers, timeout=30)
                sent += 1
                where = f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:300]}"
                assert response.status_code < 500, where
                if response.status_code >= 400:
                    assert_refusal_shape(case.path, response, where)
                    assert db.execute(FINGERPRINT).fetchone() == before, where

            try:
                exercise()
            except Unsatisfiable:
                # Nothing to make invalid (no parameters, no body): the positive run covered it.
                assert mode is GenerationMode.NEGATIVE
    return sent


def test_gateway_and_control_plane_survive_fuzzing(stack: RunningStack, db: DB) -> None:
    gateway = stack.client(Role.GATEWAY)
    admin = login(gateway, ADMIN_HANDLE, ADMIN_PASSWORD)
    assert fuzz(stack.url(Role.GATEWAY), admin.headers, db) > 100

    node = configured_node(stack, "fuzzed-node")
    assert fuzz(stack.url(Role.ORCHESTRATOR), node.auth, db) > 20


def test_worker_api_survives_fuzzing(worker_factory: WorkerFactory, db: DB) -> None:
    worker = worker_factory()
    assert fuzz(worker.base_url, {"Authorization": f"Bearer {WORKER_TOKEN}"}, db) > 5
