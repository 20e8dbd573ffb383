"""The Ollama backend's success path: the orchestrator's image pulled from the local registry,
started, probed, and a prompt task answered through it, with every role a ``cynode serve`` process."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from podman import PodmanClient
from pytest_bdd import given, parsers, scenarios, then, when

from tests.bdd import test_split_deployment as split
from tests.fixtures.deploy import LocalRegistry, OllamaSlot, SplitDeployment
from tests.fixtures.inference import MODEL_ALIAS
from tests.fixtures.nodemanager import wait_until, write_yaml

scenarios("e2e/ollama_backend.feature")

# The split deployment's steps for the gateway, the login and prompt tasks serve this feature too.
given("a gateway process serving HTTPS")(split.gateway_process)
given("I am logged in to the gateway as the admin")(split.logged_in)
when(parsers.parse('I create a task with the prompt "{prompt}"'))(split.create_prompt_task)
ANSWERED_ON_NODE = 'the task completes on node "{slug}" with the model\'s non-empty answer'
then(parsers.parse(ANSWERED_ON_NODE))(split.completes_with_answer)


@pytest.fixture
def world() -> dict[str, Any]:
    return {}


@given("the Ollama-compatible image is in the local registry and not on this host")
def image_in_registry(split_deployment: SplitDeployment, ollama_in_registry: str, world: dict[str, Any]) -> None:
    with PodmanClient(base_url=split_deployment.podman_url) as client:
        assert not client.images.exists(ollama_in_registry)
    world["image"] = ollama_in_registry


@given("an orchestrator process whose nodes run that image for inference, pulled from that registry")
def orchestrator_choosing_the_image(
    split_deployment: SplitDeployment, local_registry: LocalRegistry, world: dict[str, Any]
) -> None:
    policy = {
        "inference_image_cpu": world["image"],
        "project_manager_model": MODEL_ALIAS,
        "sandbox": {"registries": [local_registry.url]},
    }
    config = write_yaml(split_deployment.directory / "orchestrator.yaml", {"nodes": policy})
    split_deployment.start_orchestrator(extra_args=["--config", str(config)])


@when(parsers.parse('a node process "{slug}" with no inference service of its own starts'))
def ollama_node_starts(
    split_deployment: SplitDeployment, db: Any, ollama_slot: OllamaSlot, world: dict[str, Any], slug: str
) -> None:
    inference = {"mode": "allow", "backend": "ollama", "ollama_container_name": ollama_slot.container,
                 "ollama_port": ollama_slot.port, "start_timeout_seconds": 120}  # fmt: skip
    world["slug"] = slug
    world["node"] = split_deployment.start_node(slug, split_deployment.orchestrators[0], inference=inference)
    split._wait_dispatchable(db, slug)


@then("the node pulled the image and runs it as its inference container")
def runs_pulled_image(split_deployment: SplitDeployment, ollama_slot: OllamaSlot, world: dict[str, Any]) -> None:
    with PodmanClient(base_url=split_deployment.podman_url) as client:
        assert client.images.exists(world["image"]), "the node did not pull the orchestrator's image"
        container = client.containers.get(ollama_slot.container)
        assert container.status == "running"
        assert container.attrs["ImageName"] == world["image"]


@then("the container serves the image's model on the node's Ollama port")
def model_served(ollama_slot: OllamaSlot) -> None:
    # Published on loopback only, where the node's sandbox proxy reaches it.
    models = httpx.get(f"http://127.0.0.1:{ollama_slot.port}/api/tags", timeout=10).json()["models"]
    assert [model["name"] for model in models] == [MODEL_ALIAS]


@then("the orchestrator has the node's report that its own backend runs that model")
def reported_running(db: Any, world: dict[str, Any]) -> None:
    def latest_inference() -> dict[str, Any] | None:
        row = db.execute(
            "SELECT c.capability_snapshot FROM node_capabilities c JOIN nodes n ON n.id = c.node_id "
            "WHERE n.node_slug = %s ORDER BY c.created_at DESC LIMIT 1",
            (world["slug"],),
        ).fetchone()
        inference: dict[str, Any] = row["capability_snapshot"]["inference"] if row else {}
        return inference if inference.get("running") else None

    # Sent right after the config started the container, not at the next periodic check.
    inference = wait_until(latest_inference, 30, "the node's report that its inference runs")
    assert inference["existing_service"] is False
    assert inference["available_models"] == [MODEL_ALIAS]


@then("the inference container answered the task's chat completion")
def container_answered(split_deployment: SplitDeployment, ollama_slot: OllamaSlot) -> None:
    with PodmanClient(base_url=split_deployment.podman_url) as client:
        logs = b"".join(client.containers.get(ollama_slot.container).logs()).decode(errors="replace")
    assert "POST /v1/chat/completions" in logs, logs[-2000:]
