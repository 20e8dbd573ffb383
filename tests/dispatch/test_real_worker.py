"""Dispatch to a real Worker API running real podman containers: the result, cancel, lease expiry."""

from __future__ import annotations

from tests.fixtures.podman import WorkerFactory
from tests.fixtures.stack import StackFactory
from tests.fixtures.tasks import start_task_stack, task_api, worker_node


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
