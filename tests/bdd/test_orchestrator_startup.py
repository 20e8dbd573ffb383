"""Acceptance: readiness gating on an inference path (features/orchestrator/orchestrator_startup.feature)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from pytest_bdd import given, parsers, scenarios, then, when

from cynode.settings import Role, SettingsError
from tests.fixtures.nodes import PM_MODEL, LazyControlPlane, capability_report, configured_node
from tests.fixtures.stack import StackFactory

scenarios("orchestrator/orchestrator_startup.feature")

DB = psycopg.Connection[dict[str, Any]]


@dataclass
class World:
    control_plane: LazyControlPlane
    db: DB
    reasons: list[str] = field(default_factory=list)
    grace_seconds: int = 0
    start_error: SettingsError | None = None


@pytest.fixture
def world(lazy_control_plane: LazyControlPlane, db: DB) -> World:
    return World(lazy_control_plane, db)


def _count(db: DB, table: str) -> int:
    row = db.execute(sql.SQL("SELECT count(*) AS n FROM {}").format(sql.Identifier(table))).fetchone()
    assert row is not None
    return int(row["n"])


@given("no node runs local inference")
def no_nodes(world: World) -> None:
    assert _count(world.db, "nodes") == 0


@given("no external provider key is configured")
def no_external_key(world: World) -> None:
    assert _count(world.db, "api_credentials") == 0


@given("an active external provider key is configured")
def external_key(world: World) -> None:
    world.db.execute(
        """
        INSERT INTO api_credentials (owner_type, provider, credential_type, credential_name, credential_ciphertext)
        VALUES ('system', 'anthropic', 'api_key', 'project-manager', %s)
        """,
        (b"sealed-elsewhere",),
    )


@given("the orchestrator is running")
@when("the orchestrator starts")
def orchestrator_running(world: World) -> None:
    assert world.control_plane.stack.client(Role.ORCHESTRATOR).get("/healthz").text == "ok"


@given(parsers.parse("the orchestrator is running with a heartbeat grace of {seconds:d} seconds"))
def orchestrator_with_grace(world: World, seconds: int) -> None:
    world.grace_seconds = seconds
    world.control_plane.overrides["nodes.heartbeat_grace_seconds"] = seconds
    orchestrator_running(world)


@when(
    parsers.parse('node "{slug}" registers, applies its configuration and reports inference running with the PM model')
)
def node_serving_pm_model(world: World, slug: str) -> None:
    configured_node(world.control_plane.stack, slug, inference_running=True, available_models=[PM_MODEL])


@when(
    parsers.parse('node "{slug}" registers, applies its configuration and reports inference running without any model')
)
def node_without_model(world: World, slug: str) -> None:
    node = configured_node(world.control_plane.stack, slug)
    assert node.report(capability_report(slug, inference_running=True)).status_code == 204


@when("the node stays silent for longer than the grace period")
def node_silent(world: World) -> None:
    assert world.grace_seconds > 0
    time.sleep(world.grace_seconds + 0.5)


@when("its database goes away")
def database_goes_away(world: World, fresh_dsn: str, postgres_admin_dsn: str) -> None:
    orchestrator_running(world)
    world.db.close()
    name = str(conninfo_to_dict(fresh_dsn)["dbname"])
    with psycopg.connect(postgres_admin_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


@when("the orchestrator starts without CYNODE_NODE_REGISTRATION_PSK")
def start_without_psk(world: World, stack_factory: StackFactory) -> None:
    try:
        stack_factory("gateway,orchestrator", env={})
    except SettingsError as exc:
        world.start_error = exc


def _readyz(world: World, status: int) -> None:
    stack = world.control_plane.stack
    for role in (Role.ORCHESTRATOR, Role.GATEWAY):
        response = stack.client(role).get("/readyz")
        assert response.status_code == status, f"{role.value}: {response.status_code} {response.text}"
        assert response.headers["content-type"].startswith("text/plain")
        world.reasons.append(response.text)


@then("/readyz of the control plane and the gateway answers 503")
def not_ready(world: World) -> None:
    _readyz(world, 503)


@then('/readyz of the control plane and the gateway answers 200 "ready"')
def ready(world: World) -> None:
    _readyz(world, 200)
    assert world.reasons[-2:] == ["ready", "ready"]


@then("the reason says that no inference path is available")
def reason_no_inference_path(world: World) -> None:
    assert world.reasons[-2:]
    for reason in world.reasons[-2:]:
        assert reason.startswith("no inference path available (")


@then(parsers.parse('the reason is "{reason}"'))
def reason_is(world: World, reason: str) -> None:
    assert world.reasons[-2:] == [reason, reason]


@then("start-up fails with a message naming CYNODE_NODE_REGISTRATION_PSK")
def start_failed(world: World) -> None:
    assert world.start_error is not None, "the orchestrator started without a registration PSK"
    assert "CYNODE_NODE_REGISTRATION_PSK" in str(world.start_error)
