"""Live task output across a split deployment: gateway, orchestrator and node as separate real
``cynode serve`` processes (the serve harness) talking over HTTP. The gateway holds no node token:
it gets the output through the control plane's relay, which asks the node's Worker API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from pytest_bdd import given, parsers, scenarios, then, when

from cynode.sandbox import PodmanService
from tests.fixtures.deploy import SplitProcesses
from tests.fixtures.identity import ADMIN_PASSWORD, Session, login
from tests.fixtures.nodemanager import node_yaml, write_yaml

scenarios("tasks/live_output.feature")


@pytest.fixture
def followed() -> list[dict[str, Any]]:
    return []


@given("a node process registered with that orchestrator that runs sandbox jobs")
def node_process(split_processes: SplitProcesses, tmp_path: Path, podman_service: PodmanService) -> None:
    document = node_yaml("live-split-node", split_processes.control_plane_url, podman_service.url)
    document["worker_api"] = {}  # listen where the serve harness says
    node_config = write_yaml(tmp_path / "node.yaml", document)
    split_processes.start("node", {"CYNODE_NODE_CONFIG": str(node_config)})


@given(parsers.parse('I am logged in to the gateway process as "{handle}"'), target_fixture="session")
def logged_in(split_gateway: httpx.Client, handle: str) -> Session:
    return login(split_gateway, handle, ADMIN_PASSWORD)


@when(parsers.parse('I create a commands task "{command}" and follow its logs'))
def create_and_follow(
    split_gateway: httpx.Client, session: Session, followed: list[dict[str, Any]], command: str
) -> None:
    created = split_gateway.post(
        "/v1/tasks", json={"prompt": command, "input_mode": "commands"}, headers=session.headers
    )
    assert created.status_code == 201, created.text
    path = f"/v1/tasks/{created.json()['id']}/logs?follow=1"
    with split_gateway.stream("GET", path, headers=session.headers) as response:
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
