"""Readiness gating, the dispatchable-node query, and start-up refusal without a PSK."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import httpx
import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from cynode.context import OrchestratorContext
from cynode.crypto import SecretBox
from cynode.nodes.dispatchable import DispatchableNode, dispatchable_nodes
from cynode.nodes.readiness import DATABASE_UNREACHABLE, EXTERNAL_KEYS_UNUSED, NO_INFERENCE_PATH
from cynode.nodes.registration import resolve_registration_psk
from cynode.settings import Role, SettingsError, load_settings
from cynode.tokens import TokenSigner
from tests.fixtures.nodes import (
    CUDA_DEVICE,
    PM_MODEL,
    capability_report,
    configured_node,
    node_client,
    start_control_plane,
)
from tests.fixtures.stack import RunningStack, StackFactory

DB = psycopg.Connection[dict[str, Any]]
GRACE_SECONDS = 2


def _readyz(stack: RunningStack) -> list[httpx.Response]:
    """``/readyz`` of the control plane and the gateway, which must agree."""
    return [stack.client(role).get("/readyz") for role in (Role.ORCHESTRATOR, Role.GATEWAY)]


def _assert_ready(stack: RunningStack) -> None:
    for response in _readyz(stack):
        assert (response.status_code, response.text) == (200, "ready")


def _assert_not_ready(stack: RunningStack, reason: str) -> None:
    for response in _readyz(stack):
        assert response.status_code == 503
        assert response.headers["content-type"].startswith("text/plain")
        assert response.text == reason


def _grace_stack(stack_factory: StackFactory) -> RunningStack:
    return start_control_plane(stack_factory, overrides={"nodes.heartbeat_grace_seconds": GRACE_SECONDS})


def test_readyz_follows_registration_ack_inference_and_heartbeat(stack_factory: StackFactory) -> None:
    stack = _grace_stack(stack_factory)
    _assert_not_ready(stack, NO_INFERENCE_PATH)

    node = configured_node(stack, "ready-node")
    _assert_not_ready(stack, NO_INFERENCE_PATH)  # dispatchable, but no inference running

    assert node.report(capability_report("ready-node", inference_running=True)).status_code == 204
    _assert_not_ready(
        stack,
        "PM model qwen3.5:0.8b not yet available on node ready-node (waiting for its inference backend to load it)",
    )

    running = capability_report("ready-node", inference_running=True, available_models=[PM_MODEL])
    assert node.report(running).status_code == 204
    _assert_ready(stack)

    time.sleep(GRACE_SECONDS + 0.5)
    _assert_not_ready(stack, NO_INFERENCE_PATH)

    assert node.heartbeat().status_code == 204
    _assert_ready(stack)


def test_existing_service_counts_as_an_inference_path(control_plane: RunningStack) -> None:
    node = configured_node(control_plane, "host-ollama", existing_service=True)
    assert node.config is not None
    assert "inference_backend" not in node.config
    running = capability_report(
        "host-ollama", existing_service=True, inference_running=True, available_models=[PM_MODEL]
    )
    assert node.report(running).status_code == 204
    _assert_ready(control_plane)


def test_a_new_config_version_needs_a_new_ack_before_the_node_counts_again(control_plane: RunningStack) -> None:
    running: dict[str, Any] = {"inference_running": True, "available_models": [PM_MODEL]}
    node = configured_node(control_plane, "reconfigured", **running)
    _assert_ready(control_plane)
    assert node.report(capability_report("reconfigured", gpu_devices=[CUDA_DEVICE], **running)).status_code == 204
    _assert_ready(control_plane)  # the new content is versioned only when the node fetches it
    node.fetch_config()
    _assert_not_ready(control_plane, NO_INFERENCE_PATH)
    assert node.ack("applied").status_code == 204
    _assert_ready(control_plane)


def test_failed_ack_is_not_an_inference_path(control_plane: RunningStack) -> None:
    node = node_client(control_plane, "failing")
    assert node.register(capability_report("failing", inference_running=True, available_models=[PM_MODEL])).is_success
    node.fetch_config()
    assert node.ack("failed", error={"type": "inference_start", "message": "no GPU driver"}).status_code == 204
    _assert_not_ready(control_plane, NO_INFERENCE_PATH)


def _add_external_key(db: DB, expires_at: datetime | None) -> None:
    db.execute(
        """
        INSERT INTO api_credentials (owner_type, provider, credential_type, credential_name, credential_ciphertext,
                                     expires_at)
        VALUES ('system', 'openai', 'api_key', 'pm', %s, %s)
        """,
        (b"sealed", expires_at),
    )


def test_external_provider_keys_are_no_inference_path(control_plane: RunningStack, db: DB) -> None:
    # CyNode does not call external providers yet: a stored key must not make the system "ready".
    _add_external_key(db, datetime.now(UTC) - timedelta(minutes=1))
    _assert_not_ready(control_plane, NO_INFERENCE_PATH)
    db.execute("UPDATE api_credentials SET expires_at = NULL")
    _assert_not_ready(control_plane, EXTERNAL_KEYS_UNUSED)


def test_execution_mode_force_local_ignores_external_keys(control_plane: RunningStack, db: DB) -> None:
    _add_external_key(db, None)
    db.execute(
        "INSERT INTO system_settings (key, value, value_type) VALUES (%s, '\"force_local\"', 'string')",
        ("agents.project_manager.model.selection.execution_mode",),
    )
    _assert_not_ready(control_plane, EXTERNAL_KEYS_UNUSED)
    db.execute("UPDATE system_settings SET value = '\"warp\"'")
    [response, _] = _readyz(control_plane)
    assert response.status_code == 503
    assert "agents.project_manager.model.selection.execution_mode" in response.text


def test_pinned_pm_model_must_be_listed_by_the_node(stack_factory: StackFactory) -> None:
    stack = start_control_plane(stack_factory, overrides={"nodes.project_manager_model": "llama3.2:1b"})
    node = configured_node(stack, "pinned", inference_running=True, available_models=[PM_MODEL])
    assert node.config is not None
    assert node.config["inference_backend"]["selected_model"] == "llama3.2:1b"
    _assert_not_ready(
        stack, "PM model llama3.2:1b not yet available on node pinned (waiting for its inference backend to load it)"
    )
    assert node.report(capability_report("pinned", inference_running=True, available_models=["llama3.2:1b"])).is_success
    _assert_ready(stack)


def test_unreachable_database_is_named(stack_factory: StackFactory, fresh_dsn: str, postgres_admin_dsn: str) -> None:
    stack = start_control_plane(stack_factory)
    _assert_not_ready(stack, NO_INFERENCE_PATH)
    database = conninfo_to_dict(fresh_dsn)["dbname"]
    with psycopg.connect(postgres_admin_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(str(database))))
    _assert_not_ready(stack, DATABASE_UNREACHABLE)


# --- the dispatchable-node query ---


def _dispatchable(stack: RunningStack) -> list[DispatchableNode]:
    context = stack.stack.context
    assert context is not None

    async def query() -> list[DispatchableNode]:
        async with context.pool.connection() as conn:
            return await dispatchable_nodes(conn, context.secret_box, context.settings.nodes.heartbeat_grace_seconds)

    return cast(list[DispatchableNode], stack.run(query()))


def test_only_active_applied_current_reachable_and_recent_nodes_are_dispatchable(
    control_plane: RunningStack, db: DB
) -> None:
    ready = configured_node(
        control_plane,
        "a-ready",
        worker_api_url="http://10.9.0.1:12090",
        max_concurrency=3,
        inference_running=True,
        available_models=[PM_MODEL],
    )
    unacked = node_client(control_plane, "b-unacked")
    assert unacked.register().is_success
    unacked.fetch_config()
    failed = node_client(control_plane, "c-failed")
    assert failed.register().is_success
    failed.fetch_config()
    assert failed.ack("failed", error={"type": "x", "message": "broken"}).status_code == 204
    outdated = configured_node(control_plane, "d-outdated")
    assert outdated.report(capability_report("d-outdated", gpu_devices=[CUDA_DEVICE])).is_success
    outdated.fetch_config()  # a new config version it has not acked
    configured_node(control_plane, "e-no-url", worker_api_url=None)
    configured_node(control_plane, "f-drained")
    db.execute("UPDATE nodes SET status = 'drained' WHERE node_slug = 'f-drained'")
    configured_node(control_plane, "g-silent")
    db.execute("UPDATE nodes SET last_seen_at = now() - interval '1 hour' WHERE node_slug = 'g-silent'")

    [node] = _dispatchable(control_plane)
    assert node.node_slug == "a-ready"
    assert node.worker_api_target_url == "http://10.9.0.1:12090"
    assert node.sandbox_max_concurrency == 3
    assert node.inference_running
    assert node.available_models == (PM_MODEL,)
    assert node.capability.node.node_slug == "a-ready"
    assert ready.config is not None
    assert node.bearer_token() == ready.config["worker_api"]["orchestrator_bearer_token"]
    row = db.execute("SELECT id FROM nodes WHERE node_slug = 'a-ready'").fetchone()
    assert row is not None
    assert node.node_id == row["id"]

    assert outdated.ack("applied").status_code == 204
    assert [n.node_slug for n in _dispatchable(control_plane)] == ["a-ready", "d-outdated"]


# --- start-up ---


def test_start_refuses_without_a_psk(stack_factory: StackFactory) -> None:
    with pytest.raises(SettingsError, match="CYNODE_NODE_REGISTRATION_PSK"):
        stack_factory("gateway,orchestrator", env={})


@pytest.mark.parametrize("variable", ["CYNODE_NODE_REGISTRATION_PSK", "CYNODE_NODE_REGISTRATION_PSK_FILE"])
def test_start_refuses_an_empty_psk(stack_factory: StackFactory, variable: str) -> None:
    with pytest.raises(SettingsError, match=f"{variable} is set but empty"):
        stack_factory("gateway,orchestrator", env={variable: "  "})


def test_start_refuses_an_empty_psk_file(stack_factory: StackFactory, tmp_path: Path) -> None:
    empty = tmp_path / "psk"
    empty.write_text("\n")
    with pytest.raises(SettingsError, match="is empty"):
        stack_factory("gateway,orchestrator", env={"CYNODE_NODE_REGISTRATION_PSK_FILE": str(empty)})


def test_gateway_alone_needs_no_psk(stack_factory: StackFactory) -> None:
    stack = stack_factory("gateway", env={})
    assert stack.client(Role.GATEWAY).get("/healthz").text == "ok"


def _context(tmp_path: Path, roles: set[Role], env: dict[str, str]) -> OrchestratorContext:
    settings = load_settings(env={}, overrides={"data_dir": str(tmp_path)})
    return OrchestratorContext(
        settings=settings,
        roles=frozenset(roles),
        pool=cast(Any, None),  # resolving the PSK never touches the database
        signer=TokenSigner("unused-signing-secret-of-32-bytes-or-more"),
        secret_box=SecretBox(b"k" * 32),
        env=env,
    )


def test_colocated_node_role_gets_a_generated_psk_that_survives_restarts(tmp_path: Path) -> None:
    roles = {Role.ORCHESTRATOR, Role.GATEWAY, Role.NODE}
    generated = resolve_registration_psk(_context(tmp_path, roles, {}))
    assert len(generated) >= 32
    assert resolve_registration_psk(_context(tmp_path, roles, {})) == generated
    assert (tmp_path / "secrets" / "node_registration_psk").stat().st_mode & 0o077 == 0
    configured = {"CYNODE_NODE_REGISTRATION_PSK": "operator-chosen"}
    assert resolve_registration_psk(_context(tmp_path, roles, configured)) == "operator-chosen"
    with pytest.raises(SettingsError):
        resolve_registration_psk(_context(tmp_path / "other", {Role.ORCHESTRATOR}, {}))
