"""Live task output across a split deployment: gateway, orchestrator and node as separate real
``cynode serve`` processes (the serve harness) talking over HTTP. The gateway holds no node token:
it gets the output through the control plane's relay, which asks the node's Worker API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pytest_bdd import given, parsers, scenarios, then, when

from cynode.sandbox import PodmanService
from tests.fixtures.identity import ADMIN_PASSWORD, Session, login
from tests.fixtures.nodemanager import node_yaml, write_yaml
from tests.fixtures.serve import Serve
from tests.fixtures.tasks import TASK_ENV

scenarios("tasks/live_output.feature")

SPLIT_ENV = {**TASK_ENV, "CYNODE_JWT_SECRET": "live-output-split-test-jwt-secret-0123456789"}


@pytest.fixture
def processes() -> Iterator[dict[str, Serve]]:
    started: dict[str, Serve] = {}
    yield started
    for serve in reversed(started.values()):
        if serve.process.poll() is None:
            serve.terminate()


@pytest.fixture
def followed() -> list[dict[str, Any]]:
    return []


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
    # Its own data directory, so its own at-rest key: node tokens would not open here.
    _start(processes, tmp_path / "gateway", "gateway", {**env, "CYNODE_SECRET_KEY": ""})


@given("a node process registered with that orchestrator that runs sandbox jobs")
def node_process(processes: dict[str, Serve], tmp_path: Path, podman_service: PodmanService) -> None:
    document = node_yaml("live-split-node", _control_plane_url(processes), podman_service.url)
    document["worker_api"] = {}  # listen where the serve harness says
    node_config = write_yaml(tmp_path / "node.yaml", document)
    _start(processes, tmp_path / "node", "node", {"CYNODE_NODE_CONFIG": str(node_config)})


@pytest.fixture
def gateway_client(processes: dict[str, Serve]) -> Iterator[httpx.Client]:
    gateway = processes["gateway"]
    with httpx.Client(base_url=gateway.url(gateway.gateway, ""), timeout=120) as client:
        yield client


@given(parsers.parse('I am logged in to the gateway process as "{handle}"'), target_fixture="session")
def logged_in(gateway_client: httpx.Client, handle: str) -> Session:
    return login(gateway_client, handle, ADMIN_PASSWORD)


@when(parsers.parse('I create a commands task "{command}" and follow its logs'))
def create_and_follow(
    gateway_client: httpx.Client, session: Session, followed: list[dict[str, Any]], command: str
) -> None:
    created = gateway_client.post(
        "/v1/tasks", json={"prompt": command, "input_mode": "commands"}, headers=session.headers
    )
    assert created.status_code == 201, created.text
    path = f"/v1/tasks/{created.json()['id']}/logs?follow=1"
    with gateway_client.stream("GET", path, headers=session.headers) as response:
        assert response.status_code == 200
        followed.extend(json.loads(line) for line in response.iter_lines() if line)


@then(parsers.parse('the followed logs show "{text}" before the task is completed'))
def shown_before_completion(followed: list[dict[str, Any]], text: str) -> None:
    completed = followed.index({"event": "status", "status": "completed"})
    shown = next(i for i, event in enumerate(followed) if text in event.get("data", ""))
    assert shown < completed, followed


@then(parsers.parse('the followed stdout is the lines "{lines}"'))
def followed_stdout(followed: list[dict[str, Any]], lines: str) -> None:
    stdout = "".join(event["data"] for event in followed if event["event"] == "stdout")
    assert stdout == "".join(f"{line}\n" for line in lines.split())
    assert followed[-1] == {"event": "end", "status": "completed"}
