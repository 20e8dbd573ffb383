"""A chat across a split deployment: gateway, orchestrator and node as separate real ``cynode
serve`` processes (the serve harness) talking over HTTP, the node answering from its embedded model."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pytest_bdd import given, parsers, scenarios, then, when

from cynode.sandbox import PodmanService
from tests.fixtures.chat import CHAT_ENV, chat_node_yaml, wait_for_model
from tests.fixtures.identity import ADMIN_PASSWORD, Session, login
from tests.fixtures.serve import Serve

scenarios("e2e/chat_split_deployment.feature")

SPLIT_ENV = {**CHAT_ENV, "CYNODE_JWT_SECRET": "split-deployment-test-jwt-secret-0123456789"}


@pytest.fixture
def processes() -> Iterator[dict[str, Serve]]:
    started: dict[str, Serve] = {}
    yield started
    for serve in reversed(started.values()):
        if serve.process.poll() is None:
            serve.terminate()


@pytest.fixture
def outcome() -> dict[str, Any]:
    return {}


def _start(processes: dict[str, Serve], directory: Path, role: str, env: dict[str, str]) -> Serve:
    directory.mkdir()
    serve = Serve(directory, roles=role, env={**SPLIT_ENV, **env})
    processes[role] = serve
    serve.wait_healthy()
    return serve


def _control_plane_url(processes: dict[str, Serve]) -> str:
    orchestrator = processes["orchestrator"]
    return orchestrator.url(orchestrator.control_plane, "")


@given("an orchestrator process on a shared database")
def orchestrator_process(processes: dict[str, Serve], tmp_path: Path, fresh_dsn: str) -> None:
    _start(processes, tmp_path / "orchestrator", "orchestrator", {"CYNODE_DATABASE_URL": fresh_dsn})


@given("a gateway process that reaches that orchestrator over HTTP")
def gateway_process(processes: dict[str, Serve], tmp_path: Path, fresh_dsn: str) -> None:
    env = {"CYNODE_DATABASE_URL": fresh_dsn, "CYNODE_CONTROL_PLANE_PUBLIC_URL": _control_plane_url(processes)}
    _start(processes, tmp_path / "gateway", "gateway", env)


@given("a node process registered with that orchestrator, serving its embedded model")
def node_process(processes: dict[str, Serve], tmp_path: Path, podman_service: PodmanService) -> None:
    # No listen_port in the YAML: the harness's --set worker_api.port decides it.
    node_config = chat_node_yaml(
        tmp_path / "node.yaml",
        "split-node",
        _control_plane_url(processes),
        podman_service.url,
        worker_api={"listen_port": None},
    )
    _start(processes, tmp_path / "node", "node", {"CYNODE_NODE_CONFIG": str(node_config)})


@pytest.fixture
def gateway_client(processes: dict[str, Serve]) -> Iterator[httpx.Client]:
    gateway = processes["gateway"]
    with httpx.Client(base_url=gateway.url(gateway.gateway, ""), timeout=120) as client:
        yield client


@given(parsers.parse('I am logged in to the gateway process as "{handle}"'), target_fixture="session")
def logged_in(gateway_client: httpx.Client, handle: str) -> Session:
    session = login(gateway_client, handle, ADMIN_PASSWORD)
    wait_for_model(gateway_client, session)
    return session


@when(parsers.parse('I send a chat message "{message}" through the gateway process'))
def send_through_gateway(gateway_client: httpx.Client, session: Session, outcome: dict[str, Any], message: str) -> None:
    body = {"messages": [{"role": "user", "content": message}], "max_tokens": 12}
    outcome["response"] = gateway_client.post("/v1/chat/completions", json=body, headers=session.headers)


@then("the orchestrator process routed the chat to the node over its Worker API")
def routed_over_worker_api(processes: dict[str, Serve]) -> None:
    _, stderr = processes["orchestrator"].terminate()
    events = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    routed = [event for event in events if event.get("msg") == "chat_routed" or event.get("event") == "chat_routed"]
    assert routed, stderr[-2000:]
    assert routed[-1]["path"] == "worker_api"
    assert routed[-1]["node_slug"] == "split-node"
