"""Dispatch to a real Worker API running real podman containers: the result, and cancel that kills."""

from __future__ import annotations

import time

from tests.fixtures.podman import RunningWorker, WorkerFactory
from tests.fixtures.stack import StackFactory
from tests.fixtures.tasks import TaskApi, start_task_stack, task_api, worker_node


def test_commands_task_runs_on_a_real_worker(stack_factory: StackFactory, worker_factory: WorkerFactory) -> None:
    stack = start_task_stack(stack_factory)
    worker = worker_factory()
    worker_node(stack, worker, "real-node-01")
    tasks = task_api(stack)

    created = tasks.create("echo hello", input_mode="commands")
    finished = tasks.wait_for_status(created["id"])

    assert finished["status"] == "completed"
    result = tasks.result(created["id"])
    assert result["status"] == "completed"
    [job] = result["jobs"]
    assert job["status"] == "completed"
    assert job["node_slug"] == "real-node-01"
    assert job["attempt"] == 1
    assert job["result"]["stdout"] == "hello\n"
    assert job["result"]["exit_code"] == 0
    assert worker.containers() == []


def cancel_running_sleep(tasks: TaskApi, worker: RunningWorker) -> None:
    """Start ``sleep 300``, cancel it once its container runs, and check the container and rows."""
    created = tasks.create("sleep 300", input_mode="commands")
    tasks.wait_for_status(created["id"], {"running"})
    deadline = time.monotonic() + 60
    while worker.running_containers() == 0:
        assert time.monotonic() < deadline, "the job's container never started"
        time.sleep(0.1)

    canceled = tasks.cancel(created["id"])

    assert canceled == {"task_id": created["id"], "canceled": True, "status": "canceled"}
    while worker.containers():
        assert time.monotonic() < deadline, "the canceled job's container is still there"
        time.sleep(0.1)
    time.sleep(1)  # the worker's answer for the killed job has reached the dispatcher by now
    result = tasks.result(created["id"])
    assert result["status"] == "canceled"
    [job] = result["jobs"]
    assert job["status"] == "canceled"
    assert "result" not in job  # the killed run's answer was discarded
    assert tasks.cancel(created["id"]) == {"task_id": created["id"], "canceled": False, "status": "canceled"}


def test_cancel_kills_the_running_container_and_the_late_result_does_not_overwrite(
    stack_factory: StackFactory, worker_factory: WorkerFactory
) -> None:
    stack = start_task_stack(stack_factory)
    worker = worker_factory()
    worker_node(stack, worker, "real-node-02")

    cancel_running_sleep(task_api(stack), worker)


def test_cancel_through_a_gateway_in_another_process(
    stack_factory: StackFactory, worker_factory: WorkerFactory
) -> None:
    # The orchestrator starts first: it creates the bootstrap admin the gateway's login needs.
    orchestrator = start_task_stack(stack_factory, "orchestrator")
    gateway = start_task_stack(stack_factory, "gateway")
    worker = worker_factory()
    worker_node(orchestrator, worker, "real-node-03")

    cancel_running_sleep(task_api(gateway), worker)
