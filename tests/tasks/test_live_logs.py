"""``/logs?follow=1`` while the job runs: output read live from the node that runs it.

Two real deployments: every role in one process (the node is asked in process) and a node in its
own stack (asked over its Worker API). Both run the same commands task; the follower must see its
first line before the task is reported ``completed``, and nothing twice.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.identity import (
    ADMIN_HANDLE,
    ADMIN_PASSWORD,
    IDENTITY_ENV,
    USER_PASSWORD,
    assert_problem,
    create_user,
)
from tests.fixtures.nodemanager import NodeDeployment
from tests.fixtures.nodes import PSK_ENV
from tests.fixtures.stack import RunningStack, StackFactory, start_all_in_one
from tests.fixtures.tasks import TaskApi, task_api

LINES_SCRIPT = "for i in 1 2 3; do echo line$i; sleep 1; done"
ALL_LINES = "line1\nline2\nline3\n"


def follow(tasks: TaskApi, task_id: str) -> list[dict[str, Any]]:
    with tasks.http.stream("GET", f"/v1/tasks/{task_id}/logs?follow=1", headers=tasks.session.headers) as response:
        assert response.status_code == 200
        return [json.loads(line) for line in response.iter_lines() if line]


def assert_streamed_before_completion(tasks: TaskApi) -> None:
    created = tasks.create(LINES_SCRIPT, input_mode="commands")
    events = follow(tasks, created["id"])

    kinds = [event["event"] if event["event"] != "status" else event["status"] for event in events]
    first_line = next(i for i, event in enumerate(events) if "line1" in event.get("data", ""))
    assert first_line < kinds.index("completed"), events
    assert "".join(event["data"] for event in events if event["event"] == "stdout") == ALL_LINES, events
    assert not any(event["event"] == "stderr" for event in events)
    assert events[-1] == {"event": "end", "status": "completed"}

    # Once finished, the follow stream is what it always was: the status, then the whole output.
    assert follow(tasks, created["id"]) == [
        {"event": "status", "status": "completed"},
        {"event": "stdout", "data": ALL_LINES},
        {"event": "end", "status": "completed"},
    ]
    assert tasks.get(f"/v1/tasks/{created['id']}/logs").json()["stdout"] == ALL_LINES


@pytest.fixture
def all_in_one(stack_factory: StackFactory, tmp_path: Path) -> RunningStack:
    return start_all_in_one(
        stack_factory,
        tmp_path,
        node_slug="live-node",
        env=IDENTITY_ENV,
        node_yaml_extra="inference:\n  mode: disabled\n",
    )


def test_a_running_job_streams_from_the_node_in_this_process(all_in_one: RunningStack) -> None:
    admin = task_api(all_in_one)
    assert_streamed_before_completion(admin)

    # Another user never reaches the task's stream, running or not.
    create_user(admin.http, admin.session, "mallory")
    mallory = task_api(all_in_one, "mallory", USER_PASSWORD)
    running = admin.create("sleep 30", input_mode="commands")
    for path in (f"/v1/tasks/{running['id']}/logs?follow=1", f"/v1/tasks/{running['id']}/logs"):
        assert_problem(mallory.get(path), 404)
    admin.post(f"/v1/tasks/{running['id']}/cancel")


def test_a_running_job_streams_from_a_node_reached_over_http(node_deployment: NodeDeployment) -> None:
    node_deployment.orchestrator = node_deployment.stack_factory(
        "gateway,orchestrator",
        env={**PSK_ENV, "CYNODE_ADMIN_PASSWORD": ADMIN_PASSWORD},
        overrides={"control_plane.port": node_deployment.control_plane_port},
    )
    node_deployment.start_node()
    node_deployment.wait_dispatchable(node_deployment.slugs[0])
    assert node_deployment.control_plane.stack.worker is None, "the node must run apart from the gateway"

    assert_streamed_before_completion(task_api(node_deployment.control_plane, ADMIN_HANDLE, ADMIN_PASSWORD))
