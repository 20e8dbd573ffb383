"""Config fetch and ack over real HTTP: versions, inference instructions, tokens, secrets."""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.types.json import Jsonb

from cynode.settings import Role
from tests.fixtures.nodes import (
    CUDA_DEVICE,
    NODE_PSK,
    PM_MODEL,
    ROCM_DEVICE,
    NodeClient,
    capability_report,
    configured_node,
    node_client,
    now_rfc3339,
    start_control_plane,
)
from tests.fixtures.stack import RunningStack, StackFactory

DB = psycopg.Connection[dict[str, Any]]
ULID_CHARS = set("0123456789ABCDEFGHJKMNPQRSTVWXYZ")


def _registered(stack: RunningStack, slug: str, **options: Any) -> NodeClient:
    node = node_client(stack, slug)
    assert node.register(capability_report(slug, **options)).status_code in (200, 201)
    return node


def _node_row(db: DB, slug: str) -> dict[str, Any]:
    row = db.execute("SELECT * FROM nodes WHERE node_slug = %s", (slug,)).fetchone()
    assert row is not None
    return row


def _assert_ulid(value: str) -> None:
    assert len(value) == 26
    assert set(value) <= ULID_CHARS


def test_config_payload_carries_identity_endpoints_token_policy_and_constraints(
    stack_factory: StackFactory, db: DB
) -> None:
    stack = start_control_plane(
        stack_factory,
        overrides={
            "control_plane.public_url": "http://orchestrator.lan:12082",
            "nodes.max_job_timeout_seconds": 600,
            "nodes.max_request_bytes": 65536,
            "nodes.sandbox.allowed_images": ["docker.io/library/python:3.12"],
            "nodes.sandbox.default_network_policy": "restricted",
        },
    )
    node = _registered(stack, "cfg-node", worker_api_url="http://10.0.0.2:12090")
    config = node.fetch_config()
    assert config["version"] == 1
    assert config["node_slug"] == "cfg-node"
    _assert_ulid(config["config_version"])
    assert config["orchestrator"] == {
        "base_url": "http://orchestrator.lan:12082",
        "endpoints": {
            "worker_api_target_url": "http://10.0.0.2:12090",
            "node_report_url": "http://orchestrator.lan:12082/v1/nodes/capability",
        },
    }
    assert config["constraints"] == {"max_request_bytes": 65536, "max_job_timeout_seconds": 600}
    assert config["policy"] == {
        "sandbox": {
            "allowed_images": ["docker.io/library/python:3.12"],
            "default_network_policy": "restricted",
            "allow_privileged": False,
            "allow_host_network": False,
        }
    }
    token = config["worker_api"]["orchestrator_bearer_token"]
    assert len(token) >= 40
    row = _node_row(db, "cfg-node")
    assert row["config_version"] == config["config_version"]
    assert row["config_content_hash"].startswith("sha256:")


def test_bearer_token_is_generated_once_and_stored_only_as_ciphertext(control_plane: RunningStack, db: DB) -> None:
    node = _registered(control_plane, "sealed")
    token = node.fetch_config()["worker_api"]["orchestrator_bearer_token"]
    assert node.fetch_config()["worker_api"]["orchestrator_bearer_token"] == token
    row = _node_row(db, "sealed")
    ciphertext = bytes(row["worker_api_bearer_token_ciphertext"])
    assert token.encode() not in ciphertext
    box = control_plane.stack.context.secret_box  # type: ignore[union-attr]
    assert box.open(ciphertext, associated_data=str(row["id"])) == token
    other = _registered(control_plane, "sealed-2")
    assert other.fetch_config()["worker_api"]["orchestrator_bearer_token"] != token


def test_unchanged_content_keeps_config_version_and_a_change_mints_a_later_one(
    control_plane: RunningStack, db: DB
) -> None:
    node = _registered(control_plane, "versioned")
    first = node.fetch_config()["config_version"]
    assert node.fetch_config()["config_version"] == first
    # Reporting state that does not change the config (inference now running) keeps the version.
    assert node.report(capability_report("versioned", inference_running=True)).status_code == 204
    assert node.fetch_config()["config_version"] == first
    # A report that changes the inference decision changes the content.
    assert node.report(capability_report("versioned", gpu_devices=[CUDA_DEVICE])).status_code == 204
    second = node.fetch_config()
    assert second["inference_backend"]["variant"] == "cuda"
    _assert_ulid(second["config_version"])
    assert second["config_version"] > first


def test_orchestrator_policy_change_yields_a_later_ulid(stack_factory: StackFactory, tmp_path: Path) -> None:
    shared = {"data_dir": str(tmp_path / "shared-data")}
    before = start_control_plane(stack_factory, overrides=shared)
    node = _registered(before, "policy-node")
    first = node.fetch_config()
    before.stop()

    after = start_control_plane(stack_factory, overrides={**shared, "nodes.inference_image_cpu": "quay.io/me/ollama:1"})
    node.http = after.client(Role.ORCHESTRATOR)
    second = node.fetch_config()
    assert second["inference_backend"]["image"] == "quay.io/me/ollama:1"
    assert second["config_version"] > first["config_version"]
    assert second["worker_api"] == first["worker_api"]


def test_pm_model_system_setting_reaches_the_node_with_a_new_version(control_plane: RunningStack, db: DB) -> None:
    node = _registered(control_plane, "pm-node")
    first = node.fetch_config()
    assert first["inference_backend"]["selected_model"] == PM_MODEL
    db.execute(
        "INSERT INTO system_settings (key, value, value_type) VALUES (%s, %s, 'string')",
        ("agents.project_manager.model.local_default_ollama_model", Jsonb("llama3.2:3b")),
    )
    second = node.fetch_config()
    assert second["inference_backend"]["selected_model"] == "llama3.2:3b"
    assert second["config_version"] > first["config_version"]


def test_concurrent_first_fetches_agree_on_one_version_and_one_token(control_plane: RunningStack, db: DB) -> None:
    node = _registered(control_plane, "racy")
    base_url = control_plane.url(Role.ORCHESTRATOR)

    def fetch(_: int) -> dict[str, Any]:
        response = httpx.get(f"{base_url}/v1/nodes/config", headers=node.auth, timeout=30)
        assert response.status_code == 200, response.text
        payload: dict[str, Any] = response.json()
        return payload

    with ThreadPoolExecutor(max_workers=8) as pool:
        configs = list(pool.map(fetch, range(16)))
    assert len({config["config_version"] for config in configs}) == 1
    assert len({config["worker_api"]["orchestrator_bearer_token"] for config in configs}) == 1
    assert _node_row(db, "racy")["config_version"] == configs[0]["config_version"]


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, {"enabled": True, "variant": "cpu", "image": "registry.test/cpu", "port": 11434}),
        ({"gpu_devices": [CUDA_DEVICE]}, {"enabled": True, "variant": "cuda", "image": "registry.test/cuda"}),
        ({"gpu_devices": [CUDA_DEVICE, ROCM_DEVICE]}, {"variant": "rocm", "image": "registry.test/rocm"}),
        ({"existing_service": True, "gpu_devices": [CUDA_DEVICE]}, None),
        ({"labels": ["sandbox_only"]}, None),
        ({"inference_mode": "disabled"}, None),
        ({"inference_supported": False}, None),
    ],
    ids=["cpu", "cuda", "rocm-over-cuda", "existing-service", "sandbox-only", "mode-disabled", "unsupported"],
)
def test_inference_backend_instruction_follows_the_decision_table(
    stack_factory: StackFactory, options: dict[str, Any], expected: dict[str, Any] | None
) -> None:
    images = {f"nodes.inference_image_{v}": f"registry.test/{v}" for v in ("cpu", "cuda", "rocm")}
    stack = start_control_plane(stack_factory, overrides=images)
    config = _registered(stack, "decided", **options).fetch_config()
    if expected is None:
        assert "inference_backend" not in config
    else:
        assert expected.items() <= config["inference_backend"].items()


# --- config ack ---


def test_ack_records_status_version_time_and_a_success_clears_the_error(control_plane: RunningStack, db: DB) -> None:
    node = _registered(control_plane, "acker")
    version = node.fetch_config()["config_version"]
    failed = node.ack("failed", error={"type": "inference_start", "message": "ollama image pull failed"})
    assert failed.status_code == 204
    row = _node_row(db, "acker")
    assert (row["config_ack_status"], row["config_ack_version"]) == ("failed", version)
    assert row["config_ack_error"] == "ollama image pull failed"
    assert row["config_ack_at"] is not None
    assert node.ack("applied").status_code == 204
    row = _node_row(db, "acker")
    assert (row["config_ack_status"], row["config_ack_version"], row["config_ack_error"]) == ("applied", version, None)


def _ack_body(config_version: str, changes: dict[str, Any]) -> dict[str, Any]:
    body = {
        "version": 1,
        "node_slug": "acker",
        "config_version": config_version,
        "ack_at": now_rfc3339(),
        "status": "applied",
    }
    body.update(changes)
    return {key: value for key, value in body.items() if value is not ...}


BAD_ACKS: dict[str, tuple[Any, int, str]] = {
    "wrong node_slug": ({"node_slug": "wrong-slug"}, 400, "node_slug does not match authenticated node"),
    "version 2": ({"version": 2}, 400, "unsupported node_config_ack version 2"),
    "unknown status": ({"status": "rolled_back"}, 400, "status"),
    "missing status": ({"status": ...}, 400, "status"),
    "config_version not a ULID": ({"config_version": "1"}, 400, "config_version"),
    "ack_at not a time": ({"ack_at": "yesterday"}, 400, "ack_at"),
    "never issued version": ({"config_version": "7ZZZZZZZZZZZZZZZZZZZZZZZZZ"}, 409, "not acknowledgeable"),
}


@pytest.mark.parametrize(("changes", "status", "detail"), BAD_ACKS.values(), ids=BAD_ACKS.keys())
def test_bad_acks_are_rejected_and_nothing_is_stored(
    control_plane: RunningStack, db: DB, changes: dict[str, Any], status: int, detail: str
) -> None:
    node = _registered(control_plane, "acker")
    version = node.fetch_config()["config_version"]
    http = control_plane.client(Role.ORCHESTRATOR)
    response = http.post("/v1/nodes/config", json=_ack_body(version, changes), headers=node.auth)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert detail in response.json()["detail"]
    row = _node_row(db, "acker")
    assert (row["config_ack_status"], row["config_ack_version"], row["config_ack_at"]) == (None, None, None)


def test_malformed_ack_is_400(control_plane: RunningStack) -> None:
    node = _registered(control_plane, "acker")
    node.fetch_config()
    http = control_plane.client(Role.ORCHESTRATOR)
    response = http.post(
        "/v1/nodes/config", content=b"{not json", headers={**node.auth, "Content-Type": "application/json"}
    )
    assert response.status_code == 400


def test_ack_that_is_not_declared_json_is_415(control_plane: RunningStack, db: DB) -> None:
    node = _registered(control_plane, "acker")
    version = node.fetch_config()["config_version"]
    http = control_plane.client(Role.ORCHESTRATOR)
    body = f'{{"version": 1, "node_slug": "acker", "config_version": "{version}", "status": "applied"}}'
    response = http.post("/v1/nodes/config", content=body, headers={**node.auth, "Content-Type": "text/plain"})
    assert response.status_code == 415
    assert response.headers["content-type"].startswith("application/problem+json")
    row = db.execute("SELECT config_ack_status FROM nodes WHERE node_slug = 'acker'").fetchone()
    assert row is not None
    assert row["config_ack_status"] is None


def test_an_ack_older_than_the_last_acked_version_is_refused(control_plane: RunningStack, db: DB) -> None:
    node = _registered(control_plane, "acker")
    old = node.fetch_config()["config_version"]
    assert node.report(capability_report("acker", gpu_devices=[CUDA_DEVICE])).status_code == 204
    new = node.fetch_config()["config_version"]
    assert new > old
    assert node.ack("applied", config_version=new).status_code == 204
    late = node.ack("failed", config_version=old, error={"type": "x", "message": "late"})
    assert late.status_code == 409
    row = _node_row(db, "acker")
    assert (row["config_ack_status"], row["config_ack_version"]) == ("applied", new)


# --- secrets ---


def test_secrets_stay_out_of_logs_and_other_responses(
    control_plane: RunningStack, db: DB, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    node = configured_node(control_plane, "secretive")
    node.report(capability_report("secretive", inference_running=True, available_models=[PM_MODEL]))
    node.heartbeat()
    node_client(control_plane, "secretive").register(psk="wrong")
    jwt = node.jwt
    assert node.config is not None
    token = node.config["worker_api"]["orchestrator_bearer_token"]

    register_response, config_response, *others = node.responses
    assert jwt in register_response.text
    assert token in config_response.text
    assert NODE_PSK not in register_response.text
    assert NODE_PSK not in config_response.text
    assert jwt not in config_response.text
    assert token not in register_response.text
    for response in others:
        for secret in (NODE_PSK, jwt, token):
            assert secret not in response.text

    assert caplog.records, "the control plane logs its node events"
    events = {record.getMessage() for record in caplog.records}
    assert {"node_registered", "worker_api_token_issued", "node_config_acknowledged"} <= events
    for record in caplog.records:
        line = record.getMessage() + json.dumps(vars(record), default=str)
        for secret in (NODE_PSK, jwt, token):
            assert secret not in line, f"secret leaked in log event {record.getMessage()}"

    row = _node_row(db, "secretive")
    stored = json.dumps(row, default=str)
    assert token not in stored
    assert jwt not in stored
