"""A chat across a split deployment: gateway, orchestrator and node as separate real ``cynode
serve`` processes (the serve harness) talking over HTTP, the node answering from its embedded model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from pytest_bdd import given, parsers, scenarios, then, when

from cynode.sandbox import PodmanService
from tests.fixtures.chat import chat_node_yaml, wait_for_model
from tests.fixtures.deploy import SplitProcesses
from tests.fixtures.identity import ADMIN_PASSWORD, Session, login

scenarios("e2e/chat_split_deployment.feature")


@pytest.fixture
def outcome() -> dict[str, Any]:
    return {}


@given("a node process registered with that orchestrator, serving its embedded model")
def node_process(split_processes: SplitProcesses, tmp_path: Path, podman_service: PodmanService) -> None:
    # No listen_port in the YAML: the harness's --set worker_api.port decides it.
    node_config = chat_node_yaml(
        tmp_path / "node.yaml",
        "split-node",
        split_processes.control_plane_url,
        podman_service.url,
        worker_api={"listen_port": None},
    )
    split_processes.start("node", {"CYNODE_NODE_CONFIG": str(node_config)})


@given(parsers.parse('I am logged in to the gateway process as "{handle}"'), target_fixture="session")
def logged_in(split_gateway: httpx.Client, handle: str) -> Session:
    session = login(split_gateway, handle, ADMIN_PASSWORD)
    wait_for_model(split_gateway, session)
    return session


@when(parsers.parse('I send a chat message "{message}" through the gateway process'))
def send_through_gateway(split_gateway: httpx.Client, session: Session, outcome: dict[str, Any], message: str) -> None:
    body = {"messages": [{"role": "user", "content": message}], "max_tokens": 12}
    outcome["response"] = split_gateway.post("/v1/chat/completions", json=body, headers=session.headers)


@then("the orchestrator process routed the chat to the node over its Worker API")
def routed_over_worker_api(split_processes: SplitProcesses) -> None:
    _, stderr = split_processes["orchestrator"].terminate()
    events = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    routed = [event for event in events if event.get("msg") == "chat_routed" or event.get("event") == "chat_routed"]
    assert routed, stderr[-2000:]
    assert routed[-1]["path"] == "worker_api"
    assert routed[-1]["node_slug"] == "split-node"
