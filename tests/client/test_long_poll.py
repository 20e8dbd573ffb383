"""Long-poll (``?wait=N``) and followed logs (``/logs?follow=1``) on the real gateway and dispatcher.

The node is a scripted Worker API over real HTTP whose jobs take a moment, so a waiting request
is really held open while the job runs.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from cynode.tasks.waiting import MAX_WAIT_SECONDS
from tests.fixtures.identity import assert_problem
from tests.fixtures.stack import RunningStack, StackFactory
from tests.fixtures.tasks import FakeWorker, TaskApi, fake_node, start_task_stack, task_api

JOB_SECONDS = 1.0
ANSWER_WITHIN_SECONDS = 0.5
"""The acceptance bound on how late a long-poll answers after its task ends."""


@pytest.fixture
def stack(stack_factory: StackFactory) -> RunningStack:
    return start_task_stack(stack_factory)


@pytest.fixture
def tasks(stack: RunningStack) -> TaskApi:
    return task_api(stack)


@pytest.fixture
def slow_node(stack: RunningStack, fake_worker_factory: Callable[..., FakeWorker]) -> FakeWorker:
    fake = fake_worker_factory(delay=JOB_SECONDS)
    fake_node(stack, fake, "slow")
    return fake


def test_wait_returns_when_the_task_ends_not_when_wait_runs_out(tasks: TaskApi, slow_node: FakeWorker) -> None:
    created = tasks.create("echo hi", input_mode="commands")
    started = time.monotonic()
    response = tasks.get(f"/v1/tasks/{created['id']}?wait={MAX_WAIT_SECONDS}")
    answered_at = datetime.now(UTC)
    held = time.monotonic() - started
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "completed"
    # Held while the job ran, and answered long before the wait ran out.
    assert held >= JOB_SECONDS * 0.9
    assert held < MAX_WAIT_SECONDS / 2

    result = tasks.get(f"/v1/tasks/{created['id']}/result?wait=5").json()
    assert result["status"] == "completed"

    # How late the answer came after the task ended (the gateway and database share this host's
    # clock), against the cost of a plain read measured now on the same, possibly busy, machine.
    ended_at = datetime.fromisoformat(response.json()["updated_at"])
    baseline = statistics.median(_timed(lambda: tasks.get(f"/v1/tasks/{created['id']}")) for _ in range(5))
    lag = (answered_at - ended_at).total_seconds()
    assert lag < ANSWER_WITHIN_SECONDS + 2 * baseline, (lag, baseline)


def _timed(call: Callable[[], object]) -> float:
    started = time.monotonic()
    call()
    return time.monotonic() - started


def test_wait_on_a_task_that_does_not_end_answers_with_its_state(tasks: TaskApi) -> None:
    created = tasks.create("echo stuck", input_mode="commands")  # no node: it stays queued
    baseline = time.monotonic()
    assert tasks.get(f"/v1/tasks/{created['id']}").json()["status"] == "queued"
    quick = time.monotonic() - baseline
    started = time.monotonic()
    response = tasks.get(f"/v1/tasks/{created['id']}?wait=0.6")
    assert response.json()["status"] == "queued"
    assert time.monotonic() - started >= 0.6 > quick


@pytest.mark.parametrize("wait", ["x", "-1", "61", "nan", "inf", ""])
def test_bad_wait_values_are_400(tasks: TaskApi, wait: str) -> None:
    created = tasks.create("echo hi", input_mode="commands")
    for path in (f"/v1/tasks/{created['id']}", f"/v1/tasks/{created['id']}/result"):
        assert "wait" in assert_problem(tasks.get(f"{path}?wait={wait}"), 400)["detail"]


def test_follow_streams_status_then_output(tasks: TaskApi, slow_node: FakeWorker) -> None:
    created = tasks.create("echo hi", input_mode="commands")
    with tasks.http.stream(
        "GET", f"/v1/tasks/{created['id']}/logs?follow=1", headers=tasks.session.headers
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/x-ndjson")
        events = [json.loads(line) for line in response.iter_lines() if line]
    statuses = [event["status"] for event in events if event["event"] == "status"]
    assert statuses[-1] == "completed"
    assert statuses == sorted(set(statuses), key=statuses.index)  # each change reported once
    [stdout] = [event["data"] for event in events if event["event"] == "stdout"]
    assert stdout.startswith("ran ")
    assert events[-1] == {"event": "end", "status": "completed"}


def test_follow_refuses_bad_values_and_unknown_tasks(tasks: TaskApi) -> None:
    created = tasks.create("echo hi", input_mode="commands")
    assert_problem(tasks.get(f"/v1/tasks/{created['id']}/logs?follow=yes"), 400)
    assert_problem(tasks.get("/v1/tasks/no-such-task/logs?follow=1"), 404)
