"""Acceptance: the node manager's startup against a real orchestrator (features/worker_node)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import httpx
import pytest
from pytest_bdd import given, parsers, scenarios, then, when

from cynode.contracts.nodes import InferenceInfo
from cynode.inference.node import NodeInference
from cynode.nodemanager import runner
from cynode.settings import Role
from tests.fixtures.nodemanager import NodeDeployment, wait_until, worker_url
from tests.fixtures.stack import RunningStack

scenarios("worker_node/node_manager_config_startup.feature")

CONFIG_PATH = "/v1/nodes/config"
ABSENT_INFERENCE_IMAGE = "localhost/cynode-absent-inference-image:none"


class InferenceCapableNode(NodeInference):
    """Reports inference support so the orchestrator instructs a start; starting is the real code."""

    async def report(self) -> InferenceInfo:
        return InferenceInfo(supported=True, mode="allow", existing_service=False, running=False)


@dataclass
class Startup:
    deployment: NodeDeployment
    slug: str = ""
    node: RunningStack | None = None
    inference_mode: str = "disabled"
    readiness_seen: list[int] = field(default_factory=list)

    @property
    def public_url(self) -> str:
        return f"http://localhost:{self.deployment.control_plane_port}"

    @property
    def running_node(self) -> RunningStack:
        assert self.node is not None, "the node manager has not run"
        return self.node


@pytest.fixture
def startup(node_deployment: NodeDeployment, caplog: pytest.LogCaptureFixture) -> Startup:
    caplog.set_level("INFO", logger="httpx")
    return Startup(node_deployment)


@given("a running orchestrator control plane that advertises its own public URL")
def orchestrator(startup: Startup) -> None:
    # Nodes register at 127.0.0.1 but the bootstrap names "localhost": which one the node calls
    # afterwards shows whether it follows the bootstrap URLs.
    startup.deployment.start_orchestrator(
        **{"control_plane.public_url": startup.public_url, "nodes.inference_image_cpu": ABSENT_INFERENCE_IMAGE}
    )


@given("a worker node whose startup YAML registers at the orchestrator's loopback address")
def node_yaml(startup: Startup) -> None:
    startup.slug = startup.deployment.new_slug()
    assert startup.deployment.orchestrator_url.startswith("http://127.0.0.1:")


@given("the node reports inference support but the backend the orchestrator picks cannot start")
def inference_cannot_start(startup: Startup, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "NodeInference", InferenceCapableNode)
    startup.inference_mode = "allow"


@when("the node manager runs the startup sequence against the orchestrator")
def run_startup(startup: Startup) -> None:
    startup.node = startup.deployment.start_node(startup.slug, inference={"mode": startup.inference_mode})

    def settled() -> bool:
        node = startup.running_node
        startup.readiness_seen.append(httpx.get(worker_url(node) + "/readyz").status_code)
        return node.stack.failed.is_set() or startup.slug in startup.deployment.dispatchable()

    wait_until(settled, 60, "the node manager to finish starting (or fail)")


def _requests(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == "httpx"]


@then("the node manager requested config using the bootstrap node_config_url")
def requested_bootstrap_url(startup: Startup, caplog: pytest.LogCaptureFixture) -> None:
    requests = _requests(caplog)
    registered = f"POST {startup.deployment.orchestrator_url}/v1/nodes/register"
    fetched = f"GET {startup.public_url}{CONFIG_PATH}"
    assert any(registered in line for line in requests), requests
    assert any(fetched in line for line in requests), requests
    assert not any(f"GET {startup.deployment.orchestrator_url}{CONFIG_PATH}" in line for line in requests)


@then("the received config contains worker_api orchestrator_bearer_token")
def config_had_token(startup: Startup) -> None:
    target = startup.deployment.wait_dispatchable(startup.slug)
    url = worker_url(startup.running_node) + "/v1/worker/jobs:run"
    # The node's Worker API accepts exactly the token the orchestrator put in the node's config.
    wrong = httpx.post(url, json={}, headers={"Authorization": "Bearer some-other-token"})
    right = httpx.post(url, json={}, headers={"Authorization": f"Bearer {target.bearer_token()}"})
    assert wrong.status_code == 401
    assert right.status_code == 400, right.text  # authenticated, then the empty body is refused


@then(parsers.parse('the node manager sent a config acknowledgement with status "{status}"'))
def acknowledged(startup: Startup, status: str) -> None:
    row = wait_until(lambda: startup.deployment.node_row(startup.slug), 10, "the node row")
    assert row["config_ack_status"] == status
    assert row["config_ack_version"] == row["config_version"]
    assert row["config_ack_error"] is None


@then("the node is dispatchable and its Worker API is ready")
def dispatchable_and_ready(startup: Startup) -> None:
    startup.deployment.wait_dispatchable(startup.slug)
    assert httpx.get(worker_url(startup.running_node) + "/readyz").status_code == 200


@then("the node manager exits with an error")
def exits_with_error(startup: Startup) -> None:
    node = startup.running_node
    assert node.stack.failed.is_set()
    assert isinstance(node.stack.failure, runner.NodeStartupError)


@then("the error indicates inference startup failed")
def error_is_inference(startup: Startup) -> None:
    assert "inference_start_failed" in str(startup.running_node.stack.failure)


@then(parsers.parse('the node manager sent a config acknowledgement with status "{status}" and the reason'))
def acknowledged_failure(startup: Startup, status: str) -> None:
    row = startup.deployment.node_row(startup.slug)
    assert row is not None
    assert row["config_ack_status"] == status
    assert row["config_ack_version"] == row["config_version"]
    assert row["config_ack_error"], "the failed ack carries no reason"
    assert row["config_ack_error"] in str(startup.running_node.stack.failure)


@then("the node never reports ready")
def never_ready(startup: Startup) -> None:
    node = startup.running_node
    time.sleep(1)
    startup.readiness_seen.append(httpx.get(worker_url(node) + "/readyz").status_code)
    assert set(startup.readiness_seen) == {503}, startup.readiness_seen
    assert startup.slug not in startup.deployment.dispatchable()
    assert Role.NODE in node.stack.apps
