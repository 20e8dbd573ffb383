"""A node in its own process (role ``node``) registering with an orchestrator stack over HTTP."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.fixtures.nodemanager import NodeDeployment, run_echo, wait_until, worker_url


def test_split_node_registers_becomes_dispatchable_and_runs_a_job(node_deployment: NodeDeployment) -> None:
    node_deployment.start_orchestrator()
    node = node_deployment.start_node()
    slug = node_deployment.slugs[0]

    target = node_deployment.wait_dispatchable(slug)

    assert target.worker_api_target_url == worker_url(node)
    assert target.capability.node.labels == ["trusted"]
    assert httpx.get(f"{worker_url(node)}/readyz").status_code == 200
    ran = run_echo(target, "hello from a split node")
    assert ran.status_code == 200, ran.text
    assert ran.json()["stdout"].strip() == "hello from a split node"
    refused = httpx.post(
        f"{worker_url(node)}/v1/worker/jobs:run", json={}, headers={"Authorization": "Bearer not-the-token"}
    )
    assert refused.status_code == 401
    row = node_deployment.node_row(slug)
    assert row is not None
    assert row["config_ack_status"] == "applied"
    assert row["config_ack_version"] == row["config_version"]


GRACE_SECONDS = 3


def test_heartbeats_keep_the_node_dispatchable_and_stopping_it_lets_it_lapse(node_deployment: NodeDeployment) -> None:
    node_deployment.orchestrator_overrides["nodes.heartbeat_grace_seconds"] = GRACE_SECONDS
    node_deployment.start_orchestrator()
    node = node_deployment.start_node()
    slug = node_deployment.slugs[0]
    node_deployment.wait_dispatchable(slug)

    time.sleep(GRACE_SECONDS * 2.5)
    assert slug in node_deployment.dispatchable(), "heartbeats did not keep the node within the grace period"

    node.stop()
    wait_until(lambda: slug not in node_deployment.dispatchable(), GRACE_SECONDS + 10, "the stopped node to lapse")


def test_deleted_node_row_leads_to_re_registration_and_the_node_keeps_working(
    node_deployment: NodeDeployment,
) -> None:
    node_deployment.orchestrator_overrides["nodes.heartbeat_grace_seconds"] = GRACE_SECONDS
    node_deployment.start_orchestrator()
    node_deployment.start_node()
    slug = node_deployment.slugs[0]
    before = node_deployment.wait_dispatchable(slug)

    node_deployment.execute("DELETE FROM nodes WHERE node_slug = %s", slug)

    after = node_deployment.wait_registered_again(slug, before)
    assert after.bearer_token() != before.bearer_token()
    ran = run_echo(after, "still here")
    assert ran.status_code == 200, ran.text
    assert ran.json()["stdout"].strip() == "still here"


def test_short_lived_jwt_is_renewed_and_the_node_stays_dispatchable(
    node_deployment: NodeDeployment, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="cynode.nodemanager.runner")
    node_deployment.orchestrator_overrides["nodes.heartbeat_grace_seconds"] = GRACE_SECONDS
    node_deployment.start_orchestrator(**{"nodes.node_jwt_ttl_seconds": 2})
    node_deployment.start_node()
    slug = node_deployment.slugs[0]
    first = node_deployment.wait_dispatchable(slug)

    time.sleep(7)  # several JWT lifetimes

    # Each renewal issues a new config (a new Worker API token) and the node is out of dispatch from
    # then until it acks it, a few milliseconds every second here: a lapse is a node that stays out.
    current = node_deployment.wait_dispatchable(slug, timeout=2)
    assert current.node_id == first.node_id
    reasons = [getattr(record, "reason", None) for record in caplog.records if record.msg == "node_registered"]
    assert reasons[0] == "startup"
    assert len(reasons) >= 3, reasons
    assert set(reasons[1:]) <= {"token renewal", "token refused"}
    ran = run_echo(current, "renewed")
    if ran.status_code == 401:
        # Each registration gives the node a new Worker API token, and with a 2 s JWT one may fall
        # between reading the token and calling: only a token that really changed excuses the 401.
        rotated = node_deployment.dispatchable().get(slug)
        assert rotated is not None, ran.text
        assert rotated.bearer_token() != current.bearer_token(), ran.text
        ran = run_echo(rotated, "renewed")
    assert ran.status_code == 200, ran.text


def test_wrong_psk_stops_the_node_naming_the_psk_source_but_not_the_value(node_deployment: NodeDeployment) -> None:
    node_deployment.start_orchestrator()
    wrong = "definitely-not-the-psk-0d5c"
    node = node_deployment.start_node(env={"CYNODE_NODE_REGISTRATION_PSK": wrong})
    slug = node_deployment.slugs[0]

    wait_until(node.stack.failed.is_set, 30, "the node manager to give up")

    message = str(node.stack.failure)
    assert "registration PSK" in message
    assert "CYNODE_NODE_REGISTRATION_PSK" in message
    assert wrong not in message
    assert node_deployment.node_row(slug) is None
    assert httpx.get(f"{worker_url(node)}/readyz").status_code == 503


def test_older_config_version_is_refused(
    node_deployment: NodeDeployment, tmp_path_factory: pytest.TempPathFactory
) -> None:
    node_deployment.start_orchestrator()
    state_dir = tmp_path_factory.mktemp("node-state")
    applied = "7ZZZZZZZZZZZZZZZZZZZZZZZZZ"  # the highest ULID: every version the orchestrator mints sorts before it
    (state_dir / "applied_config_version").write_text(applied + "\n")
    node = node_deployment.start_node(storage={"state_dir": str(state_dir)})
    slug = node_deployment.slugs[0]

    wait_until(node.stack.failed.is_set, 30, "the node manager to refuse the config")

    assert "older than the already applied" in str(node.stack.failure)
    row = node_deployment.node_row(slug)
    assert row is not None
    assert row["config_ack_status"] == "failed"
    assert applied in row["config_ack_error"]
    assert (state_dir / "applied_config_version").read_text().strip() == applied
    assert httpx.get(f"{worker_url(node)}/readyz").status_code == 503
    assert slug not in node_deployment.dispatchable()


def test_node_registers_once_the_orchestrator_comes_up(node_deployment: NodeDeployment) -> None:
    node = node_deployment.start_node()
    slug = node_deployment.slugs[0]
    time.sleep(2)  # the node retries with backoff meanwhile
    assert not node.stack.failed.is_set()

    node_deployment.start_orchestrator()

    node_deployment.wait_dispatchable(slug)
