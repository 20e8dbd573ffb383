"""``/logs?follow=1`` while the job runs: output read live from the node that runs it.

Two real deployments: every role in one process (the node is asked in process) and a node in its
own stack (asked over its Worker API). Both run the same commands task; the follower must see its
first line before the task is reported ``completed``, and nothing twice.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from cynode.settings import Role
from tests.fixtures.identity import (
    ADMIN_HANDLE,
    ADMIN_PASSWORD,
    USER_PASSWORD,
    assert_problem,
    create_user,
)
from tests.fixtures.nodemanager import NodeDeployment
from tests.fixtures.nodes import PSK_ENV
from tests.fixtures.stack import RunningStack
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


def test_a_running_job_streams_from_the_node_in_this_process(sandbox_all_in_one: RunningStack) -> None:
    admin = task_api(sandbox_all_in_one)
    assert_streamed_before_completion(admin)

    # Another user never reaches the task's stream, running or not.
    create_user(admin.http, admin.session, "mallory")
    mallory = task_api(sandbox_all_in_one, "mallory", USER_PASSWORD)
    running = admin.create("echo started; sleep 60", input_mode="commands")
    for path in (f"/v1/tasks/{running['id']}/logs?follow=1", f"/v1/tasks/{running['id']}/logs"):
        assert_problem(mallory.get(path), 404)

    relay = Relay(sandbox_all_in_one.client(Role.ORCHESTRATOR), running["id"])
    started = relay.until_output(admin, "started\n")
    assert (started["task_id"], started["attempt"], started["output"]["stream"]) == (running["id"], 1, "stdout")
    run = {"job_id": started["job_id"], "attempt": 1}
    assert relay.get(admin, stream="stdout", after=8, **run).json()["output"]["data"] == ""
    another_run = {"job_id": "00000000-0000-0000-0000-000000000000", "attempt": 1}
    assert relay.get(admin, stream="stdout", after=8, **another_run).json()["output"]["data"] == "started\n"
    refusals = {
        "another user's task": relay.get(mallory, stream="stdout"),
        "no token": relay.get(None, stream="stdout"),
        "no stream": relay.get(admin),
        "a negative offset": relay.get(admin, stream="stdout", after=-1),
        "a job without its attempt": relay.get(admin, stream="stdout", job_id=started["job_id"]),
        "attempt 0": relay.get(admin, stream="stdout", job_id=started["job_id"], attempt=0),
        "a job id that is no UUID": relay.get(admin, stream="stdout", job_id="job", attempt=1),
    }
    assert {why: answer.status_code for why, answer in refusals.items()} == {
        "another user's task": 404,
        "no token": 401,
        "no stream": 400,
        "a negative offset": 400,
        "a job without its attempt": 400,
        "attempt 0": 400,
        "a job id that is no UUID": 400,
    }
    admin.post(f"/v1/tasks/{running['id']}/cancel")
    assert admin.get(f"/v1/tasks/{running['id']}?wait=30").json()["status"] == "canceled"
    assert relay.get(admin, stream="stdout").status_code == 204  # nothing runs any more


class Relay:
    """The control plane's relay of one task's live output, called as a separate gateway would."""

    def __init__(self, control_plane: httpx.Client, task_id: str) -> None:
        self._http = control_plane
        self._path = f"/v1/orchestrator/tasks/{task_id}/output"

    def get(self, caller: TaskApi | None, **query: Any) -> httpx.Response:
        headers = caller.session.headers if caller is not None else {}
        return self._http.get(self._path, params=query, headers=headers)

    def until_output(self, caller: TaskApi, wanted: str) -> dict[str, Any]:
        deadline = time.monotonic() + 60
        while True:
            answer = self.get(caller, stream="stdout")
            if answer.status_code == 200 and answer.json()["output"]["data"] == wanted:
                relayed: dict[str, Any] = answer.json()
                return relayed
            assert answer.status_code in (200, 204), answer.text
            assert time.monotonic() < deadline, "the running job's output never reached the relay"
            time.sleep(0.1)


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
