"""Every role in one process: the node manager reaches the control plane in-process."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from cynode.settings import Role
from tests.fixtures.nodemanager import NodeDeployment, node_yaml, run_echo, wait_until, write_yaml


def all_in_one(node_deployment: NodeDeployment, env: dict[str, str] | None = None, **node_options: Any) -> str:
    """Every role in one stack; the node YAML names an unreachable orchestrator URL, which a
    co-located node never uses."""
    slug = node_deployment.new_slug()
    document = node_yaml(slug, "http://127.0.0.1:9", node_deployment.podman_url, **node_options)
    path = write_yaml(node_deployment.tmp_path / "node.yaml", document)
    node_deployment.orchestrator = node_deployment.stack_factory(
        "all", env=env, overrides={"node_config": str(path), "nodes.heartbeat_grace_seconds": 3}
    )
    return slug


def test_all_in_one_node_registers_in_process_and_runs_a_job(
    node_deployment: NodeDeployment, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="httpx")
    # No PSK configured on either side: the co-located roles share a generated one.
    slug = all_in_one(node_deployment, psk_env=None)

    target = node_deployment.wait_dispatchable(slug)

    stack = node_deployment.control_plane
    assert target.worker_api_target_url == stack.url(Role.NODE)
    wait_until(lambda: httpx.get(stack.url(Role.NODE) + "/readyz").status_code == 200, 10, "worker readiness")
    ran = run_echo(target, "all in one")
    assert ran.status_code == 200, ran.text
    assert ran.json()["stdout"].strip() == "all in one"
    control_plane_calls = [record.getMessage() for record in caplog.records if "/v1/nodes/" in record.getMessage()]
    assert control_plane_calls == [], "the co-located node should not use HTTP"
    readiness = httpx.get(stack.url(Role.ORCHESTRATOR) + "/readyz")
    assert readiness.status_code == 503
    assert "no inference path" in readiness.text


def test_in_process_401_leads_to_re_registration(node_deployment: NodeDeployment) -> None:
    slug = all_in_one(node_deployment, psk_env=None)
    before = node_deployment.wait_dispatchable(slug)

    node_deployment.execute("DELETE FROM nodes WHERE node_slug = %s", slug)

    after = node_deployment.wait_registered_again(slug, before)
    ran = run_echo(after, "again")
    assert ran.status_code == 200, ran.text


def test_in_process_wrong_psk_is_fatal_and_names_its_source(node_deployment: NodeDeployment) -> None:
    env = {"CYNODE_NODE_REGISTRATION_PSK": "the-real-psk-93a1", "NODE_SIDE_PSK": "a-wrong-psk-7c2e"}
    slug = all_in_one(node_deployment, env=env, psk_env="NODE_SIDE_PSK")
    stack = node_deployment.control_plane.stack

    wait_until(stack.failed.is_set, 30, "the co-located node manager to give up")

    message = str(stack.failure)
    assert "NODE_SIDE_PSK" in message
    assert "a-wrong-psk-7c2e" not in message
    assert "the-real-psk-93a1" not in message
    assert node_deployment.node_row(slug) is None
