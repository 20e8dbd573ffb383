"""Every role in one process: the node manager reaches the control plane in-process."""

from __future__ import annotations

import httpx
import pytest

from cynode.settings import Role
from tests.fixtures.nodemanager import NodeDeployment, node_yaml, run_echo, wait_until, write_yaml


def test_all_in_one_node_registers_in_process_and_runs_a_job(
    node_deployment: NodeDeployment, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="httpx")
    slug = node_deployment.new_slug()
    # An unreachable orchestrator URL and no PSK configured: co-located, neither is needed.
    document = node_yaml(slug, "http://127.0.0.1:9", node_deployment.podman_url, psk_env=None)
    path = write_yaml(node_deployment.tmp_path / "node.yaml", document)
    node_deployment.orchestrator = node_deployment.stack_factory("all", overrides={"node_config": str(path)})

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
